//! The five sending pains of PEERS.md, each a test of the whole pipeline: the operator
//! API, the dispatcher, an SQS-like queue with delays, the sender through the real Meta
//! adapter to the WhatsApp simulator over loopback HTTP, and the sweeper. Time is a
//! manual clock shared by the queue and the simulator, so "a minute" is exact and the
//! simulator's 80 messages/s limit is judged on the same seconds the dispatcher planned.
//! Each pain runs on WhatsApp (Meta's Cloud API) and on SMS (Twilio's Messages API, whose
//! limit the simulator holds per number the same way; issue 16).

use axum::http::{Method, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use shared::domain::hopper::EntryState;
use shared::domain::stats;
use shared::ports::Clock;
use shared::repo;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use testkit::harness::{merged, Spawn, Spawned, SIM_TWILIO_TOKEN_REF};
use testkit::memory::MemoryTable;
use testkit::simulator::{SimConfig, SimFailure, SIM_TWILIO_SENDER};

struct Harness(Spawned);

impl std::ops::Deref for Harness {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.0
    }
}

async fn harness() -> Harness {
    let spawned = Spawn::new(Arc::new(MemoryTable::default()))
        .at(Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap())
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .spawn()
        .await;
    Harness(spawned)
}

impl Harness {
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body).await;
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }

    /// An account on `via` with `rate` messages/s (SMS: parts/s), a template (on
    /// WhatsApp), and `n` contacts in a list.
    async fn setup(&self, via: Via, rate: u32, n: usize) -> Setup {
        let body = match via {
            Via::WhatsApp => json!({"name": "Main", "sender_id": "106540352242922",
                "token_ref": "env:SIM_TOKEN", "rate_limit": rate, "waba_id": "100000000000001"}),
            Via::Sms => json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
                "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": rate}),
        };
        let account = self.ok(Method::POST, "/accounts", Some(body)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if via == Via::WhatsApp {
            self.ok(
                Method::POST,
                "/templates",
                Some(
                    json!({"account_id": account, "name": "offer", "language": "en",
                    "category": "MARKETING", "body": "Hi {{1}}"}),
                ),
            )
            .await;
        }
        let phones: Vec<String> = (0..n).map(|i| format!("9198{i:08}")).collect();
        for chunk in phones.chunks(1000) {
            let body: Vec<Value> = chunk
                .iter()
                .map(|p| json!({"phone": p, "name": "Customer"}))
                .collect();
            self.ok(Method::POST, "/contacts", Some(Value::Array(body)))
                .await;
        }
        Setup {
            account,
            phones,
            via,
        }
    }

    /// A launched campaign at `rate`/s over `phones`.
    async fn campaign(&self, s: &Setup, name: &str, rate: u32, phones: &[String]) -> String {
        let what = match s.via {
            Via::WhatsApp => json!({"template": {"name": "offer", "language": "en"}}),
            Via::Sms => json!({"channel": "sms", "message": "Hi {{1}}"}),
        };
        let id = self
            .ok(
                Method::POST,
                "/campaigns",
                Some(merged(
                    json!({
                        "name": name, "account_id": s.account,
                        "variables": [{"source": "contact_name"}],
                        "pacing": {"unit": "messages_per_second", "value": rate},
                    }),
                    what,
                )),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let list = self
            .ok(Method::POST, "/lists", Some(json!({"name": name})))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for chunk in phones.chunks(1000) {
            self.ok(
                Method::POST,
                &format!("/lists/{list}/members"),
                Some(json!({"phones": chunk})),
            )
            .await;
        }
        self.ok(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": list})),
        )
        .await;
        id
    }

    async fn launch(&self, id: &str) {
        self.ok(Method::POST, &format!("/campaigns/{id}/launch"), None)
            .await;
    }

    /// Runs the system for `secs` seconds of clock time in `step_ms` steps: the launcher
    /// ticks every minute, the sweeper with it, and the sender takes what is due.
    async fn run(&self, secs: i64, step_ms: i64) {
        let end = self.clock.now() + Duration::seconds(secs);
        while self.clock.now() < end {
            self.sys.tick_if_due().await.unwrap();
            self.sys.drain_queue().await.unwrap();
            self.clock.advance(Duration::milliseconds(step_ms));
        }
    }

    /// Accepted sends per phone at the simulator.
    fn sends_per_phone(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.simulator().sent() {
            // Twilio's `To` is E.164 with its `+`.
            *m.entry(s.to.trim_start_matches('+').to_owned())
                .or_insert(0) += 1;
        }
        m
    }

    async fn states(&self, id: &str) -> BTreeMap<EntryState, usize> {
        let c = repo::get_campaign(&*self.table, "acme", id)
            .await
            .unwrap()
            .unwrap();
        let mut m = BTreeMap::new();
        for e in repo::all_entries(&*self.table, &c).await.unwrap() {
            *m.entry(e.state).or_insert(0) += 1;
        }
        m
    }

    async fn status(&self, id: &str) -> String {
        self.ok(Method::GET, &format!("/campaigns/{id}"), None)
            .await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The live counters equal a recount of the entries.
    async fn assert_counters_reconcile(&self, id: &str) {
        let c = repo::get_campaign(&*self.table, "acme", id)
            .await
            .unwrap()
            .unwrap();
        let entries = repo::all_entries(&*self.table, &c).await.unwrap();
        let recount: BTreeMap<String, i64> = stats::recount(&entries)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let live: BTreeMap<String, i64> = repo::get_counters(&*self.table, "acme", id)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        assert_eq!(live, recount, "live counters equal a recount");
    }
}

struct Setup {
    account: String,
    phones: Vec<String>,
    via: Via,
}

/// The channel and provider a pain runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// A WhatsApp template through Meta's Cloud API.
    WhatsApp,
    /// An SMS message of one part through Twilio.
    Sms,
}

/// Pain 1: resuming a paused campaign re-sent to people who already had the message;
/// overlapping jobs sent duplicates. Here: pause mid-flight with messages queued, run
/// the queue dry while paused, resume, run overlapping ticks and redeliver a batch: each
/// contact gets the message exactly once.
#[tokio::test]
async fn pain1_resume_after_pause_sends_nobody_twice() {
    pain1(Via::WhatsApp).await;
}

#[tokio::test]
async fn pain1_resume_after_pause_sends_nobody_twice_on_sms() {
    pain1(Via::Sms).await;
}

async fn pain1(via: Via) {
    let h = harness().await;
    let s = h.setup(via, 80, 900).await;
    let id = h.campaign(&s, "Resume", 10, &s.phones).await;
    h.launch(&id).await;
    h.run(25, 1000).await;
    let before_pause = h.simulator().sent().len();
    assert!(
        (200..=300).contains(&before_pause),
        "about 10/s for 25 s: {before_pause}"
    );
    h.ok(Method::POST, &format!("/campaigns/{id}/pause"), None)
        .await;
    // The rest of the tick's queued messages come due while paused: none goes out.
    h.run(120, 1000).await;
    assert_eq!(
        h.simulator().sent().len(),
        before_pause,
        "nothing new while paused"
    );
    h.ok(Method::POST, &format!("/campaigns/{id}/resume"), None)
        .await;
    // Overlapping jobs: two launcher ticks at once, and a batch delivered twice.
    let c = repo::get_campaign(&*h.table, "acme", &id)
        .await
        .unwrap()
        .unwrap();
    let (a, b) = tokio::join!(h.sys.dispatcher.tick(), h.sys.dispatcher.tick());
    assert!(a.unwrap().enqueued + b.unwrap().enqueued > 0);
    let again = shared::app::dispatch::Allowance::of(&c);
    h.sys.dispatcher.dispatch(&c, again).await.unwrap();
    h.run(200, 1000).await;
    let per_phone = h.sends_per_phone();
    assert_eq!(per_phone.len(), 900, "everyone got it");
    assert!(
        per_phone.values().all(|n| *n == 1),
        "nobody twice: {:?}",
        per_phone
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    h.run(60, 1000).await;
    assert_eq!(h.states(&id).await.get(&EntryState::Pending), Some(&900));
    h.assert_counters_reconcile(&id).await;
}

/// Pain 2: a campaign marked finished with messages unsent, and no way to retry only the
/// failures. Here: temporary failures end RETRY, permanent ones FAILED; the campaign
/// completes; retry sends the temporary failures again and never the permanent ones or
/// the successes.
#[tokio::test]
async fn pain2_retry_sends_only_the_temporary_failures() {
    pain2(Via::WhatsApp).await;
}

#[tokio::test]
async fn pain2_retry_sends_only_the_temporary_failures_on_sms() {
    pain2(Via::Sms).await;
}

async fn pain2(via: Via) {
    let h = harness().await;
    let s = h.setup(via, 80, 60).await;
    let (temporary, permanent) = (&s.phones[0..5], &s.phones[5..8]);
    for p in temporary {
        h.simulator()
            .set_failure(p, SimFailure::temporary().times(1));
    }
    for p in permanent {
        h.simulator().set_failure(p, SimFailure::permanent());
    }
    let id = h.campaign(&s, "Retry", 20, &s.phones).await;
    h.launch(&id).await;
    h.run(180, 1000).await;
    let states = h.states(&id).await;
    assert_eq!(states.get(&EntryState::Retry), Some(&5), "{states:?}");
    assert_eq!(states.get(&EntryState::Failed), Some(&3), "{states:?}");
    assert_eq!(states.get(&EntryState::Pending), Some(&52), "{states:?}");
    assert_eq!(h.simulator().sent().len(), 52);

    // The response timeout passes: the campaign completes with the failures left.
    h.clock.advance(Duration::days(1) + Duration::minutes(1));
    h.run(120, 1000).await;
    assert_eq!(h.status(&id).await, "COMPLETED");

    let (s2, op) = h
        .call(Method::POST, &format!("/campaigns/{id}/retry"), None)
        .await;
    assert_eq!(s2, StatusCode::ACCEPTED, "{op}");
    h.run(240, 1000).await;
    let per_phone = h.sends_per_phone();
    for p in temporary {
        assert_eq!(
            per_phone.get(p),
            Some(&1),
            "temporary failure sent on retry"
        );
    }
    for p in permanent {
        assert_eq!(per_phone.get(p), None, "permanent failure never sent");
    }
    assert_eq!(
        h.simulator().sent().len(),
        57,
        "52 successes once, 5 retried, 0 permanent"
    );
    let states = h.states(&id).await;
    assert_eq!(states.get(&EntryState::Retry), None, "{states:?}");
    assert_eq!(states.get(&EntryState::Failed), Some(&3));
    h.assert_counters_reconcile(&id).await;
}

/// Pain 3: pause/resume stalls or finishes early. Pause stops sending within one tick
/// (here: at once, even for messages already queued), and resume continues where it
/// stopped until everyone has the message and the campaign completes.
#[tokio::test]
async fn pain3_pause_takes_effect_within_one_tick_and_resume_continues() {
    pain3(Via::WhatsApp).await;
}

#[tokio::test]
async fn pain3_pause_takes_effect_within_one_tick_and_resume_continues_on_sms() {
    pain3(Via::Sms).await;
}

async fn pain3(via: Via) {
    let h = harness().await;
    let s = h.setup(via, 80, 1500).await;
    let id = h.campaign(&s, "Pause", 10, &s.phones).await;
    h.launch(&id).await;
    h.run(10, 1000).await;
    h.ok(Method::POST, &format!("/campaigns/{id}/pause"), None)
        .await;
    let at_pause = h.simulator().sent().len();
    h.run(61, 1000).await;
    assert_eq!(
        h.simulator().sent().len(),
        at_pause,
        "no send after the pause"
    );
    assert_eq!(h.status(&id).await, "PAUSED");
    h.ok(Method::POST, &format!("/campaigns/{id}/resume"), None)
        .await;
    // The next tick picks it up (the launcher ticks every minute) and a full tick's
    // worth at 10/s goes out in the minute after it.
    let resumed_at = h.clock.now();
    h.run(121, 1000).await;
    let first_after = h
        .simulator()
        .sent()
        .iter()
        .map(|r| r.at)
        .filter(|at| *at >= resumed_at)
        .min()
        .expect("sending again after resume");
    assert!(
        first_after - resumed_at <= Duration::seconds(60),
        "within one tick"
    );
    assert!(
        h.simulator().sent().len() >= at_pause + 590,
        "sending again at 10/s after resume"
    );
    h.run(180, 1000).await;
    assert_eq!(h.sends_per_phone().len(), 1500);
    assert!(h.sends_per_phone().values().all(|n| *n == 1));
    // The send times after resume hold the rate: no catch-up burst.
    let per_second = h.simulator().sent_per_second();
    let after: Vec<usize> = per_second
        .iter()
        .filter(|(s, _)| **s >= resumed_at.timestamp())
        .map(|(_, n)| *n)
        .collect();
    assert!(after.iter().all(|n| *n <= 10), "{after:?}");
    h.clock.advance(Duration::days(1) + Duration::minutes(1));
    h.run(61, 1000).await;
    assert_eq!(h.status(&id).await, "COMPLETED");
    h.assert_counters_reconcile(&id).await;
}

/// Pain 4: rate limits only slowed enqueueing, so sends burst and the provider
/// throttled. At 80/s configured against the simulator's limit of 80/s there are no
/// throttling errors over full minutes, and each minute's count is within 1 % of 4,800.
#[tokio::test]
async fn pain4_80_per_second_against_a_limit_of_80_has_no_throttling_and_holds_the_rate() {
    pain4(Via::WhatsApp).await;
}

#[tokio::test]
async fn pain4_80_per_second_against_a_limit_of_80_has_no_throttling_and_holds_the_rate_on_sms() {
    pain4(Via::Sms).await;
}

async fn pain4(via: Via) {
    let h = harness().await;
    assert_eq!(h.simulator().rate_limit(), Some(80));
    let s = h.setup(via, 80, 10_000).await;
    let id = h.campaign(&s, "Fast", 80, &s.phones).await;
    h.launch(&id).await;
    let start = h.clock.now().timestamp();
    // Two full minutes, with the sender polling every 250 ms.
    h.run(120, 250).await;
    assert_eq!(h.simulator().throttled().len(), 0, "no 130429 at all");
    let per_second = h.simulator().sent_per_second();
    assert!(
        per_second.values().all(|n| *n <= 80),
        "never above 80 in a second"
    );
    for minute in 0..2 {
        let from = start + minute * 60;
        let n: usize = per_second.range(from..from + 60).map(|(_, n)| *n).sum();
        let error = (n as f64 - 4800.0).abs() / 4800.0;
        assert!(
            error <= 0.01,
            "minute {minute}: {n} sends, {:.2} % off",
            error * 100.0
        );
    }
    h.assert_counters_reconcile(&id).await;
}

/// Pain 5: only global limits. Limits here are per campaign (its pacing) and per sender
/// (the account's throughput): two campaigns on one account share its limit, each gets
/// half, together they never exceed it, and the provider never throttles.
#[tokio::test]
async fn pain5_two_campaigns_on_one_account_share_its_limit() {
    pain5(Via::WhatsApp).await;
}

#[tokio::test]
async fn pain5_two_campaigns_on_one_account_share_its_limit_on_sms() {
    pain5(Via::Sms).await;
}

async fn pain5(via: Via) {
    let h = harness().await;
    let s = h.setup(via, 80, 12_000).await;
    let (a_phones, b_phones) = s.phones.split_at(6000);
    let a = h.campaign(&s, "A", 80, a_phones).await;
    let b = h.campaign(&s, "B", 80, b_phones).await;
    h.launch(&a).await;
    h.launch(&b).await;
    let start = h.clock.now().timestamp();
    h.run(120, 250).await;
    assert_eq!(
        h.simulator().throttled().len(),
        0,
        "the account's limit was never exceeded"
    );
    let per_second = h.simulator().sent_per_second();
    assert!(per_second.values().all(|n| *n <= 80), "{per_second:?}");
    // Per campaign: who each send belongs to, by its contact (an SMS sent without a
    // status callback carries no callback data).
    let in_a: std::collections::HashSet<&str> = a_phones.iter().map(String::as_str).collect();
    let mut per_campaign: HashMap<String, usize> = HashMap::new();
    for rec in h.simulator().sent() {
        if rec.at.timestamp() >= start + 60 && rec.at.timestamp() < start + 120 {
            let owner = if in_a.contains(rec.to.trim_start_matches('+')) {
                &a
            } else {
                &b
            };
            *per_campaign.entry(owner.clone()).or_insert(0) += 1;
        }
    }
    let (na, nb) = (per_campaign[&a], per_campaign[&b]);
    assert!(
        na + nb <= 4800,
        "together within the account's 80/s: {na} + {nb}"
    );
    assert!((2376..=2400).contains(&na), "A gets half: {na}");
    assert!((2376..=2400).contains(&nb), "B gets half: {nb}");
}
