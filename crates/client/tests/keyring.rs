//! The refresh token in the real Secret Service. Run inside
//! `dbus-run-session` with an unlocked gnome-keyring, as `scripts/test.sh` does;
//! without a session bus the test is reported as skipped.

#![cfg(target_os = "linux")]

use hearth_client::credentials::Account;

fn secret_service_available() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
}

#[test]
fn refresh_token_round_trips_through_keyring() {
    if !secret_service_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test under dbus-run-session with gnome-keyring, as scripts/test.sh does"
        );
        eprintln!("skipped: no D-Bus session bus; run under dbus-run-session with gnome-keyring");
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
