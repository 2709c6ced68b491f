//! Campaign events survive a bus outage (issue 13, finding 10): a campaign's state change
//! is stored with the change itself and published after it; when the bus cannot take it,
//! the sweeper publishes it later. An outage delays events and loses none.

use testkit::harness as common;

use async_trait::async_trait;
use axum::http::Method;
use serde_json::json;
use shared::domain::events::DomainEvent;
use shared::ports::{Clock, Cond, EventBus, PortError, PortResult};
use shared::repo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

/// EventBridge that can be down: a publish then fails and delivers nothing.
#[derive(Default)]
struct FlakyBus {
    down: AtomicBool,
    events: Mutex<Vec<DomainEvent>>,
}

#[async_trait]
impl EventBus for FlakyBus {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::Backend("the bus is down".into()));
        }
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl FlakyBus {
    /// The statuses campaign `id` moved through, as published: `from -> to` each.
    fn moves_of(&self, id: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                DomainEvent::CampaignStateChanged(c) if c.campaign_id == id => {
                    Some(format!("{} -> {}", c.from.as_str(), c.to.as_str()))
                }
                _ => None,
            })
            .collect()
    }
}

/// A campaign of one contact, ready to launch; its id.
async fn ready_campaign(h: &Spawned) -> String {
    h.ready_campaign(&["919812340041"], json!({})).await
}

/// The system on a bus that can be down, sending to a simulator that never replies.
async fn on_flaky_bus() -> (Arc<FlakyBus>, Spawned) {
    let bus = Arc::new(FlakyBus::default());
    let h = Spawn::new(Arc::new(MemoryTable::new()))
        .bus(bus.clone())
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(false)
        .spawn()
        .await;
    (bus, h)
}

#[tokio::test]
async fn a_bus_outage_delays_campaign_events_and_loses_none() {
    let (bus, h) = on_flaky_bus().await;
    let id = ready_campaign(&h).await;
    bus.down.store(true, Ordering::SeqCst);
    for command in ["launch", "pause", "resume"] {
        h.ok(Method::POST, &format!("/campaigns/{id}/{command}"), None)
            .await;
    }
    assert_eq!(bus.moves_of(&id), Vec::<String>::new(), "the bus is down");
    let shown = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(shown["status"], "RUNNING", "{shown}");
    assert!(
        shown.get("unpublished").is_none(),
        "the outbox is not part of the campaign the API shows: {shown}"
    );

    bus.down.store(false, Ordering::SeqCst);
    h.clock.advance(chrono::Duration::minutes(3));
    h.sys.sweeper.sweep().await.unwrap();
    let moves = vec!["READY -> RUNNING", "RUNNING -> PAUSED", "PAUSED -> RUNNING"];
    assert_eq!(bus.moves_of(&id), moves, "published once the bus is back");

    // Published events leave the outbox: later sweeps and changes do not repeat them.
    h.clock.advance(chrono::Duration::minutes(3));
    h.sys.sweeper.sweep().await.unwrap();
    h.ok(Method::POST, &format!("/campaigns/{id}/pause"), None)
        .await;
    h.clock.advance(chrono::Duration::minutes(3));
    h.sys.sweeper.sweep().await.unwrap();
    let mut moves = moves;
    moves.push("RUNNING -> PAUSED");
    assert_eq!(bus.moves_of(&id), moves);
}

/// The review of the outbox: clearing published changes is a change of its own (a new
/// version), so a writer that read the campaign before the publication cannot store the
/// published changes again, where no mark would ever lead the sweeper to them.
#[tokio::test]
async fn a_writer_that_read_before_the_publication_cannot_store_its_changes_again() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).spawn().await;
    let id = ready_campaign(&h).await;
    let t = &*h.table;
    let now = h.clock.now();
    let mut c = repo::get_campaign(t, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    let from = c.status;
    c.launch(now).unwrap();
    assert!(c.note_transition(from, None));
    repo::save_campaign(t, &mut c).await.unwrap();
    let mut stale = repo::get_campaign(t, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.unpublished.len(), 1);

    repo::clear_unpublished(t, &mut c).await.unwrap();
    assert!(c.unpublished.is_empty());
    stale.name = "edited after the publication".into();
    let again = repo::save_campaign(t, &mut stale).await;
    assert!(
        matches!(again, Err(PortError::ConditionFailed)),
        "the stale copy must re-read: {again:?}"
    );
    let stored = repo::get_campaign(t, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.unpublished.is_empty(), "{:?}", stored.unpublished);
}

/// The review of the outbox: a test send copies its campaign but not the campaign's
/// unpublished status changes, which are the parent's to publish under its own id.
#[tokio::test]
async fn a_test_send_does_not_carry_its_parents_unpublished_changes() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).spawn().await;
    let id = ready_campaign(&h).await;
    let now = h.clock.now();
    let mut c = repo::get_campaign(&*h.table, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    let from = c.status;
    c.launch(now).unwrap();
    c.note_transition(from, Some("waiting for the bus".into()));
    c.pause(None, now).unwrap();
    let copy = c.test_copy(now).unwrap();
    assert!(copy.unpublished.is_empty(), "{:?}", copy.unpublished);
}

/// The review of the outbox: one campaign the sweeper cannot read (a corrupt item) does
/// not stop it from publishing the others' outboxes, nor the rest of the sweep.
#[tokio::test]
async fn one_unreadable_campaign_does_not_stop_the_sweeper_publishing_the_others() {
    let (bus, h) = on_flaky_bus().await;
    let id = ready_campaign(&h).await;
    let t = &*h.table;
    let mut broken = repo::get_campaign(t, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    broken.id = "cmp_broken".into();
    repo::outbox::mark_campaign(t, &broken, h.clock.now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    let corrupt = json!({"PK": format!("TENANT#{}", common::TENANT), "SK": "CAMPAIGN#cmp_broken", "status": 7});
    t.put(corrupt.as_object().unwrap().clone(), Cond::None)
        .await
        .unwrap();

    bus.down.store(true, Ordering::SeqCst);
    h.ok(Method::POST, &format!("/campaigns/{id}/launch"), None)
        .await;
    bus.down.store(false, Ordering::SeqCst);
    h.clock.advance(chrono::Duration::minutes(3));
    let swept = h.sys.sweeper.sweep().await;
    assert!(swept.is_ok(), "{swept:?}");
    assert_eq!(bus.moves_of(&id), ["READY -> RUNNING"]);
}
