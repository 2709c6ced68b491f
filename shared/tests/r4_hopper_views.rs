//! R4.1: the hopper's open and history views and its whole listing. The open view lists
//! entries whose outcome is open (FRESH, SENDING, PENDING, or one of them), the history
//! view entries whose outcome is settled (CLOSED, FAILED, BLOCK_LIST, SKIPPED, RETRY), the
//! entries listing any of them by state, reason and disposition; each entry shows its outcome,
//! disposition, reason, error, reply, attempts and times. Pages follow a cursor through
//! every shard without gaps or repeats, on the in-memory table and on DynamoDB in the
//! emulator; bad `state`, `limit` and `cursor` are 400s naming the parameter.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use shared::adapters::aws::DynamoTable;
use shared::domain::campaign::Campaign;
use shared::domain::hopper::{shard_of, EntryState, HopperEntry, Reply};
use shared::domain::inbound::StatusKind;
use shared::domain::outcome::SendFailure;
use shared::domain::phone::PhoneNumber;
use shared::domain::template::ContactData;
use shared::ports::{Clock, Table};
use shared::repo;
use shared::repo::hopper_views::{walk_entries, HopperPosition, ReadBudget};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

// ---- harness ---------------------------------------------------------------------------

struct H(Spawned);

impl std::ops::Deref for H {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.0
    }
}

fn harness(table: Arc<dyn Table>) -> H {
    H(Spawn::new(table).build())
}

fn memory() -> H {
    harness(Arc::new(MemoryTable::new()))
}

async fn emulator() -> H {
    let table: DynamoTable = common::dynamo_table("R4 hopper views", "r4-views").await;
    harness(Arc::new(table))
}

impl H {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// A DRAFT campaign (16 hopper shards); its stored form.
    async fn campaign(&self) -> Campaign {
        let (s, v) = self
            .call(Method::POST, "/campaigns", Some(json!({"name": "Views"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        repo::get_campaign(&*self.table, common::TENANT, v["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    /// Writes an entry for `phone`, named `name`, after `shape` moved it along.
    async fn entry(
        &self,
        c: &Campaign,
        phone: &str,
        name: &str,
        seq: u64,
        shape: impl FnOnce(&mut HopperEntry),
    ) -> HopperEntry {
        let contact = ContactData {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let mut e = HopperEntry::new(c, PhoneNumber::parse(phone).unwrap(), contact, seq);
        shape(&mut e);
        assert!(repo::insert_entry(&*self.table, &mut e, chrono::Utc::now())
            .await
            .unwrap());
        e
    }

    /// Every page of `path` (which has no query string of its own but `?` parameters
    /// given in `params`), following `next_cursor`; the pages.
    async fn pages(&self, path: &str, params: &str) -> Vec<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..200 {
            let mut uri = format!("{path}?{params}");
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={}", common::urlencode(c)));
            }
            let v = self.ok(&uri).await;
            out.push(v["items"].as_array().unwrap().clone());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(v["next_cursor"].is_null(), "{v}");
                    return out;
                }
            }
        }
        panic!("{path}?{params} never ended");
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> Value {
    serde_json::to_value(t).unwrap()
}

fn by_phone(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|i| (i["phone"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

fn reply(text: &str, button: Option<&str>, at: chrono::DateTime<chrono::Utc>) -> Reply {
    Reply {
        message_id: "wamid.in".into(),
        text: Some(text.to_owned()),
        button: button.map(str::to_owned),
        at,
    }
}

// ---- the open view ---------------------------------------------------------------------

#[tokio::test]
async fn r4_1_open_view_lists_entries_to_send_in_flight_and_awaiting_reply_with_times() {
    let h = memory();
    let c = h.campaign().await;
    let now = h.clock.now();
    let timeout = Duration::days(2);
    let read = h
        .entry(&c, "919812345601", "Asha", 1, |e| {
            e.claim(now).unwrap();
            e.record_sent("wamid.1".into(), now, timeout);
            e.apply_status(&StatusKind::Delivered, now + Duration::seconds(3));
            e.apply_status(&StatusKind::Read, now + Duration::minutes(10));
        })
        .await;
    let sent = h
        .entry(&c, "919812345602", "Ravi", 2, |e| {
            e.claim(now).unwrap();
            e.record_sent("wamid.2".into(), now + Duration::seconds(1), timeout);
        })
        .await;
    let fresh = h.entry(&c, "919812345603", "Mina", 3, |_| {}).await;
    let waiting = h
        .entry(&c, "919812345604", "Omar", 4, |e| {
            e.defer(now + Duration::hours(3), "calling hours")
        })
        .await;
    h.entry(&c, "919812345605", "Lena", 5, |e| {
        e.claim(now).unwrap();
        e.record_sent("wamid.5".into(), now, timeout);
        e.apply_reply(reply("Yes", Some("Yes"), now + Duration::minutes(5)));
    })
    .await;
    let sending = h
        .entry(&c, "919812345606", "Ivan", 6, |e| e.claim(now).unwrap())
        .await;

    let path = format!("/campaigns/{}/hopper/open", c.id);
    let v = h.ok(&path).await;
    assert!(v["next_cursor"].is_null(), "{v}");
    let items = by_phone(v["items"].as_array().unwrap());
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        vec![
            "919812345601",
            "919812345602",
            "919812345603",
            "919812345604",
            "919812345606"
        ],
        "FRESH, SENDING and PENDING entries by default, not the closed one: {v}"
    );
    let v = h.ok(&format!("{path}?state=PENDING")).await;
    let items = by_phone(v["items"].as_array().unwrap());
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        vec!["919812345601", "919812345602"],
        "one open state on request: {v}"
    );
    let r = &items["919812345601"];
    assert_eq!(r["name"], "Asha");
    assert_eq!(
        (r["state"].as_str(), r["outcome"].as_str()),
        (Some("PENDING"), Some("sent"))
    );
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["sent_at"], time(read.sent_at.unwrap()));
    assert_eq!(r["delivered_at"], time(now + Duration::seconds(3)));
    assert_eq!(r["read_at"], time(now + Duration::minutes(10)));
    assert_eq!(r["expires_at"], time(now + timeout));
    assert!(r["replied_at"].is_null() && r["reply"].is_null() && r["disposition"].is_null());
    assert!(r["error"].is_null() && r["reason"].is_null() && r["wait_until"].is_null());
    let s = &items["919812345602"];
    assert_eq!(s["sent_at"], time(sent.sent_at.unwrap()));
    assert!(s["delivered_at"].is_null() && s["read_at"].is_null());
    assert_eq!(s["expires_at"], time(sent.expires_at.unwrap()));
    // Every field of the answer is there, null or not.
    for k in [
        "phone",
        "name",
        "state",
        "outcome",
        "disposition",
        "reason",
        "error",
        "reply",
        "attempts",
        "sent_at",
        "delivered_at",
        "read_at",
        "replied_at",
        "expires_at",
        "wait_until",
        "last_attempt_error",
    ] {
        assert!(r.as_object().unwrap().contains_key(k), "{k} missing: {r}");
    }

    // Any single open state on request, case-insensitive.
    let v = h.ok(&format!("{path}?state=fresh")).await;
    let items = by_phone(v["items"].as_array().unwrap());
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(items[fresh.phone.as_str()]["outcome"], "queued");
    let w = &items[waiting.phone.as_str()];
    assert_eq!(
        (w["outcome"].as_str(), w["state"].as_str()),
        (Some("waiting"), Some("FRESH"))
    );
    assert_eq!(w["wait_until"], time(now + Duration::hours(3)));
    assert_eq!(w["error"], "calling hours");
    let v = h.ok(&format!("{path}?state=SENDING")).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["phone"], sending.phone.as_str());
    assert_eq!(items[0]["outcome"], "sending");
    let (s, v) = h.get(&format!("{path}?state=CLOSED")).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("state"))
    );
    let v = h
        .ok(&format!("/campaigns/{}/hopper/history?state=CLOSED", c.id))
        .await;
    assert_eq!(v["items"][0]["phone"], "919812345605");

    // Unknown, deleted and disabled campaigns.
    let (s, v) = h.get("/campaigns/cmp_nope/hopper/open").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    common::switch_campaigns(&h.api, common::TENANT, false).await;
    let (s, v) = h.get(&path).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = h.get(&format!("/campaigns/{}/hopper/history", c.id)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    common::switch_campaigns(&h.api, common::TENANT, true).await;
    let (s, _) = common::call(
        &h.api,
        Method::DELETE,
        &format!("/campaigns/{}", c.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = h.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a campaign being deleted is gone");
    let (s, _) = h.get(&format!("/campaigns/{}/hopper/history", c.id)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---- the history view ------------------------------------------------------------------

#[tokio::test]
async fn r4_1_history_view_lists_settled_entries_with_disposition_reply_and_error() {
    let h = memory();
    let c = h.campaign().await;
    let now = h.clock.now();
    let timeout = Duration::days(1);
    let answered_at = now + Duration::minutes(20);
    h.entry(&c, "919812345611", "Asha", 1, |e| {
        e.claim(now).unwrap();
        e.record_sent("wamid.11".into(), now, timeout);
        e.apply_reply(reply("Yes please", Some("Yes"), answered_at));
    })
    .await;
    h.entry(&c, "919812345612", "Ravi", 2, |e| {
        e.claim(now).unwrap();
        e.record_sent("wamid.12".into(), now, timeout);
        e.apply_status(&StatusKind::Delivered, now + Duration::seconds(2));
        assert!(e.expire(now + timeout));
    })
    .await;
    h.entry(&c, "919812345613", "Mina", 3, |e| {
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
    })
    .await;
    h.entry(&c, "919812345614", "Omar", 4, |e| {
        e.record_ineligible(
            EntryState::BlockList,
            "block list",
            Some("on block list Do not contact".into()),
        );
    })
    .await;
    h.entry(&c, "919812345615", "Lena", 5, |e| {
        e.record_ineligible(
            EntryState::Skipped,
            "duplicate",
            Some("sent by another campaign in the last 3 days".into()),
        );
    })
    .await;
    h.entry(&c, "919812345616", "Ivan", 6, |e| {
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::transport("connection reset"));
    })
    .await;
    h.entry(&c, "919812345617", "Nora", 7, |e| {
        e.claim(now).unwrap();
        e.record_sent("wamid.17".into(), now, timeout);
        e.apply_reply(reply("hello?", None, now + Duration::days(2)));
    })
    .await;
    // Not settled: never in the history.
    h.entry(&c, "919812345618", "Paul", 8, |e| {
        e.claim(now).unwrap();
        e.record_sent("wamid.18".into(), now, timeout);
    })
    .await;
    h.entry(&c, "919812345619", "Rita", 9, |_| {}).await;

    let path = format!("/campaigns/{}/hopper/history", c.id);
    let v = h.ok(&path).await;
    assert!(v["next_cursor"].is_null(), "{v}");
    let items = by_phone(v["items"].as_array().unwrap());
    assert_eq!(items.len(), 7, "{v}");
    assert!(!items.contains_key("919812345618") && !items.contains_key("919812345619"));

    let replied = &items["919812345611"];
    assert_eq!(replied["name"], "Asha");
    assert_eq!(
        (
            replied["state"].as_str(),
            replied["outcome"].as_str(),
            replied["disposition"].as_str()
        ),
        (Some("CLOSED"), Some("replied"), Some("replied:Yes"))
    );
    assert_eq!(
        replied["reply"],
        json!({"text": "Yes please", "button": "Yes", "at": time(answered_at)})
    );
    assert_eq!(replied["replied_at"], time(answered_at));
    assert_eq!(
        replied["read_at"],
        time(answered_at),
        "a reply proves it was read"
    );
    assert_eq!(replied["sent_at"], time(now));
    assert_eq!(replied["attempts"], 1);
    assert!(replied["expires_at"].is_null());

    let quiet = &items["919812345612"];
    assert_eq!(
        (quiet["outcome"].as_str(), quiet["disposition"].as_str()),
        (Some("no response"), Some("no_response"))
    );
    assert_eq!(quiet["delivered_at"], time(now + Duration::seconds(2)));
    assert!(quiet["reply"].is_null() && quiet["replied_at"].is_null());

    let failed = &items["919812345613"];
    assert_eq!(
        (
            failed["state"].as_str(),
            failed["outcome"].as_str(),
            failed["disposition"].as_str()
        ),
        (Some("FAILED"), Some("failed"), Some("undeliverable"))
    );
    assert_eq!(failed["error"], "Message Undeliverable");
    assert_eq!(failed["reason"], "Message Undeliverable");
    assert!(failed["sent_at"].is_null());

    let blocked = &items["919812345614"];
    assert_eq!(
        (
            blocked["state"].as_str(),
            blocked["outcome"].as_str(),
            blocked["reason"].as_str()
        ),
        (Some("BLOCK_LIST"), Some("blocked"), Some("block list"))
    );
    assert_eq!(blocked["disposition"], "not_sent");
    assert_eq!(blocked["attempts"], 0);

    let skipped = &items["919812345615"];
    assert_eq!(
        (
            skipped["state"].as_str(),
            skipped["outcome"].as_str(),
            skipped["reason"].as_str()
        ),
        (Some("SKIPPED"), Some("skipped"), Some("duplicate"))
    );
    assert_eq!(
        skipped["error"],
        "sent by another campaign in the last 3 days"
    );

    let retry = &items["919812345616"];
    assert_eq!(
        (retry["state"].as_str(), retry["outcome"].as_str()),
        (Some("RETRY"), Some("retry"))
    );
    assert!(retry["error"].as_str().is_some(), "{retry}");

    let late = &items["919812345617"];
    assert_eq!(
        (late["outcome"].as_str(), late["disposition"].as_str()),
        (Some("replied late"), Some("expired"))
    );

    // One settled state on request.
    let v = h.ok(&format!("{path}?state=SKIPPED")).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["phone"], "919812345615");
    let v = h.ok(&format!("{path}?state=closed&limit=500")).await;
    assert_eq!(
        by_phone(v["items"].as_array().unwrap())
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["919812345611", "919812345612", "919812345617"]
    );
    let v = h.ok(&format!("{path}?state=RETRY")).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
}

// ---- paging ----------------------------------------------------------------------------

const ENTRIES: usize = 250;

/// Entry `i`'s state: a mix of every view's states.
fn shape(i: usize, e: &mut HopperEntry, now: chrono::DateTime<chrono::Utc>) {
    match i % 5 {
        0 => {}
        1 => {
            e.claim(now).unwrap();
            e.record_sent(format!("wamid.{i}"), now, Duration::days(1));
        }
        2 => {
            e.claim(now).unwrap();
            e.record_sent(format!("wamid.{i}"), now, Duration::days(1));
            e.apply_reply(reply("ok", None, now));
        }
        3 => e.record_ineligible(EntryState::Skipped, "duplicate", None),
        _ => {
            e.claim(now).unwrap();
            e.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
        }
    }
}

/// The phones of the pages, checking none repeats and each page is at most `limit` long
/// and (with the default budget) full but for the last; in walk order: shard, then phone.
fn union(pages: &[Vec<Value>], limit: usize, shards: u16) -> Vec<String> {
    let mut all = Vec::new();
    for (n, p) in pages.iter().enumerate() {
        assert!(p.len() <= limit, "page {n} has {} entries", p.len());
        if n + 1 < pages.len() {
            assert_eq!(p.len(), limit, "page {n} of {} is short", pages.len());
        }
        all.extend(p.iter().map(|i| i["phone"].as_str().unwrap().to_owned()));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an entry repeats across pages");
    let key = |p: &String| (shard_of(&PhoneNumber::parse(p).unwrap(), shards), p.clone());
    let mut sorted = all.clone();
    sorted.sort_by_key(key);
    assert_eq!(all, sorted, "pages come in shard order, then phone order");
    all
}

async fn views_page_through_every_shard_without_gaps_or_repeats(h: H) {
    let c = h.campaign().await;
    assert_eq!(c.hopper_shards, 16);
    let now = h.clock.now();
    let mut want: BTreeMap<EntryState, BTreeSet<String>> = BTreeMap::new();
    for i in 0..ENTRIES {
        let phone = format!("9177{i:08}");
        let e = h
            .entry(&c, &phone, "x", i as u64 + 1, |e| shape(i, e, now))
            .await;
        want.entry(e.state).or_default().insert(phone);
    }
    let shards_used: BTreeSet<u16> = want
        .values()
        .flatten()
        .map(|p| shard_of(&PhoneNumber::parse(p).unwrap(), 16))
        .collect();
    assert_eq!(shards_used.len(), 16, "the entries spread over every shard");
    let set = |states: &[EntryState]| -> BTreeSet<String> {
        states
            .iter()
            .flat_map(|s| want[s].iter().cloned())
            .collect()
    };
    let pending = format!("/campaigns/{}/hopper/open", c.id);
    let history = format!("/campaigns/{}/hopper/history", c.id);
    let entries = format!("/campaigns/{}/hopper/entries", c.id);
    for (path, params, states) in [
        (
            &pending,
            "limit=37",
            vec![EntryState::Pending, EntryState::Fresh],
        ),
        (
            &pending,
            "limit=37&state=PENDING",
            vec![EntryState::Pending],
        ),
        (&pending, "limit=37&state=FRESH", vec![EntryState::Fresh]),
        (
            &history,
            "limit=37",
            vec![EntryState::Closed, EntryState::Skipped, EntryState::Failed],
        ),
        (&history, "limit=37&state=FAILED", vec![EntryState::Failed]),
        (&history, "limit=7&state=skipped", vec![EntryState::Skipped]),
        (
            &entries,
            "limit=37",
            vec![
                EntryState::Fresh,
                EntryState::Pending,
                EntryState::Closed,
                EntryState::Skipped,
                EntryState::Failed,
            ],
        ),
        (
            &entries,
            "limit=11&state=SKIPPED&reason=DUPLICATE",
            vec![EntryState::Skipped],
        ),
    ] {
        let limit: usize = params
            .split('&')
            .find_map(|p| p.strip_prefix("limit="))
            .unwrap()
            .parse()
            .unwrap();
        let pages = h.pages(path, params).await;
        let got = union(&pages, limit, 16);
        let got: BTreeSet<String> = got.into_iter().collect();
        assert_eq!(got, set(&states), "{path}?{params}");
        assert!(pages.len() >= got.len().div_ceil(limit), "{path}?{params}");
    }
    // The whole history, one page.
    let v = h.ok(&format!("{history}?limit=500")).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 150);
    assert!(v["next_cursor"].is_null());

    // A tight read budget answers short pages and a cursor; following them still finds
    // every entry exactly once.
    let budget = ReadBudget {
        page_size: 10,
        max_items: 25,
        max_queries: 3,
    };
    let mut from = HopperPosition::start();
    let mut seen = Vec::new();
    let mut walks = 0;
    loop {
        let w = walk_entries(
            &*h.table,
            &c.tenant,
            &c.id,
            c.hopper_shards,
            from,
            |e| e.state == EntryState::Fresh,
            37,
            budget,
        )
        .await
        .unwrap();
        walks += 1;
        assert!(w.queries <= budget.max_queries, "{w:?}");
        assert!(w.read <= budget.max_items + budget.page_size as usize);
        seen.extend(w.entries.iter().map(|e| e.phone.as_str().to_owned()));
        match w.next {
            Some(n) => from = n,
            None => break,
        }
        assert!(walks < 500, "the walk never ends");
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a budgeted walk repeats an entry");
    assert_eq!(unique, want[&EntryState::Fresh]);
    assert!(walks >= 6, "16 shards at 3 queries a walk: {walks} walks");
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    views_page_through_every_shard_without_gaps_or_repeats:
        r4_1_views_page_through_every_shard_without_gaps_or_repeats,
        r4_1_views_page_through_every_shard_without_gaps_or_repeats_on_emulator;
}

// ---- bad input -------------------------------------------------------------------------

#[tokio::test]
async fn r4_1_views_reject_bad_state_limit_and_cursor() {
    let h = memory();
    let c = h.campaign().await;
    let now = h.clock.now();
    for i in 0..5 {
        h.entry(&c, &format!("91981234{i:04}"), "x", i + 1, |e| {
            e.claim(now).unwrap();
            e.record_sent(format!("wamid.{i}"), now, Duration::days(1));
        })
        .await;
    }
    let pending = format!("/campaigns/{}/hopper/open", c.id);
    let history = format!("/campaigns/{}/hopper/history", c.id);
    let entries = format!("/campaigns/{}/hopper/entries", c.id);
    let bad = [
        (&pending, "state=DONE", "state"),
        (&pending, "state=PENDING,CLOSED", "state"),
        (&pending, "state=CLOSED", "state"),
        (&pending, "state=RETRY", "state"),
        (&history, "state=PENDING", "state"),
        (&history, "state=FRESH", "state"),
        (&history, "state=SENDING", "state"),
        (&pending, "limit=0", "limit"),
        (&pending, "limit=501", "limit"),
        (&history, "limit=-1", "limit"),
        (&history, "limit=ten", "limit"),
        (&pending, "limit=", "limit"),
        (&pending, "cursor=zzz", "cursor"),
        (&pending, "cursor=", "cursor"),
        (&pending, "cursor=16%3A", "cursor"),
        (&history, "cursor=99999%3A919812340000", "cursor"),
        (&history, "cursor=3%3A91981234abcd", "cursor"),
        (&pending, "cursor=3%3A1234567890123456", "cursor"),
        (&entries, "state=DONE", "state"),
        (&entries, "reason=", "reason"),
        (&entries, "disposition=%20", "disposition"),
        (&entries, "limit=0", "limit"),
        (&entries, "cursor=zzz", "cursor"),
    ];
    for (path, q, field) in bad {
        let (s, v) = h.get(&format!("{path}?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}?{q}: {v}");
        assert_eq!(v["error"], "bad_request", "{v}");
        assert_eq!(v["field"], field, "{path}?{q}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{v}"
        );
    }
    // The edges are fine.
    for q in [
        "limit=1",
        "limit=500",
        "state=SENDING",
        "cursor=15%3A",
        "cursor=0%3A919812340002",
    ] {
        let (s, v) = h.get(&format!("{pending}?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
    }
    // A cursor resumes after the entry it names.
    let v = h.ok(&format!("{pending}?limit=2")).await;
    let first: Vec<Value> = v["items"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap();
    let v = h
        .ok(&format!(
            "{pending}?limit=500&cursor={}",
            common::urlencode(cursor)
        ))
        .await;
    let rest = v["items"].as_array().unwrap();
    assert_eq!(rest.len(), 3, "{v}");
    assert!(rest.iter().all(|r| !first.contains(r)));
    // A missing campaign is a 404 once the parameters are well-formed.
    let (s, _) = h.get("/campaigns/cmp_nope/hopper/history?limit=10").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---- issue 19 --------------------------------------------------------------------------

/// Issue 19, item 5: a campaign that pauses itself (an expired token: Meta 190) puts the
/// entry back in line; it shows as queued with the last attempt's error apart, not with a
/// failure's reason and error. A later successful send forgets it.
#[tokio::test]
async fn a_fresh_entry_put_back_by_a_paused_campaign_shows_its_last_attempt_not_a_failure() {
    let h = memory();
    let c = h.campaign().await;
    let now = h.clock.now();
    let expired = SendFailure::meta(190, "Access token has expired");
    let e = h
        .entry(&c, "919812345661", "Asha", 1, |e| {
            e.claim(now).unwrap();
            e.record_failure(&expired);
        })
        .await;
    assert_eq!(e.state, EntryState::Fresh, "{e:?}");
    let v = h
        .ok(&format!("/campaigns/{}/hopper/open?state=FRESH", c.id))
        .await;
    let item = &v["items"][0];
    assert_eq!(item["outcome"], "queued", "{item}");
    assert!(
        item["reason"].is_null() && item["error"].is_null(),
        "{item}"
    );
    assert_eq!(
        item["last_attempt_error"],
        expired.reason.as_str(),
        "{item}"
    );
    assert_eq!(item["attempts"], 1);

    let mut again = e.clone();
    again.claim(now).unwrap();
    again.record_sent("wamid.661".into(), now, Duration::days(1));
    assert_eq!(again.last_attempt_error, None, "the last attempt succeeded");
}
