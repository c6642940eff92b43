//! Codecs: H.264 through OpenH264 and Opus through libopus.

pub mod h264;
pub mod opus;
