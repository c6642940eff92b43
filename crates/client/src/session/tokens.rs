//! The access token of a session, refreshed before it expires.

use std::time::{Duration, Instant};

use hearth_proto::oauth::TokenResponse;

use crate::credentials::Account;
use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;

/// How long before its expiry an access token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// The tokens of one signed-in session. The refresh token is rotated on each
/// refresh and, when the session has a keyring account, saved there.
pub(crate) struct TokenSource {
    server: ServerEndpoint,
    keyring: Option<Account>,
    state: tokio::sync::Mutex<TokenState>,
}

struct TokenState {
    access: String,
    expires_at: Instant,
    refresh: String,
}

impl TokenSource {
    pub fn new(server: ServerEndpoint, tokens: TokenResponse, keyring: Option<Account>) -> Self {
        Self {
            server,
            keyring,
            state: tokio::sync::Mutex::new(TokenState {
                expires_at: Instant::now() + Duration::from_secs(tokens.expires_in),
                access: tokens.access_token,
                refresh: tokens.refresh_token,
            }),
        }
    }

    /// Returns a valid access token, refreshing it first when it expires
    /// within `REFRESH_MARGIN`.
    pub async fn access_token(&self) -> Result<String> {
        let mut state = self.state.lock().await;
        if Instant::now() + REFRESH_MARGIN < state.expires_at {
            return Ok(state.access.clone());
        }
        let tokens = crate::auth::refresh(&self.server, &state.refresh).await?;
        // The old refresh token is spent now, so the new one must be kept
        // before anything else can fail.
        if let Some(account) = &self.keyring {
            account.store_refresh_token(&tokens.refresh_token)?;
        }
        tracing::debug!(expires_in = tokens.expires_in, "refreshed the access token");
        state.expires_at = Instant::now() + Duration::from_secs(tokens.expires_in);
        state.access = tokens.access_token;
        state.refresh = tokens.refresh_token;
        Ok(state.access.clone())
    }

    /// Marks `rejected` as expired after the server refused it, so the next
    /// [`access_token`](Self::access_token) refreshes.
    pub async fn reject(&self, rejected: &str) {
        let mut state = self.state.lock().await;
        if state.access == rejected {
            state.expires_at = Instant::now();
        }
    }
}

/// Returns whether a failed refresh means the user must sign in again, as
/// opposed to a network failure that a later retry may get past.
pub(crate) fn needs_sign_in(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::SignInRejected { .. } | ClientError::Unauthorized | ClientError::Keyring(_)
    )
}
