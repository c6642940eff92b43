//! The authorization code flow with PKCE through the server's sign-in page.

mod common;

use common::browser::{Browser, Page, Pkce, authorize_url, query_value};
use common::{PASSWORD, TestServer};
use hearth_proto::oauth::{OAuthError, TokenResponse};

const REDIRECT_URI: &str = "http://127.0.0.1:49152/callback";

fn browser(test: &TestServer) -> Browser {
    Browser::new(&[test.server.certificate_pem()])
}

/// Opens the sign-in page for `hearth-cli`.
async fn open_sign_in(test: &TestServer, browser: &Browser, pkce: &Pkce) -> Page {
    let url = authorize_url(&test.server.base_url(), "hearth-cli", REDIRECT_URI, pkce);
    let page = browser.get(&url).await;
    assert_eq!(page.status, 200, "sign-in page: {}", page.body);
    page
}

/// Submits the password form and returns the response.
async fn submit_password(browser: &Browser, page: &Page, user: &str, password: &str) -> Page {
    let mut form = page.form_with("action", "password");
    form.set("username", user).set("password", password);
    browser.submit(&form).await
}

/// Signs in as `user` on the page and returns the code from the redirect.
async fn sign_in_for_code(test: &TestServer, browser: &Browser, pkce: &Pkce, user: &str) -> String {
    let page = open_sign_in(test, browser, pkce).await;
    let redirect = submit_password(browser, &page, user, PASSWORD).await;
    assert_eq!(redirect.status, 303, "password form: {}", redirect.body);
    let target = redirect.redirect_target();
    assert!(target.starts_with(REDIRECT_URI), "redirected to {target}");
    assert_eq!(query_value(&target, "state").as_deref(), Some("state-123"));
    query_value(&target, "code").expect("redirect without code")
}

async fn exchange(
    test: &TestServer,
    code: &str,
    client_id: &str,
    verifier: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ];
    test.post_token(&form).await
}

async fn oauth_error(response: reqwest::Response) -> OAuthError {
    response.json().await.unwrap()
}

#[tokio::test]
async fn code_flow_opens_session() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let code = sign_in_for_code(&test, &browser, &pkce, "alice").await;

    let response = exchange(&test, &code, "hearth-cli", &pkce.verifier).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: TokenResponse = response.json().await.unwrap();
    assert_eq!(tokens.user.as_deref(), Some("alice"));
    assert_eq!(tokens.expires_in, 900);

    let mut socket = test.connect_with_token(&tokens.access_token).await.unwrap();
    let hello = socket.receive().await;
    assert!(
        matches!(&hello, hearth_proto::ServerMessage::Hello { user, .. } if user == "alice"),
        "expected hello for alice, got {hello:?}"
    );
}

#[tokio::test]
async fn sign_in_page_sets_protections() {
    let test = TestServer::start().await;
    let page = open_sign_in(&test, &browser(&test), &Pkce::new()).await;
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-hearth-browser="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "cookie lacks {attribute}: {cookie}"
        );
    }
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    let form = page.form_with("action", "password");
    assert_eq!(form.value("csrf").map(str::len), Some(43));
    assert!(page.body.contains("Sign in to Hearth"));
}

#[tokio::test]
async fn wrong_verifier_spends_code() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let code = sign_in_for_code(&test, &browser, &pkce, "alice").await;

    let other = Pkce::new();
    let response = exchange(&test, &code, "hearth-cli", &other.verifier).await;
    assert_eq!(response.status(), 400);
    let error = oauth_error(response).await;
    assert_eq!(error.error, "invalid_grant");
    assert!(
        error.error_description.unwrap().contains("code_verifier"),
        "description should name the verifier"
    );

    let retry = exchange(&test, &code, "hearth-cli", &pkce.verifier).await;
    assert_eq!(oauth_error(retry).await.error, "invalid_grant");
}

#[tokio::test]
async fn reused_code_revokes_tokens() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let code = sign_in_for_code(&test, &browser, &pkce, "alice").await;
    let tokens: TokenResponse = exchange(&test, &code, "hearth-cli", &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();

    let replay = exchange(&test, &code, "hearth-cli", &pkce.verifier).await;
    assert_eq!(replay.status(), 400);
    let error = oauth_error(replay).await;
    assert_eq!(error.error, "invalid_grant");
    assert!(error.error_description.unwrap().contains("already used"));

    let denied = test.connect_with_token(&tokens.access_token).await;
    assert!(denied.is_err(), "access token still works after code reuse");
    let refresh = test
        .post_token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.refresh_token),
        ])
        .await;
    assert_eq!(oauth_error(refresh).await.error, "invalid_grant");
}

#[tokio::test]
async fn unknown_code_is_invalid_grant() {
    let test = TestServer::start().await;
    let pkce = Pkce::new();
    let response = exchange(&test, "not-a-code", "hearth-cli", &pkce.verifier).await;
    assert_eq!(oauth_error(response).await.error, "invalid_grant");
}

#[tokio::test]
async fn redirect_uri_must_match() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let code = sign_in_for_code(&test, &browser, &pkce, "alice").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:49153/callback"),
        ("client_id", "hearth-cli"),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let error = oauth_error(test.post_token(&form).await).await;
    assert_eq!(error.error, "invalid_grant");
    assert!(error.error_description.unwrap().contains("redirect_uri"));
}

#[tokio::test]
async fn client_id_must_match() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let code = sign_in_for_code(&test, &browser, &pkce, "alice").await;
    let response = exchange(&test, &code, "hearth-desktop", &pkce.verifier).await;
    assert_eq!(oauth_error(response).await.error, "invalid_grant");
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let test = TestServer::start().await;
    let pkce = Pkce::new();
    let response = exchange(&test, "code", "other-app", &pkce.verifier).await;
    assert_eq!(response.status(), 401);
    assert_eq!(oauth_error(response).await.error, "invalid_client");
}

#[tokio::test]
async fn non_loopback_redirect_shown_on_page() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    for redirect_uri in [
        "http://192.0.2.10:8080/callback",
        "http://localhost:8080/callback",
        "https://127.0.0.1:8080/callback",
    ] {
        let url = authorize_url(&test.server.base_url(), "hearth-cli", redirect_uri, &pkce);
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{redirect_uri} was accepted");
        assert_eq!(page.location, None, "{redirect_uri} got a redirect");
        assert!(page.body.contains("redirect_uri"), "{}", page.body);
        assert!(page.body.contains("invalid_request"));
    }
}

#[tokio::test]
async fn unknown_client_shown_on_page() {
    let test = TestServer::start().await;
    let url = authorize_url(
        &test.server.base_url(),
        "other-app",
        REDIRECT_URI,
        &Pkce::new(),
    );
    let page = browser(&test).get(&url).await;
    assert_eq!(page.status, 400);
    assert_eq!(page.location, None);
    assert!(page.body.contains("other-app"));
}

#[tokio::test]
async fn plain_pkce_redirects_with_error() {
    let test = TestServer::start().await;
    let pkce = Pkce::new();
    let url = authorize_url(&test.server.base_url(), "hearth-cli", REDIRECT_URI, &pkce)
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let page = browser(&test).get(&url).await;
    assert_eq!(page.status, 303);
    let target = page.redirect_target();
    assert!(target.starts_with(REDIRECT_URI));
    assert_eq!(
        query_value(&target, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_value(&target, "state").as_deref(), Some("state-123"));
    assert_eq!(query_value(&target, "code"), None);
}

#[tokio::test]
async fn missing_challenge_redirects_with_error() {
    let test = TestServer::start().await;
    let url = format!(
        "{}{}?response_type=code&client_id=hearth-cli&redirect_uri={}&state=s1",
        test.server.base_url(),
        hearth_proto::AUTHORIZE_PATH,
        REDIRECT_URI
    );
    let page = browser(&test).get(&url).await;
    let target = page.redirect_target();
    assert_eq!(
        query_value(&target, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(
        query_value(&target, "error_description")
            .unwrap()
            .contains("code_challenge")
    );
    assert_eq!(query_value(&target, "state").as_deref(), Some("s1"));
}

#[tokio::test]
async fn wrong_password_shows_form_again() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    let again = submit_password(&browser, &page, "alice", "wrong").await;
    assert_eq!(again.status, 401);
    assert_eq!(again.location, None);
    assert!(again.body.contains("The user name or password is wrong."));
    assert!(
        !again.body.contains("wrong\""),
        "the password must not be echoed"
    );
    assert_eq!(
        again.form_with("action", "password").value("username"),
        Some("alice")
    );
}

#[tokio::test]
async fn disabled_account_rejected_on_page() {
    let test = TestServer::start().await;
    test.server.accounts().disable_user("bob").await.unwrap();
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    let response = submit_password(&browser, &page, "bob", PASSWORD).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.location, None);
    assert!(response.body.contains("This account is disabled."));
}

#[tokio::test]
async fn form_from_other_browser_rejected() {
    let test = TestServer::start().await;
    let page = open_sign_in(&test, &browser(&test), &Pkce::new()).await;

    // Another browser has none of the first one's cookies: a cross-site post.
    let other = browser(&test);
    let response = submit_password(&other, &page, "alice", PASSWORD).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.location, None);
    assert!(response.body.contains("invalid_state"));

    // A cookie of its own does not help it either.
    open_sign_in(&test, &other, &Pkce::new()).await;
    let response = submit_password(&other, &page, "alice", PASSWORD).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.location, None);
}

#[tokio::test]
async fn wrong_csrf_token_rejected() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    let mut form = page.form_with("action", "password");
    form.set("username", "alice")
        .set("password", PASSWORD)
        .set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let response = browser.submit(&form).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.location, None);
}

#[tokio::test]
async fn completed_request_cannot_repeat() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    let first = submit_password(&browser, &page, "alice", PASSWORD).await;
    assert_eq!(first.status, 303);
    let second = submit_password(&browser, &page, "alice", PASSWORD).await;
    assert_eq!(second.status, 400);
    assert_eq!(second.location, None);
}

#[tokio::test]
async fn cancel_returns_access_denied() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    let response = browser.submit(&page.form_with("action", "cancel")).await;
    let target = response.redirect_target();
    assert_eq!(
        query_value(&target, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&target, "state").as_deref(), Some("state-123"));
}

#[tokio::test]
async fn failed_passwords_lock_account() {
    let test = TestServer::start().await;
    let browser = browser(&test);
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    for _ in 0..10 {
        let response = submit_password(&browser, &page, "carol", "wrong").await;
        assert_eq!(response.status, 401);
    }
    let locked = submit_password(&browser, &page, "carol", PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert!(locked.body.contains("Too many failed sign-in attempts"));

    let grant = test
        .post_token(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(grant.status(), 429);
    assert!(grant.headers().contains_key("retry-after"));
    assert_eq!(oauth_error(grant).await.error, "too_many_attempts");

    // Another account from the same address is still open.
    let other = test
        .post_token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn chinese_page_by_accept_language() {
    let test = TestServer::start().await;
    let browser =
        Browser::with_language(&[test.server.certificate_pem()], "zh-CN,zh;q=0.9,en;q=0.5");
    let page = open_sign_in(&test, &browser, &Pkce::new()).await;
    assert!(page.body.contains("<html lang=\"zh-CN\">"));
    assert!(page.body.contains("登录 Hearth"));
    assert!(
        page.body.contains("hreflang=\"en\""),
        "no switch to English"
    );

    let wrong = submit_password(&browser, &page, "alice", "wrong").await;
    assert!(wrong.body.contains("用户名或密码错误"));
}

#[tokio::test]
async fn language_switch_sets_cookie() {
    let test = TestServer::start().await;
    let browser = Browser::with_language(&[test.server.certificate_pem()], "zh-CN");
    let pkce = Pkce::new();
    let url = authorize_url(&test.server.base_url(), "hearth-cli", REDIRECT_URI, &pkce);
    let english = browser.get(&format!("{url}&lang=en")).await;
    assert!(english.body.contains("<html lang=\"en\">"));

    // The choice sticks for later pages despite Accept-Language.
    let later = browser.get(&url).await;
    assert!(later.body.contains("<html lang=\"en\">"));
}

/// Everything the server logs while this test binary runs.
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,hearth_server=trace",
            ))
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_hold_no_secrets() {
    let logs = captured_logs();
    let test = TestServer::start().await;
    let browser = browser(&test);
    let pkce = Pkce::new();
    let page = open_sign_in(&test, &browser, &pkce).await;
    let csrf = page
        .form_with("action", "password")
        .value("csrf")
        .unwrap()
        .to_owned();
    let wrong_password = "wrong-password-7f3a";
    submit_password(&browser, &page, "alice", wrong_password).await;
    let redirect = submit_password(&browser, &page, "alice", PASSWORD).await;
    let code = query_value(&redirect.redirect_target(), "code").unwrap();
    let tokens: TokenResponse = exchange(&test, &code, "hearth-cli", &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();
    exchange(&test, &code, "hearth-cli", &pkce.verifier).await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("issued an authorization code"),
        "nothing captured: {text}"
    );
    for (name, secret) in [
        ("password", PASSWORD),
        ("wrong password", wrong_password),
        ("CSRF token", csrf.as_str()),
        ("code", code.as_str()),
        ("code verifier", pkce.verifier.as_str()),
        ("access token", tokens.access_token.as_str()),
        ("refresh token", tokens.refresh_token.as_str()),
    ] {
        assert!(!text.contains(secret), "the log contains the {name}");
    }
}
