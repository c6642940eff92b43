//! `hearth login` through the browser and with a password, and `hearth
//! logout`, against a server on loopback. The keyring cases need a Secret
//! Service: run them inside `dbus-run-session` with an unlocked gnome-keyring,
//! as `scripts/test.sh` does.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::Process;
use hearth_client::credentials::Account;

const PASSWORD: &str = "login-password";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Returns false, after checking that this is not CI, when there is no
/// Secret Service to test against.
fn require_secret_service() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test under dbus-run-session with gnome-keyring, as scripts/test.sh does"
    );
    eprintln!("skipped: no D-Bus session bus; run under dbus-run-session with gnome-keyring");
    false
}

/// A server in this process with user alice, and its certificate in a file.
struct Embedded {
    server: hearth_server::RunningServer,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let server = hearth_server::start(hearth_server::Config {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    server.add_user("alice", PASSWORD).await.unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, server.certificate_pem()).unwrap();
    Embedded {
        server,
        cert,
        _dir: dir,
    }
}

/// Fills in the server's sign-in page at `url` as alice and follows the
/// redirect to `hearth login`'s loopback listener. Returns that page.
async fn sign_in_as_alice(embedded: &Embedded, url: &str) -> String {
    let endpoint = hearth_client::ServerEndpoint::new(
        &embedded.server.base_url(),
        Some(embedded.server.certificate_pem()),
    )
    .unwrap();
    let tls = (*endpoint.tls_config()).clone();
    let browser = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = browser.get(url).send().await.unwrap().text().await.unwrap();
    let form = [
        ("request", hidden_value(&html, "request")),
        ("csrf", hidden_value(&html, "csrf")),
        ("action", "password".to_owned()),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let submitted = browser
        .post(format!(
            "{}{}",
            embedded.server.base_url(),
            hearth_proto::AUTHORIZE_PATH
        ))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303, "the sign-in form was rejected");
    let target = submitted.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        target.starts_with("http://127.0.0.1:"),
        "redirect to {target}"
    );
    browser
        .get(&target)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field: {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

fn account(embedded: &Embedded) -> Account {
    Account {
        server: embedded.server.base_url(),
        user: "alice".to_owned(),
    }
}

/// Runs `hearth logout` and checks that it revoked and forgot the session.
fn logout_and_check(config: &std::path::Path, embedded: &Embedded) {
    let refresh_token = account(embedded)
        .load_refresh_token()
        .unwrap()
        .expect("login stored no refresh token");

    let output = common::run(common::hearth(config).arg("logout"), "", TIMEOUT);
    assert!(output.status.success(), "{output}");
    assert!(output.stdout.contains("signed out alice"), "{output}");
    assert_eq!(account(embedded).load_refresh_token().unwrap(), None);

    let runtime = tokio::runtime::Handle::current();
    let endpoint = hearth_client::ServerEndpoint::new(
        &embedded.server.base_url(),
        Some(embedded.server.certificate_pem()),
    )
    .unwrap();
    let refreshed = tokio::task::block_in_place(|| {
        runtime.block_on(hearth_client::auth::refresh(&endpoint, &refresh_token))
    });
    assert!(refreshed.is_err(), "the refresh token survived logout");

    let again = common::run(common::hearth(config).arg("logout"), "", TIMEOUT);
    assert!(again.stdout.contains("not signed in"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_then_logout() {
    if !require_secret_service() {
        return;
    }
    let embedded = start_server().await;
    let config = tempfile::tempdir().unwrap();
    let child = common::hearth(config.path())
        .args(["login", &embedded.server.base_url(), "--no-browser"])
        .arg("--ca-cert")
        .arg(&embedded.cert)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth login starts");
    let mut login = Process::new(child);
    let url = tokio::task::block_in_place(|| login.wait_for_line("https://", TIMEOUT));
    assert!(url.contains("client_id=hearth-cli"), "{url}");

    let page = sign_in_as_alice(&embedded, url.trim()).await;
    assert!(page.contains("Signed in to Hearth as alice"), "{page}");
    let output = tokio::task::block_in_place(|| login.wait(TIMEOUT));
    assert!(output.status.success(), "{output}");
    assert!(output.stdout.contains("signed in as alice at"), "{output}");
    assert!(
        !output
            .stdout
            .contains(&account(&embedded).load_refresh_token().unwrap().unwrap()),
        "the refresh token was printed"
    );

    logout_and_check(config.path(), &embedded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_then_logout() {
    if !require_secret_service() {
        return;
    }
    let embedded = start_server().await;
    let config = tempfile::tempdir().unwrap();
    let base_url = embedded.server.base_url();
    let output = tokio::task::block_in_place(|| {
        common::run(
            common::hearth(config.path())
                .args(["login", "--password", "--user", "alice", "--password-stdin"])
                .arg(&base_url)
                .arg("--ca-cert")
                .arg(&embedded.cert),
            &format!("{PASSWORD}\n"),
            TIMEOUT,
        )
    });
    assert!(output.status.success(), "{output}");
    assert!(output.stdout.contains("signed in as alice at"), "{output}");

    tokio::task::block_in_place(|| logout_and_check(config.path(), &embedded));
}

#[test]
fn old_login_form_explains_fix() {
    let config = tempfile::tempdir().unwrap();
    let output = common::run(
        common::hearth(config.path()).args(["login", "alice", "--server", "https://127.0.0.1:9"]),
        "",
        TIMEOUT,
    );
    assert!(!output.status.success(), "{output}");
    assert!(
        output
            .stderr
            .contains("hearth login --password --user alice https://HOST:PORT"),
        "{output}"
    );
}

#[test]
fn password_without_user_rejected() {
    let config = tempfile::tempdir().unwrap();
    let output = common::run(
        common::hearth(config.path()).args(["login", "--password", "https://127.0.0.1:9"]),
        "",
        TIMEOUT,
    );
    assert!(!output.status.success(), "{output}");
    assert!(
        output.stderr.contains("--password needs --user NAME"),
        "{output}"
    );
}
