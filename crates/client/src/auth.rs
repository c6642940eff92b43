//! Sign-in through the server's OAuth 2.0 endpoints: in the browser with the
//! authorization code flow and PKCE (RFC 6749 section 4.1, RFC 7636, RFC 8252),
//! with a password for scripts and tests, token refresh, and sign-out.

use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use hearth_proto::oauth::{OAuthError, TokenRequest, TokenResponse};
use sha2::Digest as _;

use crate::credentials::Account;
use crate::error::{ClientError, Result};
use crate::loopback;
use crate::server::ServerEndpoint;

/// Client id the CLI and tests present to the token endpoint.
pub const CLIENT_ID: &str = hearth_proto::oauth::CLIENT_ID_CLI;

/// Default time [`sign_in_with_browser`] waits for the user to finish.
pub const DEFAULT_BROWSER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Options of [`sign_in_with_browser`].
#[derive(Debug, Clone)]
pub struct BrowserSignIn {
    /// `hearth-desktop` for the desktop app, `hearth-cli` for the CLI.
    pub client_id: String,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
}

impl Default for BrowserSignIn {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.to_owned(),
            timeout: DEFAULT_BROWSER_TIMEOUT,
        }
    }
}

/// Signs in through the server's sign-in page in a browser.
///
/// Listens on an ephemeral port of 127.0.0.1, calls `open_browser` with the
/// authorization URL, and waits up to `options.timeout` for the redirect with
/// the code. A redirect with another `state` gets an error page and is ignored, because
/// any local program could send it. The code is exchanged together with the
/// PKCE verifier, and the browser is told the outcome with a short page in
/// English and Chinese. `open_browser` runs alongside the wait, so it may
/// itself drive the browser steps, as tests do. Use [`open_system_browser`]
/// for the user's browser.
pub async fn sign_in_with_browser<F, Fut>(
    server: &ServerEndpoint,
    options: &BrowserSignIn,
    open_browser: F,
) -> Result<TokenResponse>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|err| ClientError::Loopback(format!("cannot listen on 127.0.0.1: {err}")))?;
    let port = listener
        .local_addr()
        .map_err(|err| ClientError::Loopback(err.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}{}", loopback::CALLBACK_PATH);
    let verifier = random_urlsafe();
    let state = random_urlsafe();
    let url = authorization_url(server, &options.client_id, &redirect_uri, &verifier, &state)?;

    let (mut callbacks, listener_task) = loopback::serve(listener);
    tracing::info!(%redirect_uri, "waiting for the browser sign-in");
    let wait = async {
        let finished = tokio::time::timeout(options.timeout, async {
            while let Some(callback) = callbacks.recv().await {
                if let Some(outcome) =
                    finish_callback(server, options, &redirect_uri, &verifier, &state, callback)
                        .await
                {
                    return outcome;
                }
            }
            Err(ClientError::Loopback(
                "the loopback listener stopped".to_owned(),
            ))
        })
        .await;
        finished.unwrap_or_else(|_| {
            Err(ClientError::Timeout {
                what: "the browser sign-in to finish".to_owned(),
                seconds: options.timeout.as_secs(),
            })
        })
    };
    let ((), outcome) = tokio::join!(open_browser(url), wait);
    listener_task.abort();
    outcome
}

/// Handles one redirect to the loopback address. Returns `None` for a redirect
/// that belongs to another sign-in, so the wait goes on.
async fn finish_callback(
    server: &ServerEndpoint,
    options: &BrowserSignIn,
    redirect_uri: &str,
    verifier: &str,
    state: &str,
    callback: loopback::Callback,
) -> Option<Result<TokenResponse>> {
    let state_matches = callback
        .param("state")
        .is_some_and(|received| constant_time_eq(received.as_bytes(), state.as_bytes()));
    if !state_matches {
        tracing::warn!("ignored a loopback request with a missing or foreign state");
        callback
            .respond("400 Bad Request", &loopback::foreign_request_page())
            .await;
        return None;
    }

    if let Some(error) = callback.param("error") {
        let description = callback
            .param("error_description")
            .unwrap_or(error)
            .to_owned();
        let error = error.to_owned();
        callback
            .respond("200 OK", &loopback::failure_page(&description))
            .await;
        return Some(Err(ClientError::SignInRejected { error, description }));
    }
    let Some(code) = callback.param("code").map(str::to_owned) else {
        callback
            .respond(
                "400 Bad Request",
                &loopback::failure_page("the redirect has no code"),
            )
            .await;
        return Some(Err(ClientError::Protocol(
            "the authorization server redirected without a code or an error".to_owned(),
        )));
    };

    let request = TokenRequest::AuthorizationCode {
        code,
        redirect_uri: redirect_uri.to_owned(),
        client_id: options.client_id.clone(),
        code_verifier: verifier.to_owned(),
    };
    let outcome = request_token(server, &request).await;
    match &outcome {
        Ok(tokens) => {
            callback
                .respond("200 OK", &loopback::success_page(tokens.user.as_deref()))
                .await;
        }
        Err(err) => {
            callback
                .respond("200 OK", &loopback::failure_page(&err.to_string()))
                .await;
        }
    }
    Some(outcome)
}

fn authorization_url(
    server: &ServerEndpoint,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    state: &str,
) -> Result<String> {
    let mut url =
        reqwest::Url::parse(&server.url(hearth_proto::AUTHORIZE_PATH)).map_err(|err| {
            ClientError::InvalidServerUrl {
                url: server.base_url().to_owned(),
                detail: err.to_string(),
            }
        })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &s256_challenge(verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state);
    Ok(url.into())
}

/// Opens `url` in the user's default browser. Returns false when no browser
/// could be started, for example on a Linux machine without a display, so the
/// caller can show the URL instead.
pub fn open_system_browser(url: &str) -> bool {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let has_display = ["DISPLAY", "WAYLAND_DISPLAY", "BROWSER"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        // Without a display, webbrowser would fall back to a text browser in
        // this terminal.
        if !has_display {
            return false;
        }
    }
    match webbrowser::open(url) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "failed to open the system browser");
            false
        }
    }
}

/// Signs out: revokes the refresh token's whole token family at the server
/// (RFC 7009) and deletes it from the keyring.
///
/// The keyring entry is deleted even when the server cannot be reached, and
/// the error then reports that. Without a stored token this only succeeds.
pub async fn sign_out(server: &ServerEndpoint, account: &Account) -> Result<()> {
    let Some(refresh_token) = account.load_refresh_token()? else {
        return Ok(());
    };
    let revoked = revoke(server, &refresh_token).await;
    account.forget()?;
    revoked.map_err(|err| ClientError::RevokeFailed {
        detail: err.to_string(),
    })
}

/// Revokes a refresh token, with the access tokens of its family, or an
/// access token (RFC 7009).
pub async fn revoke(server: &ServerEndpoint, token: &str) -> Result<()> {
    let url = server.url(hearth_proto::REVOKE_PATH);
    let response = server
        .http_client()?
        .post(&url)
        .form(&[("token", token)])
        .send()
        .await
        .map_err(|err| ClientError::Unreachable {
            url: url.clone(),
            detail: error_chain(&err),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(ClientError::Protocol(format!(
        "the revocation endpoint returned HTTP {status}"
    )))
}

/// Returns 32 random bytes in unpadded base64url: 43 characters, usable as a
/// PKCE verifier (RFC 7636 section 4.1) and as `state`.
fn random_urlsafe() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns the S256 code challenge of `verifier` (RFC 7636 section 4.2).
fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Signs in with a user name and password (the OAuth 2.0 password grant).
pub async fn sign_in_with_password(
    server: &ServerEndpoint,
    username: &str,
    password: &str,
) -> Result<TokenResponse> {
    request_token(
        server,
        &TokenRequest::Password {
            username: username.to_owned(),
            password: password.to_owned(),
            client_id: Some(CLIENT_ID.to_owned()),
        },
    )
    .await
}

/// Exchanges a refresh token for new tokens. The old refresh token is spent.
pub async fn refresh(server: &ServerEndpoint, refresh_token: &str) -> Result<TokenResponse> {
    request_token(
        server,
        &TokenRequest::RefreshToken {
            refresh_token: refresh_token.to_owned(),
            client_id: Some(CLIENT_ID.to_owned()),
        },
    )
    .await
}

async fn request_token(server: &ServerEndpoint, request: &TokenRequest) -> Result<TokenResponse> {
    let url = server.url(hearth_proto::TOKEN_PATH);
    let response = server
        .http_client()?
        .post(&url)
        .form(request)
        .send()
        .await
        .map_err(|err| ClientError::Unreachable {
            url: url.clone(),
            detail: error_chain(&err),
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| ClientError::Unreachable {
            url: url.clone(),
            detail: error_chain(&err),
        })?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|err| ClientError::Protocol(format!("invalid token response: {err}")));
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(error) => Err(ClientError::SignInRejected {
            description: error
                .error_description
                .unwrap_or_else(|| error.error.clone()),
            error: error.error,
        }),
        Err(_) => Err(ClientError::Protocol(format!(
            "token endpoint returned HTTP {status}"
        ))),
    }
}

/// Describes a transport error with its sources, since reqwest and
/// tungstenite hide the cause (for example a certificate error) in the chain.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = crate::error::join_sources(err);
    if text.contains("UnknownIssuer") {
        text.push_str(
            "; the server's certificate is not trusted: trust its CA certificate \
             (a server with a self-signed certificate keeps it in DATA_DIR/tls/cert.pem; \
             the hearth CLI takes it with --ca-cert)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_example_challenge() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_values_are_verifiers() {
        let value = random_urlsafe();
        assert_eq!(value.len(), 43);
        assert_ne!(value, random_urlsafe());
    }
}
