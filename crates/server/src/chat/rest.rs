//! REST endpoints of chat under `/api/v1`. Every endpoint takes the access
//! token as a bearer token and returns errors as an [`ApiError`] body.
//!
//! [`ApiError`]: hearth_proto::chat::ApiError

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hearth_proto::ErrorCode;
use hearth_proto::chat::{
    self, AddMember, Conversation, ConversationId, CreateConversation, RenameConversation,
    SearchHit, UserEntry,
};

use super::attachments::{Upload, content_disposition};
use super::error::ChatError;
use super::store;
use super::writer::Change;
use crate::http::AppState;
use crate::secret::Secret;

/// Results of a search when the request gives no limit.
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
/// Maximum number of results of one search.
pub const MAX_SEARCH_LIMIT: u32 = 100;
/// Maximum length of a search query in bytes.
pub const MAX_QUERY_BYTES: usize = 512;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            chat::CONVERSATIONS_PATH,
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/api/v1/conversations/{id}",
            get(get_conversation).patch(rename_conversation),
        )
        .route("/api/v1/conversations/{id}/members", post(add_member))
        .route(
            "/api/v1/conversations/{id}/members/{user}",
            delete(remove_member),
        )
        .route(
            "/api/v1/conversations/{id}/attachments",
            post(upload_attachment),
        )
        .route("/api/v1/attachments/{id}", get(download_attachment))
        .route(chat::USERS_PATH, get(list_users))
        .route(chat::SEARCH_PATH, get(search))
}

/// Returns the user name behind the request's bearer token.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<String, ChatError> {
    let unauthorized = |message: &str| ChatError::new(ErrorCode::Unauthorized, message);
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
        Ok(Some(owner)) => Ok(owner.name),
        Ok(None) => Err(unauthorized(
            "access token is invalid, expired or revoked; refresh it or sign in again",
        )),
        Err(error) => Err(ChatError::internal("failed to check access token", &error)),
    }
}

fn parse_conversation_id(text: &str) -> Result<ConversationId, ChatError> {
    ConversationId::parse_str(text).map_err(|_| {
        ChatError::invalid(format!(
            "invalid conversation id {text:?}: expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8"
        ))
    })
}

fn path_error(rejection: PathRejection) -> ChatError {
    ChatError::invalid(format!("invalid path: {}", rejection.body_text()))
}

fn body_error(rejection: JsonRejection) -> ChatError {
    ChatError::invalid(format!("invalid request body: {}", rejection.body_text()))
}

/// Returns the conversation with `user`'s read position and unread count,
/// after checking membership.
async fn view(state: &AppState, id: ConversationId, user: &str) -> Result<Conversation, ChatError> {
    let mut conn = state.chat.pool.acquire().await?;
    store::require_member(&mut conn, id, user).await?;
    store::conversation_view(&mut conn, id, user)
        .await?
        .ok_or_else(|| ChatError::conversation_not_found(id))
}

async fn list_conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Conversation>>, ChatError> {
    let user = caller(&state, &headers).await?;
    let mut conn = state.chat.pool.acquire().await?;
    Ok(Json(store::conversations_of(&mut conn, &user).await?))
}

async fn create_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateConversation>, JsonRejection>,
) -> Result<Response, ChatError> {
    let user = caller(&state, &headers).await?;
    let Json(request) = body.map_err(body_error)?;
    let committed = state
        .chat
        .apply(Change::Create {
            user: user.clone(),
            request,
        })
        .await?;
    let conversation = view(&state, committed.conversation_id, &user).await?;
    let status = if committed.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(conversation)).into_response())
}

async fn get_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Conversation>, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path(id) = id.map_err(path_error)?;
    let id = parse_conversation_id(&id)?;
    Ok(Json(view(&state, id, &user).await?))
}

async fn rename_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RenameConversation>, JsonRejection>,
) -> Result<Json<Conversation>, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path(id) = id.map_err(path_error)?;
    let id = parse_conversation_id(&id)?;
    let Json(request) = body.map_err(body_error)?;
    let change = Change::Rename {
        user: user.clone(),
        conversation_id: id,
        name: request.name,
    };
    state.chat.apply(change).await?;
    Ok(Json(view(&state, id, &user).await?))
}

async fn add_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<AddMember>, JsonRejection>,
) -> Result<Json<Conversation>, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path(id) = id.map_err(path_error)?;
    let id = parse_conversation_id(&id)?;
    let Json(request) = body.map_err(body_error)?;
    let change = Change::AddMember {
        user: user.clone(),
        conversation_id: id,
        member: request.user,
        role: request.role,
    };
    state.chat.apply(change).await?;
    Ok(Json(view(&state, id, &user).await?))
}

async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path((id, member)) = params.map_err(path_error)?;
    let id = parse_conversation_id(&id)?;
    let change = Change::RemoveMember {
        user,
        conversation_id: id,
        member,
    };
    state.chat.apply(change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Returns the value of one query parameter, or `None` when it is absent.
/// Fails when the query string cannot be decoded or repeats the parameter.
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ChatError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|error| ChatError::invalid(format!("invalid query string: {error}")))?;
    let mut values = pairs.into_iter().filter(|(key, _)| key == name);
    let value = values.next().map(|(_, value)| value);
    if values.next().is_some() {
        return Err(ChatError::invalid(format!(
            "query parameter {name:?} is repeated"
        )));
    }
    Ok(value)
}

async fn upload_attachment(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path(id) = id.map_err(path_error)?;
    let id = parse_conversation_id(&id)?;
    {
        let mut conn = state.chat.pool.acquire().await?;
        store::require_member(&mut conn, id, &user).await?;
    }
    let name = query_param(query.as_deref(), "name")?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ChatError::invalid(
                "invalid Content-Type header: expected a media type such as image/png",
            )
        })?),
        None => None,
    };
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let upload = Upload::new(name.as_deref(), content_type, content_length)?;
    let attachment = state
        .chat
        .attachments
        .save(&state.chat.pool, id, &user, upload, body)
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)).into_response())
}

async fn download_attachment(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ChatError> {
    let user = caller(&state, &headers).await?;
    let Path(id) = id.map_err(path_error)?;
    let id = chat::AttachmentId::parse_str(&id).map_err(|_| {
        ChatError::invalid(format!("invalid attachment id {id:?}: expected a UUID"))
    })?;
    let stored = state.chat.attachments.find(&state.chat.pool, id).await?;
    {
        let mut conn = state.chat.pool.acquire().await?;
        store::require_member(&mut conn, stored.conversation_id, &user).await?;
    }
    let file = match tokio::fs::File::open(&stored.path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(attachment_id = %id, path = %stored.path.display(), "attachment file is missing");
            return Err(ChatError::new(
                ErrorCode::AttachmentNotFound,
                format!("the file of attachment {id} is missing on the server"),
            ));
        }
        Err(error) => return Err(ChatError::internal("failed to open an attachment", &error)),
    };

    let attachment = stored.attachment;
    let content_type = HeaderValue::from_str(&attachment.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&content_disposition(&attachment.name))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, content_type);
    response_headers.insert(header::CONTENT_LENGTH, attachment.size_bytes.into());
    response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<UserEntry>>, ChatError> {
    caller(&state, &headers).await?;
    let users = state
        .accounts
        .list_users()
        .await
        .map_err(|error| ChatError::internal("failed to list users", &error))?;
    let hub = state.chat.hub();
    let entries = users
        .into_iter()
        .filter(|user| !user.disabled)
        .map(|user| UserEntry {
            presence: hub.presence(&user.name),
            name: user.name,
        })
        .collect();
    Ok(Json(entries))
}

/// Parses the optional `limit` of a search.
fn search_limit(limit: Option<String>) -> Result<u32, ChatError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_SEARCH_LIMIT);
    };
    match limit.parse::<u32>() {
        Ok(limit) if (1..=MAX_SEARCH_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ChatError::invalid(format!(
            "invalid limit {limit:?}: expected a number from 1 to {MAX_SEARCH_LIMIT}"
        ))),
    }
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<SearchHit>>, ChatError> {
    let user = caller(&state, &headers).await?;
    let query = query.as_deref();
    let Some(text) = query_param(query, "q")? else {
        return Err(ChatError::invalid(
            "missing query parameter \"q\": give the words to search for",
        ));
    };
    if text.len() > MAX_QUERY_BYTES {
        return Err(ChatError::invalid(format!(
            "query is {} bytes, more than the limit of {MAX_QUERY_BYTES} bytes",
            text.len()
        )));
    }
    let conversation_id = query_param(query, "conversation_id")?
        .map(|id| parse_conversation_id(&id))
        .transpose()?;
    let limit = search_limit(query_param(query, "limit")?)?;
    let Some(expression) = hearth_proto::search::match_query(&text) else {
        return Err(ChatError::invalid(format!(
            "query {text:?} has no letters or digits to search for"
        )));
    };

    let mut conn = state.chat.pool.acquire().await?;
    if let Some(id) = conversation_id {
        store::require_member(&mut conn, id, &user).await?;
    }
    let hits = store::search(&mut conn, &user, &expression, conversation_id, limit).await?;
    Ok(Json(hits))
}
