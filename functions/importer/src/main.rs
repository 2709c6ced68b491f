//! The CSV importer (R2.4): invoked by the import bucket's S3 events (an upload under
//! `imports/<tenant>/<id>.csv`) and by itself to continue a large file. Each invocation
//! works until a minute before its timeout, stops at a checkpoint and invokes this same
//! function asynchronously with `{"action":"continue","tenant":…,"import_id":…}`.

use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws::{self, s3};
use shared::adapters::clock::SystemClock;
use shared::app::import::{ImportService, ImportTuning};
use shared::config;
use std::sync::Arc;
use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let service = Arc::new(ImportService {
        table: aws::table_from_env(&sdk)?,
        objects: s3::objects_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
        tuning: ImportTuning::default(),
    });
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    // Lambda sets the function's own name; continuations invoke it.
    let me = config::required("AWS_LAMBDA_FUNCTION_NAME", "this function's name")?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let service = service.clone();
        let lambda = lambda.clone();
        let me = me.clone();
        async move {
            let left = ev
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let again =
                shared::lambda::importer(&service, ev.payload, &ev.context.request_id, left)
                    .await?;
            for c in again {
                lambda
                    .invoke()
                    .function_name(&me)
                    .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                    .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(
                        &c,
                    )?))
                    .send()
                    .await?;
            }
            Ok::<_, lambda_runtime::Error>(serde_json::json!({ "ok": true }))
        }
    }))
    .await
}
