//! Sign-in through the server's OAuth 2.0 token endpoint.

use hearth_proto::oauth::{OAuthError, TokenRequest, TokenResponse};

use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;

/// Client id the CLI and tests present to the token endpoint.
pub const CLIENT_ID: &str = "hearth-cli";

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
