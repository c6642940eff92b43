//! The desktop app end to end: the app binary with its embedded UI under
//! Xvfb, driven through tauri-driver (W3C WebDriver), against a real
//! `hearth-server` on loopback, with the `hearth` CLI as the other person.
//!
//! Needs Xvfb, tauri-driver, WebKitWebDriver, a Secret Service for the
//! refresh token and the app built with the `custom-protocol` feature;
//! `scripts/test.sh` provides all of them. Screenshots of every screen in
//! both languages go to `target/e2e-screenshots/`.

mod e2e;

use std::time::{Duration, Instant};

use e2e::processes::{Cli, Server, Xvfb, free_port, media};
use e2e::webdriver::Session;
use e2e::{App, FOREMAN, SPEECH, STEP, Translations, pem_fingerprint, serial};
use serde_json::json;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
/// How long bob's `hearth call` streams unless alice hangs up first.
const CALL_SECONDS: &str = "20";
/// How long the first decoded remote frame may take after accepting.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);

#[test]
fn chat_and_call_in_english() {
    chat_and_call("en");
}

#[test]
fn chat_and_call_in_chinese() {
    chat_and_call("zh-CN");
}

#[test]
fn embedded_server_first_run_in_english() {
    embedded_server_first_run("en");
}

#[test]
fn embedded_server_first_run_in_chinese() {
    embedded_server_first_run("zh-CN");
}

/// Connects to a server with a self-signed certificate, signs in as alice
/// after bad input, chats with bob and takes a video call from him.
fn chat_and_call(language: &str) {
    let _serial = serial();
    let started = Instant::now();
    let text = Translations::load(language);
    let xvfb = Xvfb::start();
    let server = Server::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let bob = Cli::new(&server, "bob", BOB_PASSWORD);
    let foreman = media(FOREMAN);
    let app = App::launch(
        &xvfb,
        language,
        Some(&foreman),
        &format!("{language}/chat-and-call"),
    );
    let page = &app.session;

    connect_after_bad_addresses(&app, &server, &text);
    sign_in_after_wrong_password(&app, &text);
    let conversation = chat_with_bob(&app, &bob);
    take_video_call(&app, &bob, &text);

    // The call record joins the conversation once the call ends.
    page.wait_for(
        &format!("[data-testid=conversation][data-conversation-id='{conversation}'] [data-testid=message][data-kind=call]"),
        STEP,
    );
    app.screenshot("10-call-record");

    open_settings(&app, &text);
    if language == "en" {
        switch_language(page, "zh-CN", &Translations::load("zh-CN"));
        app.screenshot("12-settings-switched-to-chinese");
        switch_language(page, "en", &text);
    }

    eprintln!(
        "chat_and_call({language}) took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        e2e::screenshot_dir().join(language).display()
    );
    drop(app);
    assert!(
        !server.log().contains("panicked"),
        "hearth-server panicked\n{}",
        server.log()
    );
}

/// Rejects a malformed and an unreachable address with a message in the
/// app's language, then checks the real server and trusts its certificate
/// after comparing the fingerprint.
fn connect_after_bad_addresses(app: &App, server: &Server, text: &Translations) {
    let page = &app.session;
    page.wait_for("[data-testid=choose-connect]", STEP);
    app.screenshot("01-first-run");
    page.wait_for("[data-testid=choose-connect]", STEP).click();

    let address = page.wait_for("[data-testid=connect-address]", STEP);
    address.type_text("https://chat example..org");
    page.wait_for("[data-testid=connect-submit]", STEP).click();
    let problem = page.wait_for("[data-testid=connect-address-problem]", STEP);
    assert_eq!(problem.text(), text.t("validate.addressInvalid", &[]));
    app.screenshot("02-address-malformed");

    // Nothing listens on a port that was free a moment ago.
    address.type_text(&format!("127.0.0.1:{}", free_port()));
    page.wait_for("[data-testid=connect-submit]", STEP).click();
    let error = page.wait_for("[data-testid=connect-form] [data-testid=error]", STEP);
    let unreachable = text.t("error.unreachable", &[]);
    assert!(
        error.text().starts_with(&unreachable),
        "the unreachable address showed {:?}, expected {unreachable:?} first",
        error.text()
    );
    app.screenshot("03-address-unreachable");

    address.type_text(server.address());
    page.wait_for("[data-testid=connect-submit]", STEP).click();
    let fingerprint = page.wait_for("[data-testid=server-fingerprint]", STEP);
    assert_eq!(
        fingerprint.text().trim(),
        pem_fingerprint(&server.cert_path()),
        "the app shows another fingerprint than the server's certificate has"
    );
    app.screenshot("04-trust-certificate");
    page.wait_for("[data-testid=trust-certificate]", STEP)
        .click();
}

/// Rejects a wrong password with a message in the app's language, then signs
/// in as alice on the same form.
fn sign_in_after_wrong_password(app: &App, text: &Translations) {
    let page = &app.session;
    page.wait_for("[data-testid=sign-in-user]", STEP)
        .type_text("alice");
    let password = page.wait_for("[data-testid=sign-in-password]", STEP);
    password.type_text("not-alice-password");
    page.wait_for("[data-testid=sign-in-submit]", STEP).click();
    let error = page.wait_for("[data-testid=sign-in-form] [data-testid=error]", STEP);
    let wrong = text.t("error.wrongPassword", &[]);
    assert!(
        error.text().starts_with(&wrong),
        "the wrong password showed {:?}, expected {wrong:?} first",
        error.text()
    );
    app.screenshot("05-sign-in-wrong-password");

    password.type_text(ALICE_PASSWORD);
    page.wait_for("[data-testid=sign-in-submit]", STEP).click();
    page.wait_for_text("[data-testid=account-user]", "alice", STEP);
    page.wait_for(
        "[data-testid=connection-state][data-connection=online]",
        STEP,
    );
    app.screenshot("06-signed-in");
}

/// Opens the conversation with bob, sends him a message that the CLI
/// receives as bob, and shows his reply. Returns the conversation id.
fn chat_with_bob(app: &App, bob: &Cli<'_>) -> String {
    let page = &app.session;
    let mut watch = bob.spawn(&["chat", "watch"]);
    watch.wait_for_output("watching as bob", STEP);

    page.wait_for("[data-testid=new-conversation]", STEP)
        .click();
    page.wait_for("[data-testid=user-item][data-user=bob]", STEP)
        .click();
    page.wait_for_text("[data-testid=conversation-title]", "bob", STEP);
    let conversation = page
        .wait_for("[data-testid=conversation]", STEP)
        .attribute("data-conversation-id")
        .expect("the conversation view names its conversation");

    let greeting = format!("Hello bob, from the desktop app {}", std::process::id());
    page.wait_for("[data-testid=composer-input]", STEP)
        .type_text(&greeting);
    page.wait_for("[data-testid=composer-send]", STEP).click();
    page.wait_for_text("[data-testid=message-text]", &greeting, STEP);
    watch.wait_for_output(&greeting, STEP);
    drop(watch);
    let history = bob.run(&["chat", "history", "alice"], STEP);
    assert!(
        history.contains(&greeting),
        "bob's history of the conversation with alice lacks {greeting:?}:\n{history}"
    );

    let reply = "Hi alice, got it";
    bob.run(&["chat", "send", "alice", reply], STEP);
    page.wait_for_text("[data-testid=message-text]", reply, STEP);
    page.wait_for("[data-testid=conversation-item]", STEP);
    app.screenshot("07-conversation");
    conversation
}

/// Takes bob's video call with video, checks that the remote video moves,
/// mutes and hangs up.
fn take_video_call(app: &App, bob: &Cli<'_>, text: &Translations) {
    let page = &app.session;
    let video = media(FOREMAN);
    let audio = media(SPEECH);
    let mut call = bob.spawn(&[
        "call",
        "alice",
        "--video",
        &video.to_string_lossy(),
        "--audio",
        &audio.to_string_lossy(),
        "--seconds",
        CALL_SECONDS,
    ]);

    page.wait_for_text("[data-testid=incoming-caller]", "bob", STEP);
    app.screenshot("08-incoming-call");
    page.wait_for("[data-testid=incoming-accept-video]", STEP)
        .click();

    page.wait_for("[data-testid=in-call][data-call-state=connected]", STEP);
    page.wait_for(
        "[data-testid=remote-video][data-has-frame=true]",
        FIRST_FRAME_TIMEOUT,
    );
    page.wait_for("[data-testid=self-video][data-has-frame=true]", STEP);
    let remote = page.wait_for("[data-testid=remote-video]", STEP);
    assert_eq!(
        remote.attribute("data-renderer").as_deref(),
        Some("native"),
        "the default renderer on Linux"
    );
    assert_remote_video_moves(app);
    app.screenshot("09-in-call");

    let mute = page.wait_for("[data-testid=call-mute]", STEP);
    mute.click();
    page.wait_for("[data-testid=call-mute][aria-pressed=true]", STEP);
    assert_eq!(mute.text(), text.t("call.unmute", &[]));

    page.wait_for("[data-testid=call-hangup]", STEP).click();
    let status = page.wait_for(
        "[data-testid=in-call][data-call-state=ended] [data-testid=call-status]",
        STEP,
    );
    assert_eq!(status.text(), text.t("call.ended.localHangUp", &[]));

    // `hearth call` ends successfully when the other side hangs up.
    let exit = call.wait(STEP);
    assert!(
        exit.success(),
        "bob's hearth call failed: {exit}\n{}",
        call.output()
    );
}

/// Samples the remote video twice, a second apart: it must be neither black
/// nor flat, and it must change.
fn assert_remote_video_moves(app: &App) {
    let canvas = "[data-testid=remote-video]";
    let first = app
        .session
        .wait_until("pixels of the remote video", STEP, || {
            app.sample_video(canvas)
        });
    std::thread::sleep(Duration::from_secs(1));
    let second = app
        .sample_video(canvas)
        .expect("the remote video is still there");

    for (name, sample) in [("first", &first), ("second", &second)] {
        assert!(
            sample.mean() > 20.0,
            "the {name} remote video sample is black: mean luma {:.1}",
            sample.mean()
        );
        assert!(
            sample.spread() > 8.0,
            "the {name} remote video sample is one flat colour: luma deviation {:.1}",
            sample.spread()
        );
    }
    let difference = first.difference(&second);
    assert!(
        difference > 1.0,
        "the remote video did not change within a second: mean luma difference {difference:.2}"
    );
}

fn open_settings(app: &App, text: &Translations) {
    let page = &app.session;
    page.wait_for_absence("[data-testid=in-call]", STEP);
    page.wait_for("[data-testid=settings-open]", STEP).click();
    let dialog = page.wait_for("[data-testid=settings]", STEP);
    assert!(
        dialog.text().contains(&text.t("settings.title", &[])),
        "the settings dialog lacks its title {:?}",
        text.t("settings.title", &[])
    );
    let preview = "[data-testid=settings] [data-testid=self-video]";
    page.wait_for(&format!("{preview}[data-has-frame=true]"), STEP);
    let sample = page.wait_until("pixels of the camera preview", STEP, || {
        app.sample_video(preview)
    });
    assert!(
        sample.mean() > 20.0,
        "the camera preview is black: mean luma {:.1}",
        sample.mean()
    );
    app.screenshot("11-settings");
    assert_preview_clipped_when_scrolled(app);
}

/// Scrolls the settings until the camera preview slides under the dialog's
/// header, and checks that the natively drawn preview follows the scroll and
/// is clipped to the scrolled area: the header looks as it did before.
fn assert_preview_clipped_when_scrolled(app: &App) {
    let page = &app.session;
    let header = "[data-testid=settings] .modal-header";
    let before = app
        .sample_screen(header)
        .expect("the settings header is on the screen");
    let scrolled = page.execute(
        r#"
        const body = document.querySelector("[data-testid=settings] .modal-body");
        const preview = document.querySelector("[data-testid=settings] [data-testid=self-video]");
        const overlap = 40;
        // The dialog grows past a short window instead of scrolling, so cap it.
        body.style.maxHeight = "400px";
        body.scrollTop += preview.getBoundingClientRect().top - body.getBoundingClientRect().top + overlap;
        return preview.getBoundingClientRect().top < body.getBoundingClientRect().top;
        "#,
        json!([]),
    );
    assert_eq!(
        scrolled,
        json!(true),
        "the settings did not scroll the preview above their top"
    );
    // The page reports the new place on its next animation frame.
    std::thread::sleep(Duration::from_millis(500));
    app.screenshot("11-settings-scrolled");
    let after = app
        .sample_screen(header)
        .expect("the settings header is on the screen");
    let difference = before.difference(&after);
    assert!(
        difference < 2.0,
        "the camera preview was drawn over the settings header: mean luma difference {difference:.2}"
    );
    page.execute(
        r#"
        const body = document.querySelector("[data-testid=settings] .modal-body");
        body.scrollTop = 0;
        body.style.maxHeight = "";
        "#,
        json!([]),
    );
}

/// Picks `language` in the open settings and waits for the page to follow.
fn switch_language(page: &Session, language: &str, text: &Translations) {
    let select = "[data-testid=settings-language]";
    page.wait_for(select, STEP);
    // A select's option list is native UI that WebDriver cannot click reliably
    // in WebKitGTK, so the value is set and the change event sent instead.
    page.execute(
        r#"const select = document.querySelector(arguments[0]);
           select.value = arguments[1];
           select.dispatchEvent(new Event("change", { bubbles: true }));"#,
        serde_json::json!([select, language]),
    );
    page.wait_for_text(
        "[data-testid=settings]",
        &text.t("settings.title", &[]),
        STEP,
    );
    page.wait_until(&format!("<html lang={language}>"), STEP, || {
        let lang = page.execute(
            "return document.documentElement.lang",
            serde_json::json!([]),
        );
        (lang.as_str() == Some(language)).then_some(())
    });
}

/// Chooses "Start a server on this computer" in a fresh profile, rejects a
/// short password, and ends signed in to the embedded server.
fn embedded_server_first_run(language: &str) {
    let _serial = serial();
    let started = Instant::now();
    let text = Translations::load(language);
    let xvfb = Xvfb::start();
    let app = App::launch(
        &xvfb,
        language,
        None,
        &format!("{language}/embedded-server"),
    );
    let page = &app.session;

    page.wait_for("[data-testid=choose-host]", STEP).click();
    page.wait_for("[data-testid=host-user]", STEP)
        .type_text("admin");
    let password = page.wait_for("[data-testid=host-password]", STEP);
    let confirmation = page.wait_for("[data-testid=host-password-confirm]", STEP);
    password.type_text("short");
    confirmation.type_text("short");
    page.wait_for("[data-testid=start-server]", STEP).click();
    let problem = page.wait_for("[data-testid=host-password-problem]", STEP);
    // The element can exist a moment before its text is rendered.
    let deadline = std::time::Instant::now() + STEP;
    let mut shown = problem.text();
    while shown.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        shown = problem.text();
    }
    assert_eq!(shown, text.t("validate.passwordShort", &[("min", "8")]));
    app.screenshot("01-host-password-short");

    password.type_text("admin-password");
    confirmation.type_text("admin-password");
    page.wait_for("[data-testid=start-server]", STEP).click();
    let join_url = page.wait_for("[data-testid=join-url]", STEP);
    let join_url = join_url.property("value").unwrap_or_default();
    assert!(
        join_url.starts_with("https://"),
        "the join address {join_url:?} is not an https URL"
    );
    let fingerprint = page.wait_for("[data-testid=server-fingerprint]", STEP);
    assert!(
        hearth_client::trust::normalize_fingerprint(
            &fingerprint.property("value").unwrap_or_default()
        )
        .is_some(),
        "the embedded server's fingerprint is not a SHA-256 fingerprint"
    );
    app.screenshot("02-server-ready");

    page.wait_for("[data-testid=open-app]", STEP).click();
    page.wait_for_text("[data-testid=account-user]", "admin", STEP);
    page.wait_for(
        "[data-testid=connection-state][data-connection=online]",
        STEP,
    );
    app.screenshot("03-signed-in-to-own-server");

    eprintln!(
        "embedded_server_first_run({language}) took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        e2e::screenshot_dir().join(language).display()
    );
}
