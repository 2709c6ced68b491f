//! Resolves credential references (`env:VAR`, `secretsmanager:NAME`, `ssm:NAME`). The AWS
//! ones go through the AWS Parameters and Secrets Lambda Extension on localhost, which
//! caches too; values are kept here for five minutes as well. Values are never logged and
//! never appear in errors.

use crate::ports::{PortError, PortResult, Secrets};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved secret is reused before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_PORT: u16 = 2773;
/// How long one request to the extension may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

pub struct SecretResolver {
    http: reqwest::Client,
    /// Base URL of the extension, e.g. `http://localhost:2773`.
    base: String,
    cache: Mutex<HashMap<String, (Instant, String)>>,
    /// Whether `env:VAR` references read the process environment (local runs only: in a
    /// Lambda the environment holds the function's own AWS credentials).
    env_allowed: bool,
}

/// The extension's address: `localhost` at `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`
/// (default 2773).
fn extension_base() -> String {
    let port = std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(DEFAULT_PORT);
    format!("http://localhost:{port}")
}

impl Default for SecretResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretResolver {
    /// Talks to the extension on `localhost`, at `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`
    /// (default 2773).
    pub fn new() -> Self {
        Self::with_extension_base(extension_base())
    }

    /// Talks to an extension (or a stand-in) at `base`, e.g. `http://127.0.0.1:8080`.
    pub fn with_extension_base(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self::with_client(http, base)
    }

    /// [`Self::new`] on the process's one HTTP client (`compose`).
    pub fn on_client(http: reqwest::Client) -> Self {
        Self::with_client(http, extension_base())
    }

    /// Talks to the extension at `base` with `http` (each request has its own timeout).
    pub fn with_client(http: reqwest::Client, base: impl Into<String>) -> Self {
        SecretResolver {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            cache: Mutex::new(HashMap::new()),
            env_allowed: false,
        }
    }

    /// Lets `env:VAR` references read the process environment: for local runs, never in
    /// a Lambda.
    pub fn allowing_env(mut self) -> Self {
        self.env_allowed = true;
        self
    }

    fn cached(&self, reference: &str) -> Option<String> {
        let cache = self.cache.lock().unwrap();
        cache
            .get(reference)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    /// GETs `path` with `query` from the extension and returns the JSON body.
    async fn fetch(&self, what: &str, path: &str, query: &[(&str, &str)]) -> PortResult<Value> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| PortError::Backend(format!("secrets extension URL: {e}")))?;
        url.query_pairs_mut().extend_pairs(query);
        let mut req = self.http.get(url).timeout(REQUEST_TIMEOUT);
        if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
            req = req.header(TOKEN_HEADER, token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("{what}: extension unreachable: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            // The body may echo the request but never a value; still, keep it out. A 4xx
            // is the store's answer about this secret (missing, not readable): lasting. A
            // 5xx or a throttle is the store's trouble: worth another try.
            let message = format!("{what}: extension answered {status}");
            let lasting = status.is_client_error() && status.as_u16() != 429;
            return Err(if lasting {
                PortError::Refused(message)
            } else {
                PortError::Backend(message)
            });
        }
        resp.json::<Value>()
            .await
            .map_err(|_| PortError::Backend(format!("{what}: extension answered non-JSON")))
    }

    async fn fetch_reference(&self, reference: &str) -> PortResult<String> {
        if let Some(name) = reference.strip_prefix("secretsmanager:") {
            let what = format!("secret {name}");
            let body = self
                .fetch(&what, "/secretsmanager/get", &[("secretId", name)])
                .await?;
            body.get("SecretString")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| PortError::Refused(format!("{what}: no SecretString")))
        } else if let Some(name) = reference.strip_prefix("ssm:") {
            let what = format!("parameter {name}");
            let body = self
                .fetch(
                    &what,
                    "/systemsmanager/parameters/get",
                    &[("name", name), ("withDecryption", "true")],
                )
                .await?;
            body.pointer("/Parameter/Value")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| PortError::Refused(format!("{what}: no Parameter.Value")))
        } else {
            // Name only the scheme: a mistyped reference may be a raw value.
            let scheme = reference.split_once(':').map_or("", |(s, _)| s);
            Err(PortError::Refused(format!(
                "unsupported secret reference scheme {scheme:?} (expected env:, secretsmanager: or ssm:)"
            )))
        }
    }
}

/// Resolves `reference`, trying again (three attempts, 100 ms then 400 ms apart) while
/// the store answers with a failure that may pass ([`PortError::Backend`]); a refusal is
/// returned at once. For cold starts, where one blip must not shape a whole instance.
pub async fn resolve_patiently(secrets: &dyn Secrets, reference: &str) -> PortResult<String> {
    let mut wait = std::time::Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match secrets.resolve(reference).await {
            Err(PortError::Backend(e)) if attempt < 3 => {
                tracing::warn!(error = %e, attempt, "secret not read; trying again");
                tokio::time::sleep(wait).await;
                wait *= 4;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Secrets for SecretResolver {
    async fn resolve(&self, reference: &str) -> PortResult<String> {
        if let Some(var) = reference.strip_prefix("env:") {
            if !self.env_allowed {
                return Err(PortError::Refused(
                    "env: secret references are for local runs only".into(),
                ));
            }
            return std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    PortError::Refused(format!("environment variable {var} is not set"))
                }
                std::env::VarError::NotUnicode(_) => {
                    PortError::Refused(format!("environment variable {var} is not valid UTF-8"))
                }
            });
        }
        if let Some(v) = self.cached(reference) {
            return Ok(v);
        }
        let value = self.fetch_reference(reference).await?;
        tracing::debug!(reference, "secret resolved");
        self.cache
            .lock()
            .unwrap()
            .insert(reference.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Hits {
        secrets: AtomicUsize,
        params: AtomicUsize,
    }

    async fn secret(
        State(hits): State<Arc<Hits>>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Result<Json<Value>, StatusCode> {
        hits.secrets.fetch_add(1, Ordering::SeqCst);
        match q.get("secretId").map(String::as_str) {
            Some("meta/token") => Ok(Json(serde_json::json!({
                "Name": "meta/token",
                "SecretString": "s3cr3t-value"
            }))),
            _ => Err(StatusCode::BAD_REQUEST),
        }
    }

    async fn parameter(
        State(hits): State<Arc<Hits>>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> Result<Json<Value>, StatusCode> {
        hits.params.fetch_add(1, Ordering::SeqCst);
        if q.get("withDecryption").map(String::as_str) != Some("true") {
            return Err(StatusCode::BAD_REQUEST);
        }
        // The token header is sent whenever AWS_SESSION_TOKEN is set.
        if let Ok(t) = std::env::var("AWS_SESSION_TOKEN") {
            if headers.get(TOKEN_HEADER).and_then(|h| h.to_str().ok()) != Some(t.as_str()) {
                return Err(StatusCode::UNAUTHORIZED);
            }
        }
        match q.get("name").map(String::as_str) {
            Some("/campaigns/app-secret") => Ok(Json(serde_json::json!({
                "Parameter": { "Name": "/campaigns/app-secret", "Value": "p@ram&value", "Type": "SecureString" }
            }))),
            _ => Err(StatusCode::BAD_REQUEST),
        }
    }

    async fn extension() -> (String, Arc<Hits>) {
        let hits = Arc::new(Hits::default());
        let app = Router::new()
            .route("/secretsmanager/get", get(secret))
            .route("/systemsmanager/parameters/get", get(parameter))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn env_reference_is_refused_unless_allowed() {
        // A tenant pointing its account at `env:AWS_SESSION_TOKEN` must not have the
        // Lambda's credentials sent to Meta as a bearer token.
        std::env::set_var("SECRET_RESOLVER_TEST_REFUSED", "lambda-credential");
        let r = SecretResolver::with_extension_base("http://127.0.0.1:9");
        let err = r
            .resolve("env:SECRET_RESOLVER_TEST_REFUSED")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PortError::Refused(m) if m.contains("env:")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn env_reference_reads_the_variable() {
        std::env::set_var("SECRET_RESOLVER_TEST_SET", "from-env");
        let r = SecretResolver::with_extension_base("http://127.0.0.1:9").allowing_env();
        assert_eq!(
            r.resolve("env:SECRET_RESOLVER_TEST_SET").await.unwrap(),
            "from-env"
        );
    }

    #[tokio::test]
    async fn env_reference_unset_names_the_variable() {
        let r = SecretResolver::with_extension_base("http://127.0.0.1:9").allowing_env();
        let err = r
            .resolve("env:SECRET_RESOLVER_TEST_UNSET")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PortError::Refused(m) if m.contains("SECRET_RESOLVER_TEST_UNSET")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn secretsmanager_via_extension_is_cached() {
        let (base, hits) = extension().await;
        let r = SecretResolver::with_extension_base(base);
        assert_eq!(
            r.resolve("secretsmanager:meta/token").await.unwrap(),
            "s3cr3t-value"
        );
        assert_eq!(
            r.resolve("secretsmanager:meta/token").await.unwrap(),
            "s3cr3t-value"
        );
        assert_eq!(
            hits.secrets.load(Ordering::SeqCst),
            1,
            "second resolve comes from the cache"
        );
    }

    struct Flaky(std::sync::atomic::AtomicUsize, PortError);

    #[async_trait]
    impl Secrets for Flaky {
        async fn resolve(&self, _reference: &str) -> PortResult<String> {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(self.1.clone());
            }
            Ok("value".into())
        }
    }

    /// Finding 14: a secrets blip at a cold start must not shape the instance's life.
    #[tokio::test]
    async fn cold_start_reads_try_again_after_a_passing_failure_only() {
        let flaky = Flaky(Default::default(), PortError::Backend("503".into()));
        assert_eq!(
            resolve_patiently(&flaky, "secretsmanager:x").await.unwrap(),
            "value"
        );
        assert_eq!(flaky.0.load(Ordering::SeqCst), 3);
        let gone = Flaky(Default::default(), PortError::Refused("400".into()));
        assert!(resolve_patiently(&gone, "secretsmanager:x").await.is_err());
        assert_eq!(gone.0.load(Ordering::SeqCst), 1, "a refusal is not retried");
    }

    #[tokio::test]
    async fn ssm_via_extension_with_decryption() {
        let (base, hits) = extension().await;
        let r = SecretResolver::with_extension_base(base);
        assert_eq!(
            r.resolve("ssm:/campaigns/app-secret").await.unwrap(),
            "p@ram&value"
        );
        assert_eq!(hits.params.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn extension_errors_do_not_leak_and_are_not_cached() {
        let (base, hits) = extension().await;
        let r = SecretResolver::with_extension_base(base);
        let err = r.resolve("secretsmanager:missing").await.unwrap_err();
        assert!(
            matches!(&err, PortError::Refused(m) if m.contains("missing") && m.contains("400"))
        );
        let _ = r.resolve("secretsmanager:missing").await.unwrap_err();
        assert_eq!(hits.secrets.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unknown_scheme_is_an_error() {
        let r = SecretResolver::with_extension_base("http://127.0.0.1:9");
        assert!(r.resolve("vault:x").await.is_err());
        assert!(r.resolve("plain-value").await.is_err());
    }
}
