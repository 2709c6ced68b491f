//! Configuration read by the composition roots. Every variable is listed in the README;
//! a missing required one stops the function at start with a message naming it.

use thiserror::Error;

#[derive(Debug, Error)]
#[error("environment variable {name} is not set: {what}")]
pub struct MissingVar {
    pub name: &'static str,
    pub what: &'static str,
}

pub fn required(name: &'static str, what: &'static str) -> Result<String, MissingVar> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(MissingVar { name, what })
}

pub fn optional(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `PUBLIC_WEBHOOK_URL`: the public base URL of the webhook routes (in AWS the HTTP API's
/// URL), which providers that sign the URL they call (Twilio) are given and verified
/// against; `None` when unset.
pub fn public_webhook_url() -> Option<String> {
    std::env::var("PUBLIC_WEBHOOK_URL")
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses a numeric variable, falling back to `default` when unset; a malformed value
/// is an error rather than a silent default.
pub fn number<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, MissingVar> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| MissingVar {
            name,
            what: "must be a number",
        }),
        _ => Ok(default),
    }
}

/// JSON logs inside Lambda (CloudWatch parses them), readable lines elsewhere.
/// `RUST_LOG` filters, default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok() {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The ids of the graph API the Meta adapter talks to.
pub fn meta_graph() -> (String, String) {
    (
        optional("META_GRAPH_URL", "https://graph.facebook.com"),
        optional("META_GRAPH_VERSION", "v23.0"),
    )
}
