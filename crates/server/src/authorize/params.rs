//! Validation of authorization requests (RFC 6749 section 4.1.1) from native
//! apps: public clients with PKCE (RFC 7636, S256 only) and loopback redirect
//! URIs (RFC 8252 section 7.3).

use std::net::{Ipv4Addr, Ipv6Addr};

use hearth_proto::oauth::PUBLIC_CLIENT_IDS;

/// Longest accepted `redirect_uri`, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;
/// Longest accepted `state`, in bytes. The server stores it until the code is issued.
pub const MAX_STATE_LEN: usize = 1024;
/// Length of an S256 `code_challenge`: 32 bytes of SHA-256 in unpadded base64url.
const S256_CHALLENGE_LEN: usize = 43;

/// A valid authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// Exactly as the client sent it; the token request must repeat it.
    pub redirect_uri: String,
    pub code_challenge: String,
    pub state: Option<String>,
}

/// A request that cannot name a trusted redirect URI. RFC 6749 section 4.1.2.1
/// forbids redirecting then, so the server shows the error on its own page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    InvalidQuery(String),
    RepeatedParameter(String),
    MissingParameter(&'static str),
    UnknownClient(String),
    InvalidRedirectUri { value: String, reason: &'static str },
}

impl PageError {
    /// Returns the RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownClient(_) => "unauthorized_client",
            _ => "invalid_request",
        }
    }

    /// Describes the problem in English, naming the value and the fix.
    pub fn describe_en(&self) -> String {
        match self {
            Self::InvalidQuery(detail) => format!("the query string is invalid: {detail}"),
            Self::RepeatedParameter(name) => {
                format!("parameter {name:?} is repeated; send each parameter once")
            }
            Self::MissingParameter(name) => format!("parameter {name:?} is missing"),
            Self::UnknownClient(id) => format!(
                "client_id {id:?} is not a Hearth app; use one of: {}",
                PUBLIC_CLIENT_IDS.join(", ")
            ),
            Self::InvalidRedirectUri { value, reason } => format!(
                "redirect_uri {value:?} is not allowed: {reason}; use \
                 http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH"
            ),
        }
    }

    /// Describes the problem in Simplified Chinese.
    pub fn describe_zh(&self) -> String {
        match self {
            Self::InvalidQuery(detail) => format!("查询字符串无效：{detail}"),
            Self::RepeatedParameter(name) => {
                format!("参数 {name:?} 重复出现；每个参数只能发送一次")
            }
            Self::MissingParameter(name) => format!("缺少参数 {name:?}"),
            Self::UnknownClient(id) => format!(
                "client_id {id:?} 不是 Hearth 应用；请使用以下之一：{}",
                PUBLIC_CLIENT_IDS.join(", ")
            ),
            Self::InvalidRedirectUri { value, reason } => format!(
                "不允许使用 redirect_uri {value:?}（{reason}）；请使用 \
                 http://127.0.0.1:端口/路径 或 http://[::1]:端口/路径"
            ),
        }
    }
}

/// A request with a trusted redirect URI but another problem. The error goes
/// back to the client as query parameters of its redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub error: &'static str,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    Page(PageError),
    Redirect(RedirectError),
}

/// Validates the query parameters of `GET /oauth/authorize`. `lang` is ignored
/// here because it only selects the page's language.
pub fn parse(pairs: &[(String, String)]) -> Result<AuthorizationRequest, RequestError> {
    let page = |error| Err(RequestError::Page(error));
    if let Some(name) = first_repeated(pairs) {
        // A repeated client_id or redirect_uri makes the redirect target
        // ambiguous, so every repetition is reported on the page.
        return page(PageError::RepeatedParameter(name.to_owned()));
    }

    let Some(client_id) = value(pairs, "client_id") else {
        return page(PageError::MissingParameter("client_id"));
    };
    if !PUBLIC_CLIENT_IDS.contains(&client_id) {
        return page(PageError::UnknownClient(client_id.to_owned()));
    }
    let Some(redirect_uri) = value(pairs, "redirect_uri") else {
        return page(PageError::MissingParameter("redirect_uri"));
    };
    if let Err(reason) = check_redirect_uri(redirect_uri) {
        return page(PageError::InvalidRedirectUri {
            value: truncate(redirect_uri, 200),
            reason,
        });
    }

    let state = value(pairs, "state").map(str::to_owned);
    let redirect = |error: &'static str, description: String| {
        Err(RequestError::Redirect(RedirectError {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error,
            description,
        }))
    };
    if state
        .as_ref()
        .is_some_and(|state| state.len() > MAX_STATE_LEN)
    {
        return redirect(
            "invalid_request",
            format!("state is longer than {MAX_STATE_LEN} bytes"),
        );
    }
    match value(pairs, "response_type") {
        Some("code") => {}
        None => {
            return redirect(
                "invalid_request",
                "parameter \"response_type\" is missing; use response_type=code".to_owned(),
            );
        }
        Some(other) => {
            return redirect(
                "unsupported_response_type",
                format!("response_type {other:?} is not supported; use response_type=code"),
            );
        }
    }
    let Some(code_challenge) = value(pairs, "code_challenge") else {
        return redirect(
            "invalid_request",
            "parameter \"code_challenge\" is missing; PKCE (RFC 7636) with S256 is required"
                .to_owned(),
        );
    };
    match value(pairs, "code_challenge_method") {
        Some("S256") => {}
        None => {
            return redirect(
                "invalid_request",
                "parameter \"code_challenge_method\" is missing; use code_challenge_method=S256"
                    .to_owned(),
            );
        }
        Some(other) => {
            return redirect(
                "invalid_request",
                format!("code_challenge_method {other:?} is not supported; use S256"),
            );
        }
    }
    if !is_s256_challenge(code_challenge) {
        return redirect(
            "invalid_request",
            "code_challenge must be the unpadded base64url SHA-256 of the code_verifier (43 characters)"
                .to_owned(),
        );
    }

    Ok(AuthorizationRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: code_challenge.to_owned(),
        state,
    })
}

/// Checks that `value` is a loopback redirect URI as RFC 8252 section 7.3
/// describes: plain `http` to the literal address 127.0.0.1 or ::1, any port.
/// The name `localhost` is rejected, as section 8.3 recommends, because it may
/// resolve to another address.
pub fn check_redirect_uri(value: &str) -> Result<(), &'static str> {
    if value.len() > MAX_REDIRECT_URI_LEN {
        return Err("it is longer than 2048 bytes");
    }
    let url = url::Url::parse(value).map_err(|_| "it is not an absolute URL")?;
    if url.scheme() != "http" {
        return Err("the scheme must be http");
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        _ => false,
    };
    if !loopback {
        return Err("the host must be 127.0.0.1 or [::1]");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not contain a user name or password");
    }
    if url.fragment().is_some() {
        return Err("it must not contain a fragment");
    }
    Ok(())
}

/// Checks the form of an S256 code challenge: 43 base64url characters.
pub fn is_s256_challenge(value: &str) -> bool {
    value.len() == S256_CHALLENGE_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Checks the form of a code verifier (RFC 7636 section 4.1): 43 to 128
/// characters from `A-Z a-z 0-9 - . _ ~`.
pub fn is_code_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

/// Returns the RFC 7636 S256 challenge of `verifier`.
pub fn s256_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

fn first_repeated(pairs: &[(String, String)]) -> Option<&str> {
    pairs.iter().enumerate().find_map(|(index, (key, _))| {
        pairs[..index]
            .iter()
            .any(|(earlier, _)| earlier == key)
            .then_some(key.as_str())
    })
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

fn truncate(value: &str, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn valid() -> Vec<(String, String)> {
        pairs(&[
            ("response_type", "code"),
            ("client_id", "hearth-cli"),
            ("redirect_uri", "http://127.0.0.1:5000/callback"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
        ])
    }

    fn without(key: &str) -> Vec<(String, String)> {
        valid()
            .into_iter()
            .filter(|(name, _)| name != key)
            .collect()
    }

    fn with(key: &str, new_value: &str) -> Vec<(String, String)> {
        let mut list = without(key);
        list.push((key.to_owned(), new_value.to_owned()));
        list
    }

    fn redirect_error(list: &[(String, String)]) -> &'static str {
        match parse(list) {
            Err(RequestError::Redirect(error)) => error.error,
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    #[test]
    fn valid_request_parses() {
        let request = parse(&valid()).unwrap();
        assert_eq!(request.client_id, "hearth-cli");
        assert_eq!(request.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn rfc7636_example_challenge_matches() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256_challenge(verifier), CHALLENGE);
        assert!(is_code_verifier(verifier));
    }

    #[test]
    fn loopback_addresses_accepted() {
        assert!(check_redirect_uri("http://127.0.0.1:49152/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]:8080/").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/").is_ok());
    }

    #[test]
    fn non_loopback_redirects_rejected() {
        for uri in [
            "https://127.0.0.1:5000/cb",
            "http://localhost:5000/cb",
            "http://127.0.0.2:5000/cb",
            "http://192.0.2.1:5000/cb",
            "http://user@127.0.0.1:5000/cb",
            "http://127.0.0.1:5000/cb#frag",
            "hearth://callback",
            "/relative",
        ] {
            assert!(check_redirect_uri(uri).is_err(), "{uri} was accepted");
        }
    }

    #[test]
    fn unknown_client_shown_on_page() {
        let result = parse(&with("client_id", "evil-app"));
        assert!(matches!(
            result,
            Err(RequestError::Page(PageError::UnknownClient(_)))
        ));
    }

    #[test]
    fn repeated_redirect_uri_shown_on_page() {
        let mut list = valid();
        list.push(("redirect_uri".into(), "http://127.0.0.1:1/x".into()));
        assert!(matches!(
            parse(&list),
            Err(RequestError::Page(PageError::RepeatedParameter(_)))
        ));
    }

    #[test]
    fn missing_challenge_redirects() {
        assert_eq!(
            redirect_error(&without("code_challenge")),
            "invalid_request"
        );
    }

    #[test]
    fn plain_method_redirects() {
        assert_eq!(
            redirect_error(&with("code_challenge_method", "plain")),
            "invalid_request"
        );
    }

    #[test]
    fn token_response_type_unsupported() {
        assert_eq!(
            redirect_error(&with("response_type", "token")),
            "unsupported_response_type"
        );
    }

    #[test]
    fn short_challenge_redirects() {
        assert_eq!(
            redirect_error(&with("code_challenge", "abc")),
            "invalid_request"
        );
    }

    #[test]
    fn verifier_length_checked() {
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(is_code_verifier(&"a".repeat(128)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(50))));
    }
}
