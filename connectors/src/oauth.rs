//! OAuth 2.0 bearer tokens for SASL XOAUTH2: read from a file, or obtained with the
//! client credentials grant (RFC 6749 §4.4) and cached.
//!
//! Invariants:
//! - A [`TokenProvider`] hands out a token that it believes valid: a file's current
//!   content (re-read on every fetch, which is cheap and picks up an external refresher's
//!   new token at once), or a cached endpoint token until five minutes before it expires.
//! - At most one request to the token endpoint is in flight per provider: callers queue
//!   on a tokio mutex and the ones behind the first reuse the token it got.
//! - Tokens and the client secret are [`SecretString`]s; they are in no error and no log.
//! - One provider per token source per process ([`provider_for`]), so every connection
//!   of a server shares the cache.

use crate::config::resolve_secret;
use mailhaul_proto::manifest::{SecretRef, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token is renewed this long before the endpoint says it expires, so a connection
/// never starts with a token that dies during login.
const EARLY_RENEWAL: Duration = Duration::from_secs(5 * 60);

/// Limit for one token request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no token could be had. Messages name the file or endpoint, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The token file could not be read.
    #[error("cannot read the oauth token file {}", path.display())]
    ReadFile {
        /// `oauth_token_file`, resolved.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("the oauth token file {} is empty; write the bearer token into it", path.display())]
    EmptyFile {
        /// `oauth_token_file`, resolved.
        path: PathBuf,
    },
    /// `oauth_client_secret` could not be resolved.
    #[error("oauth_client_secret")]
    Secret(#[source] crate::config::ConfigError),
    /// The token endpoint could not be reached or did not answer in time.
    #[error("cannot reach the oauth token endpoint {url}")]
    Unreachable {
        /// `oauth_token_url`.
        url: String,
        /// The HTTP client's failure.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint refused the request (RFC 6749 §5.2 error response).
    #[error(
        "the oauth token endpoint {url} refused client {client_id:?} (http {status}): \
         {reason}; check oauth_client_id, oauth_client_secret and oauth_scope"
    )]
    Refused {
        /// `oauth_token_url`.
        url: String,
        /// `oauth_client_id`.
        client_id: String,
        /// The HTTP status.
        status: u16,
        /// `error: error_description` from the body, or the body's start.
        reason: String,
    },
    /// The endpoint answered 2xx but not with a usable token.
    #[error("the oauth token endpoint {url} answered without a usable token: {detail}")]
    BadResponse {
        /// `oauth_token_url`.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

impl OAuthError {
    /// The endpoint's URL when trying again later may help (network trouble, endpoint
    /// overloaded); `None` for problems the admin must fix.
    pub fn transient_endpoint(&self) -> Option<&str> {
        match self {
            OAuthError::Unreachable { url, .. } => Some(url),
            OAuthError::Refused { url, status, .. } if *status == 429 || *status >= 500 => {
                Some(url)
            }
            _ => None,
        }
    }
}

/// A bearer token source with its cache. Cheap to share behind an `Arc`.
pub struct TokenProvider {
    source: TokenSource,
    http: reqwest::Client,
    /// The cached endpoint token and when to stop using it; also serialises refreshes.
    cached: Mutex<Option<(SecretString, Instant)>>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    /// A provider for `source` with an empty cache.
    pub fn new(source: TokenSource) -> Self {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            // Only fails when the TLS backend cannot initialise, a broken installation.
            .unwrap_or_else(|_| reqwest::Client::new());
        TokenProvider {
            source,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A token to log in with.
    ///
    /// # Errors
    /// [`OAuthError`]: the file cannot be read or is empty, the secret cannot be
    /// resolved, the endpoint cannot be reached or refuses.
    pub async fn token(&self) -> Result<SecretString, OAuthError> {
        match &self.source {
            TokenSource::File(path) => read_token_file(path).await,
            TokenSource::ClientCredentials {
                url,
                client_id,
                client_secret,
                scope,
            } => {
                let mut cached = self.cached.lock().await;
                if let Some((token, until)) = cached.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(token.clone());
                }
                let (token, lifetime) = self.request(url, client_id, client_secret, scope).await?;
                let until = Instant::now() + lifetime.saturating_sub(EARLY_RENEWAL);
                *cached = Some((token.clone(), until));
                Ok(token)
            }
        }
    }

    /// Tells the provider that the server refused `token`: a cached copy of it is dropped
    /// so the next [`TokenProvider::token`] fetches a new one. A file is re-read anyway.
    pub async fn refused(&self, token: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|(t, _)| t.expose_secret() == token.expose_secret())
        {
            *cached = None;
        }
    }

    /// One client credentials request: the token and how long it lives.
    async fn request(
        &self,
        url: &str,
        client_id: &str,
        client_secret: &SecretRef,
        scope: &str,
    ) -> Result<(SecretString, Duration), OAuthError> {
        let secret = resolve_secret(client_secret).map_err(OAuthError::Secret)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose_secret()),
            ("scope", scope),
        ];
        let unreachable = |source| OAuthError::Unreachable {
            url: url.to_owned(),
            source,
        };
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(OAuthError::Refused {
                url: url.to_owned(),
                client_id: client_id.to_owned(),
                status: status.as_u16(),
                reason: refusal_reason(&body),
            });
        }
        parse_token(&body).map_err(|detail| OAuthError::BadResponse {
            url: url.to_owned(),
            detail,
        })
    }
}

/// The token in a file, surrounding whitespace (a trailing newline) removed.
async fn read_token_file(path: &PathBuf) -> Result<SecretString, OAuthError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| OAuthError::ReadFile {
            path: path.clone(),
            source,
        })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(OAuthError::EmptyFile { path: path.clone() });
    }
    Ok(SecretString::from(token.to_owned()))
}

/// `access_token` and `expires_in` of a successful token response (RFC 6749 §5.1).
/// Without `expires_in` the token is used for an hour (Entra ID's usual lifetime).
fn parse_token(body: &str) -> Result<(SecretString, Duration), String> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    if let Some(kind) = json.get("token_type").and_then(|t| t.as_str())
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!("token_type is {kind:?}, not \"Bearer\""));
    }
    // Some endpoints send expires_in as a string.
    let seconds = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(3600);
    Ok((
        SecretString::from(token.to_owned()),
        Duration::from_secs(seconds),
    ))
}

/// `error: error_description` of an RFC 6749 §5.2 error body, else the body's start.
fn refusal_reason(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        match (field("error"), field("error_description")) {
            (Some(e), Some(d)) => return format!("{e}: {}", first_line(&d)),
            (Some(e), None) => return e,
            _ => {}
        }
    }
    let text = first_line(body.trim());
    if text.is_empty() {
        "no details in the response".to_owned()
    } else {
        text.chars().take(200).collect()
    }
}

/// Entra ID descriptions carry trace ids and timestamps on later lines.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// The process-wide provider for `source`, created on first use, so all connections to
/// a server share one cache and one refresh.
pub fn provider_for(source: &TokenSource) -> Arc<TokenProvider> {
    static PROVIDERS: LazyLock<StdMutex<HashMap<String, Arc<TokenProvider>>>> =
        LazyLock::new(Default::default);
    let key = match source {
        TokenSource::File(path) => format!("file {}", path.display()),
        TokenSource::ClientCredentials {
            url,
            client_id,
            client_secret,
            scope,
        } => format!("client {url} {client_id} {scope} {client_secret}"),
    };
    let mut map = PROVIDERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(key)
        .or_insert_with(|| Arc::new(TokenProvider::new(source.clone())))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let (t, life) =
            parse_token(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#)
                .expect("valid");
        assert_eq!((t.expose_secret(), life.as_secs()), ("eyJ0", 3599));
        let (_, life) = parse_token(r#"{"access_token":"x","expires_in":"60"}"#).expect("valid");
        assert_eq!(life.as_secs(), 60);
        for bad in [
            "not json",
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":"x","token_type":"mac"}"#,
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_are_readable() {
        let aad = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nTimestamp: x"}"#;
        assert_eq!(
            refusal_reason(aad),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            refusal_reason(r#"{"error":"invalid_scope"}"#),
            "invalid_scope"
        );
        assert_eq!(
            refusal_reason("<html>Bad Request</html>\nmore"),
            "<html>Bad Request</html>"
        );
        assert_eq!(refusal_reason(""), "no details in the response");
    }

    #[tokio::test]
    async fn files_are_read_on_every_fetch() {
        let dir = tempfile_dir();
        let path = dir.join("token");
        let p = TokenProvider::new(TokenSource::File(path.clone()));
        let err = p.token().await.expect_err("no file yet");
        assert!(matches!(err, OAuthError::ReadFile { .. }), "{err:?}");
        std::fs::write(&path, "one\n").expect("write");
        assert_eq!(p.token().await.expect("token").expose_secret(), "one");
        std::fs::write(&path, "two").expect("write");
        assert_eq!(p.token().await.expect("token").expose_secret(), "two");
        std::fs::write(&path, " \n").expect("write");
        let err = p.token().await.expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert_eq!(err.transient_endpoint(), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mailhaul-oauth-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
