mod common;

use common::{TestServer, error_code};
use hearth_proto::{ErrorCode, MAX_FRAME_BYTES, ServerMessage};

#[tokio::test]
async fn invalid_json_is_invalid_frame() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text("{not json").await;
    assert_eq!(
        error_code(&alice.receive().await),
        Some(ErrorCode::InvalidFrame)
    );
}

#[tokio::test]
async fn invalid_frame_message_includes_parse_error() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text(r#"{"v":1,"type":"teleport"}"#).await;
    let ServerMessage::Error { message, .. } = alice.receive().await else {
        panic!("expected an error message");
    };
    assert!(
        message.contains("teleport"),
        "message {message:?} does not name the type"
    );
}

#[tokio::test]
async fn connection_survives_invalid_json() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text("{not json").await;
    alice.receive().await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn oversized_frame_is_frame_too_large() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let padding = "x".repeat(MAX_FRAME_BYTES + 1);
    alice
        .send_text(&format!(
            r#"{{"v":1,"type":"ping","nonce":1,"pad":"{padding}"}}"#
        ))
        .await;
    assert_eq!(
        error_code(&alice.receive().await),
        Some(ErrorCode::FrameTooLarge)
    );
}

#[tokio::test]
async fn frame_too_large_message_names_limit() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text(&"x".repeat(MAX_FRAME_BYTES + 1)).await;
    let ServerMessage::Error { message, .. } = alice.receive().await else {
        panic!("expected an error message");
    };
    assert!(
        message.contains(&MAX_FRAME_BYTES.to_string()),
        "message {message:?} does not name the limit"
    );
}

#[tokio::test]
async fn connection_survives_oversized_frame() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text(&"x".repeat(MAX_FRAME_BYTES + 1)).await;
    alice.receive().await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn other_user_unaffected_by_bad_frames() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    alice.send_text("{not json").await;
    alice.send_text(&"x".repeat(MAX_FRAME_BYTES + 1)).await;
    alice.receive().await;
    alice.receive().await;
    bob.assert_alive().await;
}

#[tokio::test]
async fn other_version_is_unsupported() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_text(r#"{"v":99,"type":"ping","nonce":1}"#).await;
    assert_eq!(
        error_code(&alice.receive().await),
        Some(ErrorCode::UnsupportedVersion)
    );
}

#[tokio::test]
async fn binary_frame_is_invalid_frame() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.send_binary(vec![1, 2, 3]).await;
    assert_eq!(
        error_code(&alice.receive().await),
        Some(ErrorCode::InvalidFrame)
    );
}

#[tokio::test]
async fn ping_returns_pong() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice.assert_alive().await;
}
