//! The OAuth 2.0 authorization endpoint for native apps (RFC 6749 section 4.1,
//! RFC 7636 PKCE with S256, RFC 8252 loopback redirects).
//!
//! `GET /oauth/authorize` validates the request, stores it and shows the sign-in
//! page. The page posts back to `POST /oauth/authorize` with a password, a
//! request to sign in through the organisation's OpenID Connect provider, or a
//! cancel. Every post must come from the browser that opened the page (a
//! cookie) and carry the page's CSRF token. A successful sign-in redirects to
//! the app's loopback address with a single-use code, which the app exchanges
//! at the token endpoint together with its PKCE code verifier.

mod federated;
pub mod page;
pub mod params;
pub mod store;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;
use crate::oidc::Federation;
use crate::rate_limit::PasswordAttempts;
use crate::secret::Secret;
use crate::tokens::random_token;
use page::{FormNotice, Lang, SignInForm};
use params::{AuthorizationRequest, RequestError};
use store::{AuthorizationStore, PendingRequest, constant_time_eq};

/// Cookie that binds sign-in requests to the browser that opened them. The
/// `__Host-` prefix makes browsers accept it only from this origin over HTTPS.
pub const BROWSER_COOKIE: &str = "__Host-hearth-browser";

/// Largest form body the sign-in page posts, in bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// State of the authorization endpoint.
pub struct Authorizer {
    pub store: AuthorizationStore,
    pub attempts: PasswordAttempts,
    pub federation: Option<Federation>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            hearth_proto::AUTHORIZE_PATH,
            get(authorize_page).post(authorize_form),
        )
        .route(
            hearth_proto::OIDC_CALLBACK_PATH,
            get(federated::provider_callback),
        )
}

/// `GET /oauth/authorize`: validates the request and shows the sign-in page.
async fn authorize_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let pairs = match query_pairs(&uri) {
        Ok(pairs) => pairs,
        Err(detail) => {
            let error = params::PageError::InvalidQuery(detail);
            return invalid_request_page(Lang::choose(None, &headers), &error);
        }
    };
    let explicit_lang = pair_value(&pairs, "lang").and_then(Lang::from_code);
    let lang = explicit_lang.unwrap_or_else(|| Lang::choose(None, &headers));
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(key, _)| key != "lang").collect();

    let request = match params::parse(&pairs) {
        Ok(request) => request,
        Err(RequestError::Page(error)) => return invalid_request_page(lang, &error),
        Err(RequestError::Redirect(error)) => {
            tracing::info!(
                error = error.error,
                description = %error.description,
                "rejected authorization request"
            );
            let request = AuthorizationRequest {
                client_id: String::new(),
                redirect_uri: error.redirect_uri,
                code_challenge: String::new(),
                state: error.state,
            };
            return redirect_to_client(
                &request,
                &[
                    ("error", error.error),
                    ("error_description", &error.description),
                ],
            );
        }
    };

    let (browser, new_browser) = match page::cookie(&headers, BROWSER_COOKIE) {
        Some(value) if is_token_shaped(&value) => (Secret::new(value), false),
        _ => (Secret::new(random_token()), true),
    };
    let pending = match state
        .authorizer
        .store
        .create_request(&browser, &request)
        .await
    {
        Ok(pending) => pending,
        Err(error) => return internal_error("failed to store the authorization request", &error),
    };
    let authorizer = &state.authorizer;
    let mut response = page::sign_in(&SignInForm {
        lang,
        request_id: &pending.id,
        csrf_token: pending.csrf_token.expose(),
        request: &pending.request,
        username: "",
        notice: None,
        federation_label: authorizer.federation.as_ref().map(Federation::button_label),
    });
    if new_browser {
        set_cookie(
            &mut response,
            &format!(
                "{BROWSER_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax",
                browser.expose()
            ),
        );
    }
    if let Some(lang) = explicit_lang {
        set_cookie(
            &mut response,
            &format!(
                "{}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000",
                page::LANG_COOKIE,
                lang.code()
            ),
        );
    }
    response
}

/// `POST /oauth/authorize`: a form of the sign-in page.
async fn authorize_form(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let fallback_lang = Lang::choose(None, &headers);
    let form = match form_pairs(&headers, &body) {
        Ok(form) => form,
        Err(detail) => {
            let error = params::PageError::InvalidQuery(detail);
            return invalid_request_page(fallback_lang, &error);
        }
    };
    let lang = pair_value(&form, "lang")
        .and_then(Lang::from_code)
        .unwrap_or(fallback_lang);

    let Some(browser) = page::cookie(&headers, BROWSER_COOKIE).map(Secret::new) else {
        tracing::info!("rejected sign-in form: no browser cookie");
        return page::expired(lang);
    };
    let request_id = pair_value(&form, "request").unwrap_or_default();
    let pending = match state
        .authorizer
        .store
        .find_request(request_id, &browser)
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            tracing::info!("rejected sign-in form: unknown, expired or foreign request");
            return page::expired(lang);
        }
        Err(error) => return internal_error("failed to load the authorization request", &error),
    };
    let csrf = pair_value(&form, "csrf").unwrap_or_default();
    if !constant_time_eq(csrf.as_bytes(), pending.csrf_token.expose().as_bytes()) {
        tracing::warn!(client_id = %pending.request.client_id, "rejected sign-in form: CSRF token mismatch");
        return page::expired(lang);
    }

    match pair_value(&form, "action") {
        Some("password") => {
            let attempt = PasswordAttempt {
                username: pair_value(&form, "username").unwrap_or_default(),
                password: Secret::new(pair_value(&form, "password").unwrap_or_default()),
                address: peer,
            };
            sign_in_with_password(&state, lang, &pending, attempt).await
        }
        Some("oidc") => federated::start(&state, lang, &pending, &browser, &headers, &uri).await,
        Some("cancel") => {
            if let Err(error) = state.authorizer.store.delete_request(&pending.id).await {
                return internal_error("failed to delete the authorization request", &error);
            }
            tracing::info!(client_id = %pending.request.client_id, "sign-in cancelled");
            redirect_to_client(
                &pending.request,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user cancelled the sign-in"),
                ],
            )
        }
        _ => invalid_request_page(lang, &params::PageError::MissingParameter("action")),
    }
}

struct PasswordAttempt<'a> {
    username: &'a str,
    password: Secret,
    address: SocketAddr,
}

async fn sign_in_with_password(
    state: &AppState,
    lang: Lang,
    pending: &PendingRequest,
    attempt: PasswordAttempt<'_>,
) -> Response {
    let authorizer = &state.authorizer;
    let show_form = |status: StatusCode, notice: FormNotice| {
        let mut response = page::sign_in(&SignInForm {
            lang,
            request_id: &pending.id,
            csrf_token: pending.csrf_token.expose(),
            request: &pending.request,
            username: attempt.username,
            notice: Some(notice),
            federation_label: authorizer.federation.as_ref().map(Federation::button_label),
        });
        *response.status_mut() = status;
        response
    };

    if let Err(locked) = authorizer
        .attempts
        .check(attempt.username, attempt.address.ip())
    {
        tracing::warn!(
            user = attempt.username,
            address = %attempt.address.ip(),
            "rejected sign-in: too many failed attempts"
        );
        return show_form(
            StatusCode::TOO_MANY_REQUESTS,
            FormNotice::TooManyAttempts {
                minutes: locked.retry_after_minutes(),
            },
        );
    }
    let verified = match state
        .accounts
        .verify_password(attempt.username, &attempt.password)
        .await
    {
        Ok(verified) => verified,
        Err(error) => return internal_error("failed to verify password", &error),
    };
    let Some(user) = verified else {
        authorizer
            .attempts
            .record_failure(attempt.username, attempt.address.ip());
        tracing::info!(
            user = attempt.username,
            "rejected sign-in: unknown user or wrong password"
        );
        return show_form(StatusCode::UNAUTHORIZED, FormNotice::WrongPassword);
    };
    authorizer.attempts.record_success(attempt.username);
    if user.disabled {
        tracing::info!(user = %user.name, "rejected sign-in: account disabled");
        return show_form(StatusCode::FORBIDDEN, FormNotice::Disabled);
    }
    issue_code(state, lang, pending, user.id, &user.name).await
}

/// Ends a request with a signed-in user: issues the code and redirects to the app.
async fn issue_code(
    state: &AppState,
    lang: Lang,
    pending: &PendingRequest,
    user_id: i64,
    user_name: &str,
) -> Response {
    match state
        .authorizer
        .store
        .complete_request(&pending.id, user_id)
        .await
    {
        Ok(Some((request, code))) => {
            tracing::info!(user = user_name, client_id = %request.client_id, "issued an authorization code");
            redirect_to_client(&request, &[("code", code.expose())])
        }
        Ok(None) => page::expired(lang),
        Err(error) => internal_error("failed to issue an authorization code", &error),
    }
}

/// Returns the app's redirect URI with `params` and the request's `state`
/// added to its query.
fn client_redirect_url(request: &AuthorizationRequest, params: &[(&str, &str)]) -> String {
    // Checked by `params::check_redirect_uri` before the request was stored.
    let Ok(mut url) = url::Url::parse(&request.redirect_uri) else {
        return request.redirect_uri.clone();
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
    }
    url.into()
}

/// Redirects the browser to the app (303, so the browser follows with GET).
fn redirect_to_client(request: &AuthorizationRequest, params: &[(&str, &str)]) -> Response {
    see_other(&client_redirect_url(request, params))
}

fn see_other(location: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return internal_error(
            "redirect target is not a valid header value",
            &"invalid URL",
        );
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn invalid_request_page(lang: Lang, error: &params::PageError) -> Response {
    tracing::info!(error = error.code(), description = %error.describe_en(), "rejected authorization request");
    page::invalid_request(
        lang,
        error.code(),
        &error.describe_en(),
        &error.describe_zh(),
    )
}

fn internal_error(context: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{context}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log",
    )
        .into_response()
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Checks that a cookie value looks like [`random_token`] output, so arbitrary
/// cookie text is never stored or compared.
fn is_token_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str(uri.query().unwrap_or_default()).map_err(|error| error.to_string())
}

fn form_pairs(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err("expected Content-Type: application/x-www-form-urlencoded".to_owned());
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(format!("the form is larger than {MAX_FORM_BYTES} bytes"));
    }
    serde_urlencoded::from_bytes(body).map_err(|error| error.to_string())
}

fn pair_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}
