//! Server configuration and how it is resolved from its sources.
//!
//! Each source overrides the one before it: built-in defaults, the TOML file given
//! with `--config`, the environment variables `HEARTH_DATA_DIR` and `HEARTH_LISTEN`,
//! and finally the command-line flags `--data-dir` and `--listen`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default address the server listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
/// Default access token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Default refresh token lifetime: 30 days.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// Environment variable that sets [`Config::data_dir`].
pub const ENV_DATA_DIR: &str = "HEARTH_DATA_DIR";
/// Environment variable that sets [`Config::listen`].
pub const ENV_LISTEN: &str = "HEARTH_LISTEN";

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
}

impl Sources {
    /// Reads `HEARTH_DATA_DIR` and `HEARTH_LISTEN` from the process environment.
    pub fn with_process_env(mut self) -> Self {
        self.env_data_dir = std::env::var(ENV_DATA_DIR).ok();
        self.env_listen = std::env::var(ENV_LISTEN).ok();
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
    Ok(())
}
