//! Sign-in through the organisation's OpenID Connect provider: leaving for the
//! provider from the sign-in page, and its callback.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;

use super::page::{self, Lang};
use super::store::PendingRequest;
use super::{
    BROWSER_COOKIE, client_redirect_url, internal_error, issue_code, pair_value, query_pairs,
    redirect_to_client, see_other,
};
use crate::accounts::FederatedAccount;
use crate::http::AppState;
use crate::oidc::OidcError;
use crate::secret::Secret;

/// The reason a federated sign-in ended without a code.
#[derive(Debug)]
enum Failure {
    NotConfigured,
    UnknownOrigin,
    Provider(OidcError),
    MissingCode,
    MissingClaim(String),
    InvalidName(String),
    NoAccount(String),
    LinkedElsewhere(String),
    Disabled(String),
}

impl Failure {
    fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "federation_not_configured",
            Self::UnknownOrigin => "invalid_request",
            Self::Provider(error) => error.code(),
            Self::MissingCode => "invalid_request",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidName(_) => "invalid_user_name",
            Self::NoAccount(_) => "unknown_user",
            Self::LinkedElsewhere(_) => "account_linked_elsewhere",
            Self::Disabled(_) => "account_disabled",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Disabled(_) | Self::LinkedElsewhere(_) | Self::NoAccount(_) => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (Self::NotConfigured, Lang::En) => {
                "This server has no identity provider configured.".to_owned()
            }
            (Self::NotConfigured, Lang::Zh) => "此服务器未配置身份提供方。".to_owned(),
            (Self::UnknownOrigin, Lang::En) => {
                "The request has no valid Host header, so the callback address is unknown."
                    .to_owned()
            }
            (Self::UnknownOrigin, Lang::Zh) => {
                "请求没有有效的 Host 头，无法确定回调地址。".to_owned()
            }
            (Self::Provider(error), Lang::En) => format!(
                "The identity provider could not confirm who you are. Ask an administrator to check the server log. Detail: {error}"
            ),
            (Self::Provider(error), Lang::Zh) => {
                format!("身份提供方无法确认你的身份，请联系管理员查看服务器日志。详情：{error}")
            }
            (Self::MissingCode, Lang::En) => {
                "The identity provider returned no authorization code.".to_owned()
            }
            (Self::MissingCode, Lang::Zh) => "身份提供方没有返回授权码。".to_owned(),
            (Self::MissingClaim(claim), Lang::En) => format!(
                "The identity provider did not send the {claim} claim that names your Hearth account. Ask an administrator to check the [oidc] username_claim setting."
            ),
            (Self::MissingClaim(claim), Lang::Zh) => format!(
                "身份提供方没有提供用于确定 Hearth 账户的 {claim} 声明。请联系管理员检查 [oidc] username_claim 设置。"
            ),
            (Self::InvalidName(name), Lang::En) => format!(
                "The identity provider's user name {name:?} is not a valid Hearth user name (1 to 64 letters, digits, '.', '_' or '-')."
            ),
            (Self::InvalidName(name), Lang::Zh) => format!(
                "身份提供方给出的用户名 {name:?} 不是有效的 Hearth 用户名（1 到 64 个字母、数字、'.'、'_' 或 '-'）。"
            ),
            (Self::NoAccount(name), Lang::En) => format!(
                "There is no Hearth account named {name:?}. Ask an administrator to create it."
            ),
            (Self::NoAccount(name), Lang::Zh) => {
                format!("没有名为 {name:?} 的 Hearth 账户，请联系管理员创建。")
            }
            (Self::LinkedElsewhere(name), Lang::En) => format!(
                "The Hearth account {name:?} belongs to another identity at this provider, so it cannot be used with yours. Ask an administrator."
            ),
            (Self::LinkedElsewhere(name), Lang::Zh) => format!(
                "Hearth 账户 {name:?} 已关联到该身份提供方的另一个身份，不能用你的身份登录。请联系管理员。"
            ),
            (Self::Disabled(name), lang) => format!("{name}: {}", page::disabled_text(lang)),
        }
    }
}

/// Shows the failure with a link that returns `access_denied` to the app, and
/// deletes the request.
async fn fail(
    state: &AppState,
    lang: Lang,
    pending: &PendingRequest,
    failure: Failure,
) -> Response {
    tracing::warn!(
        code = failure.code(),
        client_id = %pending.request.client_id,
        detail = %failure.message(Lang::En),
        "federated sign-in failed"
    );
    if let Err(error) = state.authorizer.store.delete_request(&pending.id).await {
        tracing::error!(%error, "failed to delete the authorization request");
    }
    let back = client_redirect_url(
        &pending.request,
        &[
            ("error", "access_denied"),
            ("error_description", failure.code()),
        ],
    );
    page::federation_failed(
        lang,
        failure.status(),
        failure.code(),
        &failure.message(lang),
        &back,
    )
}

/// Sends the browser to the provider for the pending request.
pub(super) async fn start(
    state: &AppState,
    lang: Lang,
    pending: &PendingRequest,
    browser: &Secret,
    headers: &HeaderMap,
    uri: &Uri,
) -> Response {
    let Some(federation) = &state.authorizer.federation else {
        return fail(state, lang, pending, Failure::NotConfigured).await;
    };
    let Some(origin) = request_origin(headers, uri) else {
        return fail(state, lang, pending, Failure::UnknownOrigin).await;
    };
    let callback = federation.callback_url(&origin);
    let (url, oidc_state, federation_state) = match federation.authorization_url(&callback).await {
        Ok(started) => started,
        Err(error) => return fail(state, lang, pending, Failure::Provider(error)).await,
    };
    match state
        .authorizer
        .store
        .start_federation(&pending.id, browser, &oidc_state, &federation_state)
        .await
    {
        Ok(true) => see_other(url.as_str()),
        Ok(false) => page::expired(lang),
        Err(error) => internal_error("failed to store the federation state", &error),
    }
}

/// `GET /oauth/oidc/callback`: the provider returns the browser here.
pub(super) async fn provider_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let lang = Lang::choose(None, &headers);
    let Ok(pairs) = query_pairs(&uri) else {
        return page::expired(lang);
    };
    let browser = page::cookie(&headers, BROWSER_COOKIE).map(Secret::new);
    let oidc_state = pair_value(&pairs, "state").map(Secret::new);
    let (Some(browser), Some(oidc_state)) = (browser, oidc_state) else {
        tracing::info!("rejected federation callback: no state or no browser cookie");
        return page::expired(lang);
    };
    let authorizer = &state.authorizer;
    let taken = match authorizer
        .store
        .take_federation(&oidc_state, &browser)
        .await
    {
        Ok(taken) => taken,
        Err(error) => return internal_error("failed to load the federation state", &error),
    };
    let Some((pending, federation_state)) = taken else {
        tracing::info!("rejected federation callback: unknown, used or foreign state");
        return page::expired(lang);
    };
    let Some(federation) = &authorizer.federation else {
        return fail(&state, lang, &pending, Failure::NotConfigured).await;
    };

    if let Some(error) = pair_value(&pairs, "error") {
        // RFC 6749 section 4.1.2.1: the provider refused, for example because
        // the user declined. The app learns it at once.
        let error = error.chars().take(64).collect::<String>();
        tracing::info!(provider_error = %error, "identity provider rejected the sign-in");
        if let Err(failure) = authorizer.store.delete_request(&pending.id).await {
            tracing::error!(error = %failure, "failed to delete the authorization request");
        }
        return redirect_to_client(
            &pending.request,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    &format!("the identity provider returned {error}"),
                ),
            ],
        );
    }
    let Some(code) = pair_value(&pairs, "code").map(Secret::new) else {
        return fail(&state, lang, &pending, Failure::MissingCode).await;
    };

    let identity = match federation.finish(&code, &federation_state).await {
        Ok(identity) => identity,
        Err(error) => return fail(&state, lang, &pending, Failure::Provider(error)).await,
    };
    let account = match state
        .accounts
        .resolve_federated(
            &identity.issuer,
            &identity.subject,
            identity.username.as_deref(),
            federation.create_users(),
        )
        .await
    {
        Ok(account) => account,
        Err(error) => return internal_error("failed to resolve the federated account", &error),
    };
    let (user_id, name) = match account {
        FederatedAccount::Existing {
            name,
            disabled: true,
            ..
        } => return fail(&state, lang, &pending, Failure::Disabled(name)).await,
        FederatedAccount::Existing { id, name, .. } => (id, name),
        FederatedAccount::Created { id, name } => {
            tracing::info!(user = %name, issuer = %identity.issuer, "created an account on first federated sign-in");
            (id, name)
        }
        FederatedAccount::MissingClaim => {
            let claim = federation.username_claim().to_owned();
            return fail(&state, lang, &pending, Failure::MissingClaim(claim)).await;
        }
        FederatedAccount::InvalidName { name } => {
            return fail(&state, lang, &pending, Failure::InvalidName(name)).await;
        }
        FederatedAccount::NoAccount { name } => {
            return fail(&state, lang, &pending, Failure::NoAccount(name)).await;
        }
        FederatedAccount::LinkedToOtherSubject { name } => {
            return fail(&state, lang, &pending, Failure::LinkedElsewhere(name)).await;
        }
    };
    issue_code(&state, lang, &pending, user_id, &name).await
}

/// Returns `https://HOST[:PORT]` for the authority the browser used: the URI's
/// authority for HTTP/2, else the Host header. Returns `None` for a missing or
/// malformed value.
fn request_origin(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let authority = match uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => headers.get(header::HOST)?.to_str().ok()?.to_owned(),
    };
    let valid = !authority.is_empty()
        && authority
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte));
    valid.then(|| format!("https://{authority}"))
}
