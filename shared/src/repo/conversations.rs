//! Conversations after a campaign message (R5.2-R5.6).
//!
//! | item | PK | SK | |
//! |---|---|---|---|
//! | 24-hour window and last recontact, per business number and contact | `INTERACTION#sender#p` | `WINDOW` | TTL `ttl` (cleanup only) |
//! | conversation message (reply, late reply, opt-out, recontact) | `HOPPER#t#c#n` | `MSG#p#<time>#<message id>` | |
//! | a keyed request (recontact) and its answer | `TENANT#t#IDEMPOTENCY#<key>` | `<operation>` | TTL `ttl`: a day after it was taken |
//!
//! The window item sits next to the interaction item (same partition, its own sort key),
//! so the sender's unconditional interaction write never races a reply's window update,
//! and a contact with no campaign interaction still has a window. Conversation messages
//! live in the entry's hopper partition, after every `ENTRY#` item (walks of the entries
//! stop at the first other sort key), keyed by time and provider message id: a webhook
//! delivered twice writes the same key, and deleting the campaign removes them with its
//! hopper ([`purge_messages`]).

use super::{from_item, get_as, interaction_pk, put_versioned, query_all, time_key, to_item};
use crate::domain::conversation::{ConversationMessage, ServiceWindow};
use crate::domain::idempotency::{IdempotencyKey, KeyedRequest};
use crate::domain::inbound::EntryRef;
use crate::domain::phone::PhoneNumber;
use crate::ports::{Cond, Index, PortError, PortResult, Query, SkCond, Table};

const WINDOW_SK: &str = "WINDOW";
const MSG_SK: &str = "MSG#";

pub async fn get_window(
    table: &dyn Table,
    sender_id: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<ServiceWindow>> {
    get_as(table, &interaction_pk(sender_id, phone), WINDOW_SK).await
}

/// Stores the window if nobody changed it since it was read.
pub async fn save_window(table: &dyn Table, w: &mut ServiceWindow) -> PortResult<()> {
    let item = to_item(
        w,
        "service_window",
        &[
            ("PK", interaction_pk(&w.sender_id, &w.phone)),
            ("SK", WINDOW_SK.into()),
        ],
    )?;
    put_versioned(table, item, &mut w.version).await
}

fn message_sk(phone: &PhoneNumber, m: &ConversationMessage) -> String {
    format!(
        "{MSG_SK}{phone}#{}#{}",
        time_key(m.at),
        m.message_id.as_deref().unwrap_or("-")
    )
}

fn entry_pk(r: &EntryRef) -> String {
    super::entry_pk(&r.tenant, &r.campaign_id, r.shard)
}

/// Adds a message to the conversation of `entry`; false when it was there already (the
/// same provider message at the same time).
pub async fn put_message(
    table: &dyn Table,
    entry: &EntryRef,
    m: &ConversationMessage,
) -> PortResult<bool> {
    let item = to_item(
        m,
        "conversation_message",
        &[("PK", entry_pk(entry)), ("SK", message_sk(&entry.phone, m))],
    )?;
    match table.put(item, Cond::NotExists).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the conversation of `entry` already holds this inbound message.
pub async fn has_message(
    table: &dyn Table,
    entry: &EntryRef,
    message_id: &str,
    at: crate::domain::Time,
) -> PortResult<bool> {
    let sk = format!("{MSG_SK}{}#{}#{message_id}", entry.phone, time_key(at));
    Ok(table.get(&entry_pk(entry), &sk).await?.is_some())
}

/// Every stored message of the conversation of `entry`, oldest first.
pub async fn messages(table: &dyn Table, entry: &EntryRef) -> PortResult<Vec<ConversationMessage>> {
    let q = Query::new(
        Index::Primary,
        entry_pk(entry),
        SkCond::BeginsWith(format!("{MSG_SK}{}#", entry.phone)),
    );
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

/// Deletes up to `limit` conversation messages of one hopper shard of a deleted campaign;
/// how many it deleted (0: none left).
pub async fn purge_messages(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    limit: u32,
) -> PortResult<usize> {
    let q = Query::new(
        Index::Primary,
        super::entry_pk(tenant, campaign, shard),
        SkCond::BeginsWith(MSG_SK.into()),
    )
    .limit(limit.max(1));
    let keys: Vec<super::Key> = table
        .query(&q)
        .await?
        .items
        .iter()
        .filter_map(super::key_of)
        .collect();
    if !keys.is_empty() {
        table.delete_many(&keys).await?;
    }
    Ok(keys.len())
}

// ---- idempotency keys of operator sends ----

fn keyed_pk(tenant: &str, key: &IdempotencyKey) -> String {
    format!("TENANT#{tenant}#IDEMPOTENCY#{}", key.as_str())
}

/// The earlier request of `tenant` with `key` for `operation`, if one is kept (expired
/// ones too: DynamoDB's TTL deletes within days, not at the second).
pub async fn get_keyed<T: serde::de::DeserializeOwned>(
    table: &dyn Table,
    tenant: &str,
    operation: &str,
    key: &IdempotencyKey,
) -> PortResult<Option<KeyedRequest<T>>> {
    get_as(table, &keyed_pk(tenant, key), operation).await
}

/// Stores a keyed request read with [`get_keyed`] or new (version 0: only if the key is
/// unused, [`PortError::ConditionFailed`] otherwise).
pub async fn save_keyed<T: serde::Serialize>(
    table: &dyn Table,
    operation: &str,
    r: &mut KeyedRequest<T>,
) -> PortResult<()> {
    let mut item = to_item(
        r,
        "keyed_request",
        &[
            ("PK", keyed_pk(&r.tenant, &r.key)),
            ("SK", operation.into()),
        ],
    )?;
    item.insert("ttl".into(), r.expires_at().timestamp().into());
    put_versioned(table, item, &mut r.version).await
}

/// Frees a key whose request sent nothing.
pub async fn delete_keyed<T>(
    table: &dyn Table,
    operation: &str,
    r: &KeyedRequest<T>,
) -> PortResult<()> {
    table.delete(&keyed_pk(&r.tenant, &r.key), operation).await
}
