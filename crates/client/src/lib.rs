//! Everything a signed-in Hearth user does, without a UI: the TLS connection to
//! the server, sign-in, the signalling WebSocket and call control. The CLI, the
//! desktop app and the end-to-end tests all drive this crate.

pub mod auth;
pub mod call;
pub mod credentials;
pub mod error;
mod loopback;
pub mod moving;
pub mod room;
pub mod server;
pub mod session;
pub mod signal;
pub mod store;
pub mod trust;

pub use error::ClientError;
pub use server::ServerEndpoint;
