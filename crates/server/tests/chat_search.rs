//! Server-side full-text search over the caller's conversations.

mod common;

use common::TestServer;
use common::chat::api_error;
use hearth_proto::chat::{ConversationId, SearchHit};
use hearth_proto::{ClientMessage, ErrorCode};

async fn search(test: &TestServer, token: &str, query: &[(&str, &str)]) -> Vec<SearchHit> {
    let response = test
        .http
        .get(test.url(hearth_proto::chat::SEARCH_PATH))
        .query(query)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn texts(test: &TestServer, token: &str, q: &str) -> Vec<String> {
    search(test, token, &[("q", q)])
        .await
        .into_iter()
        .map(|hit| hit.text)
        .collect()
}

#[tokio::test]
async fn finds_chinese_words_inside_sentences() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "团队", &[]).await;
    let seq = alice.socket.send_acked(group.id, "明天在会议室开会").await;
    alice.socket.send_acked(group.id, "午饭吃什么").await;

    let hits = search(&test, &alice.token, &[("q", "会议室")]).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation_id, group.id);
    assert_eq!(hits[0].seq, seq);
    assert_eq!(hits[0].sender, "alice");
    assert_eq!(hits[0].text, "明天在会议室开会");

    assert_eq!(
        texts(&test, &alice.token, "开会").await,
        ["明天在会议室开会"]
    );
    assert_eq!(texts(&test, &alice.token, "会").await, ["明天在会议室开会"]);
    // The characters occur, but not next to each other in this order.
    assert!(texts(&test, &alice.token, "会开").await.is_empty());
}

#[tokio::test]
async fn finds_english_words_by_prefix_and_ignores_case() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice
        .socket
        .send_acked(group.id, "Deployment finished at noon")
        .await;
    alice.socket.send_acked(group.id, "Lunch?").await;

    assert_eq!(
        texts(&test, &alice.token, "deploy").await,
        ["Deployment finished at noon"]
    );
    assert_eq!(
        texts(&test, &alice.token, "FINISHED noon").await,
        ["Deployment finished at noon"]
    );
    assert!(texts(&test, &alice.token, "deploy lunch").await.is_empty());
}

#[tokio::test]
async fn finds_words_with_diacritics_without_them() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice.socket.send_acked(group.id, "Café résumé").await;
    assert_eq!(
        texts(&test, &alice.token, "cafe resume").await,
        ["Café résumé"]
    );
}

#[tokio::test]
async fn newest_hits_come_first_and_limit_applies() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    for index in 0..5 {
        alice
            .socket
            .send_acked(group.id, &format!("status report {index}"))
            .await;
    }
    let hits = search(&test, &alice.token, &[("q", "report"), ("limit", "2")]).await;
    let found: Vec<_> = hits.into_iter().map(|hit| hit.text).collect();
    assert_eq!(found, ["status report 4", "status report 3"]);
}

#[tokio::test]
async fn only_callers_conversations_are_searched() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let carol = test.token("carol").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    alice.socket.send_acked(group.id, "the launch code").await;

    assert!(texts(&test, &carol, "launch").await.is_empty());
    assert_eq!(
        texts(&test, &alice.token, "launch").await,
        ["the launch code"]
    );
}

#[tokio::test]
async fn conversation_filter_limits_results() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let first = test.create_group(&alice.token, "one", &[]).await;
    let second = test.create_group(&alice.token, "two", &[]).await;
    alice.socket.send_acked(first.id, "budget draft").await;
    alice.socket.send_acked(second.id, "budget final").await;

    let id = second.id.to_string();
    let hits = search(
        &test,
        &alice.token,
        &[("q", "budget"), ("conversation_id", &id)],
    )
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "budget final");
}

#[tokio::test]
async fn edits_replace_and_deletes_remove_search_text() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let edited = alice.socket.send_acked(group.id, "meet on Monday").await;
    let deleted = alice
        .socket
        .send_acked(group.id, "password is hunter2")
        .await;
    alice
        .socket
        .send(ClientMessage::EditMessage {
            conversation_id: group.id,
            target: edited,
            text: "meet on Tuesday".into(),
        })
        .await;
    alice
        .socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: deleted,
        })
        .await;
    alice.socket.event_with_seq(group.id, deleted + 2).await;

    assert!(texts(&test, &alice.token, "monday").await.is_empty());
    let hits = search(&test, &alice.token, &[("q", "tuesday")]).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].seq, edited);
    assert_eq!(hits[0].text, "meet on Tuesday");
    assert!(texts(&test, &alice.token, "hunter2").await.is_empty());
}

#[tokio::test]
async fn query_without_words_is_invalid_request() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    for query in [
        &[("q", " ?! ")][..],
        &[][..],
        &[("q", "x"), ("limit", "0")][..],
    ] {
        let response = test
            .http
            .get(test.url(hearth_proto::chat::SEARCH_PATH))
            .query(query)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            api_error(response, 400).await.code,
            ErrorCode::InvalidRequest,
            "query {query:?}"
        );
    }
}

#[tokio::test]
async fn query_with_fts_syntax_is_taken_literally() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice.socket.send_acked(group.id, "NEAR the OR AND").await;
    for query in ["\"unbalanced", "NEAR(", "a*b", "OR"] {
        let response = test
            .http
            .get(test.url(hearth_proto::chat::SEARCH_PATH))
            .query(&[("q", query)])
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "query {query:?}");
    }
    assert_eq!(texts(&test, &alice.token, "OR").await, ["NEAR the OR AND"]);
}

#[tokio::test]
async fn unknown_conversation_filter_is_404() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    let id = ConversationId::new_v4().to_string();
    let response = test
        .http
        .get(test.url(hearth_proto::chat::SEARCH_PATH))
        .query(&[("q", "x"), ("conversation_id", &id)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        api_error(response, 404).await.code,
        ErrorCode::ConversationNotFound
    );
}
