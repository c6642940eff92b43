//! A blocking W3C WebDriver client for tauri-driver: plain HTTP/1.1 on
//! loopback, one connection per command, JSON bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take; a new session starts the app.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `wait_*` polls the page.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A failed WebDriver command: the HTTP status and the driver's error.
#[derive(Debug)]
pub struct CommandError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.error, self.message)
    }
}

/// How often a command that got no response at all is sent again.
const NO_RESPONSE_RETRIES: u32 = 2;

/// Sends one command and returns the `value` of the response.
///
/// tauri-driver 2.1.0 forwards each command to WebKitWebDriver through a
/// pooled HTTP client. About one run in five closed one connection without
/// any response. A command that gets no response is sent again.
/// NOTE: this assumes such a command never reached WebKitWebDriver, as when
/// a pooled connection was closed under the request. That is inferred from
/// tauri-driver's proxy and not proven.
pub fn command(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CommandError> {
    let mut attempt = 0;
    loop {
        match send_command(driver, method, path, body) {
            Err(err) if err.error == NO_RESPONSE && attempt < NO_RESPONSE_RETRIES => {
                attempt += 1;
                eprintln!("{method} {path}: no response from tauri-driver, sending it again");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// The `error` of a [`CommandError`] for a connection closed without a response.
const NO_RESPONSE: &str = "no response";

fn send_command(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CommandError> {
    let transport_error = |message: String| CommandError {
        status: 0,
        error: "transport".into(),
        message,
    };
    let mut stream = TcpStream::connect_timeout(&driver, Duration::from_secs(5))
        .map_err(|err| transport_error(format!("cannot connect to {driver}: {err}")))?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|err| transport_error(err.to_string()))?;

    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {driver}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| transport_error(format!("{method} {path}: {err}")))?;

    let (status, payload) = read_response(stream).map_err(|err| {
        let mut error = transport_error(format!("{method} {path}: {err}"));
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            error.error = NO_RESPONSE.into();
        }
        error
    })?;
    let json: Value = serde_json::from_slice(&payload).map_err(|err| {
        transport_error(format!(
            "{method} {path}: HTTP {status} with a body that is not JSON ({err}): {}",
            String::from_utf8_lossy(&payload)
        ))
    })?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    Err(CommandError {
        status,
        error: value["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_owned(),
        message: value["message"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Reads an HTTP/1.1 response with a `Content-Length`, chunked or
/// closed-connection body.
fn read_response(stream: TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed without a response",
        ));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(&format!("invalid status line {status_line:?}")))?;

    let mut content_length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }

    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_text = size_line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(&format!("invalid chunk size {size_line:?}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = content_length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok((status, body))
}

/// A WebDriver session, which is one running app. Dropping it ends the
/// session, and tauri-driver then closes the app.
pub struct Session {
    driver: SocketAddr,
    id: String,
    last_error: std::cell::RefCell<Option<String>>,
}

impl Session {
    /// Starts `application` through tauri-driver at `driver`.
    pub fn start(driver: SocketAddr, application: &Path) -> Result<Self, CommandError> {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "tauri:options": { "application": application, "args": [] }
                }
            }
        });
        let value = command(driver, "POST", "/session", Some(&capabilities))?;
        let id = value["sessionId"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty(), "the new session has no id: {value}");
        Ok(Self {
            driver,
            id,
            last_error: Default::default(),
        })
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CommandError> {
        command(
            self.driver,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    /// Sends a command that the test expects to succeed.
    fn expect(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.send(method, path, body)
            .unwrap_or_else(|err| panic!("WebDriver {method} {path} failed: {err}"))
    }

    /// Returns every element that matches the CSS selector, in document order.
    /// A failed search counts as no match, because WebKit fails searches
    /// while the page loads ("no such frame"); the error is kept for the
    /// timeout message of the `wait_*` methods.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let value = match self.send("POST", "/elements", Some(&body)) {
            Ok(value) => value,
            Err(err) => {
                *self.last_error.borrow_mut() = Some(format!("searching {css} failed: {err}"));
                return Vec::new();
            }
        };
        value
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|element| element[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        session: self,
                        id: id.to_owned(),
                        css: css.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until an element matches the CSS selector and returns the first.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        self.wait_until(&format!("an element matching {css}"), timeout, || {
            self.find_all(css).into_iter().next()
        })
    }

    /// Waits until an element matching `css` has a text containing `text`.
    pub fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> Element<'_> {
        self.wait_until(&format!("{css} with the text {text:?}"), timeout, || {
            self.find_all(css)
                .into_iter()
                .find(|element| element.text().contains(text))
        })
    }

    /// Waits until no element matches the CSS selector.
    pub fn wait_for_absence(&self, css: &str, timeout: Duration) {
        self.wait_until(&format!("no element matching {css}"), timeout, || {
            self.find_all(css).is_empty().then_some(())
        })
    }

    /// Polls `probe` until it returns a value. On timeout the panic message
    /// names what was awaited and the page's visible text.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if Instant::now() >= deadline {
                let last_error = self.last_error.borrow().clone().unwrap_or_default();
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{last_error}\n--- page text\n{}",
                    self.page_text()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Runs `script` as a function body with `args` and returns its result.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.expect("POST", "/execute/sync", Some(&body))
    }

    /// Returns the visible text of the whole page, for failure messages.
    pub fn page_text(&self) -> String {
        self.send(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] })),
        )
        .map(|value| value.as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|err| format!("(the page text is unavailable: {err})"))
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let value = self.expect("GET", "/screenshot", None);
        let encoded = value.as_str().expect("a screenshot is a base64 string");
        let png = decode_base64(encoded).expect("the screenshot is valid base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot folder can be created");
        }
        std::fs::write(path, png)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = command(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
    }
}

/// An element found in a session.
pub struct Element<'a> {
    session: &'a Session,
    id: String,
    css: String,
}

impl Element<'_> {
    fn path(&self, suffix: &str) -> String {
        format!("/element/{}{suffix}", self.id)
    }

    /// Clicks the element by script after checking that it is shown and
    /// enabled. WebKitWebDriver's "element click" now and then dropped the
    /// connection without a response under Xvfb, like its "send keys".
    pub fn click(&self) {
        let script = r#"const [element] = arguments;
            if (!element.isConnected) return "it is no longer in the page";
            if (element.getClientRects().length === 0) return "it is not shown";
            if (element.disabled) return "it is disabled";
            element.scrollIntoView({ block: "nearest" });
            element.click();
            return null;"#;
        let body = json!({ "script": script, "args": [{ ELEMENT_KEY: self.id }] });
        let problem = self
            .session
            .send("POST", "/execute/sync", Some(&body))
            .unwrap_or_else(|err| panic!("clicking {} failed: {err}", self.css));
        if let Some(problem) = problem.as_str() {
            panic!("cannot click {}: {problem}", self.css);
        }
    }

    /// Replaces the value of an input with `text` and sends the `input`
    /// event the UI listens to. WebKitWebDriver's "send keys" dropped the
    /// connection under Xvfb, so the value is set by script.
    pub fn type_text(&self, text: &str) {
        let script = r#"const [element, text] = arguments;
            element.focus();
            element.value = text;
            element.dispatchEvent(new Event("input", { bubbles: true }));"#;
        let body = json!({ "script": script, "args": [{ ELEMENT_KEY: self.id }, text] });
        self.session
            .send("POST", "/execute/sync", Some(&body))
            .unwrap_or_else(|err| panic!("typing into {} failed: {err}", self.css));
    }

    /// Runs `script` with this element as `arguments[0]` and `extra` as
    /// `arguments[1]`. The element commands for text and attributes returned
    /// nothing in WebKitWebDriver under Xvfb, so these go through scripts.
    fn evaluate(&self, script: &str, extra: &str) -> Option<String> {
        let body = json!({ "script": script, "args": [{ ELEMENT_KEY: self.id }, extra] });
        self.session
            .send("POST", "/execute/sync", Some(&body))
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
    }

    /// Returns the rendered text, or an empty string once the element is gone.
    pub fn text(&self) -> String {
        self.evaluate("return arguments[0].innerText;", "")
            .unwrap_or_default()
    }

    pub fn attribute(&self, name: &str) -> Option<String> {
        self.evaluate("return arguments[0].getAttribute(arguments[1]);", name)
    }

    /// Returns a DOM property as text, such as the current `value` of an input.
    pub fn property(&self, name: &str) -> Option<String> {
        self.evaluate(
            "const v = arguments[0][arguments[1]]; return v == null ? null : String(v);",
            name,
        )
    }

    pub fn is_enabled(&self) -> bool {
        self.session
            .send("GET", &self.path("/enabled"), None)
            .ok()
            .and_then(|value| value.as_bool())
            .unwrap_or(false)
    }
}

/// Decodes standard base64 with padding; whitespace is skipped.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut output = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|byte| !byte.is_ascii_whitespace()) {
        if byte == b'=' {
            break;
        }
        buffer = (buffer << 6) | sextet(byte)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(output)
}
