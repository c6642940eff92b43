//! Federation with the organisation's OpenID Connect provider.
//!
//! The sign-in page sends the browser to the provider with the authorization
//! code flow, PKCE (S256) and a nonce. The callback exchanges the code with the
//! client secret, and the `openidconnect` crate verifies the ID token's
//! signature against the provider's published keys, its issuer, audience,
//! expiry and nonce. The configured claim, read from the verified ID token or
//! else from the UserInfo endpoint, names the Hearth account.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JwsSigningAlgorithm as _, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::authorize::store::FederationState;
use crate::config::OidcConfig;
use crate::secret::Secret;

/// How long discovered provider metadata, including its signing keys, is reused.
/// A provider that rotates its keys is picked up within this time.
const METADATA_TTL: Duration = Duration::from_secs(10 * 60);
/// Timeout of each request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest provider response the server reads, in bytes.
const MAX_PROVIDER_RESPONSE_BYTES: usize = 1024 * 1024;

/// An identity the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub issuer: String,
    pub subject: String,
    /// The value of the configured user name claim, if the provider sent it.
    pub username: Option<String>,
}

/// The reason a federated sign-in failed. `code()` is the stable code shown on the page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("cannot reach the identity provider at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the identity provider's discovery document is invalid: {0}")]
    Discovery(String),
    #[error("the identity provider rejected the code exchange: {0}")]
    TokenExchange(String),
    #[error("the identity provider returned no ID token")]
    MissingIdToken,
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    #[error("the UserInfo response is invalid: {0}")]
    InvalidUserInfo(String),
}

impl OidcError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "provider_unreachable",
            Self::Discovery(_) => "provider_misconfigured",
            Self::TokenExchange(_) => "provider_rejected_code",
            Self::MissingIdToken | Self::InvalidIdToken(_) => "invalid_id_token",
            Self::InvalidUserInfo(_) => "invalid_userinfo",
        }
    }
}

/// The configured provider and a cache of its discovery document.
pub struct Federation {
    config: OidcConfig,
    issuer: IssuerUrl,
    http: ProviderHttp,
    metadata: tokio::sync::Mutex<Option<(Instant, Arc<CoreProviderMetadata>)>>,
}

impl Federation {
    /// Builds the HTTP client that trusts the system roots and the configured
    /// CA file. Makes no request; discovery happens at the first sign-in.
    pub fn new(config: &OidcConfig) -> anyhow::Result<Self> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .with_context(|| format!("invalid [oidc] issuer {:?}", config.issuer))?;
        let http = ProviderHttp::new(config.ca_file.as_deref())?;
        Ok(Self {
            config: config.clone(),
            issuer,
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// Returns the label of the sign-in button.
    pub fn button_label(&self) -> &str {
        &self.config.button_label
    }

    /// Returns the claim whose value names the Hearth account.
    pub fn username_claim(&self) -> &str {
        &self.config.username_claim
    }

    /// Returns whether a first sign-in of an unknown name creates the account.
    pub fn create_users(&self) -> bool {
        self.config.create_users
    }

    /// Returns the callback URL to register at the provider: the configured one,
    /// or one built from the origin the browser used to reach this server.
    pub fn callback_url(&self, request_origin: &str) -> String {
        match &self.config.redirect_url {
            Some(url) => url.clone(),
            None => format!("{request_origin}{}", hearth_proto::OIDC_CALLBACK_PATH),
        }
    }

    /// Builds the provider's authorization URL for a new federated sign-in.
    /// Returns the URL, the `state` it carries and what the callback needs.
    pub async fn authorization_url(
        &self,
        callback_url: &str,
    ) -> Result<(url::Url, Secret, FederationState), OidcError> {
        let (client, _) = self.client(callback_url).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        // The crate always requests `openid` itself.
        for scope in self.config.scopes.iter().filter(|scope| *scope != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let federation = FederationState {
            nonce: Secret::new(nonce.secret().clone()),
            pkce_verifier: Secret::new(verifier.secret().clone()),
            redirect_uri: callback_url.to_owned(),
        };
        Ok((url, Secret::new(state.secret().clone()), federation))
    }

    /// Exchanges the provider's code, verifies the ID token and reads the
    /// user name claim.
    pub async fn finish(
        &self,
        code: &Secret,
        federation: &FederationState,
    ) -> Result<FederatedIdentity, OidcError> {
        let (client, metadata) = self.client(&federation.redirect_uri).await?;
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .map_err(|error| OidcError::Discovery(error.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                federation.pkce_verifier.expose().to_owned(),
            ));
        let response = exchange
            .request_async(&self.http)
            .await
            .map_err(|error| OidcError::TokenExchange(error_chain(&error)))?;

        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or(OidcError::MissingIdToken)?;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(signing_algorithms(&metadata));
        let nonce = Nonce::new(federation.nonce.expose().to_owned());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|error| OidcError::InvalidIdToken(error_chain(&error)))?;
        let issuer = claims.issuer().as_str().to_owned();
        let subject = claims.subject().as_str().to_owned();

        // The claim is read from the payload whose signature was just verified,
        // so any claim name works, not only the standard ones.
        let mut username = claim_from_jwt(&id_token.to_string(), &self.config.username_claim);
        if username.is_none() {
            username = self
                .claim_from_userinfo(&client, response.access_token().secret(), &subject)
                .await?;
        }
        Ok(FederatedIdentity {
            issuer,
            subject,
            username,
        })
    }

    /// Reads the user name claim from the UserInfo endpoint. Returns `None`
    /// when the provider has no such endpoint or the claim is absent there too.
    async fn claim_from_userinfo(
        &self,
        client: &ProviderClient,
        access_token: &str,
        subject: &str,
    ) -> Result<Option<String>, OidcError> {
        let Some(endpoint) = client.user_info_url() else {
            return Ok(None);
        };
        let response = self
            .http
            .client
            .get(endpoint.as_str())
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|error| OidcError::Unreachable {
                url: endpoint.to_string(),
                detail: error_chain(&error),
            })?;
        let status = response.status();
        let body = read_limited(response)
            .await
            .map_err(|error| OidcError::InvalidUserInfo(error_chain(&error)))?;
        if !status.is_success() {
            return Err(OidcError::InvalidUserInfo(format!(
                "the endpoint returned HTTP {status}"
            )));
        }
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|error| {
                OidcError::InvalidUserInfo(format!(
                    "expected a JSON object (signed UserInfo responses are not supported): {error}"
                ))
            })?;
        // OpenID Connect Core 1.0 section 5.3.2: the UserInfo `sub` must match
        // the ID token's, or the response is about someone else.
        if claims.get("sub").and_then(|sub| sub.as_str()) != Some(subject) {
            return Err(OidcError::InvalidUserInfo(
                "its sub differs from the ID token's".to_owned(),
            ));
        }
        Ok(claim_as_string(claims.get(&self.config.username_claim)))
    }

    async fn client(
        &self,
        callback_url: &str,
    ) -> Result<(ProviderClient, Arc<CoreProviderMetadata>), OidcError> {
        let metadata = self.metadata().await?;
        let redirect = RedirectUrl::new(callback_url.to_owned())
            .map_err(|error| OidcError::Discovery(format!("invalid callback URL: {error}")))?;
        // Prefer HTTP Basic authentication (the OpenID Connect default) unless
        // the provider lists only client_secret_post.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.iter().any(|m| m.as_ref() == "client_secret_basic")
                    && methods.iter().any(|m| m.as_ref() == "client_secret_post") =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(
                self.config.client_secret.expose().to_owned(),
            )),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type);
        Ok((client, metadata))
    }

    /// Returns the provider metadata, discovering it again when the cached copy
    /// is older than [`METADATA_TTL`].
    async fn metadata(&self) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((fetched, metadata)) = cached.as_ref()
            && fetched.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let discovered = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|error| match error {
                openidconnect::DiscoveryError::Request(source) => OidcError::Unreachable {
                    url: self.issuer.to_string(),
                    detail: error_chain(&source),
                },
                other => OidcError::Discovery(error_chain(&other)),
            })?;
        tracing::info!(issuer = %self.issuer.as_str(), "discovered the OpenID Connect provider");
        let metadata = Arc::new(discovered);
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }
}

type ProviderClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Returns the ID token signature algorithms to accept: the asymmetric ones the
/// provider lists, or RS256, the OpenID Connect default, when it lists none.
/// `none` and the HMAC algorithms are never accepted.
fn signing_algorithms(metadata: &CoreProviderMetadata) -> Vec<CoreJwsSigningAlgorithm> {
    let listed: Vec<CoreJwsSigningAlgorithm> = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| **alg != CoreJwsSigningAlgorithm::None && !alg.uses_shared_secret())
        .cloned()
        .collect();
    if listed.is_empty() {
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
    } else {
        listed
    }
}

/// Returns claim `name` of a compact JWT's payload. Call it only on a token
/// whose signature has been verified.
fn claim_from_jwt(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    claim_as_string(claims.get(name))
}

fn claim_as_string(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// The HTTP client for the provider: TLS with the system roots plus the
/// configured CA, no redirects (they would allow request forgery through a
/// malicious discovery document), and a timeout.
struct ProviderHttp {
    client: reqwest::Client,
}

impl ProviderHttp {
    fn new(ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A broken system certificate must not stop federation.
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("invalid [oidc] ca_file {}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!(
                    "invalid [oidc] ca_file {}: it contains no PEM certificate",
                    path.display()
                );
            }
            for cert in certs {
                roots.add(cert).with_context(|| {
                    format!("invalid certificate in [oidc] ca_file {}", path.display())
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("failed to select TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .context("failed to build the HTTP client for the OpenID Connect provider")?;
        Ok(Self { client })
    }

    async fn execute(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, ProviderHttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_limited(response).await?;
        let mut builder = openidconnect::http::Response::builder().status(status);
        if let Some(map) = builder.headers_mut() {
            *map = headers;
        }
        builder
            .body(body)
            .map_err(|error| ProviderHttpError::Http(error.to_string()))
    }
}

/// Reads a response body of at most [`MAX_PROVIDER_RESPONSE_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderHttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_PROVIDER_RESPONSE_BYTES {
            return Err(ProviderHttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
enum ProviderHttpError {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("the response is larger than 1 MiB")]
    TooLarge,
    #[error("invalid response: {0}")]
    Http(String),
}

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// Joins an error's message with its sources, skipping repeats.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_read_from_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"s1","upn":"alice","n":3}"#);
        let jwt = format!("e30.{payload}.sig");
        assert_eq!(claim_from_jwt(&jwt, "upn").as_deref(), Some("alice"));
        assert_eq!(claim_from_jwt(&jwt, "n"), None);
        assert_eq!(claim_from_jwt(&jwt, "missing"), None);
    }
}
