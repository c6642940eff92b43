mod common;

use common::TestServer;

#[tokio::test]
async fn ephemeral_port_is_reported() {
    let test = TestServer::start().await;
    assert_ne!(test.server.local_addr().port(), 0);
}

#[tokio::test]
async fn base_url_uses_bound_port() {
    let test = TestServer::start().await;
    let expected = format!("https://127.0.0.1:{}", test.server.local_addr().port());
    assert_eq!(test.server.base_url(), expected);
}

#[tokio::test]
async fn generated_certificate_is_reused() {
    hearth_server::install_crypto_provider();
    let data_dir = tempfile::tempdir().unwrap();
    let config = hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearth_server::Config::default()
    };
    let first = hearth_server::start(config.clone()).await.unwrap();
    let first_pem = first.certificate_pem().to_owned();
    first.shutdown().await;
    let second = hearth_server::start(config).await.unwrap();
    assert_eq!(second.certificate_pem(), first_pem);
    second.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn private_key_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;

    let data_dir = tempfile::tempdir().unwrap();
    let config = hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearth_server::Config::default()
    };
    let server = hearth_server::start(config).await.unwrap();
    let mode = std::fs::metadata(data_dir.path().join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    server.shutdown().await;
}

#[tokio::test]
async fn data_dir_is_created_with_parents() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("a/b/c");
    let config = hearth_server::Config {
        data_dir: data_dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearth_server::Config::default()
    };
    let server = hearth_server::start(config).await.unwrap();
    assert!(data_dir.join("hearth.db").exists());
    server.shutdown().await;
}

#[tokio::test]
async fn duplicate_user_is_rejected() {
    let test = TestServer::start().await;
    let error = test.server.add_user("alice", "another").await.unwrap_err();
    assert!(
        matches!(error, hearth_server::AccountError::AlreadyExists { .. }),
        "got {error:?}"
    );
}

#[tokio::test]
async fn invalid_user_name_is_rejected() {
    let test = TestServer::start().await;
    let error = test.server.add_user("no spaces", "pw").await.unwrap_err();
    assert!(
        matches!(error, hearth_server::AccountError::InvalidName { .. }),
        "got {error:?}"
    );
}

#[tokio::test]
async fn database_stores_no_plain_tokens() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_owned();
    let test = TestServer::start_with(|config| config.data_dir = dir.clone()).await;
    let tokens = test.sign_in("alice").await;
    let mut contents = Vec::new();
    for name in ["hearth.db", "hearth.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            contents.extend(bytes);
        }
    }
    let haystack = String::from_utf8_lossy(&contents);
    assert!(!haystack.contains(&tokens.access_token));
    assert!(!haystack.contains(&tokens.refresh_token));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let test = TestServer::start().await;
    let url = test.url(hearth_proto::HEALTH_PATH);
    let http = test.http.clone();
    test.server.shutdown().await;
    assert!(http.get(url).send().await.is_err());
}

#[tokio::test]
async fn corrupted_database_fails_with_error() {
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(data_dir.path().join("hearth.db"), vec![0xAB; 8192]).unwrap();
    let config = hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..hearth_server::Config::default()
    };
    let Err(error) = hearth_server::start(config).await else {
        panic!("a corrupted database file was accepted");
    };
    assert!(
        format!("{error:#}").contains("hearth.db"),
        "error {error:#} does not name the file"
    );
}
