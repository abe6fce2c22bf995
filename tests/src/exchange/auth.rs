//! Microsoft identity platform, client-credentials flow only
//! (`POST /{tenant}/oauth2/v2.0/token`, v2-oauth2-client-creds-grant-flow), and the
//! bearer check every Graph and EWS request goes through.
//!
//! Invariants: a token is valid for one audience (Graph or EWS, from the `.default`
//! scope asked for) until `token_lifetime` has passed or `Fault::ExpireTokens` was
//! injected; its `roles` claim is the config's roles for that audience. Tokens look
//! like JWTs (unsigned) so clients that peek at `exp` or `roles` can.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{SecondsFormat, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::time::Instant;

use super::state::State;

/// Who a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Audience {
    Graph,
    Ews,
}

impl Audience {
    fn resource(self) -> &'static str {
        match self {
            Self::Graph => "https://graph.microsoft.com",
            Self::Ews => "https://outlook.office365.com",
        }
    }
}

/// An issued token.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) expires_at: Instant,
    pub(crate) audience: Audience,
    pub(crate) roles: Vec<String>,
}

/// Why a bearer token was refused; the text is what Graph puts in its 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Invalid,
    WrongAudience,
    Expired,
}

impl AuthFailure {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Missing => "Access token is empty.",
            Self::Invalid => "IDX14100: JWT is not well formed.",
            Self::WrongAudience => "Access token validation failure. Invalid audience.",
            Self::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

/// Issues a token for `audience` and records it.
pub(crate) fn issue(state: &State, audience: Audience) -> String {
    let config = &state.config;
    let roles = match audience {
        Audience::Graph => config.graph_roles.clone(),
        Audience::Ews => config.ews_roles.clone(),
    };
    let now = Utc::now().timestamp();
    let lifetime = i64::try_from(config.token_lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    let nonce: u64 = rand::random();
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#);
    let claims = json!({
        "aud": audience.resource(),
        "iss": format!("https://sts.windows.net/{}/", config.tenant),
        "iat": now, "nbf": now, "exp": now + lifetime,
        "appid": config.client_id, "tid": config.tenant,
        "roles": roles, "uti": format!("{nonce:016x}"),
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(nonce.to_be_bytes());
    let token = format!("{header}.{payload}.{signature}");
    let expires_at = Instant::now() + config.token_lifetime;
    state.with(|inner| {
        inner.tokens.insert(
            token.clone(),
            Token {
                expires_at,
                audience,
                roles,
            },
        )
    });
    token
}

/// Checks `Authorization: Bearer …` and returns the token's roles.
pub(crate) fn check(
    state: &State,
    headers: &HeaderMap,
    audience: Audience,
) -> Result<Vec<String>, AuthFailure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthFailure::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthFailure::Missing);
    }
    let token = state
        .with(|inner| inner.tokens.get(token.trim()).cloned())
        .ok_or(AuthFailure::Invalid)?;
    if token.audience != audience {
        return Err(AuthFailure::WrongAudience);
    }
    if Instant::now() >= token.expires_at {
        return Err(AuthFailure::Expired);
    }
    Ok(token.roles)
}

/// Makes every issued token expired.
pub(crate) fn expire_all(state: &State) {
    let now = Instant::now();
    state.with(|inner| inner.tokens.values_mut().for_each(|t| t.expires_at = now));
}

/// An AAD OAuth error (`error`, `error_description` with an AADSTS code, …).
fn oauth_error(status: StatusCode, error: &str, aadsts: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{aadsts}: {description}"),
        "error_codes": [aadsts],
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "trace_id": format!("{:032x}", rand::random::<u128>()),
        "correlation_id": format!("{:032x}", rand::random::<u128>()),
    });
    (status, axum::Json(body)).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token_endpoint(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let config = &state.config;
    if !tenant.eq_ignore_ascii_case(&config.tenant) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    for name in ["grant_type", "client_id", "scope"] {
        if form.get(name).is_none_or(String::is_empty) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            );
        }
    }
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != config.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory.",
                field("client_id")
            ),
        );
    }
    if field("client_secret") != config.client_secret.expose_secret() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let audience = match field("scope") {
        "https://graph.microsoft.com/.default" => Audience::Graph,
        "https://outlook.office365.com/.default" => Audience::Ews,
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {other} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
    };
    let token = issue(&state, audience);
    let secs = config.token_lifetime.as_secs();
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": token,
    }))
    .into_response()
}
