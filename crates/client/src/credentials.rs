//! The refresh token in the operating system's keyring: Secret Service on
//! Linux, Keychain on macOS, Credential Manager on Windows. It is never
//! written to a file or a log.

use crate::error::{ClientError, Result};

/// Keyring service name under which Hearth stores refresh tokens.
const SERVICE: &str = "org.hearth.refresh-token";

/// Identifies one account on one server in the keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub server: String,
    pub user: String,
}

impl Account {
    fn entry(&self) -> Result<keyring::Entry> {
        keyring::Entry::new(SERVICE, &format!("{}@{}", self.user, self.server))
            .map_err(keyring_error)
    }

    /// Stores the refresh token, replacing an older one.
    pub fn store_refresh_token(&self, token: &str) -> Result<()> {
        self.entry()?.set_password(token).map_err(keyring_error)
    }

    /// Loads the refresh token; `None` when this account never signed in here.
    pub fn load_refresh_token(&self) -> Result<Option<String>> {
        match self.entry()?.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(keyring_error(err)),
        }
    }

    /// Removes the refresh token, as on sign-out.
    pub fn forget(&self) -> Result<()> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(err) => Err(keyring_error(err)),
        }
    }
}

fn keyring_error(err: keyring::Error) -> ClientError {
    ClientError::Keyring(format!(
        "{err}; on Linux a Secret Service (for example gnome-keyring) must be running and unlocked"
    ))
}
