//! What the parent holds for the functions: the single table and the send queue, with the
//! semantics of `shared::adapters::memory`'s twins, built to hold millions of items.
//!
//! `MemoryTable` keeps every item as a `serde_json::Map` (about 2 KB each) and answers an
//! index query by scanning the whole table; a million-contact campaign is some six million
//! items, so that would be 12 GB and a full scan per dispatcher or sweeper page. Here an
//! item is kept as its JSON text and each sparse index is an ordered set, so an index
//! query reads only its partition. `MemoryQueue` deletes by scanning every message; here
//! messages are ordered by the time they become visible. The `tests` module checks this
//! table against `MemoryTable` operation by operation.

use async_trait::async_trait;
use serde_json::Value;
use shared::ports::{
    Clock, Cond, Index, Item, OutMessage, Page, PortError, PortResult, Query, Queue, Received,
    SkCond, Table,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use testkit::memory::{ManualClock, MemoryQueue};

type S = Box<str>;
/// (index PK, index SK, PK, SK): an index entry, in query order.
type IndexKey = (S, S, S, S);

struct Stored {
    json: S,
    gsi1: Option<(S, S)>,
    gsi2: Option<(S, S)>,
}

#[derive(Default)]
struct Inner {
    items: BTreeMap<(S, S), Stored>,
    gsi1: BTreeSet<IndexKey>,
    gsi2: BTreeSet<IndexKey>,
}

/// The single table, compact and indexed.
#[derive(Default)]
pub struct StoreTable {
    inner: Mutex<Inner>,
    /// Calls served, by kind.
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Value::as_str)
}

fn index_of(item: &Item, pk: &str, sk: &str) -> Option<(S, S)> {
    Some((attr(item, pk)?.into(), attr(item, sk)?.into()))
}

/// The lowest sort key that can match, if the condition says.
fn lowest(c: &SkCond) -> Option<&str> {
    match c {
        SkCond::BeginsWith(p) | SkCond::Gt(p) => Some(p.as_str()),
        SkCond::Any | SkCond::Lte(_) => None,
    }
}

fn parse(json: &str) -> Item {
    serde_json::from_str(json).expect("stored items are JSON objects")
}

/// One page of a query: the items' JSON text, and the cursor when more may follow.
pub struct RawPage {
    pub items: Vec<S>,
    pub cursor: Option<String>,
}

impl RawPage {
    /// The page as `shared::ports::Page` JSON, without parsing the items.
    pub fn to_json(&self) -> String {
        let mut out =
            String::with_capacity(self.items.iter().map(|i| i.len() + 1).sum::<usize>() + 64);
        out.push_str("{\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(item);
        }
        out.push_str("],\"cursor\":");
        out.push_str(&serde_json::to_string(&self.cursor).expect("a cursor serialises"));
        out.push('}');
        out
    }
}

impl Inner {
    fn unindex(&mut self, pk: &S, sk: &S, s: &Stored) {
        if let Some((ipk, isk)) = &s.gsi1 {
            self.gsi1
                .remove(&(ipk.clone(), isk.clone(), pk.clone(), sk.clone()));
        }
        if let Some((ipk, isk)) = &s.gsi2 {
            self.gsi2
                .remove(&(ipk.clone(), isk.clone(), pk.clone(), sk.clone()));
        }
    }

    fn store(&mut self, pk: S, sk: S, item: &Item) {
        let s = Stored {
            json: serde_json::to_string(item)
                .expect("items serialise")
                .into_boxed_str(),
            gsi1: index_of(item, "GSI1PK", "GSI1SK"),
            gsi2: index_of(item, "GSI2PK", "GSI2SK"),
        };
        if let Some(old) = self.items.remove(&(pk.clone(), sk.clone())) {
            self.unindex(&pk, &sk, &old);
        }
        if let Some((ipk, isk)) = &s.gsi1 {
            self.gsi1
                .insert((ipk.clone(), isk.clone(), pk.clone(), sk.clone()));
        }
        if let Some((ipk, isk)) = &s.gsi2 {
            self.gsi2
                .insert((ipk.clone(), isk.clone(), pk.clone(), sk.clone()));
        }
        self.items.insert((pk, sk), s);
    }

    fn remove(&mut self, pk: &str, sk: &str) {
        let key: (S, S) = (pk.into(), sk.into());
        if let Some(old) = self.items.remove(&key) {
            self.unindex(&key.0, &key.1, &old);
        }
    }
}

impl StoreTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().items.len()
    }

    /// Bytes of item text held (the table's payload, without the maps around it).
    pub fn payload_bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap()
            .items
            .values()
            .map(|s| s.json.len())
            .sum()
    }

    pub fn get_raw(&self, pk: &str, sk: &str) -> Option<S> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.lock().unwrap();
        inner
            .items
            .get(&(S::from(pk), S::from(sk)))
            .map(|s| s.json.clone())
    }

    pub fn put_item(&self, item: &Item, cond: &Cond) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let (Some(pk), Some(sk)) = (attr(item, "PK"), attr(item, "SK")) else {
            return Err(PortError::Backend("item lacks string PK/SK".into()));
        };
        let key: (S, S) = (pk.into(), sk.into());
        let mut inner = self.inner.lock().unwrap();
        // Parsed only when an item is stored; `Eq` reads its attribute.
        if !cond.holds(inner.items.get(&key).map(|s| parse(&s.json)).as_ref()) {
            return Err(PortError::ConditionFailed);
        }
        inner.store(key.0, key.1, item);
        Ok(())
    }

    pub fn delete_key(&self, pk: &str, sk: &str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().unwrap().remove(pk, sk);
    }

    pub fn delete_keys(&self, keys: &[(String, String)]) {
        self.writes
            .fetch_add(keys.len().div_ceil(25) as u64, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        for (pk, sk) in keys {
            inner.remove(pk, sk);
        }
    }

    pub fn add_deltas(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> S {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        let key: (S, S) = (pk.into(), sk.into());
        let mut item = match inner.items.get(&key) {
            Some(s) => parse(&s.json),
            None => {
                let mut i = Item::new();
                i.insert("PK".into(), pk.into());
                i.insert("SK".into(), sk.into());
                i
            }
        };
        for (a, d) in deltas {
            let cur = item.get(a).and_then(Value::as_i64).unwrap_or(0);
            item.insert(a.clone(), (cur + d).into());
        }
        inner.store(key.0.clone(), key.1.clone(), &item);
        inner.items[&key].json.clone()
    }

    /// A page of a query, in the order and with the paging of `MemoryTable`: ascending
    /// (index sort key, PK, SK), a cursor only when another match follows the page.
    pub fn query_raw(&self, q: &Query) -> PortResult<RawPage> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        // The cursor is (index PK, index SK, PK, SK), as `MemoryTable`'s.
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
        let want = limit.saturating_add(1);
        let inner = self.inner.lock().unwrap();
        // (index SK, PK, SK, item) of the matches, at most one past the page.
        let mut hits: Vec<(S, S, S, S)> = Vec::new();
        let pk: S = q.pk.as_str().into();
        match q.index {
            Index::Primary => {
                let mut from = match &after {
                    Some((_, _, sk)) => Bound::Excluded((pk.clone(), S::from(sk.as_str()))),
                    None => Bound::Included((pk.clone(), S::from(""))),
                };
                if let Some(low) = lowest(&q.sk) {
                    let start = (pk.clone(), S::from(low));
                    let later = match &from {
                        Bound::Excluded(k) | Bound::Included(k) => start > *k,
                        Bound::Unbounded => true,
                    };
                    if later {
                        from = Bound::Included(start);
                    }
                }
                for ((ipk, isk), s) in inner.items.range((from, Bound::Unbounded)) {
                    if *ipk != pk || q.sk.is_past(isk) || hits.len() >= want {
                        break;
                    }
                    if q.sk.matches(isk) {
                        hits.push((isk.clone(), ipk.clone(), isk.clone(), s.json.clone()));
                    }
                }
            }
            Index::Gsi1 | Index::Gsi2 => {
                let set = if q.index == Index::Gsi1 {
                    &inner.gsi1
                } else {
                    &inner.gsi2
                };
                let mut from = match &after {
                    Some((isk, p, s)) => Bound::Excluded((
                        pk.clone(),
                        S::from(isk.as_str()),
                        S::from(p.as_str()),
                        S::from(s.as_str()),
                    )),
                    None => Bound::Included((pk.clone(), S::from(""), S::from(""), S::from(""))),
                };
                if let Some(low) = lowest(&q.sk) {
                    let start = (pk.clone(), S::from(low), S::from(""), S::from(""));
                    let later = match &from {
                        Bound::Excluded(k) | Bound::Included(k) => start > *k,
                        Bound::Unbounded => true,
                    };
                    if later {
                        from = Bound::Included(start);
                    }
                }
                for (ipk, isk, p, s) in set.range((from, Bound::Unbounded)) {
                    if *ipk != pk || q.sk.is_past(isk) || hits.len() >= want {
                        break;
                    }
                    if q.sk.matches(isk) {
                        let json = inner.items[&(p.clone(), s.clone())].json.clone();
                        hits.push((isk.clone(), p.clone(), s.clone(), json));
                    }
                }
            }
        }
        drop(inner);
        let more = hits.len() > limit;
        hits.truncate(limit);
        let cursor = if more {
            hits.last().map(|(isk, p, s, _)| {
                serde_json::to_string(&(&q.pk, isk, p, s)).expect("keys serialise")
            })
        } else {
            None
        };
        Ok(RawPage {
            items: hits.into_iter().map(|(_, _, _, j)| j).collect(),
            cursor,
        })
    }
}

#[async_trait]
impl Table for StoreTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        Ok(self.get_raw(pk, sk).map(|j| parse(&j)))
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.put_item(&item, &cond)
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.delete_key(pk, sk);
        Ok(())
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        self.delete_keys(keys);
        Ok(())
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        let raw = self.query_raw(q)?;
        Ok(Page {
            items: raw.items.iter().map(|j| parse(j)).collect(),
            cursor: raw.cursor,
        })
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        Ok(parse(&self.add_deltas(pk, sk, deltas)))
    }
}

/// The send queue as SQS behaves for the sender (the in-memory twin: delays and a
/// visibility timeout on the parent's clock), plus a horizon: while one is set, a
/// receive that finds nothing visible moves the clock to the next delayed message if it
/// becomes visible by then, so a tick's minute of sends runs as fast as the functions go
/// while each message still goes out at its second.
pub struct SimQueue {
    queue: MemoryQueue,
    clock: Arc<ManualClock>,
    /// Held through a receive, so two receivers never both move the clock.
    horizon: Mutex<Option<shared::domain::Time>>,
    pub received: AtomicU64,
}

impl SimQueue {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        SimQueue {
            queue: MemoryQueue::new(clock.clone()),
            clock,
            horizon: Mutex::new(None),
            received: AtomicU64::new(0),
        }
    }

    /// Lets receives move the clock up to `until` (none: the clock stands still).
    pub fn set_horizon(&self, until: Option<shared::domain::Time>) {
        *self.horizon.lock().unwrap() = until;
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.queue.sent.load(Ordering::Relaxed)
    }

    /// Messages not deleted, visible or not.
    pub fn depth(&self) -> usize {
        self.queue.depth()
    }

    pub fn send_msgs(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        self.queue.send_msgs(msgs)
    }

    pub fn receive_msgs(&self, max: u32) -> Vec<Received> {
        let horizon = self.horizon.lock().unwrap();
        loop {
            let out = self.queue.receive_msgs(max);
            if !out.is_empty() {
                self.received.fetch_add(out.len() as u64, Ordering::Relaxed);
                return out;
            }
            let now = self.clock.now();
            match (self.queue.next_arrival_at(), *horizon) {
                (Some(at), Some(h)) if at > now && at <= h => self.clock.advance(at - now),
                _ => return out,
            }
        }
    }

    pub fn delete_receipts(&self, receipts: &[String]) {
        for r in receipts {
            self.queue.delete_receipt(r);
        }
    }
}

#[async_trait]
impl Queue for SimQueue {
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()> {
        self.send_msgs(msgs)
    }
    async fn receive(&self, max: u32) -> PortResult<Vec<Received>> {
        Ok(self.receive_msgs(max))
    }
    async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.delete_receipts(&[receipt.to_owned()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use testkit::memory::MemoryTable;

    /// A small deterministic generator (no extra dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    const PKS: [&str; 3] = ["P#a", "P#b", "P#c"];
    const SKS: [&str; 8] = ["A", "A#1", "A#2", "AB", "B", "B#1", "C", "D#~"];
    const IPKS: [&str; 2] = ["I#0", "I#1"];

    fn random_item(r: &mut Rng) -> Item {
        let mut i = json!({"PK": r.pick(&PKS), "SK": r.pick(&SKS), "v": r.below(3)});
        if r.below(2) == 0 {
            i["GSI1PK"] = r.pick(&IPKS).into();
            i["GSI1SK"] = r.pick(&SKS).into();
        }
        if r.below(3) == 0 {
            i["GSI2PK"] = r.pick(&IPKS).into();
            i["GSI2SK"] = r.pick(&SKS).into();
        }
        if r.below(8) == 0 {
            // Not a string: not in the index.
            i["GSI1SK"] = json!(7);
        }
        i.as_object().unwrap().clone()
    }

    fn random_cond(r: &mut Rng) -> Cond {
        match r.below(3) {
            0 => Cond::None,
            1 => Cond::NotExists,
            _ => Cond::Eq("v".into(), json!(r.below(3))),
        }
    }

    fn random_sk(r: &mut Rng) -> SkCond {
        let v = r.pick(&SKS).to_owned();
        match r.below(4) {
            0 => SkCond::Any,
            1 => SkCond::BeginsWith(v),
            2 => SkCond::Lte(v),
            _ => SkCond::Gt(v),
        }
    }

    /// Every page of a query, following each table's own cursors.
    async fn all_pages(t: &dyn Table, mut q: Query) -> Vec<Page> {
        let mut pages = Vec::new();
        loop {
            let p = t.query(&q).await.unwrap();
            let c = p.cursor.clone();
            pages.push(p);
            match c {
                Some(c) if pages.len() < 100 => q.cursor = Some(c),
                _ => return pages,
            }
        }
    }

    #[tokio::test]
    async fn store_table_answers_as_memory_table_does() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let ours = StoreTable::new();
        let twin = MemoryTable::new();
        for step in 0..4000 {
            match r.below(10) {
                0..=4 => {
                    let item = random_item(&mut r);
                    let cond = random_cond(&mut r);
                    let a = ours.put(item.clone(), cond.clone()).await;
                    let b = twin.put(item, cond).await;
                    assert_eq!(a, b, "put at step {step}");
                }
                5 => {
                    let (pk, sk) = (r.pick(&PKS), r.pick(&SKS));
                    ours.delete(pk, sk).await.unwrap();
                    twin.delete(pk, sk).await.unwrap();
                }
                6 => {
                    let (pk, sk) = (r.pick(&PKS), r.pick(&SKS));
                    let d = vec![("n".to_owned(), r.below(5) as i64 - 2)];
                    assert_eq!(
                        ours.add(pk, sk, &d).await.unwrap(),
                        twin.add(pk, sk, &d).await.unwrap()
                    );
                }
                7 => {
                    let keys: Vec<(String, String)> = (0..3)
                        .map(|_| (r.pick(&PKS).to_owned(), r.pick(&SKS).to_owned()))
                        .collect();
                    ours.delete_many(&keys).await.unwrap();
                    twin.delete_many(&keys).await.unwrap();
                }
                _ => {
                    let (index, pk) = match r.below(3) {
                        0 => (Index::Primary, r.pick(&PKS)),
                        1 => (Index::Gsi1, r.pick(&IPKS)),
                        _ => (Index::Gsi2, r.pick(&IPKS)),
                    };
                    let mut q = Query::new(index, pk, random_sk(&mut r));
                    if r.below(4) > 0 {
                        q = q.limit(r.below(4) as u32);
                    }
                    let a = all_pages(&ours, q.clone()).await;
                    let b = all_pages(&twin, q.clone()).await;
                    assert_eq!(a, b, "query {q:?} at step {step}");
                }
            }
            let (pk, sk) = (r.pick(&PKS), r.pick(&SKS));
            assert_eq!(ours.get(pk, sk).await, twin.get(pk, sk).await);
        }
        assert_eq!(ours.len(), twin.len());
    }

    #[tokio::test]
    async fn queue_delays_hides_and_moves_the_clock_up_to_the_horizon() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::frozen(t0));
        let q = SimQueue::new(clock.clone());
        let msg = |b: &str, d| OutMessage {
            body: b.into(),
            delay_secs: d,
        };
        q.send(vec![msg("a", 0), msg("b", 5), msg("c", 50)])
            .await
            .unwrap();
        let got = q.receive(10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(q.receive(10).await.unwrap().is_empty(), "b is delayed");
        q.set_horizon(Some(t0 + chrono::Duration::seconds(10)));
        let b = q.receive(10).await.unwrap();
        assert_eq!(b[0].body, "b");
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(5));
        assert!(
            q.receive(10).await.unwrap().is_empty(),
            "c is past the horizon"
        );
        q.delete(&got[0].receipt).await.unwrap();
        // b was not deleted: back after the visibility timeout.
        q.set_horizon(None);
        clock.advance(chrono::Duration::seconds(31));
        let again = q.receive(10).await.unwrap();
        assert_eq!(again[0].body, "b");
        assert!(q.send(vec![msg("x", 901)]).await.is_err());
        assert_eq!(q.depth(), 2);
    }
}
