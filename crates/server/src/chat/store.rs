//! Read queries over the chat tables on the sqlx pool, plus the conversions
//! and SQL text that the writer's rusqlite queries share.

use hearth_proto::chat::{
    Conversation, ConversationId, ConversationKind, Event, EventBody, Member, Role, SearchHit, Seq,
};
use sqlx::SqliteConnection;

use super::error::ChatError;

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Converts a wire sequence number to SQLite's signed integer, saturating at
/// `i64::MAX`, which is above every stored sequence number.
pub fn seq_to_sql(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Converts a stored sequence number or count, never negative, to the wire type.
pub fn sql_to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub fn role_to_sql(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Member => "member",
    }
}

pub fn role_from_sql(role: &str) -> Role {
    if role == "owner" {
        Role::Owner
    } else {
        Role::Member
    }
}

pub fn kind_to_sql(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    }
}

pub fn kind_from_sql(kind: &str) -> ConversationKind {
    if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

/// Returns the wire `kind` of an event body, as stored in `events.kind`.
pub fn event_kind(body: &EventBody) -> &'static str {
    match body {
        EventBody::Message { .. } => "message",
        EventBody::Edited { .. } => "edited",
        EventBody::Deleted { .. } => "deleted",
        EventBody::MemberAdded { .. } => "member_added",
        EventBody::MemberRemoved { .. } => "member_removed",
        EventBody::Renamed { .. } => "renamed",
        EventBody::Call { .. } => "call",
    }
}

/// Returns the key that makes a direct conversation unique per pair of users:
/// both names in sorted order, separated by a space, which no user name contains.
pub fn direct_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a} {b}")
    } else {
        format!("{b} {a}")
    }
}

/// Queries that both the writer (rusqlite) and the read paths (sqlx) run.
pub const CONVERSATION_ROW_SQL: &str =
    "SELECT kind, name, last_seq, created_at_ms FROM conversations WHERE id = ?";
pub const MEMBERS_SQL: &str =
    "SELECT user, role FROM members WHERE conversation_id = ? ORDER BY joined_at_ms, rowid";
pub const UNREAD_COUNT_SQL: &str = "SELECT COUNT(*) FROM events
     WHERE conversation_id = ? AND seq > ? AND kind = 'message' AND deleted = 0 AND sender <> ?";
pub const MESSAGE_SQL: &str = "SELECT id, sender, deleted FROM events
     WHERE conversation_id = ? AND seq = ? AND kind = 'message'";

/// The stored columns of a conversation.
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub last_seq: Seq,
    pub created_at_ms: i64,
}

pub async fn conversation_row(
    conn: &mut SqliteConnection,
    id: ConversationId,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    let row: Option<(String, Option<String>, i64, i64)> = sqlx::query_as(CONVERSATION_ROW_SQL)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(
        row.map(|(kind, name, last_seq, created_at_ms)| ConversationRow {
            kind: kind_from_sql(&kind),
            name,
            last_seq: sql_to_u64(last_seq),
            created_at_ms,
        }),
    )
}

/// Returns the role of `user` in a conversation, or `None` if they are not a
/// member.
pub async fn member_role(
    conn: &mut SqliteConnection,
    id: ConversationId,
    user: &str,
) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM members WHERE conversation_id = ? AND user = ?")
            .bind(id.to_string())
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(role,)| role_from_sql(&role)))
}

/// Returns the role of `user`, or `not_member` when the conversation exists
/// without them and `conversation_not_found` when it does not exist.
pub async fn require_member(
    conn: &mut SqliteConnection,
    id: ConversationId,
    user: &str,
) -> Result<Role, ChatError> {
    if let Some(role) = member_role(conn, id, user).await? {
        return Ok(role);
    }
    if conversation_row(conn, id).await?.is_some() {
        Err(ChatError::not_member(id))
    } else {
        Err(ChatError::conversation_not_found(id))
    }
}

/// Returns the members in the order they joined.
pub async fn members(
    conn: &mut SqliteConnection,
    id: ConversationId,
) -> Result<Vec<Member>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(MEMBERS_SQL)
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user, role)| Member {
            user,
            role: role_from_sql(&role),
        })
        .collect())
}

/// Returns the newest event `user` has read in a conversation, 0 if none.
pub async fn last_read_seq(
    conn: &mut SqliteConnection,
    id: ConversationId,
    user: &str,
) -> Result<Seq, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT last_read_seq FROM read_state WHERE user = ? AND conversation_id = ?",
    )
    .bind(user)
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map_or(0, |(seq,)| sql_to_u64(seq)))
}

/// Counts the messages from members other than `user` after `after` that are
/// not deleted.
pub async fn unread_count(
    conn: &mut SqliteConnection,
    id: ConversationId,
    user: &str,
    after: Seq,
) -> Result<u64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(UNREAD_COUNT_SQL)
        .bind(id.to_string())
        .bind(seq_to_sql(after))
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
    Ok(sql_to_u64(count))
}

/// Builds the conversation with `user`'s read position and unread count.
/// Returns `None` if it does not exist. The caller checks membership.
pub async fn conversation_view(
    conn: &mut SqliteConnection,
    id: ConversationId,
    user: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    let Some(row) = conversation_row(conn, id).await? else {
        return Ok(None);
    };
    let members = members(conn, id).await?;
    let last_read_seq = last_read_seq(conn, id, user).await?;
    let unread = unread_count(conn, id, user, last_read_seq).await?;
    Ok(Some(Conversation {
        id,
        kind: row.kind,
        name: row.name,
        members,
        last_seq: row.last_seq,
        last_read_seq,
        unread,
        created_at_ms: row.created_at_ms,
    }))
}

/// Lists the conversations `user` is a member of, most recently created first.
pub async fn conversations_of(
    conn: &mut SqliteConnection,
    user: &str,
) -> Result<Vec<Conversation>, sqlx::Error> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT conversations.id FROM conversations
         JOIN members ON members.conversation_id = conversations.id
         WHERE members.user = ?
         ORDER BY conversations.created_at_ms DESC, conversations.rowid DESC",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    let mut conversations = Vec::with_capacity(ids.len());
    for (id,) in ids {
        let id = parse_uuid(&id)?;
        if let Some(conversation) = conversation_view(conn, id, user).await? {
            conversations.push(conversation);
        }
    }
    Ok(conversations)
}

/// Returns the users who share at least one conversation with `user`, without
/// `user`.
pub async fn co_members(
    conn: &mut SqliteConnection,
    user: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT others.user FROM members AS mine
         JOIN members AS others ON others.conversation_id = mine.conversation_id
         WHERE mine.user = ? AND others.user <> mine.user",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(user,)| user).collect())
}

pub fn parse_uuid(text: &str) -> Result<uuid::Uuid, sqlx::Error> {
    uuid::Uuid::parse_str(text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// An event as stored, with the size of its body for batching.
pub struct StoredEvent {
    pub event: Event,
    pub body_bytes: usize,
}

type EventRow = (i64, String, i64, String);

fn event_from_row(id: ConversationId, (seq, sender, at_ms, body): EventRow) -> StoredEvent {
    let body_bytes = body.len();
    // The writer stores only bodies it serialized itself, so a body that fails to
    // parse means the database was edited by hand. Show it as a deleted message
    // rather than failing the whole page.
    let body = serde_json::from_str(&body).unwrap_or_else(|error| {
        tracing::error!(conversation_id = %id, seq, %error, "stored event body is invalid");
        EventBody::Deleted {
            target: sql_to_u64(seq),
        }
    });
    StoredEvent {
        event: Event {
            conversation_id: id,
            seq: sql_to_u64(seq),
            sender,
            at_ms,
            body,
        },
        body_bytes,
    }
}

/// Returns up to `limit` events after `after`, oldest first.
pub async fn events_after(
    conn: &mut SqliteConnection,
    id: ConversationId,
    after: Seq,
    limit: u32,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, sender, at_ms, body FROM events
         WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    )
    .bind(id.to_string())
    .bind(seq_to_sql(after))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| event_from_row(id, row))
        .collect())
}

/// Returns up to `limit` events before `before`, newest first.
pub async fn events_before(
    conn: &mut SqliteConnection,
    id: ConversationId,
    before: Seq,
    limit: u32,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, sender, at_ms, body FROM events
         WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    )
    .bind(id.to_string())
    .bind(seq_to_sql(before))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| event_from_row(id, row))
        .collect())
}

/// Finds messages whose current text matches an FTS5 expression built by
/// `hearth_proto::search::match_query`, in the conversations `user` is a member
/// of, newest first.
pub async fn search(
    conn: &mut SqliteConnection,
    user: &str,
    expression: &str,
    conversation_id: Option<ConversationId>,
    limit: u32,
) -> Result<Vec<SearchHit>, sqlx::Error> {
    let rows: Vec<(String, i64, String, i64, String)> = sqlx::query_as(
        "SELECT events.conversation_id, events.seq, events.sender, events.at_ms, events.text
         FROM message_search
         JOIN events ON events.id = message_search.rowid
         JOIN members ON members.conversation_id = events.conversation_id AND members.user = ?
         WHERE message_search MATCH ? AND events.deleted = 0
             AND (? IS NULL OR events.conversation_id = ?)
         ORDER BY events.at_ms DESC, events.id DESC
         LIMIT ?",
    )
    .bind(user)
    .bind(expression)
    .bind(conversation_id.map(|id| id.to_string()))
    .bind(conversation_id.map(|id| id.to_string()))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(conversation_id, seq, sender, at_ms, text)| {
            Ok(SearchHit {
                conversation_id: parse_uuid(&conversation_id)?,
                seq: sql_to_u64(seq),
                sender,
                at_ms,
                text,
            })
        })
        .collect()
}
