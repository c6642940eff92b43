//! How a session gets its access token: from a saved refresh token, by
//! refreshing one the server rejects, and not at all once the refresh token
//! was revoked.

mod common;

use std::time::Duration;

use hearth_client::session::{ConnectionState, Credentials, Session, SessionConfig};
use hearth_proto::oauth::TokenResponse;

fn start(
    server: &common::TestServer,
    credentials: Credentials,
    database: &std::path::Path,
) -> Session {
    Session::start(SessionConfig {
        server: server.endpoint.clone(),
        user: "alice".into(),
        credentials,
        keyring: None,
        database: database.to_owned(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_starts_session() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    let folder = tempfile::tempdir().unwrap();
    let tokens = server.sign_in("alice").await;

    let session = start(
        &server,
        Credentials::RefreshToken(tokens.refresh_token),
        &folder.path().join("alice.sqlite3"),
    );
    common::wait_online(&session).await;
    assert!(session.conversations().unwrap().is_empty());

    // Dropping the last handle ends the connection task without close().
    let mut state = session.watch_state();
    drop(session);
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|state| *state == ConnectionState::Closed),
    )
    .await
    .expect("the task stops")
    .expect("the state stays readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_access_token_is_refreshed() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    let folder = tempfile::tempdir().unwrap();
    let tokens = server.sign_in("alice").await;

    let stale = TokenResponse {
        access_token: "not-a-valid-access-token".into(),
        ..tokens
    };
    let session = start(
        &server,
        Credentials::Tokens(stale),
        &folder.path().join("alice.sqlite3"),
    );
    common::wait_online(&session).await;
    // REST requests use the refreshed token too.
    assert!(
        session
            .users()
            .await
            .unwrap()
            .iter()
            .any(|user| user.name == "alice")
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_refresh_token_signs_out() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    let folder = tempfile::tempdir().unwrap();
    let first = server.sign_in("alice").await;
    // Rotating the token spends the first one.
    hearth_client::auth::refresh(&server.endpoint, &first.refresh_token)
        .await
        .unwrap();

    let session = start(
        &server,
        Credentials::RefreshToken(first.refresh_token),
        &folder.path().join("alice.sqlite3"),
    );
    let state = session.wait_settled(Duration::from_secs(10)).await;
    assert!(
        matches!(state, ConnectionState::SignedOut { .. }),
        "expected signed out, got {state:?}"
    );
    session.close().await;
}
