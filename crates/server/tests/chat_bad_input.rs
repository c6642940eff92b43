//! Malformed frames, requests and tokens on the chat paths.

mod common;

use std::time::Duration;

use common::TestServer;
use common::chat::api_error;
use futures_util::StreamExt as _;
use hearth_proto::chat::{ConversationKind, CreateConversation};
use hearth_proto::{ErrorCode, MAX_FRAME_BYTES, ServerMessage};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn invalid_utf8_text_frame_closes_with_1007() {
    let test = TestServer::start().await;
    let alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut stream = alice.socket.into_stream();

    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    futures_util::SinkExt::send(&mut stream, Message::Frame(frame))
        .await
        .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(error) => panic!("connection failed without a close frame: {error}"),
            }
        }
        panic!("connection ended without a close frame")
    })
    .await
    .expect("the server did not close the connection");
    let close = close.expect("close frame without a code");
    assert_eq!(u16::from(close.code), 1007);

    // Nothing else suffers, and the user can reconnect.
    bob.socket.assert_alive().await;
    let mut again = test.connect_with_token(&alice.token).await.unwrap();
    again.receive().await;
    again.assert_alive().await;
}

#[tokio::test]
async fn binary_frame_between_chat_frames_is_invalid_frame() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice.socket.send_binary(vec![0, 159, 146, 150]).await;
    assert_eq!(alice.socket.next_error().await.0, ErrorCode::InvalidFrame);
    alice.socket.send_acked(group.id, "still works").await;
}

#[tokio::test]
async fn unknown_frame_type_is_invalid_frame() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    alice
        .socket
        .send_text(r#"{"v":1,"type":"send_mesage","text":"typo"}"#)
        .await;
    let (code, error) = alice.socket.next_error().await;
    assert_eq!(code, ErrorCode::InvalidFrame);
    let ServerMessage::Error { message, .. } = error else {
        unreachable!()
    };
    assert!(message.contains("send_mesage"), "{message}");
}

#[tokio::test]
async fn chat_frame_with_invalid_field_is_invalid_frame() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let frames = [
        r#"{"v":1,"type":"send_message","conversation_id":"nope","client_id":"x","text":"hi"}"#,
        r#"{"v":1,"type":"sync","conversation_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","after":-1}"#,
        r#"{"v":1,"type":"mark_read","conversation_id":"67e55044-10b1-426f-9247-bb680e5fe0c8"}"#,
        r#"{"v":1,"type":"set_presence","presence":"sleeping"}"#,
    ];
    for frame in frames {
        alice.socket.send_text(frame).await;
        assert_eq!(
            alice.socket.next_error().await.0,
            ErrorCode::InvalidFrame,
            "{frame}"
        );
    }
    alice.socket.assert_alive().await;
}

#[tokio::test]
async fn message_larger_than_frame_limit_is_frame_too_large() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice
        .socket
        .say(group.id, &"x".repeat(MAX_FRAME_BYTES + 1))
        .await;
    assert_eq!(alice.socket.next_error().await.0, ErrorCode::FrameTooLarge);
    alice.socket.assert_alive().await;
}

#[tokio::test]
async fn rest_without_token_is_unauthorized() {
    let test = TestServer::start().await;
    let response = test
        .http
        .get(test.url(hearth_proto::chat::CONVERSATIONS_PATH))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let error = api_error(response, 401).await;
    assert_eq!(error.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn rest_with_forged_token_is_unauthorized() {
    let test = TestServer::start().await;
    let paths = [
        hearth_proto::chat::CONVERSATIONS_PATH.to_owned(),
        hearth_proto::chat::USERS_PATH.to_owned(),
        format!("{}?q=x", hearth_proto::chat::SEARCH_PATH),
        format!(
            "{}/{}",
            hearth_proto::chat::ATTACHMENTS_PATH,
            uuid::Uuid::new_v4()
        ),
    ];
    for path in paths {
        let response = test.get("forged-token-AAAAAAAAAAAAAAAAAAAA", &path).await;
        assert_eq!(
            api_error(response, 401).await.code,
            ErrorCode::Unauthorized,
            "{path}"
        );
    }
}

#[tokio::test]
async fn rest_with_basic_auth_is_unauthorized() {
    let test = TestServer::start().await;
    let response = test
        .http
        .get(test.url(hearth_proto::chat::USERS_PATH))
        .header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
        .send()
        .await
        .unwrap();
    let error = api_error(response, 401).await;
    assert!(error.message.contains("Bearer"), "{}", error.message);
}

#[tokio::test]
async fn rest_with_expired_token_is_unauthorized() {
    let test = TestServer::start_with(|config| config.access_token_ttl_secs = 0).await;
    let token = test.token("alice").await;
    let response = test
        .get(&token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await;
    assert_eq!(api_error(response, 401).await.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn rest_with_revoked_token_is_unauthorized() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let response = test
        .http
        .post(test.url(hearth_server::REVOKE_PATH))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = test
        .get(&token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await;
    assert_eq!(api_error(response, 401).await.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn unauthorized_is_checked_before_the_body() {
    let test = TestServer::start().await;
    let response = test
        .http
        .post(test.url(hearth_proto::chat::CONVERSATIONS_PATH))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(response, 401).await.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn malformed_json_body_is_invalid_request() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let bodies = [
        "{not json",
        r#"{"kind":"channel","members":[]}"#,
        r#"{"kind":"group","name":"x"}"#,
    ];
    for body in bodies {
        let response = test
            .http
            .post(test.url(hearth_proto::chat::CONVERSATIONS_PATH))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            api_error(response, 400).await.code,
            ErrorCode::InvalidRequest,
            "{body}"
        );
    }
}

#[tokio::test]
async fn json_body_without_content_type_is_invalid_request() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let request = CreateConversation {
        kind: ConversationKind::Group,
        name: Some("team".into()),
        members: vec![],
    };
    let response = test
        .http
        .post(test.url(hearth_proto::chat::CONVERSATIONS_PATH))
        .bearer_auth(&token)
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap();
    let error = api_error(response, 400).await;
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(error.message.contains("Content-Type"), "{}", error.message);
}
