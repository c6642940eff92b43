//! SQLite storage: opening the database and applying migrations.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "hearth.db";

/// How long a statement waits for another connection's write lock before it fails
/// with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Forward-only migrations, applied in order. Each entry runs once and its version
/// is recorded in `schema_migrations`. Never edit or reorder a released entry: add a
/// new one instead.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE refresh_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        family_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        replaced_by BLOB,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
    CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
    CREATE TABLE access_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        family_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX access_tokens_family ON access_tokens(family_id);
    CREATE INDEX access_tokens_user ON access_tokens(user_id);",
    ),
    (2, crate::chat::schema::CHAT_TABLES),
    (
        3,
        // Browser sign-in: requests waiting on the sign-in page, single-use
        // authorization codes, and the link from an OpenID Connect subject to
        // its account.
        "CREATE TABLE authorization_requests (
        id TEXT PRIMARY KEY,
        browser_hash BLOB NOT NULL,
        csrf_token TEXT NOT NULL,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        state TEXT,
        oidc_state_hash BLOB UNIQUE,
        oidc_nonce TEXT,
        oidc_pkce_verifier TEXT,
        oidc_redirect_uri TEXT,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE authorization_codes (
        code_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        family_id TEXT
    );
    CREATE TABLE oidc_links (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (issuer, subject)
    );
    CREATE UNIQUE INDEX oidc_links_account ON oidc_links(issuer, user_id);",
    ),
    (4, crate::guest::store::GUEST_TABLES),
];

/// Makes the data directory private to the server's user, because it holds
/// password hashes, token hashes and the TLS key.
#[cfg(unix)]
fn restrict_to_owner(data_dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::os::unix::fs::PermissionsExt as _;

    let mode = std::fs::metadata(data_dir)
        .with_context(|| format!("failed to read data directory {}", data_dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "failed to restrict data directory {} to mode 0700",
                    data_dir.display()
                )
            },
        )?;
        tracing::info!(path = %data_dir.display(), "restricted the data directory to mode 0700");
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_data_dir: &Path) -> anyhow::Result<()> {
    // NOTE: on Windows the directory keeps the ACL it inherits; untested there.
    Ok(())
}

/// Opens (creating if missing) `hearth.db` in `data_dir` and applies pending
/// migrations.
pub async fn open(data_dir: &Path) -> anyhow::Result<SqlitePool> {
    use anyhow::Context as _;

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
    restrict_to_owner(data_dir)?;
    let path = data_dir.join(DATABASE_FILE);
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .with_context(|| format!("failed to open database {}", path.display()))?;
    migrate(&pool)
        .await
        .with_context(|| format!("failed to migrate database {}", path.display()))?;
    Ok(pool)
}

async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(pool)
    .await?;

    for &(version, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_some() {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(unix_now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// Current time in whole seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}
