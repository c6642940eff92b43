//! A group call in the desktop app end to end. The app runs under Xvfb,
//! driven through tauri-driver, and joins a conversation's call on a real
//! `hearth-server` with two `hearth room` CLI participants that stream
//! recordings. It shows them in a grid with the active speaker highlighted,
//! shares the Xvfb screen through the share picker, and leaves. Screenshots go to `target/e2e-screenshots/LANGUAGE/group-call`.
//!
//! Needs what `e2e_app.rs` needs; `scripts/test.sh` provides it.

mod e2e;

use std::time::{Duration, Instant};

use e2e::processes::{Cli, Process, Server, Xvfb, media};
use e2e::webdriver::Session;
use e2e::{App, FOREMAN, SPEECH, STEP, Translations, VideoSample, serial};
use serde_json::Value;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
const CAROL_PASSWORD: &str = "carol-password";
const GROUP: &str = "Design review";
/// The app's camera: a second recording, so that its self view differs
/// from the CLI participants, who send Foreman, a clip with enough motion
/// for the pixel samples to change within a second.
const PEOPLE: &str = "video/CiscoVT2people_320x192_12fps.y4m";
/// How long each CLI participant sends once the app joined. The app's
/// steps took about 10 s on an idle 2-core machine and up to 40 s on a
/// loaded one. The test waits for both to finish.
const ROOM_SECONDS: &str = "60";
/// How long the first decoded frame of each participant may take.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a remote tile may show the same picture.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the screen share runs before it is stopped.
const SHARE_DURATION: Duration = Duration::from_secs(6);

#[test]
fn group_call_in_english() {
    group_call("en");
}

#[test]
fn group_call_in_chinese() {
    group_call("zh-CN");
}

fn group_call(language: &str) {
    let _serial = serial();
    let started = Instant::now();
    let text = Translations::load(language);
    let xvfb = Xvfb::start();
    let server = Server::start(&[
        ("alice", ALICE_PASSWORD),
        ("bob", BOB_PASSWORD),
        ("carol", CAROL_PASSWORD),
    ]);
    let bob = Cli::new(&server, "bob", BOB_PASSWORD);
    let carol = Cli::new(&server, "carol", CAROL_PASSWORD);
    bob.run(
        &[
            "chat", "create", GROUP, "--member", "alice", "--member", "carol",
        ],
        STEP,
    );

    let foreman = media(FOREMAN);
    let app = App::launch(
        &xvfb,
        language,
        Some(&media(PEOPLE)),
        &format!("{language}/group-call"),
    );
    app.sign_in(&server, "alice", ALICE_PASSWORD);
    let page = &app.session;
    page.wait_for_text("[data-testid=conversation-item]", GROUP, STEP)
        .click();
    page.wait_for_text("[data-testid=conversation-title]", GROUP, STEP);

    let mut bob_room = join_from_cli(&bob, &foreman);
    let mut carol_room = join_from_cli(&carol, &foreman);
    let banner = page.wait_for("[data-testid=room-banner][data-count='2']", STEP);
    let in_progress = text.t("room.inProgress", &[("count", "2")]);
    assert!(
        banner.text().contains(&in_progress),
        "the banner shows {:?}, expected {in_progress:?}",
        banner.text()
    );
    app.screenshot("01-call-in-progress");

    page.wait_for("[data-testid=room-join]", STEP).click();
    page.wait_for("[data-testid=group-call][data-call-state=inRoom]", STEP);
    page.wait_for("[data-testid=room-count][data-count='3']", STEP);
    assert_grid(page);
    assert_remote_tiles_move(&app);
    let speaker = page.wait_for(
        "[data-testid=room-tile][data-self=false][data-speaking=true]",
        STEP,
    );
    let speaker_name = speaker.attribute("data-user").unwrap_or_default();
    assert!(
        speaker_name == "bob" || speaker_name == "carol",
        "the highlighted speaker is {speaker_name:?}, not a participant who talks"
    );
    app.screenshot("02-grid-with-speaker");

    share_screen(&app, &text);

    page.wait_for("[data-testid=room-leave]", STEP).click();
    let status = page.wait_for(
        "[data-testid=in-call][data-call-state=ended] [data-testid=call-status]",
        STEP,
    );
    assert_eq!(status.text(), text.t("call.ended.localHangUp", &[]));
    app.screenshot("06-left-the-call");

    let bob_report = finish(&mut bob_room);
    let carol_report = finish(&mut carol_room);
    assert_received_share(&bob_report, "bob", &bob_room.stderr());
    assert_received_video(&carol_report, "carol", &carol_room.stderr());

    eprintln!(
        "group_call({language}) took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        e2e::screenshot_dir()
            .join(language)
            .join("group-call")
            .display()
    );
    drop(app);
    assert!(
        !server.log().contains("panicked"),
        "hearth-server panicked\n{}",
        server.log()
    );
}

/// Starts `hearth room` for the group with `video` and speech, printing
/// its report as JSON when it ends.
fn join_from_cli(cli: &Cli<'_>, video: &std::path::Path) -> Process {
    let audio = media(SPEECH);
    let mut process = cli.spawn(&[
        "room",
        GROUP,
        "--video",
        &video.to_string_lossy(),
        "--audio",
        &audio.to_string_lossy(),
        "--seconds",
        ROOM_SECONDS,
        // The report names only participants who were in the call when
        // sending started, so the CLI waits for the app.
        "--wait-for",
        "3",
        "--json",
    ]);
    process.wait_for_output("joined the call", STEP);
    process
}

/// Checks one tile per participant, this device's first, in a grid.
fn assert_grid(page: &Session) {
    page.wait_for("[data-testid=room-grid]", STEP);
    let tiles = page.find_all("[data-testid=room-tile]");
    let users: Vec<String> = tiles
        .iter()
        .map(|tile| tile.attribute("data-user").unwrap_or_default())
        .collect();
    assert_eq!(users.len(), 3, "tiles for {users:?}, expected three");
    assert_eq!(
        users[0], "alice",
        "this device's tile is not first: {users:?}"
    );
    assert!(
        users.contains(&"bob".to_owned()) && users.contains(&"carol".to_owned()),
        "tiles for {users:?}, expected bob and carol"
    );
    let columns = page
        .wait_for("[data-testid=room-grid]", STEP)
        .attribute("data-columns");
    assert_eq!(
        columns.as_deref(),
        Some("2"),
        "three tiles in a wide window"
    );
}

/// Samples each remote tile until a second sample differs from the first:
/// both must be neither black nor flat. The second sample is taken a second
/// after the first, and again every second up to `CHANGE_TIMEOUT`, because
/// a receiver that lost a packet shows the last picture until the next
/// keyframe.
fn assert_remote_tiles_move(app: &App) {
    let page = &app.session;
    for user in ["bob", "carol"] {
        let canvas = format!(
            "[data-testid=room-tile][data-user={user}] [data-testid=tile-video][data-has-frame=true]"
        );
        let tile = page.wait_for(&canvas, FIRST_FRAME_TIMEOUT);
        assert_eq!(
            tile.attribute("data-renderer").as_deref(),
            Some("native"),
            "the default renderer on Linux"
        );
        let first = page.wait_until(&format!("pixels of {user}'s tile"), STEP, || {
            app.sample_video(&canvas)
        });
        assert_lit(&first, user, "first");
        let started = Instant::now();
        let (second, difference) = loop {
            std::thread::sleep(Duration::from_secs(1));
            let second = app.sample_video(&canvas).expect("the tile is still there");
            let difference = first.difference(&second);
            if difference > 1.0 || started.elapsed() >= CHANGE_TIMEOUT {
                break (second, difference);
            }
        };
        assert_lit(&second, user, "second");
        eprintln!(
            "{user}'s tile: mean luma {:.1}, changed by {difference:.2} in {:.1} s",
            first.mean(),
            started.elapsed().as_secs_f64()
        );
        assert!(
            difference > 1.0,
            "{user}'s tile did not change within {CHANGE_TIMEOUT:?}: mean luma difference {difference:.2}"
        );
    }
}

/// Checks that a sample is neither black nor one flat colour.
fn assert_lit(sample: &VideoSample, user: &str, label: &str) {
    assert!(
        sample.mean() > 20.0,
        "the {label} sample of {user}'s tile is black: mean luma {:.1}",
        sample.mean()
    );
    assert!(
        sample.spread() > 8.0,
        "the {label} sample of {user}'s tile is one flat colour: luma deviation {:.1}",
        sample.spread()
    );
}

/// Opens the share picker, shares the Xvfb screen, checks that it is shown
/// large with the tiles beside it, and stops sharing.
fn share_screen(app: &App, text: &Translations) {
    let page = &app.session;
    page.wait_for("[data-testid=room-share]", STEP).click();
    page.wait_for("[data-testid=share-picker]", STEP);
    let thumbnail_canvas = "[data-testid=share-source][data-kind=screen] canvas";
    page.wait_for(thumbnail_canvas, STEP);
    // The canvas exists a moment before the page draws the thumbnail into it.
    let thumbnail = page.wait_until("a drawn thumbnail of the screen", STEP, || {
        VideoSample::take(page, thumbnail_canvas).filter(|sample| sample.spread() > 8.0)
    });
    assert!(
        thumbnail.mean() > 20.0,
        "the screen's thumbnail is black: mean luma {:.1}",
        thumbnail.mean()
    );
    app.screenshot("03-share-picker");

    page.wait_for("[data-testid=share-source][data-kind=screen]", STEP)
        .click();
    page.wait_for("[data-testid=room-screen][data-own=true]", STEP);
    page.wait_for("[data-testid=room-stop-share]", STEP);
    let label = page.wait_for("[data-testid=room-screen-label]", STEP);
    assert_eq!(label.text(), text.t("room.sharingYou", &[]));
    page.wait_for(
        "[data-testid=screen-video][data-has-frame=true]",
        FIRST_FRAME_TIMEOUT,
    );
    let side_tiles = page.find_all("[data-testid=room-side] [data-testid=room-tile]");
    assert_eq!(side_tiles.len(), 3, "the tiles beside the shared screen");
    std::thread::sleep(SHARE_DURATION);
    app.screenshot("04-sharing-screen");

    page.wait_for("[data-testid=room-stop-share]", STEP).click();
    page.wait_for("[data-testid=room-grid]", STEP);
    page.wait_for_absence("[data-testid=room-screen]", STEP);
    page.wait_for("[data-testid=room-share]", STEP);
    app.screenshot("05-share-stopped");
}

/// Waits for a `hearth room` to end and returns its JSON report.
fn finish(process: &mut Process) -> Value {
    let status = process.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "hearth room failed: {status}\n{}",
        process.output()
    );
    serde_json::from_str(process.stdout().trim()).unwrap_or_else(|err| {
        panic!(
            "hearth room printed no JSON report: {err}\n{}",
            process.output()
        )
    })
}

/// Returns what a CLI participant received from alice, the app.
fn from_alice<'a>(report: &'a Value, receiver: &str) -> &'a Value {
    report["received"]
        .as_object()
        .and_then(|received| received.values().find(|from| from["user"] == "alice"))
        .unwrap_or_else(|| panic!("{receiver} received nothing from alice: {report}"))
}

/// Checks that a CLI participant decoded alice's camera; `log` is its
/// stderr, for the failure message.
fn assert_received_video(report: &Value, receiver: &str, log: &str) {
    let from = from_alice(report, receiver);
    let frames = from["video_frames"].as_u64().unwrap_or_default();
    eprintln!("{receiver} decoded {frames} video frames from alice");
    assert!(
        frames > 30,
        "{receiver} decoded {frames} video frames from alice: {from}\n--- {receiver}'s log\n{log}"
    );
}

/// Checks that a CLI participant decoded alice's camera and her screen
/// share at the Xvfb screen's size.
fn assert_received_share(report: &Value, receiver: &str, log: &str) {
    assert_received_video(report, receiver, log);
    let from = from_alice(report, receiver);
    let frames = from["screen_frames"].as_u64().unwrap_or_default();
    eprintln!(
        "{receiver} decoded {frames} screen share frames from alice, last {}x{}",
        from["screen_width"], from["screen_height"]
    );
    // NOTE: the share runs at 10 frames per second, but a CLI receiver
    // decoded between 2 and 55 of them in 6 s on a loaded 2-core machine.
    // Two CLI participants show the same below the app: a share of a still
    // screen arrived at about 5 pictures a second, but one of a playing
    // video arrived as 1 to 33 pictures in 12 s over five runs. So this
    // checks delivery, not rate.
    assert!(
        frames >= 1,
        "{receiver} decoded no screen share frames from alice: {from}\n--- {receiver}'s log\n{log}"
    );
    assert_eq!(
        (
            from["screen_width"].as_u64(),
            from["screen_height"].as_u64()
        ),
        (Some(1100), Some(720)),
        "the screen share's size is not the Xvfb screen's: {from}"
    );
}
