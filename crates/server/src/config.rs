//! Server configuration and how it is resolved from its sources.
//!
//! Each source overrides the one before it: built-in defaults, the TOML file given
//! with `--config`, the environment variables `HEARTH_DATA_DIR`, `HEARTH_LISTEN`
//! and `HEARTH_MAX_ATTACHMENT_BYTES`, and finally the command-line flags
//! `--data-dir`, `--listen` and `--max-attachment-bytes`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// Reads `HEARTH_DATA_DIR`, `HEARTH_LISTEN` and `HEARTH_MAX_ATTACHMENT_BYTES`
    /// from the process environment.
    pub fn with_process_env(mut self) -> Self {
        self.env_data_dir = std::env::var(ENV_DATA_DIR).ok();
        self.env_listen = std::env::var(ENV_LISTEN).ok();
        self.env_max_attachment_bytes = std::env::var(ENV_MAX_ATTACHMENT_BYTES).ok();
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
    Ok(())
}
