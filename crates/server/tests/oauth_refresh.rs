mod common;

use common::TestServer;
use hearth_proto::oauth::{OAuthError, TokenResponse};

async fn refresh(test: &TestServer, refresh_token: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    test.post_token(&form).await
}

#[tokio::test]
async fn refresh_rotates_tokens() {
    let test = TestServer::start().await;
    let first = test.sign_in("alice").await;
    let response = refresh(&test, &first.refresh_token).await;
    assert_eq!(response.status(), 200);
    let second: TokenResponse = response.json().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
}

#[tokio::test]
async fn rotated_refresh_token_works_again() {
    let test = TestServer::start().await;
    let first = test.sign_in("alice").await;
    let second: TokenResponse = refresh(&test, &first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    let response = refresh(&test, &second.refresh_token).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn replayed_refresh_token_is_invalid_grant() {
    let test = TestServer::start().await;
    let first = test.sign_in("alice").await;
    refresh(&test, &first.refresh_token).await;
    let response = refresh(&test, &first.refresh_token).await;
    assert_eq!(response.status(), 400);
    let error: OAuthError = response.json().await.unwrap();
    assert_eq!(error.error, "invalid_grant");
}

#[tokio::test]
async fn replay_revokes_newest_refresh_token() {
    let test = TestServer::start().await;
    let first = test.sign_in("alice").await;
    let second: TokenResponse = refresh(&test, &first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    refresh(&test, &first.refresh_token).await;
    let response = refresh(&test, &second.refresh_token).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn replay_revokes_access_tokens_of_family() {
    let test = TestServer::start().await;
    let first = test.sign_in("alice").await;
    let second: TokenResponse = refresh(&test, &first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    refresh(&test, &first.refresh_token).await;
    let result = test.connect_with_token(&second.access_token).await;
    assert!(
        result.is_err(),
        "revoked access token still opened the WebSocket"
    );
}

#[tokio::test]
async fn replay_leaves_other_families_alone() {
    let test = TestServer::start().await;
    let stolen = test.sign_in("alice").await;
    let other_device = test.sign_in("alice").await;
    refresh(&test, &stolen.refresh_token).await;
    refresh(&test, &stolen.refresh_token).await;
    let response = refresh(&test, &other_device.refresh_token).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_refresh_token_is_invalid_grant() {
    let test = TestServer::start().await;
    let response = refresh(&test, "not-a-token").await;
    let error: OAuthError = response.json().await.unwrap();
    assert_eq!(error.error, "invalid_grant");
}

#[tokio::test]
async fn revoked_refresh_token_is_invalid_grant() {
    let test = TestServer::start().await;
    let tokens = test.sign_in("alice").await;
    let revoke = test
        .http
        .post(test.url(hearth_server::REVOKE_PATH))
        .form(&[("token", tokens.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let response = refresh(&test, &tokens.refresh_token).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn revoke_unknown_token_returns_ok() {
    let test = TestServer::start().await;
    let response = test
        .http
        .post(test.url(hearth_server::REVOKE_PATH))
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn disabled_user_cannot_refresh() {
    let test = TestServer::start().await;
    let tokens = test.sign_in("alice").await;
    test.server.accounts().disable_user("alice").await.unwrap();
    let response = refresh(&test, &tokens.refresh_token).await;
    assert_eq!(response.status(), 400);
}
