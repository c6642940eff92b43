//! Loading the media files a call streams, and finding the default recordings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_media::audio::{AudioProcessor, CHUNK_SAMPLES, NoiseSuppression, ProcessingConfig};
use hearth_media::source::wav::{self, AudioClip};
use hearth_media::source::{VideoClip, load_video};

pub struct CallMedia {
    pub video: Arc<VideoClip>,
    pub audio: Arc<AudioClip>,
}

/// Loads and checks both files before any call is placed, so that a bad file
/// fails fast with the file's name.
pub fn load(video: &Path, audio: &Path) -> anyhow::Result<CallMedia> {
    // A media error's message already contains its source, which `{:#}`
    // would print a second time, so only the message is kept.
    let clip = load_video(video).map_err(|err| anyhow::anyhow!("{err}"))?;
    let speech = wav::load(audio).map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(CallMedia {
        video: Arc::new(clip),
        audio: Arc::new(speech),
    })
}

/// Checks `--seconds` and `--kbps` before anything is loaded or dialled.
pub fn check_stream_options(seconds: f64, kbps: u32) -> anyhow::Result<()> {
    // Below a second the rates and the speech delay in the report mean little.
    if !(1.0..=600.0).contains(&seconds) {
        anyhow::bail!("invalid --seconds {seconds}: expected at least 1 and at most 600 seconds");
    }
    if !(50..=20_000).contains(&kbps) {
        anyhow::bail!("invalid --kbps {kbps}: expected 50 to 20000");
    }
    Ok(())
}

/// Default video and speech for `hearth demo`: the foreman clip and LibriVox
/// speech from the shared media folder, or the CC0 city clip and LibriVox
/// speech that the set-up script converts from Debian packages.
pub fn default_media() -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let Some(dir) = std::env::var_os("HEARTH_MEDIA_DIR") {
        let dir = PathBuf::from(dir);
        candidates.push((
            dir.join("video/BA1_FT_C.264"),
            dir.join("speech/librivox_sense_and_sensibility_0870.wav"),
        ));
        candidates.push((dir.join("city.y4m"), dir.join("speech.wav")));
    }
    for dir in ["../shared/media", "shared/media"] {
        let dir = PathBuf::from(dir);
        candidates.push((
            dir.join("video/BA1_FT_C.264"),
            dir.join("speech/librivox_sense_and_sensibility_0870.wav"),
        ));
    }
    if let Some(dirs) = directories::ProjectDirs::from("org", "Hearth", "hearth") {
        let dir = dirs.cache_dir().join("media");
        candidates.push((dir.join("city.y4m"), dir.join("speech.wav")));
    }
    candidates
        .into_iter()
        .find(|(video, audio)| video.exists() && audio.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no default recordings found; pass --video and --audio, set HEARTH_MEDIA_DIR, or run scripts/fetch-media.sh"
            )
        })
}

/// Runs the speech through the engine's capture processing without echo
/// cancellation: `rnnoise` or `apm` noise suppression, then gain control.
/// `off` returns the clip unchanged.
pub fn process_speech(
    clip: &Arc<AudioClip>,
    noise_suppression: &str,
) -> anyhow::Result<Arc<AudioClip>> {
    let noise_suppression = match noise_suppression {
        "off" => return Ok(Arc::clone(clip)),
        "rnnoise" => NoiseSuppression::Rnnoise,
        "apm" => NoiseSuppression::Apm,
        other => anyhow::bail!("unknown noise suppression {other:?}; use off, rnnoise or apm"),
    };
    let mut processor = AudioProcessor::new(ProcessingConfig {
        noise_suppression,
        gain_control: true,
        ..ProcessingConfig::bypass()
    })?;
    // One extra chunk of silence pushes out what RNNoise holds back.
    let mut input = clip.samples.clone();
    input.resize(
        input.len().next_multiple_of(CHUNK_SAMPLES) + CHUNK_SAMPLES,
        0.0,
    );
    let mut samples = Vec::with_capacity(input.len());
    processor.process_capture(&input, &mut samples)?;
    if noise_suppression == NoiseSuppression::Rnnoise {
        samples.drain(..CHUNK_SAMPLES);
    }
    samples.truncate(clip.samples.len());
    Ok(Arc::new(AudioClip {
        samples,
        source_rate: clip.source_rate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(len: usize) -> Arc<AudioClip> {
        let samples = (0..len).map(|i| 0.2 * (i as f32 * 0.05).sin()).collect();
        Arc::new(AudioClip {
            samples,
            source_rate: 48_000,
        })
    }

    #[test]
    fn processed_speech_keeps_its_length() {
        let speech = clip(10_000);
        for suppression in ["rnnoise", "apm"] {
            let processed = process_speech(&speech, suppression).unwrap();
            assert_eq!(processed.samples.len(), 10_000, "{suppression}");
        }
    }

    #[test]
    fn unprocessed_speech_is_the_same_clip() {
        let speech = clip(1_000);
        assert!(Arc::ptr_eq(
            &process_speech(&speech, "off").unwrap(),
            &speech
        ));
        assert!(process_speech(&speech, "loud").is_err());
    }
}
