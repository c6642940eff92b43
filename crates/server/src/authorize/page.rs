//! The sign-in page and the error pages of the authorization endpoint, in
//! English and Simplified Chinese.

use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::params::AuthorizationRequest;

/// Name of the cookie that keeps the language chosen with the page's switch.
pub const LANG_COOKIE: &str = "hearth-lang";

/// Language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// Returns the value used in `lang=` and in the `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    /// Parses the value of `lang=` or of the language cookie.
    pub fn from_code(value: &str) -> Option<Self> {
        let value = value.trim().to_ascii_lowercase();
        if value == "en" || value.starts_with("en-") {
            Some(Self::En)
        } else if value == "zh" || value.starts_with("zh-") {
            Some(Self::Zh)
        } else {
            None
        }
    }

    /// Picks the language: an explicit `lang` parameter, then the cookie the
    /// switch sets, then the best English or Chinese entry of Accept-Language,
    /// then English.
    pub fn choose(explicit: Option<&str>, headers: &HeaderMap) -> Self {
        explicit
            .and_then(Self::from_code)
            .or_else(|| cookie(headers, LANG_COOKIE).and_then(|value| Self::from_code(&value)))
            .or_else(|| from_accept_language(headers))
            .unwrap_or(Self::En)
    }

    fn texts(self) -> &'static Texts {
        match self {
            Self::En => &EN,
            Self::Zh => &ZH,
        }
    }
}

/// Returns the language of the Accept-Language entry with the highest quality
/// that is English or Chinese (RFC 9110 section 12.5.4).
fn from_accept_language(headers: &HeaderMap) -> Option<Lang> {
    let value = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let mut best: Option<(f32, Lang)> = None;
    for entry in value.split(',') {
        let mut parts = entry.split(';');
        let Some(lang) = parts.next().and_then(Lang::from_code) else {
            continue;
        };
        let quality = parts
            .find_map(|part| part.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if quality > 0.0 && best.is_none_or(|(top, _)| quality > top) {
            best = Some((quality, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// Returns the value of cookie `name` from the Cookie headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

struct Texts {
    title: &'static str,
    heading: &'static str,
    client_desktop: &'static str,
    client_cli: &'static str,
    request_intro: &'static str,
    username: &'static str,
    password: &'static str,
    sign_in: &'static str,
    or: &'static str,
    sign_in_with: &'static str,
    cancel: &'static str,
    wrong_password: &'static str,
    disabled: &'static str,
    too_many_attempts: &'static str,
    error_title: &'static str,
    invalid_request_heading: &'static str,
    error_code: &'static str,
    expired: &'static str,
    back_to_app: &'static str,
    federation_failed: &'static str,
}

const EN: Texts = Texts {
    title: "Sign in to Hearth",
    heading: "Sign in to Hearth",
    client_desktop: "the Hearth desktop app",
    client_cli: "the hearth command-line client",
    request_intro: "You are signing in to",
    username: "User name",
    password: "Password",
    sign_in: "Sign in",
    or: "or",
    sign_in_with: "Sign in with {label}",
    cancel: "Cancel",
    wrong_password: "The user name or password is wrong.",
    disabled: "This account is disabled. Ask an administrator to enable it.",
    too_many_attempts: "Too many failed sign-in attempts. Try again in {minutes} minutes.",
    error_title: "Sign-in failed",
    invalid_request_heading: "The app sent an invalid sign-in request",
    error_code: "Error code",
    expired: "This sign-in page has expired or was opened in another browser. Start the sign-in again from the app.",
    back_to_app: "Return to the app",
    federation_failed: "Sign-in through the organisation's identity provider failed",
};

const ZH: Texts = Texts {
    title: "登录 Hearth",
    heading: "登录 Hearth",
    client_desktop: "Hearth 桌面应用",
    client_cli: "hearth 命令行客户端",
    request_intro: "你正在登录",
    username: "用户名",
    password: "密码",
    sign_in: "登录",
    or: "或",
    sign_in_with: "使用 {label} 登录",
    cancel: "取消",
    wrong_password: "用户名或密码错误。",
    disabled: "此账户已停用，请联系管理员启用。",
    too_many_attempts: "登录失败次数过多，请在 {minutes} 分钟后重试。",
    error_title: "登录失败",
    invalid_request_heading: "应用发送的登录请求无效",
    error_code: "错误代码",
    expired: "此登录页面已过期，或是在另一个浏览器中打开的。请从应用中重新开始登录。",
    back_to_app: "返回应用",
    federation_failed: "通过组织的身份提供方登录失败",
};

/// A message shown above the sign-in form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormNotice {
    WrongPassword,
    Disabled,
    TooManyAttempts { minutes: u64 },
}

/// Everything the sign-in form shows.
pub struct SignInForm<'a> {
    pub lang: Lang,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    pub request: &'a AuthorizationRequest,
    pub username: &'a str,
    pub notice: Option<FormNotice>,
    /// Label of the federation button, when OpenID Connect is configured.
    pub federation_label: Option<&'a str>,
}

/// Renders the sign-in page.
pub fn sign_in(form: &SignInForm<'_>) -> Response {
    let texts = form.lang.texts();
    let client = if form.request.client_id == hearth_proto::oauth::CLIENT_ID_DESKTOP {
        texts.client_desktop
    } else {
        texts.client_cli
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1>\n<p>{} <strong>{}</strong>.</p>\n",
        texts.heading,
        texts.request_intro,
        escape(client)
    );
    if let Some(notice) = form.notice {
        let message = match notice {
            FormNotice::WrongPassword => texts.wrong_password.to_owned(),
            FormNotice::Disabled => texts.disabled.to_owned(),
            FormNotice::TooManyAttempts { minutes } => texts
                .too_many_attempts
                .replace("{minutes}", &minutes.to_string()),
        };
        let _ = writeln!(
            body,
            "<p class=\"notice\" role=\"alert\">{}</p>",
            escape(&message)
        );
    }

    let hidden = format!(
        "<input type=\"hidden\" name=\"request\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"lang\" value=\"{}\">\n",
        escape(form.request_id),
        escape(form.csrf_token),
        form.lang.code()
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{path}\" class=\"password\">\n{hidden}\
         <input type=\"hidden\" name=\"action\" value=\"password\">\n\
         <label>{username_label}<input name=\"username\" autocomplete=\"username\" \
         required autofocus value=\"{username}\"></label>\n\
         <label>{password_label}<input type=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required></label>\n\
         <button type=\"submit\">{sign_in}</button>\n</form>\n",
        path = hearth_proto::AUTHORIZE_PATH,
        username_label = texts.username,
        username = escape(form.username),
        password_label = texts.password,
        sign_in = texts.sign_in,
    );
    if let Some(label) = form.federation_label {
        let _ = write!(
            body,
            "<p class=\"or\">{or}</p>\n<form method=\"post\" action=\"{path}\" class=\"federation\">\n\
             {hidden}<input type=\"hidden\" name=\"action\" value=\"oidc\">\n\
             <button type=\"submit\">{sign_in_with}</button>\n</form>\n",
            or = texts.or,
            path = hearth_proto::AUTHORIZE_PATH,
            sign_in_with = escape(&texts.sign_in_with.replace("{label}", label)),
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{path}\" class=\"cancel\">\n{hidden}\
         <input type=\"hidden\" name=\"action\" value=\"cancel\">\n\
         <button type=\"submit\">{cancel}</button>\n</form>\n",
        path = hearth_proto::AUTHORIZE_PATH,
        cancel = texts.cancel,
    );
    body.push_str(&language_switch(form.lang, form.request));
    page(StatusCode::OK, form.lang, texts.title, &body)
}

/// Renders the page for a request whose redirect URI cannot be trusted.
pub fn invalid_request(lang: Lang, code: &str, detail_en: &str, detail_zh: &str) -> Response {
    let texts = lang.texts();
    let detail = match lang {
        Lang::En => detail_en,
        Lang::Zh => detail_zh,
    };
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p>{}: <code>{}</code></p>\n",
        texts.invalid_request_heading,
        escape(detail),
        texts.error_code,
        escape(code)
    );
    page(StatusCode::BAD_REQUEST, lang, texts.error_title, &body)
}

/// Renders the page for a form post or callback whose request is gone.
pub fn expired(lang: Lang) -> Response {
    let texts = lang.texts();
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p>{}: <code>invalid_state</code></p>\n",
        texts.error_title, texts.expired, texts.error_code
    );
    page(StatusCode::BAD_REQUEST, lang, texts.error_title, &body)
}

/// Renders a failed federated sign-in: what went wrong, its stable code, and a
/// link that returns the error to the app so it stops waiting.
pub fn federation_failed(
    lang: Lang,
    status: StatusCode,
    code: &str,
    message: &str,
    back_to_app: &str,
) -> Response {
    let texts = lang.texts();
    let body = format!(
        "<h1>{}</h1>\n<p class=\"notice\" role=\"alert\">{}</p>\n<p>{}: <code>{}</code></p>\n\
         <p><a href=\"{}\">{}</a></p>\n",
        texts.federation_failed,
        escape(message),
        texts.error_code,
        escape(code),
        escape(back_to_app),
        texts.back_to_app
    );
    page(status, lang, texts.error_title, &body)
}

/// Returns the text of the disabled-account notice, for other pages.
pub fn disabled_text(lang: Lang) -> &'static str {
    lang.texts().disabled
}

fn language_switch(current: Lang, request: &AuthorizationRequest) -> String {
    let mut links = Vec::new();
    for (lang, label) in [(Lang::En, "English"), (Lang::Zh, "简体中文")] {
        if lang == current {
            links.push(format!("<strong>{label}</strong>"));
            continue;
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &request.client_id)
            .append_pair("redirect_uri", &request.redirect_uri)
            .append_pair("code_challenge", &request.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
        query.append_pair("lang", lang.code());
        links.push(format!(
            "<a href=\"{}?{}\" hreflang=\"{}\">{label}</a>",
            hearth_proto::AUTHORIZE_PATH,
            escape(&query.finish()),
            lang.code()
        ));
    }
    format!("<nav class=\"lang\">{}</nav>\n", links.join(" · "))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#222}\
label{display:block;margin:.8rem 0}input:not([type=hidden]){display:block;width:100%;padding:.4rem;margin-top:.2rem;box-sizing:border-box}\
button{padding:.5rem 1rem;margin-top:.5rem}.notice{color:#a00}.or{text-align:center;color:#666}\
.cancel button{background:none;border:none;color:#555;text-decoration:underline;padding:0}\
.lang{margin-top:2rem;font-size:.9rem;color:#666}";

/// Wraps `body` in the page layout with headers that forbid caching, framing
/// and referrers.
fn page(status: StatusCode, lang: Lang, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        lang.code(),
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept_language: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept_language).unwrap(),
        );
        headers
    }

    #[test]
    fn chinese_preferred_by_quality() {
        let chosen = Lang::choose(None, &headers("fr;q=1, en;q=0.5, zh-CN;q=0.8"));
        assert_eq!(chosen, Lang::Zh);
    }

    #[test]
    fn english_by_default() {
        assert_eq!(Lang::choose(None, &headers("de, fr")), Lang::En);
        assert_eq!(Lang::choose(None, &HeaderMap::new()), Lang::En);
    }

    #[test]
    fn explicit_lang_wins() {
        assert_eq!(Lang::choose(Some("en"), &headers("zh-CN")), Lang::En);
    }

    #[test]
    fn cookie_beats_accept_language() {
        let mut headers = headers("en");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; hearth-lang=zh-CN"),
        );
        assert_eq!(Lang::choose(None, &headers), Lang::Zh);
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
