mod common;

use common::TestServer;
use hearth_proto::ServerMessage;
use tokio_tungstenite::tungstenite;

fn status_of(result: Result<common::Socket, tungstenite::Error>) -> Option<u16> {
    match result {
        Err(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn missing_token_is_401() {
    let test = TestServer::start().await;
    let url = test.url(hearth_proto::SIGNAL_PATH);
    let response = test
        .http
        .get(url)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: hearth_proto::oauth::OAuthError = response.json().await.unwrap();
    assert_eq!(body.error, "invalid_token");
}

#[tokio::test]
async fn unknown_token_is_401() {
    let test = TestServer::start().await;
    let result = test.connect_with_token("not-a-token").await;
    assert_eq!(status_of(result), Some(401));
}

#[tokio::test]
async fn expired_token_is_401() {
    let test = TestServer::start_with(|config| config.access_token_ttl_secs = 0).await;
    let tokens = test.sign_in("alice").await;
    let result = test.connect_with_token(&tokens.access_token).await;
    assert_eq!(status_of(result), Some(401));
}

#[tokio::test]
async fn disabled_user_token_is_401() {
    let test = TestServer::start().await;
    let tokens = test.sign_in("alice").await;
    test.server.accounts().disable_user("alice").await.unwrap();
    let result = test.connect_with_token(&tokens.access_token).await;
    assert_eq!(status_of(result), Some(401));
}

#[tokio::test]
async fn valid_token_gets_hello() {
    let test = TestServer::start().await;
    let tokens = test.sign_in("alice").await;
    let mut socket = test.connect_with_token(&tokens.access_token).await.unwrap();
    let hello = ServerMessage::Hello {
        user: "alice".into(),
        protocol_version: hearth_proto::PROTOCOL_VERSION,
    };
    assert_eq!(socket.receive().await, hello);
}

#[tokio::test]
async fn disabling_user_closes_open_connection() {
    let test = TestServer::start().await;
    let mut carol = test.connect("carol").await;
    let mut alice = test.connect("alice").await;

    test.server.accounts().disable_user("carol").await.unwrap();

    let message = carol.receive().await;
    assert_eq!(
        common::error_code(&message),
        Some(hearth_proto::ErrorCode::SessionRevoked),
        "got {message:?}"
    );
    alice.assert_alive().await;
}
