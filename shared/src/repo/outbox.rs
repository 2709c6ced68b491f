//! The outboxes of domain events (issue 13, finding 10).
//!
//! Inbound events: the events one customer message produced, stored under the message's
//! id before they are published. The first handling of a message claims its outbox item;
//! a webhook delivered again finds it and publishes nothing more; a bus outage leaves the
//! item pending, and the sweeper publishes it.
//!
//! Campaign events: a status change is stored in the campaign item itself
//! (`Campaign::unpublished`), in the same put as the change. A mark written just before
//! that put tells the sweeper where to look when the change was not published at once.
//!
//! | item | PK | SK | GSI1 |
//! |---|---|---|---|
//! | outbox | `OUTBOX#sender#message` | `OUTBOX` | `OUTBOX#PENDING` / `time#sender#message` while not yet published |
//! | campaign outbox mark | `OUTBOX#CAMPAIGN#t#c` | `v{version}` | `OUTBOX#CAMPAIGNS` / `time#t#c#version` |

use super::{from_item, query_all, time_key, to_item};
use crate::domain::campaign::Campaign;
use crate::domain::events::DomainEvent;
use crate::domain::Time;
use crate::ports::{Cond, Index, PortError, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};

const SK: &str = "OUTBOX";
const PENDING_PK: &str = "OUTBOX#PENDING";
/// How long a published outbox item stays, so late redeliveries of the webhook still
/// find it (Meta retries for up to 7 days).
const KEEP_DAYS: i64 = 14;

/// The events of one inbound message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outbox {
    pub sender_id: String,
    pub message_id: String,
    /// Stored with their detail-type: the events themselves are untagged.
    #[serde(with = "tagged")]
    pub events: Vec<DomainEvent>,
    pub created_at: Time,
    pub published: bool,
    pub ttl: i64,
}

/// Events stored as `{"detail_type": ..., "detail": ...}`, read back by their type.
mod tagged {
    use crate::domain::events::DomainEvent;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Stored {
        detail_type: String,
        detail: serde_json::Value,
    }

    pub fn serialize<S: Serializer>(events: &[DomainEvent], s: S) -> Result<S::Ok, S::Error> {
        let stored: Result<Vec<Stored>, _> = events
            .iter()
            .map(|e| {
                serde_json::to_value(e).map(|detail| Stored {
                    detail_type: e.detail_type().to_owned(),
                    detail,
                })
            })
            .collect();
        stored.map_err(serde::ser::Error::custom)?.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DomainEvent>, D::Error> {
        Vec::<Stored>::deserialize(d)?
            .into_iter()
            .map(|s| DomainEvent::from_detail(&s.detail_type, &s.detail.to_string()))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

fn pk(sender_id: &str, message_id: &str) -> String {
    format!("OUTBOX#{sender_id}#{message_id}")
}

fn item(o: &Outbox) -> PortResult<crate::ports::Item> {
    let mut keys = vec![("PK", pk(&o.sender_id, &o.message_id)), ("SK", SK.into())];
    if !o.published {
        keys.push(("GSI1PK", PENDING_PK.into()));
        keys.push((
            "GSI1SK",
            format!(
                "{}#{}#{}",
                time_key(o.created_at),
                o.sender_id,
                o.message_id
            ),
        ));
    }
    to_item(o, "outbox", &keys)
}

impl Outbox {
    pub fn new(sender_id: &str, message_id: &str, events: Vec<DomainEvent>, now: Time) -> Self {
        Outbox {
            sender_id: sender_id.to_owned(),
            message_id: message_id.to_owned(),
            events,
            created_at: now,
            published: false,
            ttl: (now + chrono::Duration::days(KEEP_DAYS)).timestamp(),
        }
    }
}

/// Stores the message's events as pending unless the message has an outbox item already.
/// Returns false when it had one (the message was handled before).
pub async fn claim(table: &dyn Table, o: &Outbox) -> PortResult<bool> {
    match table.put(item(o)?, Cond::NotExists).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the message has an outbox item (it was handled before).
pub async fn exists(table: &dyn Table, sender_id: &str, message_id: &str) -> PortResult<bool> {
    Ok(table.get(&pk(sender_id, message_id), SK).await?.is_some())
}

/// Marks the item published: it leaves the pending index.
pub async fn mark_published(table: &dyn Table, o: &Outbox) -> PortResult<()> {
    let mut done = o.clone();
    done.published = true;
    table.put(item(&done)?, Cond::None).await
}

/// The items of GSI1 partition `pk` (sorted by creation time) created at or before
/// `until`; one that does not parse is skipped, never fatal to the caller's walk.
async fn created_until<T: serde::de::DeserializeOwned>(
    table: &dyn Table,
    pk: &str,
    until: Time,
) -> PortResult<Vec<T>> {
    let q = Query::new(
        Index::Gsi1,
        pk,
        SkCond::Lte(format!("{}#~", time_key(until))),
    );
    let items = query_all(table, q).await?;
    Ok(items
        .into_iter()
        .filter_map(|i| from_item(i).ok())
        .collect())
}

/// Outbox items still pending that were created at or before `until`.
pub async fn pending(table: &dyn Table, until: Time) -> PortResult<Vec<Outbox>> {
    created_until(table, PENDING_PK, until).await
}

// ---- campaign outbox marks ----

const MARKS_PK: &str = "OUTBOX#CAMPAIGNS";

/// Where a campaign's unpublished status changes may be: written before the save that
/// stores one (at `version`, the version that save gives the campaign), removed once the
/// campaign's outbox is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignMark {
    pub tenant: String,
    pub campaign_id: String,
    pub version: u64,
    pub created_at: Time,
    pub ttl: i64,
}

fn mark_key(m: &CampaignMark) -> (String, String) {
    (
        format!("OUTBOX#CAMPAIGN#{}#{}", m.tenant, m.campaign_id),
        format!("v{}", m.version),
    )
}

/// Marks `c`, about to be saved with a status change in its outbox.
pub async fn mark_campaign(table: &dyn Table, c: &Campaign, now: Time) -> PortResult<CampaignMark> {
    let m = CampaignMark {
        tenant: c.tenant.clone(),
        campaign_id: c.id.clone(),
        version: c.version + 1,
        created_at: now,
        ttl: (now + chrono::Duration::days(KEEP_DAYS)).timestamp(),
    };
    let (pk, sk) = mark_key(&m);
    let gsi = format!(
        "{}#{}#{}#{}",
        time_key(now),
        m.tenant,
        m.campaign_id,
        m.version
    );
    let keys = [
        ("PK", pk),
        ("SK", sk),
        ("GSI1PK", MARKS_PK.into()),
        ("GSI1SK", gsi),
    ];
    table
        .put(to_item(&m, "campaign_mark", &keys)?, Cond::None)
        .await?;
    Ok(m)
}

/// Marks created at or before `until`.
pub async fn campaign_marks(table: &dyn Table, until: Time) -> PortResult<Vec<CampaignMark>> {
    created_until(table, MARKS_PK, until).await
}

pub async fn unmark_campaign(table: &dyn Table, m: &CampaignMark) -> PortResult<()> {
    let (pk, sk) = mark_key(m);
    table.delete(&pk, &sk).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{InboundConversation, InboundReason};

    /// Domain events are untagged on the bus (their detail-type names them); stored in the
    /// outbox they must keep their kind, or an inbound conversation read back becomes a
    /// reply (found by the seeded simulation, seed 46).
    #[test]
    fn outbox_events_keep_their_kind_when_read_back() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:18:39Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let ev = DomainEvent::InboundConversation(InboundConversation {
            tenant: Some("t1".into()),
            campaign_id: Some("cmp_1".into()),
            phone: "919876500004".into(),
            sender_id: "106540352240000".into(),
            message_id: "wamid.in9".into(),
            text: Some("Yes please".into()),
            button: None,
            reason: InboundReason::InteractionClosed,
            window_until: None,
            at,
        });
        let o = Outbox::new("106540352240000", "wamid.in9", vec![ev.clone()], at);
        let back: Outbox = from_item(item(&o).unwrap()).unwrap();
        assert_eq!(back.events, vec![ev]);
    }
}
