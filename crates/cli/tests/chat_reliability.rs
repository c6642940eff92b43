//! Many clients chat while the server is killed and restarted: afterwards every
//! client has stored every message exactly once, in the server's order, and every
//! acknowledged message kept the sequence number it was acknowledged with.
//!
//! 200 clients (50 users with 4 devices each, every device with its own local
//! database) send into shared group conversations through the real
//! `hearth-server` binary. The server gets SIGKILL twice during the run and
//! restarts on the same port and data folder.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_client::ServerEndpoint;
use hearth_client::session::{Credentials, NewMessage, SendOutcome, Session, SessionConfig};
use hearth_client::store::Store;
use hearth_proto::chat::{ClientMessageId, ConversationId, EventBody, MAX_PAGE_EVENTS, Seq};
use rand::Rng as _;

const USERS: usize = 50;
const DEVICES_PER_USER: usize = 4;
const MESSAGES_PER_CLIENT: usize = 10;
/// Small groups, one per remainder of the user index; everyone is also in one
/// large group.
const SMALL_GROUPS: usize = 4;
const PASSWORD: &str = "reliability-password";
/// Pause between one client's messages, in milliseconds.
const SEND_GAP_MS: std::ops::Range<u64> = 200..1400;
/// When the server is killed, counted from the first message.
const KILLS_AFTER: [Duration; 2] = [Duration::from_millis(2000), Duration::from_millis(5000)];
/// How long the server stays down after each kill.
const DOWNTIME: Duration = Duration::from_millis(700);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

fn user_name(index: usize) -> String {
    format!("user{index:03}")
}

/// `hearth-server` on a fixed loopback port, so clients find it again after a
/// restart.
struct RestartableServer {
    data_dir: tempfile::TempDir,
    listen: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl RestartableServer {
    fn new() -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let log_path = data_dir.path().join("server.log");
        Self {
            listen: format!("127.0.0.1:{port}"),
            data_dir,
            child: None,
            log_path,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(common::server_binary());
        command
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("HEARTH_LISTEN")
            .env_remove("HEARTH_DATA_DIR");
        command
    }

    fn add_users(&self, names: &[String]) {
        use std::io::Write as _;
        for name in names {
            let mut child = self
                .command()
                .args(["user", "add", name, "--password-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("hearth-server user add starts");
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(format!("{PASSWORD}\n").as_bytes())
                .expect("the password is written");
            let output = child.wait_with_output().expect("user add finishes");
            assert!(
                output.status.success(),
                "hearth-server user add {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Starts the server and waits until it accepts TCP connections.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("the server log opens");
        let child = self
            .command()
            .args(["--listen", &self.listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hearth-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.listen).is_err() {
            assert!(
                Instant::now() < deadline,
                "hearth-server did not listen on {} within 30 s\n--- log\n{}",
                self.listen,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and reaps the process.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL is delivered");
            child.wait().expect("the killed server is reaped");
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    fn endpoint(&self) -> ServerEndpoint {
        let pem = std::fs::read_to_string(self.data_dir.path().join("tls/cert.pem"))
            .expect("the server wrote its certificate");
        ServerEndpoint::new(&self.url(), Some(&pem)).expect("a valid endpoint")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for RestartableServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One device: a session with its own database.
struct Client {
    name: String,
    database: PathBuf,
    session: Session,
}

async fn start_client(endpoint: &ServerEndpoint, name: &str, database: PathBuf) -> Client {
    let tokens = hearth_client::auth::sign_in_with_password(endpoint, name, PASSWORD)
        .await
        .unwrap_or_else(|err| panic!("sign-in as {name} failed: {err}"));
    let session = Session::start(SessionConfig {
        server: endpoint.clone(),
        user: name.to_owned(),
        credentials: Credentials::Tokens(tokens),
        keyring: None,
        database: database.clone(),
    })
    .expect("the session starts");
    Client {
        name: name.to_owned(),
        database,
        session,
    }
}

/// What the clients learned from acknowledgements: client id to conversation
/// and sequence number.
type Acks = Arc<Mutex<HashMap<ClientMessageId, (ConversationId, Seq)>>>;
type Sent = Arc<Mutex<Vec<(ConversationId, ClientMessageId)>>>;

/// Sends one client's messages with random gaps and records each ack.
async fn send_messages(
    session: Session,
    conversations: Vec<ConversationId>,
    acks: Acks,
    sent: Sent,
) {
    for index in 0..MESSAGES_PER_CLIENT {
        let gap = rand::rng().random_range(SEND_GAP_MS);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let conversation = conversations[index % conversations.len()];
        let entry = session
            .send(
                conversation,
                NewMessage {
                    text: format!("{} message {index} 消息 ✓", session.user()),
                    ..NewMessage::default()
                },
            )
            .await
            .expect("the message enters the outbox");
        sent.lock()
            .expect("sent lock")
            .push((conversation, entry.client_id));
        let session = session.clone();
        let acks = Arc::clone(&acks);
        tokio::spawn(async move {
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while Instant::now() < deadline {
                match session
                    .wait_sent(entry.client_id, Duration::from_secs(5))
                    .await
                {
                    Ok(SendOutcome::Sent { seq }) => {
                        acks.lock()
                            .expect("acks lock")
                            .insert(entry.client_id, (conversation, seq));
                        return;
                    }
                    Ok(SendOutcome::Queued) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(err) => panic!("message {} was rejected: {err}", entry.client_id),
                }
            }
        });
    }
}

/// Reads every stored message of a conversation from a database file, oldest
/// first, as (seq, client id).
fn stored_messages(
    database: &Path,
    user: &str,
    conversation: ConversationId,
) -> Vec<(Seq, ClientMessageId)> {
    let (store, recovery) = Store::open(database, user).expect("the client database opens");
    assert!(
        recovery.is_none(),
        "the database {} needed recovery",
        database.display()
    );
    let mut messages = Vec::new();
    let mut before = Seq::MAX >> 1;
    loop {
        let page = store
            .events_before(conversation, before, MAX_PAGE_EVENTS)
            .expect("events are readable");
        let Some(first) = page.first() else { break };
        before = first.event.seq;
        let mut older: Vec<(Seq, ClientMessageId)> = page
            .iter()
            .filter_map(|stored| match &stored.event.body {
                EventBody::Message { client_id, .. } => Some((stored.event.seq, *client_id)),
                _ => None,
            })
            .collect();
        older.append(&mut messages);
        messages = older;
    }
    messages
}

/// Counts how often a session went offline.
fn count_offline(session: &Session, counter: Arc<std::sync::atomic::AtomicUsize>) {
    let mut state = session.watch_state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let offline = matches!(
                *state.borrow_and_update(),
                hearth_client::session::ConnectionState::Offline { .. }
            );
            if offline {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
}

#[test]
fn chat_survives_two_server_kills() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    hearth_client::server::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();

    let mut server = RestartableServer::new();
    let mut names: Vec<String> = (0..USERS).map(user_name).collect();
    names.push("auditor".to_owned());
    server.add_users(&names);
    server.start();
    let endpoint = server.endpoint();
    let folder = tempfile::tempdir().expect("a temporary folder");

    let test_started = Instant::now();
    runtime.block_on(async {
        // The auditor owns every group and sends nothing.
        let auditor = start_client(&endpoint, "auditor", folder.path().join("auditor.db")).await;
        let mut groups = Vec::new();
        for group in 0..SMALL_GROUPS {
            let members: Vec<String> = (group..USERS).step_by(SMALL_GROUPS).map(user_name).collect();
            let conversation = auditor
                .session
                .create_group(&format!("group {group}"), &members)
                .await
                .expect("the group is created");
            groups.push(conversation.id);
        }
        let everyone: Vec<String> = (0..USERS).map(user_name).collect();
        let large = auditor
            .session
            .create_group("everyone 全体", &everyone)
            .await
            .expect("the large group is created")
            .id;
        auditor.session.close().await;
        eprintln!("{:?}: groups created", test_started.elapsed());

        let offline_transitions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut clients = Vec::new();
        for device in 0..DEVICES_PER_USER {
            for user in 0..USERS {
                let name = user_name(user);
                let database = folder.path().join(format!("{name}-device{device}.db"));
                let client = start_client(&endpoint, &name, database).await;
                count_offline(&client.session, Arc::clone(&offline_transitions));
                clients.push((user, client));
            }
        }
        eprintln!("{:?}: clients started", test_started.elapsed());
        for (_, client) in &clients {
            let state = client.session.wait_settled(Duration::from_secs(60)).await;
            assert_eq!(
                state,
                hearth_client::session::ConnectionState::Online,
                "{} did not come online",
                client.name
            );
        }

        eprintln!("{:?}: clients online", test_started.elapsed());
        let acks = Acks::default();
        let sent = Sent::default();
        let mut senders = Vec::new();
        for (user, client) in &clients {
            let conversations = vec![groups[user % SMALL_GROUPS], large];
            senders.push(tokio::spawn(send_messages(
                client.session.clone(),
                conversations,
                Arc::clone(&acks),
                Arc::clone(&sent),
            )));
        }

        let started = Instant::now();
        for kill_at in KILLS_AFTER {
            tokio::time::sleep_until((started + kill_at).into()).await;
            tokio::task::block_in_place(|| server.kill());
            tokio::time::sleep(DOWNTIME).await;
            tokio::task::block_in_place(|| server.start());
        }
        for sender in senders {
            sender.await.expect("a sender task panicked");
        }

        for (_, client) in &clients {
            let drained = client
                .session
                .wait_outbox_empty(DRAIN_TIMEOUT)
                .await
                .expect("the outbox is readable");
            assert!(drained, "{}'s outbox did not drain\n--- server log\n{}", client.name, server.log());
        }
        eprintln!("{:?}: outboxes drained", test_started.elapsed());
        let total = USERS * DEVICES_PER_USER * MESSAGES_PER_CLIENT;
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while acks.lock().expect("acks lock").len() < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(acks.lock().expect("acks lock").len(), total, "not every message was acknowledged");
        assert!(
            offline_transitions.load(std::sync::atomic::Ordering::Relaxed) >= clients.len(),
            "the kills did not take clients offline"
        );

        eprintln!("{:?}: all acked", test_started.elapsed());
        // The server's order, read by a fresh device of the auditor.
        let fresh = start_client(&endpoint, "auditor", folder.path().join("auditor-fresh.db")).await;
        assert_eq!(
            fresh.session.wait_settled(Duration::from_secs(60)).await,
            hearth_client::session::ConnectionState::Online
        );
        fresh.session.close().await;
        let mut server_order: HashMap<ConversationId, Vec<(Seq, ClientMessageId)>> = HashMap::new();
        for &conversation in groups.iter().chain([&large]) {
            server_order.insert(conversation, stored_messages(&fresh.database, "auditor", conversation));
        }

        // Every message the clients sent is on the server exactly once, in
        // increasing sequence order, and every ack names its real seq.
        let sent = sent.lock().expect("sent lock").clone();
        assert_eq!(sent.len(), total);
        for (conversation, messages) in &server_order {
            let seqs: Vec<Seq> = messages.iter().map(|(seq, _)| *seq).collect();
            assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "seqs of {conversation} are not increasing");
            let unique: HashSet<ClientMessageId> = messages.iter().map(|(_, id)| *id).collect();
            assert_eq!(unique.len(), messages.len(), "{conversation} contains a message twice");
        }
        let stored_seq: HashMap<ClientMessageId, (ConversationId, Seq)> = server_order
            .iter()
            .flat_map(|(conversation, messages)| {
                messages.iter().map(move |(seq, id)| (*id, (*conversation, *seq)))
            })
            .collect();
        assert_eq!(stored_seq.len(), total, "the server stored a different number of messages than were sent");
        for (conversation, client_id) in &sent {
            let stored = stored_seq.get(client_id);
            assert_eq!(stored.map(|(c, _)| c), Some(conversation), "message {client_id} is missing on the server");
        }
        for (client_id, acked) in acks.lock().expect("acks lock").iter() {
            assert_eq!(stored_seq.get(client_id), Some(acked), "message {client_id} lost its acknowledged seq");
        }

        eprintln!("{:?}: server order checked", test_started.elapsed());
        // Every device converges on the server's order; give live pushes and
        // syncs a moment after the last ack.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (user, client) in &clients {
            for conversation in [groups[user % SMALL_GROUPS], large] {
                let expected = &server_order[&conversation];
                loop {
                    let stored = stored_messages(&client.database, &client.name, conversation);
                    if &stored == expected {
                        break;
                    }
                    if Instant::now() > deadline {
                        let stored_ids: HashSet<_> = stored.iter().map(|(_, id)| *id).collect();
                        let missing = expected.iter().filter(|(_, id)| !stored_ids.contains(id)).count();
                        panic!(
                            "{} stores {} messages of {conversation}, the server {}; {missing} missing",
                            client.database.display(),
                            stored.len(),
                            expected.len()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        for (_, client) in &clients {
            client.session.close().await;
        }
    });
}
