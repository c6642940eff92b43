//! The error of every chat operation: a stable code for clients and a message
//! for people.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_proto::ErrorCode;
use hearth_proto::chat::{ApiError, ConversationId};

/// A failed chat request. Sent as an `error` frame on the WebSocket and as an
/// [`ApiError`] body over REST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
}

impl ChatError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_member(conversation_id: ConversationId) -> Self {
        Self::new(
            ErrorCode::NotMember,
            format!("you are not a member of conversation {conversation_id}"),
        )
    }

    pub fn conversation_not_found(conversation_id: ConversationId) -> Self {
        Self::new(
            ErrorCode::ConversationNotFound,
            format!("conversation {conversation_id} not found"),
        )
    }

    pub fn user_not_found(user: &str) -> Self {
        Self::new(ErrorCode::UserNotFound, format!("user {user:?} not found"))
    }

    /// Logs a storage failure with its context and returns an `internal` error
    /// whose message does not reveal server details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(ErrorCode::Internal, "internal error; see the server log")
    }

    /// Returns the HTTP status of this error on a REST endpoint.
    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotMember | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::ConversationNotFound
            | ErrorCode::UserNotFound
            | ErrorCode::MessageNotFound
            | ErrorCode::AttachmentNotFound
            | ErrorCode::InvitationNotFound => StatusCode::NOT_FOUND,
            ErrorCode::InvitationExpired | ErrorCode::InvitationRevoked => StatusCode::GONE,
            ErrorCode::AttachmentTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<sqlx::Error> for ChatError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal("chat storage failed", &error)
    }
}

impl From<rusqlite::Error> for ChatError {
    fn from(error: rusqlite::Error) -> Self {
        Self::internal("chat storage failed", &error)
    }
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ApiError {
            code: self.code,
            message: self.message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hearth\", error=\"invalid_token\""),
            );
        }
        response
    }
}
