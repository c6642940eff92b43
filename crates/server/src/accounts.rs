//! User accounts: names, Argon2id password hashes and the disabled flag.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sqlx::SqlitePool;

use crate::db::unix_now;
use crate::secret::Secret;

/// Maximum length of a user name in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Errors from account operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error("invalid user name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-'")]
    InvalidName { name: String },
    #[error("invalid password: the password must not be empty")]
    EmptyPassword,
    #[error("user {name:?} already exists")]
    AlreadyExists { name: String },
    #[error("user {name:?} not found")]
    NotFound { name: String },
    #[error("failed to hash the password: {0}")]
    Hash(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// One row of `user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub disabled: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A user whose password matched.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub id: i64,
    pub name: String,
    pub disabled: bool,
}

/// Checks that `name` has 1..=64 characters, each an ASCII letter, digit, `.`,
/// `_` or `-`.
pub fn validate_name(name: &str) -> Result<(), AccountError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || !valid_chars {
        return Err(AccountError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Account storage over the `users` table.
#[derive(Clone)]
pub struct Accounts {
    pool: SqlitePool,
}

impl Accounts {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Opens the database in `data_dir`, for the admin commands that run without
    /// a server.
    pub async fn open(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self::new(crate::db::open(data_dir).await?))
    }

    /// Creates an account with an Argon2id hash of `password`.
    pub async fn add_user(&self, name: &str, password: &Secret) -> Result<(), AccountError> {
        validate_name(name)?;
        if password.expose().is_empty() {
            return Err(AccountError::EmptyPassword);
        }
        let password_hash = hash_password(password.clone()).await?;
        let result = sqlx::query(
            "INSERT INTO users (name, password_hash, disabled, created_at) VALUES (?, ?, 0, ?)",
        )
        .bind(name)
        .bind(password_hash)
        .bind(unix_now())
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(AccountError::AlreadyExists {
                    name: name.to_owned(),
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Lists all accounts ordered by name.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, AccountError> {
        let rows: Vec<(String, bool, i64)> =
            sqlx::query_as("SELECT name, disabled, created_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        let users = rows
            .into_iter()
            .map(|(name, disabled, created_at)| UserSummary {
                name,
                disabled,
                created_at,
            })
            .collect();
        Ok(users)
    }

    /// Disables an account and revokes all its access and refresh tokens.
    ///
    /// Open signalling connections of the user notice within a few seconds,
    /// because each rechecks its session periodically, and then close.
    pub async fn disable_user(&self, name: &str) -> Result<(), AccountError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64,)> =
            sqlx::query_as("UPDATE users SET disabled = 1 WHERE name = ? RETURNING id")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id,)) = row else {
            return Err(AccountError::NotFound {
                name: name.to_owned(),
            });
        };
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns whether an account named `name` exists, disabled or not.
    pub async fn user_exists(&self, name: &str) -> Result<bool, AccountError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Checks `password` against the stored hash. Returns `None` for an unknown
    /// user or a wrong password, taking about the same time in both cases so the
    /// response time does not reveal whether the user exists.
    pub async fn verify_password(
        &self,
        name: &str,
        password: &Secret,
    ) -> Result<Option<VerifiedUser>, AccountError> {
        let row: Option<(i64, String, String, bool)> =
            sqlx::query_as("SELECT id, name, password_hash, disabled FROM users WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        let stored_hash = match &row {
            Some((_, _, hash, _)) => hash.clone(),
            None => dummy_hash().await?,
        };
        let matches = check_password(password.clone(), stored_hash).await?;
        match row {
            Some((id, name, _, disabled)) if matches => {
                Ok(Some(VerifiedUser { id, name, disabled }))
            }
            _ => Ok(None),
        }
    }
}

/// The account a federated identity signs in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederatedAccount {
    /// An existing account, linked now or earlier.
    Existing {
        id: i64,
        name: String,
        disabled: bool,
    },
    /// An account created for this identity.
    Created { id: i64, name: String },
    /// The provider sent no value for the user name claim.
    MissingClaim,
    /// The claim's value is not a valid Hearth user name.
    InvalidName { name: String },
    /// No account has this name and creating accounts is off.
    NoAccount { name: String },
    /// The account with this name is linked to another subject of the provider.
    LinkedToOtherSubject { name: String },
}

/// Password hash of accounts created through federation. It is no valid PHC
/// string, so no password ever matches it.
const NO_PASSWORD_HASH: &str = "!federated";

impl Accounts {
    /// Finds or links the account of a provider subject.
    ///
    /// A subject that signed in before keeps its account, whatever user name
    /// the provider sends now. A new subject links to the account named by
    /// `username` unless that account is linked to another subject of the same
    /// issuer, so a renamed or recycled name at the provider cannot take over an
    /// account. With `create`, a missing account is created without a password.
    pub async fn resolve_federated(
        &self,
        issuer: &str,
        subject: &str,
        username: Option<&str>,
        create: bool,
    ) -> Result<FederatedAccount, AccountError> {
        match self.link_federated(issuer, subject, username, create).await {
            // Two first sign-ins of one subject at once: the other one linked
            // it, so the lookup now finds the link.
            Err(AccountError::Database(sqlx::Error::Database(error)))
                if error.is_unique_violation() =>
            {
                self.link_federated(issuer, subject, username, create).await
            }
            other => other,
        }
    }

    async fn link_federated(
        &self,
        issuer: &str,
        subject: &str,
        username: Option<&str>,
        create: bool,
    ) -> Result<FederatedAccount, AccountError> {
        let mut tx = self.pool.begin().await?;
        let linked: Option<(i64, String, bool)> = sqlx::query_as(
            "SELECT users.id, users.name, users.disabled FROM oidc_links
             JOIN users ON users.id = oidc_links.user_id
             WHERE oidc_links.issuer = ? AND oidc_links.subject = ?",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, name, disabled)) = linked {
            return Ok(FederatedAccount::Existing { id, name, disabled });
        }

        let Some(name) = username else {
            return Ok(FederatedAccount::MissingClaim);
        };
        if validate_name(name).is_err() {
            return Ok(FederatedAccount::InvalidName {
                name: name.to_owned(),
            });
        }
        let existing: Option<(i64, bool)> =
            sqlx::query_as("SELECT id, disabled FROM users WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let (user_id, outcome) = match existing {
            Some((id, disabled)) => {
                let other: Option<(String,)> = sqlx::query_as(
                    "SELECT subject FROM oidc_links WHERE issuer = ? AND user_id = ?",
                )
                .bind(issuer)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if other.is_some() {
                    return Ok(FederatedAccount::LinkedToOtherSubject {
                        name: name.to_owned(),
                    });
                }
                let account = FederatedAccount::Existing {
                    id,
                    name: name.to_owned(),
                    disabled,
                };
                (id, account)
            }
            None if create => {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO users (name, password_hash, disabled, created_at)
                     VALUES (?, ?, 0, ?) RETURNING id",
                )
                .bind(name)
                .bind(NO_PASSWORD_HASH)
                .bind(unix_now())
                .fetch_one(&mut *tx)
                .await?;
                let account = FederatedAccount::Created {
                    id,
                    name: name.to_owned(),
                };
                (id, account)
            }
            None => {
                return Ok(FederatedAccount::NoAccount {
                    name: name.to_owned(),
                });
            }
        };
        sqlx::query(
            "INSERT INTO oidc_links (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user_id)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            issuer,
            subject,
            user = name,
            "linked a federated identity to its account"
        );
        Ok(outcome)
    }
}

async fn hash_password(password: Secret) -> Result<String, AccountError> {
    let hashed = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|error| AccountError::Hash(error.to_string()))?;
    hashed.map_err(|error| AccountError::Hash(error.to_string()))
}

async fn check_password(password: Secret, stored_hash: String) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), stored_hash.as_str())
            .is_ok()
    })
    .await
    .map_err(|error| AccountError::Hash(error.to_string()))
}

/// Returns the hash of a random password. Unknown users are verified against it so
/// that they cost the same Argon2 work as known ones.
async fn dummy_hash() -> Result<String, AccountError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = DUMMY
        .get_or_try_init(|| hash_password(Secret::new(crate::tokens::random_token())))
        .await?;
    Ok(hash.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_accepts_allowed_characters() {
        assert!(validate_name("alice.b_c-9").is_ok());
    }

    #[test]
    fn name_rejects_empty() {
        assert!(validate_name("").is_err());
    }

    #[test]
    fn name_rejects_space() {
        assert!(validate_name("al ice").is_err());
    }

    #[test]
    fn name_rejects_too_long() {
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn name_accepts_max_length() {
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }
}
