//! `sign_in_with_browser` against a real server, with a scripted browser that
//! fills in the server's sign-in page and follows the redirect to the client's
//! loopback listener.

mod common;

use std::time::Duration;

use hearth_client::ClientError;
use hearth_client::auth::{BrowserSignIn, sign_in_with_browser};
use hearth_client::signal::SignalConnection;

const PASSWORD: &str = "browser-password";

/// An HTTP client that behaves like a browser on the sign-in page: it keeps
/// cookies and reports redirects instead of following them.
struct ScriptedBrowser {
    client: reqwest::Client,
}

impl ScriptedBrowser {
    fn new(test: &common::TestServer) -> Self {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*test.endpoint.tls_config()).clone())
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { client }
    }

    /// Opens the sign-in page and submits the form with `action`, plus
    /// `extra` fields. Returns the redirect target.
    async fn submit(&self, url: &str, action: &str, extra: &[(&str, &str)]) -> String {
        let page = self.client.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let mut form = vec![
            ("request", hidden_value(&html, "request")),
            ("csrf", hidden_value(&html, "csrf")),
            ("action", action.to_owned()),
        ];
        form.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
        let response = self
            .client
            .post(format!(
                "{}{}",
                url.split("/oauth").next().unwrap(),
                hearth_proto::AUTHORIZE_PATH
            ))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "form was not accepted");
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Follows a redirect to the loopback listener and returns its page.
    async fn visit_app(&self, target: &str) -> (u16, String) {
        assert!(
            target.starts_with("http://127.0.0.1:"),
            "redirect to {target}"
        );
        let response = self.client.get(target).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// Returns the value of the first hidden input named `name`.
fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field: {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

fn loopback_url_with(target: &str, params: &str) -> String {
    let base = target.split('?').next().unwrap();
    format!("{base}?{params}")
}

#[tokio::test]
async fn browser_sign_in_returns_tokens() {
    let test = common::start_server().await;
    test.server.add_user("alice", PASSWORD).await.unwrap();
    let browser = ScriptedBrowser::new(&test);
    let mut app_page = None;

    let tokens = sign_in_with_browser(&test.endpoint, &BrowserSignIn::default(), async |url| {
        assert!(url.contains("code_challenge_method=S256"), "{url}");
        assert!(url.contains("client_id=hearth-cli"), "{url}");
        let target = browser
            .submit(
                &url,
                "password",
                &[("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        app_page = Some(browser.visit_app(&target).await);
    })
    .await
    .unwrap();

    assert_eq!(tokens.user.as_deref(), Some("alice"));
    let (status, page) = app_page.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("You can close this window"), "{page}");
    assert!(page.contains("可以关闭此窗口"), "{page}");
    let signal = SignalConnection::connect(&test.endpoint, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(signal.user(), "alice");
}

#[tokio::test]
async fn desktop_client_id_used() {
    let test = common::start_server().await;
    test.server.add_user("alice", PASSWORD).await.unwrap();
    let browser = ScriptedBrowser::new(&test);
    let options = BrowserSignIn {
        client_id: hearth_proto::oauth::CLIENT_ID_DESKTOP.to_owned(),
        ..BrowserSignIn::default()
    };
    let tokens = sign_in_with_browser(&test.endpoint, &options, async |url| {
        assert!(url.contains("client_id=hearth-desktop"), "{url}");
        let target = browser
            .submit(
                &url,
                "password",
                &[("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        browser.visit_app(&target).await;
    })
    .await
    .unwrap();
    assert_eq!(tokens.user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn foreign_state_ignored() {
    let test = common::start_server().await;
    test.server.add_user("alice", PASSWORD).await.unwrap();
    let browser = ScriptedBrowser::new(&test);

    let tokens = sign_in_with_browser(&test.endpoint, &BrowserSignIn::default(), async |url| {
        let target = browser
            .submit(
                &url,
                "password",
                &[("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        // Another program sends a redirect with a made-up state and code first.
        let forged = loopback_url_with(&target, "code=forged&state=forged");
        let (status, page) = browser.visit_app(&forged).await;
        assert_eq!(status, 400);
        assert!(page.contains("not for this app"), "{page}");
        let (status, _) = browser.visit_app(&target).await;
        assert_eq!(status, 200);
    })
    .await
    .unwrap();
    assert_eq!(tokens.user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn cancel_reports_access_denied() {
    let test = common::start_server().await;
    let browser = ScriptedBrowser::new(&test);
    let result = sign_in_with_browser(&test.endpoint, &BrowserSignIn::default(), async |url| {
        let target = browser.submit(&url, "cancel", &[]).await;
        let (_, page) = browser.visit_app(&target).await;
        assert!(page.contains("Sign-in failed"), "{page}");
    })
    .await;
    match result {
        Err(ClientError::SignInRejected { error, .. }) => assert_eq!(error, "access_denied"),
        other => panic!("expected access_denied, got {other:?}"),
    }
}

#[tokio::test]
async fn unanswered_sign_in_times_out() {
    let test = common::start_server().await;
    let options = BrowserSignIn {
        timeout: Duration::from_millis(300),
        ..BrowserSignIn::default()
    };
    let result = sign_in_with_browser(&test.endpoint, &options, async |_| {}).await;
    match result {
        Err(error @ ClientError::Timeout { .. }) => assert_eq!(error.code(), "timeout"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn other_paths_get_not_found() {
    let test = common::start_server().await;
    test.server.add_user("alice", PASSWORD).await.unwrap();
    let browser = ScriptedBrowser::new(&test);
    let tokens = sign_in_with_browser(&test.endpoint, &BrowserSignIn::default(), async |url| {
        let target = browser
            .submit(
                &url,
                "password",
                &[("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        let favicon = format!("{}/favicon.ico", target.split("/callback").next().unwrap());
        let (status, _) = browser.visit_app(&favicon).await;
        assert_eq!(status, 404);
        browser.visit_app(&target).await;
    })
    .await
    .unwrap();
    assert_eq!(tokens.user.as_deref(), Some("alice"));
}
