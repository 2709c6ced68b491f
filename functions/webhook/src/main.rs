//! Provider webhooks behind the function's own Lambda function URL (no API Gateway):
//! Meta's verification handshake and signed events, Kaleyra's callbacks, Twilio's signed
//! status callbacks and inbound SMS. Verified bodies
//! go to the inbound queue (the `inbound` function applies them), so the answer goes out
//! after one SQS write.

use shared::adapters::aws::{self, sqs::SqsQueue};
use shared::adapters::secrets::{resolve_patiently, SecretResolver};
use shared::config;
use shared::http::webhook::{KaleyraHookState, QueueSink, TwilioHookState, WebhookState};
use shared::ports::PortError;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let secrets = SecretResolver::new();
    // A blip of the secrets store is tried again; a lasting failure fails the cold start,
    // so the next event starts a fresh instance instead of one missing a route for life.
    let app_secret = resolve_patiently(
        &secrets,
        &config::required("META_APP_SECRET_REF", "reference to the Meta app secret")?,
    )
    .await?;
    let verify_token = resolve_patiently(
        &secrets,
        &config::required(
            "META_VERIFY_TOKEN_REF",
            "reference to the webhook verify token",
        )?,
    )
    .await?;
    let sink = QueueSink::on(Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        config::required("INBOUND_QUEUE_URL", "the inbound webhook queue")?,
    )));
    // Kaleyra callbacks are served when their shared token is configured.
    let kaleyra = match std::env::var("KALEYRA_CALLBACK_TOKEN_REF") {
        // A Kaleyra secret that does not exist must not take the Meta webhook down with
        // it; one the store cannot serve just now fails the cold start (see above).
        Ok(r) if !r.trim().is_empty() => match resolve_patiently(&secrets, &r).await {
            Ok(token) => Some(token),
            Err(e @ PortError::Refused(_)) => {
                tracing::warn!(error = %e, "Kaleyra callback token refused; /webhooks/kaleyra is off");
                None
            }
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    let mut app = shared::http::webhook::router(Arc::new(WebhookState {
        sink: sink.clone(),
        app_secret,
        verify_token,
    }));
    if let Some(token) = kaleyra {
        app = app.merge(shared::http::webhook::kaleyra_router(Arc::new(
            KaleyraHookState {
                sink: sink.clone(),
                token,
            },
        )));
    }
    // Twilio signs with each account's auth token: the route reads the account the URL
    // names and its token (the tenant's secret) before anything is queued.
    app = app.merge(shared::http::webhook::twilio_router(Arc::new(
        TwilioHookState {
            sink,
            table: aws::table_from_env(&sdk)?,
            secrets: Arc::new(secrets),
            clock: Arc::new(shared::adapters::clock::SystemClock),
            public_base: config::public_webhook_url(),
        },
    )));
    lambda_http::run(app).await
}
