//! Full-text search of synced messages, in the local SQLite index and on
//! the server: Chinese words inside longer runs and English prefixes.

mod common;

use std::time::Duration;

use common::eventually;
use hearth_client::session::{NewMessage, SendOutcome};
use hearth_proto::chat::EventBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_chinese_and_prefixes() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let bob = server
        .online_session("bob", &folder.path().join("bob.sqlite3"))
        .await;
    let direct = alice.open_direct("bob").await.unwrap();
    let texts = [
        "明天在会议室开会",
        "Quarterly planning moved to Thursday",
        "会议取消了",
    ];
    for text in texts {
        let entry = alice
            .send(
                direct.id,
                NewMessage {
                    text: text.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let outcome = alice
            .wait_sent(entry.client_id, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(matches!(outcome, SendOutcome::Sent { .. }));
    }
    eventually("bob to store the messages", || {
        bob.search_local("会议", None, 10)
            .is_ok_and(|hits| hits.len() == 2)
    })
    .await;

    let room = bob.search_local("会议室", None, 10).unwrap();
    assert_eq!(room.len(), 1);
    let EventBody::Message { text, .. } = &room[0].event.body else {
        panic!("the hit is not a message");
    };
    assert_eq!(text, "明天在会议室开会");
    assert!(bob.search_local("议会", None, 10).unwrap().is_empty());

    let prefix = bob.search_local("quart plan", None, 10).unwrap();
    assert_eq!(prefix.len(), 1);
    assert!(bob.search_local("planet", None, 10).unwrap().is_empty());
    let scoped = bob
        .search_local(
            "会议",
            Some(hearth_proto::chat::ConversationId::new_v4()),
            10,
        )
        .unwrap();
    assert!(scoped.is_empty());

    let remote = bob.search_server("会议室", None, 10).await.unwrap();
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0].text, "明天在会议室开会");
    assert_eq!(remote[0].conversation_id, direct.id);
    let remote_prefix = bob
        .search_server("Thurs", Some(direct.id), 10)
        .await
        .unwrap();
    assert_eq!(remote_prefix.len(), 1);

    let empty = bob.search_local("  !? ", None, 10).unwrap_err();
    assert_eq!(empty.code(), "invalid_input");
    alice.close().await;
    bob.close().await;
}
