mod common;

use common::{Socket, TestServer, error_code};
use hearth_proto::{CallId, CallMedia, ClientMessage, ErrorCode, IceCandidate, ServerMessage};

async fn invite(caller: &mut Socket, callee: &str) -> CallId {
    let call_id = CallId::new_v4();
    let invite = ClientMessage::Invite {
        call_id,
        callee: callee.into(),
        media: CallMedia::Video,
    };
    caller.send(invite).await;
    call_id
}

/// Sets up an accepted call from alice to bob.
async fn accepted_call(alice: &mut Socket, bob: &mut Socket) -> CallId {
    let call_id = invite(alice, "bob").await;
    bob.receive_call().await;
    bob.send(ClientMessage::Accept { call_id }).await;
    alice.receive_call().await;
    call_id
}

#[tokio::test]
async fn full_call_between_two_users() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;

    let call_id = invite(&mut alice, "bob").await;
    let incoming = ServerMessage::Incoming {
        call_id,
        caller: "alice".into(),
        media: CallMedia::Video,
    };
    assert_eq!(bob.receive_call().await, incoming);

    bob.send(ClientMessage::Ringing { call_id }).await;
    assert_eq!(
        alice.receive_call().await,
        ServerMessage::Ringing { call_id }
    );

    bob.send(ClientMessage::Accept { call_id }).await;
    assert_eq!(
        alice.receive_call().await,
        ServerMessage::Accepted { call_id }
    );

    let offer_sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".to_owned();
    alice
        .send(ClientMessage::Offer {
            call_id,
            sdp: offer_sdp.clone(),
        })
        .await;
    assert_eq!(
        bob.receive_call().await,
        ServerMessage::Offer {
            call_id,
            sdp: offer_sdp
        }
    );

    let answer_sdp = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\n".to_owned();
    bob.send(ClientMessage::Answer {
        call_id,
        sdp: answer_sdp.clone(),
    })
    .await;
    assert_eq!(
        alice.receive_call().await,
        ServerMessage::Answer {
            call_id,
            sdp: answer_sdp
        }
    );

    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    alice
        .send(ClientMessage::Candidate {
            call_id,
            candidate: candidate.clone(),
        })
        .await;
    assert_eq!(
        bob.receive_call().await,
        ServerMessage::Candidate { call_id, candidate }
    );

    bob.send(ClientMessage::HangUp { call_id }).await;
    assert_eq!(
        alice.receive_call().await,
        ServerMessage::HungUp { call_id }
    );
}

#[tokio::test]
async fn decline_reaches_caller() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let call_id = invite(&mut alice, "bob").await;
    bob.receive_call().await;
    bob.send(ClientMessage::Decline {
        call_id,
        reason: None,
    })
    .await;
    assert_eq!(
        alice.receive_call().await,
        ServerMessage::Declined {
            call_id,
            reason: None
        }
    );
}

#[tokio::test]
async fn cancel_reaches_callee() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let call_id = invite(&mut alice, "bob").await;
    bob.receive_call().await;
    alice.send(ClientMessage::Cancel { call_id }).await;
    assert_eq!(
        bob.receive_call().await,
        ServerMessage::Cancelled { call_id }
    );
}

#[tokio::test]
async fn calling_unknown_user_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    invite(&mut alice, "nobody").await;
    assert_eq!(
        error_code(&alice.receive_call().await),
        Some(ErrorCode::UserNotFound)
    );
}

#[tokio::test]
async fn calling_offline_user_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    invite(&mut alice, "bob").await;
    assert_eq!(
        error_code(&alice.receive_call().await),
        Some(ErrorCode::UserOffline)
    );
}

#[tokio::test]
async fn calling_busy_user_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let mut carol = test.connect("carol").await;
    accepted_call(&mut alice, &mut bob).await;
    invite(&mut carol, "bob").await;
    assert_eq!(
        error_code(&carol.receive_call().await),
        Some(ErrorCode::UserBusy)
    );
}

#[tokio::test]
async fn calling_self_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    invite(&mut alice, "alice").await;
    assert_eq!(
        error_code(&alice.receive_call().await),
        Some(ErrorCode::SelfCall)
    );
}

#[tokio::test]
async fn offer_before_accept_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let call_id = invite(&mut alice, "bob").await;
    bob.receive_call().await;
    alice
        .send(ClientMessage::Offer {
            call_id,
            sdp: "v=0".into(),
        })
        .await;
    assert_eq!(
        error_code(&alice.receive_call().await),
        Some(ErrorCode::InvalidState)
    );
}

#[tokio::test]
async fn offer_from_non_participant_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let mut carol = test.connect("carol").await;
    let call_id = accepted_call(&mut alice, &mut bob).await;
    carol
        .send(ClientMessage::Offer {
            call_id,
            sdp: "v=0".into(),
        })
        .await;
    assert_eq!(
        error_code(&carol.receive_call().await),
        Some(ErrorCode::NotInCall)
    );
}

#[tokio::test]
async fn hang_up_of_unknown_call_fails() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    alice
        .send(ClientMessage::HangUp {
            call_id: CallId::new_v4(),
        })
        .await;
    assert_eq!(
        error_code(&alice.receive_call().await),
        Some(ErrorCode::CallNotFound)
    );
}

#[tokio::test]
async fn disconnect_during_call_hangs_up_peer() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let call_id = accepted_call(&mut alice, &mut bob).await;
    alice.close().await;
    assert_eq!(bob.receive_call().await, ServerMessage::HungUp { call_id });
}

#[tokio::test]
async fn disconnect_while_ringing_cancels() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    let call_id = invite(&mut alice, "bob").await;
    bob.receive_call().await;
    alice.close().await;
    assert_eq!(
        bob.receive_call().await,
        ServerMessage::Cancelled { call_id }
    );
}

#[tokio::test]
async fn peer_can_be_called_again_after_disconnect() {
    let test = TestServer::start().await;
    let mut alice = test.connect("alice").await;
    let mut bob = test.connect("bob").await;
    accepted_call(&mut alice, &mut bob).await;
    alice.close().await;
    bob.receive_call().await;

    let mut carol = test.connect("carol").await;
    let call_id = invite(&mut carol, "bob").await;
    let incoming = ServerMessage::Incoming {
        call_id,
        caller: "carol".into(),
        media: CallMedia::Video,
    };
    assert_eq!(bob.receive_call().await, incoming);
}
