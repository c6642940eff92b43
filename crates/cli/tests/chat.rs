//! `hearth chat` end to end: `hearth` processes against a real
//! `hearth-server` process on loopback, each user with their own local
//! database folder.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Output, Process, ServerProcess};

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";

/// A user of the CLI with private configuration and data folders.
struct User {
    name: &'static str,
    password: &'static str,
    config: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl User {
    fn new(name: &'static str, password: &'static str) -> Self {
        Self {
            name,
            password,
            config: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        }
    }

    /// Returns `hearth chat ARGS…` signed in with a password on stdin.
    fn chat(&self, server: &ServerProcess, args: &[&str]) -> Command {
        let mut command = common::hearth(self.config.path());
        let server_option = if args.first() == Some(&"search") {
            "--server-url"
        } else {
            "--server"
        };
        command
            .env("HEARTH_CLIENT_DATA_DIR", self.data.path())
            .arg("chat")
            .args(args)
            .args([server_option, &server.url])
            .arg("--ca-cert")
            .arg(server.cert_path())
            .args(["--user", self.name, "--password-stdin"]);
        command
    }

    fn run(&self, server: &ServerProcess, args: &[&str]) -> Output {
        common::run(
            &mut self.chat(server, args),
            &format!("{}\n", self.password),
            Duration::from_secs(60),
        )
    }

    /// Runs a command that must succeed and returns its standard output.
    fn ok(&self, server: &ServerProcess, args: &[&str]) -> String {
        let output = self.run(server, args);
        assert!(
            output.status.success(),
            "hearth chat {args:?} as {} failed: {output}\n--- server log\n{}",
            self.name,
            server.log()
        );
        assert!(!output.stderr.contains("panicked"), "{output}");
        output.stdout
    }

    fn database_folders(&self) -> usize {
        count_files(self.data.path())
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| {
                    let entry = entry.unwrap();
                    if entry.file_type().unwrap().is_dir() {
                        count_files(&entry.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until `process` has written `needle` to standard error.
fn wait_for_stderr(process: &Process, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !process.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on stderr within {timeout:?}\n--- stderr\n{}",
            process.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_prints_sent_message() {
    let server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let alice = User::new("alice", ALICE_PASSWORD);
    let bob = User::new("bob", BOB_PASSWORD);

    let child = bob
        .chat(&server, &["watch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth chat watch starts");
    let mut watch = Process::new(child);
    watch.write_stdin(&format!("{BOB_PASSWORD}\n"));
    wait_for_stderr(&watch, "watching as bob", Duration::from_secs(30));

    let sent = alice.ok(&server, &["send", "bob", "明天在会议室开会 at 10"]);
    assert!(sent.starts_with("sent #"), "{sent}");

    let line = watch.wait_for_line("会议室", Duration::from_secs(20));
    let event: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|err| panic!("not a JSON line: {line:?}: {err}"));
    assert_eq!(event["kind"], "message");
    assert_eq!(event["sender"], "alice");
    assert_eq!(event["text"], "明天在会议室开会 at 10");
    assert!(event["seq"].as_u64().is_some(), "{line}");
    assert!(watch.is_running(), "watch keeps running");

    // Bob's own commands see the same conversation under alice's name.
    let history = bob.ok(&server, &["history", "alice"]);
    assert!(
        history.contains("alice: 明天在会议室开会 at 10"),
        "{history}"
    );
    let list = bob.ok(&server, &["list"]);
    assert!(list.contains("alice"), "{list}");
    assert!(list.contains("1 unread"), "{list}");
    bob.ok(&server, &["read", "alice"]);
    let list = bob.ok(&server, &["list"]);
    assert!(list.contains("0 unread"), "{list}");
    let found = bob.ok(&server, &["search", "会议室"]);
    assert!(found.contains("明天在会议室开会"), "{found}");
    let found = bob.ok(&server, &["search", "会议室", "--server"]);
    assert!(found.contains("明天在会议室开会"), "{found}");
}

#[test]
fn send_while_server_down_is_flushed() {
    let mut server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let alice = User::new("alice", ALICE_PASSWORD);
    let bob = User::new("bob", BOB_PASSWORD);
    alice.ok(&server, &["send", "bob", "before the outage"]);

    server.kill();
    let queued = alice.ok(&server, &["send", "bob", "during the outage"]);
    assert!(queued.starts_with("queued"), "{queued}");
    let queued = alice.ok(&server, &["send", "bob", "still down"]);
    assert!(queued.starts_with("queued"), "{queued}");
    let offline_history = alice.run(&server, &["history", "bob"]);
    assert!(offline_history.status.success(), "{offline_history}");
    assert!(
        offline_history
            .stdout
            .contains("(queued) alice: during the outage"),
        "{offline_history}"
    );
    assert!(alice.database_folders() >= 1);

    server.restart();
    alice.ok(&server, &["list"]);

    let history = bob.ok(&server, &["history", "alice"]);
    let texts: Vec<&str> = history
        .lines()
        .filter_map(|line| line.split_once("alice: ").map(|(_, text)| text))
        .filter(|text| !text.starts_with("added "))
        .collect();
    assert_eq!(
        texts,
        vec!["before the outage", "during the outage", "still down"],
        "{history}"
    );
}

#[test]
fn chat_bad_input_is_explained() {
    let server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let alice = User::new("alice", ALICE_PASSWORD);

    let empty = alice.run(&server, &["send", "bob", "   "]);
    assert!(!empty.status.success());
    assert!(empty.stderr.contains("message text"), "{empty}");

    let unknown = alice.run(&server, &["send", "nobody-by-this-name", "hi"]);
    assert!(!unknown.status.success());
    assert!(unknown.stderr.contains("nobody-by-this-name"), "{unknown}");

    let missing = alice.run(
        &server,
        &["send", "bob", "see file", "--attach", "/no/such/file"],
    );
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("/no/such/file"), "{missing}");

    let query = alice.run(&server, &["search", "?!"]);
    assert!(!query.status.success());
    assert!(query.stderr.contains("search query"), "{query}");
}

#[test]
fn groups_and_attachments() {
    let server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let alice = User::new("alice", ALICE_PASSWORD);
    let bob = User::new("bob", BOB_PASSWORD);
    let files = tempfile::tempdir().unwrap();
    let report = files.path().join("report.txt");
    std::fs::write(&report, "quarterly numbers\n").unwrap();

    let id = alice.ok(&server, &["create", "planning", "--member", "bob"]);
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    alice.ok(
        &server,
        &[
            "send",
            "planning",
            "the report",
            "--attach",
            report.to_str().unwrap(),
        ],
    );
    alice.ok(&server, &["rename", id, "planning-q3"]);

    let history = bob.ok(&server, &["history", "planning-q3"]);
    let attachment = history
        .split("[attachment ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no attachment in {history}"));
    let output = files.path().join("downloaded.txt");
    bob.ok(
        &server,
        &["download", attachment, "--output", output.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "quarterly numbers\n"
    );

    let seq = history
        .lines()
        .find(|line| line.contains("the report"))
        .and_then(|line| line.strip_prefix('#'))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no message line in {history}"))
        .to_owned();
    alice.ok(&server, &["edit", "planning-q3", &seq, "the final report"]);
    let history = bob.ok(&server, &["history", "planning-q3"]);
    assert!(history.contains("the final report (edited)"), "{history}");

    alice.ok(&server, &["members", "remove", "planning-q3", "bob"]);
    let denied = bob.run(&server, &["history", id]);
    assert!(!denied.status.success(), "{denied}");
    alice.ok(&server, &["members", "add", "planning-q3", "bob"]);
    let direct = alice.ok(&server, &["dm", "bob"]);
    assert_eq!(direct.trim().len(), 36, "{direct}");
    assert_ne!(direct.trim(), id);

    bob.ok(&server, &["leave", "planning-q3"]);
    let list = bob.ok(&server, &["list"]);
    assert!(!list.contains("planning"), "{list}");
    let denied = bob.run(&server, &["send", id, "let me back"]);
    assert!(!denied.status.success(), "{denied}");
}

#[test]
fn names_never_redirect_messages() {
    let server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let alice = User::new("alice", ALICE_PASSWORD);
    let bob = User::new("bob", BOB_PASSWORD);

    // Reading the history of a user without a direct conversation creates none.
    let history = alice.run(&server, &["history", "bob"]);
    assert!(!history.status.success(), "{history}");
    let listed = bob.ok(&server, &["list"]);
    assert!(
        listed.trim().is_empty(),
        "bob sees a conversation: {listed}"
    );

    // A group named like a user does not receive what is sent to that name.
    let group = alice.ok(&server, &["create", "bob", "--member", "bob"]);
    let ambiguous = alice.run(&server, &["send", "bob", "for bob alone"]);
    assert!(!ambiguous.status.success(), "{ambiguous}");
    assert!(
        ambiguous.stderr.contains("both a group and a user"),
        "{ambiguous}"
    );
    assert!(ambiguous.stderr.contains(group.trim()), "{ambiguous}");
}
