//! R6.2-R6.4: statistics that reconcile (funnel percentages, not sent by reason, counters
//! sharded over 16 items that sum to a recount, and a recount that repairs drift), the CSV
//! export per contact streamed page by page with the funnel steps a bot flow reported
//! (and in chunks for Lambda), the funnel step API, and the cost estimate per country and
//! category from the price table. On the in-memory table and, where storage matters, on
//! DynamoDB in the emulator.

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::adapters::aws::DynamoTable;
use shared::app::reports::{recount_counters, EXPORT_COLUMNS};
use shared::app::sweep::{PurgeBudget, DELETE_GRACE};
use shared::domain::campaign::{Campaign, CampaignStatus};
use shared::domain::hopper::{EntryState, HopperEntry, Reply};
use shared::domain::inbound::StatusKind;
use shared::domain::outcome::SendFailure;
use shared::domain::phone::PhoneNumber;
use shared::domain::pricing::{self, PriceCategory};
use shared::domain::stats::{self, Counters};
use shared::domain::template::ContactData;
use shared::ports::{Clock, Table};
use shared::repo;
use std::collections::BTreeMap;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use tower::ServiceExt;

// ---- harness ---------------------------------------------------------------------------

struct H {
    s: Spawned,
    /// On the emulator: cases are kept small (every write is an HTTP call).
    emulator: bool,
}

impl std::ops::Deref for H {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

fn harness(table: Arc<dyn Table>, emulator: bool) -> H {
    H {
        s: Spawn::new(table).build(),
        emulator,
    }
}

fn memory() -> H {
    harness(Arc::new(MemoryTable::new()), false)
}

async fn emulator() -> H {
    let table: DynamoTable = common::dynamo_table("R6 reports", "r6-reports").await;
    harness(Arc::new(table), true)
}

fn t(h: &H) -> &dyn Table {
    &*h.table
}

impl H {
    /// A campaign by name only (DRAFT, 16 hopper shards); its stored form.
    async fn campaign(&self) -> Campaign {
        let v = self
            .ok(Method::POST, "/campaigns", Some(json!({"name": "Reports"})))
            .await;
        self.stored(v["id"].as_str().unwrap()).await
    }

    async fn stored(&self, id: &str) -> Campaign {
        repo::get_campaign(t(self), common::TENANT, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// A campaign with an account and the template `name` of `category`.
    async fn priced_campaign(&self, name: &str, category: &str) -> Campaign {
        let acc = self
            .ok(Method::POST, "/accounts", Some(common::account_body()))
            .await;
        let account = acc["id"].as_str().unwrap();
        let mut tpl = common::template_body(account, name);
        tpl["category"] = json!(category);
        self.ok(Method::POST, "/templates", Some(tpl)).await;
        let v = self
            .ok(
                Method::POST,
                "/campaigns",
                Some(common::campaign_body(name, account, name)),
            )
            .await;
        self.stored(v["id"].as_str().unwrap()).await
    }

    /// Writes a FRESH entry for `phone` and counts it, then moves it along with `shape`
    /// and counts the change: the way the use cases keep counters.
    async fn entry(
        &self,
        c: &Campaign,
        phone: &str,
        seq: u64,
        shape: impl FnOnce(&mut HopperEntry),
    ) -> HopperEntry {
        let tb = t(self);
        let contact = ContactData {
            name: Some(format!("Customer {seq}")),
            ..Default::default()
        };
        let mut e = HopperEntry::new(c, PhoneNumber::parse(phone).unwrap(), contact, seq);
        assert!(repo::insert_entry(tb, &mut e, chrono::Utc::now())
            .await
            .unwrap());
        repo::add_counters(tb, &c.tenant, &c.id, &stats::delta(None, &e))
            .await
            .unwrap();
        let before = e.clone();
        shape(&mut e);
        if e != before {
            repo::save_entry(tb, &mut e, chrono::Utc::now())
                .await
                .unwrap();
            repo::add_counters(tb, &c.tenant, &c.id, &stats::delta(Some(&before), &e))
                .await
                .unwrap();
        }
        e
    }

    /// Writes an entry without counting it (exports need no counters).
    async fn plain_entry(&self, e: &mut HopperEntry) {
        assert!(repo::insert_entry(t(self), e, chrono::Utc::now())
            .await
            .unwrap());
    }

    async fn live(&self, c: &Campaign) -> Counters {
        stats::nonzero(&repo::get_counters(t(self), &c.tenant, &c.id).await.unwrap())
    }

    async fn recounted(&self, c: &Campaign) -> Counters {
        let all = repo::all_entries(t(self), c).await.unwrap();
        stats::recount(&all)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    async fn get_raw(&self, path: &str) -> axum::response::Response {
        self.api
            .clone()
            .oneshot(common::request(
                common::TENANT,
                Method::GET,
                path,
                "application/json",
                Body::empty(),
            ))
            .await
            .unwrap()
    }
}

fn reply(text: Option<&str>, button: Option<&str>, at: DateTime<Utc>) -> Reply {
    Reply {
        message_id: "wamid.in".into(),
        text: text.map(str::to_owned),
        button: button.map(str::to_owned),
        at,
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn sent(now: DateTime<Utc>) -> impl FnOnce(&mut HopperEntry) {
    move |e| {
        e.claim(now).unwrap();
        e.record_sent(format!("wamid.{}", e.phone), now, Duration::days(1));
    }
}

/// Every row of a CSV body, the header first.
fn csv_rows(body: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

// ---- R6.2 statistics -------------------------------------------------------------------

#[tokio::test]
async fn r6_2_statistics_show_the_funnel_percentages_and_not_sent_by_reason() {
    let h = memory();
    let c = h.campaign().await;
    let now = h.clock.now();
    let later = now + Duration::minutes(5);
    let p = |i: u32| format!("9198123456{i:02}");
    // Two replied (a reply proves delivery and reading), two read, two delivered, one
    // only sent, one blocked, one refused by Meta, one duplicate, one with an unknown
    // outcome, and one still to send.
    h.entry(&c, &p(1), 1, |e| {
        sent(now)(e);
        e.apply_reply(reply(Some("Yes please"), None, later));
    })
    .await;
    h.entry(&c, &p(2), 2, |e| {
        sent(now)(e);
        e.apply_reply(reply(Some("Yes"), Some("Yes"), later));
    })
    .await;
    for i in 3..=4 {
        h.entry(&c, &p(i), i.into(), |e| {
            sent(now)(e);
            e.apply_status(&StatusKind::Read, later);
        })
        .await;
    }
    for i in 5..=6 {
        h.entry(&c, &p(i), i.into(), |e| {
            sent(now)(e);
            e.apply_status(&StatusKind::Delivered, later);
        })
        .await;
    }
    h.entry(&c, &p(7), 7, sent(now)).await;
    h.entry(&c, &p(8), 8, |e| {
        e.record_ineligible(EntryState::BlockList, "block list", None)
    })
    .await;
    h.entry(&c, &p(9), 9, |e| {
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
    })
    .await;
    h.entry(&c, &p(10), 10, |e| {
        e.record_ineligible(
            EntryState::Skipped,
            "duplicate",
            Some("sent by another campaign".into()),
        )
    })
    .await;
    h.entry(&c, &p(11), 11, |e| {
        e.claim(now).unwrap();
        assert!(e.reclaim_stale(now + Duration::hours(1), Duration::minutes(15)));
    })
    .await;
    h.entry(&c, &p(12), 12, |_| {}).await;

    let s = h
        .ok(Method::GET, &format!("/campaigns/{}/stats", c.id), None)
        .await;
    assert_eq!(
        [
            &s["target"],
            &s["sent"],
            &s["delivered"],
            &s["read"],
            &s["replied"]
        ],
        [&json!(12), &json!(7), &json!(6), &json!(4), &json!(2)],
        "{s}"
    );
    assert_eq!((&s["failed"], &s["retry"]), (&json!(1), &json!(1)), "{s}");
    assert_eq!(
        s["not_sent_by_reason"],
        json!({"Message Undeliverable": 1, "block list": 1, "duplicate": 1, "outcome unknown": 1}),
        "{s}"
    );
    assert_eq!(s["not_sent"], 4);
    // Received of sent, read of received, replied of received.
    assert_eq!(s["delivered_pct"], 85.7);
    assert_eq!(s["read_pct"], 66.7);
    assert_eq!(s["replied_pct"], 33.3);
    // The totals reconcile: every entry is open, closed or not sent, and the reasons sum
    // to the not-sent states.
    let hop = h
        .ok(Method::GET, &format!("/campaigns/{}/hopper", c.id), None)
        .await;
    let st = |k: &str| hop["states"][k].as_i64().unwrap();
    assert_eq!(
        s["open"].as_i64().unwrap() + st("CLOSED") + s["not_sent"].as_i64().unwrap(),
        s["target"].as_i64().unwrap(),
        "{s} {hop}"
    );
    assert_eq!(
        st("FAILED") + st("BLOCK_LIST") + st("SKIPPED") + st("RETRY"),
        s["not_sent"].as_i64().unwrap()
    );
    let by_reason: i64 = s["not_sent_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(by_reason, 4);
    // And they equal a recount of the entries.
    assert_eq!(h.live(&c).await, h.recounted(&c).await);
}

async fn sharded_counters_sum_and_equal_a_recount(h: H) {
    let c = h.campaign().await;
    let tb = t(&h);
    let now = h.clock.now();
    let n: u32 = if h.emulator { 40 } else { 120 };
    // Entries counted one write at a time: the writes spread over the shards.
    for i in 0..n {
        let phone = format!("91981{i:07}");
        h.entry(&c, &phone, i.into(), |e| {
            if i % 3 == 0 {
                sent(now)(e);
            }
            if i % 7 == 0 {
                e.record_ineligible(EntryState::BlockList, "block list", None);
            }
        })
        .await;
    }
    let pk = format!("CAMPAIGN#{}#{}", c.tenant, c.id);
    let mut shards = Vec::new();
    for k in 0..repo::COUNTER_SHARDS {
        if let Some(item) = tb.get(&pk, &format!("STATS#{k}")).await.unwrap() {
            shards.push(item.get("target").and_then(Value::as_i64).unwrap_or(0));
        }
    }
    assert!(
        shards.len() > 1,
        "counter writes spread over shards: {shards:?}"
    );
    assert!(shards.iter().all(|t| *t < i64::from(n)), "{shards:?}");
    assert_eq!(shards.iter().sum::<i64>(), i64::from(n));
    assert_eq!(h.live(&c).await, h.recounted(&c).await);

    // Many writers at once: every change is kept.
    let burst: Vec<_> = (0..48)
        .map(|_| {
            let mut d = stats::Delta::new();
            d.insert("sent", 1);
            d
        })
        .collect();
    let writes = burst
        .iter()
        .map(|d| repo::add_counters(tb, &c.tenant, &c.id, d));
    for r in futures::future::join_all(writes).await {
        r.unwrap();
    }
    let live = h.live(&c).await;
    let mut expected = h.recounted(&c).await;
    *expected.get_mut("sent").unwrap() += 48;
    assert_eq!(live, expected);
    let mut undo = stats::Delta::new();
    undo.insert("sent", -48);
    repo::add_counters(tb, &c.tenant, &c.id, &undo)
        .await
        .unwrap();

    // Counters stored in the single item of older campaigns are still summed.
    let legacy_entry = h.entry(&c, "919800000001", 9999, |_| {}).await;
    let d = stats::delta(None, &legacy_entry);
    let mut minus = d.clone();
    minus.values_mut().for_each(|v| *v = -*v);
    // Move its count from a shard to the legacy `STATS` item.
    repo::add_counters(tb, &c.tenant, &c.id, &minus)
        .await
        .unwrap();
    let legacy: Vec<(String, i64)> = d.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    tb.add(&pk, "STATS", &legacy).await.unwrap();
    assert_eq!(h.live(&c).await, h.recounted(&c).await);

    // The walk the recount and the cost estimate use reads every entry once.
    let (entries, walked) = recount_counters(tb, &c).await.unwrap();
    assert_eq!(entries, i64::from(n) + 1);
    assert_eq!(walked, h.recounted(&c).await);
}

async fn recount_repairs_drifted_counters(h: H) {
    let c = h.campaign().await;
    let tb = t(&h);
    let now = h.clock.now();
    let mut entries = Vec::new();
    for i in 0..20u32 {
        let e = h
            .entry(&c, &format!("91982{i:07}"), i.into(), |e| {
                if i % 2 == 0 {
                    sent(now)(e);
                }
                if i % 5 == 0 {
                    e.claim(now).ok();
                    e.record_failure(&SendFailure::meta(131026, "x"));
                }
            })
            .await;
        entries.push(e);
    }
    let path = format!("/campaigns/{}/stats/recount", c.id);
    // Nothing drifted: nothing to repair.
    let v = h.ok(Method::POST, &path, None).await;
    assert_eq!(v["difference"], json!({}), "{v}");
    assert_eq!(v["entries"], 20);
    assert_eq!(v["before"], v["after"]);

    // A worker died between storing an entry and its counter change; a counter write was
    // applied twice; a counter no entry explains.
    let mut e = entries[2].clone();
    e.apply_status(&StatusKind::Read, now);
    repo::save_entry(tb, &mut e, chrono::Utc::now())
        .await
        .unwrap();
    let mut twice = stats::Delta::new();
    twice.insert("sent", 2);
    twice.insert("PENDING", 1);
    repo::add_counters(tb, &c.tenant, &c.id, &twice)
        .await
        .unwrap();
    repo::add_named_counters(
        tb,
        &c.tenant,
        &c.id,
        &Counters::from([("reason:ghost".to_owned(), 3)]),
    )
    .await
    .unwrap();
    assert_ne!(h.live(&c).await, h.recounted(&c).await);
    let before = h.live(&c).await;

    let v = h.ok(Method::POST, &path, None).await;
    let expected = stats::repair(&before, &h.recounted(&c).await);
    assert_eq!(
        expected,
        Counters::from([
            ("sent".to_owned(), -2),
            ("PENDING".to_owned(), -1),
            ("delivered".to_owned(), 1),
            ("read".to_owned(), 1),
            ("reason:ghost".to_owned(), -3),
        ])
    );
    assert_eq!(v["difference"], json!(expected), "{v}");
    assert_eq!(v["before"], json!(before));
    assert_eq!(v["after"], json!(h.recounted(&c).await));
    assert_eq!(h.live(&c).await, h.recounted(&c).await, "repaired");
    let s = h
        .ok(Method::GET, &format!("/campaigns/{}/stats", c.id), None)
        .await;
    assert!(s["not_sent_by_reason"].get("ghost").is_none(), "{s}");
    // Again: nothing left to repair.
    let v = h.ok(Method::POST, &path, None).await;
    assert_eq!(v["difference"], json!({}), "{v}");

    // Not while the campaign runs; not for an unknown campaign.
    let mut running = h.stored(&c.id).await;
    running.status = CampaignStatus::Running;
    repo::save_campaign(tb, &mut running).await.unwrap();
    let (s, v) = h.call(Method::POST, &path, None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("RUNNING"), "{v}");
    let (s, _) = h
        .call(Method::POST, "/campaigns/cmp_nope/stats/recount", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---- R6.3 export and funnel steps ------------------------------------------------------

async fn csv_export_streams_every_entry_with_funnel_steps(h: H, n: u32, chunk: u32) {
    let c = h.campaign().await;
    let now = h.clock.now();
    let phone = |i: u32| format!("9177{i:08}");
    for i in 0..n {
        let contact = ContactData {
            name: Some(match i {
                2 => "=cmd|' /C calc'!A0".to_owned(),
                _ => format!("Customer {i}"),
            }),
            ..Default::default()
        };
        let mut e = HopperEntry::new(
            &c,
            PhoneNumber::parse(&phone(i)).unwrap(),
            contact,
            i.into(),
        );
        match i {
            0 => {
                sent(now)(&mut e);
                e.apply_reply(reply(
                    Some("Yes, \"gold\" plan,\nplease"),
                    None,
                    now + Duration::minutes(4),
                ));
            }
            1 => {
                e.claim(now).unwrap();
                e.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
            }
            3 => {
                sent(now)(&mut e);
                e.apply_reply(reply(None, Some("Call me"), now + Duration::minutes(9)));
            }
            _ if i % 10 == 0 => sent(now)(&mut e),
            _ => {}
        }
        h.plain_entry(&mut e).await;
    }
    // Funnel steps a bot flow reports: out of order for contact 0, one for contact 3,
    // one for the last contact (another shard, most likely).
    let steps = format!("/campaigns/{}/contacts/{{}}/steps", c.id);
    let at = |m: i64| now + Duration::minutes(m);
    for (i, step, m) in [
        (0, "paid", 30),
        (0, "chose_plan", 20),
        (3, "asked_agent", 12),
        (n - 1, "opened_menu", 1),
    ] {
        h.ok(
            Method::POST,
            &steps.replace("{}", &phone(i)),
            Some(json!({"step": step, "at": rfc(at(m))})),
        )
        .await;
    }

    // The whole export, streamed: several body frames, one row per entry.
    let path = format!("/campaigns/{}/export.csv", c.id);
    let resp = h.get_raw(&path).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    assert!(resp.headers().get("x-next-cursor").is_none());
    let mut frames = 0;
    let mut body = Vec::new();
    let mut stream = resp.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        frames += 1;
        body.extend_from_slice(&chunk.unwrap());
    }
    let rows = csv_rows(&body);
    assert_eq!(rows[0], EXPORT_COLUMNS.to_vec());
    assert_eq!(rows.len() as u32, n + 1, "one row per entry");
    assert!(
        frames as u32 > n / 1000,
        "streamed a page at a time: {frames} frames"
    );
    let by_phone: BTreeMap<&str, &Vec<String>> =
        rows[1..].iter().map(|r| (r[0].as_str(), r)).collect();
    assert_eq!(by_phone.len() as u32, n, "every entry once");
    let col = |r: &Vec<String>, name: &str| {
        r[EXPORT_COLUMNS.iter().position(|c| *c == name).unwrap()].clone()
    };
    let r0 = by_phone[phone(0).as_str()];
    assert_eq!(col(r0, "name"), "Customer 0");
    assert_eq!(col(r0, "status"), "CLOSED");
    assert_eq!(col(r0, "disposition"), "replied");
    assert_eq!(col(r0, "attempts"), "1");
    assert_eq!(col(r0, "sent_at"), rfc(now));
    assert_eq!(col(r0, "replied_at"), rfc(at(4)));
    assert_eq!(
        col(r0, "reply"),
        "Yes, \"gold\" plan,\nplease",
        "quoted intact"
    );
    assert_eq!(
        col(r0, "funnel"),
        format!("chose_plan@{};paid@{}", rfc(at(20)), rfc(at(30))),
        "steps in time order"
    );
    let r1 = by_phone[phone(1).as_str()];
    assert_eq!(
        (col(r1, "status"), col(r1, "error"), col(r1, "reason")),
        (
            "FAILED".to_owned(),
            "Message Undeliverable".to_owned(),
            "Message Undeliverable".to_owned()
        )
    );
    assert_eq!(col(r1, "sent_at"), "");
    assert_eq!(col(r1, "funnel"), "");
    assert_eq!(
        col(by_phone[phone(2).as_str()], "name"),
        "'=cmd|' /C calc'!A0",
        "a formula is neutralised"
    );
    let r3 = by_phone[phone(3).as_str()];
    assert_eq!(
        col(r3, "reply"),
        "Call me",
        "a button reply shows the button"
    );
    assert_eq!(col(r3, "funnel"), format!("asked_agent@{}", rfc(at(12))));
    assert_eq!(
        col(by_phone[phone(n - 1).as_str()], "funnel"),
        format!("opened_menu@{}", rfc(at(1)))
    );

    // In chunks (for Lambda): the same rows in the same order.
    let mut chunked: Vec<Vec<String>> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut chunks = 0;
    loop {
        chunks += 1;
        assert!(chunks < 1000, "chunks never end");
        let uri = match &cursor {
            None => format!("{path}?limit={chunk}"),
            Some(c) => format!("{path}?limit={chunk}&cursor={}", common::urlencode(c)),
        };
        let resp = h.get_raw(&uri).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let next = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let part = csv_rows(&bytes);
        if cursor.is_some() {
            assert_ne!(
                part.first(),
                Some(&rows[0]),
                "no header after the first chunk"
            );
        }
        assert!(part.len() as u32 <= chunk + 1);
        chunked.extend(part);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(chunked, rows, "chunks add up to the streamed export");
    assert!(chunks as u32 >= n / chunk, "{chunks} chunks");

    // Bad parameters name themselves; unknown campaigns are 404.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=20001", "limit"),
        ("limit=x", "limit"),
        ("cursor=nope", "cursor"),
        ("cursor=99:", "cursor"),
    ] {
        let (s, v) = h.call(Method::GET, &format!("{path}?{q}"), None).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}: {v}"
        );
    }
    let (s, v) = h
        .call(Method::GET, "/campaigns/cmp_nope/export.csv", None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn r6_3_csv_export_streams_every_entry_with_funnel_steps() {
    csv_export_streams_every_entry_with_funnel_steps(memory(), 20_000, 7_000).await;
}

#[tokio::test]
async fn r6_3_csv_export_streams_every_entry_with_funnel_steps_on_emulator() {
    csv_export_streams_every_entry_with_funnel_steps(emulator().await, 300, 120).await;
}

#[tokio::test]
async fn r6_3_funnel_step_api_validates_and_records() {
    let h = harness(Arc::new(MemoryTable::new()), false);
    let clock = h.clock.clone();
    let c = h.campaign().await;
    let phone = "919812345678";
    h.entry(&c, phone, 1, |_| {}).await;
    let path = format!("/campaigns/{}/contacts/{phone}/steps", c.id);

    let body = json!({"step": "chose_plan", "at": "2026-11-22T09:20:00.5Z"});
    let (s, v) = h.call(Method::POST, &path, Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v,
        json!({"phone": phone, "step": "chose_plan", "at": "2026-11-22T09:20:00.500Z", "recorded": true})
    );
    // The same step at the same instant: recorded once.
    let (s, v) = h.call(Method::POST, &path, Some(body)).await;
    assert_eq!((s, &v["recorded"]), (StatusCode::OK, &json!(false)), "{v}");
    // Without a time: now. A number written with spaces and a plus is the same contact.
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/campaigns/{}/contacts/+91%2098123%2045678/steps", c.id),
            Some(json!({"step": " paid "})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!((&v["step"], &v["phone"]), (&json!("paid"), &json!(phone)));
    assert_eq!(
        v["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
        clock.now()
    );

    // Bad steps are 400s naming `step`; a bad time names `at`.
    for bad in [json!(""), json!("   "), json!("a;b"), json!("x".repeat(65))] {
        let (s, v) = h
            .call(Method::POST, &path, Some(json!({"step": bad})))
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("step")),
            "{bad}: {v}"
        );
    }
    let (s, v) = h
        .call(
            Method::POST,
            &path,
            Some(json!({"step": "x", "at": "yesterday"})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("at")),
        "{v}"
    );
    let (s, _) = h.call(Method::POST, &path, Some(json!({"at": null}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Unknown campaigns and contacts not in the hopper are 404s.
    for p in [
        format!("/campaigns/cmp_nope/contacts/{phone}/steps"),
        format!("/campaigns/{}/contacts/919812345679/steps", c.id),
        format!("/campaigns/{}/contacts/abc/steps", c.id),
    ] {
        let (s, v) = h.call(Method::POST, &p, Some(json!({"step": "x"}))).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{p}: {v}"
        );
    }

    // The steps show in the export, in time order.
    let resp = h.get_raw(&format!("/campaigns/{}/export.csv", c.id)).await;
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let rows = csv_rows(&body);
    assert_eq!(
        rows[1].last().unwrap(),
        &format!(
            "paid@{};chose_plan@2026-11-22T09:20:00.500Z",
            rfc(clock.now())
        )
    );

    // Deleting the campaign removes its steps with the rest of its partition.
    h.ok(Method::DELETE, &format!("/campaigns/{}", c.id), None)
        .await;
    for _ in 0..10 {
        let r = h
            .sys
            .sweeper
            .purge_deleted(PurgeBudget::default())
            .await
            .unwrap();
        if r.items_deleted == 0 && r.campaigns_pending == 0 {
            break;
        }
        clock.advance(DELETE_GRACE + Duration::seconds(1));
    }
    assert!(
        repo::campaign_partition_page(&*h.table, &c.tenant, &c.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo::get_campaign(&*h.table, &c.tenant, &c.id)
        .await
        .unwrap()
        .is_none());
}

// ---- R6.4 cost estimate ----------------------------------------------------------------

#[tokio::test]
async fn r6_4_cost_estimate_per_country_and_category_from_the_price_table() {
    let h = memory();
    let now = h.clock.now();
    let prices = pricing::whatsapp();
    let marketing = h.priced_campaign("offer", "MARKETING").await;
    let utility = h.priced_campaign("receipt", "UTILITY").await;
    // Five Indian numbers (three sent, two delivered), three British (one delivered), two
    // French (no row: the default), one American, one no country claims.
    let mut phones: Vec<(String, &str)> = Vec::new();
    for i in 0..5 {
        phones.push((format!("91981234560{i}"), "IN"));
    }
    for i in 0..3 {
        phones.push((format!("44740012345{i}"), "GB"));
    }
    for i in 0..2 {
        phones.push((format!("3361234567{i}"), "FR"));
    }
    phones.push(("12015550123".into(), "US"));
    phones.push(("999123456789".into(), "unknown"));
    for (p, region) in &phones {
        let expected = (*region != "unknown").then_some(*region);
        assert_eq!(
            PhoneNumber::parse(p).unwrap().region().as_deref(),
            expected,
            "{p}"
        );
    }
    for c in [&marketing, &utility] {
        for (i, (p, _)) in phones.iter().enumerate() {
            h.entry(c, p, i as u64, |e| match i {
                0 | 1 => {
                    sent(now)(e);
                    e.apply_status(&StatusKind::Delivered, now);
                }
                2 => sent(now)(e),
                5 => {
                    sent(now)(e);
                    e.apply_status(&StatusKind::Read, now);
                }
                _ => {}
            })
            .await;
        }
    }

    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{}/cost", marketing.id),
            None,
        )
        .await;
    assert_eq!(v["category"], "MARKETING");
    assert_eq!(v["currency"], "USD");
    assert_eq!(v["template"], json!({"name": "offer", "language": "en"}));
    assert_eq!(v["price_table"]["as_of"], "2025-07-01");
    assert!(v["price_table"]["source"]
        .as_str()
        .unwrap()
        .contains("Meta"));
    assert!(v["price_table"]["verified"]
        .as_str()
        .unwrap()
        .starts_with("NO"));
    let countries = v["countries"].as_array().unwrap();
    assert_eq!(
        countries
            .iter()
            .map(|c| c["country"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["IN", "GB", "FR", "US", "unknown"],
        "most messages first: {v}"
    );
    let india = &countries[0];
    assert_eq!(
        [&india["target"], &india["sent"], &india["delivered"]],
        [&json!(5), &json!(3), &json!(2)]
    );
    assert_eq!(india["priced_as"], "IN");
    assert_eq!(india["price"], 0.0107);
    assert_eq!(india["cost_target"], 0.0535);
    let france = &countries[2];
    assert_eq!(
        (&france["priced_as"], &france["price"]),
        (&json!("default"), &json!(0.0604))
    );
    assert_eq!(countries[4]["priced_as"], "default");
    // Totals per basis, from the table.
    let price = |r: &str, cat| prices.price(Some(r), cat).1;
    let m = PriceCategory::Marketing;
    let total_target = 5 * price("IN", m)
        + 3 * price("GB", m)
        + 2 * price("FR", m)
        + price("US", m)
        + prices.price(None, m).1;
    let total_sent = 3 * price("IN", m) + price("GB", m);
    let total_delivered = 2 * price("IN", m) + price("GB", m);
    let amount = |micros: i64| json!(micros as f64 / 1e6);
    assert_eq!(
        (&v["target"]["messages"], &v["target"]["cost"]),
        (&json!(12), &amount(total_target)),
        "{v}"
    );
    assert_eq!(
        (&v["sent"]["messages"], &v["sent"]["cost"]),
        (&json!(4), &amount(total_sent))
    );
    assert_eq!(
        (&v["delivered"]["messages"], &v["delivered"]["cost"]),
        (&json!(3), &amount(total_delivered))
    );
    for basis in ["target", "sent", "delivered"] {
        assert!(!v[basis]["description"].as_str().unwrap().is_empty());
    }

    // The template's category picks the column.
    let u = h
        .ok(
            Method::GET,
            &format!("/campaigns/{}/cost", utility.id),
            None,
        )
        .await;
    assert_eq!(u["category"], "UTILITY");
    assert_eq!(
        u["countries"][0]["price"],
        json!(price("IN", PriceCategory::Utility) as f64 / 1e6)
    );
    assert!(u["target"]["cost"].as_f64().unwrap() < v["target"]["cost"].as_f64().unwrap());

    // No template yet: nothing to price it by. Unknown campaign: 404.
    let draft = h.campaign().await;
    let (s, e) = h
        .call(Method::GET, &format!("/campaigns/{}/cost", draft.id), None)
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{e}"
    );
    let (s, _) = h.call(Method::GET, "/campaigns/cmp_nope/cost", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    sharded_counters_sum_and_equal_a_recount:
        r6_2_sharded_counters_sum_and_equal_a_recount,
        r6_2_sharded_counters_sum_and_equal_a_recount_on_dynamodb;
    recount_repairs_drifted_counters:
        r6_2_recount_repairs_drifted_counters,
        r6_2_recount_repairs_drifted_counters_on_dynamodb;
}
