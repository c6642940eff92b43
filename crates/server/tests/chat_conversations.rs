//! Creating conversations and managing names and members over REST, and who
//! may do what.

mod common;

use common::TestServer;
use common::chat::{api_error, conversation_path};
use hearth_proto::chat::{
    AddMember, Conversation, ConversationId, ConversationKind, CreateConversation, EventBody,
    RenameConversation, Role,
};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};

fn members_path(id: ConversationId) -> String {
    format!("{}/members", conversation_path(id))
}

fn member_path(id: ConversationId, user: &str) -> String {
    format!("{}/members/{user}", conversation_path(id))
}

fn roles(conversation: &Conversation) -> Vec<(String, Role)> {
    conversation
        .members
        .iter()
        .map(|member| (member.user.clone(), member.role))
        .collect()
}

#[tokio::test]
async fn create_group_makes_creator_owner() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let group = test
        .create_group(&token, "  Design  ", &["bob", "carol", "bob"])
        .await;
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.name.as_deref(), Some("Design"));
    assert_eq!(
        roles(&group),
        [
            ("alice".to_owned(), Role::Owner),
            ("bob".to_owned(), Role::Member),
            ("carol".to_owned(), Role::Member)
        ]
    );
    // One member_added event per member.
    assert_eq!(group.last_seq, 3);
}

#[tokio::test]
async fn creation_is_pushed_to_members() {
    let test = TestServer::start().await;
    let alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let changed = bob
        .socket
        .receive_until(|message| match message {
            ServerMessage::ConversationChanged { conversation_id } => Some(*conversation_id),
            _ => None,
        })
        .await;
    assert_eq!(changed, group.id);
    let added = bob.socket.event_with_seq(group.id, 2).await;
    assert_eq!(
        added.body,
        EventBody::MemberAdded {
            user: "bob".into(),
            role: Role::Member
        }
    );
}

#[tokio::test]
async fn group_without_name_is_invalid_request() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    for name in [None, Some("   ".to_owned()), Some("x".repeat(201))] {
        let request = CreateConversation {
            kind: ConversationKind::Group,
            name,
            members: vec![],
        };
        let response = test
            .post_json(&token, hearth_proto::chat::CONVERSATIONS_PATH, &request)
            .await;
        assert_eq!(
            api_error(response, 400).await.code,
            ErrorCode::InvalidRequest
        );
    }
}

#[tokio::test]
async fn group_with_unknown_member_is_user_not_found() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let request = CreateConversation {
        kind: ConversationKind::Group,
        name: Some("team".into()),
        members: vec!["bob".into(), "mallory".into()],
    };
    let response = test
        .post_json(&token, hearth_proto::chat::CONVERSATIONS_PATH, &request)
        .await;
    let error = api_error(response, 404).await;
    assert_eq!(error.code, ErrorCode::UserNotFound);
    assert!(error.message.contains("mallory"), "{}", error.message);
    // Nothing was created.
    let list: Vec<Conversation> = test
        .get(&token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn direct_conversation_is_unique_per_pair() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let bob = test.token("bob").await;
    let first = test.create_direct(&alice, "bob").await;
    assert_eq!(first.kind, ConversationKind::Direct);
    assert_eq!(first.name, None);
    assert_eq!(
        roles(&first),
        [
            ("alice".to_owned(), Role::Member),
            ("bob".to_owned(), Role::Member)
        ]
    );

    let request = CreateConversation {
        kind: ConversationKind::Direct,
        name: None,
        members: vec!["alice".into()],
    };
    let response = test
        .post_json(&bob, hearth_proto::chat::CONVERSATIONS_PATH, &request)
        .await;
    assert_eq!(
        response.status(),
        200,
        "an existing direct conversation is not created again"
    );
    let again: Conversation = response.json().await.unwrap();
    assert_eq!(again.id, first.id);
}

#[tokio::test]
async fn direct_conversation_needs_exactly_one_other_user() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let cases = [
        (vec![], None),
        (vec!["bob".to_owned(), "carol".to_owned()], None),
        (vec!["alice".to_owned()], None),
        (vec!["bob".to_owned()], Some("named".to_owned())),
    ];
    for (members, name) in cases {
        let request = CreateConversation {
            kind: ConversationKind::Direct,
            name,
            members: members.clone(),
        };
        let response = test
            .post_json(&token, hearth_proto::chat::CONVERSATIONS_PATH, &request)
            .await;
        assert_eq!(
            api_error(response, 400).await.code,
            ErrorCode::InvalidRequest,
            "members {members:?}"
        );
    }
}

#[tokio::test]
async fn direct_conversation_cannot_be_renamed_or_changed() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let direct = test.create_direct(&token, "bob").await;

    let rename = RenameConversation {
        name: "ours".into(),
    };
    let response = test
        .patch_json(&token, &conversation_path(direct.id), &rename)
        .await;
    assert_eq!(
        api_error(response, 400).await.code,
        ErrorCode::InvalidRequest
    );

    let add = AddMember {
        user: "carol".into(),
        role: Role::Member,
    };
    let response = test.post_json(&token, &members_path(direct.id), &add).await;
    assert_eq!(
        api_error(response, 400).await.code,
        ErrorCode::InvalidRequest
    );

    let response = test.delete(&token, &member_path(direct.id, "alice")).await;
    assert_eq!(
        api_error(response, 400).await.code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn owner_renames_group() {
    let test = TestServer::start().await;
    let alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let rename = RenameConversation {
        name: "Team Hearth".into(),
    };
    let response = test
        .patch_json(&alice.token, &conversation_path(group.id), &rename)
        .await;
    assert_eq!(response.status(), 200);
    let renamed: Conversation = response.json().await.unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Team Hearth"));

    let event = bob
        .socket
        .event_with_seq(group.id, group.last_seq + 1)
        .await;
    assert_eq!(
        event.body,
        EventBody::Renamed {
            name: "Team Hearth".into()
        }
    );
}

#[tokio::test]
async fn member_cannot_rename_add_or_remove() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice, "team", &["bob", "carol"]).await;

    let rename = RenameConversation {
        name: "bob's".into(),
    };
    let response = test
        .patch_json(&bob, &conversation_path(group.id), &rename)
        .await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::Forbidden);

    let add = AddMember {
        user: "alice".into(),
        role: Role::Member,
    };
    let response = test.post_json(&bob, &members_path(group.id), &add).await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::Forbidden);

    let response = test.delete(&bob, &member_path(group.id, "carol")).await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::Forbidden);

    let unchanged: Conversation = test
        .get(&alice, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged.name.as_deref(), Some("team"));
    assert_eq!(unchanged.members.len(), 3);
}

#[tokio::test]
async fn owner_adds_member_who_then_sees_the_group() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let mut carol = test.chat_user("carol").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;

    let add = AddMember {
        user: "carol".into(),
        role: Role::Owner,
    };
    let response = test.post_json(&alice, &members_path(group.id), &add).await;
    assert_eq!(response.status(), 200);
    let updated: Conversation = response.json().await.unwrap();
    assert!(roles(&updated).contains(&("carol".to_owned(), Role::Owner)));

    let changed = carol
        .socket
        .receive_until(|message| match message {
            ServerMessage::ConversationChanged { conversation_id } => Some(*conversation_id),
            _ => None,
        })
        .await;
    assert_eq!(changed, group.id);
    let event = carol.socket.next_event(group.id).await;
    assert_eq!(
        event.body,
        EventBody::MemberAdded {
            user: "carol".into(),
            role: Role::Owner
        }
    );
    let list: Vec<Conversation> = test
        .get(&carol.token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);

    // Adding the same member again changes nothing.
    let response = test.post_json(&alice, &members_path(group.id), &add).await;
    assert_eq!(response.status(), 200);
    let again: Conversation = response.json().await.unwrap();
    assert_eq!(again.last_seq, updated.last_seq);
}

#[tokio::test]
async fn owner_removes_member_who_loses_access() {
    let test = TestServer::start().await;
    let alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let response = test
        .delete(&alice.token, &member_path(group.id, "bob"))
        .await;
    assert_eq!(response.status(), 204);

    let removed = bob
        .socket
        .event_with_seq(group.id, group.last_seq + 1)
        .await;
    assert_eq!(removed.sender, "alice");
    assert_eq!(
        removed.body,
        EventBody::MemberRemoved { user: "bob".into() }
    );
    let gone = bob
        .socket
        .receive_until(|message| match message {
            ServerMessage::ConversationRemoved { conversation_id } => Some(*conversation_id),
            _ => None,
        })
        .await;
    assert_eq!(gone, group.id);

    let response = test.get(&bob.token, &conversation_path(group.id)).await;
    assert_eq!(api_error(response, 403).await.code, ErrorCode::NotMember);
    bob.socket.say(group.id, "still here?").await;
    assert_eq!(bob.socket.next_error().await.0, ErrorCode::NotMember);
}

#[tokio::test]
async fn member_leaves_group() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;

    let response = test.delete(&bob, &member_path(group.id, "bob")).await;
    assert_eq!(response.status(), 204);
    let after: Conversation = test
        .get(&alice, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(roles(&after), [("alice".to_owned(), Role::Owner)]);
}

#[tokio::test]
async fn last_owner_leaving_promotes_oldest_member() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;
    let add = AddMember {
        user: "carol".into(),
        role: Role::Member,
    };
    test.post_json(&alice, &members_path(group.id), &add).await;

    let response = test.delete(&alice, &member_path(group.id, "alice")).await;
    assert_eq!(response.status(), 204);
    let after: Conversation = test
        .get(&bob, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        roles(&after),
        [
            ("bob".to_owned(), Role::Owner),
            ("carol".to_owned(), Role::Member)
        ]
    );
}

#[tokio::test]
async fn removing_non_member_is_user_not_found() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;
    let response = test.delete(&alice, &member_path(group.id, "carol")).await;
    assert_eq!(api_error(response, 404).await.code, ErrorCode::UserNotFound);
}

#[tokio::test]
async fn list_shows_unread_and_read_position() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    alice.socket.send_acked(group.id, "one").await;
    alice.socket.send_acked(group.id, "two").await;

    let list: Vec<Conversation> = test
        .get(&bob, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, group.id);
    assert_eq!(list[0].unread, 2);
    assert_eq!(list[0].last_read_seq, 0);
    // Own messages are never unread.
    let own: Conversation = test
        .get(&alice.token, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own.unread, 0);
}

#[tokio::test]
async fn unknown_conversation_is_404() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let response = test
        .get(&token, &conversation_path(ConversationId::new_v4()))
        .await;
    assert_eq!(
        api_error(response, 404).await.code,
        ErrorCode::ConversationNotFound
    );
}

#[tokio::test]
async fn invalid_conversation_id_is_invalid_request() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let response = test.get(&token, "/api/v1/conversations/not-a-uuid").await;
    let error = api_error(response, 400).await;
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(error.message.contains("not-a-uuid"), "{}", error.message);
}

#[tokio::test]
async fn non_member_gets_not_member_on_every_endpoint() {
    let test = TestServer::start().await;
    let alice = test.token("alice").await;
    let carol = test.token("carol").await;
    let group = test.create_group(&alice, "team", &["bob"]).await;

    let responses = [
        ("get", test.get(&carol, &conversation_path(group.id)).await),
        (
            "rename",
            test.patch_json(
                &carol,
                &conversation_path(group.id),
                &RenameConversation { name: "x".into() },
            )
            .await,
        ),
        (
            "add member",
            test.post_json(
                &carol,
                &members_path(group.id),
                &AddMember {
                    user: "carol".into(),
                    role: Role::Owner,
                },
            )
            .await,
        ),
        (
            "remove member",
            test.delete(&carol, &member_path(group.id, "bob")).await,
        ),
        (
            "upload",
            test.http
                .post(test.url(&format!(
                    "{}/attachments?name=a.txt",
                    conversation_path(group.id)
                )))
                .bearer_auth(&carol)
                .body("data")
                .send()
                .await
                .unwrap(),
        ),
        (
            "search",
            test.get(
                &carol,
                &format!("/api/v1/search?q=x&conversation_id={}", group.id),
            )
            .await,
        ),
    ];
    for (endpoint, response) in responses {
        assert_eq!(response.status(), 403, "{endpoint}");
        let error: hearth_proto::chat::ApiError = response.json().await.unwrap();
        assert_eq!(error.code, ErrorCode::NotMember, "{endpoint}");
    }
}

#[tokio::test]
async fn non_member_gets_not_member_on_every_frame() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut carol = test.chat_user("carol").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = alice.socket.send_acked(group.id, "members only").await;

    let frames = [
        ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id: uuid::Uuid::new_v4(),
            text: "let me in".into(),
            reply_to: None,
            attachments: vec![],
        },
        ClientMessage::EditMessage {
            conversation_id: group.id,
            target: seq,
            text: "edited".into(),
        },
        ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: seq,
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
        ClientMessage::MarkRead {
            conversation_id: group.id,
            seq,
        },
    ];
    for frame in frames {
        carol.socket.send(frame.clone()).await;
        let (code, error) = carol.socket.next_error().await;
        assert_eq!(code, ErrorCode::NotMember, "{frame:?}");
        let ServerMessage::Error {
            conversation_id, ..
        } = error
        else {
            unreachable!()
        };
        assert_eq!(conversation_id, Some(group.id));
    }
    carol.socket.assert_alive().await;
}
