//! In-memory twins of the ports, with the same semantics as the AWS adapters: conditional
//! puts, sparse indexes, sort-key order, SQS delays and visibility. Used by the local
//! runner and by tests.

use async_trait::async_trait;
use serde_json::Value;
use shared::domain::events::DomainEvent;
use shared::domain::Time;
use shared::ports::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// The single table as an ordered map from (PK, SK) to item, with each sparse index kept
/// as an ordered set of (index PK, index SK, PK, SK): a query reads a range of it, never
/// the whole table, so the twin stays fast at a million items.
#[derive(Default)]
pub struct MemoryTable {
    store: Mutex<Store>,
    /// Counts of calls, for the cost benchmark and tests.
    pub writes: AtomicU64,
    pub reads: AtomicU64,
}

type IndexKey = (String, String, String, String);

#[derive(Default)]
struct Store {
    items: BTreeMap<(String, String), Item>,
    gsi1: BTreeSet<IndexKey>,
    gsi2: BTreeSet<IndexKey>,
}

impl Store {
    fn index_key(index: Index, pk: &str, sk: &str, item: &Item) -> Option<IndexKey> {
        let (pk_attr, sk_attr) = index_attrs(index);
        Some((
            key_of(item, pk_attr)?,
            key_of(item, sk_attr)?,
            pk.to_owned(),
            sk.to_owned(),
        ))
    }

    fn unindex(&mut self, key: &(String, String), item: &Item) {
        if let Some(k) = Self::index_key(Index::Gsi1, &key.0, &key.1, item) {
            self.gsi1.remove(&k);
        }
        if let Some(k) = Self::index_key(Index::Gsi2, &key.0, &key.1, item) {
            self.gsi2.remove(&k);
        }
    }

    fn insert(&mut self, key: (String, String), item: Item) {
        if let Some(k) = Self::index_key(Index::Gsi1, &key.0, &key.1, &item) {
            self.gsi1.insert(k);
        }
        if let Some(k) = Self::index_key(Index::Gsi2, &key.0, &key.1, &item) {
            self.gsi2.insert(k);
        }
        if let Some(old) = self.items.insert(key.clone(), item) {
            // Drop the old item's index keys unless the new item kept them.
            let new = &self.items[&key];
            for index in [Index::Gsi1, Index::Gsi2] {
                let Some(before) = Self::index_key(index, &key.0, &key.1, &old) else {
                    continue;
                };
                if Some(&before) != Self::index_key(index, &key.0, &key.1, new).as_ref() {
                    let set = match index {
                        Index::Gsi1 => &mut self.gsi1,
                        _ => &mut self.gsi2,
                    };
                    set.remove(&before);
                }
            }
        }
    }

    fn remove(&mut self, key: &(String, String)) {
        if let Some(old) = self.items.remove(key) {
            self.unindex(key, &old);
        }
    }
}

impl MemoryTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.store.lock().unwrap().items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .store
            .lock()
            .unwrap()
            .items
            .get(&(pk.to_owned(), sk.to_owned()))
            .cloned())
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let (pk, sk) = match (key_of(&item, "PK"), key_of(&item, "SK")) {
            (Some(pk), Some(sk)) => (pk, sk),
            _ => return Err(PortError::Backend("item lacks string PK/SK".into())),
        };
        let mut store = self.store.lock().unwrap();
        let key = (pk, sk);
        if !cond.holds(store.items.get(&key)) {
            return Err(PortError::ConditionFailed);
        }
        store.insert(key, item);
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.store
            .lock()
            .unwrap()
            .remove(&(pk.to_owned(), sk.to_owned()));
        Ok(())
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        // One write per 25 keys, as BatchWriteItem counts them.
        self.writes
            .fetch_add(keys.len().div_ceil(25) as u64, Ordering::Relaxed);
        let mut store = self.store.lock().unwrap();
        for k in keys {
            store.remove(k);
        }
        Ok(())
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        use std::ops::Bound;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let store = self.store.lock().unwrap();
        // Results are ordered by (index sort key, PK, SK); the cursor is that triple
        // after the partition it pages, which must be the query's.
        let after: Option<(String, String, String)> = match &q.cursor {
            Some(c) => {
                let (ipk, isk, pk, sk): (String, String, String, String) = serde_json::from_str(c)
                    .map_err(|_| PortError::BadCursor("not a cursor".into()))?;
                if ipk != q.pk {
                    return Err(PortError::BadCursor("not a cursor of this listing".into()));
                }
                Some((isk, pk, sk))
            }
            None => None,
        };
        let limit = q.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        // The first sort key worth reading.
        let floor = match &q.sk {
            SkCond::BeginsWith(p) => p.clone(),
            SkCond::Gt(v) => v.clone(),
            SkCond::Any | SkCond::Lte(_) => String::new(),
        };
        // Read the page plus one, to know whether more follow.
        let mut hits: Vec<((String, String, String), &Item)> = vec![];
        match q.index {
            Index::Primary => {
                let from = match &after {
                    Some((_, _, sk)) => Bound::Excluded((q.pk.clone(), sk.clone())),
                    None => Bound::Included((q.pk.clone(), floor)),
                };
                for ((pk, sk), item) in store.items.range((from, Bound::Unbounded)) {
                    if *pk != q.pk || q.sk.is_past(sk) || hits.len() > limit {
                        break;
                    }
                    if q.sk.matches(sk) {
                        hits.push(((sk.clone(), pk.clone(), sk.clone()), item));
                    }
                }
            }
            Index::Gsi1 | Index::Gsi2 => {
                let set = if q.index == Index::Gsi1 {
                    &store.gsi1
                } else {
                    &store.gsi2
                };
                let from = match &after {
                    Some((isk, pk, sk)) => {
                        Bound::Excluded((q.pk.clone(), isk.clone(), pk.clone(), sk.clone()))
                    }
                    None => Bound::Included((q.pk.clone(), floor, String::new(), String::new())),
                };
                for (ipk, isk, pk, sk) in set.range((from, Bound::Unbounded)) {
                    if *ipk != q.pk || q.sk.is_past(isk) || hits.len() > limit {
                        break;
                    }
                    if q.sk.matches(isk) {
                        let item = &store.items[&(pk.clone(), sk.clone())];
                        hits.push(((isk.clone(), pk.clone(), sk.clone()), item));
                    }
                }
            }
        }
        let more = hits.len() > limit;
        hits.truncate(limit);
        let cursor = if more {
            hits.last().map(|((isk, pk, sk), _)| {
                serde_json::to_string(&(&q.pk, isk, pk, sk)).expect("keys serialise")
            })
        } else {
            None
        };
        Ok(Page {
            items: hits.into_iter().map(|(_, i)| i.clone()).collect(),
            cursor,
        })
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut store = self.store.lock().unwrap();
        let key = (pk.to_owned(), sk.to_owned());
        let mut item = store.items.get(&key).cloned().unwrap_or_else(|| {
            let mut i = Item::new();
            i.insert("PK".into(), pk.into());
            i.insert("SK".into(), sk.into());
            i
        });
        for (attr, d) in deltas {
            let cur = item.get(attr).and_then(Value::as_i64).unwrap_or(0);
            item.insert(attr.clone(), (cur + d).into());
        }
        store.insert(key, item.clone());
        Ok(item)
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

struct QueuedMsg {
    id: String,
    body: String,
    visible_at: Time,
    receipt: Option<String>,
}

/// SQS twin: delays and visibility timeouts follow the given clock. Messages wait in an
/// index ordered by the time they become visible, so receiving and deleting cost
/// O(log n) however deep the queue is (the benchmark queues a minute of sends at once).
pub struct MemoryQueue {
    clock: std::sync::Arc<dyn Clock>,
    visibility: chrono::Duration,
    state: Mutex<QueueState>,
    next: AtomicU64,
    pub sent: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    msgs: HashMap<u64, QueuedMsg>,
    /// (visible at, sequence) of every message not deleted.
    by_time: std::collections::BTreeSet<(Time, u64)>,
}

impl MemoryQueue {
    pub fn new(clock: std::sync::Arc<dyn Clock>) -> Self {
        MemoryQueue {
            clock,
            visibility: chrono::Duration::seconds(30),
            state: Mutex::new(QueueState::default()),
            next: AtomicU64::new(1),
            sent: AtomicU64::new(0),
        }
    }
    /// Messages not yet deleted, visible or not.
    pub fn depth(&self) -> usize {
        self.state.lock().unwrap().msgs.len()
    }
}

/// The message's sequence number from a receipt `msg-<seq>#<n>`.
fn receipt_seq(receipt: &str) -> Option<u64> {
    receipt
        .strip_prefix("msg-")?
        .split('#')
        .next()?
        .parse()
        .ok()
}

impl MemoryQueue {
    /// [`Queue::send`] without `async`, for callers outside a runtime.
    pub fn send_msgs(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        if msgs.iter().any(|m| m.delay_secs > 900) {
            return Err(PortError::Backend("DelaySeconds must be 0..=900".into()));
        }
        let now = self.clock.now();
        let mut q = self.state.lock().unwrap();
        for m in msgs {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            self.sent.fetch_add(1, Ordering::Relaxed);
            let visible_at = now + chrono::Duration::seconds(i64::from(m.delay_secs));
            q.by_time.insert((visible_at, n));
            q.msgs.insert(
                n,
                QueuedMsg {
                    id: format!("msg-{n}"),
                    body: m.body,
                    visible_at,
                    receipt: None,
                },
            );
        }
        Ok(())
    }

    /// [`Queue::receive`] without `async`.
    pub fn receive_msgs(&self, max: u32) -> Vec<Received> {
        let now = self.clock.now();
        let mut q = self.state.lock().unwrap();
        let due: Vec<(Time, u64)> = q
            .by_time
            .range(..=(now, u64::MAX))
            .take(max.min(10) as usize)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(due.len());
        let hidden_until = now + self.visibility;
        for key in due {
            q.by_time.remove(&key);
            q.by_time.insert((hidden_until, key.1));
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let m = q.msgs.get_mut(&key.1).expect("indexed message exists");
            let receipt = format!("{}#{n}", m.id);
            m.receipt = Some(receipt.clone());
            m.visible_at = hidden_until;
            out.push(Received {
                id: m.id.clone(),
                receipt,
                body: m.body.clone(),
            });
        }
        out
    }

    /// [`Queue::delete`] without `async`.
    pub fn delete_receipt(&self, receipt: &str) {
        let Some(seq) = receipt_seq(receipt) else {
            return;
        };
        let mut q = self.state.lock().unwrap();
        if q.msgs.get(&seq).and_then(|m| m.receipt.as_deref()) == Some(receipt) {
            let m = q.msgs.remove(&seq).expect("checked");
            q.by_time.remove(&(m.visible_at, seq));
        }
    }

    /// When the next message that was never received becomes visible (a delayed one);
    /// messages received and not deleted are skipped.
    pub fn next_arrival_at(&self) -> Option<Time> {
        let q = self.state.lock().unwrap();
        q.by_time
            .iter()
            .find(|(_, n)| q.msgs.get(n).is_some_and(|m| m.receipt.is_none()))
            .map(|(at, _)| *at)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        self.send_msgs(msgs)
    }

    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        Ok(self.receive_msgs(max))
    }

    async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.delete_receipt(receipt);
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
            .ok_or_else(|| PortError::Refused(format!("no secret for reference {reference}")))
    }
}

/// A table that hands control to other tasks before every read and write, so concurrent
/// use cases really interleave between their read and their conditional write (on the
/// plain twin each call runs to completion without yielding).
pub struct Interleaved(pub std::sync::Arc<dyn Table>);

#[async_trait]
impl Table for Interleaved {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        tokio::task::yield_now().await;
        self.0.get(pk, sk).await
    }
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        tokio::task::yield_now().await;
        self.0.put(item, cond).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        tokio::task::yield_now().await;
        self.0.delete(pk, sk).await
    }
    async fn query(&self, q: &Query) -> PortResult<Page> {
        tokio::task::yield_now().await;
        self.0.query(q).await
    }
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        tokio::task::yield_now().await;
        self.0.add(pk, sk, deltas).await
    }
}

/// What a test puts in the way of a table's calls ([`Tapped`]): each hook runs before the
/// call and may answer it instead (`Some`); by default every call goes through.
#[async_trait]
pub trait Tap: Send + Sync {
    async fn query(&self, _q: &Query) -> Option<PortResult<Page>> {
        None
    }
    async fn add(&self, _pk: &str, _sk: &str) -> Option<PortResult<Item>> {
        None
    }
}

/// A table whose calls pass a test's [`Tap`] first: a failing read, a read held until
/// released, an index that lags, a count of some writes.
pub struct Tapped<T> {
    pub inner: std::sync::Arc<dyn Table>,
    pub tap: T,
}

#[async_trait]
impl<T: Tap> Table for Tapped<T> {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.inner.put(item, cond).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.inner.delete(pk, sk).await
    }
    async fn query(&self, q: &Query) -> PortResult<Page> {
        match self.tap.query(q).await {
            Some(answer) => answer,
            None => self.inner.query(q).await,
        }
    }
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        match self.tap.add(pk, sk).await {
            Some(answer) => answer,
            None => self.inner.add(pk, sk, deltas).await,
        }
    }
}
