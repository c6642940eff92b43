//! The changes the writer applies, each inside the writer's transaction.
//!
//! Every function checks who may make the change, writes it, and returns the
//! frames to push once the transaction commits. Nothing here sends anything.

use std::collections::HashSet;

use hearth_proto::ErrorCode;
use hearth_proto::ServerMessage;
use hearth_proto::chat::{
    Attachment, AttachmentId, ClientMessageId, ConversationId, ConversationKind,
    CreateConversation, Event, EventBody, MAX_NAME_BYTES, Role, Seq,
};
use hearth_proto::search::index_text;
use sqlx::SqliteConnection;

use super::error::ChatError;
use super::store::{self, now_ms, role_to_sql, seq_to_sql, sql_to_u64};
use super::writer::{Change, MemberCache};
use crate::signal::CallLog;

/// Maximum number of attachments on one message.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 32;

/// The result of one applied change.
pub struct Applied {
    /// The conversation the change touched, returned to REST callers.
    pub conversation_id: ConversationId,
    /// Frames to push after commit, each to every connection of its users.
    pub pushes: Vec<(Vec<String>, ServerMessage)>,
    /// Frame for the requesting connection after commit.
    pub ack: Option<ServerMessage>,
    /// Attachment files, relative to the attachment directory, to remove after
    /// commit.
    pub removed_files: Vec<String>,
}

impl Applied {
    fn new(conversation_id: ConversationId) -> Self {
        Self {
            conversation_id,
            pushes: Vec::new(),
            ack: None,
            removed_files: Vec::new(),
        }
    }

    fn push(&mut self, users: Vec<String>, message: ServerMessage) {
        self.pushes.push((users, message));
    }
}

pub async fn apply(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    change: &Change,
) -> Result<Applied, ChatError> {
    match change {
        Change::Send {
            user,
            conversation_id,
            client_id,
            text,
            reply_to,
            attachments,
        } => {
            let message = NewMessage {
                client_id: *client_id,
                text,
                reply_to: *reply_to,
                attachments,
            };
            send(conn, cache, user, *conversation_id, message).await
        }
        Change::Edit {
            user,
            conversation_id,
            target,
            text,
        } => edit(conn, cache, user, *conversation_id, *target, text).await,
        Change::Delete {
            user,
            conversation_id,
            target,
        } => delete(conn, cache, user, *conversation_id, *target).await,
        Change::MarkRead {
            user,
            conversation_id,
            seq,
        } => mark_read(conn, cache, user, *conversation_id, *seq).await,
        Change::Create { user, request } => create(conn, cache, user, request).await,
        Change::Rename {
            user,
            conversation_id,
            name,
        } => rename(conn, cache, user, *conversation_id, name).await,
        Change::AddMember {
            user,
            conversation_id,
            member,
            role,
        } => add_member(conn, cache, user, *conversation_id, member, *role).await,
        Change::RemoveMember {
            user,
            conversation_id,
            member,
        } => remove_member(conn, cache, user, *conversation_id, member).await,
        Change::Call(log) => record_call(conn, cache, log).await,
    }
}

/// Returns the role of `user`, failing with `not_member` or
/// `conversation_not_found`.
async fn require_member(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    id: ConversationId,
    user: &str,
) -> Result<Role, ChatError> {
    let members = cache.get(conn, id).await?;
    if let Some((_, role)) = members.iter().find(|(member, _)| member == user) {
        return Ok(*role);
    }
    if store::conversation_row(conn, id).await?.is_some() {
        Err(ChatError::not_member(id))
    } else {
        Err(ChatError::conversation_not_found(id))
    }
}

async fn member_names(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    id: ConversationId,
) -> Result<Vec<String>, sqlx::Error> {
    let members = cache.get(conn, id).await?;
    Ok(members.iter().map(|(user, _)| user.clone()).collect())
}

async fn conversation(
    conn: &mut SqliteConnection,
    id: ConversationId,
) -> Result<store::ConversationRow, ChatError> {
    store::conversation_row(conn, id)
        .await?
        .ok_or_else(|| ChatError::conversation_not_found(id))
}

/// Columns of an event besides its body that queries need.
#[derive(Default)]
struct EventColumns<'a> {
    client_id: Option<ClientMessageId>,
    /// Current text of a message.
    text: Option<&'a str>,
    /// Message that an edit or delete refers to.
    target: Option<Seq>,
}

/// Appends an event with the conversation's next sequence number. Returns the
/// event's row id and the event.
async fn append_event(
    conn: &mut SqliteConnection,
    id: ConversationId,
    sender: &str,
    body: EventBody,
    columns: EventColumns<'_>,
) -> Result<(i64, Event), sqlx::Error> {
    let (seq,): (i64,) = sqlx::query_as(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;

    let at_ms = now_ms();
    let json = serde_json::to_string(&body).expect("event bodies have only string keys");
    let (row_id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (conversation_id, seq, sender, at_ms, kind, body, client_id, text, target)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(sender)
    .bind(at_ms)
    .bind(store::event_kind(&body))
    .bind(json)
    .bind(columns.client_id.map(|client_id| client_id.to_string()))
    .bind(columns.text)
    .bind(columns.target.map(seq_to_sql))
    .fetch_one(&mut *conn)
    .await?;

    let event = Event {
        conversation_id: id,
        seq: sql_to_u64(seq),
        sender: sender.to_owned(),
        at_ms,
        body,
    };
    Ok((row_id, event))
}

fn event_message(event: Event) -> ServerMessage {
    ServerMessage::Event { event }
}

/// The fields of a `send_message`.
struct NewMessage<'a> {
    client_id: ClientMessageId,
    text: &'a str,
    reply_to: Option<Seq>,
    attachments: &'a [AttachmentId],
}

async fn send(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    message: NewMessage<'_>,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user).await?;
    let mut applied = Applied::new(id);

    // A retry of a stored message gets the original sequence number again.
    let stored: Option<(i64,)> = sqlx::query_as(
        "SELECT seq FROM events WHERE conversation_id = ? AND sender = ? AND client_id = ?",
    )
    .bind(id.to_string())
    .bind(user)
    .bind(message.client_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((seq,)) = stored {
        applied.ack = Some(ServerMessage::MessageAck {
            conversation_id: id,
            client_id: message.client_id,
            seq: sql_to_u64(seq),
        });
        return Ok(applied);
    }

    if let Some(reply_to) = message.reply_to
        && store::message(conn, id, reply_to).await?.is_none()
    {
        return Err(ChatError::new(
            ErrorCode::MessageNotFound,
            format!("reply_to {reply_to} is not a message in conversation {id}"),
        ));
    }
    let attachments = claimable_attachments(conn, user, id, message.attachments).await?;

    let body = EventBody::Message {
        client_id: message.client_id,
        text: message.text.to_owned(),
        reply_to: message.reply_to,
        attachments,
    };
    let columns = EventColumns {
        client_id: Some(message.client_id),
        text: Some(message.text),
        target: None,
    };
    let (row_id, event) = append_event(conn, id, user, body, columns).await?;
    let seq = event.seq;
    sqlx::query("INSERT INTO message_search (rowid, body) VALUES (?, ?)")
        .bind(row_id)
        .bind(index_text(message.text))
        .execute(&mut *conn)
        .await?;
    for attachment in message.attachments {
        sqlx::query("UPDATE attachments SET message_seq = ? WHERE id = ?")
            .bind(seq_to_sql(seq))
            .bind(attachment.to_string())
            .execute(&mut *conn)
            .await?;
    }

    let members = member_names(conn, cache, id).await?;
    applied.push(members, event_message(event));
    applied.ack = Some(ServerMessage::MessageAck {
        conversation_id: id,
        client_id: message.client_id,
        seq,
    });
    Ok(applied)
}

/// Checks that each attachment was uploaded by `user` to this conversation and
/// is not part of a message yet, and returns their descriptions.
async fn claimable_attachments(
    conn: &mut SqliteConnection,
    user: &str,
    id: ConversationId,
    ids: &[AttachmentId],
) -> Result<Vec<Attachment>, ChatError> {
    if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(ChatError::invalid(format!(
            "a message may carry at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments, got {}",
            ids.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut attachments = Vec::with_capacity(ids.len());
    for attachment_id in ids {
        if !seen.insert(*attachment_id) {
            return Err(ChatError::invalid(format!(
                "attachment {attachment_id} is listed twice"
            )));
        }
        let row: Option<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT uploader, name, content_type, size_bytes, message_seq FROM attachments
             WHERE id = ? AND conversation_id = ?",
        )
        .bind(attachment_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        let not_found = || {
            ChatError::new(
                ErrorCode::AttachmentNotFound,
                format!(
                    "attachment {attachment_id} was not uploaded by you to conversation {id}; \
                     upload it to this conversation first"
                ),
            )
        };
        let Some((uploader, name, content_type, size_bytes, message_seq)) = row else {
            return Err(not_found());
        };
        if uploader != user {
            return Err(not_found());
        }
        if let Some(seq) = message_seq {
            return Err(ChatError::invalid(format!(
                "attachment {attachment_id} already belongs to message {seq}; upload the file again"
            )));
        }
        attachments.push(Attachment {
            id: *attachment_id,
            name,
            content_type,
            size_bytes: sql_to_u64(size_bytes),
        });
    }
    Ok(attachments)
}

async fn edit(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    target: Seq,
    text: &str,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user).await?;
    let message = store::live_message(conn, id, target).await?;
    if message.sender != user {
        return Err(ChatError::new(
            ErrorCode::Forbidden,
            format!(
                "message {target} was sent by {}; you can only edit your own messages",
                message.sender
            ),
        ));
    }
    let body = EventBody::Edited {
        target,
        text: text.to_owned(),
    };
    let columns = EventColumns {
        target: Some(target),
        ..EventColumns::default()
    };
    let (_, event) = append_event(conn, id, user, body, columns).await?;
    sqlx::query("UPDATE events SET text = ? WHERE id = ?")
        .bind(text)
        .bind(message.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE message_search SET body = ? WHERE rowid = ?")
        .bind(index_text(text))
        .bind(message.id)
        .execute(&mut *conn)
        .await?;

    let mut applied = Applied::new(id);
    let members = member_names(conn, cache, id).await?;
    applied.push(members, event_message(event));
    Ok(applied)
}

async fn delete(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    target: Seq,
) -> Result<Applied, ChatError> {
    let role = require_member(conn, cache, id, user).await?;
    let message = store::live_message(conn, id, target).await?;
    if message.sender != user && role != Role::Owner {
        return Err(ChatError::new(
            ErrorCode::Forbidden,
            format!(
                "message {target} was sent by {}; only its sender or an owner can delete it",
                message.sender
            ),
        ));
    }
    let columns = EventColumns {
        target: Some(target),
        ..EventColumns::default()
    };
    let (_, event) = append_event(conn, id, user, EventBody::Deleted { target }, columns).await?;

    // Blank the deleted text in every event that contains it.
    sqlx::query(
        "UPDATE events SET deleted = 1, text = NULL,
             body = json_remove(json_set(body, '$.text', ''), '$.attachments')
         WHERE id = ?",
    )
    .bind(message.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE events SET body = json_set(body, '$.text', '')
         WHERE conversation_id = ? AND target = ? AND kind = 'edited'",
    )
    .bind(id.to_string())
    .bind(seq_to_sql(target))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM message_search WHERE rowid = ?")
        .bind(message.id)
        .execute(&mut *conn)
        .await?;
    let files: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM attachments WHERE conversation_id = ? AND message_seq = ? RETURNING path",
    )
    .bind(id.to_string())
    .bind(seq_to_sql(target))
    .fetch_all(&mut *conn)
    .await?;

    let mut applied = Applied::new(id);
    applied.removed_files = files.into_iter().map(|(path,)| path).collect();
    let members = member_names(conn, cache, id).await?;
    applied.push(members, event_message(event));
    Ok(applied)
}

async fn mark_read(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    seq: Seq,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user).await?;
    let last_seq = conversation(conn, id).await?.last_seq;
    // A position past the newest event would hide messages that arrive later.
    let seq = seq.min(last_seq);
    let (last_read_seq,): (i64,) = sqlx::query_as(
        "INSERT INTO read_state (user, conversation_id, last_read_seq) VALUES (?, ?, ?)
         ON CONFLICT (user, conversation_id)
         DO UPDATE SET last_read_seq = max(last_read_seq, excluded.last_read_seq)
         RETURNING last_read_seq",
    )
    .bind(user)
    .bind(id.to_string())
    .bind(seq_to_sql(seq))
    .fetch_one(&mut *conn)
    .await?;
    let last_read_seq = sql_to_u64(last_read_seq);
    let unread = store::unread_count(conn, id, user, last_read_seq).await?;

    let mut applied = Applied::new(id);
    applied.push(
        vec![user.to_owned()],
        ServerMessage::ReadState {
            conversation_id: id,
            last_read_seq,
            unread,
        },
    );
    Ok(applied)
}

/// Checks a group name and returns it without surrounding whitespace.
pub fn validate_group_name(name: &str) -> Result<String, ChatError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ChatError::invalid(
            "\"name\" must not be empty; a group needs a name",
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ChatError::invalid(format!(
            "\"name\" is {} bytes, more than the limit of {MAX_NAME_BYTES} bytes",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::invalid(
            "\"name\" contains control characters such as line breaks; use one line of text",
        ));
    }
    Ok(name.to_owned())
}

async fn require_user(conn: &mut SqliteConnection, name: &str) -> Result<(), ChatError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(ChatError::user_not_found(name)),
    }
}

async fn create(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    request: &CreateConversation,
) -> Result<Applied, ChatError> {
    let mut others: Vec<&str> = Vec::new();
    for member in &request.members {
        if member != user && !others.contains(&member.as_str()) {
            others.push(member);
        }
    }
    match request.kind {
        ConversationKind::Direct => {
            if request.name.is_some() {
                return Err(ChatError::invalid(
                    "a direct conversation has no name; leave out \"name\"",
                ));
            }
            let [other] = request.members.as_slice() else {
                return Err(ChatError::invalid(format!(
                    "a direct conversation names exactly one other user in \"members\", got {}",
                    request.members.len()
                )));
            };
            if other == user {
                return Err(ChatError::invalid(
                    "you cannot start a direct conversation with yourself",
                ));
            }
            require_user(conn, other).await?;
            direct_conversation(conn, cache, user, other).await
        }
        ConversationKind::Group => {
            let Some(name) = &request.name else {
                return Err(ChatError::invalid("a group needs \"name\""));
            };
            let name = validate_group_name(name)?;
            for other in &others {
                require_user(conn, other).await?;
            }
            create_group(conn, cache, user, &name, &others).await
        }
    }
}

async fn insert_conversation(
    conn: &mut SqliteConnection,
    kind: ConversationKind,
    name: Option<&str>,
    direct_key: Option<&str>,
) -> Result<ConversationId, sqlx::Error> {
    let id = ConversationId::new_v4();
    sqlx::query(
        "INSERT INTO conversations (id, kind, name, direct_key, created_at_ms)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(store::kind_to_sql(kind))
    .bind(name)
    .bind(direct_key)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Adds a member and appends the `member_added` event that `sender` caused.
async fn insert_member(
    conn: &mut SqliteConnection,
    id: ConversationId,
    sender: &str,
    user: &str,
    role: Role,
) -> Result<Event, sqlx::Error> {
    sqlx::query(
        "INSERT INTO members (conversation_id, user, role, joined_at_ms) VALUES (?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(user)
    .bind(role_to_sql(role))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    let body = EventBody::MemberAdded {
        user: user.to_owned(),
        role,
    };
    let (_, event) = append_event(conn, id, sender, body, EventColumns::default()).await?;
    Ok(event)
}

/// Returns the direct conversation of `user` and `other`, creating it when it
/// does not exist yet.
async fn direct_conversation(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    other: &str,
) -> Result<Applied, ChatError> {
    let key = store::direct_key(user, other);
    let existing: Option<(String,)> =
        sqlx::query_as("SELECT id FROM conversations WHERE direct_key = ?")
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((id,)) = existing {
        return Ok(Applied::new(store::parse_uuid(&id)?));
    }

    let id = insert_conversation(conn, ConversationKind::Direct, None, Some(&key)).await?;
    let mut applied = Applied::new(id);
    let both = vec![user.to_owned(), other.to_owned()];
    for member in [user, other] {
        let event = insert_member(conn, id, user, member, Role::Member).await?;
        applied.push(both.clone(), event_message(event));
    }
    cache.forget(id);
    applied.push(
        both,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

async fn create_group(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    name: &str,
    others: &[&str],
) -> Result<Applied, ChatError> {
    let id = insert_conversation(conn, ConversationKind::Group, Some(name), None).await?;
    let mut applied = Applied::new(id);
    let mut everyone = vec![user.to_owned()];
    everyone.extend(others.iter().map(|other| (*other).to_owned()));

    let event = insert_member(conn, id, user, user, Role::Owner).await?;
    applied.push(everyone.clone(), event_message(event));
    for other in others {
        let event = insert_member(conn, id, user, other, Role::Member).await?;
        applied.push(everyone.clone(), event_message(event));
    }
    cache.forget(id);
    applied.push(
        everyone,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

/// Fails unless the conversation is a group, because a direct conversation's
/// name and members are fixed.
fn require_group(row: &store::ConversationRow, action: &str) -> Result<(), ChatError> {
    match row.kind {
        ConversationKind::Group => Ok(()),
        ConversationKind::Direct => Err(ChatError::invalid(format!(
            "direct conversations cannot {action}; create a group instead"
        ))),
    }
}

fn require_owner(role: Role, action: &str) -> Result<(), ChatError> {
    match role {
        Role::Owner => Ok(()),
        Role::Member => Err(ChatError::new(
            ErrorCode::Forbidden,
            format!("only owners can {action}"),
        )),
    }
}

async fn rename(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    name: &str,
) -> Result<Applied, ChatError> {
    let role = require_member(conn, cache, id, user).await?;
    let row = conversation(conn, id).await?;
    require_group(&row, "be renamed")?;
    require_owner(role, "rename a group")?;
    let name = validate_group_name(name)?;
    let mut applied = Applied::new(id);
    if row.name.as_deref() == Some(name.as_str()) {
        return Ok(applied);
    }

    sqlx::query("UPDATE conversations SET name = ? WHERE id = ?")
        .bind(&name)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let (_, event) = append_event(
        conn,
        id,
        user,
        EventBody::Renamed { name },
        EventColumns::default(),
    )
    .await?;
    let members = member_names(conn, cache, id).await?;
    applied.push(members.clone(), event_message(event));
    applied.push(
        members,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

async fn add_member(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    member: &str,
    role: Role,
) -> Result<Applied, ChatError> {
    let own_role = require_member(conn, cache, id, user).await?;
    let row = conversation(conn, id).await?;
    require_group(&row, "change members")?;
    require_owner(own_role, "add members")?;
    require_user(conn, member).await?;
    let mut applied = Applied::new(id);
    let members = cache.get(conn, id).await?;
    if members.iter().any(|(existing, _)| existing == member) {
        // Adding a member twice changes nothing, so a retried request succeeds.
        return Ok(applied);
    }

    let event = insert_member(conn, id, user, member, role).await?;
    cache.forget(id);
    let members = member_names(conn, cache, id).await?;
    applied.push(members.clone(), event_message(event));
    applied.push(
        members,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

async fn remove_member(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    member: &str,
) -> Result<Applied, ChatError> {
    let own_role = require_member(conn, cache, id, user).await?;
    let row = conversation(conn, id).await?;
    require_group(&row, "change members")?;
    let members = cache.get(conn, id).await?;
    if !members.iter().any(|(existing, _)| existing == member) {
        return Err(ChatError::new(
            ErrorCode::UserNotFound,
            format!("user {member:?} is not a member of conversation {id}"),
        ));
    }
    if member != user {
        require_owner(own_role, "remove other members")?;
    }

    sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user = ?")
        .bind(id.to_string())
        .bind(member)
        .execute(&mut *conn)
        .await?;
    cache.forget(id);
    let body = EventBody::MemberRemoved {
        user: member.to_owned(),
    };
    let (_, event) = append_event(conn, id, user, body, EventColumns::default()).await?;
    promote_if_ownerless(conn, id).await?;
    cache.forget(id);

    let remaining = member_names(conn, cache, id).await?;
    let mut recipients = remaining.clone();
    recipients.push(member.to_owned());
    let mut applied = Applied::new(id);
    applied.push(recipients, event_message(event));
    applied.push(
        remaining,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    applied.push(
        vec![member.to_owned()],
        ServerMessage::ConversationRemoved {
            conversation_id: id,
        },
    );
    Ok(applied)
}

/// Makes the longest-standing member an owner when the last owner left, so a
/// group with members always has someone who can manage it.
async fn promote_if_ownerless(
    conn: &mut SqliteConnection,
    id: ConversationId,
) -> Result<(), sqlx::Error> {
    let promoted: Option<(String,)> = sqlx::query_as(
        "UPDATE members SET role = 'owner'
         WHERE conversation_id = ?1
             AND NOT EXISTS (
                 SELECT 1 FROM members WHERE conversation_id = ?1 AND role = 'owner'
             )
             AND user = (
                 SELECT user FROM members WHERE conversation_id = ?1
                 ORDER BY joined_at_ms, rowid LIMIT 1
             )
         RETURNING user",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((user,)) = promoted {
        tracing::info!(conversation_id = %id, user, "promoted the oldest member to owner");
    }
    Ok(())
}

async fn record_call(
    conn: &mut SqliteConnection,
    cache: &mut MemberCache,
    log: &CallLog,
) -> Result<Applied, ChatError> {
    let mut applied = direct_conversation(conn, cache, &log.caller, &log.callee).await?;
    let id = applied.conversation_id;
    let body = EventBody::Call {
        call_id: log.call_id,
        media: log.media,
        outcome: log.outcome,
    };
    let (_, event) = append_event(conn, id, &log.caller, body, EventColumns::default()).await?;
    let both = vec![log.caller.clone(), log.callee.clone()];
    tracing::debug!(call_id = %log.call_id, conversation_id = %id, seq = event.seq, "recorded call");
    applied.push(both, event_message(event));
    Ok(applied)
}
