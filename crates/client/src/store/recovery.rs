//! Recovery from a corrupt database file: move it aside, keep its outbox.

use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::outbox::{self, OutboxEntry};
use crate::error::{ClientError, Result};

/// Report of [`Store::open`](super::Store::open) on a corrupt database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// New path of the damaged file. Its `-wal` and `-shm` files, if any,
    /// have the same name plus that suffix.
    pub moved_to: PathBuf,
    /// SQLite's description of the damage.
    pub reason: String,
    /// Outbox rows copied into the new database.
    pub outbox_kept: usize,
}

/// Moves the damaged database aside, creates a new one and copies the
/// readable outbox rows into it.
pub(super) fn recover(path: &Path, reason: &str) -> Result<(Connection, Recovery)> {
    let moved_to = move_aside(path)?;
    let salvaged = salvage_outbox(&moved_to);
    let mut conn = match super::open_checked(path) {
        Ok(conn) => conn,
        Err(super::OpenError::Corrupt(detail)) => {
            return Err(ClientError::Store(format!(
                "the new database {} is corrupt right after creation: {detail}",
                path.display()
            )));
        }
        Err(super::OpenError::Other(err)) => return Err(err),
    };
    let outbox_kept = salvaged.len();
    outbox::restore(&mut conn, &salvaged)?;
    tracing::warn!(
        path = %path.display(),
        moved_to = %moved_to.display(),
        reason,
        outbox_kept,
        "the local database was corrupt; moved it aside and created a new one, \
         which the next sync fills from the server"
    );
    Ok((
        conn,
        Recovery {
            moved_to,
            reason: reason.to_owned(),
            outbox_kept,
        },
    ))
}

/// Renames `path` and its `-wal` and `-shm` files to `<name>.corrupt-<unix
/// time>` (plus the same suffix), adding `-2`, `-3`, … if that name is taken.
/// Keeping the suffixes lets SQLite find the moved WAL when the moved file is
/// opened.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let base = format!("{}.corrupt-{seconds}", path.display());
    let mut target = PathBuf::from(&base);
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        target = PathBuf::from(format!("{base}-{attempt}"));
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if !from.exists() {
            continue;
        }
        let to = PathBuf::from(format!("{}{suffix}", target.display()));
        std::fs::rename(&from, &to).map_err(|err| {
            ClientError::Store(format!(
                "cannot move the corrupt database file {} to {}: {err}",
                from.display(),
                to.display()
            ))
        })?;
    }
    Ok(target)
}

/// Reads the outbox rows of a damaged database in order, stopping at the
/// first row that cannot be read. Returns nothing when even that fails.
fn salvage_outbox(path: &Path) -> Vec<OutboxEntry> {
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot open the corrupt database to read its outbox");
            return Vec::new();
        }
    };
    if let Err(err) = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true) {
        tracing::debug!(error = %err, "cannot keep the moved WAL from being checkpointed");
    }
    let (rows, error) = outbox::read_until_error(&conn);
    if let Some(err) = error {
        tracing::warn!(
            path = %path.display(),
            error = %err,
            rows_read = rows.len(),
            "stopped reading the outbox of the corrupt database"
        );
    }
    rows
}
