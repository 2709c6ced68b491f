//! In-memory twins of the ports, with the same semantics as the AWS adapters: conditional
//! puts, sparse indexes, sort-key order, SQS delays and visibility. Used by the local
//! runner and by tests.

use crate::domain::events::DomainEvent;
use crate::domain::Time;
use crate::ports::*;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

fn key_of(item: &Item, attr: &str) -> Option<String> {
    item.get(attr).and_then(Value::as_str).map(str::to_owned)
}

fn index_attrs(index: Index) -> (&'static str, &'static str) {
    match index {
        Index::Primary => ("PK", "SK"),
        Index::Gsi1 => ("GSI1PK", "GSI1SK"),
        Index::Gsi2 => ("GSI2PK", "GSI2SK"),
    }
}

/// The single table as an ordered map from (PK, SK) to item.
#[derive(Default)]
pub struct MemoryTable {
    items: Mutex<BTreeMap<(String, String), Item>>,
    /// Counts of calls, for the cost benchmark and tests.
    pub writes: AtomicU64,
    pub reads: AtomicU64,
}

impl MemoryTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn cond_holds(stored: Option<&Item>, cond: &Cond) -> bool {
    match cond {
        Cond::None => true,
        Cond::NotExists => stored.is_none(),
        Cond::Eq(attr, v) => stored.and_then(|s| s.get(attr)) == Some(v),
    }
}

fn sk_matches(sk: &str, c: &SkCond) -> bool {
    match c {
        SkCond::Any => true,
        SkCond::BeginsWith(p) => sk.starts_with(p.as_str()),
        SkCond::Lte(v) => sk <= v.as_str(),
        SkCond::Gt(v) => sk > v.as_str(),
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .items
            .lock()
            .unwrap()
            .get(&(pk.to_owned(), sk.to_owned()))
            .cloned())
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let (pk, sk) = match (key_of(&item, "PK"), key_of(&item, "SK")) {
            (Some(pk), Some(sk)) => (pk, sk),
            _ => return Err(PortError::Backend("item lacks string PK/SK".into())),
        };
        let mut items = self.items.lock().unwrap();
        let key = (pk, sk);
        if !cond_holds(items.get(&key), &cond) {
            return Err(PortError::ConditionFailed);
        }
        items.insert(key, item);
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.items
            .lock()
            .unwrap()
            .remove(&(pk.to_owned(), sk.to_owned()));
        Ok(())
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        // One write per 25 keys, as BatchWriteItem counts them.
        self.writes
            .fetch_add(keys.len().div_ceil(25) as u64, Ordering::Relaxed);
        let mut items = self.items.lock().unwrap();
        for k in keys {
            items.remove(k);
        }
        Ok(())
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (pk_attr, sk_attr) = index_attrs(q.index);
        let items = self.items.lock().unwrap();
        // (index sort key, PK, SK) orders the results; the cursor is that triple.
        fn hit<'a>(
            q: &Query,
            (pk_attr, sk_attr): (&str, &str),
            ((pk, sk), item): (&(String, String), &'a Item),
        ) -> Option<((String, String, String), &'a Item)> {
            let ipk = key_of(item, pk_attr)?;
            let isk = key_of(item, sk_attr)?;
            (ipk == q.pk && sk_matches(&isk, &q.sk)).then(|| ((isk, pk.clone(), sk.clone()), item))
        }
        let matches = |e| hit(q, (pk_attr, sk_attr), e);
        let after: Option<(String, String, String)> = match &q.cursor {
            Some(c) => Some(
                serde_json::from_str(c)
                    .map_err(|e| PortError::Backend(format!("bad cursor: {e}")))?,
            ),
            None => None,
        };
        let limit = q.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        let mut hits: Vec<((String, String, String), &Item)> = match q.index {
            // The map is ordered by (PK, SK), which is the result order here: read the
            // partition from the cursor on, and no more than the page (plus one, to know
            // whether more follow).
            Index::Primary => {
                use std::ops::Bound;
                let from = match &after {
                    Some((_, _, sk)) => Bound::Excluded((q.pk.clone(), sk.clone())),
                    None => Bound::Included((q.pk.clone(), String::new())),
                };
                items
                    .range((from, Bound::Unbounded))
                    .take_while(|((pk, _), _)| *pk == q.pk)
                    .filter_map(matches)
                    .take(limit.saturating_add(1))
                    .collect()
            }
            Index::Gsi1 | Index::Gsi2 => items.iter().filter_map(matches).collect(),
        };
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        let start = match &after {
            Some(a) => hits.partition_point(|(k, _)| k <= a),
            None => 0,
        };
        let page: Vec<_> = hits[start..].iter().take(limit).collect();
        let more = start + page.len() < hits.len();
        let cursor = if more {
            page.last()
                .map(|(k, _)| serde_json::to_string(k).expect("keys serialise"))
        } else {
            None
        };
        Ok(Page {
            items: page.into_iter().map(|(_, i)| (*i).clone()).collect(),
            cursor,
        })
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut items = self.items.lock().unwrap();
        let item = items
            .entry((pk.to_owned(), sk.to_owned()))
            .or_insert_with(|| {
                let mut i = Item::new();
                i.insert("PK".into(), pk.into());
                i.insert("SK".into(), sk.into());
                i
            });
        for (attr, d) in deltas {
            let cur = item.get(attr).and_then(Value::as_i64).unwrap_or(0);
            item.insert(attr.clone(), (cur + d).into());
        }
        Ok(item.clone())
    }
}

/// A clock that tests and the local runner can move forward.
pub struct ManualClock {
    /// Milliseconds added to the system clock.
    offset_ms: AtomicI64,
    /// When set, time stands still here (plus the offset).
    frozen: Option<Time>,
}

impl ManualClock {
    /// Follows the system clock, plus whatever has been advanced.
    pub fn system() -> Self {
        ManualClock {
            offset_ms: AtomicI64::new(0),
            frozen: None,
        }
    }
    /// Stands still at `at` until advanced.
    pub fn frozen(at: Time) -> Self {
        ManualClock {
            offset_ms: AtomicI64::new(0),
            frozen: Some(at),
        }
    }
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        let base = self.frozen.unwrap_or_else(chrono::Utc::now);
        base + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The real clock for Lambda.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        chrono::Utc::now()
    }
}

struct QueuedMsg {
    id: String,
    body: String,
    visible_at: Time,
    receipt: Option<String>,
}

/// SQS twin: delays and visibility timeouts follow the given clock.
pub struct MemoryQueue {
    clock: std::sync::Arc<dyn Clock>,
    visibility: chrono::Duration,
    msgs: Mutex<VecDeque<QueuedMsg>>,
    next: AtomicU64,
    pub sent: AtomicU64,
}

impl MemoryQueue {
    pub fn new(clock: std::sync::Arc<dyn Clock>) -> Self {
        MemoryQueue {
            clock,
            visibility: chrono::Duration::seconds(30),
            msgs: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(1),
            sent: AtomicU64::new(0),
        }
    }
    /// Messages not yet deleted, visible or not.
    pub fn depth(&self) -> usize {
        self.msgs.lock().unwrap().len()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        let now = self.clock.now();
        let mut q = self.msgs.lock().unwrap();
        for m in msgs {
            if m.delay_secs > 900 {
                return Err(PortError::Backend("DelaySeconds must be 0..=900".into()));
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            self.sent.fetch_add(1, Ordering::Relaxed);
            q.push_back(QueuedMsg {
                id: format!("msg-{n}"),
                body: m.body,
                visible_at: now + chrono::Duration::seconds(i64::from(m.delay_secs)),
                receipt: None,
            });
        }
        Ok(())
    }

    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        let now = self.clock.now();
        let mut q = self.msgs.lock().unwrap();
        let mut out = Vec::new();
        for m in q.iter_mut() {
            if out.len() >= max.min(10) as usize {
                break;
            }
            if m.visible_at <= now {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let receipt = format!("{}#{n}", m.id);
                m.receipt = Some(receipt.clone());
                m.visible_at = now + self.visibility;
                out.push(Received {
                    id: m.id.clone(),
                    receipt,
                    body: m.body.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.msgs
            .lock()
            .unwrap()
            .retain(|m| m.receipt.as_deref() != Some(receipt));
        Ok(())
    }
}

/// Scheduler twin: keeps the schedules; the local runner fires the due ones.
#[derive(Default)]
pub struct MemoryScheduler {
    schedules: Mutex<HashMap<String, OneTimeSchedule>>,
}

impl MemoryScheduler {
    pub fn get(&self, name: &str) -> Option<OneTimeSchedule> {
        self.schedules.lock().unwrap().get(name).cloned()
    }
    /// Removes and returns the schedules due at `now`, as EventBridge Scheduler would fire
    /// and then delete them.
    pub fn take_due(&self, now: Time) -> Vec<OneTimeSchedule> {
        let mut s = self.schedules.lock().unwrap();
        let due: Vec<String> = s
            .iter()
            .filter(|(_, v)| v.at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter().filter_map(|k| s.remove(&k)).collect()
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn put(&self, s: OneTimeSchedule) -> PortResult<()> {
        self.schedules.lock().unwrap().insert(s.name.clone(), s);
        Ok(())
    }
    async fn delete(&self, name: &str) -> PortResult<()> {
        self.schedules.lock().unwrap().remove(name);
        Ok(())
    }
}

/// Event bus twin: records what was published.
#[derive(Default)]
pub struct MemoryBus {
    pub events: Mutex<Vec<DomainEvent>>,
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()> {
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// Secrets twin: a fixed map from reference to value.
#[derive(Default)]
pub struct MemorySecrets {
    values: HashMap<String, String>,
}

impl MemorySecrets {
    pub fn with(mut self, reference: &str, value: &str) -> Self {
        self.values.insert(reference.to_owned(), value.to_owned());
        self
    }
}

#[async_trait]
impl Secrets for MemorySecrets {
    async fn resolve(&self, reference: &str) -> PortResult<String> {
        self.values
            .get(reference)
            .cloned()
            .ok_or_else(|| PortError::Backend(format!("no secret for reference {reference}")))
    }
}
