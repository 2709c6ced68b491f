//! Lambda's SQS event source mapping, played by the bench: a poller gathers up to
//! `BatchSize` records, waiting at most `MaximumBatchingWindowInSeconds` for the batch to
//! fill, invokes the function once with them and deletes the records it did not report
//! as failed (DeleteMessageBatch, ten at a time). The batch settings are read from
//! `infra/template.yaml`, so the bench measures what would be deployed.
//!
//! Every invocation is timed in-process: the wall time of the handler, rounded up to the
//! millisecond as Lambda bills it, stands in for its billed duration.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::adapters::aws::SqsQueue;
use shared::lambda::sqs_event;
use shared::ports::{Queue, Received};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One function's SQS trigger settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    pub batch_size: usize,
    pub window: Duration,
}

/// The `SQS` event of `function` in `template` (the SAM template's text): its
/// `BatchSize` and `MaximumBatchingWindowInSeconds`.
pub fn mapping_from_template(template: &str, function: &str) -> Option<Mapping> {
    let header = format!("  {function}:");
    let start = template.lines().position(|l| l == header)?;
    let mut batch = None;
    let mut window = None;
    for line in template.lines().skip(start + 1) {
        // The next resource (two-space indent) ends this one.
        if line.starts_with("  ") && !line.starts_with("   ") && !line.trim().is_empty() {
            break;
        }
        let t = line.trim();
        if let Some(v) = t.strip_prefix("BatchSize:") {
            batch = resolve(template, v.trim()).parse().ok();
        }
        if let Some(v) = t.strip_prefix("MaximumBatchingWindowInSeconds:") {
            window = v.trim().parse::<u64>().ok();
        }
    }
    Some(Mapping {
        batch_size: batch?,
        // Lambda's default window is 0 (batch sizes up to 10 only).
        window: Duration::from_secs(window.unwrap_or(0)),
    })
}

/// A template value: `!Ref P` is the parameter's `Default` (what a deploy without
/// overrides gets), anything else itself.
fn resolve<'a>(template: &'a str, value: &'a str) -> &'a str {
    match value.strip_prefix("!Ref ") {
        Some(param) => parameter_default(template, param.trim()).unwrap_or(value),
        None => value,
    }
}

/// The `Default` of the template's parameter `name`.
pub fn parameter_default<'a>(template: &'a str, name: &str) -> Option<&'a str> {
    let header = format!("  {name}:");
    template
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .find_map(|l| l.trim().strip_prefix("Default:"))
        .map(str::trim)
}

/// Invocations of one function and their billed milliseconds.
#[derive(Debug, Default)]
pub struct Invocations {
    count: AtomicU64,
    billed_ms: AtomicU64,
    records: AtomicU64,
    /// Per-invocation billed milliseconds, for percentiles.
    samples: Mutex<Vec<u64>>,
}

/// A snapshot of [`Invocations`].
#[derive(Debug, Clone, Default)]
pub struct InvocationStats {
    pub count: u64,
    pub billed_ms: u64,
    /// Records (SQS messages, webhook POSTs) the invocations handled.
    pub records: u64,
    pub samples: Vec<u64>,
}

impl InvocationStats {
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.billed_ms as f64 / self.count as f64
        }
    }

    pub fn p50_ms(&self) -> u64 {
        let mut s = self.samples.clone();
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or(0)
    }
}

impl Invocations {
    /// Records one invocation of `elapsed` handling `records` records.
    pub fn record(&self, elapsed: Duration, records: usize) {
        let ms = (elapsed.as_micros() as u64).div_ceil(1000).max(1);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.billed_ms.fetch_add(ms, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.samples.lock().unwrap().push(ms);
    }

    /// Runs one invocation and records it.
    pub async fn time<T>(&self, records: usize, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f.await;
        self.record(started.elapsed(), records);
        out
    }

    pub fn snapshot(&self) -> InvocationStats {
        InvocationStats {
            count: self.count.load(Ordering::Relaxed),
            billed_ms: self.billed_ms.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            samples: self.samples.lock().unwrap().clone(),
        }
    }
}

/// How long the poller waits after an empty receive. Lambda long-polls (up to 20 s per
/// request); the emulator serves a long poll by holding the queue, which would stall the
/// sends of the other functions, so the bench polls briefly and sleeps instead. Empty
/// receives are reported apart: they are an idle cost of the queue, not of the messages.
const IDLE_SLEEP: Duration = Duration::from_millis(100);

/// Polls `queue` and hands batches to `handler` until `stop` is set and the queue gave
/// nothing back.
pub async fn poll<F, Fut>(
    queue: Arc<SqsQueue>,
    mapping: Mapping,
    invocations: Arc<Invocations>,
    stop: Arc<AtomicBool>,
    handler: F,
) -> anyhow::Result<()>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        let first = queue.receive(10.min(mapping.batch_size) as u32).await?;
        if first.is_empty() {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            tokio::time::sleep(IDLE_SLEEP).await;
            continue;
        }
        let mut batch: Vec<Received> = first;
        let deadline = Instant::now() + mapping.window;
        while batch.len() < mapping.batch_size && Instant::now() < deadline {
            let want = (mapping.batch_size - batch.len()).min(10) as u32;
            let got = queue.receive(want).await?;
            if got.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(IDLE_SLEEP)).await;
            } else {
                batch.extend(got);
            }
        }
        let resp = invocations
            .time(batch.len(), handler(sqs_event::event_from(&batch)))
            .await;
        queue
            .delete_batch(&sqs_event::handled_receipts(&batch, &resp))
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_batch_settings_of_a_function() {
        let t = "Resources:\n  SenderFunction:\n    Type: X\n    Properties:\n      Events:\n        Q:\n          Properties:\n            BatchSize: 100\n            MaximumBatchingWindowInSeconds: 2\n  InboundFunction:\n    Properties:\n            BatchSize: 10\n";
        assert_eq!(
            mapping_from_template(t, "SenderFunction"),
            Some(Mapping {
                batch_size: 100,
                window: Duration::from_secs(2)
            })
        );
        assert_eq!(
            mapping_from_template(t, "InboundFunction"),
            Some(Mapping {
                batch_size: 10,
                window: Duration::ZERO
            })
        );
        assert_eq!(mapping_from_template(t, "Nope"), None);
        let with_ref = "Parameters:\n  Batch:\n    Type: Number\n    Default: 20\nResources:\n  SenderFunction:\n    Properties:\n            BatchSize: !Ref Batch\n            MaximumBatchingWindowInSeconds: 1\n";
        assert_eq!(
            mapping_from_template(with_ref, "SenderFunction").map(|m| m.batch_size),
            Some(20),
            "a parameter's default"
        );
    }

    #[test]
    fn the_deployed_template_names_both_mappings() {
        let template = include_str!("../../../../infra/template.yaml");
        for f in ["SenderFunction", "InboundFunction"] {
            let m = mapping_from_template(template, f).expect(f);
            assert!(m.batch_size >= 1 && m.batch_size <= 10_000, "{f}: {m:?}");
            // Lambda requires a window of at least 1 s above 10 records.
            assert!(
                m.batch_size <= 10 || m.window >= Duration::from_secs(1),
                "{f}: {m:?}"
            );
        }
    }

    #[test]
    fn billed_milliseconds_round_up() {
        let i = Invocations::default();
        i.record(Duration::from_micros(1_200), 3);
        i.record(Duration::from_micros(10), 1);
        let s = i.snapshot();
        assert_eq!((s.count, s.billed_ms, s.records), (2, 3, 4));
    }
}
