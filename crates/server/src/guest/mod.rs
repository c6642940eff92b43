//! Guest access to a conversation's group call from a browser: invitations,
//! the guest page and guest credentials.
//!
//! A member creates an invitation (`POST
//! /api/v1/conversations/{id}/guest-invitations`) and shares the page address
//! it returns. The page, embedded in this binary, requests a display name and
//! exchanges the address's secret for a guest credential. With it the page
//! opens the guest WebSocket ([`crate::signal::guest`]), which carries only
//! the room frames of that one conversation.

mod page;
pub mod store;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hearth_proto::ErrorCode;
use hearth_proto::chat::ConversationId;
use hearth_proto::guest::{
    CreateGuestInvitation, DEFAULT_INVITATION_TTL_SECS, GuestCredentialRequest, GuestInvitationId,
    MAX_DISPLAY_NAME_CHARS, MAX_INVITATION_TTL_SECS,
};

use crate::chat::ChatError;
use crate::http::AppState;
use crate::secret::Secret;
pub use store::{GuestError, GuestSession, GuestStore};

/// Shortest lifetime an invitation may be created with, in seconds.
const MIN_INVITATION_TTL_SECS: u64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/conversations/{id}/guest-invitations",
            post(create_invitation),
        )
        .route("/api/v1/guest-invitations/{id}", delete(revoke_invitation))
        .route(
            hearth_proto::guest::GUEST_CREDENTIALS_PATH,
            post(issue_credential),
        )
        .route(
            hearth_proto::guest::GUEST_SIGNAL_PATH,
            get(crate::signal::guest::upgrade),
        )
        .merge(page::routes())
}

impl From<GuestError> for ChatError {
    fn from(error: GuestError) -> Self {
        let code = match &error {
            GuestError::UnknownInvitation => ErrorCode::InvitationNotFound,
            GuestError::Expired { .. } => ErrorCode::InvitationExpired,
            GuestError::Revoked { .. } => ErrorCode::InvitationRevoked,
            GuestError::Database(error) => {
                return ChatError::internal("guest storage failed", error);
            }
        };
        ChatError::new(code, error.to_string())
    }
}

async fn create_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<ConversationId>, PathRejection>,
    body: Option<Json<CreateGuestInvitation>>,
) -> Result<Response, ChatError> {
    let user = crate::chat::rest::caller(&state, &headers).await?;
    let Path(conversation_id) = id.map_err(|error| {
        ChatError::invalid(format!("invalid conversation id in the path: {error}"))
    })?;
    let ttl_secs = body
        .and_then(|Json(body)| body.ttl_secs)
        .unwrap_or(DEFAULT_INVITATION_TTL_SECS);
    if !(MIN_INVITATION_TTL_SECS..=MAX_INVITATION_TTL_SECS).contains(&ttl_secs) {
        return Err(ChatError::invalid(format!(
            "ttl_secs {ttl_secs} is out of range; use {MIN_INVITATION_TTL_SECS} to \
             {MAX_INVITATION_TTL_SECS} seconds"
        )));
    }
    state.chat.room_members(conversation_id, &user).await?;
    let invitation = state
        .guests
        .create(conversation_id, &user, ttl_secs)
        .await?;
    tracing::info!(
        invitation = %invitation.id,
        conversation = %conversation_id,
        user,
        ttl_secs,
        "created a guest invitation"
    );
    Ok((StatusCode::CREATED, Json(invitation)).into_response())
}

async fn revoke_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<GuestInvitationId>, PathRejection>,
) -> Result<StatusCode, ChatError> {
    let user = crate::chat::rest::caller(&state, &headers).await?;
    let Path(id) = id.map_err(|error| {
        ChatError::invalid(format!("invalid invitation id in the path: {error}"))
    })?;
    let not_found = || {
        ChatError::new(
            ErrorCode::InvitationNotFound,
            format!(
                "guest invitation {id} not found; use the id that creating the invitation returned"
            ),
        )
    };
    let Some(invitation) = state.guests.invitation(id).await? else {
        return Err(not_found());
    };
    // A non-member learns nothing about the invitation, not even that it exists.
    match state
        .chat
        .room_members(invitation.conversation_id, &user)
        .await
    {
        Ok(_) => {}
        Err(error) if error.code == ErrorCode::Internal => return Err(error),
        Err(_) => return Err(not_found()),
    }
    state.guests.revoke(id).await?;
    tracing::info!(invitation = %id, user, "revoked a guest invitation");
    Ok(StatusCode::NO_CONTENT)
}

async fn issue_credential(
    State(state): State<AppState>,
    body: Result<Json<GuestCredentialRequest>, JsonRejection>,
) -> Result<Response, ChatError> {
    let Json(request) = body.map_err(|error| {
        ChatError::invalid(format!(
            "invalid credential request: {error}; send JSON with \"invitation\" and \"display_name\""
        ))
    })?;
    let display_name = validate_display_name(&request.display_name)?;
    let invitation = Secret::new(request.invitation);
    let credential = match state
        .guests
        .issue_credential(&invitation, &display_name)
        .await
    {
        Ok(credential) => credential,
        Err(error) => {
            tracing::info!(reason = %error, "rejected a guest credential request");
            return Err(error.into());
        }
    };
    tracing::info!(
        conversation = %credential.conversation_id,
        guest = credential.user,
        "issued a guest credential"
    );
    let mut response = Json(credential).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// Trims a display name and checks it: 1 to 64 characters, no control
/// characters.
fn validate_display_name(name: &str) -> Result<String, ChatError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
        return Err(ChatError::invalid(format!(
            "display_name has {chars} characters; use 1 to {MAX_DISPLAY_NAME_CHARS}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::invalid(
            "display_name contains a control character; use printable characters only",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_is_trimmed_and_limited() {
        assert_eq!(validate_display_name("  Lin  ").unwrap(), "Lin");
        assert_eq!(validate_display_name("访客 王").unwrap(), "访客 王");
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name(&"x".repeat(65)).is_err());
        assert!(validate_display_name("a\u{7}b").is_err());
    }
}
