//! Block lists and the tenant's opt-out list (R4.3).
//!
//! | item | PK | SK | index |
//! |---|---|---|---|
//! | block list | `TENANT#t` | `BLOCKLIST#l` | |
//! | blocked number | `BLOCK#t#l` | `PHONE#p` | |
//! | opt-out | `TENANT#t#PHONE#p` | `OPTOUT` | GSI1 `OPTOUTS#t` / `p` |
//! | marketing choice | `TENANT#t#PHONE#p` | `OPTOUT#MARKETING` | GSI1 `MKTOPTOUTS#t` / `p` while stopped |
//!
//! A number's membership in a list is one GetItem, so the sender's check before each send
//! costs one read per attached list and one for the opt-out. The opt-out lives in the
//! contact's partition (a contact delete leaves it: the opt-out outlives the contact) and
//! is listed through the sparse GSI1 partition `OPTOUTS#t` in phone order.

use super::{from_item, get_as, put_versioned, tenant_pk, to_item, Key};
use crate::domain::blocklist::{BlockList, BlockedNumber, MarketingPreference, OptOut};
use crate::domain::phone::PhoneNumber;
use crate::ports::{Cond, Index, PortError, PortResult, Query, SkCond, Table};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

const LIST_SK: &str = "BLOCKLIST#";
const OPTOUT_SK: &str = "OPTOUT";
const MARKETING_SK: &str = "OPTOUT#MARKETING";
/// Concurrent writes while adding a batch of numbers.
const WRITE_CONCURRENCY: usize = 16;

fn list_sk(id: &str) -> String {
    format!("{LIST_SK}{id}")
}

fn members_pk(tenant: &str, list: &str) -> String {
    format!("BLOCK#{tenant}#{list}")
}

fn member_sk(phone: &PhoneNumber) -> String {
    format!("PHONE#{phone}")
}

fn optout_pk(tenant: &str, phone: &PhoneNumber) -> String {
    format!("TENANT#{tenant}#PHONE#{phone}")
}

fn optouts_index_pk(tenant: &str) -> String {
    format!("OPTOUTS#{tenant}")
}

// ---- block lists ----

/// Stores a block list if nobody changed it since it was read (a new one needs its key
/// free); bumps the version.
pub async fn save_block_list(table: &dyn Table, l: &mut BlockList) -> PortResult<()> {
    let item = to_item(
        l,
        "block_list",
        &[("PK", tenant_pk(&l.tenant)), ("SK", list_sk(&l.id))],
    )?;
    put_versioned(table, item, &mut l.version).await
}

/// The stored block list, whatever its state (one being deleted included).
pub async fn get_block_list(
    table: &dyn Table,
    tenant: &str,
    id: &str,
) -> PortResult<Option<BlockList>> {
    get_as(table, &tenant_pk(tenant), &list_sk(id)).await
}

/// One page of the tenant's block lists in id order (ids sort by creation time), those
/// being deleted included.
pub async fn block_lists_page(
    table: &dyn Table,
    tenant: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<BlockList>, Option<String>)> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith(LIST_SK.into()),
    )
    .limit(limit)
    .cursor(cursor);
    let page = table.query(&q).await?;
    Ok((
        page.items
            .into_iter()
            .map(from_item)
            .collect::<PortResult<_>>()?,
        page.cursor,
    ))
}

/// Removes the block list item itself: the last step of a delete, after its numbers.
pub async fn delete_block_list_item(table: &dyn Table, tenant: &str, id: &str) -> PortResult<()> {
    table.delete(&tenant_pk(tenant), &list_sk(id)).await
}

// ---- blocked numbers ----

fn member_item(tenant: &str, list: &str, n: &BlockedNumber) -> PortResult<crate::ports::Item> {
    to_item(
        n,
        "blocked_number",
        &[
            ("PK", members_pk(tenant, list)),
            ("SK", member_sk(&n.phone)),
        ],
    )
}

/// Adds a number to a block list unless it is there already (then the stored one, with
/// its `added_at`, stays). Returns whether it was added.
pub async fn put_blocked_number(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    n: &BlockedNumber,
) -> PortResult<bool> {
    match table
        .put(member_item(tenant, list, n)?, Cond::NotExists)
        .await
    {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`put_blocked_number`] for many numbers, a few writes at a time; whether each was
/// added, in input order.
pub async fn put_blocked_numbers(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    numbers: &[BlockedNumber],
) -> PortResult<Vec<bool>> {
    let writes = numbers
        .iter()
        .cloned()
        .map(|n| async move { put_blocked_number(table, tenant, list, &n).await });
    stream::iter(writes)
        .buffered(WRITE_CONCURRENCY)
        .try_collect()
        .await
}

pub async fn get_blocked_number(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<BlockedNumber>> {
    get_as(table, &members_pk(tenant, list), &member_sk(phone)).await
}

/// Removes a number from a block list (a missing one is fine).
pub async fn delete_blocked_number(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    phone: &PhoneNumber,
) -> PortResult<()> {
    table
        .delete(&members_pk(tenant, list), &member_sk(phone))
        .await
}

/// One page of a block list's numbers, in phone order.
pub async fn blocked_numbers(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<BlockedNumber>, Option<String>)> {
    let q = Query::new(
        Index::Primary,
        members_pk(tenant, list),
        SkCond::BeginsWith("PHONE#".into()),
    )
    .limit(limit)
    .cursor(cursor);
    let page = table.query(&q).await?;
    Ok((
        page.items
            .into_iter()
            .map(from_item)
            .collect::<PortResult<_>>()?,
        page.cursor,
    ))
}

/// Removes up to `limit` numbers of a block list (the first ones stored: a delete reads a
/// page, removes it and reads again from the start, so it needs no cursor to resume).
/// Returns how many it removed; 0 means the list holds no more numbers.
pub async fn delete_blocked_page(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    limit: u32,
) -> PortResult<usize> {
    let q = Query::new(
        Index::Primary,
        members_pk(tenant, list),
        SkCond::BeginsWith("PHONE#".into()),
    )
    .limit(limit);
    let keys: Vec<Key> = table
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

/// The id of the first of `lists` (in the order given: the campaign's attachment order)
/// that holds `phone`, if any. One GetItem per list, all at once.
pub async fn blocked_by(
    table: &dyn Table,
    tenant: &str,
    lists: &[String],
    phone: &PhoneNumber,
) -> PortResult<Option<String>> {
    let sk = member_sk(phone);
    let pks: Vec<String> = lists.iter().map(|l| members_pk(tenant, l)).collect();
    let sk = &sk;
    let found = futures::future::try_join_all(
        pks.into_iter()
            .map(|pk| async move { table.get(&pk, sk).await.map(|i| i.is_some()) }),
    )
    .await?;
    Ok(lists
        .iter()
        .zip(found)
        .find(|(_, hit)| *hit)
        .map(|(l, _)| l.clone()))
}

// ---- opt-outs ----

/// Records an opt-out. Idempotent: when the contact is already opted out the first record
/// (its time, source and note) stays, so a replayed STOP changes nothing.
pub async fn put_opt_out(table: &dyn Table, tenant: &str, rec: &OptOut) -> PortResult<()> {
    put_opt_out_new(table, tenant, rec).await.map(|_| ())
}

/// [`put_opt_out`], telling whether this call added it (false: it was already there).
pub async fn put_opt_out_new(table: &dyn Table, tenant: &str, rec: &OptOut) -> PortResult<bool> {
    let item = to_item(
        rec,
        "opt_out",
        &[
            ("PK", optout_pk(tenant, &rec.phone)),
            ("SK", OPTOUT_SK.into()),
            ("GSI1PK", optouts_index_pk(tenant)),
            ("GSI1SK", rec.phone.to_string()),
        ],
    )?;
    match table.put(item, Cond::NotExists).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn get_opt_out(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<OptOut>> {
    get_as(table, &optout_pk(tenant, phone), OPTOUT_SK).await
}

/// Whether the contact is on the tenant's opt-out list (one GetItem).
pub async fn is_opted_out(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<bool> {
    Ok(table
        .get(&optout_pk(tenant, phone), OPTOUT_SK)
        .await?
        .is_some())
}

/// Takes a contact off the opt-out list (a missing one is fine).
pub async fn delete_opt_out(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<()> {
    table.delete(&optout_pk(tenant, phone), OPTOUT_SK).await
}

/// One page of the tenant's opt-outs in phone order (GSI1: eventually consistent).
pub async fn opt_outs(
    table: &dyn Table,
    tenant: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<OptOut>, Option<String>)> {
    let q = Query::new(Index::Gsi1, optouts_index_pk(tenant), SkCond::Any)
        .limit(limit)
        .cursor(cursor);
    let page = table.query(&q).await?;
    let items = page
        .items
        .into_iter()
        .filter(|i| i.get("SK").and_then(Value::as_str) == Some(OPTOUT_SK))
        .map(from_item)
        .collect::<PortResult<_>>()?;
    Ok((items, page.cursor))
}

// ---- marketing choices ----

/// The contact's last reported choice about the tenant's marketing messages.
pub async fn get_marketing_preference(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<MarketingPreference>> {
    get_as(table, &optout_pk(tenant, phone), MARKETING_SK).await
}

/// Whether the contact stopped the tenant's marketing messages (one GetItem).
pub async fn is_marketing_opted_out(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<bool> {
    Ok(get_marketing_preference(table, tenant, phone)
        .await?
        .is_some_and(|p| p.stopped))
}

/// Stores a choice if nobody changed it since it was read (`rec.version` is the version
/// read, 0 for none); only a stop is listed in the sparse index.
pub async fn save_marketing_preference(
    table: &dyn Table,
    tenant: &str,
    rec: &mut MarketingPreference,
) -> PortResult<()> {
    let mut keys = vec![
        ("PK", optout_pk(tenant, &rec.phone)),
        ("SK", MARKETING_SK.to_owned()),
    ];
    if rec.stopped {
        keys.push(("GSI1PK", format!("MKTOPTOUTS#{tenant}")));
        keys.push(("GSI1SK", rec.phone.to_string()));
    }
    let item = to_item(&*rec, "marketing_preference", &keys)?;
    put_versioned(table, item, &mut rec.version).await
}
