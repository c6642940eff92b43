//! Guest invitations and guest connections: who may invite, what a guest may
//! send, and what happens when an invitation expires or is revoked.

mod common;

use std::time::Duration;

use common::chat::api_error;
use common::{Socket, TestServer};
use futures_util::StreamExt as _;
use hearth_proto::chat::ConversationId;
use hearth_proto::guest::{
    CreateGuestInvitation, GUEST_CREDENTIALS_PATH, GUEST_INVITATIONS_PATH, GUEST_SIGNAL_PATH,
    GUEST_WEBSOCKET_PROTOCOL, GuestCredential, GuestCredentialRequest, GuestInvitation,
    conversation_invitations_path,
};
use hearth_proto::{ClientMessage, ErrorCode, ServerFrame, ServerMessage};
use tokio_tungstenite::tungstenite::{self, Message};

async fn invite(server: &TestServer, token: &str, id: ConversationId) -> GuestInvitation {
    let response = server
        .post_json(
            token,
            &conversation_invitations_path(id),
            &CreateGuestInvitation::default(),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn secret_of(invitation: &GuestInvitation) -> String {
    invitation
        .page_path
        .strip_prefix("/guest/")
        .expect("the page path starts with /guest/")
        .to_owned()
}

async fn request_credential(server: &TestServer, secret: &str, name: &str) -> reqwest::Response {
    server
        .http
        .post(server.url(GUEST_CREDENTIALS_PATH))
        .json(&GuestCredentialRequest {
            invitation: secret.to_owned(),
            display_name: name.to_owned(),
        })
        .send()
        .await
        .unwrap()
}

async fn credential(server: &TestServer, invitation: &GuestInvitation) -> GuestCredential {
    let response = request_credential(server, &secret_of(invitation), "Lin").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Opens the guest WebSocket the way a browser does, with the credential in
/// the subprotocol list.
async fn connect_guest(
    server: &TestServer,
    credential: &str,
) -> Result<Socket, tungstenite::Error> {
    server
        .connect_with_protocols(
            GUEST_SIGNAL_PATH,
            &format!("{GUEST_WEBSOCKET_PROTOCOL}, {credential}"),
        )
        .await
}

/// Reads frames until an error arrives and returns its code and message.
async fn next_error(socket: &mut Socket) -> (ErrorCode, String) {
    loop {
        if let ServerMessage::Error { code, message, .. } = socket.receive().await {
            return (code, message);
        }
    }
}

#[tokio::test]
async fn only_members_create_invitations() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let carol = server.token("carol").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;

    let invitation = invite(&server, &alice, group.id).await;
    assert_eq!(invitation.conversation_id, group.id);
    assert!(invitation.page_path.len() > "/guest/".len() + 40);

    let response = server
        .post_json(
            &carol,
            &conversation_invitations_path(group.id),
            &CreateGuestInvitation::default(),
        )
        .await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::NotMember);

    let unknown = uuid::Uuid::new_v4();
    let response = server
        .post_json(
            &alice,
            &conversation_invitations_path(unknown),
            &CreateGuestInvitation::default(),
        )
        .await;
    let error = api_error(response, 404).await;
    assert_eq!(error.code, ErrorCode::ConversationNotFound);
    assert!(error.message.contains(&unknown.to_string()), "{error:?}");

    let response = server
        .post_json(
            &alice,
            &conversation_invitations_path(group.id),
            &CreateGuestInvitation { ttl_secs: Some(5) },
        )
        .await;
    let error = api_error(response, 400).await;
    assert!(error.message.contains("ttl_secs 5"), "{error:?}");

    let response = server
        .http
        .post(server.url(&conversation_invitations_path(group.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn guest_page_is_served_without_referrer() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;
    let invitation = invite(&server, &alice, group.id).await;

    let page = server
        .http
        .get(server.url(&invitation.page_path))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("/guest-assets/guest.js"));

    let script = server
        .http
        .get(server.url("/guest-assets/guest.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    let script = script.text().await.unwrap();
    assert!(
        script.contains("以访客身份加入通话"),
        "the page has Chinese text"
    );
    assert!(script.contains("Join the call as a guest"));
}

#[tokio::test]
async fn guest_sends_only_room_frames_of_its_call() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;
    let other = server.create_group(&alice, "private", &["carol"]).await;
    let invitation = invite(&server, &alice, group.id).await;
    let guest = credential(&server, &invitation).await;
    assert_eq!(guest.conversation_id, group.id);
    assert!(guest.user.starts_with("guest:"), "{}", guest.user);
    assert!(guest.user.ends_with(":Lin"), "{}", guest.user);

    let mut socket = connect_guest(&server, &guest.credential).await.unwrap();
    let hello = socket.receive().await;
    assert!(matches!(hello, ServerMessage::Hello { .. }), "{hello:?}");

    let forbidden = [
        ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id: uuid::Uuid::new_v4(),
            text: "hello from a guest".into(),
            reply_to: None,
            attachments: Vec::new(),
        },
        ClientMessage::Sync {
            conversation_id: group.id,
            after: 0,
            limit: None,
        },
        ClientMessage::History {
            conversation_id: group.id,
            before: u64::MAX,
            limit: None,
        },
    ];
    for message in forbidden {
        socket.send(message).await;
        let (code, text) = next_error(&mut socket).await;
        assert_eq!(code, ErrorCode::Forbidden, "{text}");
        assert!(text.contains(&group.id.to_string()), "{text}");
    }

    socket
        .send(ClientMessage::JoinRoom {
            conversation_id: other.id,
            sdp: "v=0".into(),
            screen_mid: None,
        })
        .await;
    let (code, text) = next_error(&mut socket).await;
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(text.contains(&other.id.to_string()), "{text}");

    // The guest's own call accepts its frames: an invalid offer reaches the
    // SFU, which rejects the SDP rather than the guest.
    socket
        .send(ClientMessage::JoinRoom {
            conversation_id: group.id,
            sdp: "not sdp".into(),
            screen_mid: None,
        })
        .await;
    let (code, text) = next_error(&mut socket).await;
    assert_eq!(code, ErrorCode::InvalidRequest, "{text}");
    assert!(text.contains("SDP"), "{text}");

    socket.assert_alive().await;
}

#[tokio::test]
async fn revoked_invitation_ends_guests() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let bob = server.token("bob").await;
    let carol = server.token("carol").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;
    let invitation = invite(&server, &alice, group.id).await;
    let guest = credential(&server, &invitation).await;
    let mut socket = connect_guest(&server, &guest.credential).await.unwrap();
    socket.receive().await;

    let path = format!("{GUEST_INVITATIONS_PATH}/{}", invitation.id);
    let response = server.delete(&carol, &path).await;
    let error = api_error(response, 404).await;
    assert_eq!(error.code, ErrorCode::InvitationNotFound);

    // Any member may revoke, not only the one who invited.
    let response = server.delete(&bob, &path).await;
    assert_eq!(response.status(), 204);

    let (code, text) = next_error(&mut socket).await;
    assert_eq!(code, ErrorCode::InvitationRevoked);
    assert!(text.contains(&invitation.id.to_string()), "{text}");
    assert_closed(socket).await;

    let response = request_credential(&server, &secret_of(&invitation), "Lin").await;
    let error = api_error(response, 410).await;
    assert_eq!(error.code, ErrorCode::InvitationRevoked);
    assert!(error.message.contains("new link"), "{error:?}");

    let mut socket = connect_guest(&server, &guest.credential).await.unwrap();
    let (code, _) = next_error(&mut socket).await;
    assert_eq!(code, ErrorCode::InvitationRevoked);
}

#[tokio::test]
async fn expired_invitation_is_rejected() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;
    let invitation = invite(&server, &alice, group.id).await;

    // Expiry is at least a minute away, so the test moves it into the past.
    let database = server.data_dir().join("hearth.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE guest_invitations SET expires_at_ms = 1 WHERE id = ?")
        .bind(invitation.id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let response = request_credential(&server, &secret_of(&invitation), "Lin").await;
    let error = api_error(response, 410).await;
    assert_eq!(error.code, ErrorCode::InvitationExpired);
    assert!(
        error.message.contains(&invitation.id.to_string()),
        "{error:?}"
    );
}

#[tokio::test]
async fn bad_credential_requests_are_rejected() {
    let server = TestServer::start().await;
    let alice = server.token("alice").await;
    let group = server.create_group(&alice, "standup", &["bob"]).await;
    let invitation = invite(&server, &alice, group.id).await;

    let response = request_credential(&server, "no-such-invitation", "Lin").await;
    let error = api_error(response, 404).await;
    assert_eq!(error.code, ErrorCode::InvitationNotFound);

    let response = request_credential(&server, &secret_of(&invitation), "  ").await;
    let error = api_error(response, 400).await;
    assert!(error.message.contains("display_name"), "{error:?}");

    let error = connect_guest(&server, "").await.err();
    assert!(
        matches!(error, Some(tungstenite::Error::Http(ref response)) if response.status() == 401),
        "{error:?}"
    );

    let mut socket = connect_guest(&server, "made-up-credential").await.unwrap();
    let (code, _) = next_error(&mut socket).await;
    assert_eq!(code, ErrorCode::InvitationNotFound);
}

/// Waits for the server to close the connection.
async fn assert_closed(socket: Socket) {
    let mut stream = socket.into_stream();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(Message::Text(text)) => {
                    let _: ServerFrame = serde_json::from_str(text.as_str()).unwrap();
                }
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server kept the guest connection open");
}
