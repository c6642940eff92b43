//! HTTP routes: the OAuth 2.0 endpoints, the health check, the signalling
//! WebSocket upgrade and the chat REST endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_proto::oauth::{OAuthError, TokenRequest, TokenResponse};

use crate::accounts::Accounts;
use crate::authorize::Authorizer;
use crate::authorize::store::{CodeError, CodeGrant};
use crate::chat::Chat;
use crate::secret::Secret;
use crate::tokens::{IssuedTokens, RefreshError, TokenOwner, Tokens};

pub use hearth_proto::REVOKE_PATH;

/// Largest WebSocket message axum accepts. Frames above
/// `hearth_proto::MAX_FRAME_BYTES` but below this get a `frame_too_large` error
/// and the connection stays open. Larger ones close the connection.
const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub accounts: Accounts,
    pub tokens: Tokens,
    pub chat: Arc<Chat>,
    pub authorizer: Arc<Authorizer>,
    pub sfu: crate::sfu::Sfu,
    pub guests: crate::guest::GuestStore,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(hearth_proto::HEALTH_PATH, get(health))
        .route(hearth_proto::TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(hearth_proto::SIGNAL_PATH, get(signal))
        .merge(crate::chat::rest::routes())
        .merge(crate::authorize::routes())
        .merge(crate::guest::routes())
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

/// An OAuth error response with status 400 unless set otherwise.
struct OAuthFailure {
    status: StatusCode,
    body: OAuthError,
    /// Seconds for the Retry-After header of a 429 response.
    retry_after_secs: Option<u64>,
}

impl OAuthFailure {
    fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: OAuthError {
                error: error.to_owned(),
                error_description: Some(description.into()),
            },
            retry_after_secs: None,
        }
    }

    fn too_many_attempts(locked: crate::rate_limit::Locked) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: OAuthError {
                error: "too_many_attempts".to_owned(),
                error_description: Some(format!(
                    "too many failed sign-in attempts; try again in {} minutes",
                    locked.retry_after_minutes()
                )),
            },
            retry_after_secs: Some(locked.retry_after.as_secs().max(1)),
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
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let mut response = no_store((self.status, Json(self.body)).into_response());
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match grant_tokens(&state, peer, &headers, &body).await {
        Ok((issued, user)) => {
            let response = TokenResponse {
                access_token: issued.access_token.expose().to_owned(),
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token.expose().to_owned(),
                user,
            };
            no_store(Json(response).into_response())
        }
        Err(failure) => failure.into_response(),
    }
}

/// Issued tokens and, when the grant identifies the user, the user name.
type Granted = (IssuedTokens, Option<String>);

async fn grant_tokens(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Granted, OAuthFailure> {
    let pairs = parse_form(headers, body)?;
    match form_value(&pairs, "grant_type") {
        None => {
            return Err(OAuthFailure::new(
                "invalid_request",
                "missing parameter \"grant_type\"",
            ));
        }
        Some("password" | "refresh_token" | "authorization_code") => {}
        Some(other) => {
            return Err(OAuthFailure::new(
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported; use \"authorization_code\", \
                     \"refresh_token\" or \"password\""
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
        } => {
            let issued = password_grant(state, peer, &username, &Secret::new(password)).await?;
            Ok((issued, Some(username)))
        }
        TokenRequest::RefreshToken { refresh_token, .. } => {
            let issued = refresh_grant(state, &Secret::new(refresh_token)).await?;
            Ok((issued, None))
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            client_id,
            code_verifier,
        } => {
            let grant = CodeGrant {
                code: &Secret::new(code),
                client_id: &client_id,
                redirect_uri: &redirect_uri,
                code_verifier: &Secret::new(code_verifier),
            };
            let (issued, user) = authorization_code_grant(state, &grant).await?;
            Ok((issued, Some(user)))
        }
    }
}

async fn authorization_code_grant(
    state: &AppState,
    grant: &CodeGrant<'_>,
) -> Result<(IssuedTokens, String), OAuthFailure> {
    if !hearth_proto::oauth::PUBLIC_CLIENT_IDS.contains(&grant.client_id) {
        let mut failure = OAuthFailure::new(
            "invalid_client",
            format!(
                "client_id {:?} is not a Hearth app; use one of: {}",
                grant.client_id,
                hearth_proto::oauth::PUBLIC_CLIENT_IDS.join(", ")
            ),
        );
        failure.status = StatusCode::UNAUTHORIZED;
        return Err(failure);
    }
    if !crate::authorize::params::is_code_verifier(grant.code_verifier.expose()) {
        return Err(OAuthFailure::new(
            "invalid_request",
            "code_verifier must have 43 to 128 characters from A-Z a-z 0-9 - . _ ~ (RFC 7636)",
        ));
    }
    match state
        .authorizer
        .store
        .redeem_code(&state.tokens, grant)
        .await
    {
        Ok((issued, user)) => {
            tracing::info!(
                user,
                client_id = grant.client_id,
                "issued tokens for an authorization code"
            );
            Ok((issued, user))
        }
        Err(CodeError::Database(error)) => Err(OAuthFailure::server_error(
            "failed to redeem an authorization code",
            &error,
        )),
        Err(error) => {
            tracing::info!(reason = %error, client_id = grant.client_id, "rejected authorization code grant");
            Err(OAuthFailure::new("invalid_grant", error.to_string()))
        }
    }
}

async fn password_grant(
    state: &AppState,
    peer: SocketAddr,
    username: &str,
    password: &Secret,
) -> Result<IssuedTokens, OAuthFailure> {
    let attempts = &state.authorizer.attempts;
    if let Err(locked) = attempts.check(username, peer.ip()) {
        tracing::warn!(
            user = username,
            address = %peer.ip(),
            "rejected password grant: too many failed attempts"
        );
        return Err(OAuthFailure::too_many_attempts(locked));
    }
    let verified = state
        .accounts
        .verify_password(username, password)
        .await
        .map_err(|error| OAuthFailure::server_error("failed to verify password", &error))?;
    let Some(user) = verified else {
        attempts.record_failure(username, peer.ip());
        tracing::info!(
            user = username,
            "rejected password grant: unknown user or wrong password"
        );
        return Err(OAuthFailure::new(
            "invalid_grant",
            "invalid username or password",
        ));
    };
    attempts.record_success(username);
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
    let sfu = state.sfu.clone();
    upgrade
        .max_message_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            crate::signal::serve_connection(socket, chat, accounts, sfu, owner.name, session)
        })
}
