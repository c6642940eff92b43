//! Adding a person to a one-to-one call in the desktop app, end to end. The
//! app (alice) calls bob, a `hearth answer` on a real `hearth-server`, and
//! adds carol through the call's "Add person" panel. The call moves into the
//! group call of a new group of the three: the app shows the group call, bob
//! follows it there, and carol joins it with `hearth room`. Screenshots go to
//! `target/e2e-screenshots/en/call-moves`.
//!
//! Needs what `e2e_app.rs` needs; `scripts/test.sh` provides it.

mod e2e;

use std::time::Duration;

use e2e::processes::{Cli, Server, Xvfb, media};
use e2e::{App, FOREMAN, SPEECH, STEP, serial};
use serde_json::Value;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
const CAROL_PASSWORD: &str = "carol-password";
/// The group the app creates when alice adds carol to her call with bob.
const GROUP: &str = "alice, bob, carol";
/// How long the first decoded frame may take.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long carol sends once everyone is in the group call.
const CAROL_SECONDS: &str = "8";

#[test]
fn one_to_one_call_gains_a_third_person() {
    let _serial = serial();
    let xvfb = Xvfb::start();
    let server = Server::start(&[
        ("alice", ALICE_PASSWORD),
        ("bob", BOB_PASSWORD),
        ("carol", CAROL_PASSWORD),
    ]);
    let bob = Cli::new(&server, "bob", BOB_PASSWORD);
    let carol = Cli::new(&server, "carol", CAROL_PASSWORD);
    bob.run(&["chat", "dm", "alice"], STEP);
    let record = tempfile::tempdir().unwrap();
    let mut answer = bob.spawn(&["answer", "--record", &record.path().to_string_lossy()]);
    answer.wait_for_output("waiting for a call", STEP);

    let foreman = media(FOREMAN);
    let app = App::launch(&xvfb, "en", Some(&foreman), "en/call-moves");
    app.sign_in(&server, "alice", ALICE_PASSWORD);
    let page = &app.session;
    page.wait_for_text("[data-testid=conversation-item]", "bob", STEP)
        .click();
    page.wait_for_text("[data-testid=conversation-title]", "bob", STEP);
    page.wait_for("[data-testid=call-video]", STEP).click();
    page.wait_for("[data-testid=in-call][data-call-state=connected]", STEP);
    page.wait_for("[data-testid=self-video][data-has-frame=true]", STEP);
    app.screenshot("01-one-to-one");

    page.wait_for("[data-testid=call-add-toggle]", STEP).click();
    page.wait_for("[data-testid=call-add]", STEP);
    // The picker lists everyone but alice and bob.
    let choices = page.wait_until("the people alice can add", STEP, || {
        let choices = page.execute(
            r#"const select = document.querySelector("[data-testid=call-add-user]");
               return select ? Array.from(select.options).map((option) => option.value) : null;"#,
            serde_json::json!([]),
        );
        choices.as_array().cloned()
    });
    assert_eq!(
        choices,
        vec![Value::from("carol")],
        "the people alice can add"
    );
    app.screenshot("02-add-person");
    // A select's option list is native UI that WebDriver cannot click
    // reliably in WebKitGTK, so the value is set and the change event sent.
    page.execute(
        r#"const select = document.querySelector("[data-testid=call-add-user]");
           select.value = "carol";
           select.dispatchEvent(new Event("change", { bubbles: true }));"#,
        serde_json::json!([]),
    );
    page.wait_for("[data-testid=call-add-confirm]", STEP)
        .click();

    page.wait_for("[data-testid=group-call][data-call-state=inRoom]", STEP);
    page.wait_for("[data-testid=room-count][data-count='2']", STEP);
    answer.wait_for_output("the call moved into the group call", STEP);

    let audio = media(SPEECH);
    let mut carol_room = carol.spawn(&[
        "room",
        GROUP,
        "--video",
        &foreman.to_string_lossy(),
        "--audio",
        &audio.to_string_lossy(),
        "--seconds",
        CAROL_SECONDS,
        "--wait-for",
        "3",
        "--json",
    ]);
    page.wait_for("[data-testid=room-count][data-count='3']", STEP);
    page.wait_for(
        "[data-testid=room-tile][data-user=carol] [data-testid=tile-video][data-has-frame=true]",
        FIRST_FRAME_TIMEOUT,
    );
    app.screenshot("03-group-call");

    let status = carol_room.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "carol's hearth room failed: {status}\n{}",
        carol_room.output()
    );
    let report: Value = serde_json::from_str(carol_room.stdout().trim())
        .unwrap_or_else(|err| panic!("no JSON report from carol: {err}\n{}", carol_room.output()));
    let from_alice = report["received"]
        .as_object()
        .and_then(|received| received.values().find(|from| from["user"] == "alice"))
        .unwrap_or_else(|| panic!("carol received nothing from alice: {report}"));
    let frames = from_alice["video_frames"].as_u64().unwrap_or_default();
    assert!(
        frames > 30,
        "carol decoded {frames} frames from alice: {report}"
    );

    page.wait_for("[data-testid=room-leave]", STEP).click();
    page.wait_for("[data-testid=in-call][data-call-state=ended]", STEP);

    // bob leaves once alice left, and reports what came through the room.
    let exit = answer.wait(STEP);
    let output = answer.output();
    assert!(
        exit.success(),
        "bob's hearth answer failed: {exit}\n{output}"
    );
    let line = output
        .lines()
        .find(|line| line.starts_with("from alice through the group call:"))
        .unwrap_or_else(|| panic!("bob reported nothing from alice in the group call:\n{output}"));
    let frames: u64 = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_default();
    eprintln!("bob: {line}");
    assert!(
        frames > 30,
        "bob decoded {frames} frames from alice in the group call:\n{output}"
    );
    drop(app);
    assert!(
        !server.log().contains("panicked"),
        "hearth-server panicked\n{}",
        server.log()
    );
}
