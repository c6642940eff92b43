//! A real `hearth-server` on loopback for the client tests.

#![allow(dead_code)]

use std::path::PathBuf;

use hearth_client::ServerEndpoint;
use hearth_client::signal::SignalConnection;
use hearth_media::PeerConfig;
use hearth_server::RunningServer;

pub struct TestServer {
    pub server: RunningServer,
    pub endpoint: ServerEndpoint,
    _data_dir: tempfile::TempDir,
}

pub async fn start_server() -> TestServer {
    let data_dir = tempfile::tempdir().unwrap();
    let server = hearth_server::start(hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let endpoint = ServerEndpoint::new(&server.base_url(), Some(server.certificate_pem())).unwrap();
    TestServer {
        server,
        endpoint,
        _data_dir: data_dir,
    }
}

impl TestServer {
    /// Creates a user and opens its signalling connection.
    pub async fn connect(&self, user: &str) -> SignalConnection {
        let password = format!("{user}-password");
        self.server.add_user(user, &password).await.unwrap();
        let tokens = hearth_client::auth::sign_in_with_password(&self.endpoint, user, &password)
            .await
            .unwrap();
        SignalConnection::connect(&self.endpoint, &tokens.access_token)
            .await
            .unwrap()
    }
}

pub fn loopback_peer() -> PeerConfig {
    PeerConfig {
        udp_addrs: vec!["127.0.0.1:0".parse().unwrap()],
        ..Default::default()
    }
}

pub fn media(relative: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/media"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "test media {} is missing; set HEARTH_MEDIA_DIR",
        path.display()
    );
    path
}
