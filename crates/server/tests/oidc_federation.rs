//! Sign-in through a real OpenID Connect provider: the npm package
//! oidc-provider, run by Node from `tests/oidc-provider/` over HTTPS with a
//! certificate from a private CA that this test generates.
//!
//! Needs `node` (20 or newer) and `npm ci --prefix tests/oidc-provider`, which
//! `scripts/install-deps.sh` runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::{Browser, Page, Pkce, authorize_url, query_value};
use common::{PASSWORD, TestServer};
use hearth_proto::oauth::TokenResponse;
use hearth_server::Secret;
use hearth_server::config::OidcConfig;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

const CLIENT_ID: &str = "hearth";
const CLIENT_SECRET: &str = "federation-test-secret";
const BUTTON_LABEL: &str = "Example SSO";
/// How long the provider may take to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A private CA, a certificate for 127.0.0.1 signed by it, and the
/// provider's ID token signing key.
struct TestPki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
    signing_key_pem: String,
}

fn generate_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Hearth test identity CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
        signing_key_pem: KeyPair::generate().unwrap().serialize_pem(),
    }
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider")
}

/// The oidc-provider process. Dropping it closes its standard input, which
/// stops it, and kills it as a fallback.
struct Provider {
    issuer: String,
    claims_file: PathBuf,
    _stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

impl Provider {
    /// Sets the claims the provider returns for `subject`.
    fn set_claims(&self, subject: &str, claims: serde_json::Value) {
        let mut all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&self.claims_file).unwrap()).unwrap();
        all.insert(subject.to_owned(), claims);
        std::fs::write(&self.claims_file, serde_json::to_string(&all).unwrap()).unwrap();
    }
}

type ProviderStdout = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Reads the provider's next line of output, failing the test with its error
/// output when it exits or takes longer than [`STARTUP_TIMEOUT`].
async fn read_line(stdout: &mut ProviderStdout, stderr_file: &Path) -> String {
    let stderr = || std::fs::read_to_string(stderr_file).unwrap_or_default();
    let line = tokio::time::timeout(STARTUP_TIMEOUT, stdout.next_line())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for the OIDC provider: {}", stderr()))
        .unwrap();
    line.unwrap_or_else(|| panic!("the OIDC provider exited: {}", stderr()))
}

/// A Hearth server federated with a provider, and the browser's trust in both.
struct Federated {
    test: TestServer,
    provider: Provider,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Federated {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the provider, then Hearth federated with it, then sends the
    /// provider Hearth's callback URL.
    async fn start_with(adjust: impl FnOnce(&mut OidcConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate_pki();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let cert = write("provider-cert.pem", &pki.leaf_pem);
        let key = write("provider-key.pem", &pki.leaf_key_pem);
        let ca = write("ca.pem", &pki.ca_pem);
        let signing_key = write("signing-key.pem", &pki.signing_key_pem);
        let claims_file = write("claims.json", "{}");
        let stderr_file = dir.path().join("provider-stderr.log");

        let script = provider_dir().join("provider.mjs");
        assert!(
            provider_dir().join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed in {}; run `npm ci --prefix tests/oidc-provider` \
             (scripts/install-deps.sh does it)",
            provider_dir().display()
        );
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .arg(&cert)
            .arg(&key)
            .arg(&signing_key)
            .arg(&claims_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run node; install Node.js 20 or newer (scripts/install-deps.sh)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening: serde_json::Value =
            serde_json::from_str(&read_line(&mut stdout, &stderr_file).await).unwrap();
        let issuer = format!("https://127.0.0.1:{}", listening["port"]);
        let mut oidc = OidcConfig {
            issuer: issuer.clone(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: Secret::new(CLIENT_SECRET),
            ca_file: Some(ca),
            username_claim: "preferred_username".to_owned(),
            create_users: false,
            button_label: BUTTON_LABEL.to_owned(),
            scopes: vec!["openid".to_owned(), "profile".to_owned()],
            redirect_url: None,
        };
        adjust(&mut oidc);
        let test = TestServer::start_with(|config| config.oidc = Some(oidc)).await;

        let client = serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{}{}", test.server.base_url(), hearth_proto::OIDC_CALLBACK_PATH)],
        });
        stdin
            .write_all(format!("{client}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_line(&mut stdout, &stderr_file).await, "ready");
        // Keep reading, so a later write by the provider does not fail with EPIPE.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

        Self {
            test,
            provider: Provider {
                issuer,
                claims_file: dir.path().join("claims.json"),
                _stdin: stdin,
                _child: child,
            },
            ca_pem: pki.ca_pem,
            _dir: dir,
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(&[self.test.server.certificate_pem(), &self.ca_pem])
    }
}

/// The app's side of the redirect: a listener on a loopback port.
struct Loopback {
    redirect_uri: String,
    request: tokio::sync::oneshot::Receiver<String>,
}

impl Loopback {
    /// Accepts one request, responds with 200 and passes its target on.
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
        let (sender, request) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 8192];
            let mut read = 0;
            while !buffer[..read]
                .windows(4)
                .any(|window| window == b"\r\n\r\n")
            {
                let count = stream.read(&mut buffer[read..]).await.unwrap();
                assert!(count > 0, "the browser closed the loopback connection");
                read += count;
            }
            let head = String::from_utf8_lossy(&buffer[..read]).to_string();
            let target = head.split_whitespace().nth(1).unwrap().to_owned();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .unwrap();
            let _ = sender.send(target);
        });
        Self {
            redirect_uri,
            request,
        }
    }
}

/// Where a browser sign-in ended.
enum Outcome {
    /// Redirected to the app's loopback address with this URL.
    App(String),
    /// Stopped on a page that is neither a provider form nor a redirect.
    Page(Page),
}

/// Drives the browser from Hearth's sign-in page through the provider's
/// login and consent forms until it leaves for the app or stops on a page.
async fn sign_in_through_provider(browser: &Browser, authorize: &str, login: &str) -> Outcome {
    let page = browser.get(authorize).await;
    assert!(
        page.body.contains(&format!("Sign in with {BUTTON_LABEL}")),
        "no federation button: {}",
        page.body
    );
    let mut page = browser.submit(&page.form_with("action", "oidc")).await;
    for _ in 0..20 {
        if page.location.is_some() {
            let target = page.redirect_target();
            if !target.starts_with("https://") {
                return Outcome::App(target);
            }
            page = browser.get(&target).await;
            continue;
        }
        let forms = page.forms();
        if let Some(form) = forms
            .iter()
            .find(|form| form.value("prompt") == Some("login"))
        {
            let mut form = form.clone();
            form.set("login", login).set("password", "any password");
            page = browser.submit(&form).await;
        } else if let Some(form) = forms
            .iter()
            .find(|form| form.value("prompt") == Some("consent"))
        {
            page = browser.submit(form).await;
        } else {
            return Outcome::Page(page);
        }
    }
    panic!("the sign-in did not finish within 20 steps");
}

/// Signs in as provider user `login` and returns the tokens the app gets.
async fn federated_tokens(federated: &Federated, browser: &Browser, login: &str) -> TokenResponse {
    let loopback = Loopback::bind().await;
    let pkce = Pkce::new();
    let authorize = authorize_url(
        &federated.test.server.base_url(),
        "hearth-desktop",
        &loopback.redirect_uri,
        &pkce,
    );
    let target = match sign_in_through_provider(browser, &authorize, login).await {
        Outcome::App(target) => target,
        Outcome::Page(page) => panic!(
            "sign-in as {login} stopped at {} (HTTP {}): {}",
            page.url, page.status, page.body
        ),
    };
    // The browser follows the last redirect to the app's listener.
    let response = browser.client.get(&target).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let received = loopback.request.await.unwrap();
    let received = format!("http://127.0.0.1{received}");
    assert_eq!(
        query_value(&received, "state").as_deref(),
        Some("state-123")
    );
    let code = query_value(&received, "code").expect("the app got no code");

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", loopback.redirect_uri.as_str()),
        ("client_id", "hearth-desktop"),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let response = federated.test.post_token(&form).await;
    assert_eq!(response.status(), 200, "code exchange failed");
    response.json().await.unwrap()
}

/// Signs in as `login` and returns the page the sign-in stopped on.
async fn failed_sign_in(federated: &Federated, browser: &Browser, login: &str) -> Page {
    let pkce = Pkce::new();
    let authorize = authorize_url(
        &federated.test.server.base_url(),
        "hearth-desktop",
        "http://127.0.0.1:49152/callback",
        &pkce,
    );
    match sign_in_through_provider(browser, &authorize, login).await {
        Outcome::Page(page) => page,
        Outcome::App(target) => panic!("sign-in as {login} reached the app: {target}"),
    }
}

async fn assert_session_user(test: &TestServer, tokens: &TokenResponse, expected: &str) {
    let mut socket = test.connect_with_token(&tokens.access_token).await.unwrap();
    match socket.receive().await {
        hearth_proto::ServerMessage::Hello { user, .. } => assert_eq!(user, expected),
        other => panic!("expected hello, got {other:?}"),
    }
}

#[tokio::test]
async fn federated_sign_in_opens_session() {
    let federated = Federated::start().await;
    let browser = federated.browser();
    let tokens = federated_tokens(&federated, &browser, "alice").await;
    assert_eq!(tokens.user.as_deref(), Some("alice"));
    assert_session_user(&federated.test, &tokens, "alice").await;

    // The provider remembers the browser, so a second sign-in skips its forms.
    let again = federated_tokens(&federated, &browser, "alice").await;
    assert_session_user(&federated.test, &again, "alice").await;
}

#[tokio::test]
async fn unknown_user_rejected() {
    let federated = Federated::start().await;
    let page = failed_sign_in(&federated, &federated.browser(), "dave").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("unknown_user"), "{}", page.body);
    assert!(
        page.body
            .contains("There is no Hearth account named &quot;dave&quot;")
    );
    assert!(
        page.body.contains("error=access_denied"),
        "no way back to the app"
    );
    assert!(
        !federated
            .test
            .server
            .accounts()
            .user_exists("dave")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn unknown_user_created_when_enabled() {
    let federated = Federated::start_with(|oidc| oidc.create_users = true).await;
    let tokens = federated_tokens(&federated, &federated.browser(), "dave").await;
    assert_eq!(tokens.user.as_deref(), Some("dave"));
    assert_session_user(&federated.test, &tokens, "dave").await;

    // The new account has no password.
    let grant = federated
        .test
        .post_token(&[
            ("grant_type", "password"),
            ("username", "dave"),
            ("password", ""),
        ])
        .await;
    assert_eq!(grant.status(), 400);
}

#[tokio::test]
async fn disabled_account_rejected() {
    let federated = Federated::start().await;
    federated
        .test
        .server
        .accounts()
        .disable_user("bob")
        .await
        .unwrap();
    let page = failed_sign_in(&federated, &federated.browser(), "bob").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("account_disabled"), "{}", page.body);
    assert!(page.body.contains("This account is disabled."));
}

#[tokio::test]
async fn provider_rename_keeps_account() {
    let federated = Federated::start().await;
    federated.provider.set_claims(
        "employee-100",
        serde_json::json!({"preferred_username": "alice"}),
    );
    let first = federated_tokens(&federated, &federated.browser(), "employee-100").await;
    assert_eq!(first.user.as_deref(), Some("alice"));

    // The provider now calls the same person bob: they stay alice.
    federated.provider.set_claims(
        "employee-100",
        serde_json::json!({"preferred_username": "bob"}),
    );
    let renamed = federated_tokens(&federated, &federated.browser(), "employee-100").await;
    assert_eq!(renamed.user.as_deref(), Some("alice"));

    // Someone else who is now called alice cannot take alice's account.
    federated.provider.set_claims(
        "employee-200",
        serde_json::json!({"preferred_username": "alice"}),
    );
    let page = failed_sign_in(&federated, &federated.browser(), "employee-200").await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("account_linked_elsewhere"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn missing_claim_rejected() {
    let federated = Federated::start().await;
    federated
        .provider
        .set_claims("no-name", serde_json::json!({"name": "No Name"}));
    let page = failed_sign_in(&federated, &federated.browser(), "no-name").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("missing_claim"), "{}", page.body);
    assert!(page.body.contains("preferred_username"));
}

#[tokio::test]
async fn callback_state_checked() {
    let federated = Federated::start().await;
    let browser = federated.browser();
    let base = federated.test.server.base_url();

    let forged = browser
        .get(&format!(
            "{base}{}?code=abc&state=forged-state",
            hearth_proto::OIDC_CALLBACK_PATH
        ))
        .await;
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("invalid_state"));

    // Stop at the provider's redirect to Hearth's callback.
    let pkce = Pkce::new();
    let loopback = Loopback::bind().await;
    let authorize = authorize_url(&base, "hearth-desktop", &loopback.redirect_uri, &pkce);
    let mut callback = None;
    let page = browser.get(&authorize).await;
    let mut page = browser.submit(&page.form_with("action", "oidc")).await;
    while callback.is_none() {
        if page.location.is_some() {
            let target = page.redirect_target();
            if target.contains(hearth_proto::OIDC_CALLBACK_PATH) {
                callback = Some(target);
                break;
            }
            page = browser.get(&target).await;
        } else if let Some(mut form) = page
            .forms()
            .into_iter()
            .find(|f| f.value("prompt").is_some())
        {
            if form.value("prompt") == Some("login") {
                form.set("login", "alice").set("password", "any");
            }
            page = browser.submit(&form).await;
        } else {
            panic!("stuck at {}: {}", page.url, page.body);
        }
    }
    let callback = callback.unwrap();

    // Another browser cannot use the callback, even with a Hearth cookie of its
    // own: the sign-in is bound to the cookie of the browser that started it.
    let other_browser = federated.browser();
    let other_page = other_browser.get(&authorize).await;
    assert_eq!(other_page.status, 200);
    let foreign = other_browser.get(&callback).await;
    assert_eq!(foreign.status, 400);
    assert!(foreign.body.contains("invalid_state"));

    let own = browser.get(&callback).await;
    assert_eq!(own.status, 303, "callback failed: {}", own.body);
    assert!(own.redirect_target().starts_with(&loopback.redirect_uri));

    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status, 400);
    assert!(replayed.body.contains("invalid_state"));
}

#[tokio::test]
async fn tampered_id_tokens_rejected() {
    let federated = Federated::start().await;
    for kind in ["iss", "aud", "exp", "nonce", "sig"] {
        let login = format!("tamper-{kind}-user");
        federated
            .provider
            .set_claims(&login, serde_json::json!({"preferred_username": "alice"}));
        let page = failed_sign_in(&federated, &federated.browser(), &login).await;
        assert_eq!(page.status, 502, "{kind}: {}", page.body);
        assert!(
            page.body.contains("invalid_id_token"),
            "{kind} was not rejected as an invalid ID token: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn provider_cancel_returns_access_denied() {
    let federated = Federated::start().await;
    let browser = federated.browser();
    let pkce = Pkce::new();
    let authorize = authorize_url(
        &federated.test.server.base_url(),
        "hearth-desktop",
        "http://127.0.0.1:49152/callback",
        &pkce,
    );
    let page = browser.get(&authorize).await;
    let started = browser.submit(&page.form_with("action", "oidc")).await;
    let (login_page, _) = browser.follow(started).await;
    assert!(
        login_page.url.contains("/interaction/"),
        "{}",
        login_page.url
    );

    // The provider's login page has a cancel link to INTERACTION/abort.
    let aborted = browser.get(&format!("{}/abort", login_page.url)).await;
    let (_, app) = browser.follow(aborted).await;
    let app = app.expect("the cancel did not reach the app");
    assert_eq!(query_value(&app, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_value(&app, "state").as_deref(), Some("state-123"));
}

#[tokio::test]
async fn untrusted_provider_certificate_fails() {
    let federated = Federated::start_with(|oidc| oidc.ca_file = None).await;
    let browser = federated.browser();
    let pkce = Pkce::new();
    let authorize = authorize_url(
        &federated.test.server.base_url(),
        "hearth-desktop",
        "http://127.0.0.1:49152/callback",
        &pkce,
    );
    let page = browser.get(&authorize).await;
    let failed = browser.submit(&page.form_with("action", "oidc")).await;
    assert_eq!(failed.status, 502);
    assert!(
        failed.body.contains("provider_unreachable"),
        "{}",
        failed.body
    );
    assert!(federated.provider.issuer.starts_with("https://127.0.0.1:"));
}

#[tokio::test]
async fn password_still_works_with_federation() {
    let federated = Federated::start().await;
    let browser = federated.browser();
    let pkce = Pkce::new();
    let authorize = authorize_url(
        &federated.test.server.base_url(),
        "hearth-cli",
        "http://127.0.0.1:49152/callback",
        &pkce,
    );
    let page = browser.get(&authorize).await;
    let mut form = page.form_with("action", "password");
    form.set("username", "carol").set("password", PASSWORD);
    let redirect = browser.submit(&form).await;
    assert_eq!(redirect.status, 303);
    assert!(query_value(&redirect.redirect_target(), "code").is_some());
}
