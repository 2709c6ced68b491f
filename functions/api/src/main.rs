//! The operator API behind API Gateway (HTTP API, JWT authorizer).

use shared::adapters::aws::{self, scheduler::EventBridgeScheduler};
use shared::adapters::clock::SystemClock;
use shared::app::{Operator, OperatorPorts};
use shared::compose::{self, Providers};
use shared::config;
use std::sync::Arc;

mod tenant;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let http = shared::providers::http_client();
    let operator = Operator::new(OperatorPorts {
        table: aws::table_from_env(&sdk)?,
        scheduler: Arc::new(EventBridgeScheduler::new(
            aws_sdk_scheduler::Client::new(&sdk),
            config::required("SCHEDULE_GROUP", "the schedule group for start dates")?,
            config::required("LAUNCHER_ARN", "the launcher function the schedules invoke")?,
            config::required(
                "SCHEDULER_ROLE_ARN",
                "the role EventBridge Scheduler assumes",
            )?,
        )),
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
    });
    let objects = aws::s3::objects_from_env(&sdk)?;
    let services =
        compose::operator_services(operator, &Providers::from_env(&http, &sdk), Some(objects));
    let claims = tenant::Claims {
        tenant: config::optional("TENANT_CLAIM", "tenant_id"),
        admin_scope: config::optional("ADMIN_SCOPE", "campaigns/admin"),
        // No administrators' client configured: nobody is the administrator.
        admin_audience: config::optional("ADMIN_AUDIENCE", ""),
    };
    let console = shared::http::console::ConsoleAuth::Oidc {
        issuer: config::required("CONSOLE_ISSUER", "the OIDC issuer the console signs in at")?,
        client_id: config::required("CONSOLE_CLIENT_ID", "the console's public OIDC client")?,
        scope: config::optional("CONSOLE_SCOPE", "openid"),
    };
    let app = shared::http::operator::full_router(&services)
        .layer(axum::middleware::from_fn(move |req, next| {
            tenant::from_authorizer(claims.clone(), req, next)
        }))
        .merge(shared::http::console::router(console));
    lambda_http::run(app).await
}
