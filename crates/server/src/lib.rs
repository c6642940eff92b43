//! `hearth-server`: accounts, OAuth 2.0 tokens, chat and call signalling over
//! HTTPS.
//!
//! [`start`] runs a server on the current tokio runtime. The `hearth-server` binary
//! and the tests use it, and so does `hearth demo`, which embeds a server.

pub mod accounts;
mod authorize;
pub mod chat;
pub mod config;
mod db;
mod guest;
mod http;
mod oidc;
mod rate_limit;
mod secret;
mod server;
pub mod sfu;
pub mod signal;
mod tls;
mod tokens;

pub use accounts::{AccountError, Accounts, UserSummary};
pub use config::{Config, ConfigError};
pub use http::REVOKE_PATH;
pub use secret::Secret;
pub use server::{RunningServer, install_crypto_provider, start};
