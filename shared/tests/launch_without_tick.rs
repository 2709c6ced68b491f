//! Issue 14: a campaign that turns RUNNING (launch now, resume) is dispatched at once, not
//! at the next tick. The engine publishes its own `CampaignStateChanged` event; the SAM
//! template's rule on the launcher (`Started`) matches it and rewrites it into the
//! launcher's launch event. These tests take the events the API published, match and
//! rewrite them exactly as the template's pattern and input transformer say (read from
//! `infra/template.yaml`), hand them to the launcher's handler, and look at the send queue.

use testkit::harness as common;

use axum::http::Method;
use serde_json::{json, Value};
use shared::domain::events::{DomainEvent, SOURCE};
use std::path::PathBuf;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::{Interleaved, MemoryTable, Tap, Tapped};

/// The launcher's `Started` rule as the template writes it.
struct Rule {
    to: String,
    paths: Vec<(String, String)>,
    template: String,
}

fn rule() -> Rule {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    let launcher = &text[text.find("  LauncherFunction:").unwrap()..];
    let started = &launcher[launcher.find("        Started:").unwrap()..];
    let started = &started[..started.find("RetryPolicy").unwrap()];
    let line_after = |key: &str| {
        let at = started
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {started}"));
        started[at + key.len()..]
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(line_after("EventBusName:"), "!Ref EventBus");
    assert_eq!(line_after("source:"), format!("[{SOURCE}]"));
    assert_eq!(line_after("detail-type:"), "[CampaignStateChanged]");
    let to = line_after("to:");
    let template = line_after("InputTemplate:");
    let paths = ["tenant:", "campaign:"]
        .iter()
        .map(|k| (k.trim_end_matches(':').to_owned(), line_after(k)))
        .collect();
    Rule {
        to: to.trim_matches(['[', ']']).to_owned(),
        paths,
        template: template.trim_matches('\'').to_owned(),
    }
}

impl Rule {
    /// The launcher's input for an event on the bus, or `None` when the rule does not
    /// match it: EventBridge's envelope, the pattern, then the input transformer (a string
    /// value goes into the template quoted).
    fn input(&self, ev: &DomainEvent) -> Option<Value> {
        let DomainEvent::CampaignStateChanged(_) = ev else {
            return None;
        };
        let envelope = json!({
            "source": SOURCE,
            "detail-type": ev.detail_type(),
            "detail": serde_json::to_value(ev).unwrap(),
        });
        if envelope["detail"]["to"] != self.to.as_str() {
            return None;
        }
        let mut out = self.template.clone();
        for (name, path) in &self.paths {
            let pointer = path.trim_start_matches('$').replace('.', "/");
            let value = envelope
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("{path}"));
            out = out.replace(&format!("<{name}>"), &value.to_string());
        }
        Some(serde_json::from_str(&out).expect("the input template makes JSON"))
    }
}

/// Delivers what the bus received since the last call to the launcher, as the rule would;
/// returns the launcher's answers.
async fn deliver(s: &Spawned, rule: &Rule, seen: &mut usize) -> Vec<Value> {
    let events: Vec<DomainEvent> = s.bus.as_ref().unwrap().events.lock().unwrap()[*seen..].to_vec();
    *seen += events.len();
    let mut answers = Vec::new();
    for ev in events {
        if let Some(input) = rule.input(&ev) {
            let answer = shared::lambda::launcher(&s.sys.dispatcher, input)
                .await
                .unwrap();
            answers.push(answer);
        }
    }
    answers
}

fn queued(s: &Spawned) -> usize {
    s.queue.as_ref().unwrap().depth()
}

#[tokio::test]
async fn a_launched_campaign_is_dispatched_without_a_tick() {
    let rule = rule();
    let s = Spawn::new(Arc::new(MemoryTable::new())).build();
    let id = s
        .ready_campaign(&["919812345601", "919812345602"], json!({}))
        .await;
    let mut seen = 0;
    assert!(
        deliver(&s, &rule, &mut seen).await.is_empty(),
        "READY starts nothing"
    );
    common::launch(&s.api, &id).await;
    let answers = deliver(&s, &rule, &mut seen).await;
    assert_eq!(
        answers,
        vec![json!({"enqueued": 2})],
        "dispatched by the event"
    );
    assert_eq!(queued(&s), 2, "in the send queue before any tick");

    // A pause publishes nothing the rule takes; a resume dispatches again at once (the
    // messages queued before the pause are dropped by the sender, the entries go again).
    s.ok(Method::POST, &format!("/campaigns/{id}/pause"), None)
        .await;
    assert!(deliver(&s, &rule, &mut seen).await.is_empty());
    s.ok(Method::POST, &format!("/campaigns/{id}/resume"), None)
        .await;
    let answers = deliver(&s, &rule, &mut seen).await;
    assert_eq!(answers.len(), 1, "the resume reached the launcher");
}

#[tokio::test]
async fn a_campaign_sharing_its_account_is_left_to_the_tick() {
    let rule = rule();
    let s = Spawn::new(Arc::new(MemoryTable::new())).build();
    let first = s.ready_campaign(&["919812345611"], json!({})).await;
    let mut seen = 0;
    common::launch(&s.api, &first).await;
    deliver(&s, &rule, &mut seen).await;
    let before = queued(&s);
    // A second campaign on the same account (the harness makes a new account per call,
    // so reuse the first campaign's).
    let c = s
        .ok(Method::GET, &format!("/campaigns/{first}"), None)
        .await;
    let account = c["account_id"].as_str().unwrap();
    let body = common::merged(common::campaign_body("second", account, "offer"), json!({}));
    let second = s.ok(Method::POST, "/campaigns", Some(body)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        Method::POST,
        "/contacts",
        Some(json!([{"phone": "919812345612", "name": "C"}])),
    )
    .await;
    let list = s
        .ok(Method::POST, "/lists", Some(json!({"name": "L2"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({"phones": ["919812345612"]})),
    )
    .await;
    s.ok(
        Method::POST,
        &format!("/campaigns/{second}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&s.api, &second).await;
    let answers = deliver(&s, &rule, &mut seen).await;
    assert_eq!(
        answers,
        vec![json!({"enqueued": 0})],
        "the account's pace is shared out by the tick"
    );
    assert_eq!(queued(&s), before);
}

/// The rule's launch and the tick reach the launcher at the same moment (a start date
/// reached: the tick starts the campaign while the event of its start arrives): one of
/// them plans the account's window, the other finds it reserved, so the window holds the
/// campaign's rate once, not twice.
#[tokio::test]
async fn a_launch_and_a_tick_at_once_plan_the_window_once() {
    let s = Spawn::new(Arc::new(Interleaved(Arc::new(MemoryTable::new())))).build();
    let phones: Vec<String> = (0..200).map(|i| format!("91981234{i:04}")).collect();
    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
    let id = s
        .ready_campaign_with(
            &refs,
            json!({}),
            json!({"pacing": {"unit": "messages_per_second", "value": 1}}),
        )
        .await;
    common::launch(&s.api, &id).await;
    let event = json!({"action": "launch", "tenant": common::TENANT, "campaign_id": id});
    let (a, b) = tokio::join!(
        s.sys.dispatcher.tick(),
        shared::lambda::launcher(&s.sys.dispatcher, event)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(queued(&s), 60, "one minute at 1/s, planned once");
}

/// A RUNNING index that has not caught up yet (DynamoDB's indexes are eventually
/// consistent, and the launch event follows the write by milliseconds): index queries for
/// running campaigns answer nothing while `lagging` is set.
struct LaggingRunningIndex {
    lagging: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Tap for LaggingRunningIndex {
    async fn query(
        &self,
        q: &shared::ports::Query,
    ) -> Option<shared::ports::PortResult<shared::ports::Page>> {
        let lagging = self.lagging.load(std::sync::atomic::Ordering::SeqCst);
        (lagging && q.pk == shared::repo::RUNNING_PK).then(|| {
            Ok(shared::ports::Page {
                items: vec![],
                cursor: None,
            })
        })
    }
}

fn lagging_table() -> Arc<Tapped<LaggingRunningIndex>> {
    Arc::new(Tapped {
        inner: Arc::new(MemoryTable::new()),
        tap: LaggingRunningIndex {
            lagging: false.into(),
        },
    })
}

#[tokio::test]
async fn a_launch_is_dispatched_at_once_while_the_running_index_lags() {
    let rule = rule();
    let table = lagging_table();
    let s = Spawn::new(table.clone()).build();
    let id = s
        .ready_campaign(&["919812345601", "919812345602"], json!({}))
        .await;
    let mut seen = 0;
    deliver(&s, &rule, &mut seen).await;
    table
        .tap
        .lagging
        .store(true, std::sync::atomic::Ordering::SeqCst);
    common::launch(&s.api, &id).await;
    let answers = deliver(&s, &rule, &mut seen).await;
    assert_eq!(
        answers,
        vec![json!({"enqueued": 2})],
        "the launched campaign, read from the table, is dispatched though the index lags"
    );
}

/// The index lagging for one launch may lag for a sibling's too: a campaign on an account
/// of a business portfolio (whose messaging limit its accounts share) then leaves its
/// first dispatch to the tick, which budgets the portfolio's campaigns together.
#[tokio::test]
async fn a_portfolio_campaign_waits_for_the_tick_while_the_running_index_lags() {
    let rule = rule();
    let table = lagging_table();
    let s = Spawn::new(table.clone()).build();
    let id = s
        .ready_campaign_on(
            json!({"portfolio_id": "1234567890"}),
            &["919812345601", "919812345602"],
            json!({}),
            json!({}),
        )
        .await;
    let mut seen = 0;
    deliver(&s, &rule, &mut seen).await;
    table
        .tap
        .lagging
        .store(true, std::sync::atomic::Ordering::SeqCst);
    common::launch(&s.api, &id).await;
    let answers = deliver(&s, &rule, &mut seen).await;
    assert_eq!(answers, vec![json!({"enqueued": 0})], "left to the tick");
    table
        .tap
        .lagging
        .store(false, std::sync::atomic::Ordering::SeqCst);
    s.sys.dispatcher.tick().await.unwrap();
    assert_eq!(queued(&s), 2, "the tick dispatched it");
}
