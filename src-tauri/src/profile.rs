//! What the app remembers between runs: the account, the embedded server and
//! the settings. Tokens are not here: the refresh token lives in the OS keyring.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, UiError, UiResult};

/// Where the app keeps its files: `HEARTH_DESKTOP_DATA_DIR`, or the
/// platform's per-user data folder.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_DESKTOP_DATA_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("org", "Hearth", "Hearth")
        .map(|dirs| dirs.data_dir().to_owned())
        .unwrap_or_else(|| PathBuf::from("hearth-desktop-data"))
}

/// The signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAccount {
    pub server: String,
    pub user: String,
    /// Fingerprint of the server certificate the user confirmed, when the
    /// system does not trust it.
    #[serde(default)]
    pub pinned_fingerprint: Option<String>,
}

/// The server this app runs for the office, when the user chose that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedConfig {
    pub port: u16,
}

/// Where the video of a call comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum VideoSource {
    Camera { id: String },
    File { path: String },
    None,
}

/// The way decoded video reaches the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum Renderer {
    /// RGBA pixels drawn with `putImageData`.
    Rgba,
    /// I420 planes converted to RGB by a WebGL shader: 3/8 of the bytes.
    I420,
    /// Drawn by the app in GTK widgets over the webview, so no pixels reach
    /// the page. Linux only.
    Native,
}

impl Renderer {
    /// Returns the renderers this build offers, the default first.
    pub fn available() -> Vec<Self> {
        if cfg!(target_os = "linux") {
            vec![Self::Native, Self::I420, Self::Rgba]
        } else {
            vec![Self::I420, Self::Rgba]
        }
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::available()[0]
    }
}

/// The noise suppression of calls, switchable during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type, Default)]
#[serde(rename_all = "camelCase")]
pub enum NoiseSuppressionMode {
    /// RNNoise, a recurrent network: the better of the two on speech in noise.
    #[default]
    Rnnoise,
    /// The WebRTC audio processing module's spectral suppressor.
    Apm,
    Off,
}

/// User settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    /// `zh-CN` or `en`; `None` follows the system locale.
    pub language: Option<String>,
    pub start_at_login: bool,
    pub video_source: VideoSource,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub renderer: Renderer,
    pub noise_suppression: NoiseSuppressionMode,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            language: None,
            start_at_login: false,
            video_source: VideoSource::None,
            microphone: None,
            speaker: None,
            renderer: Renderer::default(),
            noise_suppression: NoiseSuppressionMode::default(),
        }
    }
}

impl Settings {
    /// Checks values that came from the UI.
    pub fn validate(&self) -> UiResult<()> {
        if let Some(language) = &self.language
            && !matches!(language.as_str(), "zh-CN" | "en")
        {
            return Err(UiError::new(
                ErrorCode::InvalidInput,
                format!("language {language:?}: use zh-CN or en"),
            ));
        }
        if !Renderer::available().contains(&self.renderer) {
            return Err(UiError::new(
                ErrorCode::InvalidInput,
                format!(
                    "renderer {:?} is not available on this system: use one of {:?}",
                    self.renderer,
                    Renderer::available()
                ),
            ));
        }
        if let VideoSource::File { path } = &self.video_source
            && path.trim().is_empty()
        {
            return Err(UiError::new(
                ErrorCode::VideoFileUnreadable,
                "the video file path is empty",
            ));
        }
        Ok(())
    }
}

/// The file `profile.json` in the data folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub account: Option<SavedAccount>,
    pub embedded: Option<EmbeddedConfig>,
    pub settings: Settings,
}

impl Profile {
    fn path(dir: &Path) -> PathBuf {
        dir.join("profile.json")
    }

    /// Loads the profile; a missing file is a first run. An unreadable file
    /// is kept aside as `profile.json.broken` so nothing in it is lost.
    pub fn load(dir: &Path) -> Self {
        let path = Self::path(dir);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Self::default();
        };
        match serde_json::from_str::<Self>(&text) {
            Ok(mut profile) => {
                // A profile copied from another system may name a renderer
                // this one lacks.
                if !Renderer::available().contains(&profile.settings.renderer) {
                    profile.settings.renderer = Renderer::default();
                }
                profile
            }
            Err(err) => {
                let aside = path.with_extension("json.broken");
                tracing::warn!(error = %err, aside = %aside.display(), "the profile is unreadable; starting afresh");
                let _ = std::fs::rename(&path, aside);
                Self::default()
            }
        }
    }

    /// Writes the profile through a temporary file, so a crash never leaves
    /// half a file.
    pub fn save(&self, dir: &Path) -> UiResult<()> {
        std::fs::create_dir_all(dir)
            .map_err(|err| UiError::internal(format!("cannot create {}: {err}", dir.display())))?;
        let path = Self::path(dir);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(UiError::internal)?;
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|err| UiError::internal(format!("cannot write {}: {err}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_round_trips_and_old_files_keep_loading() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Profile::load(dir.path()), Profile::default());
        let profile = Profile {
            account: Some(SavedAccount {
                server: "https://chat.example.org:7443".into(),
                user: "alice".into(),
                pinned_fingerprint: None,
            }),
            embedded: None,
            settings: Settings {
                language: Some("zh-CN".into()),
                ..Settings::default()
            },
        };
        profile.save(dir.path()).unwrap();
        assert_eq!(Profile::load(dir.path()), profile);

        std::fs::write(
            dir.path().join("profile.json"),
            r#"{"settings":{"language":"en"}}"#,
        )
        .unwrap();
        let old = Profile::load(dir.path());
        assert_eq!(old.settings.language.as_deref(), Some("en"));
        assert_eq!(old.settings.renderer, Renderer::default());
    }

    #[test]
    fn broken_profile_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("profile.json"), "{not json").unwrap();
        assert_eq!(Profile::load(dir.path()), Profile::default());
        assert!(dir.path().join("profile.json.broken").exists());
    }

    #[test]
    fn unknown_language_is_rejected_with_the_value() {
        let settings = Settings {
            language: Some("fr".into()),
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);
        assert!(err.detail.unwrap().contains("\"fr\""));
    }
}
