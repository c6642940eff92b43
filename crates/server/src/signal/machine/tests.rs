use std::collections::HashSet;

use hearth_proto::IceCandidate;

use super::*;

const ALICE: ConnId = ConnId(1);
const BOB: ConnId = ConnId(2);
const CAROL: ConnId = ConnId(3);

struct Users(HashSet<&'static str>);

/// The one conversation of the tests, and its members.
const GROUP: ConversationId = ConversationId::from_u128(0x7e57);
const GROUP_MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

impl Directory for Users {
    fn user_exists(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn is_member(&self, conversation_id: ConversationId, user: &str) -> bool {
        conversation_id == GROUP && GROUP_MEMBERS.contains(&user)
    }
}

fn users() -> Users {
    Users(["alice", "bob", "carol", "dave"].into_iter().collect())
}

fn online() -> Signalling {
    let mut signalling = Signalling::new();
    signalling.connect(ALICE, "alice");
    signalling.connect(BOB, "bob");
    signalling.connect(CAROL, "carol");
    signalling
}

fn send(signalling: &mut Signalling, from: ConnId, message: ClientMessage) -> Vec<Outgoing> {
    signalling.handle(from, message, &users())
}

fn invite(signalling: &mut Signalling, from: ConnId, callee: &str) -> (CallId, Vec<Outgoing>) {
    let call_id = CallId::new_v4();
    let message = ClientMessage::Invite {
        call_id,
        callee: callee.to_owned(),
        media: CallMedia::Video,
    };
    (call_id, send(signalling, from, message))
}

fn active_call(signalling: &mut Signalling) -> CallId {
    let (call_id, _) = invite(signalling, ALICE, "bob");
    send(signalling, BOB, ClientMessage::Accept { call_id });
    call_id
}

fn error_code(out: &[Outgoing]) -> Option<ErrorCode> {
    match out {
        [
            Outgoing {
                message: ServerMessage::Error { code, .. },
                ..
            },
        ] => Some(*code),
        _ => None,
    }
}

#[test]
fn connect_sends_hello() {
    let mut signalling = Signalling::new();
    let out = signalling.connect(ALICE, "alice");
    let hello = ServerMessage::Hello {
        user: "alice".into(),
        protocol_version: hearth_proto::PROTOCOL_VERSION,
    };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: hello
        }]
    );
}

#[test]
fn ping_returns_pong_to_sender() {
    let mut signalling = online();
    let out = send(&mut signalling, ALICE, ClientMessage::Ping { nonce: 7 });
    let pong = ServerMessage::Pong { nonce: 7 };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: pong
        }]
    );
}

#[test]
fn invite_sends_incoming_to_callee() {
    let mut signalling = online();
    let (call_id, out) = invite(&mut signalling, ALICE, "bob");
    let incoming = ServerMessage::Incoming {
        call_id,
        caller: "alice".into(),
        media: CallMedia::Video,
    };
    assert_eq!(
        out,
        vec![Outgoing {
            to: BOB,
            message: incoming
        }]
    );
}

#[test]
fn invite_goes_to_latest_connection() {
    let mut signalling = online();
    let bob_second = ConnId(9);
    signalling.connect(bob_second, "bob");
    let (_, out) = invite(&mut signalling, ALICE, "bob");
    assert_eq!(out[0].to, bob_second);
}

#[test]
fn invite_unknown_user_fails() {
    let mut signalling = online();
    let (_, out) = invite(&mut signalling, ALICE, "mallory");
    assert_eq!(error_code(&out), Some(ErrorCode::UserNotFound));
}

#[test]
fn invite_offline_user_fails() {
    let mut signalling = online();
    let (_, out) = invite(&mut signalling, ALICE, "dave");
    assert_eq!(error_code(&out), Some(ErrorCode::UserOffline));
}

#[test]
fn invite_self_fails() {
    let mut signalling = online();
    let (_, out) = invite(&mut signalling, ALICE, "alice");
    assert_eq!(error_code(&out), Some(ErrorCode::SelfCall));
}

#[test]
fn invite_busy_callee_fails() {
    let mut signalling = online();
    active_call(&mut signalling);
    let (_, out) = invite(&mut signalling, CAROL, "bob");
    assert_eq!(error_code(&out), Some(ErrorCode::UserBusy));
}

#[test]
fn invite_ringing_callee_fails() {
    let mut signalling = online();
    invite(&mut signalling, ALICE, "bob");
    let (_, out) = invite(&mut signalling, CAROL, "bob");
    assert_eq!(error_code(&out), Some(ErrorCode::UserBusy));
}

#[test]
fn invite_while_in_call_fails() {
    let mut signalling = online();
    active_call(&mut signalling);
    let (_, out) = invite(&mut signalling, ALICE, "carol");
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn invite_duplicate_call_id_fails() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let again = ClientMessage::Invite {
        call_id,
        callee: "carol".into(),
        media: CallMedia::Audio,
    };
    let out = send(&mut signalling, ALICE, again);
    assert_eq!(error_code(&out), Some(ErrorCode::DuplicateCall));
}

#[test]
fn ringing_reaches_caller() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, BOB, ClientMessage::Ringing { call_id });
    let ringing = ServerMessage::Ringing { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: ringing
        }]
    );
}

#[test]
fn ringing_moves_to_ringing_state() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    send(&mut signalling, BOB, ClientMessage::Ringing { call_id });
    assert_eq!(signalling.call_state(call_id), Some(CallState::Ringing));
}

#[test]
fn accept_reaches_caller() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, BOB, ClientMessage::Accept { call_id });
    let accepted = ServerMessage::Accepted { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: accepted
        }]
    );
}

#[test]
fn accept_by_caller_fails() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, ALICE, ClientMessage::Accept { call_id });
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn accept_twice_fails() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = send(&mut signalling, BOB, ClientMessage::Accept { call_id });
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn decline_reaches_caller_and_ends_call() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let decline = ClientMessage::Decline {
        call_id,
        reason: Some("busy".into()),
    };
    let out = send(&mut signalling, BOB, decline);
    let declined = ServerMessage::Declined {
        call_id,
        reason: Some("busy".into()),
    };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: declined
        }]
    );
    assert_eq!(signalling.call_state(call_id), None);
}

#[test]
fn cancel_reaches_callee_and_ends_call() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, ALICE, ClientMessage::Cancel { call_id });
    let cancelled = ServerMessage::Cancelled { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: BOB,
            message: cancelled
        }]
    );
    assert_eq!(signalling.call_state(call_id), None);
}

#[test]
fn cancel_after_accept_fails() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = send(&mut signalling, ALICE, ClientMessage::Cancel { call_id });
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn offer_before_accept_fails() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let offer = ClientMessage::Offer {
        call_id,
        sdp: "v=0".into(),
    };
    let out = send(&mut signalling, ALICE, offer);
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn offer_is_forwarded_to_callee() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let offer = ClientMessage::Offer {
        call_id,
        sdp: "v=0".into(),
    };
    let out = send(&mut signalling, ALICE, offer);
    let forwarded = ServerMessage::Offer {
        call_id,
        sdp: "v=0".into(),
    };
    assert_eq!(
        out,
        vec![Outgoing {
            to: BOB,
            message: forwarded
        }]
    );
}

#[test]
fn candidate_is_forwarded_to_caller() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    let message = ClientMessage::Candidate {
        call_id,
        candidate: candidate.clone(),
    };
    let out = send(&mut signalling, BOB, message);
    let forwarded = ServerMessage::Candidate { call_id, candidate };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: forwarded
        }]
    );
}

#[test]
fn offer_from_non_participant_fails() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let offer = ClientMessage::Offer {
        call_id,
        sdp: "v=0".into(),
    };
    let out = send(&mut signalling, CAROL, offer);
    assert_eq!(error_code(&out), Some(ErrorCode::NotInCall));
}

#[test]
fn answer_for_unknown_call_fails() {
    let mut signalling = online();
    let answer = ClientMessage::Answer {
        call_id: CallId::new_v4(),
        sdp: "v=0".into(),
    };
    let out = send(&mut signalling, ALICE, answer);
    assert_eq!(error_code(&out), Some(ErrorCode::CallNotFound));
}

#[test]
fn error_goes_to_sender_only() {
    let mut signalling = online();
    let out = send(
        &mut signalling,
        CAROL,
        ClientMessage::HangUp {
            call_id: CallId::new_v4(),
        },
    );
    assert_eq!(out[0].to, CAROL);
}

#[test]
fn hang_up_reaches_peer_and_ends_call() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = send(&mut signalling, BOB, ClientMessage::HangUp { call_id });
    let hung_up = ServerMessage::HungUp { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: hung_up
        }]
    );
    assert_eq!(signalling.call_state(call_id), None);
}

#[test]
fn hang_up_by_caller_before_accept_cancels() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, ALICE, ClientMessage::HangUp { call_id });
    assert_eq!(out[0].message, ServerMessage::Cancelled { call_id });
}

#[test]
fn disconnect_in_active_call_sends_hung_up() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = signalling.disconnect(ALICE);
    let hung_up = ServerMessage::HungUp { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: BOB,
            message: hung_up
        }]
    );
}

#[test]
fn disconnect_while_ringing_sends_cancelled() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = signalling.disconnect(BOB);
    let cancelled = ServerMessage::Cancelled { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: cancelled
        }]
    );
}

#[test]
fn disconnect_frees_callee_for_new_call() {
    let mut signalling = online();
    active_call(&mut signalling);
    signalling.disconnect(ALICE);
    let (_, out) = invite(&mut signalling, CAROL, "bob");
    assert_eq!(out[0].to, BOB);
}

#[test]
fn other_connection_of_callee_is_not_in_call() {
    let mut signalling = online();
    let bob_old = ConnId(8);
    signalling.connect(bob_old, "bob");
    let bob_new = ConnId(9);
    signalling.connect(bob_new, "bob");
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = send(&mut signalling, bob_old, ClientMessage::Accept { call_id });
    assert_eq!(error_code(&out), Some(ErrorCode::NotInCall));
}

fn record_kinds(signalling: &mut Signalling) -> Vec<CallRecordKind> {
    signalling
        .take_call_records()
        .into_iter()
        .map(|record| record.kind)
        .collect()
}

#[test]
fn accept_and_hang_up_note_started_then_ended() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let records = signalling.take_call_records();
    assert_eq!(
        records,
        vec![CallRecord {
            call_id,
            caller: "alice".into(),
            callee: "bob".into(),
            media: CallMedia::Video,
            kind: CallRecordKind::Started,
        }]
    );
    send(&mut signalling, BOB, ClientMessage::HangUp { call_id });
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Ended]);
}

#[test]
fn decline_notes_declined() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let decline = ClientMessage::Decline {
        call_id,
        reason: None,
    };
    send(&mut signalling, BOB, decline);
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Declined]);
}

#[test]
fn callee_hang_up_before_accept_notes_declined() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    send(&mut signalling, BOB, ClientMessage::HangUp { call_id });
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Declined]);
}

#[test]
fn cancel_notes_missed() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    send(&mut signalling, ALICE, ClientMessage::Cancel { call_id });
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Missed]);
}

#[test]
fn invite_to_offline_user_notes_missed() {
    let mut signalling = online();
    let (call_id, out) = invite(&mut signalling, ALICE, "dave");
    assert_eq!(error_code(&out), Some(ErrorCode::UserOffline));
    let records = signalling.take_call_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].call_id, call_id);
    assert_eq!(records[0].callee, "dave");
    assert_eq!(records[0].kind, CallRecordKind::Missed);
}

#[test]
fn invite_to_busy_user_notes_missed() {
    let mut signalling = online();
    active_call(&mut signalling);
    signalling.take_call_records();
    let (_, out) = invite(&mut signalling, CAROL, "bob");
    assert_eq!(error_code(&out), Some(ErrorCode::UserBusy));
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Missed]);
}

#[test]
fn invite_to_unknown_user_notes_nothing() {
    let mut signalling = online();
    let (_, out) = invite(&mut signalling, ALICE, "mallory");
    assert_eq!(error_code(&out), Some(ErrorCode::UserNotFound));
    assert!(signalling.take_call_records().is_empty());
}

#[test]
fn busy_caller_notes_nothing() {
    let mut signalling = online();
    active_call(&mut signalling);
    signalling.take_call_records();
    let (_, out) = invite(&mut signalling, ALICE, "dave");
    assert_eq!(error_code(&out), Some(ErrorCode::UserOffline));
    assert!(signalling.take_call_records().is_empty());
}

#[test]
fn disconnect_notes_missed_or_ended() {
    let mut signalling = online();
    invite(&mut signalling, ALICE, "bob");
    signalling.disconnect(BOB);
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Missed]);

    let mut signalling = online();
    active_call(&mut signalling);
    signalling.take_call_records();
    signalling.disconnect(ALICE);
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Ended]);
}

#[test]
fn ring_timeout_cancels_both_sides() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    send(&mut signalling, BOB, ClientMessage::Ringing { call_id });
    let out = signalling.ring_timeout(call_id);
    let cancelled = ServerMessage::Cancelled { call_id };
    assert_eq!(
        out,
        vec![
            Outgoing {
                to: ALICE,
                message: cancelled.clone()
            },
            Outgoing {
                to: BOB,
                message: cancelled
            }
        ]
    );
    assert_eq!(signalling.call_state(call_id), None);
    assert_eq!(record_kinds(&mut signalling), [CallRecordKind::Missed]);
}

#[test]
fn ring_timeout_leaves_accepted_call() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    signalling.take_call_records();
    assert!(signalling.ring_timeout(call_id).is_empty());
    assert_eq!(signalling.call_state(call_id), Some(CallState::Active));
    assert!(signalling.take_call_records().is_empty());
}

#[test]
fn in_active_call_only_after_accept() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    assert!(!signalling.user_in_active_call("alice"));
    send(&mut signalling, BOB, ClientMessage::Accept { call_id });
    assert!(signalling.user_in_active_call("alice"));
    assert!(signalling.user_in_active_call("bob"));
    assert!(!signalling.user_in_active_call("carol"));
}

fn move_call(
    signalling: &mut Signalling,
    from: ConnId,
    call_id: CallId,
    to: ConversationId,
) -> Vec<Outgoing> {
    let message = ClientMessage::MoveCall {
        call_id,
        conversation_id: to,
    };
    send(signalling, from, message)
}

#[test]
fn move_call_reaches_peer() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = move_call(&mut signalling, BOB, call_id, GROUP);
    let moving = ServerMessage::CallMoving {
        call_id,
        conversation_id: GROUP,
    };
    let to: Vec<ConnId> = out.iter().map(|outgoing| outgoing.to).collect();
    assert_eq!(to, vec![ALICE, BOB]);
    assert!(out.iter().all(|outgoing| outgoing.message == moving));
    assert_eq!(signalling.call_state(call_id), Some(CallState::Active));
}

#[test]
fn move_call_before_accept_fails() {
    let mut signalling = online();
    let (call_id, _) = invite(&mut signalling, ALICE, "bob");
    let out = move_call(&mut signalling, ALICE, call_id, GROUP);
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn move_call_needs_both_as_members() {
    let mut signalling = online();
    signalling.connect(ConnId(4), "dave");
    let (call_id, _) = invite(&mut signalling, ConnId(4), "bob");
    send(&mut signalling, BOB, ClientMessage::Accept { call_id });
    let out = move_call(&mut signalling, BOB, call_id, GROUP);
    assert_eq!(error_code(&out), Some(ErrorCode::NotMember));
    let ServerMessage::Error { message, .. } = &out[0].message else {
        unreachable!("error_code matched an error")
    };
    assert!(message.starts_with("dave is not a member"), "{message}");

    let unknown = ConversationId::from_u128(1);
    let out = move_call(&mut signalling, BOB, call_id, unknown);
    assert_eq!(error_code(&out), Some(ErrorCode::NotMember));
}

#[test]
fn move_call_twice_fails() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    move_call(&mut signalling, ALICE, call_id, GROUP);
    let out = move_call(&mut signalling, BOB, call_id, GROUP);
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));
}

#[test]
fn move_call_from_non_participant_fails() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = move_call(&mut signalling, CAROL, call_id, GROUP);
    assert_eq!(error_code(&out), Some(ErrorCode::NotInCall));
}

#[test]
fn call_switched_is_forwarded_only_while_moving() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    let out = send(
        &mut signalling,
        ALICE,
        ClientMessage::CallSwitched { call_id },
    );
    assert_eq!(error_code(&out), Some(ErrorCode::InvalidState));

    move_call(&mut signalling, ALICE, call_id, GROUP);
    let out = send(
        &mut signalling,
        ALICE,
        ClientMessage::CallSwitched { call_id },
    );
    let switched = ServerMessage::CallSwitched { call_id };
    assert_eq!(
        out,
        vec![Outgoing {
            to: BOB,
            message: switched
        }]
    );
}

#[test]
fn moved_call_ends_with_hang_up() {
    let mut signalling = online();
    let call_id = active_call(&mut signalling);
    move_call(&mut signalling, ALICE, call_id, GROUP);
    send(
        &mut signalling,
        ALICE,
        ClientMessage::CallSwitched { call_id },
    );
    send(
        &mut signalling,
        BOB,
        ClientMessage::CallSwitched { call_id },
    );
    let out = send(&mut signalling, BOB, ClientMessage::HangUp { call_id });
    assert_eq!(
        out,
        vec![Outgoing {
            to: ALICE,
            message: ServerMessage::HungUp { call_id }
        }]
    );
    assert_eq!(signalling.call_state(call_id), None);
    assert_eq!(
        record_kinds(&mut signalling),
        vec![CallRecordKind::Started, CallRecordKind::Ended]
    );
}
