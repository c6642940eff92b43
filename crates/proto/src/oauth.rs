//! OAuth 2.0 token endpoint bodies (RFC 6749 sections 4.1, 4.3, 5.1, 5.2 and 6)
//! and the public clients of the authorization endpoint.

use serde::{Deserialize, Serialize};

/// Client id of the Hearth desktop app.
pub const CLIENT_ID_DESKTOP: &str = "hearth-desktop";
/// Client id of the `hearth` command-line client.
pub const CLIENT_ID_CLI: &str = "hearth-cli";
/// The public clients (RFC 6749 section 2.1) the authorization endpoint accepts.
/// They have no client secret, so the authorization code grant requires PKCE.
pub const PUBLIC_CLIENT_IDS: &[&str] = &[CLIENT_ID_DESKTOP, CLIENT_ID_CLI];

/// Form body of a token request, sent as `application/x-www-form-urlencoded`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "grant_type", rename_all = "snake_case")]
pub enum TokenRequest {
    /// Resource owner password credentials grant, used by scripts and tests.
    Password {
        username: String,
        password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Exchanges a refresh token for a new access token and a new refresh token.
    RefreshToken {
        refresh_token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Exchanges an authorization code from `/oauth/authorize` for tokens. The
    /// `code_verifier` proves that the sender started the request (PKCE, RFC 7636).
    AuthorizationCode {
        code: String,
        redirect_uri: String,
        client_id: String,
        code_verifier: String,
    },
}

/// Successful token response (RFC 6749 section 5.1).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    /// The Hearth user name the tokens belong to. A Hearth extension of RFC 6749
    /// section 5.1: a client that signed in through the browser learns the name here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("user", &self.user)
            .finish()
    }
}

/// Error response (RFC 6749 section 5.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthError {
    /// One of the RFC 6749 codes: `invalid_request`, `invalid_client`,
    /// `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`; or Hearth's `too_many_attempts` (HTTP 429) after
    /// repeated wrong passwords.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
