//! The send queue on SQS.

use super::backend;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

/// A `Queue` backed by one SQS standard queue.
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// Seconds `receive` long-polls for (0..=20); 0 returns at once.
    wait_secs: i32,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            wait_secs: 0,
        }
    }

    /// Long-polls `receive` for up to `secs` (at most 20) when the queue is empty.
    pub fn with_wait_secs(mut self, secs: u32) -> Self {
        self.wait_secs = secs.min(20) as i32;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        if msgs.iter().any(|m| m.delay_secs > 900) {
            return Err(PortError::Backend("DelaySeconds must be 0..=900".into()));
        }
        for chunk in msgs.chunks(10) {
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
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("SendMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(PortError::Backend(format!(
                    "SendMessageBatch: {} of {} entries failed (first: id {} code {} {})",
                    out.failed().len(),
                    chunk.len(),
                    f.id(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(10) as i32;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(self.wait_secs)
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", e))?;
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
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend("DeleteMessage", e))?;
        Ok(())
    }
}
