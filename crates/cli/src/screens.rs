//! `hearth screens`: list the screens and windows that `hearth room
//! --share-screen` can share.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use hearth_media::screen::{self, ScreenSource, SourceKind, Thumbnail};
use serde::Serialize;

#[derive(Args)]
pub struct ScreensArgs {
    /// Print the list as one JSON array instead of lines of text.
    #[arg(long)]
    json: bool,
    /// Write each source's thumbnail into this folder as ID.ppm (binary
    /// PPM, at most 240 pixels on the longer side).
    #[arg(long, value_name = "DIR")]
    thumbnails: Option<PathBuf>,
}

/// One source as `--json` prints it; thumbnails go to files instead.
#[derive(Serialize)]
struct Listed<'a> {
    id: String,
    kind: SourceKind,
    title: &'a str,
    width: u32,
    height: u32,
    has_thumbnail: bool,
}

pub fn run(args: ScreensArgs) -> anyhow::Result<()> {
    let sources = screen::list_sources().context("cannot list the screens and windows")?;
    if let Some(dir) = &args.thumbnails {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the thumbnail folder {}", dir.display()))?;
        for source in &sources {
            if let Some(thumbnail) = &source.thumbnail {
                write_ppm(&dir.join(format!("{}.ppm", source.id)), thumbnail)?;
            }
        }
    }
    if args.json {
        let listed: Vec<Listed<'_>> = sources.iter().map(listed).collect();
        println!("{}", serde_json::to_string(&listed)?);
    } else {
        for source in &sources {
            let kind = match source.kind {
                SourceKind::Screen => "screen",
                SourceKind::Window => "window",
            };
            println!(
                "{:<18} {kind:<6} {:>5}x{:<5} {}",
                source.id.to_string(),
                source.width,
                source.height,
                source.title
            );
        }
    }
    Ok(())
}

fn listed(source: &ScreenSource) -> Listed<'_> {
    Listed {
        id: source.id.to_string(),
        kind: source.kind,
        title: &source.title,
        width: source.width,
        height: source.height,
        has_thumbnail: source.thumbnail.is_some(),
    }
}

fn write_ppm(path: &Path, thumbnail: &Thumbnail) -> anyhow::Result<()> {
    let mut bytes = format!("P6\n{} {}\n255\n", thumbnail.width, thumbnail.height).into_bytes();
    bytes.extend_from_slice(&thumbnail.rgb);
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
