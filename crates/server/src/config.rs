//! Server configuration and how it is resolved from its sources.
//!
//! Each source overrides the one before it: built-in defaults, the TOML file given
//! with `--config`, the environment variables `HEARTH_DATA_DIR`, `HEARTH_LISTEN`,
//! `HEARTH_MAX_ATTACHMENT_BYTES` and `HEARTH_OIDC_CLIENT_SECRET`, and finally the
//! command-line flags `--data-dir`, `--listen` and `--max-attachment-bytes`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

/// Default address the server listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
/// Default access token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Default refresh token lifetime: 30 days.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 60 * 60;
/// Default limit of one attachment upload: 25 MiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = crate::chat::DEFAULT_MAX_ATTACHMENT_BYTES;
/// Default time a call may ring before the server cancels it: 65 seconds.
pub const DEFAULT_RING_TIMEOUT_SECS: u64 = crate::signal::DEFAULT_RING_TIMEOUT.as_secs();

/// Environment variable that sets [`Config::data_dir`].
pub const ENV_DATA_DIR: &str = "HEARTH_DATA_DIR";
/// Environment variable that sets [`Config::listen`].
pub const ENV_LISTEN: &str = "HEARTH_LISTEN";
/// Environment variable that sets [`Config::max_attachment_bytes`].
pub const ENV_MAX_ATTACHMENT_BYTES: &str = "HEARTH_MAX_ATTACHMENT_BYTES";
/// Environment variable that sets [`OidcConfig::client_secret`], so the secret
/// need not be written into the config file.
pub const ENV_OIDC_CLIENT_SECRET: &str = "HEARTH_OIDC_CLIENT_SECRET";
/// Default claim whose value is the Hearth user name.
pub const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";
/// Longest accepted federation button label, in characters.
pub const MAX_BUTTON_LABEL_CHARS: usize = 64;
/// The video codecs the SFU can request of a room, by SDP encoding name,
/// in the default order of preference.
pub const ROOM_VIDEO_CODECS: [&str; 2] = ["H264", "VP8"];

/// Settings of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory of `hearth.db` and the generated TLS certificate.
    pub data_dir: PathBuf,
    /// Address to listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// PEM certificate chain. Without it the server generates a self-signed
    /// certificate under `data_dir/tls/`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Access token lifetime in seconds. Zero makes tokens expire at once.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Largest attachment upload in bytes.
    pub max_attachment_bytes: u64,
    /// Seconds a call may ring unanswered before the server cancels it and
    /// records it as missed.
    pub ring_timeout_secs: u64,
    /// Sign-in through the organisation's OpenID Connect provider, if configured.
    pub oidc: Option<OidcConfig>,
    /// The video codecs group calls use, by SDP encoding name in upper case,
    /// in order of preference: a room sends in the first one that every
    /// participant offered. Codecs left out are never requested.
    pub room_video_codecs: Vec<String>,
}

/// The `[oidc]` section: federation with an OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Issuer URL; discovery reads `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// PEM file of the CA that signed the provider's certificate, for a private
    /// CA. The operating system's roots are trusted as well.
    pub ca_file: Option<PathBuf>,
    /// ID token or UserInfo claim whose value is the Hearth user name.
    pub username_claim: String,
    /// Whether a first sign-in of an unknown user name creates the account.
    pub create_users: bool,
    /// Shown on the sign-in page as "Sign in with LABEL".
    pub button_label: String,
    /// Scopes requested from the provider; always includes `openid`.
    pub scopes: Vec<String>,
    /// The callback URL registered at the provider. Without it the server
    /// builds `https://HOST/oauth/oidc/callback` from the Host of the request.
    pub redirect_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid socket address"),
            tls_cert: None,
            tls_key: None,
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            refresh_token_ttl_secs: DEFAULT_REFRESH_TOKEN_TTL_SECS,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
            oidc: None,
            room_video_codecs: ROOM_VIDEO_CODECS.map(str::to_owned).to_vec(),
        }
    }
}

/// Returns the platform's per-user data directory, for example
/// `~/.local/share/hearth-server` on Linux, or `./hearth-data` when the platform
/// has no home directory.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "Hearth", "hearth-server")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("hearth-data"))
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error(
        "invalid listen address {value:?} from {origin}: expected ADDR:PORT such as 0.0.0.0:7443"
    )]
    InvalidListen { value: String, origin: String },
    #[error("invalid {key} in {origin}: {message}")]
    InvalidValue {
        key: &'static str,
        origin: String,
        message: String,
    },
}

/// Settings in the TOML file. Every key is optional and unknown keys are rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    max_attachment_bytes: Option<u64>,
    ring_timeout_secs: Option<u64>,
    room_video_codecs: Option<Vec<String>>,
    oidc: Option<FileOidcConfig>,
}

/// The `[oidc]` table of the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidcConfig {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    ca_file: Option<PathBuf>,
    username_claim: Option<String>,
    #[serde(default)]
    create_users: bool,
    button_label: Option<String>,
    scopes: Option<Vec<String>>,
    redirect_url: Option<String>,
}

/// The raw inputs of [`resolve`], collected by the binary.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// Path given with `--config`.
    pub file: Option<PathBuf>,
    /// Value of `HEARTH_DATA_DIR`.
    pub env_data_dir: Option<String>,
    /// Value of `HEARTH_LISTEN`.
    pub env_listen: Option<String>,
    /// Value of `HEARTH_OIDC_CLIENT_SECRET`.
    pub env_oidc_client_secret: Option<String>,
    /// Value of `--data-dir`.
    pub flag_data_dir: Option<PathBuf>,
    /// Value of `--listen`.
    pub flag_listen: Option<String>,
    /// Value of `HEARTH_MAX_ATTACHMENT_BYTES`.
    pub env_max_attachment_bytes: Option<String>,
    /// Value of `--max-attachment-bytes`.
    pub flag_max_attachment_bytes: Option<u64>,
}

impl Sources {
    /// Reads `HEARTH_DATA_DIR`, `HEARTH_LISTEN`, `HEARTH_MAX_ATTACHMENT_BYTES`
    /// and `HEARTH_OIDC_CLIENT_SECRET` from the process environment.
    pub fn with_process_env(mut self) -> Self {
        self.env_data_dir = std::env::var(ENV_DATA_DIR).ok();
        self.env_listen = std::env::var(ENV_LISTEN).ok();
        self.env_max_attachment_bytes = std::env::var(ENV_MAX_ATTACHMENT_BYTES).ok();
        self.env_oidc_client_secret = std::env::var(ENV_OIDC_CLIENT_SECRET).ok();
        self
    }
}

/// Builds the configuration from defaults, file, environment and flags, in that
/// order of precedence, and validates it.
pub fn resolve(sources: &Sources) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    if let Some(path) = &sources.file {
        apply_file(&mut config, path)?;
    }

    if let Some(dir) = sources
        .env_data_dir
        .as_deref()
        .filter(|dir| !dir.is_empty())
    {
        config.data_dir = PathBuf::from(dir);
    }
    if let Some(listen) = &sources.env_listen {
        config.listen = parse_listen(listen, ENV_LISTEN)?;
    }
    if let Some(secret) = sources
        .env_oidc_client_secret
        .as_deref()
        .filter(|secret| !secret.is_empty())
    {
        let Some(oidc) = config.oidc.as_mut() else {
            return Err(ConfigError::InvalidValue {
                key: "oidc",
                origin: ENV_OIDC_CLIENT_SECRET.to_owned(),
                message: "the variable is set but the config file has no [oidc] section; \
                          add one or unset the variable"
                    .to_owned(),
            });
        };
        oidc.client_secret = Secret::new(secret);
    }
    if let Some(dir) = &sources.flag_data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &sources.flag_listen {
        config.listen = parse_listen(listen, "--listen")?;
    }
    if let Some(value) = sources
        .env_max_attachment_bytes
        .as_deref()
        .filter(|value| !value.is_empty())
    {
        config.max_attachment_bytes =
            value
                .trim()
                .parse()
                .map_err(|_| ConfigError::InvalidValue {
                    key: "max_attachment_bytes",
                    origin: ENV_MAX_ATTACHMENT_BYTES.to_owned(),
                    message: format!("{value:?} is not a whole number of bytes, such as 26214400"),
                })?;
    }
    if let Some(bytes) = sources.flag_max_attachment_bytes {
        config.max_attachment_bytes = bytes;
    }

    validate(&config)?;
    Ok(config)
}

fn apply_file(config: &mut Config, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
        path: path.to_owned(),
        message: describe_toml_error(&text, &error),
    })?;
    let origin = path.display().to_string();

    // Relative paths in the file are relative to the file, not to the working
    // directory of the process that starts the server.
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(dir) = file.data_dir {
        config.data_dir = base.join(dir);
    }
    if let Some(listen) = file.listen {
        config.listen = parse_listen(&listen, &origin)?;
    }
    config.tls_cert = file.tls_cert.map(|cert| base.join(cert));
    config.tls_key = file.tls_key.map(|key| base.join(key));
    if let Some(ttl) = file.access_token_ttl_secs {
        config.access_token_ttl_secs = ttl;
    }
    if let Some(ttl) = file.refresh_token_ttl_secs {
        config.refresh_token_ttl_secs = ttl;
    }
    if let Some(bytes) = file.max_attachment_bytes {
        config.max_attachment_bytes = bytes;
    }
    if let Some(secs) = file.ring_timeout_secs {
        config.ring_timeout_secs = secs;
    }
    if let Some(codecs) = file.room_video_codecs {
        config.room_video_codecs = parse_room_video_codecs(&codecs, &origin)?;
    }
    config.oidc = file.oidc.map(|oidc| OidcConfig {
        issuer: oidc.issuer,
        client_id: oidc.client_id,
        client_secret: Secret::new(oidc.client_secret.unwrap_or_default()),
        ca_file: oidc.ca_file.map(|file| base.join(file)),
        username_claim: oidc
            .username_claim
            .unwrap_or_else(|| DEFAULT_USERNAME_CLAIM.to_owned()),
        create_users: oidc.create_users,
        button_label: oidc.button_label.unwrap_or_else(|| "SSO".to_owned()),
        scopes: oidc
            .scopes
            .unwrap_or_else(|| vec!["openid".to_owned(), "profile".to_owned()]),
        redirect_url: oidc.redirect_url,
    });
    Ok(())
}

/// Formats a TOML error as `line N: message`, for example
/// ``line 3: unknown field `listne`, expected one of `data_dir`, `listen`, ...``.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_owned(),
    }
}

/// Checks a list of room video codecs and returns it in upper case.
fn parse_room_video_codecs(codecs: &[String], origin: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |message: String| ConfigError::InvalidValue {
        key: "room_video_codecs",
        origin: origin.to_owned(),
        message,
    };
    let supported = ROOM_VIDEO_CODECS.join("\", \"");
    if codecs.is_empty() {
        return Err(invalid(format!(
            "the list is empty; list one or both of \"{supported}\" in order of preference"
        )));
    }
    let mut parsed: Vec<String> = Vec::new();
    for codec in codecs {
        let name = codec.trim().to_ascii_uppercase();
        if !ROOM_VIDEO_CODECS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "{codec:?} is not a supported video codec; use \"{supported}\""
            )));
        }
        if parsed.contains(&name) {
            return Err(invalid(format!(
                "{codec:?} is listed twice; list each codec once"
            )));
        }
        parsed.push(name);
    }
    Ok(parsed)
}

fn parse_listen(value: &str, origin: &str) -> Result<SocketAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::InvalidListen {
            value: value.to_owned(),
            origin: origin.to_owned(),
        })
}

fn validate(config: &Config) -> Result<(), ConfigError> {
    let invalid = |key, message: &str| ConfigError::InvalidValue {
        key,
        origin: "configuration".to_owned(),
        message: message.to_owned(),
    };
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(invalid(
            "tls_cert/tls_key",
            "set both tls_cert and tls_key, or neither to use a generated self-signed certificate",
        ));
    }
    if config.access_token_ttl_secs == 0 {
        return Err(invalid(
            "access_token_ttl_secs",
            "must be at least 1 second; the default is 900",
        ));
    }
    if config.refresh_token_ttl_secs < config.access_token_ttl_secs {
        return Err(invalid(
            "refresh_token_ttl_secs",
            "must be at least access_token_ttl_secs; the default is 2592000 (30 days)",
        ));
    }
    if config.max_attachment_bytes == 0 {
        return Err(invalid(
            "max_attachment_bytes",
            "must be at least 1 byte; the default is 26214400 (25 MiB)",
        ));
    }
    if config.ring_timeout_secs == 0 {
        return Err(invalid(
            "ring_timeout_secs",
            "must be at least 1 second; the default is 65",
        ));
    }
    if let Some(oidc) = &config.oidc {
        validate_oidc(oidc)?;
    }
    Ok(())
}

fn validate_oidc(oidc: &OidcConfig) -> Result<(), ConfigError> {
    let invalid = |key, message: String| ConfigError::InvalidValue {
        key,
        origin: "[oidc]".to_owned(),
        message,
    };

    check_https_url(&oidc.issuer).map_err(|problem| {
        invalid(
            "oidc.issuer",
            format!(
                "{:?} {problem}; use the provider's issuer URL, such as https://idp.example.org/realms/staff",
                oidc.issuer
            ),
        )
    })?;

    if let Some(url) = &oidc.redirect_url {
        check_https_url(url).map_err(|problem| {
            invalid(
                "oidc.redirect_url",
                format!(
                    "{url:?} {problem}; use https://HOST:PORT{}",
                    hearth_proto::OIDC_CALLBACK_PATH
                ),
            )
        })?;
    }

    if oidc.client_id.trim().is_empty() {
        return Err(invalid(
            "oidc.client_id",
            "must not be empty; use the client id registered at the provider".to_owned(),
        ));
    }

    if oidc.client_secret.expose().is_empty() {
        return Err(invalid(
            "oidc.client_secret",
            format!(
                "is missing; set client_secret in [oidc] or the environment variable {ENV_OIDC_CLIENT_SECRET}"
            ),
        ));
    }

    if oidc.username_claim.trim().is_empty() {
        return Err(invalid(
            "oidc.username_claim",
            format!("must not be empty; the default is {DEFAULT_USERNAME_CLAIM}"),
        ));
    }

    let label_chars = oidc.button_label.trim().chars().count();
    if label_chars == 0 || label_chars > MAX_BUTTON_LABEL_CHARS {
        return Err(invalid(
            "oidc.button_label",
            format!("must have 1 to {MAX_BUTTON_LABEL_CHARS} characters"),
        ));
    }

    if !oidc.scopes.iter().any(|scope| scope == "openid") {
        return Err(invalid(
            "oidc.scopes",
            "must include \"openid\", such as [\"openid\", \"profile\"]".to_owned(),
        ));
    }

    if let Some(file) = &oidc.ca_file
        && !file.is_file()
    {
        return Err(invalid(
            "oidc.ca_file",
            format!(
                "{} does not exist; give the PEM file of the CA that signed the provider's certificate",
                file.display()
            ),
        ));
    }

    Ok(())
}

/// Checks that `value` is an absolute https URL without a query or fragment.
fn check_https_url(value: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(value).map_err(|_| "is not an absolute URL")?;
    if url.scheme() != "https" {
        return Err("must use https");
    }
    if url.host().is_none() {
        return Err("has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    Ok(())
}
