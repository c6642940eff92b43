//! Sign-in for the CLI. `hearth login` signs in through the browser (or with
//! a password) and keeps the refresh token in the OS keyring and the server
//! address in a profile file. Other commands either reuse that or sign in with
//! `--user` and `--password-stdin`. `hearth logout` ends the session.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use hearth_client::auth::{BrowserSignIn, open_system_browser, sign_in_with_browser};
use hearth_client::credentials::Account;
use hearth_client::signal::SignalConnection;
use hearth_client::{ClientError, ServerEndpoint};
use hearth_proto::oauth::TokenResponse;
use serde::{Deserialize, Serialize};

#[derive(Args)]
pub struct LoginArgs {
    /// Server address, for example https://chat.example.org:7443; defaults to
    /// --server, HEARTH_SERVER or the server of the last sign-in.
    #[arg(value_name = "SERVER_URL")]
    pub server_url: Option<String>,
    /// Server address, used when SERVER_URL is not given.
    #[arg(long, env = "HEARTH_SERVER")]
    pub server: Option<String>,
    /// PEM file with the CA certificate (or the self-signed certificate) of the server.
    #[arg(long, env = "HEARTH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Sign in with a user name and password instead of the browser, for
    /// scripts and tests (needs --user).
    #[arg(long)]
    pub password: bool,
    /// User name for --password.
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long, requires = "password")]
    pub password_stdin: bool,
    /// Print the sign-in address instead of opening a browser.
    #[arg(long, conflicts_with = "password")]
    pub no_browser: bool,
    /// How long to wait for the browser sign-in, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Sign-in options of a command: the saved profile, or these flags.
#[derive(Args, Default)]
pub struct SessionArgs {
    /// Server address; defaults to the one saved by `hearth login`.
    #[arg(long, env = "HEARTH_SERVER")]
    pub server: Option<String>,
    /// PEM file with the CA certificate of the server.
    #[arg(long, env = "HEARTH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Sign in as this user with a password instead of the saved session.
    #[arg(long)]
    pub user: Option<String>,
    /// Read the password from the first line of standard input (needs --user).
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
}

/// The server address saved by `hearth login`. The refresh token is not in it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Profile {
    server: String,
    user: String,
    ca_cert: Option<PathBuf>,
}

/// A signed-in user with an open signalling connection.
pub struct Session {
    pub signal: SignalConnection,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let saved = load_profile()?;
    let server_url = login_server_url(&args, saved.as_ref())?;
    let ca_cert = args.ca_cert.clone().or_else(|| {
        saved
            .as_ref()
            .filter(|profile| profile.server == server_url.trim_end_matches('/'))
            .and_then(|profile| profile.ca_cert.clone())
    });
    let server = endpoint(&server_url, ca_cert.as_deref())?;

    let (user, tokens) = if args.password {
        let Some(user) = args.user.clone() else {
            bail!(
                "--password needs --user NAME; without --password, hearth signs in through the browser"
            );
        };
        let password = read_password(args.password_stdin)?;
        let tokens = hearth_client::auth::sign_in_with_password(&server, &user, &password)
            .await
            .map_err(|err| sign_in_error(&user, &server, err))?;
        (user, tokens)
    } else {
        let tokens = browser_sign_in(&server, &args).await?;
        let user = tokens
            .user
            .clone()
            .context("the server did not name the signed-in user; update hearth-server")?;
        (user, tokens)
    };

    let account = Account {
        server: server.base_url().to_owned(),
        user: user.clone(),
    };
    account.store_refresh_token(&tokens.refresh_token)?;
    let profile = Profile {
        server: server.base_url().to_owned(),
        user: user.clone(),
        ca_cert: ca_cert.map(|path| absolute(&path)),
    };
    save_profile(&profile)?;
    println!("signed in as {user} at {}", server.base_url());
    Ok(())
}

/// Picks the server of `hearth login`: SERVER_URL, --server (or
/// HEARTH_SERVER), or the saved profile's.
fn login_server_url(args: &LoginArgs, saved: Option<&Profile>) -> anyhow::Result<String> {
    if let Some(url) = &args.server_url
        && !url.starts_with("https://")
    {
        // `hearth login NAME --server URL` was the form before browser sign-in.
        bail!(
            "{url:?} is not a server address; use `hearth login https://HOST:PORT` to sign in \
             through the browser, or `hearth login --password --user {url} https://HOST:PORT` \
             to sign in with a password"
        );
    }
    match (&args.server_url, &args.server, saved) {
        (Some(url), _, _) | (None, Some(url), _) => Ok(url.clone()),
        (None, None, Some(profile)) => Ok(profile.server.clone()),
        (None, None, None) => bail!(
            "no server given; run `hearth login https://HOST:PORT` with your Hearth server's address"
        ),
    }
}

/// Runs the browser sign-in: opens the sign-in page, or prints its address
/// when no browser can be opened, and waits for the redirect.
async fn browser_sign_in(
    server: &ServerEndpoint,
    args: &LoginArgs,
) -> anyhow::Result<TokenResponse> {
    let options = BrowserSignIn {
        client_id: hearth_proto::oauth::CLIENT_ID_CLI.to_owned(),
        timeout: Duration::from_secs(args.timeout),
    };
    let no_browser = args.no_browser;
    let result = sign_in_with_browser(server, &options, |url| async move {
        let opened = !no_browser && {
            let url = url.clone();
            tokio::task::spawn_blocking(move || open_system_browser(&url))
                .await
                .unwrap_or(false)
        };
        if opened {
            println!(
                "Opened the sign-in page in your browser. If it did not appear, open this address:"
            );
        } else {
            println!("Open this address in a browser on this computer to sign in:");
        }
        println!("{url}");
    })
    .await;
    result.map_err(|err| match err {
        ClientError::SignInRejected { error, description } if error == "access_denied" => {
            anyhow!("sign-in was cancelled or denied: {description}; run `hearth login` again")
        }
        ClientError::Timeout { seconds, .. } => anyhow!(
            "no sign-in finished within {seconds} s; run `hearth login` again, or raise --timeout"
        ),
        other => other.into(),
    })
}

/// Signs out: revokes the saved session at the server and deletes the refresh
/// token from the keyring and the profile.
pub async fn logout() -> anyhow::Result<()> {
    let Some(profile) = load_profile()? else {
        println!("not signed in");
        return Ok(());
    };
    let account = Account {
        server: profile.server.clone(),
        user: profile.user.clone(),
    };
    let outcome = match endpoint(&profile.server, profile.ca_cert.as_deref()) {
        Ok(server) => hearth_client::auth::sign_out(&server, &account)
            .await
            .map_err(anyhow::Error::from),
        Err(err) => {
            account.forget()?;
            Err(err.context(
                "signed out on this computer, but could not reach the server to revoke the session",
            ))
        }
    };
    remove_profile()?;
    outcome?;
    println!("signed out {} at {}", profile.user, profile.server);
    Ok(())
}

/// Signs in with the command line's options and opens the signalling connection.
pub async fn open_session(args: &SessionArgs) -> anyhow::Result<Session> {
    let profile = load_profile()?;
    let server_url = match (&args.server, &profile) {
        (Some(server), _) => server.clone(),
        (None, Some(profile)) => profile.server.clone(),
        (None, None) => {
            bail!("no server given; run `hearth login https://HOST:PORT` or pass --server")
        }
    };
    let ca_cert = args
        .ca_cert
        .clone()
        .or_else(|| profile.as_ref().and_then(|p| p.ca_cert.clone()));
    let server = endpoint(&server_url, ca_cert.as_deref())?;

    let access_token = if let Some(user) = &args.user {
        let password = read_password(args.password_stdin)?;
        hearth_client::auth::sign_in_with_password(&server, user, &password)
            .await
            .map_err(|err| sign_in_error(user, &server, err))?
            .access_token
    } else {
        let Some(profile) = profile else {
            bail!(
                "not signed in; run `hearth login https://HOST:PORT`, or pass --user and --password-stdin"
            );
        };
        let account = Account {
            server: server.base_url().to_owned(),
            user: profile.user.clone(),
        };
        let refresh_token = account.load_refresh_token()?.with_context(|| {
            format!(
                "no saved session for {} in the OS keyring; run `hearth login {}`",
                profile.user, profile.server
            )
        })?;
        let tokens = hearth_client::auth::refresh(&server, &refresh_token).await?;
        // The old refresh token is spent now, so the new one must be kept.
        account.store_refresh_token(&tokens.refresh_token)?;
        tokens.access_token
    };
    let signal = SignalConnection::connect(&server, &access_token).await?;
    Ok(Session { signal })
}

fn endpoint(url: &str, ca_cert: Option<&Path>) -> anyhow::Result<ServerEndpoint> {
    let pem = match ca_cert {
        Some(path) => Some(read_ca_cert(path)?),
        None => None,
    };
    ServerEndpoint::new(url, pem.as_deref()).map_err(|err| match (err, ca_cert) {
        (ClientError::InvalidCertificate(detail), Some(path)) => invalid_ca_cert(path, &detail),
        (other, _) => other.into(),
    })
}

fn read_ca_cert(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| invalid_ca_cert(path, "the file is binary, not PEM text"))
}

fn invalid_ca_cert(path: &Path, detail: &str) -> anyhow::Error {
    anyhow!(
        "invalid CA certificate {}: {detail}; pass the server's PEM certificate, \
         such as tls/cert.pem in the hearth-server data folder",
        path.display()
    )
}

/// Names the user and the fix when the server rejects the credentials.
fn sign_in_error(user: &str, server: &ServerEndpoint, err: ClientError) -> anyhow::Error {
    match err {
        ClientError::SignInRejected { description, .. } => anyhow!(
            "cannot sign in as {user} at {}: {description}; check the user name and password",
            server.base_url()
        ),
        other => other.into(),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("password: ").context("cannot read the password")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

fn profile_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("profile.toml"));
    }
    let dirs = directories::ProjectDirs::from("org", "Hearth", "hearth")
        .context("cannot find the user's configuration folder; set HEARTH_CONFIG_DIR")?;
    Ok(dirs.config_dir().join("profile.toml"))
}

fn load_profile() -> anyhow::Result<Option<Profile>> {
    let path = profile_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(toml::from_str(&text).with_context(|| {
                format!("invalid profile {}", path.display())
            })?))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_profile(profile: &Profile) -> anyhow::Result<()> {
    let path = profile_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, toml::to_string(profile)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn remove_profile() -> anyhow::Result<()> {
    let path = profile_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot delete {}", path.display())),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The server, user and credentials of a chat session, read from the command
/// line, the saved profile and the keyring without contacting the server, so
/// that a command can still queue a message while the server is down.
pub struct ChatLogin {
    pub server: ServerEndpoint,
    pub user: String,
    pub credentials: hearth_client::session::Credentials,
    /// Keyring entry for rotated refresh tokens; `None` for a password sign-in.
    pub keyring: Option<Account>,
}

pub fn chat_login(args: &SessionArgs) -> anyhow::Result<ChatLogin> {
    use hearth_client::session::Credentials;

    let profile = load_profile()?;
    let server_url = match (&args.server, &profile) {
        (Some(server), _) => server.clone(),
        (None, Some(profile)) => profile.server.clone(),
        (None, None) => {
            bail!("no server given; run `hearth login https://HOST:PORT` or pass --server")
        }
    };
    let ca_cert = args
        .ca_cert
        .clone()
        .or_else(|| profile.as_ref().and_then(|p| p.ca_cert.clone()));
    let server = endpoint(&server_url, ca_cert.as_deref())?;

    if let Some(user) = &args.user {
        let password = read_password(args.password_stdin)?;
        return Ok(ChatLogin {
            server,
            user: user.clone(),
            credentials: Credentials::Password(password),
            keyring: None,
        });
    }
    let Some(profile) = profile else {
        bail!(
            "not signed in; run `hearth login https://HOST:PORT`, or pass --user and --password-stdin"
        );
    };
    let account = Account {
        server: server.base_url().to_owned(),
        user: profile.user.clone(),
    };
    let refresh_token = account.load_refresh_token()?.with_context(|| {
        format!(
            "no saved session for {} in the OS keyring; run `hearth login {}`",
            profile.user, profile.server
        )
    })?;
    Ok(ChatLogin {
        server,
        user: profile.user,
        credentials: Credentials::RefreshToken(refresh_token),
        keyring: Some(account),
    })
}
