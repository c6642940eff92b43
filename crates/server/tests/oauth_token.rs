mod common;

use common::{PASSWORD, TestServer};
use hearth_proto::oauth::{OAuthError, TokenResponse};

async fn oauth_error(response: reqwest::Response) -> OAuthError {
    response.json().await.unwrap()
}

#[tokio::test]
async fn password_grant_issues_bearer_tokens() {
    let test = TestServer::start().await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let response = test.post_token(&form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: TokenResponse = response.json().await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.access_token.len(), 43);
    assert_ne!(tokens.access_token, tokens.refresh_token);
}

#[tokio::test]
async fn wrong_password_is_invalid_grant() {
    let test = TestServer::start().await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "nope"),
    ];
    let response = test.post_token(&form).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(oauth_error(response).await.error, "invalid_grant");
}

#[tokio::test]
async fn unknown_user_looks_like_wrong_password() {
    let test = TestServer::start().await;
    let wrong_password = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "nope"),
    ];
    let unknown_user = [
        ("grant_type", "password"),
        ("username", "zed"),
        ("password", "nope"),
    ];
    let for_wrong_password = oauth_error(test.post_token(&wrong_password).await).await;
    let for_unknown_user = oauth_error(test.post_token(&unknown_user).await).await;
    assert_eq!(for_unknown_user, for_wrong_password);
}

#[tokio::test]
async fn disabled_user_is_invalid_grant() {
    let test = TestServer::start().await;
    test.server.accounts().disable_user("alice").await.unwrap();
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let response = test.post_token(&form).await;
    assert_eq!(oauth_error(response).await.error, "invalid_grant");
}

#[tokio::test]
async fn missing_grant_type_is_invalid_request() {
    let test = TestServer::start().await;
    let response = test.post_token(&[("username", "alice")]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(oauth_error(response).await.error, "invalid_request");
}

#[tokio::test]
async fn unknown_grant_type_is_unsupported() {
    let test = TestServer::start().await;
    let response = test
        .post_token(&[("grant_type", "client_credentials")])
        .await;
    assert_eq!(oauth_error(response).await.error, "unsupported_grant_type");
}

#[tokio::test]
async fn missing_password_is_invalid_request() {
    let test = TestServer::start().await;
    let response = test
        .post_token(&[("grant_type", "password"), ("username", "alice")])
        .await;
    assert_eq!(oauth_error(response).await.error, "invalid_request");
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let test = TestServer::start().await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("username", "bob"),
        ("password", PASSWORD),
    ];
    let response = test.post_token(&form).await;
    assert_eq!(oauth_error(response).await.error, "invalid_request");
}

#[tokio::test]
async fn json_body_is_invalid_request() {
    let test = TestServer::start().await;
    let response = test
        .http
        .post(test.url(hearth_proto::TOKEN_PATH))
        .json(&serde_json::json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(response).await.error, "invalid_request");
}

#[tokio::test]
async fn health_check_returns_ok() {
    let test = TestServer::start().await;
    let response = test
        .http
        .get(test.url(hearth_proto::HEALTH_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
