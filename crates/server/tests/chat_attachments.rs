//! Uploading and downloading attachments, and sending them with messages.

mod common;

use common::TestServer;
use common::chat::{api_error, conversation_path};
use hearth_proto::chat::{Attachment, AttachmentId, ConversationId, EventBody};
use hearth_proto::{ClientMessage, ErrorCode};

fn upload_url(test: &TestServer, id: ConversationId, name: &str) -> String {
    let query = serde_urlencoded::to_string([("name", name)]).unwrap();
    test.url(&format!("{}/attachments?{query}", conversation_path(id)))
}

fn download_path(id: AttachmentId) -> String {
    format!("{}/{id}", hearth_proto::chat::ATTACHMENTS_PATH)
}

async fn upload(
    test: &TestServer,
    token: &str,
    id: ConversationId,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    test.http
        .post(upload_url(test, id, name))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Bytes that are not valid UTF-8 and cover every byte value.
fn binary_payload(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index * 7 % 256) as u8).collect()
}

#[tokio::test]
async fn upload_and_download_round_trip() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;
    // Larger than axum's default 2 MiB body limit, which must not apply here.
    let bytes = binary_payload(3 * 1024 * 1024);

    let response = upload(
        &test,
        &alice,
        group.id,
        "图表 v2.png",
        "image/png",
        bytes.clone(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let attachment: Attachment = response.json().await.unwrap();
    assert_eq!(attachment.name, "图表 v2.png");
    assert_eq!(attachment.content_type, "image/png");
    assert_eq!(attachment.size_bytes, bytes.len() as u64);

    let response = test.get(&bob, &download_path(attachment.id)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''%E5%9B%BE%E8%A1%A8%20v2.png"),
        "{disposition}"
    );
    let downloaded = response.bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn file_name_loses_directories() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let group = test.create_group(&alice, "team", &[]).await;
    let response = upload(
        &test,
        &alice,
        group.id,
        "../../etc/passwd",
        "text/plain",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let attachment: Attachment = response.json().await.unwrap();
    assert_eq!(attachment.name, "passwd");
}

#[tokio::test]
async fn missing_name_is_invalid_request() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let group = test.create_group(&alice, "team", &[]).await;
    let response = test
        .http
        .post(test.url(&format!("{}/attachments", conversation_path(group.id))))
        .bearer_auth(&alice)
        .body("data")
        .send()
        .await
        .unwrap();
    let error = api_error(response, 400).await;
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(error.message.contains("name"), "{}", error.message);
}

#[tokio::test]
async fn upload_over_limit_is_413() {
    let test = TestServer::start_with(|config| config.max_attachment_bytes = 1000).await;
    let alice = test.token("alice").await;
    let group = test.create_group(&alice, "team", &[]).await;

    let response = upload(
        &test,
        &alice,
        group.id,
        "a.bin",
        "application/octet-stream",
        vec![0; 1000],
    )
    .await;
    assert_eq!(response.status(), 201, "exactly the limit is accepted");

    let response = upload(
        &test,
        &alice,
        group.id,
        "b.bin",
        "application/octet-stream",
        vec![0; 1001],
    )
    .await;
    let error = api_error(response, 413).await;
    assert_eq!(error.code, ErrorCode::AttachmentTooLarge);
    assert!(error.message.contains("1000"), "{}", error.message);
}

#[tokio::test]
async fn streamed_upload_over_limit_is_413() {
    let test = TestServer::start_with(|config| config.max_attachment_bytes = 64 * 1024).await;
    let alice = test.token("alice").await;
    let group = test.create_group(&alice, "team", &[]).await;

    // A streamed body has no Content-Length, so the server counts while writing.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![1u8; 8192])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = test
        .http
        .post(upload_url(&test, group.id, "stream.bin"))
        .bearer_auth(&alice)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        api_error(response, 413).await.code,
        ErrorCode::AttachmentTooLarge
    );
}

#[tokio::test]
async fn non_member_cannot_download() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let carol = test.token("carol").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;
    let response = upload(
        &test,
        &alice,
        group.id,
        "plan.txt",
        "text/plain",
        b"secret plan".to_vec(),
    )
    .await;
    let attachment: Attachment = response.json().await.unwrap();

    let response = test.get(&carol, &download_path(attachment.id)).await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::NotMember);
}

#[tokio::test]
async fn unknown_attachment_is_404() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let response = test
        .get(&alice, &download_path(AttachmentId::new_v4()))
        .await;
    assert_eq!(
        api_error(response, 404).await.code,
        ErrorCode::AttachmentNotFound
    );
}

#[tokio::test]
async fn message_carries_attachment_description() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let response = upload(
        &test,
        &alice.token,
        group.id,
        "notes.txt",
        "text/plain",
        b"notes".to_vec(),
    )
    .await;
    let attachment: Attachment = response.json().await.unwrap();

    let client_id = uuid::Uuid::new_v4();
    alice
        .socket
        .send(ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id,
            text: "see attached".into(),
            reply_to: None,
            attachments: vec![attachment.id],
        })
        .await;
    let seq = alice.socket.ack_of(client_id).await;
    let event = bob.socket.event_with_seq(group.id, seq).await;
    let EventBody::Message { attachments, .. } = event.body else {
        panic!("expected a message")
    };
    assert_eq!(attachments, vec![attachment]);
}

#[tokio::test]
async fn attachment_of_other_uploader_or_conversation_is_rejected() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;
    let other = test.create_group(&bob.token, "elsewhere", &[]).await;
    let alices: Attachment = upload(
        &test,
        &alice,
        group.id,
        "a.txt",
        "text/plain",
        b"a".to_vec(),
    )
    .await
    .json()
    .await
    .unwrap();
    let elsewhere: Attachment = upload(
        &test,
        &bob.token,
        other.id,
        "b.txt",
        "text/plain",
        b"b".to_vec(),
    )
    .await
    .json()
    .await
    .unwrap();

    for attachment in [alices.id, elsewhere.id, AttachmentId::new_v4()] {
        let client_id = uuid::Uuid::new_v4();
        bob.socket
            .send(ClientMessage::SendMessage {
                conversation_id: group.id,
                client_id,
                text: "look".into(),
                reply_to: None,
                attachments: vec![attachment],
            })
            .await;
        let (code, _) = bob.socket.next_error().await;
        assert_eq!(code, ErrorCode::AttachmentNotFound);
    }
}

#[tokio::test]
async fn attachment_cannot_be_sent_twice() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let attachment: Attachment = upload(
        &test,
        &alice.token,
        group.id,
        "a.txt",
        "text/plain",
        b"a".to_vec(),
    )
    .await
    .json()
    .await
    .unwrap();
    for attempt in 0..2 {
        let client_id = uuid::Uuid::new_v4();
        alice
            .socket
            .send(ClientMessage::SendMessage {
                conversation_id: group.id,
                client_id,
                text: "file".into(),
                reply_to: None,
                attachments: vec![attachment.id],
            })
            .await;
        if attempt == 0 {
            alice.socket.ack_of(client_id).await;
        } else {
            assert_eq!(alice.socket.next_error().await.0, ErrorCode::InvalidRequest);
        }
    }
}

#[tokio::test]
async fn deleting_message_removes_its_attachments() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let attachment: Attachment = upload(
        &test,
        &alice.token,
        group.id,
        "a.txt",
        "text/plain",
        b"a".to_vec(),
    )
    .await
    .json()
    .await
    .unwrap();
    let client_id = uuid::Uuid::new_v4();
    alice
        .socket
        .send(ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id,
            text: "file".into(),
            reply_to: None,
            attachments: vec![attachment.id],
        })
        .await;
    let seq = alice.socket.ack_of(client_id).await;
    alice
        .socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: seq,
        })
        .await;
    alice.socket.event_with_seq(group.id, seq + 1).await;

    let response = test.get(&alice.token, &download_path(attachment.id)).await;
    assert_eq!(
        api_error(response, 404).await.code,
        ErrorCode::AttachmentNotFound
    );
    let data_dir = test.data_dir().join("attachments");
    assert!(!data_dir.join(attachment.id.to_string()).exists());
}
