//! The processes around the app under test: Xvfb, a `hearth-server` on
//! loopback, tauri-driver and the `hearth` CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long Xvfb, the server and tauri-driver may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns the folder of the binaries built with the tests' profile, such as
/// `target/debug`: the test executable lives in its `deps` folder. With a
/// separate build folder (`CARGO_BUILD_BUILD_DIR`) the test executable is
/// there instead, and the binaries are in `CARGO_TARGET_DIR`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let build_profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/PROFILE/deps");
    match (
        std::env::var_os("CARGO_TARGET_DIR"),
        build_profile.file_name(),
    ) {
        (Some(target), Some(profile)) => PathBuf::from(target).join(profile),
        _ => build_profile.to_owned(),
    }
}

/// Returns a binary of the workspace, built by `scripts/test.sh` or by
/// `cargo build --workspace --bins`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not found; build it first with `cargo build --workspace --bins` and the same \
         CARGO_TARGET_DIR and profile as the tests",
        path.display()
    );
    path
}

/// Returns the app binary built with the `custom-protocol` feature, which
/// embeds the UI.
///
/// A `cargo test` without the feature rebuilds `target/debug/hearth-desktop`
/// to load the dev server, so `scripts/test.sh` links the binary to
/// `target/e2e/hearth-desktop` first. `HEARTH_E2E_APP` overrides the path.
pub fn app_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HEARTH_E2E_APP") {
        return PathBuf::from(path);
    }
    let target = profile_dir()
        .parent()
        .expect("the profile folder is inside the target folder")
        .to_owned();
    let path = target.join("e2e").join("hearth-desktop");
    assert!(
        path.exists(),
        "the app binary {} is missing. Build it with scripts/test.sh, or by hand:\n  \
         npm run build --prefix ui\n  \
         cargo build -p hearth-desktop --features custom-protocol\n  \
         mkdir -p {target}/e2e && ln -f {target}/debug/hearth-desktop {target}/e2e/\n\
         (with the same CARGO_TARGET_DIR; without the feature the binary loads the Vite dev \
         server instead of the built UI)",
        path.display(),
        target = target.display(),
    );
    path
}

/// Returns the path of a shared recording, from `HEARTH_MEDIA_DIR` or the
/// `shared/media` folder beside the repository.
pub fn media(relative: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "test media {} is missing; set HEARTH_MEDIA_DIR",
        path.display()
    );
    path
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A child process whose stdout and stderr are collected by threads.
/// Dropping it stops the process with SIGTERM, then SIGKILL.
pub struct Process {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    /// Returns the process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command` with piped output.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({command:?}): {err}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(
            child.stdout.take().expect("stdout is piped"),
            Arc::clone(&stdout),
        );
        collect(
            child.stderr.take().expect("stderr is piped"),
            Arc::clone(&stderr),
        );
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// Writes `input` to standard input and closes it.
    pub fn write_stdin(&mut self, input: &str) {
        if let Some(mut pipe) = self.child.stdin.take() {
            // The process may exit before reading; its output then shows why.
            let _ = pipe.write_all(input.as_bytes());
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

    /// Returns both outputs for a failure message.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout\n{}--- {} stderr\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until stdout or stderr contains `needle`.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let printed =
            |process: &Self| process.stdout().contains(needle) || process.stderr().contains(needle);
        while !printed(self) {
            if Instant::now() >= deadline || !self.is_running() && !printed(self) {
                panic!(
                    "{} printed no {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit; kills the process and panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on a child works") {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, so tauri-driver can stop WebKitWebDriver, and SIGKILL
    /// when the process is still running two seconds later.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for Server {
    /// Prints the server's log when a test fails.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- hearth-server log\n{}", self.log());
        }
    }
}

fn collect(pipe: impl Read + Send + 'static, text: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = text.lock().expect("only this thread writes");
            text.push_str(&line);
            text.push('\n');
        }
    });
}

/// An Xvfb server on a display number it picks itself.
pub struct Xvfb {
    pub display: String,
    _process: Process,
}

impl Xvfb {
    /// Returns the X server's process id.
    pub fn pid(&self) -> u32 {
        self._process.id()
    }

    pub fn start() -> Self {
        // `-displayfd 1` makes Xvfb pick a free display and print its number.
        let mut process = Process::spawn(
            "Xvfb",
            Command::new("Xvfb").args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1100x720x24",
                "-nolisten",
                "tcp",
            ]),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        let number = loop {
            if let Some(line) = process.stdout().lines().next() {
                break line.trim().to_owned();
            }
            if Instant::now() >= deadline || !process.is_running() {
                panic!(
                    "Xvfb did not start (install it with scripts/install-deps.sh)\n{}",
                    process.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            display: format!(":{number}"),
            _process: process,
        }
    }
}

/// A `hearth-server` process on a free loopback port with its own data folder.
pub struct Server {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    process: Process,
}

impl Server {
    /// Creates the accounts, as `(name, password)`, then starts the server.
    pub fn start(users: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary folder");
        for (name, password) in users {
            let mut add = Process::spawn(
                "hearth-server user add",
                server_command(data_dir.path()).args(["user", "add", name, "--password-stdin"]),
            );
            add.write_stdin(&format!("{password}\n"));
            let status = add.wait(START_TIMEOUT);
            assert!(
                status.success(),
                "hearth-server user add {name} failed\n{}",
                add.output()
            );
        }

        // Port 0 lets the OS pick a free port; the log line names the real one.
        let process = Process::spawn(
            "hearth-server",
            server_command(data_dir.path()).args(["--listen", "127.0.0.1:0"]),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let log = process.stderr();
            if let Some(start) = log.find("listening on https://") {
                let rest = &log[start + "listening on ".len()..];
                break rest
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect::<String>();
            }
            if Instant::now() >= deadline {
                panic!(
                    "hearth-server did not log its address within {START_TIMEOUT:?}\n{}",
                    process.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            url,
            data_dir,
            process,
        }
    }

    /// The self-signed certificate that the server generated.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.path().join("tls/cert.pem")
    }

    /// The address without the scheme, as a user would type it.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("https://")
    }

    pub fn log(&self) -> String {
        self.process.stderr()
    }
}

fn server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(workspace_binary("hearth-server"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("HEARTH_LISTEN")
        .env_remove("HEARTH_DATA_DIR");
    command
}

/// The `hearth` CLI signed in to `server` as one user with a password.
pub struct Cli<'a> {
    server: &'a Server,
    user: String,
    password: String,
    config_dir: tempfile::TempDir,
}

impl<'a> Cli<'a> {
    pub fn new(server: &'a Server, user: &str, password: &str) -> Self {
        Self {
            server,
            user: user.to_owned(),
            password: password.to_owned(),
            config_dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// Starts `hearth ARGS` with the server, certificate and credentials.
    pub fn spawn(&self, args: &[&str]) -> Process {
        let mut command = Command::new(workspace_binary("hearth"));
        command
            .args(args)
            .args(["--server", &self.server.url])
            .arg("--ca-cert")
            .arg(self.server.cert_path())
            .args(["--user", &self.user, "--password-stdin"])
            .env("HEARTH_CONFIG_DIR", self.config_dir.path())
            .env("HEARTH_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("HEARTH_SERVER")
            .env_remove("HEARTH_CA_CERT");
        let mut process = Process::spawn(&format!("hearth {}", args.join(" ")), &mut command);
        process.write_stdin(&format!("{}\n", self.password));
        process
    }

    /// Runs `hearth ARGS` to the end and returns its stdout; panics when it fails.
    pub fn run(&self, args: &[&str], timeout: Duration) -> String {
        let mut process = self.spawn(args);
        let status = process.wait(timeout);
        assert!(
            status.success(),
            "hearth {} failed: {status}\n{}",
            args.join(" "),
            process.output()
        );
        process.stdout()
    }
}

/// tauri-driver, which starts WebKitWebDriver and, per session, the app.
/// The app inherits this process's environment, so each app profile needs
/// its own driver.
pub struct TauriDriver {
    pub address: SocketAddr,
    process: Process,
}

impl TauriDriver {
    pub fn start(display: &str, env: &[(&str, &Path)]) -> Self {
        let port = free_port();
        let native_port = free_port();
        let mut command = Command::new(tauri_driver_binary());
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .env("DISPLAY", display)
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("HEARTH_LOG", "info")
            .env("NO_AT_BRIDGE", "1")
            .env_remove("WAYLAND_DISPLAY");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut process = Process::spawn("tauri-driver", &mut command);

        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline || !process.is_running() {
                panic!(
                    "tauri-driver did not listen on {address} within {START_TIMEOUT:?} \
                     (it needs WebKitWebDriver from the webkit2gtk-driver package)\n{}",
                    process.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { address, process }
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Finds tauri-driver: `TAURI_DRIVER`, the folder scripts/install-deps.sh
/// installs it to, or `PATH`.
fn tauri_driver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let installed = Path::new(&home).join(".cache/hearth-tools/bin/tauri-driver");
        if installed.exists() {
            return installed;
        }
    }
    PathBuf::from("tauri-driver")
}
