//! The app's state: the profile, the signed-in session and the embedded
//! server. Commands are thin adapters over these methods.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hearth_client::ServerEndpoint;
use hearth_client::credentials::Account as KeyringAccount;
use hearth_client::session::{ConnectionState, Credentials, Session, SessionConfig};
use hearth_client::store::{DATABASE_FILE, account_dir};
use hearth_client::trust::{self, normalize_fingerprint};
use hearth_proto::oauth::TokenResponse;
use tauri::AppHandle;

use crate::error::{ErrorCode, UiError, UiResult, is_certificate_error};
use crate::events::{Forwarder, RoomDirectory};
use crate::phone::Phone;
use crate::profile::{EmbeddedConfig, Profile, Renderer, SavedAccount, Settings};
use crate::video::VideoHub;
use crate::views::{Account, AppStatus, Connection, EmbeddedServer, ServerCheck};

/// Port the embedded server prefers; another free port is used when taken.
pub const EMBEDDED_PORT: u16 = 7443;

pub struct App {
    pub handle: AppHandle,
    pub dir: PathBuf,
    inner: tokio::sync::Mutex<Inner>,
    settings: Mutex<Settings>,
    pub phone: Phone,
    pub video: Arc<VideoHub>,
    /// The group calls in progress in the user's conversations.
    pub rooms: RoomDirectory,
}

#[derive(Default)]
struct Inner {
    profile: Profile,
    session: Option<Session>,
    forwarder: Option<Forwarder>,
    embedded: Option<hearth_server::RunningServer>,
    embedded_view: Option<EmbeddedServer>,
}

impl App {
    pub fn new(handle: AppHandle, dir: PathBuf) -> Self {
        let profile = Profile::load(&dir);
        let video = Arc::new(VideoHub::default());
        Self {
            phone: Phone::new(handle.clone(), Arc::clone(&video)),
            settings: Mutex::new(profile.settings.clone()),
            inner: tokio::sync::Mutex::new(Inner {
                profile,
                ..Inner::default()
            }),
            handle,
            dir,
            video,
            rooms: RoomDirectory::default(),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Restores the last run: starts the embedded server if there was one,
    /// then the session from the keyring. Failures leave the app on the
    /// first-run or sign-in screen with the reason logged.
    pub async fn restore(&self) {
        let mut inner = self.inner.lock().await;
        if let Some(embedded) = inner.profile.embedded.clone()
            && let Err(err) = self.start_embedded(&mut inner, embedded.port).await
        {
            tracing::warn!(error = %err, "cannot restart the embedded server");
        }
        let Some(saved) = inner.profile.account.clone() else {
            return;
        };
        let result = async {
            let endpoint = endpoint(&saved.server, saved.pinned_fingerprint.as_deref())?;
            let keyring = KeyringAccount {
                server: endpoint.base_url().to_owned(),
                user: saved.user.clone(),
            };
            let refresh = keyring
                .load_refresh_token()?
                .ok_or_else(|| UiError::code(ErrorCode::NotSignedIn))?;
            self.open_session(
                &mut inner,
                endpoint,
                &saved.user,
                Credentials::RefreshToken(refresh),
            )
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, user = %saved.user, "cannot restore the session");
        }
    }

    pub async fn status(&self) -> AppStatus {
        let inner = self.inner.lock().await;
        AppStatus {
            account: inner.profile.account.as_ref().map(|saved| Account {
                server: saved.server.clone(),
                user: saved.user.clone(),
            }),
            embedded: inner.embedded_view.clone(),
            connection: inner
                .session
                .as_ref()
                .map_or(Connection::SignedOut, |session| {
                    connection_view(&session.state())
                }),
            settings: self.settings(),
            renderers: Renderer::available(),
        }
    }

    /// Returns the signed-in session.
    pub async fn session(&self) -> UiResult<Session> {
        self.inner
            .lock()
            .await
            .session
            .clone()
            .ok_or_else(|| UiError::code(ErrorCode::NotSignedIn))
    }

    pub async fn check_server(&self, address: &str) -> UiResult<ServerCheck> {
        let url = normalize_address(address)?;
        let probe = trust::probe_certificate(&url).await?;
        Ok(ServerCheck {
            url,
            trusted: probe.trusted_by_system,
            fingerprint: probe.fingerprint,
        })
    }

    pub async fn sign_in(
        &self,
        address: &str,
        user: &str,
        password: &str,
        trusted_fingerprint: Option<&str>,
    ) -> UiResult<Account> {
        let user = user.trim();
        if user.is_empty() || password.is_empty() {
            return Err(UiError::new(
                ErrorCode::InvalidInput,
                "enter both the user name and the password",
            ));
        }
        let url = normalize_address(address)?;
        let endpoint = endpoint(&url, trusted_fingerprint)?;
        let tokens = hearth_client::auth::sign_in_with_password(&endpoint, user, password)
            .await
            .map_err(sign_in_error)?;
        self.finish_sign_in(endpoint, user, tokens, trusted_fingerprint)
            .await
    }

    pub async fn sign_in_with_browser(
        &self,
        address: &str,
        trusted_fingerprint: Option<&str>,
    ) -> UiResult<Account> {
        let url = normalize_address(address)?;
        let endpoint = endpoint(&url, trusted_fingerprint)?;
        let options = hearth_client::auth::BrowserSignIn::default();
        let tokens =
            hearth_client::auth::sign_in_with_browser(&endpoint, &options, |url| async move {
                hearth_client::auth::open_system_browser(&url);
            })
            .await
            .map_err(sign_in_error)?;
        let user = tokens.user.clone().ok_or_else(|| {
            UiError::new(ErrorCode::ServerFailed, "the server did not name the user")
        })?;
        self.finish_sign_in(endpoint, &user, tokens, trusted_fingerprint)
            .await
    }

    async fn finish_sign_in(
        &self,
        endpoint: ServerEndpoint,
        user: &str,
        tokens: TokenResponse,
        trusted_fingerprint: Option<&str>,
    ) -> UiResult<Account> {
        let keyring = KeyringAccount {
            server: endpoint.base_url().to_owned(),
            user: user.to_owned(),
        };
        keyring.store_refresh_token(&tokens.refresh_token)?;
        let mut inner = self.inner.lock().await;
        let server = endpoint.base_url().to_owned();
        self.open_session(&mut inner, endpoint, user, Credentials::Tokens(tokens))?;
        inner.profile.account = Some(SavedAccount {
            server: server.clone(),
            user: user.to_owned(),
            pinned_fingerprint: trusted_fingerprint.and_then(normalize_fingerprint),
        });
        inner.profile.save(&self.dir)?;
        tracing::info!(%user, %server, "signed in");
        Ok(Account {
            server,
            user: user.to_owned(),
        })
    }

    fn open_session(
        &self,
        inner: &mut Inner,
        endpoint: ServerEndpoint,
        user: &str,
        credentials: Credentials,
    ) -> UiResult<()> {
        if let Some(old) = inner.session.take() {
            self.phone.detach();
            tokio::spawn(async move { old.close().await });
        }
        let keyring = KeyringAccount {
            server: endpoint.base_url().to_owned(),
            user: user.to_owned(),
        };
        let database =
            account_dir(&self.dir.join("chat"), endpoint.base_url(), user).join(DATABASE_FILE);
        let session = Session::start(SessionConfig {
            server: endpoint,
            user: user.to_owned(),
            credentials,
            keyring: Some(keyring),
            database,
        })?;
        if let Some(recovery) = session.recovery() {
            tracing::warn!(reason = %recovery.reason, "the local database was corrupt and was rebuilt");
        }
        self.rooms.clear();
        inner.forwarder = Some(Forwarder::start(
            self.handle.clone(),
            session.clone(),
            self.rooms.clone(),
        ));
        self.phone.attach(session.clone());
        inner.session = Some(session);
        Ok(())
    }

    pub async fn sign_out(&self) -> UiResult<()> {
        let mut inner = self.inner.lock().await;
        self.phone.detach();
        inner.forwarder = None;
        if let Some(session) = inner.session.take() {
            session.close().await;
        }
        if let Some(saved) = inner.profile.account.take() {
            let server = endpoint(&saved.server, saved.pinned_fingerprint.as_deref())?;
            let keyring = KeyringAccount {
                server: server.base_url().to_owned(),
                user: saved.user.clone(),
            };
            // The keyring entry goes even when the server cannot revoke it.
            if let Err(err) = hearth_client::auth::sign_out(&server, &keyring).await {
                tracing::warn!(error = %err, "cannot revoke the refresh token on the server");
            }
        }
        inner.profile.save(&self.dir)
    }

    /// Starts a server on this computer, creates the first account and signs in.
    pub async fn start_embedded_server(
        &self,
        user: &str,
        password: &str,
    ) -> UiResult<EmbeddedServer> {
        let user = user.trim();
        hearth_server::accounts::validate_name(user)
            .map_err(|err| UiError::new(ErrorCode::InvalidInput, err.to_string()))?;
        if password.chars().count() < 8 {
            return Err(UiError::new(
                ErrorCode::InvalidInput,
                "the password needs at least 8 characters",
            ));
        }
        let (endpoint, view) = {
            let mut inner = self.inner.lock().await;
            if inner.embedded.is_none() {
                self.start_embedded(&mut inner, EMBEDDED_PORT).await?;
            }
            let server = inner
                .embedded
                .as_ref()
                .expect("the embedded server was started above");
            match server.add_user(user, password).await {
                Ok(()) | Err(hearth_server::AccountError::AlreadyExists { .. }) => {}
                Err(err) => return Err(UiError::new(ErrorCode::InvalidInput, err.to_string())),
            }
            let view = inner
                .embedded_view
                .clone()
                .expect("the view is set with the server");
            let endpoint =
                ServerEndpoint::with_pinned_certificate(&server.base_url(), &view.fingerprint)?;
            (endpoint, view)
        };
        let tokens = hearth_client::auth::sign_in_with_password(&endpoint, user, password)
            .await
            .map_err(sign_in_error)?;
        let fingerprint = view.fingerprint.clone();
        self.finish_sign_in(endpoint, user, tokens, Some(&fingerprint))
            .await?;
        Ok(view)
    }

    async fn start_embedded(&self, inner: &mut Inner, port: u16) -> UiResult<()> {
        let data_dir = self.dir.join("server");
        let config = |port: u16| hearth_server::Config {
            data_dir: data_dir.clone(),
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            ..Default::default()
        };
        let server = match hearth_server::start(config(port)).await {
            Ok(server) => server,
            Err(err) if port != 0 => {
                tracing::warn!(error = %err, port, "the embedded server's port is taken; using another");
                hearth_server::start(config(0))
                    .await
                    .map_err(|err| UiError::new(ErrorCode::ServerFailed, format!("{err:#}")))?
            }
            Err(err) => return Err(UiError::new(ErrorCode::ServerFailed, format!("{err:#}"))),
        };
        let port = server.local_addr().port();
        let fingerprint =
            trust::certificate_fingerprint(&first_certificate_der(server.certificate_pem())?);
        inner.embedded_view = Some(EmbeddedServer {
            join_urls: join_urls(port),
            fingerprint,
        });
        inner.embedded = Some(server);
        inner.profile.embedded = Some(EmbeddedConfig { port });
        inner.profile.save(&self.dir)?;
        tracing::info!(port, "embedded server started");
        Ok(())
    }

    pub async fn update_settings(&self, settings: Settings) -> UiResult<Settings> {
        settings.validate()?;
        let mut inner = self.inner.lock().await;
        inner.profile.settings = settings.clone();
        inner.profile.save(&self.dir)?;
        *self
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = settings.clone();
        Ok(settings)
    }

    /// Stops the session and the embedded server, as on quit.
    pub async fn shut_down(&self) {
        let mut inner = self.inner.lock().await;
        self.phone.detach();
        if let Some(session) = inner.session.take() {
            session.close().await;
        }
        if let Some(server) = inner.embedded.take() {
            server.shutdown().await;
        }
    }
}

pub fn connection_view(state: &ConnectionState) -> Connection {
    match state {
        ConnectionState::Online => Connection::Online,
        ConnectionState::Connecting | ConnectionState::Syncing => Connection::Connecting,
        ConnectionState::Offline { error, .. } if is_certificate_error(error) => {
            Connection::UntrustedCertificate
        }
        ConnectionState::SignedOut { .. } => Connection::SignedOut,
        _ => Connection::Offline,
    }
}

fn endpoint(url: &str, pinned: Option<&str>) -> UiResult<ServerEndpoint> {
    Ok(match pinned {
        Some(fingerprint) => ServerEndpoint::with_pinned_certificate(url, fingerprint)?,
        None => ServerEndpoint::new(url, None)?,
    })
}

fn sign_in_error(err: hearth_client::ClientError) -> UiError {
    match err {
        hearth_client::ClientError::SignInRejected { error, description }
            if error != "invalid_grant" =>
        {
            UiError::new(ErrorCode::ServerFailed, description)
        }
        other => other.into(),
    }
}

/// Turns what a user typed into `https://host:port`: the scheme is added
/// when missing, and the port defaults to the server's 7443.
pub fn normalize_address(address: &str) -> UiResult<String> {
    let input = address.trim();
    let invalid = || UiError::new(ErrorCode::InvalidAddress, input);
    if input.is_empty() || input.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        format!("https://{input}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| invalid())?;
    if url.scheme() != "https"
        || url.host_str().is_none_or(str::is_empty)
        || url.path() != "/"
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(invalid());
    }
    let host = url.host_str().expect("checked above");
    let port = url.port().unwrap_or(EMBEDDED_PORT);
    Ok(format!("https://{host}:{port}"))
}

fn first_certificate_der(pem: &str) -> UiResult<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|cert| cert.to_vec())
        .ok_or_else(|| UiError::internal("the embedded server has no certificate"))
}

/// The addresses colleagues can use: every non-loopback IPv4 address, then
/// loopback for this computer.
fn join_urls(port: u16) -> Vec<String> {
    let mut urls: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|interface| !interface.is_loopback())
        .filter_map(|interface| match interface.ip() {
            IpAddr::V4(ip) if !ip.is_link_local() => Some(format!("https://{ip}:{port}")),
            _ => None,
        })
        .collect();
    urls.push(format!("https://127.0.0.1:{port}"));
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme_and_the_default_port() {
        assert_eq!(
            normalize_address("chat.example.org").unwrap(),
            "https://chat.example.org:7443"
        );
        assert_eq!(
            normalize_address(" https://10.0.0.5:9000/ ").unwrap(),
            "https://10.0.0.5:9000"
        );
    }

    #[test]
    fn malformed_addresses_name_the_input() {
        for bad in [
            "",
            "http://chat.example.org",
            "chat example",
            "https://",
            "https://a/b",
        ] {
            let err = normalize_address(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidAddress, "{bad:?}");
            assert_eq!(err.detail.as_deref(), Some(bad.trim()));
        }
    }
}
