//! The guest page: HTML, script and style embedded in the binary, so that it
//! works without internet access and without a CDN.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_SCRIPT: &str = include_str!("guest.js");

/// Path of the page's script.
pub const SCRIPT_PATH: &str = "/guest-assets/guest.js";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guest/{secret}", get(page))
        .route(SCRIPT_PATH, get(script))
}

/// Serves the page for any secret: the page's script checks the secret when it
/// requests a credential and shows the server's error.
async fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE_HTML,
    )
        .into_response();
    let headers = response.headers_mut();
    // The secret is in the address: no caching, and no Referer that carries it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             media-src 'self' blob: mediastream:; connect-src 'self'; img-src 'self' data:",
        ),
    );
    response
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE_SCRIPT,
    )
        .into_response()
}
