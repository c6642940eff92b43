//! A scripted browser for the sign-in pages: an HTTP client with a cookie store
//! that does not follow redirects, and a small reader for the forms of a page.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// One HTTP response as a browser receives it.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// Returns the absolute redirect target, failing the test when there is none.
    pub fn redirect_target(&self) -> String {
        let location = self.location.as_deref().unwrap_or_else(|| {
            panic!(
                "expected a redirect from {}, got HTTP {}: {}",
                self.url, self.status, self.body
            )
        });
        url::Url::parse(&self.url)
            .unwrap()
            .join(location)
            .unwrap()
            .to_string()
    }

    /// Returns the forms of the page.
    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body, &self.url)
    }

    /// Returns the form whose fields include `name=value`.
    pub fn form_with(&self, name: &str, value: &str) -> Form {
        self.forms()
            .into_iter()
            .find(|form| form.value(name) == Some(value))
            .unwrap_or_else(|| {
                panic!(
                    "no form with {name}={value} on {} (HTTP {}): {}",
                    self.url, self.status, self.body
                )
            })
    }
}

/// A form with its absolute action URL and its fields' initial values.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Sets a field, adding it when the form has none of that name.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.fields.iter_mut().find(|(key, _)| key == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }
}

pub struct Browser {
    pub client: reqwest::Client,
}

impl Browser {
    /// Creates a browser that trusts the given PEM certificates.
    pub fn new(trusted_pems: &[&str]) -> Self {
        Self::with_language(trusted_pems, "en")
    }

    pub fn with_language(trusted_pems: &[&str], accept_language: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for pem in trusted_pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            accept_language.parse().unwrap(),
        );
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Self { client }
    }

    pub async fn get(&self, url: &str) -> Page {
        let response = self.client.get(url).send().await.unwrap();
        read_page(url, response).await
    }

    /// Submits a form as a browser does: POST with a urlencoded body, or GET
    /// with the fields in the query.
    pub async fn submit(&self, form: &Form) -> Page {
        let response = if form.method.eq_ignore_ascii_case("get") {
            let mut url = url::Url::parse(&form.action).unwrap();
            url.query_pairs_mut().extend_pairs(&form.fields);
            self.client.get(url.as_str()).send().await.unwrap()
        } else {
            self.client
                .post(&form.action)
                .form(&form.fields)
                .send()
                .await
                .unwrap()
        };
        read_page(&form.action, response).await
    }

    /// Follows redirects on `https` URLs until a page is not a redirect or the
    /// target leaves HTTPS (the app's loopback address). Returns the last page
    /// and, if it stopped at one, the non-HTTPS target.
    pub async fn follow(&self, mut page: Page) -> (Page, Option<String>) {
        for _ in 0..10 {
            if page.location.is_none() {
                return (page, None);
            }
            let target = page.redirect_target();
            if !target.starts_with("https://") {
                return (page, Some(target));
            }
            page = self.get(&target).await;
        }
        panic!("more than 10 redirects, last at {}", page.url);
    }
}

async fn read_page(url: &str, response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers
        .get(reqwest::header::LOCATION)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    Page {
        url: url.to_owned(),
        status,
        location,
        headers,
        body,
    }
}

/// Reads `<form>` elements with their `<input>` and named `<button>` fields.
/// It handles the markup of Hearth's and oidc-provider's pages, not HTML in
/// general.
pub fn parse_forms(html: &str, base_url: &str) -> Vec<Form> {
    let base = url::Url::parse(base_url).unwrap();
    let mut forms = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let end = after.find("</form>").unwrap_or(after.len());
        let element = &after[..end];
        let open_end = element.find('>').unwrap_or(element.len());
        let attributes = parse_attributes(&element[5..open_end]);
        let action = attribute(&attributes, "action").unwrap_or_default();
        let method = attribute(&attributes, "method").unwrap_or_else(|| "get".to_owned());

        let mut fields = Vec::new();
        for tag in ["<input", "<button"] {
            let mut inner = &element[open_end..];
            while let Some(position) = inner.find(tag) {
                let tag_text = &inner[position + tag.len()..];
                let tag_end = tag_text.find('>').unwrap_or(tag_text.len());
                let attributes = parse_attributes(&tag_text[..tag_end]);
                if let Some(name) = attribute(&attributes, "name") {
                    let value = attribute(&attributes, "value").unwrap_or_default();
                    fields.push((name, value));
                }
                inner = &tag_text[tag_end..];
            }
        }
        forms.push(Form {
            action: base.join(&action).unwrap().to_string(),
            method,
            fields,
        });
        rest = &after[end..];
    }
    forms
}

fn attribute(attributes: &[(String, String)], name: &str) -> Option<String> {
    attributes
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
}

fn parse_attributes(text: &str) -> Vec<(String, String)> {
    let mut attributes = Vec::new();
    let mut chars = text.trim_end_matches('/').chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != '/'))
                .collect();
        if name.is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            match chars.peek().copied() {
                Some(quote @ ('"' | '\'')) => {
                    chars.next();
                    value = std::iter::from_fn(|| chars.next_if(|c| *c != quote)).collect();
                    chars.next();
                }
                _ => {
                    value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
                }
            }
        }
        attributes.push((name, decode_entities(&value)));
    }
    attributes
}

fn decode_entities(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Returns the value of query parameter `name` of `url`.
pub fn query_value(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A PKCE code verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        use base64::Engine as _;
        use sha2::Digest as _;
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// Builds an authorization URL for `client_id` with a loopback redirect URI.
pub fn authorize_url(base_url: &str, client_id: &str, redirect_uri: &str, pkce: &Pkce) -> String {
    let mut url = url::Url::parse(&format!("{base_url}{}", hearth_proto::AUTHORIZE_PATH)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "state-123");
    url.into()
}
