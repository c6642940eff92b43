use std::path::PathBuf;
use std::process::Command;

use hearth_server::config::{self, ConfigError, Sources};

fn write_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_listen_on_loopback() {
    let config = config::resolve(&Sources::default()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7443");
}

#[test]
fn defaults_token_lifetimes() {
    let config = config::resolve(&Sources::default()).unwrap();
    assert_eq!(config.access_token_ttl_secs, 900);
    assert_eq!(config.refresh_token_ttl_secs, 30 * 24 * 60 * 60);
}

#[test]
fn file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "listen = \"127.0.0.1:9000\"\naccess_token_ttl_secs = 60\n",
    );
    let sources = Sources {
        file: Some(file),
        ..Sources::default()
    };
    let config = config::resolve(&sources).unwrap();
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.access_token_ttl_secs, 60);
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "listen = \"127.0.0.1:9000\"\n");
    let sources = Sources {
        file: Some(file),
        env_listen: Some("127.0.0.1:9001".into()),
        ..Sources::default()
    };
    assert_eq!(config::resolve(&sources).unwrap().listen.port(), 9001);
}

#[test]
fn flag_overrides_env() {
    let sources = Sources {
        env_listen: Some("127.0.0.1:9001".into()),
        flag_listen: Some("127.0.0.1:9002".into()),
        env_data_dir: Some("/from/env".into()),
        flag_data_dir: Some("/from/flag".into()),
        ..Sources::default()
    };
    let config = config::resolve(&sources).unwrap();
    assert_eq!(config.listen.port(), 9002);
    assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
}

#[test]
fn invalid_listen_names_value_and_fix() {
    let sources = Sources {
        flag_listen: Some("foo".into()),
        ..Sources::default()
    };
    let message = config::resolve(&sources).unwrap_err().to_string();
    assert!(
        message.contains("\"foo\""),
        "message {message:?} does not name the value"
    );
    assert!(
        message.contains("ADDR:PORT"),
        "message {message:?} does not say the format"
    );
}

#[test]
fn unknown_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "listne = \"127.0.0.1:9000\"\n");
    let sources = Sources {
        file: Some(file),
        ..Sources::default()
    };
    let message = config::resolve(&sources).unwrap_err().to_string();
    assert!(
        message.contains("listne"),
        "message {message:?} does not name the key"
    );
}

#[test]
fn missing_file_is_read_error() {
    let sources = Sources {
        file: Some(PathBuf::from("/nonexistent/hearth.toml")),
        ..Sources::default()
    };
    let error = config::resolve(&sources).unwrap_err();
    assert!(
        matches!(error, ConfigError::ReadFile { .. }),
        "got {error:?}"
    );
}

#[test]
fn cert_without_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "tls_cert = \"cert.pem\"\n");
    let sources = Sources {
        file: Some(file),
        ..Sources::default()
    };
    let error = config::resolve(&sources).unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidValue { .. }),
        "got {error:?}"
    );
}

#[test]
fn zero_access_ttl_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "access_token_ttl_secs = 0\n");
    let sources = Sources {
        file: Some(file),
        ..Sources::default()
    };
    assert!(config::resolve(&sources).is_err());
}

#[test]
fn binary_rejects_bad_listen_without_panic() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .args(["--listen", "foo"])
        .env_remove("HEARTH_LISTEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("invalid listen address \"foo\""),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

const OIDC_SECTION: &str = "[oidc]
issuer = \"https://idp.example.org/realms/staff\"
client_id = \"hearth\"
client_secret = \"from-file\"
ca_file = \"idp-ca.pem\"
button_label = \"Example SSO\"
";

fn resolve_oidc(
    text: &str,
    env_secret: Option<&str>,
) -> Result<hearth_server::Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp-ca.pem"), "not read by resolve").unwrap();
    let file = write_file(&dir, text);
    let sources = Sources {
        file: Some(file),
        env_oidc_client_secret: env_secret.map(str::to_owned),
        ..Sources::default()
    };
    config::resolve(&sources)
}

#[test]
fn oidc_section_gets_defaults() {
    let config = resolve_oidc(OIDC_SECTION, None).unwrap();
    let oidc = config.oidc.unwrap();
    assert_eq!(oidc.username_claim, "preferred_username");
    assert!(!oidc.create_users);
    assert_eq!(oidc.scopes, ["openid", "profile"]);
    assert_eq!(oidc.client_secret.expose(), "from-file");
    assert!(oidc.ca_file.unwrap().ends_with("idp-ca.pem"));
    assert_eq!(oidc.redirect_url, None);
}

#[test]
fn oidc_secret_from_env_wins() {
    let config = resolve_oidc(OIDC_SECTION, Some("from-env")).unwrap();
    assert_eq!(config.oidc.unwrap().client_secret.expose(), "from-env");
}

#[test]
fn oidc_secret_env_needs_section() {
    let error = resolve_oidc("", Some("from-env")).unwrap_err();
    assert!(
        error.to_string().contains("no [oidc] section"),
        "got {error}"
    );
}

#[test]
fn oidc_missing_secret_names_env() {
    let text = OIDC_SECTION.replace("client_secret = \"from-file\"\n", "");
    let error = resolve_oidc(&text, None).unwrap_err();
    assert!(
        error.to_string().contains("HEARTH_OIDC_CLIENT_SECRET"),
        "got {error}"
    );
}

#[test]
fn oidc_http_issuer_rejected() {
    let text = OIDC_SECTION.replace("https://idp", "http://idp");
    let error = resolve_oidc(&text, None).unwrap_err();
    assert!(error.to_string().contains("oidc.issuer"), "got {error}");
    assert!(error.to_string().contains("must use https"), "got {error}");
}

#[test]
fn oidc_missing_ca_file_rejected() {
    let text = OIDC_SECTION.replace("idp-ca.pem", "missing.pem");
    let error = resolve_oidc(&text, None).unwrap_err();
    assert!(error.to_string().contains("oidc.ca_file"), "got {error}");
}

#[test]
fn oidc_scopes_need_openid() {
    let text = format!("{OIDC_SECTION}scopes = [\"profile\"]\n");
    let error = resolve_oidc(&text, None).unwrap_err();
    assert!(error.to_string().contains("oidc.scopes"), "got {error}");
}

#[test]
fn oidc_unknown_key_rejected() {
    let text = format!("{OIDC_SECTION}client_secert = \"typo\"\n");
    let error = resolve_oidc(&text, None).unwrap_err();
    assert!(error.to_string().contains("client_secert"), "got {error}");
}

#[test]
fn oidc_secret_hidden_in_debug() {
    let config = resolve_oidc(OIDC_SECTION, None).unwrap();
    assert!(!format!("{config:?}").contains("from-file"));
}

#[test]
fn attachment_limit_defaults_to_25_mib() {
    let config = config::resolve(&Sources::default()).unwrap();
    assert_eq!(config.max_attachment_bytes, 25 * 1024 * 1024);
}

#[test]
fn attachment_limit_from_file_env_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "max_attachment_bytes = 1000\nring_timeout_secs = 30\n",
    );
    let from_file = Sources {
        file: Some(file.clone()),
        ..Sources::default()
    };
    let config = config::resolve(&from_file).unwrap();
    assert_eq!(config.max_attachment_bytes, 1000);
    assert_eq!(config.ring_timeout_secs, 30);

    let from_env = Sources {
        file: Some(file.clone()),
        env_max_attachment_bytes: Some("2000".into()),
        ..Sources::default()
    };
    assert_eq!(
        config::resolve(&from_env).unwrap().max_attachment_bytes,
        2000
    );

    let from_flag = Sources {
        file: Some(file),
        env_max_attachment_bytes: Some("2000".into()),
        flag_max_attachment_bytes: Some(3000),
        ..Sources::default()
    };
    assert_eq!(
        config::resolve(&from_flag).unwrap().max_attachment_bytes,
        3000
    );
}

#[test]
fn invalid_attachment_limit_env_names_variable() {
    let sources = Sources {
        env_max_attachment_bytes: Some("25MB".into()),
        ..Sources::default()
    };
    let message = config::resolve(&sources).unwrap_err().to_string();
    assert!(
        message.contains("HEARTH_MAX_ATTACHMENT_BYTES"),
        "message {message:?} does not name the variable"
    );
    assert!(
        message.contains("\"25MB\""),
        "message {message:?} does not name the value"
    );
}

#[test]
fn zero_attachment_limit_is_rejected() {
    let sources = Sources {
        flag_max_attachment_bytes: Some(0),
        ..Sources::default()
    };
    let message = config::resolve(&sources).unwrap_err().to_string();
    assert!(message.contains("max_attachment_bytes"), "{message}");
}

#[test]
fn binary_rejects_non_numeric_attachment_limit() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .args(["--max-attachment-bytes", "abc", "user", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("--max-attachment-bytes"),
        "stderr: {stderr}"
    );
}

/// Resolves a configuration from a file with `text`.
fn resolve_file(text: &str) -> Result<config::Config, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, text);
    config::resolve(&Sources {
        file: Some(file),
        ..Sources::default()
    })
}

#[test]
fn room_video_codecs_default_to_h264_first() {
    let config = config::resolve(&Sources::default()).unwrap();
    assert_eq!(config.room_video_codecs, ["H264", "VP8"]);
}

#[test]
fn room_video_codecs_from_file_in_any_case() {
    let config = resolve_file("room_video_codecs = [\"vp8\", \"H264\"]\n").unwrap();
    assert_eq!(config.room_video_codecs, ["VP8", "H264"]);

    let config = resolve_file("room_video_codecs = [\"VP8\"]\n").unwrap();
    assert_eq!(config.room_video_codecs, ["VP8"]);
}

#[test]
fn room_video_codecs_reject_bad_lists() {
    let cases = [
        ("[\"AV1\"]", "\"AV1\" is not a supported video codec"),
        ("[]", "the list is empty"),
        ("[\"VP8\", \"vp8\"]", "\"vp8\" is listed twice"),
    ];
    for (list, expected) in cases {
        let message = resolve_file(&format!("room_video_codecs = {list}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("room_video_codecs"),
            "{list}: the message names no key: {message}"
        );
        assert!(
            message.contains(expected),
            "{list}: expected {expected:?} in {message}"
        );
    }
}
