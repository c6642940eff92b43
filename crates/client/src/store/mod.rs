//! The local SQLite database of one account on one server: conversations and
//! their members, events with the current state of each message, read state,
//! a full-text index of message text and the outbox of unsent messages.
//!
//! It never contains a token or other secret: the refresh token lives in the OS
//! keyring and the access token in memory. Everything except the outbox can be
//! fetched again from the server, which is what makes
//! [corruption recovery](Store::open) safe.

mod conversations;
mod events;
mod outbox;
mod recovery;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::error::{ClientError, Result};

pub use events::StoredEvent;
pub use outbox::{OutboxAttachment, OutboxEntry, OutboxMessage};
pub use recovery::Recovery;

/// File name of the database inside an account's folder.
pub const DATABASE_FILE: &str = "chat.sqlite3";

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open local database.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// The signed-in user, whose own messages never count as unread.
    user: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Returns the folder of one account's local data below `data_dir`:
/// `data_dir/<host>_<port>/<user>`, with every byte outside `[A-Za-z0-9._-]`
/// percent-encoded so that any server address and user name give a valid,
/// distinct folder name.
pub fn account_dir(data_dir: &Path, server_base_url: &str, user: &str) -> PathBuf {
    let host = server_base_url
        .trim_start_matches("https://")
        .trim_end_matches('/');
    data_dir
        .join(path_component(&host.replace(':', "_")))
        .join(path_component(user))
}

fn path_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    // "." and ".." would name the parent folders.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "%2E");
    }
    out
}

impl Store {
    /// Opens or creates the database at `path` for `user`.
    ///
    /// The file is checked with `PRAGMA quick_check` first. A corrupt file, or
    /// one that is not a database, is moved aside together with its `-wal` and
    /// `-shm` files as `<name>.corrupt-<unix time>`, the outbox rows that can
    /// still be read from it are copied into a new database, and the returned
    /// [`Recovery`] says what happened. The next sync fetches the rest again.
    pub fn open(path: &Path, user: &str) -> Result<(Self, Option<Recovery>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| {
                ClientError::Store(format!("cannot create the folder {}: {err}", dir.display()))
            })?;
        }
        match open_checked(path) {
            Ok(conn) => Ok((Self::from_connection(conn, Some(path), user), None)),
            Err(OpenError::Corrupt(reason)) => {
                let (conn, recovery) = recovery::recover(path, &reason)?;
                Ok((
                    Self::from_connection(conn, Some(path), user),
                    Some(recovery),
                ))
            }
            Err(OpenError::Other(err)) => Err(err),
        }
    }

    /// Opens a database that lives only in memory, for tests and previews.
    pub fn open_in_memory(user: &str) -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Self::from_connection(conn, None, user))
    }

    fn from_connection(conn: Connection, path: Option<&Path>, user: &str) -> Self {
        Self {
            conn,
            path: path.map(Path::to_owned),
            user: user.to_owned(),
        }
    }

    /// Returns the database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Failure to open a database file.
enum OpenError {
    /// The file is damaged or not a database. The text describes the damage
    /// without row contents.
    Corrupt(String),
    Other(ClientError),
}

impl From<rusqlite::Error> for OpenError {
    fn from(err: rusqlite::Error) -> Self {
        if is_corruption(&err) {
            Self::Corrupt(err.to_string())
        } else {
            Self::Other(err.into())
        }
    }
}

impl From<ClientError> for OpenError {
    fn from(err: ClientError) -> Self {
        Self::Other(err)
    }
}

fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Opens `path`, checks its integrity, switches to WAL and migrates it.
fn open_checked(path: &Path) -> std::result::Result<Connection, OpenError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Until the file passed the check, closing must not fold the WAL into
    // it (or delete the WAL), so that a damaged file is moved aside as found.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // Reading anything from a file that is not a database fails here with
    // SQLITE_NOTADB, which `From` turns into `Corrupt`.
    let problems = quick_check(&conn)?;
    if !problems.is_empty() {
        return Err(OpenError::Corrupt(format!(
            "quick_check: {}",
            problems.join("; ")
        )));
    }
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
    configure(&conn)?;
    match schema::migrate(&mut conn) {
        Ok(()) => Ok(conn),
        Err(ClientError::Sqlite(err)) if is_corruption(&err) => {
            Err(OpenError::Corrupt(err.to_string()))
        }
        Err(other) => Err(OpenError::Other(other)),
    }
}

/// Runs `PRAGMA quick_check` and returns its complaints; empty means intact.
/// The complaints name pages and tables, never row contents.
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("PRAGMA quick_check")?;
    let lines = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(lines.into_iter().filter(|line| line != "ok").collect())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode returns the mode it set, so it is a query, not an update.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
}

/// Returns the current time in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads a UUID stored as text.
fn uuid_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<uuid::Uuid> {
    let text: String = row.get(index)?;
    uuid::Uuid::parse_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err))
    })
}

/// Reads a JSON value stored as text.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err))
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store types always serialise to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_dir_escapes_names() {
        let dir = account_dir(Path::new("/data"), "https://chat.example.org:7443", "a/b");
        assert_eq!(dir, Path::new("/data/chat.example.org_7443/a%2Fb"));
        let dots = account_dir(Path::new("/data"), "https://host", "..");
        assert_eq!(dots, Path::new("/data/host/%2E%2E"));
    }

    #[test]
    fn migrations_record_version() {
        let store = Store::open_in_memory("alice").unwrap();
        let version: i64 = store
            .conn
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::latest_version());
    }

    #[test]
    fn newer_schema_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        drop(Store::open(&path, "alice").unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 999", [])
            .unwrap();
        drop(conn);

        let err = Store::open(&path, "alice").unwrap_err();
        assert_eq!(err.code(), "local_store");
        assert!(err.to_string().contains("999"), "{err}");
    }
}
