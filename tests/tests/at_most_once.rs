//! At most once (R4.10): a sender that dies between the claim and the record leaves the
//! entry in SENDING; the sweeper reclaims it as RETRY "outcome unknown" after
//! `SENDING_STALE_AFTER`, and nothing sends it again automatically. The scenarios run on
//! the in-memory table and on DynamoDB served by the local emulator (the stale entries are
//! found through the sparse GSI1 `SENDING#k`); the fault-injection run kills the sender at
//! random points over more than a thousand entries and counts sends at the simulator.

use axum::http::{Method, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use shared::adapters::aws;
use shared::app::sweep::SENDING_STALE_AFTER;
use shared::domain::hopper::{EntryState, HopperEntry, OUTCOME_UNKNOWN};
use shared::domain::stats;
use shared::lambda;
use shared::ports::{Clock, Cond, Item, Page, PortError, PortResult, Query, Table};
use shared::repo;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use testkit::harness::{call, Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

// ---- fault injection ----

/// Where the sender dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    /// The claim is not stored.
    BeforeClaim,
    /// The claim is stored, the provider is never called.
    AfterClaim,
    /// The provider was called; the outcome is not stored.
    AfterSend,
    /// The outcome is stored; the worker dies before finishing the record.
    AfterRecord,
}

/// A tiny seeded xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

struct Faults {
    enabled: AtomicBool,
    rng: Mutex<Rng>,
    /// Chance of each fault point, per event where it can strike.
    per_mille: u64,
    /// Faults to inject first, once each, at the next event where they can strike.
    forced: Mutex<Vec<Point>>,
    injected: Mutex<BTreeMap<Point, usize>>,
    /// Entries hit by a fault that leaves them SENDING (after claim, after send).
    left_sending: Mutex<BTreeMap<Point, Vec<String>>>,
}

impl Faults {
    fn new(seed: u64, per_mille: u64, forced: Vec<Point>) -> Arc<Self> {
        Arc::new(Faults {
            enabled: AtomicBool::new(true),
            rng: Mutex::new(Rng(seed.max(1))),
            per_mille,
            forced: Mutex::new(forced),
            injected: Mutex::new(BTreeMap::new()),
            left_sending: Mutex::new(BTreeMap::new()),
        })
    }

    /// Which fault (if any) strikes at an event that allows `before` or `after`.
    fn roll(&self, before: Point, after: Point) -> Option<Point> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let forced = {
            let mut f = self.forced.lock().unwrap();
            f.iter()
                .position(|p| *p == before || *p == after)
                .map(|i| f.remove(i))
        };
        let point = forced.or_else(|| {
            let mut rng = self.rng.lock().unwrap();
            if rng.chance(self.per_mille) {
                Some(before)
            } else if rng.chance(self.per_mille) {
                Some(after)
            } else {
                None
            }
        })?;
        *self.injected.lock().unwrap().entry(point).or_insert(0) += 1;
        Some(point)
    }

    fn count(&self, p: Point) -> usize {
        self.injected.lock().unwrap().get(&p).copied().unwrap_or(0)
    }
}

/// A table whose entry writes make the sender die: the claim (FRESH -> SENDING) fails
/// before or after it is stored, the record (SENDING -> anything) fails before or after it
/// is stored. Reads never fail.
struct FaultyTable {
    inner: Arc<dyn Table>,
    faults: Arc<Faults>,
}

fn died(p: Point) -> PortError {
    PortError::Backend(format!("injected: worker died {p:?}"))
}

#[async_trait::async_trait]
impl Table for FaultyTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.inner.get(pk, sk).await
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        let is_entry = item.get("type").and_then(Value::as_str) == Some("entry");
        if !is_entry || !self.faults.enabled.load(Ordering::SeqCst) {
            return self.inner.put(item, cond).await;
        }
        let pk = item["PK"].as_str().unwrap_or_default().to_owned();
        let sk = item["SK"].as_str().unwrap_or_default().to_owned();
        let new_state = item
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let stored = self.inner.get(&pk, &sk).await?;
        let old_state = stored
            .as_ref()
            .and_then(|s| s.get("state"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let phone = item
            .get("phone")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event = match (old_state, new_state) {
            ("FRESH", "SENDING") => Some((Point::BeforeClaim, Point::AfterClaim)),
            ("SENDING", s) if s != "SENDING" => Some((Point::AfterSend, Point::AfterRecord)),
            _ => None,
        };
        let Some((before, after)) = event else {
            return self.inner.put(item, cond).await;
        };
        match self.faults.roll(before, after) {
            None => self.inner.put(item, cond).await,
            Some(p) if p == before => {
                if p == Point::AfterSend {
                    self.faults
                        .left_sending
                        .lock()
                        .unwrap()
                        .entry(p)
                        .or_default()
                        .push(phone);
                }
                Err(died(p))
            }
            Some(p) => {
                self.inner.put(item, cond).await?;
                if p == Point::AfterClaim {
                    self.faults
                        .left_sending
                        .lock()
                        .unwrap()
                        .entry(p)
                        .or_default()
                        .push(phone);
                }
                Err(died(p))
            }
        }
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.inner.delete(pk, sk).await
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.inner.query(q).await
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.inner.add(pk, sk, deltas).await
    }
}

// ---- harness ----

struct H {
    s: Spawned,
    faults: Arc<Faults>,
    id: String,
    phones: Vec<String>,
}

impl std::ops::Deref for H {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

/// A RUNNING campaign over `n` contacts whose table dies as `faults` say (faults are off
/// during the setup).
async fn harness(table: Arc<dyn Table>, n: usize, faults: Arc<Faults>) -> H {
    faults.enabled.store(false, Ordering::SeqCst);
    let spawned = Spawn::new(Arc::new(FaultyTable {
        inner: table,
        faults: faults.clone(),
    }))
    .at(Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap())
    .simulator(SimConfig {
        reply_percent: 0,
        // The frozen clock lets a whole tick's sends out in one clock second; this
        // test is about at-most-once, not pacing.
        rate_limit_per_sec: None,
        ..SimConfig::default()
    })
    .spawn()
    .await;
    let api = spawned.api.clone();
    let (s, account) = call(
        &api,
        Method::POST,
        "/accounts",
        Some(json!({
            "name": "Main number", "sender_id": "106540352242922", "token_ref": "env:SIM_TOKEN", "waba_id": "100000000000001"
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let (s, t) = call(&api, Method::POST, "/templates", Some(json!({
        "account_id": account_id, "name": "spring_offer", "language": "en", "category": "MARKETING",
        "body": "Hi {{1}}, spring is here"
    }))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let phones: Vec<String> = (0..n).map(|i| format!("9198{i:08}")).collect();
    let (s, list) = call(&api, Method::POST, "/lists", Some(json!({"name": "All"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{list}");
    let list_id = list["id"].as_str().unwrap().to_owned();
    for chunk in phones.chunks(500) {
        let contacts: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"phone": format!("+{p}"), "name": format!("Customer {p}")}))
            .collect();
        let (s, body) = call(
            &api,
            Method::POST,
            "/contacts",
            Some(Value::Array(contacts)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let (s, body) = call(
            &api,
            Method::POST,
            &format!("/lists/{list_id}/members"),
            Some(json!({"phones": chunk})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, campaign) = call(
        &api,
        Method::POST,
        "/campaigns",
        Some(json!({
            "name": "Spring", "account_id": account_id,
            "template": {"name": "spring_offer", "language": "en"},
            "variables": [{"source": "contact_name"}],
            "rate": 100, "response_timeout_days": 1
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        &api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list_id})),
    )
    .await;
    assert_eq!(
        (s, body["added"].as_u64()),
        (StatusCode::OK, Some(n as u64)),
        "{body}"
    );
    let (s, body) = call(&api, Method::POST, &format!("/campaigns/{id}/launch"), None).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("RUNNING")),
        "{body}"
    );
    faults.enabled.store(true, Ordering::SeqCst);
    H {
        s: spawned,
        faults,
        id,
        phones,
    }
}

impl H {
    fn table(&self) -> &dyn Table {
        &*self.sys.ports.table
    }

    /// Launcher ticks and queue drains, as AWS would run them, until the queue is empty:
    /// failed records stay in the queue and come back once their visibility timeout (30 s
    /// of the clock) passes.
    async fn run_sender(&self, max_rounds: usize) {
        for _ in 0..max_rounds {
            lambda::launcher(&self.sys.dispatcher, json!({"action": "tick"}))
                .await
                .unwrap();
            self.sys.drain_queue().await.unwrap();
            self.clock.advance(Duration::seconds(31));
            if self.memory_queue().depth() == 0 && self.count(EntryState::Fresh).await == 0 {
                return;
            }
        }
    }

    async fn entries(&self) -> Vec<HopperEntry> {
        let c = repo::get_campaign(self.table(), "acme", &self.id)
            .await
            .unwrap()
            .unwrap();
        repo::all_entries(self.table(), &c).await.unwrap()
    }

    async fn count(&self, s: EntryState) -> usize {
        self.entries().await.iter().filter(|e| e.state == s).count()
    }

    async fn status(&self) -> String {
        let (_, body) = call(
            &self.api,
            Method::GET,
            &format!("/campaigns/{}", self.id),
            None,
        )
        .await;
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Sends per phone at the simulator.
    fn sends(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.simulator().sent() {
            *m.entry(s.to.clone()).or_insert(0) += 1;
        }
        m
    }

    async fn assert_counters_equal_recount(&self) {
        let entries = self.entries().await;
        let recount: BTreeMap<String, i64> = stats::recount(&entries)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let live: BTreeMap<String, i64> = repo::get_counters(self.table(), "acme", &self.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        assert_eq!(live, recount, "live counters equal a recount");
    }
}

async fn emulator_table() -> Arc<dyn Table> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the suite with scripts/test.sh, which starts the local AWS emulator");
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "emulator must be on loopback"
    );
    let cfg = aws::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = format!("amo-{}", uuid::Uuid::new_v4().simple());
    aws::setup::ensure_table(&ddb, &name).await.unwrap();
    Arc::new(aws::dynamo::DynamoTable::new(ddb, name))
}

// ---- R4.10 scenarios ----

/// The worker dies after the provider accepted the message and before the outcome is
/// stored: the entry sits in SENDING until the claim is stale, then becomes RETRY
/// "outcome unknown"; it no longer holds the campaign open.
async fn stale_sending_entry_is_reclaimed(table: Arc<dyn Table>) {
    let h = harness(table, 3, Faults::new(7, 0, vec![Point::AfterSend])).await;
    h.run_sender(1).await;
    assert_eq!(h.faults.count(Point::AfterSend), 1);
    assert_eq!(h.simulator().sent().len(), 3, "all three went out");
    let stuck = h.faults.left_sending.lock().unwrap()[&Point::AfterSend][0].clone();
    let entries = h.entries().await;
    let e = entries.iter().find(|e| e.phone.as_str() == stuck).unwrap();
    assert_eq!(e.state, EntryState::Sending);
    assert!(e.claimed_at.is_some());
    h.faults.enabled.store(false, Ordering::SeqCst);

    // Before the threshold the sweeper leaves it alone: the worker may still be at work.
    let claimed_at = e.claimed_at.unwrap();
    let fresh_sweep_at = claimed_at + SENDING_STALE_AFTER - Duration::seconds(1);
    h.clock.advance(fresh_sweep_at - h.clock.now());
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!((report.reclaimed, report.completed), (0, 0));
    assert_eq!(h.count(EntryState::Sending).await, 1);

    h.clock.advance(Duration::seconds(1));
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!(report.reclaimed, 1);
    let entries = h.entries().await;
    let e = entries.iter().find(|e| e.phone.as_str() == stuck).unwrap();
    assert_eq!(
        (e.state, e.error.as_deref(), e.disposition.as_deref()),
        (
            EntryState::Retry,
            Some(OUTCOME_UNKNOWN),
            Some("outcome_unknown")
        )
    );
    assert_eq!(h.count(EntryState::Pending).await, 2);
    h.assert_counters_equal_recount().await;
    // Sweeping again changes nothing.
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().reclaimed, 0);
    h.assert_counters_equal_recount().await;

    // RETRY is not open: once the others time out, the campaign completes.
    h.clock.advance(Duration::days(1) + Duration::minutes(1));
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!((report.expired, report.completed), (2, 1));
    assert_eq!(h.status().await, "COMPLETED");
    assert_eq!(h.count(EntryState::Retry).await, 1);
    h.assert_counters_equal_recount().await;
}

/// The worker dies right after the claim; its queue message comes back after the entry
/// was reclaimed, the launcher ticks, the campaign is paused and resumed: the entry is
/// never sent.
async fn reclaimed_entry_is_never_resent(table: Arc<dyn Table>) {
    let h = harness(table, 3, Faults::new(11, 0, vec![Point::AfterClaim])).await;
    h.run_sender(1).await;
    assert_eq!(h.faults.count(Point::AfterClaim), 1);
    let stuck = h.faults.left_sending.lock().unwrap()[&Point::AfterClaim][0].clone();
    assert_eq!(h.simulator().sent().len(), 2);
    assert_eq!(
        h.memory_queue().depth(),
        1,
        "the failed record waits for redelivery"
    );
    h.faults.enabled.store(false, Ordering::SeqCst);

    h.clock.advance(SENDING_STALE_AFTER);
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().reclaimed, 1);
    let e = h
        .entries()
        .await
        .into_iter()
        .find(|e| e.phone.as_str() == stuck)
        .unwrap();
    assert_eq!(
        (e.state, e.error.as_deref()),
        (EntryState::Retry, Some(OUTCOME_UNKNOWN))
    );

    // The queue redelivers the record: it finds the entry not claimable.
    assert_eq!(h.sys.drain_queue().await.unwrap(), 1);
    assert_eq!(h.memory_queue().depth(), 0);
    // The dispatcher never picks RETRY entries, not even after a resume clears cursors.
    h.run_sender(3).await;
    let (s, body) = call(
        &h.api,
        Method::POST,
        &format!("/campaigns/{}/pause", h.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(
        &h.api,
        Method::POST,
        &format!("/campaigns/{}/resume", h.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    h.run_sender(3).await;
    // A record naming it directly sends nothing either.
    let again = h
        .sys
        .sender
        .send_batch(vec![("dup".into(), Ok(e.entry_ref().into()))])
        .await;
    assert!(again.is_empty());

    assert_eq!(h.simulator().sent().len(), 2);
    assert!(
        !h.sends().contains_key(&stuck),
        "the reclaimed entry was never sent"
    );
    let e = h
        .entries()
        .await
        .into_iter()
        .find(|e| e.phone.as_str() == stuck)
        .unwrap();
    assert_eq!((e.state, e.attempts), (EntryState::Retry, 1));
    h.assert_counters_equal_recount().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_10_stale_sending_entry_is_reclaimed_as_retry_outcome_unknown() {
    stale_sending_entry_is_reclaimed(Arc::new(MemoryTable::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_10_stale_sending_entry_is_reclaimed_as_retry_outcome_unknown_on_dynamodb() {
    stale_sending_entry_is_reclaimed(emulator_table().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_10_reclaimed_entry_is_never_resent_automatically() {
    reclaimed_entry_is_never_resent(Arc::new(MemoryTable::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_10_reclaimed_entry_is_never_resent_automatically_on_dynamodb() {
    reclaimed_entry_is_never_resent(emulator_table().await).await;
}

// ---- fault injection ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r4_10_killing_the_sender_at_random_points_never_sends_twice() {
    const ENTRIES: usize = 1200;
    // Each point strikes about 5% of the events where it can.
    let h = harness(
        Arc::new(MemoryTable::new()),
        ENTRIES,
        Faults::new(0x5EED_1234_ABCD, 50, Vec::new()),
    )
    .await;
    h.run_sender(200).await;
    assert_eq!(
        h.memory_queue().depth(),
        0,
        "every record was eventually handled"
    );
    h.faults.enabled.store(false, Ordering::SeqCst);
    let injected: BTreeMap<Point, usize> = h.faults.injected.lock().unwrap().clone();
    eprintln!("entries: {ENTRIES}, faults injected: {injected:?}");
    for p in [
        Point::BeforeClaim,
        Point::AfterClaim,
        Point::AfterSend,
        Point::AfterRecord,
    ] {
        assert!(h.faults.count(p) > 0, "no fault injected {p:?}");
    }

    // The sweeper, past the threshold, reclaims every stuck entry.
    h.clock.advance(SENDING_STALE_AFTER + Duration::minutes(1));
    let report = h.sys.sweeper.sweep().await.unwrap();
    let stuck = h.faults.count(Point::AfterClaim) + h.faults.count(Point::AfterSend);
    assert_eq!(report.reclaimed, stuck);
    // Nothing more goes out afterwards.
    let sent_before = h.simulator().sent().len();
    h.run_sender(3).await;
    assert_eq!(h.simulator().sent().len(), sent_before);

    // Zero duplicates at the simulator.
    let sends = h.sends();
    let duplicates: Vec<_> = sends.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "sends: {}, distinct phones: {}, duplicates: {}",
        h.simulator().sent().len(),
        sends.len(),
        duplicates.len()
    );
    assert!(duplicates.is_empty(), "sent twice: {duplicates:?}");

    // Every entry accounted for.
    let entries = h.entries().await;
    assert_eq!(entries.len(), ENTRIES);
    let after_send: Vec<String> = h
        .faults
        .left_sending
        .lock()
        .unwrap()
        .get(&Point::AfterSend)
        .cloned()
        .unwrap_or_default();
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &entries {
        let phone = e.phone.as_str();
        *by_state.entry(e.state.as_str()).or_insert(0) += 1;
        match e.state {
            EntryState::Pending | EntryState::Closed => {
                assert_eq!(sends.get(phone), Some(&1), "{phone} recorded as sent");
                assert!(e.message_id.is_some());
            }
            EntryState::Retry => {
                assert_eq!(e.error.as_deref(), Some(OUTCOME_UNKNOWN), "{phone}");
                let was_sent = sends.contains_key(phone);
                assert_eq!(
                    was_sent,
                    after_send.iter().any(|p| p == phone),
                    "{phone}: sent only if the worker died after the provider call"
                );
            }
            other => panic!("{phone} ended {other}"),
        }
    }
    eprintln!("entries by state: {by_state:?}");
    assert_eq!(by_state.get("RETRY").copied().unwrap_or(0), stuck);
    assert!(!by_state.contains_key("FRESH") && !by_state.contains_key("SENDING"));
    assert!(h
        .simulator()
        .sent()
        .iter()
        .all(|s| h.phones.contains(&s.to)));
    h.assert_counters_equal_recount().await;
}

// ---- the same faults on voice (issue 17) ----

/// A RUNNING voice campaign over `n` contacts on a Connect account with `lines` lines,
/// whose table dies as `faults` say (off during the setup).
async fn voice_harness(n: usize, lines: u32, faults: Arc<Faults>) -> H {
    use testkit::harness::SIM_CONNECT_GRANT_REF;
    use testkit::simulator::{SIM_CONNECT_CALLER_IDS, SIM_CONNECT_INSTANCE_IDS};
    faults.enabled.store(false, Ordering::SeqCst);
    let spawned = Spawn::new(Arc::new(FaultyTable {
        inner: Arc::new(MemoryTable::new()),
        faults: faults.clone(),
    }))
    .at(Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap())
    .simulator(SimConfig {
        reply_percent: 0,
        rate_limit_per_sec: None,
        ring_seconds: 2,
        call_seconds: 20,
        // Some answer, some leave it to a machine, some never pick up or are busy (and
        // are called again).
        call_mix: vec![
            (testkit::simulator::SimCallOutcome::Human, 5),
            (testkit::simulator::SimCallOutcome::Voicemail, 1),
            (testkit::simulator::SimCallOutcome::NoAnswer, 2),
            (testkit::simulator::SimCallOutcome::Busy, 2),
        ],
        ..SimConfig::default()
    })
    .spawn()
    .await;
    let api = spawned.api.clone();
    let (s, account) = call(
        &api,
        Method::POST,
        "/accounts",
        Some(json!({
            "name": "Calls", "provider": "connect", "sender_id": SIM_CONNECT_INSTANCE_IDS[0],
            "token_ref": SIM_CONNECT_GRANT_REF, "caller_ids": [SIM_CONNECT_CALLER_IDS[0]],
            "max_concurrent_calls": lines
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let phones: Vec<String> = (0..n).map(|i| format!("1415555{i:04}")).collect();
    let (s, list) = call(&api, Method::POST, "/lists", Some(json!({"name": "All"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{list}");
    let list_id = list["id"].as_str().unwrap().to_owned();
    let contacts: Vec<Value> = phones
        .iter()
        .map(|p| json!({"phone": format!("+{p}"), "name": "C"}))
        .collect();
    let (s, body) = call(
        &api,
        Method::POST,
        "/contacts",
        Some(Value::Array(contacts)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let members = json!({ "phones": phones });
    let (s, body) = call(
        &api,
        Method::POST,
        &format!("/lists/{list_id}/members"),
        Some(members),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, campaign) = call(&api, Method::POST, "/campaigns", Some(json!({
        "name": "Calls", "channel": "voice", "account_id": account["id"],
        "voice": {"caller_id": SIM_CONNECT_CALLER_IDS[0], "queue_id": "q-1", "contact_flow_id": "f-1",
            "max_concurrent": lines, "max_call_minutes": 5, "max_retries": 1, "retry_delay_seconds": 30}
    }))).await;
    assert_eq!(s, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        &api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list_id})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(&api, Method::POST, &format!("/campaigns/{id}/launch"), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    faults.enabled.store(true, Ordering::SeqCst);
    H {
        s: spawned,
        faults,
        id,
        phones,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r13_2_killing_the_sender_at_random_points_never_dials_twice() {
    const ENTRIES: usize = 300;
    const LINES: u32 = 20;
    let h = voice_harness(ENTRIES, LINES, Faults::new(0xCA11_5EED, 50, Vec::new())).await;
    // Ticks, sends, the calls' events and the inbound worker, 10 s of the clock a round,
    // until every contact was called or given up on (lost lines lapse at their bound).
    for _ in 0..400 {
        lambda::launcher(&h.sys.dispatcher, json!({"action": "tick"}))
            .await
            .unwrap();
        h.sys.drain_queue().await.unwrap();
        h.simulator().play_calls().await;
        h.sys.drain_inbound().await.unwrap();
        h.sys.drain_queue().await.unwrap();
        // The sweeper does not die here (as in the test above): a reclaim that died after
        // its write would leave its counters to the next repair, which is not this test's.
        h.faults.enabled.store(false, Ordering::SeqCst);
        h.sys.sweeper.sweep().await.unwrap();
        h.faults.enabled.store(true, Ordering::SeqCst);
        h.clock.advance(Duration::seconds(10));
        if h.count(EntryState::Fresh).await == 0 && h.count(EntryState::Sending).await == 0 {
            break;
        }
    }
    h.faults.enabled.store(false, Ordering::SeqCst);
    let injected: BTreeMap<Point, usize> = h.faults.injected.lock().unwrap().clone();
    eprintln!("voice entries: {ENTRIES}, faults injected: {injected:?}");
    for p in [
        Point::BeforeClaim,
        Point::AfterClaim,
        Point::AfterSend,
        Point::AfterRecord,
    ] {
        assert!(h.faults.count(p) > 0, "no fault injected {p:?}");
    }
    // One call per attempt (a contact called at most twice: the call and its retry), and
    // never more calls at once than the lines.
    let mut calls: HashMap<String, usize> = HashMap::new();
    for c in h.simulator().calls() {
        *calls
            .entry(c.to.trim_start_matches('+').to_owned())
            .or_insert(0) += 1;
    }
    let thrice: Vec<_> = calls.iter().filter(|(_, n)| **n > 2).collect();
    assert!(
        thrice.is_empty(),
        "called more than the call and its retry: {thrice:?}"
    );
    let inst = testkit::simulator::SIM_CONNECT_INSTANCE_IDS[0];
    assert!(h.simulator().most_calls_at_once(inst, None) <= LINES as usize);
    // Every entry settled or given up on as unknown; none left to send.
    let entries = h.entries().await;
    let after_send: Vec<String> = h
        .faults
        .left_sending
        .lock()
        .unwrap()
        .get(&Point::AfterSend)
        .cloned()
        .unwrap_or_default();
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &entries {
        *by_state.entry(e.state.as_str()).or_insert(0) += 1;
        let phone = e.phone.as_str();
        // Every call Connect placed is one the entry recorded, except one whose worker
        // died after starting it (its entry's outcome is then unknown).
        let unrecorded = usize::from(after_send.iter().any(|p| p == phone));
        assert_eq!(
            calls.get(phone).copied().unwrap_or(0),
            e.calls.len() + unrecorded,
            "{phone}: {e:?}"
        );
        match e.state {
            EntryState::Closed => assert!(!e.calls.is_empty(), "{phone}"),
            EntryState::Retry => assert_eq!(e.error.as_deref(), Some(OUTCOME_UNKNOWN), "{phone}"),
            other => panic!("{phone} ended {other}: {e:?}"),
        }
    }
    eprintln!(
        "voice entries by state: {by_state:?}, calls: {}",
        calls.len()
    );
    h.assert_counters_equal_recount().await;
}
