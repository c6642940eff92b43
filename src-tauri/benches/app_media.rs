//! The desktop app's video delivery and memory, measured on the real app.
//!
//! For each renderer (native GTK widgets over the webview, I420 through
//! WebGL, RGBA through `putImageData`) the bench starts the `tauri build` app
//! under Xvfb and signs in to a real `hearth-server` on loopback. It measures
//! the idle app, then takes a video call from the `hearth` CLI streaming
//! 1280x720 at 30 fps, while the app's own camera is a 1280x720, 30 fps file.
//! It prints the frames drawn per second, the CPU time of the app's processes
//! (the app and its WebKit children) and their memory (PSS, so shared pages
//! count once) as Markdown. The X server's CPU time is printed apart, since
//! every renderer's pixels end up there.
//!
//! `scripts/bench-app.sh` builds the release binaries and runs this; see
//! `docs/benchmarks.md` for the figures.

#[path = "../tests/e2e/mod.rs"]
mod e2e;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::processes::{Cli, Server, Xvfb, media};
use e2e::{App, SPEECH, STEP};
use serde_json::json;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
/// The 1280x720 clip both sides stream, as Annex B H.264 at 25 fps.
const CLIP_720P: &str = "video/Zhling_1280x720.264";
/// Time for the call to settle (first keyframe, bitrate ramp) before measuring.
const WARM_UP: Duration = Duration::from_secs(8);
/// Time the app idles after signing in before it is measured.
const IDLE_SETTLE: Duration = Duration::from_secs(5);

fn main() {
    let options = Options::parse();
    let clip = Clip720p30::convert(&media(CLIP_720P));
    let mut rows = Vec::new();
    for renderer in ["native", "i420", "rgba"] {
        rows.push(measure(renderer, &clip.path, &options));
    }
    print_table(&rows, &options);
}

struct Options {
    window: Duration,
}

impl Options {
    fn parse() -> Self {
        let mut window = Duration::from_secs(20);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    let value = args.next().unwrap_or_default();
                    let seconds: f64 = value.parse().unwrap_or_else(|_| {
                        panic!("--seconds takes a number of seconds, not {value:?}")
                    });
                    window = Duration::from_secs_f64(seconds);
                }
                // `cargo bench` passes `--bench`.
                "--bench" => {}
                other => panic!("unknown option {other:?}; the only option is --seconds N"),
            }
        }
        Self { window }
    }
}

/// The 720p clip re-timed to 30 fps as Y4M in a temporary folder, because
/// the app and the CLI play Annex B files at 25 fps.
struct Clip720p30 {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clip720p30 {
    fn convert(source: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("clip-720p30.y4m");
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(source)
            .args(["-vf", "setpts=N/30/TB", "-r", "30", "-pix_fmt", "yuv420p"])
            .arg(&path)
            .output()
            .expect("ffmpeg runs (install it with scripts/install-deps.sh)");
        assert!(
            output.status.success(),
            "ffmpeg failed to convert {} to Y4M: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Self { path, _dir: dir }
    }
}

/// The measurements of one run.
struct Row {
    renderer: &'static str,
    idle: Usage,
    call: Usage,
    remote: Canvas,
    self_view: Canvas,
}

/// CPU and memory of the app's processes over a window.
#[derive(Default)]
struct Usage {
    /// CPU time per second of wall time, by process name: 1.0 is one core.
    cores: HashMap<String, f64>,
    /// Proportional set size in MiB, by process name.
    pss_mib: HashMap<String, f64>,
    /// CPU time of the X server per second of wall time.
    x_server_cores: f64,
}

impl Usage {
    fn total_cores(&self) -> f64 {
        self.cores.values().sum()
    }

    fn total_pss_mib(&self) -> f64 {
        self.pss_mib.values().sum()
    }
}

/// Frames drawn on one canvas and its size in device pixels.
#[derive(Default)]
struct Canvas {
    fps: f64,
    width: u64,
    height: u64,
}

fn measure(renderer: &'static str, clip: &Path, options: &Options) -> Row {
    let xvfb = Xvfb::start();
    let server = Server::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let bob = Cli::new(&server, "bob", BOB_PASSWORD);
    let settings = json!({
        "language": "en",
        "videoSource": { "kind": "file", "path": clip },
        "renderer": renderer,
    });
    let app = App::launch_with_settings(&xvfb, settings, &format!("bench/{renderer}"));
    app.sign_in(&server, "alice", ALICE_PASSWORD);
    let page = &app.session;
    let processes = AppProcesses::find(app.data_dir(), xvfb.pid());

    std::thread::sleep(IDLE_SETTLE);
    let idle = processes.usage(options.window);

    let seconds = (WARM_UP + options.window + Duration::from_secs(30)).as_secs();
    let audio = media(SPEECH);
    let mut call = bob.spawn(&[
        "call",
        "alice",
        "--video",
        &clip.to_string_lossy(),
        "--audio",
        &audio.to_string_lossy(),
        "--seconds",
        &seconds.to_string(),
        "--kbps",
        "2500",
    ]);
    page.wait_for("[data-testid=incoming-accept-video]", STEP)
        .click();
    page.wait_for("[data-testid=remote-video][data-has-frame=true]", STEP);
    page.wait_for("[data-testid=self-video][data-has-frame=true]", STEP);
    std::thread::sleep(WARM_UP);

    let before = FrameCounts::read(page);
    let started = Instant::now();
    let call_usage = processes.usage(options.window);
    let after = FrameCounts::read(page);
    let elapsed = started.elapsed().as_secs_f64();
    app.screenshot("in-call");

    page.wait_for("[data-testid=call-hangup]", STEP).click();
    let exit = call.wait(STEP);
    assert!(
        exit.success(),
        "bob's hearth call failed: {exit}\n{}",
        call.output()
    );

    Row {
        renderer,
        idle,
        call: call_usage,
        remote: after.canvas("remote", &before, elapsed),
        self_view: after.canvas("self", &before, elapsed),
    }
}

/// The app's process and its descendants (WebKit's web and network processes).
struct AppProcesses {
    root: u32,
    x_server: u32,
}

impl AppProcesses {
    /// Finds the app process started with `data_dir` as its data folder, on
    /// the X server `x_server`.
    fn find(data_dir: &Path, x_server: u32) -> Self {
        let needle = format!("HEARTH_DESKTOP_DATA_DIR={}", data_dir.display());
        let root = all_pids()
            .into_iter()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                    environ
                        .split(|byte| *byte == 0)
                        .any(|entry| entry == needle.as_bytes())
                }) && comm(*pid).starts_with("hearth-desktop")
            })
            .expect("the app process is running");
        Self { root, x_server }
    }

    /// Returns the process ids of the app and all its descendants.
    fn pids(&self) -> Vec<u32> {
        let parents: Vec<(u32, u32)> = all_pids()
            .into_iter()
            .filter_map(|pid| Some((pid, parent(pid)?)))
            .collect();
        let mut tree = vec![self.root];
        let mut next = 0;
        while next < tree.len() {
            let current = tree[next];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, parent)| *parent == current)
                    .map(|(pid, _)| *pid),
            );
            next += 1;
        }
        tree
    }

    /// Measures CPU over `window` and memory at its end.
    fn usage(&self, window: Duration) -> Usage {
        let pids = self.pids();
        let before: HashMap<u32, u64> = pids.iter().map(|pid| (*pid, cpu_ticks(*pid))).collect();
        let x_server_before = cpu_ticks(self.x_server);
        let started = Instant::now();
        std::thread::sleep(window);
        let elapsed = started.elapsed().as_secs_f64();
        let ticks_per_second = clock_ticks_per_second();

        let mut usage = Usage {
            x_server_cores: cpu_ticks(self.x_server).saturating_sub(x_server_before) as f64
                / ticks_per_second
                / elapsed,
            ..Usage::default()
        };
        for pid in self.pids() {
            let name = comm(pid);
            let ticks = cpu_ticks(pid).saturating_sub(before.get(&pid).copied().unwrap_or(0));
            *usage.cores.entry(name.clone()).or_default() +=
                ticks as f64 / ticks_per_second / elapsed;
            *usage.pss_mib.entry(name).or_default() += pss_kib(pid) as f64 / 1024.0;
        }
        usage
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Returns the fields of `/proc/PID/stat` after the command name, which may
/// contain spaces and is enclosed in parentheses.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().map(str::to_owned).collect()
}

fn parent(pid: u32) -> Option<u32> {
    // Field 4 of stat, the second after the name.
    stat_fields(pid).get(1)?.parse().ok()
}

/// User plus system CPU time in clock ticks (fields 14 and 15 of stat).
fn cpu_ticks(pid: u32) -> u64 {
    let fields = stat_fields(pid);
    let field = |index: usize| -> u64 {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("getconf CLK_TCK prints a number")
}

/// Returns the `Pss:` line of `/proc/PID/smaps_rollup`, in KiB.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The frame counters and sizes of the in-call canvases.
struct FrameCounts {
    canvases: HashMap<String, (u64, u64, u64)>,
}

impl FrameCounts {
    fn read(page: &e2e::webdriver::Session) -> Self {
        let script = r#"
            const result = {};
            for (const [name, css] of [["remote", "[data-testid=remote-video]"], ["self", "[data-testid=self-video]"]]) {
                const canvas = document.querySelector(css);
                if (canvas) result[name] = [canvas.framesDrawn ?? 0, canvas.width, canvas.height];
            }
            return result;
        "#;
        let value = page.execute(script, json!([]));
        let canvases = value
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .filter_map(|(name, entry)| {
                        let numbers: Vec<u64> = entry
                            .as_array()?
                            .iter()
                            .filter_map(|n| n.as_u64())
                            .collect();
                        Some((
                            name.clone(),
                            (*numbers.first()?, *numbers.get(1)?, *numbers.get(2)?),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { canvases }
    }

    fn canvas(&self, name: &str, before: &Self, elapsed: f64) -> Canvas {
        let Some(&(frames, width, height)) = self.canvases.get(name) else {
            return Canvas::default();
        };
        let earlier = before.canvases.get(name).map_or(0, |entry| entry.0);
        Canvas {
            fps: frames.saturating_sub(earlier) as f64 / elapsed,
            width,
            height,
        }
    }
}

fn print_table(rows: &[Row], options: &Options) {
    println!(
        "Desktop app, release build, under Xvfb; means over {:.0} s.\n",
        options.window.as_secs_f64()
    );
    println!(
        "| renderer | remote view | remote fps | self view | self fps | CPU in call (cores) | of which WebKit | X server CPU in call (cores) | memory in call (MiB PSS) | CPU idle (cores) | memory idle (MiB PSS) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let webkit: f64 = row
            .call
            .cores
            .iter()
            .filter(|(name, _)| name.starts_with("WebKit"))
            .map(|(_, cores)| cores)
            .sum();
        println!(
            "| {} | {}x{} | {:.1} | {}x{} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {:.3} | {:.0} |",
            row.renderer,
            row.remote.width,
            row.remote.height,
            row.remote.fps,
            row.self_view.width,
            row.self_view.height,
            row.self_view.fps,
            row.call.total_cores(),
            webkit,
            row.call.x_server_cores,
            row.call.total_pss_mib(),
            row.idle.total_cores(),
            row.idle.total_pss_mib(),
        );
    }
    println!("\nPer process, in call:\n");
    println!("| renderer | process | CPU (cores) | memory (MiB PSS) |");
    println!("|---|---|---|---|");
    for row in rows {
        let mut names: Vec<_> = row.call.cores.keys().collect();
        names.sort();
        for name in names {
            println!(
                "| {} | {} | {:.2} | {:.0} |",
                row.renderer,
                name,
                row.call.cores[name],
                row.call.pss_mib.get(name).copied().unwrap_or(0.0)
            );
        }
    }
}
