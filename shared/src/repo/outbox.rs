//! The outbox of inbound events (issue 13, finding 10): the events one customer message
//! produced, stored under the message's id before they are published. The first handling
//! of a message claims its outbox item; a webhook delivered again finds it and publishes
//! nothing more; a bus outage leaves the item pending, and the sweeper publishes it.
//!
//! | item | PK | SK | GSI1 |
//! |---|---|---|---|
//! | outbox | `OUTBOX#sender#message` | `OUTBOX` | `OUTBOX#PENDING` / `time#sender#message` while not yet published |

use super::{from_item, query_all, time_key, to_item};
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
    pub events: Vec<DomainEvent>,
    pub created_at: Time,
    pub published: bool,
    pub ttl: i64,
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

/// Outbox items still pending that were created at or before `until`.
pub async fn pending(table: &dyn Table, until: Time) -> PortResult<Vec<Outbox>> {
    let q = Query::new(
        Index::Gsi1,
        PENDING_PK,
        SkCond::Lte(format!("{}#~", time_key(until))),
    );
    let items = query_all(table, q).await?;
    Ok(items
        .into_iter()
        .filter_map(|i| from_item(i).ok())
        .collect())
}
