//! R5 end to end: campaign interactions, replies and the 24-hour window, the conversation
//! view, opt-out keywords, and the domain events they publish (R8.2). Campaigns are set
//! up over the HTTP API, launched, ticked and drained into the sender, which sends
//! through the real Meta adapter to the WhatsApp simulator; the simulator's replies come
//! back as signed webhooks. Where storage matters the same cases also run on DynamoDB in
//! the local emulator.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use common::TENANT;
use serde_json::{json, Value};
use shared::domain::blocklist::OptOutSource;
use shared::domain::conversation::{self, OperatorMessage, Refusal, SERVICE_WINDOW};
use shared::domain::eligibility::WAITING_FOR_INTERACTION;
use shared::domain::events::{self, AnswerKind, DomainEvent, InboundReason, InteractionState};
use shared::domain::hopper::{EntryState, HopperEntry};
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::ports::{Clock, Table};
use shared::repo;
use std::collections::BTreeMap;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::{ReplyKind, SimConfig};

type Time = DateTime<Utc>;

/// Seconds between launcher ticks (as `Spawn` wires them).
const TICK: i64 = 60;
/// The sender id of the account every test sends from.
const SENDER: &str = "106540352242922";
/// R5.1's message, verbatim from the seed.
const SEED_MESSAGE: &str =
    "No messages can be sent since we are waiting for the customer's response.";

// ---- harness ---------------------------------------------------------------------------

/// The system sending to the simulator, its webhooks applied inline; the operator API
/// has the recontact route merged, as the composition roots do.
type H = Spawned;

async fn harness(table: Arc<dyn Table>) -> H {
    Spawn::new(table)
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(true)
        .spawn()
        .await
}

fn memory() -> Arc<dyn Table> {
    Arc::new(MemoryTable::new())
}

async fn dynamo() -> Arc<dyn Table> {
    Arc::new(common::dynamo_table("R5 interactions", "r5-interactions").await)
}

fn table(h: &H) -> &dyn Table {
    &*h.sys.ports.table
}

/// One launcher tick, then the sender fed second by second through the tick.
async fn run_tick(h: &H) {
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..TICK {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.sys.drain_queue().await.unwrap();
    h.simulator().idle().await;
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// An account on the simulator's number with the approved template `offer`
/// (`Hi {{1}}, code {{2}}`) offering `options` as quick replies, and the template
/// `we_miss_you` (`Hello {{1}}, ...`) to use as recontact template; its id.
async fn account(h: &H, options: &[&str]) -> String {
    let a = h
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let id = id_of(&a);
    let offer = common::merged(
        common::template_body(&id, "offer"),
        json!({ "quick_replies": options }),
    );
    h.ok(Method::POST, "/templates", Some(offer)).await;
    h.ok(Method::POST,
        "/templates",
        Some(json!({"account_id": id, "name": "we_miss_you", "language": "en",
            "category": "MARKETING",
            "body": "Hello {{1}}, the chat window has expired, please reply to this message if you still need support"})),
    )
    .await;
    id
}

async fn set_recontact_template(h: &H, account: &str) {
    h.ok(
        Method::PUT,
        &format!("/accounts/{account}/recontact-template"),
        Some(json!({"name": "we_miss_you", "language": "en"})),
    )
    .await;
}

/// A running campaign sending `offer` from `account` to `phones` (contacts created with a
/// name and the field `code`), with `extra` settings; its id.
async fn running(h: &H, name: &str, account: &str, extra: Value, phones: &[&str]) -> String {
    let contacts: Vec<Value> = phones
        .iter()
        .map(|p| json!({"phone": p, "name": format!("Customer {}", &p[p.len() - 2..]), "fields": {"code": format!("K{}", &p[p.len() - 2..])}}))
        .collect();
    h.ok(Method::POST, "/contacts", Some(Value::Array(contacts)))
        .await;
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(common::merged(
                common::campaign_body(name, account, "offer"),
                extra,
            )),
        )
        .await;
    let id = id_of(&c);
    let list = id_of(
        &h.ok(Method::POST, "/lists", Some(json!({"name": name})))
            .await,
    );
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    h.ok(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &id).await;
    id
}

async fn entry(h: &H, campaign: &str, phone: &str) -> HopperEntry {
    let c = repo::get_campaign(table(h), TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    repo::all_entries(table(h), &c)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.phone.as_str() == phone)
        .unwrap_or_else(|| panic!("{phone} is in the hopper of {campaign}"))
}

async fn interaction(h: &H, phone: &str) -> repo::Interaction {
    repo::get_interaction(table(h), SENDER, &PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap()
        .expect("an interaction")
}

async fn counters(h: &H, campaign: &str) -> BTreeMap<String, i64> {
    repo::get_counters(table(h), TENANT, campaign)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
}

/// The live counters equal a recount of the entries.
async fn assert_counters_match(h: &H, campaign: &str) {
    let c = repo::get_campaign(table(h), TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    let all = repo::all_entries(table(h), &c).await.unwrap();
    let recount: BTreeMap<String, i64> = stats::recount(&all)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(
        counters(h, campaign).await,
        recount,
        "live counters = recount"
    );
}

async fn reply(h: &H, phone: &str, r: ReplyKind) {
    let posted = h.simulator().post_reply(phone, r).await.unwrap();
    assert!(posted.accepted(), "{posted:?}");
    h.simulator().idle().await;
}

/// A typed reply without context (found by phone).
async fn typed(h: &H, phone: &str, text: &str) {
    let posted = h
        .simulator()
        .post_reply_in_context(phone, ReplyKind::Text(text.into()), Some(""))
        .await
        .unwrap();
    assert!(posted.accepted(), "{posted:?}");
    h.simulator().idle().await;
}

fn events(h: &H) -> Vec<DomainEvent> {
    h.memory_bus().events.lock().unwrap().clone()
}

fn sent_to(h: &H, phone: &str) -> Vec<String> {
    h.simulator()
        .sent()
        .iter()
        .filter(|s| s.to == phone)
        .map(|s| s.template.clone())
        .collect()
}

fn advance(h: &H, d: Duration) {
    h.clock.advance(d);
}

fn now(h: &H) -> Time {
    h.clock.now()
}

// ---- R5.1 ------------------------------------------------------------------------------

async fn open_interaction_blocks_other_campaigns(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    set_recontact_template(&h, &acc).await;
    let p = "919812350101";
    let a = running(&h, "A", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    assert_eq!(entry(&h, &a, p).await.state, EntryState::Pending);
    assert!(interaction(&h, p).await.is_open(now(&h)));

    // Another campaign's message waits, saying why in the seed's words.
    let b = running(&h, "B", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    let e = entry(&h, &b, p).await;
    assert_eq!(e.state, EntryState::Fresh, "{e:?}");
    assert!(e.wait_until.is_some());
    assert_eq!(e.error.as_deref(), Some(SEED_MESSAGE));
    assert_eq!(WAITING_FOR_INTERACTION, SEED_MESSAGE);
    assert_eq!(sent_to(&h, p), ["offer"], "only A's message went out");

    // An operator's attempt says the same.
    let (s, v) = h
        .call(
            Method::POST,
            &format!("/contacts/{p}/recontact"),
            Some(json!({"account_id": acc, "variables": [{"source": "contact_name"}]})),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::CONFLICT, Some(SEED_MESSAGE)),
        "{v}"
    );
    assert_eq!(sent_to(&h, p), ["offer"]);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    open_interaction_blocks_other_campaigns: r5_1_open_interaction_blocks_other_campaigns_with_the_seed_message, r5_1_open_interaction_blocks_other_campaigns_with_the_seed_message_on_dynamodb;
}

// ---- R5.2 ------------------------------------------------------------------------------

async fn reply_in_time_is_recorded(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    // No quick replies: a typed answer is the answer and closes the interaction.
    let acc = account(&h, &[]).await;
    let (by_context, by_phone, other) = ("919812350201", "919812350202", "919812350203");
    let a = running(&h, "A", &acc, json!({}), &[by_context, by_phone, other]).await;
    run_tick(&h).await;

    // The simulator answers the last message sent to the number: context id = our wamid.
    reply(&h, by_context, ReplyKind::Text("Sounds good".into())).await;
    // No context at all: found by phone.
    typed(&h, by_phone, "ok thanks").await;
    // A context naming another message: not counted for the campaign.
    let posted = h
        .simulator()
        .post_reply_in_context(
            other,
            ReplyKind::Text("about the old one".into()),
            Some("wamid.OLDER"),
        )
        .await
        .unwrap();
    assert!(posted.accepted());
    h.simulator().idle().await;

    for (p, text) in [(by_context, "Sounds good"), (by_phone, "ok thanks")] {
        let e = entry(&h, &a, p).await;
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Closed, Some("replied")),
            "{e:?}"
        );
        assert_eq!(e.reply.as_ref().unwrap().text.as_deref(), Some(text));
        assert!(e.replied_at.is_some() && e.read_at.is_some());
        assert!(interaction(&h, p).await.closed_at.is_some(), "released");
    }
    let e = entry(&h, &a, other).await;
    assert_eq!(
        (e.state, e.replied_at),
        (EntryState::Pending, None),
        "{e:?}"
    );
    assert!(events(&h).iter().any(|ev| matches!(ev,
        DomainEvent::InboundConversation(i) if i.phone == other && i.reason == InboundReason::OtherMessage
            && i.campaign_id.as_deref() == Some(a.as_str()))));
    assert_eq!(counters(&h, &a).await.get("replied"), Some(&2));
    assert_counters_match(&h, &a).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    reply_in_time_is_recorded: r5_2_reply_in_time_is_recorded_by_context_id_else_by_phone, r5_2_reply_in_time_is_recorded_by_context_id_else_by_phone_on_dynamodb;
}

async fn quick_reply_closes_only_when_the_campaign_says_so(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let (px, py) = ("919812350301", "919812350302");
    let closing = running(&h, "X", &acc, json!({"close_on_quick_reply": true}), &[px]).await;
    let keeping = running(&h, "Y", &acc, json!({}), &[py]).await;
    run_tick(&h).await;
    let sent_at = now(&h);

    reply(&h, px, ReplyKind::Button("Yes".into())).await;
    reply(&h, py, ReplyKind::Button("Yes".into())).await;

    let x = entry(&h, &closing, px).await;
    assert_eq!(
        (x.state, x.disposition.as_deref()),
        (EntryState::Closed, Some("replied:Yes"))
    );
    assert!(interaction(&h, px).await.closed_at.is_some());
    let y = entry(&h, &keeping, py).await;
    assert_eq!(
        (y.state, y.disposition.as_deref()),
        (EntryState::Pending, Some("replied:Yes")),
        "recorded, still open: {y:?}"
    );
    assert!(y.replied_at.is_some() && y.expires_at.is_some());
    assert!(interaction(&h, py).await.is_open(now(&h)));
    assert_eq!(counters(&h, &keeping).await.get("replied"), Some(&1));
    assert_eq!(counters(&h, &keeping).await.get("PENDING"), Some(&1));
    let states: Vec<InteractionState> = events(&h)
        .iter()
        .filter_map(|e| match e {
            DomainEvent::ReplyReceived(r) => Some(r.interaction),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [InteractionState::Closed, InteractionState::Pending]
    );
    // Not done while it waits; the timeout closes it with the answer, not as no response.
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().completed, 1, "X only");
    advance(
        &h,
        sent_at + Duration::days(1) - now(&h) + Duration::seconds(1),
    );
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!((report.expired, report.completed), (1, 1));
    let y = entry(&h, &keeping, py).await;
    assert_eq!(
        (y.state, y.disposition.as_deref()),
        (EntryState::Closed, Some("replied:Yes"))
    );
    let c = counters(&h, &keeping).await;
    assert_eq!((c.get("replied"), c.get("no_response")), (Some(&1), None));
    // Open only until its timeout: closing at the timeout writes nothing to it.
    assert!(!interaction(&h, py).await.is_open(now(&h)));
    assert_counters_match(&h, &closing).await;
    assert_counters_match(&h, &keeping).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    quick_reply_closes_only_when_the_campaign_says_so: r5_2_quick_reply_closes_only_when_the_campaign_says_so, r5_2_quick_reply_closes_only_when_the_campaign_says_so_on_dynamodb;
}

#[tokio::test]
async fn r5_2_any_reply_opens_a_24h_window_and_publishes_reply_received() {
    let h = harness(memory()).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let p = "919812350401";
    let a = running(
        &h,
        "A",
        &acc,
        json!({"reply_route": "bot:spring-flow"}),
        &[p],
    )
    .await;
    run_tick(&h).await;
    let phone = PhoneNumber::parse(p).unwrap();
    let window = || async {
        repo::conversations::get_window(table(&h), SENDER, &phone)
            .await
            .unwrap()
    };
    assert!(
        window().await.is_none(),
        "no window before the contact writes"
    );

    let first = now(&h);
    reply(&h, p, ReplyKind::Button("No".into())).await;
    let w = window().await.unwrap();
    assert_eq!(w.until, Some(first + SERVICE_WINDOW));
    assert_eq!(w.tenant.as_deref(), Some(TENANT));
    let evs = events(&h);
    let r = evs
        .iter()
        .find_map(|e| match e {
            DomainEvent::ReplyReceived(r) => Some(r.clone()),
            _ => None,
        })
        .expect("ReplyReceived published");
    assert_eq!(
        (r.tenant.as_str(), r.campaign_id.as_str(), r.phone.as_str()),
        (TENANT, a.as_str(), p)
    );
    assert_eq!(r.button.as_deref(), Some("No"));
    assert_eq!(r.answer, AnswerKind::Option);
    assert_eq!(r.reply_route.as_deref(), Some("bot:spring-flow"));
    assert_eq!(r.sender_id, SENDER);
    assert_eq!(
        r.conversation,
        format!("/campaigns/{a}/contacts/{p}/conversation")
    );
    assert_eq!(r.window_until, Some(first + SERVICE_WINDOW));

    // Any later message extends the window; an agent may write inside it only.
    advance(&h, Duration::hours(5));
    typed(&h, p, "When does it end?").await;
    let w = window().await.unwrap();
    assert_eq!(w.until, Some(now(&h) + SERVICE_WINDOW));
    let i = interaction(&h, p).await;
    assert_eq!(
        conversation::may_send(
            OperatorMessage::FreeForm,
            Some(&i),
            Some(&w),
            false,
            now(&h)
        ),
        Ok(())
    );
    assert_eq!(
        conversation::may_send(
            OperatorMessage::FreeForm,
            Some(&i),
            Some(&w),
            false,
            now(&h) + SERVICE_WINDOW
        ),
        Err(Refusal::WindowClosed)
    );
    let replies = events(&h)
        .iter()
        .filter(|e| matches!(e, DomainEvent::ReplyReceived(_)))
        .count();
    assert_eq!(replies, 2, "every in-time reply is published");
    assert_eq!(
        counters(&h, &a).await.get("replied"),
        Some(&1),
        "counted once"
    );
}

// ---- R5.3 ------------------------------------------------------------------------------

async fn reply_matching_no_option(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Phone call", "WhatsApp message", "Email"]).await;
    let p = "919812350501";
    let a = running(
        &h,
        "A",
        &acc,
        json!({"close_on_quick_reply": true, "reply_route": "queue:sales"}),
        &[p],
    )
    .await;
    run_tick(&h).await;

    typed(&h, p, "Please contact me by phone").await;
    let e = entry(&h, &a, p).await;
    assert_eq!(
        (e.state, e.disposition.as_deref()),
        (EntryState::Pending, Some("agent_requested")),
        "kept pending, an agent asked to take over: {e:?}"
    );
    assert!(interaction(&h, p).await.is_open(now(&h)));
    let agent = events(&h)
        .into_iter()
        .find_map(|e| match e {
            DomainEvent::AgentConversationRequested(r) => Some(r),
            _ => None,
        })
        .expect("an agent conversation is requested");
    assert_eq!(
        (
            agent.campaign_id.as_str(),
            agent.phone.as_str(),
            agent.text.as_deref()
        ),
        (a.as_str(), p, Some("Please contact me by phone"))
    );
    assert_eq!(agent.options, ["Phone call", "WhatsApp message", "Email"]);
    assert_eq!(agent.reply_route.as_deref(), Some("queue:sales"));
    assert!(events(&h).iter().any(|e| matches!(e,
        DomainEvent::ReplyReceived(r) if r.answer == AnswerKind::NoMatch && r.interaction == InteractionState::Pending)));

    // Typing an option's text is choosing it: the campaign closes on it.
    typed(&h, p, "email").await;
    let e = entry(&h, &a, p).await;
    assert_eq!(
        (e.state, e.disposition.as_deref()),
        (EntryState::Closed, Some("replied:Email"))
    );
    let agents = events(&h)
        .iter()
        .filter(|e| matches!(e, DomainEvent::AgentConversationRequested(_)))
        .count();
    assert_eq!(agents, 1);
    assert_eq!(counters(&h, &a).await.get("replied"), Some(&1));
    assert_eq!(counters(&h, &a).await.get("agent_requested"), None);
    assert_counters_match(&h, &a).await;
}

/// Issue 19, item 7: a free-text reply matching no option is `agent_requested`, not
/// `replied` (which is an answer): apart in the entry, the statistics, the listing and the
/// export, and `replied` once the contact then picks an option.
#[tokio::test]
async fn a_reply_matching_no_option_is_agent_requested_apart_from_answers_in_stats_and_export() {
    let h = harness(memory()).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let (p, q) = ("919812350511", "919812350512");
    let a = running(
        &h,
        "A",
        &acc,
        json!({"close_on_quick_reply": true}),
        &[p, q],
    )
    .await;
    run_tick(&h).await;
    typed(&h, p, "who is this?").await;
    reply(&h, q, ReplyKind::Button("Yes".into())).await;

    let stats = h
        .ok(Method::GET, &format!("/campaigns/{a}/stats"), None)
        .await;
    assert_eq!(
        (stats["replied"].as_i64(), stats["agent_requested"].as_i64()),
        (Some(2), Some(1)),
        "{stats}"
    );
    let listed = h
        .ok(
            Method::GET,
            &format!("/campaigns/{a}/hopper/entries?disposition=agent_requested"),
            None,
        )
        .await;
    let phones: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, [p], "{listed}");
    assert_eq!(
        listed["items"][0]["outcome"], "sent",
        "still waiting for an answer"
    );
    let export = common::request(
        TENANT,
        Method::GET,
        &format!("/campaigns/{a}/export.csv"),
        "application/json",
        axum::body::Body::empty(),
    );
    let (status, csv) = common::send(&h.api, export).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    let row = |phone: &str| csv.lines().find(|l| l.contains(phone)).unwrap().to_owned();
    assert!(row(p).contains(",agent_requested,"), "{csv}");
    assert!(row(q).contains(",replied:Yes,"), "{csv}");

    reply(&h, p, ReplyKind::Button("No".into())).await;
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{a}/stats"), None)
        .await;
    assert_eq!(
        (stats["replied"].as_i64(), stats["agent_requested"].as_i64()),
        (Some(2), Some(0)),
        "{stats}"
    );
    assert_counters_match(&h, &a).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    reply_matching_no_option: r5_3_reply_matching_no_option_stays_pending_and_requests_an_agent, r5_3_reply_matching_no_option_stays_pending_and_requests_an_agent_on_dynamodb;
}

// ---- R5.4 ------------------------------------------------------------------------------

async fn late_reply(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let (before_sweep, after_sweep) = ("919812350601", "919812350602");
    let a = running(&h, "A", &acc, json!({}), &[before_sweep, after_sweep]).await;
    run_tick(&h).await;
    advance(&h, Duration::days(1) + Duration::minutes(5));

    // The timeout passed but the sweeper has not run: the reply closes it as expired.
    reply(&h, before_sweep, ReplyKind::Button("Yes".into())).await;
    let e = entry(&h, &a, before_sweep).await;
    assert_eq!(
        (e.state, e.disposition.as_deref(), e.replied_at),
        (EntryState::Closed, Some("expired"), None),
        "{e:?}"
    );
    assert!(interaction(&h, before_sweep).await.closed_at.is_some());

    // After the sweeper closed it as no response, the entry keeps its outcome.
    h.sys.sweeper.sweep().await.unwrap();
    typed(&h, after_sweep, "Sorry, was away. Yes!").await;
    let e = entry(&h, &a, after_sweep).await;
    assert_eq!(
        (e.state, e.disposition.as_deref()),
        (EntryState::Closed, Some("no_response"))
    );

    let inbound: Vec<(String, InboundReason)> = events(&h)
        .iter()
        .filter_map(|e| match e {
            DomainEvent::InboundConversation(i) => Some((i.phone.clone(), i.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        inbound,
        [
            (before_sweep.to_owned(), InboundReason::LateReply),
            (after_sweep.to_owned(), InboundReason::LateReply)
        ]
    );
    assert!(!events(&h)
        .iter()
        .any(|e| matches!(e, DomainEvent::ReplyReceived(_))));
    let c = counters(&h, &a).await;
    assert_eq!((c.get("replied"), c.get("no_response")), (None, Some(&1)));
    // Both show on the conversation as late replies.
    for p in [before_sweep, after_sweep] {
        let v = h
            .ok(
                Method::GET,
                &format!("/campaigns/{a}/contacts/{p}/conversation"),
                None,
            )
            .await;
        assert_eq!(v["messages"][1]["kind"], "late", "{v}");
    }
    // A late reply opens the agents' window like any message.
    let w = repo::conversations::get_window(
        table(&h),
        SENDER,
        &PhoneNumber::parse(after_sweep).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(w.is_open(now(&h)));
    assert_counters_match(&h, &a).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    late_reply: r5_4_late_reply_closes_as_expired_and_is_a_new_inbound_conversation, r5_4_late_reply_closes_as_expired_and_is_a_new_inbound_conversation_on_dynamodb;
}

// ---- R5.5 ------------------------------------------------------------------------------

async fn timeout_releases_the_contact(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let p = "919812350701";
    let a = running(&h, "A", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    let b = running(&h, "B", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    assert_eq!(entry(&h, &b, p).await.state, EntryState::Fresh, "B waits");

    advance(&h, Duration::days(1));
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!(report.expired, 1);
    let e = entry(&h, &a, p).await;
    assert_eq!(
        (e.state, e.disposition.as_deref()),
        (EntryState::Closed, Some("no_response"))
    );
    // The interaction is open only until its timeout (`expires_at`), so the sweeper
    // writes nothing to it when it closes the entry.
    let i = interaction(&h, p).await;
    assert!(!i.is_open(now(&h)) && i.expires_at <= now(&h), "{i:?}");
    assert_eq!(counters(&h, &a).await.get("no_response"), Some(&1));
    // The contact is free: B's waiting entry goes back in line and is sent.
    assert_eq!(report.released, 1);
    run_tick(&h).await;
    assert_eq!(entry(&h, &b, p).await.state, EntryState::Pending);
    assert_eq!(sent_to(&h, p), ["offer", "offer"]);
    assert_eq!(interaction(&h, p).await.entry.campaign_id, b);
    assert_counters_match(&h, &a).await;
    assert_counters_match(&h, &b).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    timeout_releases_the_contact: r5_5_timeout_closes_as_no_response_and_releases_the_contact, r5_5_timeout_closes_as_no_response_and_releases_the_contact_on_dynamodb;
}

async fn after_the_window_only_recontact(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &[]).await;
    let p = "919812350801";
    let a = running(&h, "A", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    typed(&h, p, "Thanks, maybe later").await;
    assert_eq!(entry(&h, &a, p).await.state, EntryState::Closed);
    advance(&h, SERVICE_WINDOW + Duration::hours(1));
    let phone = PhoneNumber::parse(p).unwrap();
    let w = repo::conversations::get_window(table(&h), SENDER, &phone)
        .await
        .unwrap()
        .unwrap();
    assert!(!w.is_open(now(&h)), "the window expired");
    // The rule: only the recontact template may go out now.
    let i = interaction(&h, p).await;
    assert_eq!(
        conversation::may_send(
            OperatorMessage::FreeForm,
            Some(&i),
            Some(&w),
            false,
            now(&h)
        ),
        Err(Refusal::WindowClosed)
    );
    assert_eq!(
        conversation::may_send(
            OperatorMessage::RecontactTemplate,
            Some(&i),
            Some(&w),
            false,
            now(&h)
        ),
        Ok(())
    );

    let path = format!("/contacts/{p}/recontact");
    let body = json!({"account_id": acc, "variables": [{"source": "contact_name"}]});
    let (s, v) = h.call(Method::POST, &path, Some(body.clone())).await;
    assert_eq!(s, StatusCode::CONFLICT, "no recontact template yet: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("recontact-template"),
        "{v}"
    );
    let (s, _) = h
        .call(
            Method::POST,
            &path,
            Some(json!({"account_id": "acc_missing"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    set_recontact_template(&h, &acc).await;
    let (s, v) = h
        .call(Method::POST, &path, Some(json!({"account_id": acc})))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("variables")),
        "{v}"
    );

    let sent = h.ok(Method::POST, &path, Some(body.clone())).await;
    assert_eq!(
        sent["template"],
        json!({"name": "we_miss_you", "language": "en"})
    );
    assert_eq!(sent["window_open"], false);
    assert_eq!(sent["campaign_id"], a.as_str());
    assert_eq!(
        sent["text"],
        "Hello Customer 01, the chat window has expired, please reply to this message if you still need support"
    );
    assert_eq!(sent_to(&h, p), ["offer", "we_miss_you"]);
    let last = h.simulator().sent().last().unwrap().clone();
    assert_eq!(last.params, ["Customer 01"]);
    assert_eq!(sent["message_id"], last.wamid.as_str());
    let w = repo::conversations::get_window(table(&h), SENDER, &phone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.last_recontact.unwrap().template, "we_miss_you");
    // The conversation shows it after the reply.
    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{a}/contacts/{p}/conversation"),
            None,
        )
        .await;
    let kinds: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["template", "reply", "recontact"], "{v}");
    // The contact answers the recontact: a new inbound conversation for the agents.
    reply(&h, p, ReplyKind::Text("Yes, still need help".into())).await;
    assert!(events(&h).iter().any(|e| matches!(e,
        DomainEvent::InboundConversation(i) if i.phone == p && i.reason == InboundReason::OtherMessage)));
    // An opted-out contact gets nothing.
    h.ok(Method::POST, "/opt-outs", Some(json!({"phone": p})))
        .await;
    let (s, v) = h.call(Method::POST, &path, Some(body)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(sent_to(&h, p).len(), 2);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    after_the_window_only_recontact: r5_5_after_the_window_only_the_recontact_template_is_sent, r5_5_after_the_window_only_the_recontact_template_is_sent_on_dynamodb;
}

// ---- R5.6 ------------------------------------------------------------------------------

async fn conversation_view(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let p = "919812350942";
    let a = running(&h, "A", &acc, json!({}), &[p]).await;
    run_tick(&h).await;
    let sent = entry(&h, &a, p).await;

    advance(&h, Duration::minutes(3));
    typed(&h, p, "What is the code for?").await;
    advance(&h, Duration::minutes(2));
    reply(&h, p, ReplyKind::Button("Yes".into())).await;
    // The same webhook delivered again changes nothing.
    let hook = h.simulator().webhooks().last().unwrap().clone();
    let again = shared::providers::meta::parse_webhook(hook.body.as_bytes()).unwrap();
    let report = h.sys.inbox.handle(again).await.unwrap();
    assert_eq!(report.applied, 0, "{report:?}");
    advance(&h, Duration::minutes(1));
    typed(&h, p, "after 6pm please").await;

    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{a}/contacts/{p}/conversation"),
            None,
        )
        .await;
    let msgs = v["messages"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_owned(),
                m["kind"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        [
            s("outbound", "template", "Hi Customer 42, code K42"),
            s("inbound", "no_match", "What is the code for?"),
            s("inbound", "reply", "Yes"),
            s("inbound", "no_match", "after 6pm please"),
        ],
        "{v}"
    );
    assert_eq!(msgs[0]["template"], "offer");
    assert_eq!(
        msgs[0]["message_id"],
        sent.message_id.clone().unwrap().as_str()
    );
    assert_eq!(msgs[2]["button"], "Yes");
    let times: Vec<&str> = msgs.iter().map(|m| m["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "in order");
    assert_eq!(
        (v["state"].as_str(), v["disposition"].as_str()),
        (Some("PENDING"), Some("replied:Yes"))
    );
    assert!(v["window_until"].is_string());
    assert_eq!(
        entry(&h, &a, p).await.sent_text.as_deref(),
        Some("Hi Customer 42, code K42")
    );

    // Unknown contact or campaign: 404; not a number: 422.
    let (st, _) = h
        .call(
            Method::GET,
            &format!("/campaigns/{a}/contacts/919800000000/conversation"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = h
        .call(
            Method::GET,
            &format!("/campaigns/cmp_x/contacts/{p}/conversation"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = h
        .call(
            Method::GET,
            &format!("/campaigns/{a}/contacts/abc/conversation"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // Deleting the campaign removes the conversation with its hopper.
    let (st, _) = h
        .call(Method::DELETE, &format!("/campaigns/{a}"), None)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    advance(&h, Duration::minutes(10));
    h.sys.sweeper.sweep().await.unwrap();
    let c = repo::get_campaign(table(&h), TENANT, &a).await.unwrap();
    assert!(c.is_none(), "the campaign is gone");
    let r = sent.entry_ref();
    assert!(repo::conversations::messages(table(&h), &r)
        .await
        .unwrap()
        .is_empty());
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    conversation_view: r5_6_conversation_view_shows_the_rendered_template_and_every_reply_in_order, r5_6_conversation_view_shows_the_rendered_template_and_every_reply_in_order_on_dynamodb;
}

// ---- R5.7 ------------------------------------------------------------------------------

async fn opt_out_keyword(backend: Arc<dyn Table>) {
    let h = harness(backend).await;
    let acc = account(&h, &["Yes", "No"]).await;
    let (stopper, spanish) = ("919812351001", "919812351002");
    let a = running(&h, "A", &acc, json!({}), &[stopper, spanish]).await;
    run_tick(&h).await;

    typed(&h, stopper, "  Stop. ").await;
    let phone = PhoneNumber::parse(stopper).unwrap();
    let o = repo::blocklists::get_opt_out(table(&h), TENANT, &phone)
        .await
        .unwrap()
        .expect("on the opt-out list");
    assert_eq!(
        (o.source, o.note.as_deref()),
        (OptOutSource::Keyword, Some("STOP"))
    );
    let e = entry(&h, &a, stopper).await;
    assert_eq!(
        (e.state, e.disposition.as_deref(), e.replied_at),
        (EntryState::Closed, Some("opted_out"), None),
        "not counted as a reply: {e:?}"
    );
    assert!(interaction(&h, stopper).await.closed_at.is_some());
    let opted: Vec<_> = events(&h)
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::ContactOptedOut(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(opted.len(), 1);
    assert_eq!(
        (
            opted[0].phone.as_str(),
            opted[0].keyword.as_str(),
            opted[0].campaign_id.as_deref()
        ),
        (stopper, "STOP", Some(a.as_str()))
    );
    assert!(!events(&h)
        .iter()
        .any(|e| matches!(e, DomainEvent::ReplyReceived(_))));
    // Saying it again adds nothing and publishes nothing.
    typed(&h, stopper, "STOP").await;
    let n = events(&h)
        .iter()
        .filter(|e| matches!(e, DomainEvent::ContactOptedOut(_)))
        .count();
    assert_eq!(n, 1);

    // The tenant's own words count too; words it does not configure do not.
    typed(&h, spanish, "baja").await;
    assert!(!repo::blocklists::is_opted_out(
        table(&h),
        TENANT,
        &PhoneNumber::parse(spanish).unwrap()
    )
    .await
    .unwrap());
    let t = h
        .ok(
            Method::PUT,
            "/tenant",
            Some(json!({"opt_out_keywords": ["Baja", "UNSUBSCRIBE"]})),
        )
        .await;
    assert_eq!(
        t["opt_out_keywords"],
        json!(["STOP", "BAJA", "UNSUBSCRIBE"])
    );
    let (s, v) = h
        .call(
            Method::PUT,
            "/tenant",
            Some(json!({"opt_out_keywords": ["   "]})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("opt_out_keywords[0]")
        )
    );
    typed(&h, spanish, "BAJA").await;
    assert!(repo::blocklists::is_opted_out(
        table(&h),
        TENANT,
        &PhoneNumber::parse(spanish).unwrap()
    )
    .await
    .unwrap());

    // No campaign sends to them again.
    let b = running(&h, "B", &acc, json!({}), &[stopper]).await;
    run_tick(&h).await;
    let e = entry(&h, &b, stopper).await;
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (EntryState::BlockList, Some("opted out"))
    );
    assert_eq!(
        counters(&h, &a).await.get("replied"),
        Some(&1),
        "only 'baja' before it was a keyword"
    );
    assert_counters_match(&h, &a).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    opt_out_keyword: r5_7_opt_out_keyword_puts_the_contact_on_the_opt_out_list, r5_7_opt_out_keyword_puts_the_contact_on_the_opt_out_list_on_dynamodb;
}

// ---- R8.2 ------------------------------------------------------------------------------

/// The JSON block following `<!-- schema:Name -->` in the document.
fn documented_schema(doc: &str, name: &str) -> Option<Value> {
    let marker = format!("<!-- schema:{name} -->");
    let at = doc.find(&marker)? + marker.len();
    let rest = &doc[at..];
    let open = rest.find("```json")? + "```json".len();
    let close = rest[open..].find("```")?;
    serde_json::from_str(&rest[open..open + close]).ok()
}

#[test]
fn r8_2_every_event_is_documented_with_its_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md");
    let doc = std::fs::read_to_string(&path).expect("docs/events.md exists");
    assert!(doc.contains("`campaigns`"), "the source is documented");
    let mut wrong = Vec::new();
    for (name, schema) in events::schemas() {
        assert!(
            doc.contains(&format!("## {name}")),
            "docs/events.md has no section for {name}"
        );
        if documented_schema(&doc, name).as_ref() != Some(&schema) {
            wrong.push((name, serde_json::to_string_pretty(&schema).unwrap()));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/events.md shows an outdated schema; paste these after each <!-- schema:Name --> marker:\n{}",
        wrong
            .iter()
            .map(|(n, s)| format!("{n}:\n```json\n{s}\n```"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every event the engine publishes has a documented detail-type.
    for dt in DomainEvent::DETAIL_TYPES {
        assert!(
            doc.contains(&format!("`{dt}`")),
            "{dt} is named in the table"
        );
    }
}
