//! Helpers for the CLI end-to-end tests: the shared recordings, the `hearth`
//! and `hearth-server` binaries as processes, and a server on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Foreman, CIF (352x288), 299 frames.
pub const FOREMAN: &str = "video/BA1_FT_C.264";
/// 1280x720 clip.
pub const CLIP_720P: &str = "video/Zhling_1280x720.264";
/// Main-profile clip with B-frames, which WebRTC cannot carry.
pub const B_FRAMES: &str = "video/Cisco_Men_whisper_640x320_CAVLC_Bframe_9.264";
pub const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";

/// How long a server may take to print its listening address.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns the path of a shared recording, from `HEARTH_MEDIA_DIR` or the
/// `shared/media` folder beside the repository.
pub fn media(relative: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/media"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "test media {} is missing; set HEARTH_MEDIA_DIR",
        path.display()
    );
    path
}

/// Returns the `hearth-server` binary beside the `hearth` binary under test.
///
/// Cargo builds only the binaries of the package under test, so the server
/// binary must be built first: `scripts/test.sh` runs
/// `cargo test --workspace --no-run` before the tests. The tests do not run
/// `cargo build` themselves: cargo changes the test process's environment
/// (`CARGO_PKG_*`, `LD_LIBRARY_PATH`), and a nested build from it rebuilt
/// ring and rustls when tried, after which the next ordinary build rebuilt
/// them again.
/// NOTE: a server binary older than the sources is not detected; rebuild it
/// after changing `crates/server`.
pub fn server_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_hearth"))
        .with_file_name(format!("hearth-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not found; build it first with `cargo build -p hearth-server --bin hearth-server` \
         and the same CARGO_TARGET_DIR and profile as the tests",
        path.display()
    );
    path
}

/// Returns a `hearth` command with a private configuration folder, so no saved
/// profile or environment setting of the developer changes what it does.
pub fn hearth(config_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .env("HEARTH_CONFIG_DIR", config_dir)
        .env("HEARTH_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("HEARTH_SERVER")
        .env_remove("HEARTH_CA_CERT")
        .env_remove("HEARTH_MEDIA_DIR");
    command
}

/// What a finished process printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with `stdin` as its standard input and kills it when it
/// runs longer than `timeout`, so a hang fails the test instead of blocking it.
pub fn run(command: &mut Command, stdin: &str, timeout: Duration) -> Output {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let mut process = Process::new(child);
    process.write_stdin(stdin);
    process.wait(timeout)
}

/// A child process whose output is collected by background threads.
pub struct Process {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    stdout_lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Takes over a child spawned with piped stdout and stderr.
    pub fn new(mut child: Child) -> Self {
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, stdout_lines) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("stdout is piped");
        let err_pipe = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            collect_lines(out_pipe, Arc::clone(&stdout), Some(line_tx)),
            collect_lines(err_pipe, Arc::clone(&stderr), None),
        ];
        Self {
            child,
            stdout,
            stderr,
            stdout_lines,
            readers,
        }
    }

    /// Writes `input` to standard input and closes it.
    pub fn write_stdin(&mut self, input: &str) {
        if let Some(mut pipe) = self.child.stdin.take() {
            // The process may exit before reading; its output then shows why.
            let _ = pipe.write_all(input.as_bytes());
        }
    }

    /// Waits for a stdout line that contains `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no output line containing {needle:?} within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                    self.stdout(),
                    self.stderr()
                ),
            }
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .expect("reader threads do not panic")
            .clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .expect("reader threads do not panic")
            .clone()
    }

    /// Kills the process and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Returns true while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit, killing the process and panicking after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on a child works") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{:?} did not exit within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                    self.child.id(),
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Output {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    text: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            {
                let mut text = text.lock().expect("only this thread writes");
                text.push_str(&line);
                text.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    })
}

/// A `hearth-server` process on a free loopback port with a temporary data
/// folder. Dropping it kills the process.
pub struct ServerProcess {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    process: Process,
}

impl ServerProcess {
    /// Creates the accounts, as `(name, password)`, then starts the server.
    pub fn start(users: &[(&str, &str)]) -> Self {
        Self::start_on(users, "127.0.0.1:0")
    }

    /// Like [`start`](Self::start), listening on `listen` (`ADDR:PORT`).
    pub fn start_on(users: &[(&str, &str)], listen: &str) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary folder");
        for (name, password) in users {
            add_user(data_dir.path(), name, password);
        }

        // Port 0 lets the OS pick a free port; the log line names the real one.
        let child = server_command(data_dir.path())
            .args(["--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hearth-server starts");
        let process = Process::new(child);
        let url = wait_for_listening(&process);
        Self {
            url,
            data_dir,
            process,
        }
    }

    /// Returns the path of the self-signed certificate that the server generated.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.path().join("tls/cert.pem")
    }

    /// Asserts that the process still runs and that `user` can sign in.
    pub fn assert_serving(&mut self, user: &str, password: &str) {
        assert!(
            self.process.is_running(),
            "hearth-server exited\n--- log\n{}",
            self.process.stderr()
        );
        let pem =
            std::fs::read_to_string(self.cert_path()).expect("the server wrote its certificate");
        let endpoint =
            hearth_client::ServerEndpoint::new(&self.url, Some(&pem)).expect("a valid endpoint");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let result = runtime.block_on(hearth_client::auth::sign_in_with_password(
            &endpoint, user, password,
        ));
        if let Err(err) = result {
            panic!(
                "sign-in as {user} failed after the bad input: {err}\n--- log\n{}",
                self.process.stderr()
            );
        }
    }

    pub fn log(&self) -> String {
        self.process.stderr()
    }

    /// Kills the server, as a crash or a power cut would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same address and data folder.
    pub fn restart(&mut self) {
        self.process.kill();
        let addr = self.url.trim_start_matches("https://").to_owned();
        let child = server_command(self.data_dir.path())
            .args(["--listen", &addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hearth-server starts");
        self.process = Process::new(child);
        let url = wait_for_listening(&self.process);
        assert_eq!(url, self.url, "the server came back on another address");
    }
}

fn server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(server_binary());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "RUST_LOG",
            std::env::var("HEARTH_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .env_remove("HEARTH_LISTEN")
        .env_remove("HEARTH_DATA_DIR");
    command
}

/// Runs `hearth-server user add NAME --password-stdin` on `data_dir`.
fn add_user(data_dir: &Path, name: &str, password: &str) {
    let output = run(
        server_command(data_dir).args(["user", "add", name, "--password-stdin"]),
        &format!("{password}\n"),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "hearth-server user add {name} failed: {output}"
    );
}

/// Waits for `listening on https://ADDR` in the server log and returns the URL.
fn wait_for_listening(process: &Process) -> String {
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    while Instant::now() < deadline {
        let log = process.stderr();
        if let Some(start) = log.find("listening on https://") {
            let rest = &log[start + "listening on ".len()..];
            let url: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return url;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "hearth-server did not log its address within {SERVER_START_TIMEOUT:?}\n--- log\n{}",
        process.stderr()
    );
}

/// Runs a set-up command such as `ip` or `tc` and fails the test if it fails.
pub fn run_checked(command: &[&str]) {
    let status = Command::new(command[0])
        .args(&command[1..])
        .status()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

/// Returns whether the tests run as root, which network namespaces need.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0"))
}
