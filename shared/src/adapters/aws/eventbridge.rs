//! Domain events on an EventBridge bus.

use super::backend;
use crate::domain::events::DomainEvent;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An `EventBus` that puts each domain event on `bus_name` with `source` and the event's
/// detail-type, its JSON as the detail.
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
    source: String,
    metrics: Arc<BusMetrics>,
}

/// PutEvents requests and the events they carried (EventBridge bills custom events, each
/// 64 KB chunk of one as an event). Relaxed atomic increments.
#[derive(Debug, Default)]
pub struct BusMetrics {
    put_events_requests: AtomicU64,
    events: AtomicU64,
}

/// A snapshot of [`BusMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounts {
    pub put_events_requests: u64,
    pub events: u64,
}

impl std::ops::Sub for BusCounts {
    type Output = BusCounts;
    fn sub(self, o: BusCounts) -> BusCounts {
        BusCounts {
            put_events_requests: self
                .put_events_requests
                .saturating_sub(o.put_events_requests),
            events: self.events.saturating_sub(o.events),
        }
    }
}

impl BusMetrics {
    pub fn snapshot(&self) -> BusCounts {
        BusCounts {
            put_events_requests: self.put_events_requests.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>, source: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.into(),
            source: source.into(),
            metrics: Arc::default(),
        }
    }

    /// The requests this adapter sent so far (shared: it keeps counting).
    pub fn metrics(&self) -> Arc<BusMetrics> {
        self.metrics.clone()
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()> {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .map(|ev| {
                    let detail = serde_json::to_string(ev)
                        .map_err(|e| PortError::Backend(format!("event to JSON: {e}")))?;
                    Ok(PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&self.source)
                        .detail_type(ev.detail_type())
                        .detail(detail)
                        .build())
                })
                .collect::<PortResult<Vec<_>>>()?;
            self.metrics
                .put_events_requests
                .fetch_add(1, Ordering::Relaxed);
            self.metrics
                .events
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("PutEvents", e))?;
            if out.failed_entry_count() > 0 {
                let first = out.entries().iter().find(|e| e.error_code().is_some());
                return Err(PortError::Backend(format!(
                    "PutEvents: {} of {} entries failed (first: {} {})",
                    out.failed_entry_count(),
                    chunk.len(),
                    first.and_then(|e| e.error_code()).unwrap_or("?"),
                    first.and_then(|e| e.error_message()).unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}
