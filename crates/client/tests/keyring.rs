//! The refresh token in the real Secret Service. Run inside
//! `dbus-run-session` with an unlocked gnome-keyring, as `scripts/test.sh` does;
//! without a session bus the test is reported as skipped.

#![cfg(target_os = "linux")]

mod common;

use hearth_client::ClientError;
use hearth_client::credentials::Account;

fn secret_service_available() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
}

/// Returns false, after checking that this is not CI, when there is no
/// Secret Service to test against.
fn require_secret_service() -> bool {
    if secret_service_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test under dbus-run-session with gnome-keyring, as scripts/test.sh does"
    );
    eprintln!("skipped: no D-Bus session bus; run under dbus-run-session with gnome-keyring");
    false
}

#[test]
fn refresh_token_round_trips_through_keyring() {
    if !require_secret_service() {
        return;
    }
    let account = Account {
        server: format!("https://127.0.0.1:{}", std::process::id()),
        user: "keyring-test".into(),
    };

    assert_eq!(account.load_refresh_token().unwrap(), None);
    account.store_refresh_token("first-token").unwrap();
    assert_eq!(
        account.load_refresh_token().unwrap().as_deref(),
        Some("first-token")
    );
    account.store_refresh_token("rotated-token").unwrap();
    assert_eq!(
        account.load_refresh_token().unwrap().as_deref(),
        Some("rotated-token")
    );
    account.forget().unwrap();
    assert_eq!(account.load_refresh_token().unwrap(), None);
}

#[tokio::test]
async fn sign_out_revokes_and_forgets() {
    if !require_secret_service() {
        return;
    }
    let test = common::start_server().await;
    test.server
        .add_user("leaving", "leaving-password")
        .await
        .unwrap();
    let tokens =
        hearth_client::auth::sign_in_with_password(&test.endpoint, "leaving", "leaving-password")
            .await
            .unwrap();
    let account = Account {
        server: test.endpoint.base_url().to_owned(),
        user: "leaving".into(),
    };
    account.store_refresh_token(&tokens.refresh_token).unwrap();

    hearth_client::auth::sign_out(&test.endpoint, &account)
        .await
        .unwrap();

    assert_eq!(account.load_refresh_token().unwrap(), None);
    let refreshed = hearth_client::auth::refresh(&test.endpoint, &tokens.refresh_token).await;
    assert!(
        matches!(&refreshed, Err(ClientError::SignInRejected { error, .. }) if error == "invalid_grant"),
        "the revoked refresh token still works: {refreshed:?}"
    );
    let connected =
        hearth_client::signal::SignalConnection::connect(&test.endpoint, &tokens.access_token)
            .await;
    assert!(connected.is_err(), "the access token survived sign-out");
}

#[tokio::test]
async fn sign_out_forgets_when_server_gone() {
    if !require_secret_service() {
        return;
    }
    let test = common::start_server().await;
    let endpoint = test.endpoint.clone();
    test.server.shutdown().await;
    let account = Account {
        server: endpoint.base_url().to_owned(),
        user: "offline".into(),
    };
    account
        .store_refresh_token("token-of-a-gone-server")
        .unwrap();

    let result = hearth_client::auth::sign_out(&endpoint, &account).await;

    match result {
        Err(error @ ClientError::RevokeFailed { .. }) => assert_eq!(error.code(), "revoke_failed"),
        other => panic!("expected revoke_failed, got {other:?}"),
    }
    assert_eq!(account.load_refresh_token().unwrap(), None);
}
