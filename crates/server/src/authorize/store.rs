//! Storage of sign-in requests that wait on the sign-in page and of the
//! authorization codes they end with.
//!
//! A pending request is bound to the browser that opened it: the browser keeps a
//! random cookie and the row stores its SHA-256, so a form or a federation
//! callback from another browser finds nothing. Codes are random, stored as
//! SHA-256, single use and valid for [`CODE_TTL_SECS`].

use sqlx::SqlitePool;

use super::params::{AuthorizationRequest, s256_challenge};
use crate::db::unix_now;
use crate::secret::Secret;
use crate::tokens::{IssuedTokens, Tokens, hash_token, random_token, revoke_family};

/// How long a sign-in page stays usable, including a trip to the identity provider.
pub const REQUEST_TTL_SECS: i64 = 10 * 60;
/// How long an authorization code can be exchanged. RFC 6749 section 4.1.2
/// recommends at most 10 minutes; the client exchanges it at once.
pub const CODE_TTL_SECS: i64 = 60;
/// How long a code row stays after it expired, so that a late second use is
/// still recognised as reuse and revokes the tokens issued for the code.
const CODE_RETENTION_SECS: i64 = 24 * 60 * 60;

/// A request waiting on the sign-in page.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub id: String,
    pub csrf_token: Secret,
    pub request: AuthorizationRequest,
}

/// The state a federated sign-in stores before it leaves for the identity provider.
#[derive(Debug, Clone)]
pub struct FederationState {
    pub nonce: Secret,
    pub pkce_verifier: Secret,
    /// The callback URL sent to the provider; the code exchange repeats it.
    pub redirect_uri: String,
}

/// The reason an authorization code was not exchanged. Every case maps to
/// `invalid_grant`.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("authorization code is invalid or expired")]
    Invalid,
    #[error("authorization code was already used; the tokens issued for it are revoked")]
    Reused,
    #[error("authorization code was issued to another client_id")]
    ClientMismatch,
    #[error("redirect_uri does not match the one in the authorization request")]
    RedirectMismatch,
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
    #[error("account is disabled")]
    Disabled,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A code exchange request at the token endpoint.
pub struct CodeGrant<'a> {
    pub code: &'a Secret,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a Secret,
}

/// Storage over `authorization_requests` and `authorization_codes`.
#[derive(Clone)]
pub struct AuthorizationStore {
    pool: SqlitePool,
}

/// `id, csrf_token, client_id, redirect_uri, code_challenge, state`.
type RequestRow = (String, String, String, String, String, Option<String>);
/// A [`RequestRow`] followed by `oidc_nonce, oidc_pkce_verifier, oidc_redirect_uri`.
type FederationRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

impl AuthorizationStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Stores a validated request for the browser holding `browser_cookie`.
    pub async fn create_request(
        &self,
        browser_cookie: &Secret,
        request: &AuthorizationRequest,
    ) -> Result<PendingRequest, sqlx::Error> {
        let now = unix_now();
        sqlx::query("DELETE FROM authorization_requests WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let pending = PendingRequest {
            id: random_token(),
            csrf_token: Secret::new(random_token()),
            request: request.clone(),
        };
        sqlx::query(
            "INSERT INTO authorization_requests
                 (id, browser_hash, csrf_token, client_id, redirect_uri, code_challenge,
                  state, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&pending.id)
        .bind(hash_token(browser_cookie.expose()))
        .bind(pending.csrf_token.expose())
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(&request.code_challenge)
        .bind(&request.state)
        .bind(now + REQUEST_TTL_SECS)
        .execute(&self.pool)
        .await?;
        Ok(pending)
    }

    /// Returns the unexpired request `id` if it belongs to this browser.
    pub async fn find_request(
        &self,
        id: &str,
        browser_cookie: &Secret,
    ) -> Result<Option<PendingRequest>, sqlx::Error> {
        let row: Option<RequestRow> = sqlx::query_as(
            "SELECT id, csrf_token, client_id, redirect_uri, code_challenge, state
             FROM authorization_requests
             WHERE id = ? AND browser_hash = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(hash_token(browser_cookie.expose()))
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(pending_from_row))
    }

    /// Removes a request that ended without a code, for example on cancel.
    pub async fn delete_request(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM authorization_requests WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a request with a signed-in user: removes it and issues its code.
    /// Returns `None` when the request is gone, for example because another
    /// tab already completed it.
    pub async fn complete_request(
        &self,
        id: &str,
        user_id: i64,
    ) -> Result<Option<(AuthorizationRequest, Secret)>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<RequestRow> = sqlx::query_as(
            "DELETE FROM authorization_requests WHERE id = ? AND expires_at > ?
             RETURNING id, csrf_token, client_id, redirect_uri, code_challenge, state",
        )
        .bind(id)
        .bind(unix_now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(pending) = row.map(pending_from_row) else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= ?")
            .bind(unix_now() - CODE_RETENTION_SECS)
            .execute(&mut *tx)
            .await?;
        let code = Secret::new(random_token());
        sqlx::query(
            "INSERT INTO authorization_codes
                 (code_hash, user_id, client_id, redirect_uri, code_challenge, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash_token(code.expose()))
        .bind(user_id)
        .bind(&pending.request.client_id)
        .bind(&pending.request.redirect_uri)
        .bind(&pending.request.code_challenge)
        .bind(unix_now() + CODE_TTL_SECS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((pending.request, code)))
    }

    /// Records the state, nonce and PKCE verifier of a federated sign-in that
    /// is about to leave for the identity provider. Returns false when the
    /// request is gone or belongs to another browser.
    pub async fn start_federation(
        &self,
        id: &str,
        browser_cookie: &Secret,
        oidc_state: &Secret,
        federation: &FederationState,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE authorization_requests
             SET oidc_state_hash = ?, oidc_nonce = ?, oidc_pkce_verifier = ?,
                 oidc_redirect_uri = ?
             WHERE id = ? AND browser_hash = ? AND expires_at > ?",
        )
        .bind(hash_token(oidc_state.expose()))
        .bind(federation.nonce.expose())
        .bind(federation.pkce_verifier.expose())
        .bind(&federation.redirect_uri)
        .bind(id)
        .bind(hash_token(browser_cookie.expose()))
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Finds the request a federation callback belongs to, by the `state` it
    /// carries and the browser it comes from, and clears its federation state
    /// so the callback works only once.
    pub async fn take_federation(
        &self,
        oidc_state: &Secret,
        browser_cookie: &Secret,
    ) -> Result<Option<(PendingRequest, FederationState)>, sqlx::Error> {
        // Clearing the state hash alone makes the callback single use. The
        // nonce and verifier stay, because SQLite's RETURNING yields the
        // values after the update.
        let row: Option<FederationRow> = sqlx::query_as(
            "UPDATE authorization_requests SET oidc_state_hash = NULL
             WHERE oidc_state_hash = ? AND browser_hash = ? AND expires_at > ?
             RETURNING id, csrf_token, client_id, redirect_uri, code_challenge, state,
                 oidc_nonce, oidc_pkce_verifier, oidc_redirect_uri",
        )
        .bind(hash_token(oidc_state.expose()))
        .bind(hash_token(browser_cookie.expose()))
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id, csrf, client_id, redirect_uri, challenge, state, nonce, verifier, callback)| {
                (
                    pending_from_row((id, csrf, client_id, redirect_uri, challenge, state)),
                    FederationState {
                        nonce: Secret::new(nonce),
                        pkce_verifier: Secret::new(verifier),
                        redirect_uri: callback,
                    },
                )
            },
        ))
    }

    /// Exchanges an authorization code for tokens (RFC 6749 section 4.1.3).
    ///
    /// The code is marked used before any check, so a failed attempt also
    /// spends it. A code presented again revokes the tokens issued for it, as
    /// RFC 6749 section 4.1.2 recommends. Returns the tokens and the user name.
    pub async fn redeem_code(
        &self,
        tokens: &Tokens,
        grant: &CodeGrant<'_>,
    ) -> Result<(IssuedTokens, String), CodeError> {
        let code_hash = hash_token(grant.code.expose());
        let mut tx = self.pool.begin().await?;
        // Of two concurrent exchanges only one gets the row back, because the
        // update takes SQLite's write lock before the other can read.
        let claimed: Option<(i64, String, String, String, i64, String, bool)> = sqlx::query_as(
            "UPDATE authorization_codes SET used = 1
             WHERE code_hash = ? AND used = 0
             RETURNING user_id, client_id, redirect_uri, code_challenge, expires_at,
                 (SELECT name FROM users WHERE users.id = authorization_codes.user_id),
                 (SELECT disabled FROM users WHERE users.id = authorization_codes.user_id)",
        )
        .bind(&code_hash)
        .fetch_optional(&mut *tx)
        .await?;

        let Some((user_id, client_id, redirect_uri, challenge, expires_at, name, disabled)) =
            claimed
        else {
            let used: Option<(Option<String>,)> =
                sqlx::query_as("SELECT family_id FROM authorization_codes WHERE code_hash = ?")
                    .bind(&code_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((family_id,)) = used else {
                return Err(CodeError::Invalid);
            };
            if let Some(family_id) = family_id {
                revoke_family(&mut tx, &family_id).await?;
                tracing::warn!(
                    family_id,
                    "authorization code reused; revoked the tokens issued for it"
                );
            }
            tx.commit().await?;
            return Err(CodeError::Reused);
        };

        let failure = if expires_at <= unix_now() {
            Some(CodeError::Invalid)
        } else if client_id != grant.client_id {
            Some(CodeError::ClientMismatch)
        } else if redirect_uri != grant.redirect_uri {
            Some(CodeError::RedirectMismatch)
        } else if !constant_time_eq(
            s256_challenge(grant.code_verifier.expose()).as_bytes(),
            challenge.as_bytes(),
        ) {
            Some(CodeError::VerifierMismatch)
        } else if disabled {
            Some(CodeError::Disabled)
        } else {
            None
        };
        if let Some(failure) = failure {
            tx.commit().await?;
            return Err(failure);
        }

        let family_id = uuid::Uuid::new_v4().to_string();
        let (issued, _) = tokens.insert_pair(&mut tx, user_id, &family_id).await?;
        sqlx::query("UPDATE authorization_codes SET family_id = ? WHERE code_hash = ?")
            .bind(&family_id)
            .bind(&code_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((issued, name))
    }
}

fn pending_from_row(row: RequestRow) -> PendingRequest {
    let (id, csrf_token, client_id, redirect_uri, code_challenge, state) = row;
    PendingRequest {
        id,
        csrf_token: Secret::new(csrf_token),
        request: AuthorizationRequest {
            client_id,
            redirect_uri,
            code_challenge,
            state,
        },
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
