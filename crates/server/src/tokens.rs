//! Opaque access and refresh tokens.
//!
//! A token is 32 random bytes in unpadded base64url. The database stores only the
//! SHA-256 hash of each token, so a copy of the database cannot be used to sign in.
//! Refresh tokens rotate: each use issues a new one in the same family and marks
//! the old one replaced. Presenting a replaced refresh token again means it leaked,
//! so the whole family, with its access tokens, is revoked.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::db::unix_now;
use crate::secret::Secret;

/// Creates a new token: 32 random bytes, base64url without padding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns the SHA-256 of a token, the form in which tokens and codes are stored.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A freshly issued access and refresh token pair.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

/// The owner of a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user_id: i64,
    pub name: String,
}

/// Reason a refresh token was rejected. The endpoint maps every case to
/// `invalid_grant`.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("refresh token is invalid, expired or revoked")]
    Invalid,
    #[error("refresh token was already used; its token family is revoked")]
    Replayed,
    #[error("account is disabled")]
    Disabled,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Token storage over the `access_tokens` and `refresh_tokens` tables.
#[derive(Clone)]
pub struct Tokens {
    pool: SqlitePool,
    access_ttl_secs: u64,
    refresh_ttl_secs: u64,
}

impl Tokens {
    pub fn new(pool: SqlitePool, access_ttl_secs: u64, refresh_ttl_secs: u64) -> Self {
        Self {
            pool,
            access_ttl_secs,
            refresh_ttl_secs,
        }
    }

    /// Issues a token pair in a new family for a user who just proved their
    /// password.
    pub async fn issue(&self, user_id: i64) -> Result<IssuedTokens, sqlx::Error> {
        let family_id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        let issued = self.insert_pair(&mut tx, user_id, &family_id).await?;
        tx.commit().await?;
        Ok(issued.0)
    }

    /// Exchanges a refresh token for a new pair in the same family.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<IssuedTokens, RefreshError> {
        let old_hash = hash_token(refresh_token.expose());
        let now = unix_now();
        let mut tx = self.pool.begin().await?;

        // Claim the old token with a write first. Of two concurrent refreshes with
        // the same token only one gets an updated row back, and the write lock is taken
        // before any read in this transaction.
        let claimed: Option<(i64, String, bool)> = sqlx::query_as(
            "UPDATE refresh_tokens SET replaced_by = x'00'
             WHERE token_hash = ? AND replaced_by IS NULL AND revoked = 0 AND expires_at > ?
             RETURNING user_id, family_id,
                 (SELECT disabled FROM users WHERE users.id = refresh_tokens.user_id)",
        )
        .bind(&old_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;

        let Some((user_id, family_id, disabled)) = claimed else {
            let replayed = self.revoke_family_if_replayed(&mut tx, &old_hash).await?;
            tx.commit().await?;
            return Err(if replayed {
                RefreshError::Replayed
            } else {
                RefreshError::Invalid
            });
        };
        if disabled {
            return Err(RefreshError::Disabled);
        }

        let (issued, new_hash) = self.insert_pair(&mut tx, user_id, &family_id).await?;
        sqlx::query("UPDATE refresh_tokens SET replaced_by = ? WHERE token_hash = ?")
            .bind(new_hash)
            .bind(&old_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Revokes a token (RFC 7009). A refresh token revokes its whole family,
    /// including access tokens; an access token revokes only itself. Unknown tokens
    /// are ignored, as the RFC requires.
    pub async fn revoke(&self, token: &Secret) -> Result<(), sqlx::Error> {
        let hash = hash_token(token.expose());
        let mut tx = self.pool.begin().await?;
        let family: Option<(String,)> =
            sqlx::query_as("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
        match family {
            Some((family_id,)) => revoke_family(&mut tx, &family_id).await?,
            None => {
                sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE token_hash = ?")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Returns the owner of an access token that exists, is not revoked, has not
    /// expired and belongs to an enabled account.
    pub async fn authenticate(
        &self,
        access_token: &Secret,
    ) -> Result<Option<TokenOwner>, sqlx::Error> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT users.id, users.name FROM access_tokens
             JOIN users ON users.id = access_tokens.user_id
             WHERE access_tokens.token_hash = ? AND access_tokens.revoked = 0
                 AND access_tokens.expires_at > ? AND users.disabled = 0",
        )
        .bind(hash_token(access_token.expose()))
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(user_id, name)| TokenOwner { user_id, name }))
    }

    /// Returns whether the session behind an access token is still allowed:
    /// the token is not revoked and its account is not disabled. Expiry is not
    /// checked, because an open signalling connection outlives the token that
    /// opened it.
    pub async fn session_active(&self, access_token: &Secret) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT users.id FROM access_tokens
             JOIN users ON users.id = access_tokens.user_id
             WHERE access_tokens.token_hash = ? AND access_tokens.revoked = 0
                 AND users.disabled = 0",
        )
        .bind(hash_token(access_token.expose()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Inserts a new access and refresh token pair of `family_id` in `tx`.
    /// Returns the pair and the refresh token's hash.
    pub(crate) async fn insert_pair(
        &self,
        tx: &mut sqlx::SqliteConnection,
        user_id: i64,
        family_id: &str,
    ) -> Result<(IssuedTokens, Vec<u8>), sqlx::Error> {
        let now = unix_now();
        let access_token = random_token();
        let refresh_token = random_token();
        let refresh_hash = hash_token(&refresh_token);

        sqlx::query(
            "INSERT INTO access_tokens (token_hash, user_id, family_id, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(hash_token(&access_token))
        .bind(user_id)
        .bind(family_id)
        .bind(now.saturating_add(seconds_as_i64(self.access_ttl_secs)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&refresh_hash)
        .bind(user_id)
        .bind(family_id)
        .bind(now.saturating_add(seconds_as_i64(self.refresh_ttl_secs)))
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let issued = IssuedTokens {
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(refresh_token),
            expires_in: self.access_ttl_secs,
        };
        Ok((issued, refresh_hash))
    }

    async fn revoke_family_if_replayed(
        &self,
        tx: &mut sqlx::SqliteConnection,
        token_hash: &[u8],
    ) -> Result<bool, sqlx::Error> {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT family_id, replaced_by IS NOT NULL FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some((family_id, true)) => {
                revoke_family(tx, &family_id).await?;
                tracing::warn!(family_id, "refresh token reused; revoked its token family");
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Revokes every access and refresh token of a family.
pub(crate) async fn revoke_family(
    tx: &mut sqlx::SqliteConnection,
    family_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?")
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE family_id = ?")
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn seconds_as_i64(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_encodes_32_bytes() {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(random_token())
            .unwrap();
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(random_token(), random_token());
    }
}
