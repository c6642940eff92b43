//! `hearth chat`: conversations and messages from the command line.
//!
//! Every command opens the account's local database, connects, syncs and
//! sends the outbox before it does its own work. Commands that only read
//! (`list`, `history`, `search`) and `send` also work while the server is
//! unreachable: they use the local data, and `send` leaves the message in the
//! outbox for the next command that connects.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use hearth_client::session::{
    ChatUpdate, ConnectionState, NewMessage, SendOutcome, Session, SessionConfig,
};
use hearth_client::store::{StoredEvent, account_dir};
use hearth_proto::chat::{AttachmentId, Conversation, ConversationKind, EventBody, Role, Seq};

use crate::auth::{self, SessionArgs};

/// Environment variable that overrides the folder of the local databases.
const DATA_DIR_ENV: &str = "HEARTH_CLIENT_DATA_DIR";

/// How long a command waits to connect and sync before it works offline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a command waits for the server to acknowledge the outbox.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args)]
pub struct ChatArgs {
    #[command(subcommand)]
    command: ChatCommand,
}

#[derive(Subcommand)]
enum ChatCommand {
    /// List conversations with their unread counts.
    List(Only),
    /// Open the direct conversation with a user.
    Dm(UserArgs),
    /// Create a group conversation.
    Create(CreateArgs),
    /// Send a message; it stays queued while the server is unreachable.
    Send(SendArgs),
    /// Print a conversation's messages, oldest first.
    History(HistoryArgs),
    /// Replace the text of one of your messages.
    Edit(EditArgs),
    /// Delete a message.
    Delete(MessageArgs),
    /// Mark a conversation as read.
    Read(ConversationArgs),
    /// Search messages: the local copy, or the server with --server.
    Search(SearchArgs),
    /// Add or remove group members.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Rename a group.
    Rename(RenameArgs),
    /// Leave a group.
    Leave(ConversationArgs),
    /// Download an attachment.
    Download(DownloadArgs),
    /// Stay connected and print each new event as one JSON line.
    Watch(Only),
}

#[derive(Subcommand)]
enum MembersCommand {
    /// Add a user to a group.
    Add(MemberArgs),
    /// Remove a user from a group.
    Remove(MemberArgs),
}

#[derive(Args)]
struct Only {
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct UserArgs {
    /// User name.
    #[arg(id = "other_user", value_name = "USER")]
    user: String,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct CreateArgs {
    /// Name of the group.
    name: String,
    /// A member to add besides you; repeat for more.
    #[arg(long = "member", value_name = "USER")]
    members: Vec<String>,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct ConversationArgs {
    /// Conversation id, group name, or user name of a direct conversation.
    conversation: String,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct SendArgs {
    /// Conversation id, group name, or user name of a direct conversation.
    conversation: String,
    /// Message text.
    text: String,
    /// Sequence number of the message this one replies to.
    #[arg(long, value_name = "SEQ")]
    reply_to: Option<Seq>,
    /// A file to attach; repeat for more.
    #[arg(long = "attach", value_name = "FILE")]
    attachments: Vec<PathBuf>,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct HistoryArgs {
    /// Conversation id, group name, or user name of a direct conversation.
    conversation: String,
    /// Show events before this sequence number (default: the newest).
    #[arg(long, value_name = "SEQ")]
    before: Option<Seq>,
    /// Number of events to show, 1 to 500.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct EditArgs {
    /// Conversation id, group name, or user name of a direct conversation.
    conversation: String,
    /// Sequence number of the message.
    seq: Seq,
    /// New text.
    text: String,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct MessageArgs {
    /// Conversation id, group name, or user name of a direct conversation.
    conversation: String,
    /// Sequence number of the message.
    seq: Seq,
    #[command(flatten)]
    session: SessionArgs,
}

/// `search` takes `--server` as a switch, so its server address option is
/// `--server-url` instead of the `--server` of the other commands.
#[derive(Args)]
struct SearchArgs {
    /// Words to find; every word must occur.
    query: String,
    /// Search on the server instead of the local copy.
    #[arg(long = "server")]
    on_server: bool,
    /// Search only this conversation.
    #[arg(long, value_name = "CONV")]
    conversation: Option<String>,
    /// Maximum number of results, 1 to 100.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: u32,
    /// Server address; defaults to the one saved by `hearth login`.
    #[arg(long = "server-url", env = "HEARTH_SERVER", value_name = "URL")]
    server_url: Option<String>,
    /// PEM file with the CA certificate of the server.
    #[arg(long, env = "HEARTH_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Sign in as this user with a password instead of the saved session.
    #[arg(long)]
    user: Option<String>,
    /// Read the password from the first line of standard input (needs --user).
    #[arg(long, requires = "user")]
    password_stdin: bool,
}

impl SearchArgs {
    fn session(&self) -> SessionArgs {
        SessionArgs {
            server: self.server_url.clone(),
            ca_cert: self.ca_cert.clone(),
            user: self.user.clone(),
            password_stdin: self.password_stdin,
        }
    }
}

#[derive(Args)]
struct MemberArgs {
    /// Conversation id or group name.
    conversation: String,
    /// User name.
    #[arg(id = "member", value_name = "USER")]
    user: String,
    /// Make the added member an owner.
    #[arg(long)]
    owner: bool,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct RenameArgs {
    /// Conversation id or group name.
    conversation: String,
    /// New name.
    name: String,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct DownloadArgs {
    /// Attachment id, as `history` prints it.
    attachment: AttachmentId,
    /// File to write.
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    session: SessionArgs,
}

/// Whether a command can do its work from the local copy alone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Server,
    LocalCopy,
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    match args.command {
        ChatCommand::List(args) => {
            let session = open(&args.session, Needs::LocalCopy).await?;
            finish(&session, list(&session)).await
        }
        ChatCommand::Dm(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = session
                .open_direct(&args.user)
                .await
                .map(|conversation| println!("{}", conversation.id))
                .map_err(anyhow::Error::from);
            finish(&session, result).await
        }
        ChatCommand::Create(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = session
                .create_group(&args.name, &args.members)
                .await
                .map(|conversation| println!("{}", conversation.id))
                .map_err(anyhow::Error::from);
            finish(&session, result).await
        }
        ChatCommand::Send(args) => {
            let session = open(&args.session, Needs::LocalCopy).await?;
            let result = send(&session, args).await;
            finish(&session, result).await
        }
        ChatCommand::History(args) => {
            let session = open(&args.session, Needs::LocalCopy).await?;
            let result = history(&session, &args).await;
            finish(&session, result).await
        }
        ChatCommand::Edit(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                let seq = session.edit(id, args.seq, &args.text).await?;
                println!("edited #{} (#{seq})", args.seq);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Delete(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                let seq = session.delete(id, args.seq).await?;
                println!("deleted #{} (#{seq})", args.seq);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Read(args) => {
            let session = open(&args.session, Needs::LocalCopy).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                let seq = session.mark_read(id, None)?;
                println!("read up to #{seq}");
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Search(args) => {
            let needs = if args.on_server {
                Needs::Server
            } else {
                Needs::LocalCopy
            };
            let session = open(&args.session(), needs).await?;
            let result = search(&session, &args).await;
            finish(&session, result).await
        }
        ChatCommand::Members(MembersCommand::Add(args)) => {
            let session = open(&args.session, Needs::Server).await?;
            let role = if args.owner {
                Role::Owner
            } else {
                Role::Member
            };
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                session.add_member(id, &args.user, role).await?;
                println!("added {}", args.user);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Members(MembersCommand::Remove(args)) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                session.remove_member(id, &args.user).await?;
                println!("removed {}", args.user);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Rename(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                session.rename(id, &args.name).await?;
                println!("renamed to {}", args.name);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Leave(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = async {
                let id = session.resolve_conversation(&args.conversation).await?;
                session.leave(id).await?;
                println!("left {}", args.conversation);
                Ok(())
            }
            .await;
            finish(&session, result).await
        }
        ChatCommand::Download(args) => {
            let session = open(&args.session, Needs::Server).await?;
            let result = session
                .download(args.attachment, &args.output)
                .await
                .map(|bytes| println!("wrote {bytes} bytes to {}", args.output.display()))
                .map_err(anyhow::Error::from);
            finish(&session, result).await
        }
        ChatCommand::Watch(args) => {
            let session = start(&args.session)?;
            let result = watch(&session).await;
            finish(&session, result).await
        }
    }
}

/// Returns the folder that contains the local databases of every account.
fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let dirs = directories::ProjectDirs::from("org", "Hearth", "hearth")
        .with_context(|| format!("cannot find the user's data folder; set {DATA_DIR_ENV}"))?;
    Ok(dirs.data_dir().to_owned())
}

/// Starts the session of the signed-in account without waiting for it.
fn start(args: &SessionArgs) -> anyhow::Result<Session> {
    let login = auth::chat_login(args)?;
    let database = account_dir(&data_dir()?, login.server.base_url(), &login.user)
        .join(hearth_client::store::DATABASE_FILE);
    let session = Session::start(SessionConfig {
        server: login.server,
        user: login.user,
        credentials: login.credentials,
        keyring: login.keyring,
        database,
    })?;
    if let Some(recovery) = session.recovery() {
        eprintln!(
            "warning: the local database was corrupt ({}); moved it to {} and kept {} unsent \
             messages; the rest is fetched from the server again",
            recovery.reason,
            recovery.moved_to.display(),
            recovery.outbox_kept
        );
    }
    Ok(session)
}

/// Starts the session and waits until it is online, or offline when the
/// command can do without the server.
pub(crate) async fn open_online(args: &SessionArgs) -> anyhow::Result<Session> {
    open(args, Needs::Server).await
}

async fn open(args: &SessionArgs, needs: Needs) -> anyhow::Result<Session> {
    let session = start(args)?;
    match session.wait_settled(CONNECT_TIMEOUT).await {
        ConnectionState::Online => Ok(session),
        // An untrusted certificate is not an outage: working offline would
        // hide a misconfiguration or an interception attempt.
        ConnectionState::Offline { error, .. } if is_certificate_error(&error) => {
            session.close().await;
            bail!("cannot connect securely to the server: {error}")
        }
        ConnectionState::Offline { error, .. } if needs == Needs::LocalCopy => {
            eprintln!("offline: {error}; using the local copy");
            Ok(session)
        }
        ConnectionState::Offline { error, .. } => {
            session.close().await;
            bail!("cannot reach the server: {error}; check that it runs and try again")
        }
        ConnectionState::SignedOut { error } => {
            session.close().await;
            bail!("{error}; sign in again with `hearth login`")
        }
        other => {
            session.close().await;
            bail!(
                "not connected after {} s ({other:?}); try again",
                CONNECT_TIMEOUT.as_secs()
            )
        }
    }
}

/// Gives the outbox a chance to drain while online, then closes the session.
async fn finish(session: &Session, result: anyhow::Result<()>) -> anyhow::Result<()> {
    if session.state() == ConnectionState::Online {
        match session.wait_outbox_empty(SEND_TIMEOUT).await {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "warning: {} messages are still queued; the next command that connects sends them",
                session.outbox().map(|outbox| outbox.len()).unwrap_or(0)
            ),
            Err(err) => eprintln!("warning: cannot read the outbox: {err}"),
        }
    }
    session.close().await;
    result
}

fn list(session: &Session) -> anyhow::Result<()> {
    for conversation in session.conversations()? {
        println!(
            "{}  {:<24}  {} unread",
            conversation.id,
            title(session, &conversation),
            conversation.unread
        );
    }
    Ok(())
}

/// Returns a group's name, or the other member's name for a direct conversation.
fn title(session: &Session, conversation: &Conversation) -> String {
    match conversation.kind {
        ConversationKind::Group => conversation.name.clone().unwrap_or_default(),
        ConversationKind::Direct => conversation
            .members
            .iter()
            .map(|member| member.user.as_str())
            .find(|user| *user != session.user())
            .unwrap_or(session.user())
            .to_owned(),
    }
}

async fn send(session: &Session, args: SendArgs) -> anyhow::Result<()> {
    let id = session.resolve_or_open_direct(&args.conversation).await?;
    let entry = session
        .send(
            id,
            NewMessage {
                text: args.text,
                reply_to: args.reply_to,
                files: args.attachments,
            },
        )
        .await?;
    match session.wait_sent(entry.client_id, SEND_TIMEOUT).await? {
        SendOutcome::Sent { seq } => println!("sent #{seq}"),
        SendOutcome::Queued => {
            let reason = match session.state() {
                ConnectionState::Offline { error, .. } => error,
                other => format!("{other:?}"),
            };
            println!(
                "queued: the server is unreachable ({reason}); the next hearth chat command \
                 that connects sends it"
            );
        }
    }
    Ok(())
}

async fn history(session: &Session, args: &HistoryArgs) -> anyhow::Result<()> {
    let id = session.resolve_conversation(&args.conversation).await?;
    let page = session.history(id, args.before, args.limit).await?;
    for stored in &page.events {
        println!("{}", describe(stored));
    }
    for entry in session
        .outbox()?
        .iter()
        .filter(|entry| entry.conversation_id == id)
    {
        println!("(queued) {}: {}", session.user(), entry.text);
    }
    if page.has_more
        && let Some(first) = page.events.first()
    {
        eprintln!("older events exist: run with --before {}", first.event.seq);
    }
    Ok(())
}

/// Formats one event as `#SEQ sender: text` with its state and attachments.
fn describe(stored: &StoredEvent) -> String {
    let event = &stored.event;
    let body = match &event.body {
        EventBody::Message {
            text,
            reply_to,
            attachments,
            ..
        } => {
            if stored.deleted_seq.is_some() {
                "(deleted)".to_owned()
            } else {
                let mut line = String::new();
                if let Some(target) = reply_to {
                    line.push_str(&format!("(reply to #{target}) "));
                }
                line.push_str(text);
                if stored.edited_seq.is_some() {
                    line.push_str(" (edited)");
                }
                for attachment in attachments {
                    line.push_str(&format!(
                        " [attachment {} {} {} bytes]",
                        attachment.id, attachment.name, attachment.size_bytes
                    ));
                }
                line
            }
        }
        EventBody::MemberAdded { user, .. } => format!("added {user}"),
        EventBody::MemberRemoved { user } if *user == event.sender => "left".to_owned(),
        EventBody::MemberRemoved { user } => format!("removed {user}"),
        EventBody::Renamed { name } => format!("renamed the group to {name}"),
        EventBody::Call { media, outcome, .. } => format!("call ({media:?}): {outcome:?}"),
        EventBody::Edited { target, .. } => format!("edited #{target}"),
        EventBody::Deleted { target } => format!("deleted #{target}"),
    };
    format!("#{} {}: {body}", event.seq, event.sender)
}

async fn search(session: &Session, args: &SearchArgs) -> anyhow::Result<()> {
    let conversation = match &args.conversation {
        Some(name) => Some(session.resolve_conversation(name).await?),
        None => None,
    };
    if args.on_server {
        for hit in session
            .search_server(&args.query, conversation, args.limit)
            .await?
        {
            println!(
                "{} #{} {}: {}",
                hit.conversation_id, hit.seq, hit.sender, hit.text
            );
        }
    } else {
        for stored in session.search_local(&args.query, conversation, args.limit)? {
            println!("{} {}", stored.event.conversation_id, describe(&stored));
        }
    }
    Ok(())
}

/// Prints each new event as one JSON line until interrupted. Events that
/// the first sync fetches are history, not news, and are not printed.
async fn watch(session: &Session) -> anyhow::Result<()> {
    let mut state = session.watch_state();
    match session.wait_settled(CONNECT_TIMEOUT).await {
        ConnectionState::SignedOut { error } => bail!("{error}; sign in again with `hearth login`"),
        ConnectionState::Online => {}
        other => eprintln!("not connected yet ({other:?}); retrying"),
    }
    let mut updates = session.subscribe();
    eprintln!("watching as {}", session.user());
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Ok(ChatUpdate::Event(event)) => {
                    let line = serde_json::to_string(&event).context("cannot format an event")?;
                    println!("{line}");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    eprintln!("warning: skipped {missed} updates while busy");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(anyhow!("the session ended"));
                }
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(anyhow!("the session ended"));
                }
                let current = state.borrow_and_update().clone();
                match current {
                    ConnectionState::Offline { error, retry_in, .. } => eprintln!(
                        "disconnected: {error}; retrying in {} ms",
                        retry_in.as_millis()
                    ),
                    ConnectionState::Online => eprintln!("connected"),
                    ConnectionState::SignedOut { error } => {
                        bail!("{error}; sign in again with `hearth login`")
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Returns whether a connection error is rustls rejecting the server's
/// certificate (its `Error::InvalidCertificate` displays as "invalid peer
/// certificate").
fn is_certificate_error(error: &str) -> bool {
    error.contains("invalid peer certificate")
}

#[cfg(test)]
mod tests {
    use clap::Args;

    use super::*;

    #[test]
    fn chat_options_are_consistent() {
        ChatArgs::augment_args(clap::Command::new("chat")).debug_assert();
    }
}
