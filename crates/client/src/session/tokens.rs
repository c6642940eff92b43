//! The access token of a session, refreshed before it expires.

use std::time::{Duration, Instant};

use hearth_proto::oauth::TokenResponse;

use crate::credentials::Account;
use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;

/// How long before its expiry an access token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Source of a session's access tokens.
pub enum Credentials {
    /// Tokens from a sign-in that just happened.
    Tokens(TokenResponse),
    /// A refresh token, for example from the keyring, exchanged on the first
    /// connection. Nothing is sent before that, so a session can start while
    /// the server is unreachable.
    RefreshToken(String),
    /// The user's password, for scripts; signs in on the first connection.
    Password(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tokens(_) => "Credentials::Tokens(<redacted>)",
            Self::RefreshToken(_) => "Credentials::RefreshToken(<redacted>)",
            Self::Password(_) => "Credentials::Password(<redacted>)",
        })
    }
}

/// The tokens of one signed-in session. The refresh token is rotated on each
/// refresh and, when the session has a keyring account, saved there.
pub(crate) struct TokenSource {
    server: ServerEndpoint,
    user: String,
    keyring: Option<Account>,
    state: tokio::sync::Mutex<TokenState>,
}

struct TokenState {
    access: Option<String>,
    expires_at: Instant,
    refresh: Option<String>,
    password: Option<String>,
}

impl TokenSource {
    pub fn new(
        server: ServerEndpoint,
        user: &str,
        credentials: Credentials,
        keyring: Option<Account>,
    ) -> Self {
        let now = Instant::now();
        let state = match credentials {
            Credentials::Tokens(tokens) => TokenState {
                access: Some(tokens.access_token),
                expires_at: now + Duration::from_secs(tokens.expires_in),
                refresh: Some(tokens.refresh_token),
                password: None,
            },
            Credentials::RefreshToken(refresh) => TokenState {
                access: None,
                expires_at: now,
                refresh: Some(refresh),
                password: None,
            },
            Credentials::Password(password) => TokenState {
                access: None,
                expires_at: now,
                refresh: None,
                password: Some(password),
            },
        };
        Self {
            server,
            user: user.to_owned(),
            keyring,
            state: tokio::sync::Mutex::new(state),
        }
    }

    /// Returns a valid access token. Refreshes it first when it expires
    /// within `REFRESH_MARGIN`, or signs in with the password when there is
    /// no refresh token.
    pub async fn access_token(&self) -> Result<String> {
        let mut state = self.state.lock().await;
        if let Some(access) = &state.access
            && Instant::now() + REFRESH_MARGIN < state.expires_at
        {
            return Ok(access.clone());
        }
        let tokens = match (&state.refresh, &state.password) {
            (Some(refresh), _) => crate::auth::refresh(&self.server, refresh).await?,
            (None, Some(password)) => {
                crate::auth::sign_in_with_password(&self.server, &self.user, password).await?
            }
            (None, None) => return Err(ClientError::Unauthorized),
        };
        // The old refresh token is spent now, so the new one must be kept
        // before anything else can fail.
        if let Some(account) = &self.keyring {
            account.store_refresh_token(&tokens.refresh_token)?;
        }
        tracing::debug!(expires_in = tokens.expires_in, "obtained an access token");
        state.expires_at = Instant::now() + Duration::from_secs(tokens.expires_in);
        state.access = Some(tokens.access_token.clone());
        state.refresh = Some(tokens.refresh_token);
        Ok(tokens.access_token)
    }

    /// Marks `rejected` as expired after the server refused it, so the next
    /// [`access_token`](Self::access_token) refreshes.
    pub async fn reject(&self, rejected: &str) {
        let mut state = self.state.lock().await;
        if state.access.as_deref() == Some(rejected) {
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
