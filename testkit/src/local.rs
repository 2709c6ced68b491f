//! Every function in one process: the local runner and the end-to-end tests play the
//! parts AWS plays in production (the event source mappings that feed the sender and the
//! inbound worker, the schedules that fire the launcher and the sweeper).

use crate::memory::{MemoryQueue, MemoryScheduler};
use shared::app::dispatch::Dispatcher;
use shared::app::inbox::Inbox;
use shared::app::send::SendService;
use shared::app::sweep::SweepService;
use shared::app::{Operator, OperatorPorts};
use shared::domain::Time;
use shared::lambda::{self, sqs_event};
use shared::ports::{Clock, EventBus, MessagingProvider, Queue, Scheduler, Table};
use std::sync::{Arc, Mutex};

/// The ports one system runs on.
#[derive(Clone)]
pub struct Ports {
    pub table: Arc<dyn Table>,
    pub queue: Arc<dyn Queue>,
    pub scheduler: Arc<dyn Scheduler>,
    pub bus: Arc<dyn EventBus>,
    pub provider: Arc<dyn MessagingProvider>,
    pub clock: Arc<dyn Clock>,
}

pub struct System {
    pub ports: Ports,
    pub operator: Operator,
    pub dispatcher: Arc<Dispatcher>,
    pub sender: Arc<SendService>,
    pub inbox: Arc<Inbox>,
    /// Verified webhooks waiting for the inbound worker: in memory unless
    /// [`System::with_inbound_queue`] says otherwise.
    pub inbound_queue: Arc<dyn Queue>,
    pub sweeper: Arc<SweepService>,
    last_tick: Mutex<Option<Time>>,
}

impl System {
    pub fn new(ports: Ports, tick_seconds: u32) -> Self {
        let p = ports.clone();
        let dispatcher = Arc::new(Dispatcher {
            table: p.table.clone(),
            queue: p.queue.clone(),
            bus: p.bus.clone(),
            clock: p.clock.clone(),
            tick_seconds,
            plan_ahead_secs: 0,
            start_lead_ms: 0,
            send_capacity: None,
        });
        System {
            operator: Operator::new(OperatorPorts {
                table: p.table.clone(),
                scheduler: p.scheduler.clone(),
                bus: p.bus.clone(),
                clock: p.clock.clone(),
            }),
            dispatcher: dispatcher.clone(),
            sender: Arc::new(SendService {
                table: p.table.clone(),
                provider: p.provider.clone(),
                bus: p.bus.clone(),
                clock: p.clock.clone(),
                concurrency: 10,
                // A manual clock does not move while a sender sleeps.
                wait_for_slot: false,
            }),
            inbox: Arc::new(Inbox {
                table: p.table.clone(),
                bus: p.bus.clone(),
                clock: p.clock.clone(),
                replies: Some(p.provider.clone()),
                calls: Some(dispatcher),
            }),
            sweeper: Arc::new(SweepService {
                table: p.table.clone(),
                bus: p.bus.clone(),
                clock: p.clock.clone(),
            }),
            inbound_queue: Arc::new(MemoryQueue::new(p.clock.clone())),
            ports,
            last_tick: Mutex::new(None),
        }
    }

    /// Plans `secs` beyond each next tick (`Dispatcher::plan_ahead_secs`) and a
    /// dispatch's first slot `start_lead_ms` after its start, as a deployed launcher does;
    /// tests on an exact manual clock leave both at zero.
    pub fn with_plan_ahead(mut self, secs: u32, start_lead_ms: u32) -> Self {
        let mut d = (*self.dispatcher).clone();
        d.plan_ahead_secs = secs;
        d.start_lead_ms = start_lead_ms;
        self.dispatcher = Arc::new(d);
        self
    }

    /// Holds each send until its planned slot (`SendService::wait_for_slot`), as a
    /// deployed sender does: for a system on a clock that moves by itself.
    pub fn with_slot_wait(mut self) -> Self {
        let mut s = (*self.sender).clone();
        s.wait_for_slot = true;
        self.sender = Arc::new(s);
        self
    }

    /// Puts verified webhooks on `queue` instead of the in-memory one (an SQS queue).
    pub fn with_inbound_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.inbound_queue = queue;
        self
    }

    /// Feeds queued messages to the sender in batches of ten, as the event source mapping
    /// does, deleting the ones the sender did not report as failed. Returns how many
    /// messages were handed over.
    pub async fn drain_queue(&self) -> anyhow::Result<usize> {
        // A sender that waits for slots could otherwise be kept here for ever by
        // campaigns whose seconds start at different fractions: hand back after a second
        // of its clock (a manual clock does not move, so tests drain everything).
        let until = self.ports.clock.now() + chrono::Duration::seconds(1);
        let clock = &*self.ports.clock;
        drain(
            &*self.ports.queue,
            |ev| lambda::sender(&self.sender, ev),
            || clock.now() >= until,
        )
        .await
    }

    /// Feeds the inbound queue to the inbound worker the same way: the webhooks the
    /// webhook router queued are parsed and applied. Returns how many were handed over
    /// (a record the worker reported as failed stays queued, hidden for the visibility
    /// timeout).
    pub async fn drain_inbound(&self) -> anyhow::Result<usize> {
        drain(
            &*self.inbound_queue,
            |ev| lambda::inbound(&self.inbox, ev),
            || false,
        )
        .await
    }

    /// Runs the launcher's tick when `tick_seconds` passed since the last one.
    pub async fn tick_if_due(&self) -> anyhow::Result<bool> {
        let now = self.ports.clock.now();
        let due = {
            let last = self.last_tick.lock().unwrap();
            last.is_none_or(|t| {
                now - t >= chrono::Duration::seconds(i64::from(self.dispatcher.tick_seconds))
            })
        };
        if due {
            *self.last_tick.lock().unwrap() = Some(now);
            lambda::launcher(&self.dispatcher, serde_json::json!({"action": "tick"})).await?;
            lambda::sweeper(&self.sweeper).await?;
        }
        Ok(due)
    }

    /// Fires the in-memory scheduler's due one-time schedules at the launcher, as
    /// EventBridge Scheduler does in AWS.
    pub async fn fire_due_schedules(&self, scheduler: &MemoryScheduler) -> anyhow::Result<usize> {
        let due = scheduler.take_due(self.ports.clock.now());
        for s in &due {
            let event: serde_json::Value = serde_json::from_str(&s.payload)?;
            lambda::launcher(&self.dispatcher, event).await?;
        }
        Ok(due.len())
    }
}

/// Receives from `queue` ten at a time until nothing is visible or `enough` says so,
/// hands each batch to `handler` as Lambda's event source mapping would, and deletes the
/// records it did not report as failed.
async fn drain<F, Fut>(
    queue: &dyn Queue,
    handler: F,
    enough: impl Fn() -> bool,
) -> anyhow::Result<usize>
where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
{
    let mut handed = 0;
    loop {
        if enough() {
            return Ok(handed);
        }
        let received = queue.receive(10).await?;
        if received.is_empty() {
            return Ok(handed);
        }
        handed += received.len();
        let resp = handler(sqs_event::event_from(&received)).await;
        for receipt in sqs_event::handled_receipts(&received, &resp) {
            queue.delete(&receipt).await?;
        }
    }
}

/// One page of a local record (the simulator's sends, the published events): `limit`
/// (text, 1 to 1,000, default 100) items kept by `keep`, from the position `cursor` names
/// (the text `next_cursor` gave, a position in the record, which only grows). A bad
/// `limit` or `cursor` is a 400 naming it, in the API's error shape.
pub fn page_of<T: Clone>(
    record: &[T],
    keep: impl Fn(&T) -> bool,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Vec<T>, Option<String>), shared::http::error::ApiError> {
    use shared::http::error::ApiError;
    let limit = match limit {
        None => 100,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    Some("limit".into()),
                    "limit: must be a whole number from 1 to 1000",
                )
            })?,
    };
    let from = match cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= record.len())
            .ok_or_else(|| {
                ApiError::bad_request(
                    Some("cursor".into()),
                    "cursor: is not a cursor this listing returned",
                )
            })?,
    };
    let mut items = Vec::new();
    for (i, item) in record.iter().enumerate().skip(from) {
        if !keep(item) {
            continue;
        }
        if items.len() == limit {
            return Ok((items, Some(i.to_string())));
        }
        items.push(item.clone());
    }
    Ok((items, None))
}
