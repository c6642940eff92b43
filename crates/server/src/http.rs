//! HTTP routes: the OAuth 2.0 endpoints, the health check, the signalling
//! WebSocket upgrade and the chat REST endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_proto::oauth::{OAuthError, TokenRequest, TokenResponse};

use crate::accounts::Accounts;
use crate::chat::Chat;
use crate::secret::Secret;
use crate::tokens::{IssuedTokens, RefreshError, TokenOwner, Tokens};

/// Path of the OAuth 2.0 token revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/revoke";

/// Largest WebSocket message axum accepts. Frames above
/// `hearth_proto::MAX_FRAME_BYTES` but below this get a `frame_too_large` error
/// and the connection stays open. Larger ones close the connection.
const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub accounts: Accounts,
    pub tokens: Tokens,
    pub chat: Arc<Chat>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(hearth_proto::HEALTH_PATH, get(health))
        .route(hearth_proto::TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(hearth_proto::SIGNAL_PATH, get(signal))
        .merge(crate::chat::rest::routes())
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

/// An OAuth error response with status 400 unless set otherwise.
struct OAuthFailure {
    status: StatusCode,
    body: OAuthError,
}

impl OAuthFailure {
    fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: OAuthError {
                error: error.to_owned(),
                error_description: Some(description.into()),
            },
        }
    }

    fn server_error(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: OAuthError {
                error: "server_error".to_owned(),
                error_description: Some("internal error; see the server log".to_owned()),
            },
        }
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        no_store((self.status, Json(self.body)).into_response())
    }
}

/// Adds the headers RFC 6749 section 5.1 requires on token responses.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Parses a form body, rejecting a wrong content type and repeated parameters
/// (RFC 6749 section 3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, OAuthFailure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthFailure::new(
            "invalid_request",
            "expected Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|error| {
        OAuthFailure::new("invalid_request", format!("invalid form body: {error}"))
    })?;
    for (index, (key, _)) in pairs.iter().enumerate() {
        if pairs[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(OAuthFailure::new(
                "invalid_request",
                format!("parameter {key:?} is repeated"),
            ));
        }
    }
    Ok(pairs)
}

fn form_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match grant_tokens(&state, &headers, &body).await {
        Ok(issued) => {
            let response = TokenResponse {
                access_token: issued.access_token.expose().to_owned(),
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token.expose().to_owned(),
            };
            no_store(Json(response).into_response())
        }
        Err(failure) => failure.into_response(),
    }
}

async fn grant_tokens(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<IssuedTokens, OAuthFailure> {
    let pairs = parse_form(headers, body)?;
    match form_value(&pairs, "grant_type") {
        None => {
            return Err(OAuthFailure::new(
                "invalid_request",
                "missing parameter \"grant_type\"",
            ));
        }
        Some("password" | "refresh_token") => {}
        Some(other) => {
            return Err(OAuthFailure::new(
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported; use \"password\" or \"refresh_token\""
                ),
            ));
        }
    }
    let request: TokenRequest = serde_urlencoded::from_bytes(body).map_err(|error| {
        OAuthFailure::new("invalid_request", format!("invalid token request: {error}"))
    })?;

    match request {
        TokenRequest::Password {
            username, password, ..
        } => password_grant(state, &username, &Secret::new(password)).await,
        TokenRequest::RefreshToken { refresh_token, .. } => {
            refresh_grant(state, &Secret::new(refresh_token)).await
        }
    }
}

async fn password_grant(
    state: &AppState,
    username: &str,
    password: &Secret,
) -> Result<IssuedTokens, OAuthFailure> {
    let verified = state
        .accounts
        .verify_password(username, password)
        .await
        .map_err(|error| OAuthFailure::server_error("failed to verify password", &error))?;
    let Some(user) = verified else {
        tracing::info!(
            user = username,
            "rejected password grant: unknown user or wrong password"
        );
        return Err(OAuthFailure::new(
            "invalid_grant",
            "invalid username or password",
        ));
    };
    if user.disabled {
        tracing::info!(user = %user.name, "rejected password grant: account disabled");
        return Err(OAuthFailure::new("invalid_grant", "account is disabled"));
    }
    let issued = state
        .tokens
        .issue(user.id)
        .await
        .map_err(|error| OAuthFailure::server_error("failed to issue tokens", &error))?;
    tracing::info!(user = %user.name, "issued tokens for password grant");
    Ok(issued)
}

async fn refresh_grant(
    state: &AppState,
    refresh_token: &Secret,
) -> Result<IssuedTokens, OAuthFailure> {
    match state.tokens.refresh(refresh_token).await {
        Ok(issued) => Ok(issued),
        Err(RefreshError::Database(error)) => Err(OAuthFailure::server_error(
            "failed to refresh tokens",
            &error,
        )),
        Err(error) => {
            tracing::info!(reason = %error, "rejected refresh token grant");
            Err(OAuthFailure::new("invalid_grant", error.to_string()))
        }
    }
}

/// Revokes a token (RFC 7009). Returns 200 for unknown tokens too, so the
/// endpoint does not reveal which tokens exist.
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let pairs = match parse_form(&headers, &body) {
        Ok(pairs) => pairs,
        Err(failure) => return failure.into_response(),
    };
    let Some(token) = form_value(&pairs, "token") else {
        return OAuthFailure::new("invalid_request", "missing parameter \"token\"").into_response();
    };
    match state.tokens.revoke(&Secret::new(token)).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => OAuthFailure::server_error("failed to revoke token", &error).into_response(),
    }
}

/// Builds the 401 response for a missing or invalid bearer token (RFC 6750
/// section 3).
fn unauthorized(description: &str) -> Response {
    let body = OAuthError {
        error: "invalid_token".to_owned(),
        error_description: Some(description.to_owned()),
    };
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hearth\", error=\"invalid_token\""),
    );
    response
}

/// Returns the bearer token of the Authorization header, if it has one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<TokenOwner, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing Authorization header; send \"Authorization: Bearer <access token>\"",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            "invalid Authorization header; expected \"Bearer <access token>\"",
        ));
    };

    match state.tokens.authenticate(&Secret::new(token)).await {
        Ok(Some(owner)) => Ok(owner),
        Ok(None) => Err(unauthorized("access token is invalid, expired or revoked")),
        Err(error) => {
            tracing::error!(%error, "failed to check access token");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
    }
}

async fn signal(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let owner = match authenticate(&state, &headers).await {
        Ok(owner) => owner,
        Err(response) => return response,
    };
    let session = crate::signal::Session {
        tokens: state.tokens.clone(),
        access_token: bearer_token(&headers)
            .map(Secret::new)
            .unwrap_or_else(|| Secret::new("")),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let chat = state.chat.clone();
    let accounts = state.accounts.clone();
    upgrade
        .max_message_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            crate::signal::serve_connection(socket, chat, accounts, owner.name, session)
        })
}
