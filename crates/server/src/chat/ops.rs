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
use rusqlite::{Connection, OptionalExtension as _, params};

use super::error::ChatError;
use super::queries;
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

pub fn apply(
    conn: &Connection,
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
            send(conn, cache, user, *conversation_id, message)
        }
        Change::Edit {
            user,
            conversation_id,
            target,
            text,
        } => edit(conn, cache, user, *conversation_id, *target, text),
        Change::Delete {
            user,
            conversation_id,
            target,
        } => delete(conn, cache, user, *conversation_id, *target),
        Change::MarkRead {
            user,
            conversation_id,
            seq,
        } => mark_read(conn, cache, user, *conversation_id, *seq),
        Change::Create { user, request } => create(conn, cache, user, request),
        Change::Rename {
            user,
            conversation_id,
            name,
        } => rename(conn, cache, user, *conversation_id, name),
        Change::AddMember {
            user,
            conversation_id,
            member,
            role,
        } => add_member(conn, cache, user, *conversation_id, member, *role),
        Change::RemoveMember {
            user,
            conversation_id,
            member,
        } => remove_member(conn, cache, user, *conversation_id, member),
        Change::Call(log) => record_call(conn, cache, log),
    }
}

/// Returns the role of `user`, failing with `not_member` or
/// `conversation_not_found`.
fn require_member(
    conn: &Connection,
    cache: &mut MemberCache,
    id: ConversationId,
    user: &str,
) -> Result<Role, ChatError> {
    let members = cache.get(conn, id)?;
    if let Some((_, role)) = members.iter().find(|(member, _)| member == user) {
        return Ok(*role);
    }
    if queries::conversation_row(conn, id)?.is_some() {
        Err(ChatError::not_member(id))
    } else {
        Err(ChatError::conversation_not_found(id))
    }
}

fn member_names(
    conn: &Connection,
    cache: &mut MemberCache,
    id: ConversationId,
) -> rusqlite::Result<Vec<String>> {
    let members = cache.get(conn, id)?;
    Ok(members.iter().map(|(user, _)| user.clone()).collect())
}

fn conversation(
    conn: &Connection,
    id: ConversationId,
) -> Result<store::ConversationRow, ChatError> {
    queries::conversation_row(conn, id)?.ok_or_else(|| ChatError::conversation_not_found(id))
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
fn append_event(
    conn: &Connection,
    id: ConversationId,
    sender: &str,
    body: EventBody,
    columns: EventColumns<'_>,
) -> rusqlite::Result<(i64, Event)> {
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
        )?
        .query_row(params![id.to_string()], |row| row.get(0))?;

    let at_ms = now_ms();
    let json = serde_json::to_string(&body).expect("event bodies have only string keys");
    let row_id: i64 = conn
        .prepare_cached(
            "INSERT INTO events
                 (conversation_id, seq, sender, at_ms, kind, body, client_id, text, target)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )?
        .query_row(
            params![
                id.to_string(),
                seq,
                sender,
                at_ms,
                store::event_kind(&body),
                json,
                columns.client_id.map(|client_id| client_id.to_string()),
                columns.text,
                columns.target.map(seq_to_sql),
            ],
            |row| row.get(0),
        )?;

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

fn send(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    message: NewMessage<'_>,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user)?;
    let mut applied = Applied::new(id);

    // A retry of a stored message gets the original sequence number again.
    let stored: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM events WHERE conversation_id = ? AND sender = ? AND client_id = ?",
        )?
        .query_row(
            params![id.to_string(), user, message.client_id.to_string()],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(seq) = stored {
        applied.ack = Some(ServerMessage::MessageAck {
            conversation_id: id,
            client_id: message.client_id,
            seq: sql_to_u64(seq),
        });
        return Ok(applied);
    }

    if let Some(reply_to) = message.reply_to
        && queries::message(conn, id, reply_to)?.is_none()
    {
        return Err(ChatError::new(
            ErrorCode::MessageNotFound,
            format!("reply_to {reply_to} is not a message in conversation {id}"),
        ));
    }
    let attachments = claimable_attachments(conn, user, id, message.attachments)?;

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
    let (row_id, event) = append_event(conn, id, user, body, columns)?;
    let seq = event.seq;
    conn.prepare_cached("INSERT INTO message_search (rowid, body) VALUES (?, ?)")?
        .execute(params![row_id, index_text(message.text)])?;
    for attachment in message.attachments {
        conn.prepare_cached("UPDATE attachments SET message_seq = ? WHERE id = ?")?
            .execute(params![seq_to_sql(seq), attachment.to_string()])?;
    }

    let members = member_names(conn, cache, id)?;
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
fn claimable_attachments(
    conn: &Connection,
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
        let row: Option<(String, String, String, i64, Option<i64>)> = conn
            .prepare_cached(
                "SELECT uploader, name, content_type, size_bytes, message_seq FROM attachments
                 WHERE id = ? AND conversation_id = ?",
            )?
            .query_row(params![attachment_id.to_string(), id.to_string()], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .optional()?;
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

fn edit(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    target: Seq,
    text: &str,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user)?;
    let message = queries::live_message(conn, id, target)?;
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
    let (_, event) = append_event(conn, id, user, body, columns)?;
    conn.prepare_cached("UPDATE events SET text = ? WHERE id = ?")?
        .execute(params![text, message.id])?;
    conn.prepare_cached("UPDATE message_search SET body = ? WHERE rowid = ?")?
        .execute(params![index_text(text), message.id])?;

    let mut applied = Applied::new(id);
    let members = member_names(conn, cache, id)?;
    applied.push(members, event_message(event));
    Ok(applied)
}

fn delete(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    target: Seq,
) -> Result<Applied, ChatError> {
    let role = require_member(conn, cache, id, user)?;
    let message = queries::live_message(conn, id, target)?;
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
    let (_, event) = append_event(conn, id, user, EventBody::Deleted { target }, columns)?;

    // Blank the deleted text in every event that contains it.
    conn.prepare_cached(
        "UPDATE events SET deleted = 1, text = NULL,
             body = json_remove(json_set(body, '$.text', ''), '$.attachments')
         WHERE id = ?",
    )?
    .execute(params![message.id])?;
    conn.prepare_cached(
        "UPDATE events SET body = json_set(body, '$.text', '')
         WHERE conversation_id = ? AND target = ? AND kind = 'edited'",
    )?
    .execute(params![id.to_string(), seq_to_sql(target)])?;
    conn.prepare_cached("DELETE FROM message_search WHERE rowid = ?")?
        .execute(params![message.id])?;
    let files: Vec<String> = conn
        .prepare_cached(
            "DELETE FROM attachments WHERE conversation_id = ? AND message_seq = ? RETURNING path",
        )?
        .query_map(params![id.to_string(), seq_to_sql(target)], |row| {
            row.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;

    let mut applied = Applied::new(id);
    applied.removed_files = files;
    let members = member_names(conn, cache, id)?;
    applied.push(members, event_message(event));
    Ok(applied)
}

fn mark_read(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    seq: Seq,
) -> Result<Applied, ChatError> {
    require_member(conn, cache, id, user)?;
    let last_seq = conversation(conn, id)?.last_seq;
    // A position past the newest event would hide messages that arrive later.
    let seq = seq.min(last_seq);
    let last_read_seq: i64 = conn
        .prepare_cached(
            "INSERT INTO read_state (user, conversation_id, last_read_seq) VALUES (?, ?, ?)
             ON CONFLICT (user, conversation_id)
             DO UPDATE SET last_read_seq = max(last_read_seq, excluded.last_read_seq)
             RETURNING last_read_seq",
        )?
        .query_row(params![user, id.to_string(), seq_to_sql(seq)], |row| {
            row.get(0)
        })?;
    let last_read_seq = sql_to_u64(last_read_seq);
    let unread = queries::unread_count(conn, id, user, last_read_seq)?;

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

fn require_user(conn: &Connection, name: &str) -> Result<(), ChatError> {
    if queries::user_exists(conn, name)? {
        Ok(())
    } else {
        Err(ChatError::user_not_found(name))
    }
}

fn create(
    conn: &Connection,
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
            require_user(conn, other)?;
            direct_conversation(conn, cache, user, other)
        }
        ConversationKind::Group => {
            let Some(name) = &request.name else {
                return Err(ChatError::invalid("a group needs \"name\""));
            };
            let name = validate_group_name(name)?;
            for other in &others {
                require_user(conn, other)?;
            }
            create_group(conn, cache, user, &name, &others)
        }
    }
}

fn insert_conversation(
    conn: &Connection,
    kind: ConversationKind,
    name: Option<&str>,
    direct_key: Option<&str>,
) -> rusqlite::Result<ConversationId> {
    let id = ConversationId::new_v4();
    conn.prepare_cached(
        "INSERT INTO conversations (id, kind, name, direct_key, created_at_ms)
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id.to_string(),
        store::kind_to_sql(kind),
        name,
        direct_key,
        now_ms()
    ])?;
    Ok(id)
}

/// Adds a member and appends the `member_added` event that `sender` caused.
fn insert_member(
    conn: &Connection,
    id: ConversationId,
    sender: &str,
    user: &str,
    role: Role,
) -> rusqlite::Result<Event> {
    conn.prepare_cached(
        "INSERT INTO members (conversation_id, user, role, joined_at_ms) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![id.to_string(), user, role_to_sql(role), now_ms()])?;
    let body = EventBody::MemberAdded {
        user: user.to_owned(),
        role,
    };
    let (_, event) = append_event(conn, id, sender, body, EventColumns::default())?;
    Ok(event)
}

/// Returns the direct conversation of `user` and `other`, creating it when it
/// does not exist yet.
fn direct_conversation(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    other: &str,
) -> Result<Applied, ChatError> {
    let key = store::direct_key(user, other);
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM conversations WHERE direct_key = ?")?
        .query_row(params![key], |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        let id = ConversationId::parse_str(&id)
            .map_err(|error| ChatError::internal("stored conversation id is invalid", &error))?;
        return Ok(Applied::new(id));
    }

    let id = insert_conversation(conn, ConversationKind::Direct, None, Some(&key))?;
    let mut applied = Applied::new(id);
    let both = vec![user.to_owned(), other.to_owned()];
    for member in [user, other] {
        let event = insert_member(conn, id, user, member, Role::Member)?;
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

fn create_group(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    name: &str,
    others: &[&str],
) -> Result<Applied, ChatError> {
    let id = insert_conversation(conn, ConversationKind::Group, Some(name), None)?;
    let mut applied = Applied::new(id);
    let mut everyone = vec![user.to_owned()];
    everyone.extend(others.iter().map(|other| (*other).to_owned()));

    let event = insert_member(conn, id, user, user, Role::Owner)?;
    applied.push(everyone.clone(), event_message(event));
    for other in others {
        let event = insert_member(conn, id, user, other, Role::Member)?;
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

fn rename(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    name: &str,
) -> Result<Applied, ChatError> {
    let role = require_member(conn, cache, id, user)?;
    let row = conversation(conn, id)?;
    require_group(&row, "be renamed")?;
    require_owner(role, "rename a group")?;
    let name = validate_group_name(name)?;
    let mut applied = Applied::new(id);
    if row.name.as_deref() == Some(name.as_str()) {
        return Ok(applied);
    }

    conn.prepare_cached("UPDATE conversations SET name = ? WHERE id = ?")?
        .execute(params![&name, id.to_string()])?;
    let (_, event) = append_event(
        conn,
        id,
        user,
        EventBody::Renamed { name },
        EventColumns::default(),
    )?;
    let members = member_names(conn, cache, id)?;
    applied.push(members.clone(), event_message(event));
    applied.push(
        members,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

fn add_member(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    member: &str,
    role: Role,
) -> Result<Applied, ChatError> {
    let own_role = require_member(conn, cache, id, user)?;
    let row = conversation(conn, id)?;
    require_group(&row, "change members")?;
    require_owner(own_role, "add members")?;
    require_user(conn, member)?;
    let mut applied = Applied::new(id);
    let members = cache.get(conn, id)?;
    if members.iter().any(|(existing, _)| existing == member) {
        // Adding a member twice changes nothing, so a retried request succeeds.
        return Ok(applied);
    }

    let event = insert_member(conn, id, user, member, role)?;
    cache.forget(id);
    let members = member_names(conn, cache, id)?;
    applied.push(members.clone(), event_message(event));
    applied.push(
        members,
        ServerMessage::ConversationChanged {
            conversation_id: id,
        },
    );
    Ok(applied)
}

fn remove_member(
    conn: &Connection,
    cache: &mut MemberCache,
    user: &str,
    id: ConversationId,
    member: &str,
) -> Result<Applied, ChatError> {
    let own_role = require_member(conn, cache, id, user)?;
    let row = conversation(conn, id)?;
    require_group(&row, "change members")?;
    let members = cache.get(conn, id)?;
    if !members.iter().any(|(existing, _)| existing == member) {
        return Err(ChatError::new(
            ErrorCode::UserNotFound,
            format!("user {member:?} is not a member of conversation {id}"),
        ));
    }
    if member != user {
        require_owner(own_role, "remove other members")?;
    }

    conn.prepare_cached("DELETE FROM members WHERE conversation_id = ? AND user = ?")?
        .execute(params![id.to_string(), member])?;
    cache.forget(id);
    let body = EventBody::MemberRemoved {
        user: member.to_owned(),
    };
    let (_, event) = append_event(conn, id, user, body, EventColumns::default())?;
    promote_if_ownerless(conn, id)?;
    cache.forget(id);

    let remaining = member_names(conn, cache, id)?;
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
fn promote_if_ownerless(conn: &Connection, id: ConversationId) -> rusqlite::Result<()> {
    let promoted: Option<String> = conn
        .prepare_cached(
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
        )?
        .query_row(params![id.to_string()], |row| row.get(0))
        .optional()?;
    if let Some(user) = promoted {
        tracing::info!(conversation_id = %id, user, "promoted the oldest member to owner");
    }
    Ok(())
}

fn record_call(
    conn: &Connection,
    cache: &mut MemberCache,
    log: &CallLog,
) -> Result<Applied, ChatError> {
    let mut applied = direct_conversation(conn, cache, &log.caller, &log.callee)?;
    let id = applied.conversation_id;
    let body = EventBody::Call {
        call_id: log.call_id,
        media: log.media,
        outcome: log.outcome,
    };
    let (_, event) = append_event(conn, id, &log.caller, body, EventColumns::default())?;
    let both = vec![log.caller.clone(), log.callee.clone()];
    tracing::debug!(call_id = %log.call_id, conversation_id = %id, seq = event.seq, "recorded call");
    applied.push(both, event_message(event));
    Ok(applied)
}
