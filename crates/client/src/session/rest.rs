//! The REST endpoints under `/api/v1`: conversations, users, search and
//! attachments. Each request carries the session's access token and is
//! retried once with a refreshed token when the server responds with 401.

use hearth_proto::chat::{
    ATTACHMENTS_PATH, ApiError, AttachmentId, CONVERSATIONS_PATH, ConversationId,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::tokens::TokenSource;
use crate::auth::error_chain;
use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;

pub(crate) struct Rest {
    server: ServerEndpoint,
    http: reqwest::Client,
}

/// Returns the path of one conversation, or of something below it with `tail`.
pub(crate) fn conversation_path(id: ConversationId, tail: &str) -> String {
    format!("{CONVERSATIONS_PATH}/{id}{tail}")
}

pub(crate) fn attachment_path(id: AttachmentId) -> String {
    format!("{ATTACHMENTS_PATH}/{id}")
}

/// Percent-encodes one path segment, such as a user name.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Rest {
    pub fn new(server: ServerEndpoint) -> Result<Self> {
        let http = server.http_client()?;
        Ok(Self { server, http })
    }

    pub fn server(&self) -> &ServerEndpoint {
        &self.server
    }

    /// Sends a request built by `build` with the bearer token and returns a
    /// successful response. An error status becomes [`ClientError::Server`]
    /// with the code of the [`ApiError`] body.
    pub async fn send(
        &self,
        tokens: &TokenSource,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let url = self.server.url(path);
        let mut retried = false;
        loop {
            let token = tokens.access_token().await?;
            let request = build(self.http.request(method.clone(), &url)).bearer_auth(&token);
            let response = request
                .send()
                .await
                .map_err(|err| ClientError::Unreachable {
                    url: url.clone(),
                    detail: error_chain(&err),
                })?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !retried {
                tokens.reject(&token).await;
                retried = true;
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            return Err(error_from(method, path, status, response).await);
        }
    }

    /// Sends a request and parses its JSON body.
    pub async fn json<T: DeserializeOwned>(
        &self,
        tokens: &TokenSource,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T> {
        let response = self.send(tokens, method.clone(), path, build).await?;
        let body = response
            .bytes()
            .await
            .map_err(|err| ClientError::Unreachable {
                url: self.server.url(path),
                detail: error_chain(&err),
            })?;
        serde_json::from_slice(&body).map_err(|err| {
            ClientError::Protocol(format!("invalid response body from {method} {path}: {err}"))
        })
    }

    /// Sends a request and parses its body as JSON when it has one.
    pub async fn optional_json<T: DeserializeOwned>(
        &self,
        tokens: &TokenSource,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Option<T>> {
        let response = self.send(tokens, method, path, build).await?;
        let body = response
            .bytes()
            .await
            .map_err(|err| ClientError::Unreachable {
                url: self.server.url(path),
                detail: error_chain(&err),
            })?;
        Ok(serde_json::from_slice(&body).ok())
    }
}

async fn error_from(
    method: Method,
    path: &str,
    status: StatusCode,
    response: Response,
) -> ClientError {
    if status == StatusCode::UNAUTHORIZED {
        return ClientError::Unauthorized;
    }
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(error) => ClientError::Server {
            code: error.code,
            message: error.message,
        },
        Err(_) => ClientError::Protocol(format!("{method} {path} returned HTTP {status}")),
    }
}

/// Guesses a MIME type from a file name's extension.
pub(crate) fn content_type_for(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segment_escapes_reserved_bytes() {
        assert_eq!(path_segment("bob"), "bob");
        assert_eq!(path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(path_segment("张三"), "%E5%BC%A0%E4%B8%89");
    }

    #[test]
    fn content_type_from_extension() {
        assert_eq!(content_type_for("Report.PDF"), "application/pdf");
        assert_eq!(content_type_for("notes"), "application/octet-stream");
    }
}
