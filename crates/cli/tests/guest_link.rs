//! `hearth guest-link` end to end against a real `hearth-server` process.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Output, ServerProcess};

/// Runs `hearth ARGS…` as `user`, whose password is `<user>-password`.
fn hearth_as(server: &ServerProcess, user: &str, args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut command: Command = common::hearth(config.path());
    command
        .env("HEARTH_CLIENT_DATA_DIR", data.path())
        .args(args)
        .args(["--server", &server.url])
        .arg("--ca-cert")
        .arg(server.cert_path())
        .args(["--user", user, "--password-stdin"]);
    common::run(
        &mut command,
        &format!("{user}-password\n"),
        Duration::from_secs(60),
    )
}

#[test]
fn guest_link_created_and_revoked() {
    let server = ServerProcess::start(&[
        ("alice", "alice-password"),
        ("bob", "bob-password"),
        ("carol", "carol-password"),
    ]);
    let created = hearth_as(
        &server,
        "alice",
        &["chat", "create", "team", "--member", "bob"],
    );
    assert!(created.status.success(), "{created}");
    let conversation_id = created.stdout.trim().to_owned();

    let link = hearth_as(&server, "bob", &["guest-link", "team", "--minutes", "30"]);
    assert!(
        link.status.success(),
        "{link}\n--- server log\n{}",
        server.log()
    );
    let url = link.stdout.trim();
    assert!(
        url.starts_with(&format!("{}/guest/", server.url)),
        "expected a guest page address, got {url:?}"
    );
    // The time between creating the invitation and printing it rounds the
    // 30 minutes down to 29, or not.
    assert!(
        link.stderr.contains("expires in 29 minutes")
            || link.stderr.contains("expires in 30 minutes"),
        "{link}"
    );
    let secret = url.rsplit('/').next().unwrap();
    assert!(
        !server.log().contains(secret),
        "the server logged the invitation secret"
    );
    let invitation_id = link
        .stderr
        .split("invitation ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no invitation id in {link}"))
        .to_owned();

    let revoked = hearth_as(
        &server,
        "alice",
        &["guest-link", "--revoke", &invitation_id],
    );
    assert!(revoked.status.success(), "{revoked}");
    assert!(revoked.stdout.contains(&invitation_id), "{revoked}");

    let outsider = hearth_as(&server, "carol", &["guest-link", &conversation_id]);
    assert!(!outsider.status.success(), "{outsider}");
    // Carol has no such conversation stored, so the CLI stops before the
    // server. The server's own membership check is tested in crates/server.
    assert!(outsider.stderr.contains(&conversation_id), "{outsider}");

    let too_short = hearth_as(&server, "alice", &["guest-link", "team", "--minutes", "0"]);
    assert!(!too_short.status.success(), "{too_short}");
    assert!(too_short.stderr.contains("ttl_secs 0"), "{too_short}");
}
