//! The send queue on SQS.

use super::backend;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use futures::{StreamExt, TryStreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// SendMessageBatch requests one `send` has in flight at a time.
const SEND_CONCURRENCY: usize = 16;

/// A `Queue` backed by one SQS standard queue.
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// Seconds `receive` long-polls for (0..=20); 0 returns at once.
    wait_secs: i32,
    metrics: Arc<QueueMetrics>,
}

/// The requests a [`SqsQueue`] sent (SQS bills each request, up to 64 KB of payload,
/// whether it carries one message, ten or none). Relaxed atomic increments.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    send_batch_requests: AtomicU64,
    messages_sent: AtomicU64,
    receive_requests: AtomicU64,
    empty_receives: AtomicU64,
    messages_received: AtomicU64,
    delete_requests: AtomicU64,
    delete_batch_requests: AtomicU64,
    messages_deleted: AtomicU64,
}

/// A snapshot of [`QueueMetrics`]; `later - earlier` is what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// SendMessageBatch requests (up to ten messages each).
    pub send_batch_requests: u64,
    pub messages_sent: u64,
    /// ReceiveMessage requests, empty ones included.
    pub receive_requests: u64,
    pub empty_receives: u64,
    pub messages_received: u64,
    /// DeleteMessage requests (one message each).
    pub delete_requests: u64,
    /// DeleteMessageBatch requests (up to ten messages each).
    pub delete_batch_requests: u64,
    pub messages_deleted: u64,
}

impl QueueCounts {
    /// Every billed request.
    pub fn requests(&self) -> u64 {
        self.send_batch_requests
            + self.receive_requests
            + self.delete_requests
            + self.delete_batch_requests
    }
}

impl std::ops::Sub for QueueCounts {
    type Output = QueueCounts;
    fn sub(self, o: QueueCounts) -> QueueCounts {
        QueueCounts {
            send_batch_requests: self
                .send_batch_requests
                .saturating_sub(o.send_batch_requests),
            messages_sent: self.messages_sent.saturating_sub(o.messages_sent),
            receive_requests: self.receive_requests.saturating_sub(o.receive_requests),
            empty_receives: self.empty_receives.saturating_sub(o.empty_receives),
            messages_received: self.messages_received.saturating_sub(o.messages_received),
            delete_requests: self.delete_requests.saturating_sub(o.delete_requests),
            delete_batch_requests: self
                .delete_batch_requests
                .saturating_sub(o.delete_batch_requests),
            messages_deleted: self.messages_deleted.saturating_sub(o.messages_deleted),
        }
    }
}

impl std::ops::Add for QueueCounts {
    type Output = QueueCounts;
    fn add(self, o: QueueCounts) -> QueueCounts {
        QueueCounts {
            send_batch_requests: self.send_batch_requests + o.send_batch_requests,
            messages_sent: self.messages_sent + o.messages_sent,
            receive_requests: self.receive_requests + o.receive_requests,
            empty_receives: self.empty_receives + o.empty_receives,
            messages_received: self.messages_received + o.messages_received,
            delete_requests: self.delete_requests + o.delete_requests,
            delete_batch_requests: self.delete_batch_requests + o.delete_batch_requests,
            messages_deleted: self.messages_deleted + o.messages_deleted,
        }
    }
}

impl QueueMetrics {
    pub fn snapshot(&self) -> QueueCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QueueCounts {
            send_batch_requests: n(&self.send_batch_requests),
            messages_sent: n(&self.messages_sent),
            receive_requests: n(&self.receive_requests),
            empty_receives: n(&self.empty_receives),
            messages_received: n(&self.messages_received),
            delete_requests: n(&self.delete_requests),
            delete_batch_requests: n(&self.delete_batch_requests),
            messages_deleted: n(&self.messages_deleted),
        }
    }
}

fn bump(a: &AtomicU64, by: u64) {
    a.fetch_add(by, Ordering::Relaxed);
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            wait_secs: 0,
            metrics: Arc::default(),
        }
    }

    /// The requests this adapter sent so far (shared: it keeps counting).
    pub fn metrics(&self) -> Arc<QueueMetrics> {
        self.metrics.clone()
    }

    /// Deletes received messages ten per DeleteMessageBatch request, as Lambda's event
    /// source mapping does after a batch. Receipts SQS reports as failed are an error.
    pub async fn delete_batch(&self, receipts: &[String]) -> PortResult<()> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .map_err(|e| backend("DeleteMessageBatch entry", e))
                })
                .collect::<PortResult<Vec<_>>>()?;
            bump(&self.metrics.delete_batch_requests, 1);
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("DeleteMessageBatch", e))?;
            bump(
                &self.metrics.messages_deleted,
                out.successful().len() as u64,
            );
            batch_failures("DeleteMessageBatch", out.failed(), chunk.len())?;
        }
        Ok(())
    }

    /// Long-polls `receive` for up to `secs` (at most 20) when the queue is empty.
    pub fn with_wait_secs(mut self, secs: u32) -> Self {
        self.wait_secs = secs.min(20) as i32;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// One SendMessageBatch of at most ten messages.
    async fn send_chunk(&self, chunk: &[OutMessage]) -> PortResult<()> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .delay_seconds(m.delay_secs as i32)
                    .build()
                    .map_err(|e| backend("SendMessageBatch entry", e))
            })
            .collect::<PortResult<Vec<_>>>()?;
        bump(&self.metrics.send_batch_requests, 1);
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| backend("SendMessageBatch", e))?;
        bump(&self.metrics.messages_sent, out.successful().len() as u64);
        batch_failures("SendMessageBatch", out.failed(), chunk.len())
    }
}

/// An error naming the first entry SQS reported as failed in a batch of `total`.
fn batch_failures(call: &str, failed: &[BatchResultErrorEntry], total: usize) -> PortResult<()> {
    match failed.first() {
        None => Ok(()),
        Some(f) => Err(PortError::Backend(format!(
            "{call}: {} of {total} entries failed (first: id {} code {} {})",
            failed.len(),
            f.id(),
            f.code(),
            f.message().unwrap_or_default()
        ))),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        if msgs.iter().any(|m| m.delay_secs > 900) {
            return Err(PortError::Backend("DelaySeconds must be 0..=900".into()));
        }
        // A launcher tick at 1,000 messages/s is 6,000 batches: one after another they
        // take about a minute, past the function's timeout. Several at a time they take
        // seconds; a failure stops the rest (the tick's cursor is not saved, so the next
        // tick enqueues again and the sender's claim keeps anything from going out twice).
        let batches: Vec<_> = msgs.chunks(10).map(|c| self.send_chunk(c)).collect();
        futures::stream::iter(batches)
            .buffer_unordered(SEND_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(10) as i32;
        bump(&self.metrics.receive_requests, 1);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(self.wait_secs)
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", e))?;
        let n = out.messages().len() as u64;
        bump(&self.metrics.messages_received, n);
        if n == 0 {
            bump(&self.metrics.empty_receives, 1);
        }
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(Received {
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> PortResult<()> {
        bump(&self.metrics.delete_requests, 1);
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend("DeleteMessage", e))?;
        bump(&self.metrics.messages_deleted, 1);
        Ok(())
    }
}
