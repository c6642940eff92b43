//! The loopback side of a browser sign-in (RFC 8252 section 7.3): a listener
//! on 127.0.0.1 that receives the authorization server's redirect and responds
//! to the browser with a small page.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Path of the redirect URI on the listener.
pub const CALLBACK_PATH: &str = "/callback";

/// Largest request head the listener reads, in bytes.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// How long one connection may take to send its request head. Browsers open
/// speculative connections that never send anything.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A request to the callback path, with the connection for the response.
pub struct Callback {
    /// Query parameters of the redirect.
    pub params: Vec<(String, String)>,
    stream: TcpStream,
}

impl Callback {
    /// Returns the value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Sends `page` to the browser and closes the connection.
    pub async fn respond(mut self, status: &str, page: &str) {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
             content-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
             connection: close\r\n\r\n{page}",
            page.len()
        );
        if let Err(error) = self.stream.write_all(response.as_bytes()).await {
            tracing::debug!(%error, "failed to send the response to the browser");
        }
        let _ = self.stream.shutdown().await;
    }
}

/// Accepts connections on `listener` until dropped, responds to requests for
/// other paths with 404 and passes callback requests to the returned channel.
pub fn serve(listener: TcpListener) -> (mpsc::Receiver<Callback>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(4);
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a browser connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                if let Some(callback) = read_callback(stream).await {
                    let _ = sender.send(callback).await;
                }
            });
        }
    });
    (receiver, task)
}

/// Reads one request. Returns it when it is a GET of the callback path, and
/// responds to anything else itself.
async fn read_callback(mut stream: TcpStream) -> Option<Callback> {
    let head = match tokio::time::timeout(REQUEST_HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        _ => return None,
    };
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let callback = Callback {
        params: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        stream,
    };
    if method != "GET" || path != CALLBACK_PATH {
        callback
            .respond("404 Not Found", &page("Not found", "未找到", "", ""))
            .await;
        return None;
    }
    Some(callback)
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
        if buffer.len() > MAX_REQUEST_HEAD_BYTES {
            return None;
        }
        let count = stream.read(&mut chunk).await.ok()?;
        if count == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..count]);
    }
    String::from_utf8(buffer).ok()
}

/// Returns the page shown after a successful sign-in.
pub fn success_page(user: Option<&str>) -> String {
    let (en, zh) = match user {
        Some(user) => (
            format!("Signed in to Hearth as {}.", escape(user)),
            format!("已以 {} 的身份登录 Hearth。", escape(user)),
        ),
        None => (
            "Signed in to Hearth.".to_owned(),
            "已登录 Hearth。".to_owned(),
        ),
    };
    page(
        &en,
        &zh,
        "You can close this window and return to the app.",
        "现在可以关闭此窗口并返回应用。",
    )
}

/// Returns the page shown when the sign-in failed.
pub fn failure_page(detail: &str) -> String {
    let detail = escape(detail);
    page(
        "Sign-in failed",
        "登录失败",
        &format!("{detail}. Close this window and see the app for what to do next."),
        &format!("{detail}。请关闭此窗口，并在应用中查看下一步操作。"),
    )
}

/// Returns the page for a redirect whose `state` does not match this sign-in.
pub fn foreign_request_page() -> String {
    page(
        "This sign-in response is not for this app",
        "此登录响应不属于本应用",
        "It was ignored. Start the sign-in again from the app if it does not finish.",
        "已忽略。如果登录没有完成，请在应用中重新开始登录。",
    )
}

fn page(title_en: &str, title_zh: &str, text_en: &str, text_zh: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Hearth</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}}</style>\
         </head>\n<body>\n<h1>{title_en}</h1>\n<p>{text_en}</p>\n\
         <h1 lang=\"zh-CN\">{title_zh}</h1>\n<p lang=\"zh-CN\">{text_zh}</p>\n</body>\n</html>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
