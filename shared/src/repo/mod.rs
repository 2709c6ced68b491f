//! The single-table mapping, written once above the `Table` port so the DynamoDB adapter
//! and its in-memory twin cannot drift. Every key layout lives here.
//!
//! | item | PK | SK | index |
//! |---|---|---|---|
//! | account | `TENANT#t` | `ACCOUNT#a` | |
//! | template | `TENANT#t` | `TEMPLATE#a#name#lang` | |
//! | tenant | `TENANT#t` | `TENANT` | |
//! | campaign | `TENANT#t` | `CAMPAIGN#c` | GSI1 `CAMPAIGNS#RUNNING` / `CAMPAIGNS#SCHEDULED` / `CAMPAIGNS#DELETING` / `CAMPAIGNS#PAUSED` (with an end date) |
//! | list | `TENANT#t` | `LIST#l` | |
//! | list member | `LIST#t#l` | `PHONE#p` | |
//! | contact | `TENANT#t#PHONE#p` | `CONTACT` | |
//! | counters (16 shards; `STATS` of older campaigns still summed) | `CAMPAIGN#t#c` | `STATS#0`..`STATS#15` | |
//! | funnel step a bot reported (R6.3) | `CAMPAIGN#t#c` | `STEP#shard#p#time#step` | |
//! | dispatch cursors | `CAMPAIGN#t#c` | `DISPATCH` | |
//! | sequence | `CAMPAIGN#t#c` | `SEQ` | |
//! | test campaign link | `CAMPAIGN#t#c` | `TEST#child` | |
//! | latest command (reset, retry, expiry) | `CAMPAIGN#t#c` | `OP` | GSI1 `OPS#PENDING` while running |
//! | hopper entry | `HOPPER#t#c#n` | `ENTRY#p` | GSI2 `READY#t#c#n` while FRESH; GSI1 `DUE#k` while PENDING; GSI1 `SENDING#k` while SENDING |
//! | interaction | `INTERACTION#sender#p` | `INTERACTION` | TTL |
//! | a sender's hold on a contact (R4.5, R4.6) | `TENANT#t#PHONE#p` | `HOLD` | TTL |
//! | an SMS HELP answered (issue 16) | `HELP#<sender_id>#<message id>` | `HELP` | TTL |
//! | 24-hour window, last recontact (`conversations`) | `INTERACTION#sender#p` | `WINDOW` | TTL |
//! | conversation message (`conversations`) | `HOPPER#t#c#n` | `MSG#p#time#message` | |

use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::tenant::Tenant;

use crate::domain::hopper::{EntryState, HopperEntry};
use crate::domain::inbound::EntryRef;
use crate::domain::phone::PhoneNumber;
use crate::domain::stable_hash;
use crate::domain::stats::Delta;
use crate::domain::Time;
use crate::ports::{Cond, Index, Item, Page, PortError, PortResult, Query, SkCond, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Shards of the due-entry index, so the sweeper's reads and the index's writes spread.
pub const DUE_SHARDS: u16 = 16;

/// Sortable text for an instant: zero-padded epoch milliseconds.
pub fn time_key(t: Time) -> String {
    format!("{:015}", t.timestamp_millis().max(0))
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Serialises an entity and adds its keys.
pub fn to_item<T: Serialize>(entity: &T, kind: &str, keys: &[(&str, String)]) -> PortResult<Item> {
    let mut v = serde_json::to_value(entity)
        .map_err(|e| PortError::Backend(format!("serialise {kind}: {e}")))?;
    strip_nulls(&mut v);
    let Value::Object(mut item) = v else {
        return Err(PortError::Backend(format!("{kind} is not an object")));
    };
    for (k, val) in keys {
        item.insert((*k).to_owned(), Value::String(val.clone()));
    }
    item.insert("type".into(), kind.into());
    Ok(item)
}

/// The items of an index page that parse as `T`. One that does not (written by an older
/// version, or by hand) is logged by its partition key and skipped: a walk over a shared
/// index (timeouts, claims, running campaigns, commands, deletions) must not halt every
/// tenant's work on one bad item.
pub fn parse_index_items<T: DeserializeOwned>(items: Vec<Item>, index: &str) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|item| {
            let pk = item
                .get("PK")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            match from_item(item) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(index, pk = %pk, error = %e, "malformed item in an index; skipped");
                    None
                }
            }
        })
        .collect()
}

pub fn from_item<T: DeserializeOwned>(item: Item) -> PortResult<T> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| PortError::Backend(format!("corrupt item: {e}")))
}

/// Puts an entity carrying a `version`: the first write needs the key to be free, later
/// ones need the stored version to be the one read. The caller bumps nothing: this does.
pub(crate) async fn put_versioned(
    table: &dyn Table,
    mut item: Item,
    version: &mut u64,
) -> PortResult<()> {
    let cond = if *version == 0 {
        Cond::NotExists
    } else {
        Cond::Eq("version".into(), (*version).into())
    };
    item.insert("version".into(), (*version + 1).into());
    table.put(item, cond).await?;
    *version += 1;
    Ok(())
}

/// Reads one item as an entity.
pub(crate) async fn get_as<T: DeserializeOwned>(
    table: &dyn Table,
    pk: &str,
    sk: &str,
) -> PortResult<Option<T>> {
    table.get(pk, sk).await?.map(from_item).transpose()
}

/// Reads every page of a query.
pub async fn query_all(table: &dyn Table, mut q: Query) -> PortResult<Vec<Item>> {
    let mut out = Vec::new();
    loop {
        let Page { items, cursor } = table.query(&q).await?;
        out.extend(items);
        match cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

pub(crate) fn tenant_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

pub mod audience;
pub mod blocklists;
pub mod commands;
pub mod conversations;
pub mod hopper_views;
pub mod outbox;
pub mod pacing;
pub mod reports;
pub mod templates;
pub mod voice;

pub use audience::*;
pub use templates::*;

// ---- tenants ----

fn tenant_sk() -> &'static str {
    "TENANT"
}

/// The tenant's settings; the defaults when none are stored (R1.8).
pub async fn get_tenant(table: &dyn Table, tenant: &str) -> PortResult<Tenant> {
    Ok(get_as(table, &tenant_pk(tenant), tenant_sk())
        .await?
        .unwrap_or_else(|| Tenant::defaults(tenant)))
}

/// Stores the tenant's settings if nobody changed them since they were read.
pub async fn save_tenant(table: &dyn Table, t: &mut Tenant) -> PortResult<()> {
    let item = to_item(
        t,
        "tenant",
        &[("PK", tenant_pk(&t.id)), ("SK", tenant_sk().into())],
    )?;
    put_versioned(table, item, &mut t.version).await
}

// ---- campaigns ----

pub const RUNNING_PK: &str = "CAMPAIGNS#RUNNING";
pub const SCHEDULED_PK: &str = "CAMPAIGNS#SCHEDULED";
/// Campaigns waiting for the sweeper to remove them (R1.5).
pub const DELETING_PK: &str = "CAMPAIGNS#DELETING";
/// PAUSED campaigns with an end date, by end date: the sweeper expires their unsent
/// entries once it passes (R4.9).
pub const PAUSED_PK: &str = "CAMPAIGNS#PAUSED";
const CAMPAIGN_SK: &str = "CAMPAIGN#";

fn campaign_keys(c: &Campaign) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("PK", tenant_pk(&c.tenant)),
        ("SK", format!("{CAMPAIGN_SK}{}", c.id)),
    ];
    match (c.status, c.start_at) {
        (CampaignStatus::Running, _) => {
            keys.push(("GSI1PK", RUNNING_PK.into()));
            keys.push(("GSI1SK", format!("{}#{}", c.tenant, c.id)));
        }
        (CampaignStatus::Scheduled, Some(at)) => {
            keys.push(("GSI1PK", SCHEDULED_PK.into()));
            keys.push(("GSI1SK", format!("{}#{}#{}", time_key(at), c.tenant, c.id)));
        }
        (CampaignStatus::Deleting, _) => {
            keys.push(("GSI1PK", DELETING_PK.into()));
            keys.push(("GSI1SK", format!("{}#{}", c.tenant, c.id)));
        }
        (CampaignStatus::Paused, _) => {
            if let Some(end) = c.end_at {
                keys.push(("GSI1PK", PAUSED_PK.into()));
                keys.push(("GSI1SK", format!("{}#{}#{}", time_key(end), c.tenant, c.id)));
            }
        }
        _ => {}
    }
    // Every campaign that is not running, by when it last changed: the sweeper reconciles
    // the counters of those that changed lately (late statuses, attaches while a draft).
    if !matches!(c.status, CampaignStatus::Running | CampaignStatus::Deleting) {
        keys.push(("GSI2PK", SETTLING_PK.into()));
        keys.push((
            "GSI2SK",
            format!("{}#{}#{}", time_key(c.updated_at), c.tenant, c.id),
        ));
    }
    keys
}

/// GSI2 partition of the campaigns that are not running (see `campaign_keys`).
const SETTLING_PK: &str = "CAMPAIGNS#SETTLING";

/// (tenant, campaign id) of the campaigns not running that changed after `since`.
pub async fn settling_campaigns(
    table: &dyn Table,
    since: Time,
) -> PortResult<Vec<(String, String)>> {
    let q = Query::new(Index::Gsi2, SETTLING_PK, SkCond::Gt(time_key(since)));
    let items = query_all(table, q).await?;
    Ok(parse_index_items::<Campaign>(items, SETTLING_PK)
        .into_iter()
        .map(|c| (c.tenant, c.id))
        .collect())
}

/// Stores a campaign if nobody changed it since it was read (optimistic concurrency).
pub async fn save_campaign(table: &dyn Table, c: &mut Campaign) -> PortResult<()> {
    let item = to_item(c, "campaign", &campaign_keys(c))?;
    put_versioned(table, item, &mut c.version).await
}

/// Empties the outbox of a campaign whose transitions were published, if nobody changed
/// it since, as a new version: a writer that read the campaign before the publication
/// cannot store its published changes again.
pub async fn clear_unpublished(table: &dyn Table, c: &mut Campaign) -> PortResult<()> {
    let mut cleared = c.clone();
    cleared.unpublished.clear();
    save_campaign(table, &mut cleared).await?;
    *c = cleared;
    Ok(())
}

/// The stored campaign, whatever its status (DELETING included: callers that serve
/// operators treat that one as gone).
pub async fn get_campaign(
    table: &dyn Table,
    tenant: &str,
    id: &str,
) -> PortResult<Option<Campaign>> {
    get_as(table, &tenant_pk(tenant), &format!("{CAMPAIGN_SK}{id}")).await
}

/// Removes the campaign item itself: the last step of a delete.
pub async fn delete_campaign_item(table: &dyn Table, tenant: &str, id: &str) -> PortResult<()> {
    table
        .delete(&tenant_pk(tenant), &format!("{CAMPAIGN_SK}{id}"))
        .await
}

/// One page of a tenant's campaigns.
pub struct CampaignPage {
    /// In id order (ids sort by creation time).
    pub campaigns: Vec<Campaign>,
    /// The last campaign id read, to continue after.
    pub last: Option<String>,
    /// Whether campaigns may follow `last`.
    pub more: bool,
}

/// Up to `limit` of the tenant's campaigns whose id sorts after `after`. The cursor is
/// the campaign id itself, so a caller that filters can resume after any campaign.
pub async fn campaigns_after(
    table: &dyn Table,
    tenant: &str,
    after: Option<&str>,
    limit: u32,
) -> PortResult<CampaignPage> {
    let from = format!("{CAMPAIGN_SK}{}", after.unwrap_or(""));
    let mut q = Query::new(Index::Primary, tenant_pk(tenant), SkCond::Gt(from)).limit(limit);
    let mut out = CampaignPage {
        campaigns: Vec::new(),
        last: None,
        more: false,
    };
    // Other kinds of item follow the campaigns in the partition: stop at the first.
    loop {
        let page = table.query(&q).await?;
        for item in page.items {
            let is_campaign = item
                .get("SK")
                .and_then(Value::as_str)
                .is_some_and(|sk| sk.starts_with(CAMPAIGN_SK));
            if !is_campaign {
                return Ok(out);
            }
            let c: Campaign = from_item(item)?;
            out.last = Some(c.id.clone());
            out.campaigns.push(c);
        }
        match page.cursor {
            Some(cur) if (out.campaigns.len() as u32) < limit => {
                q = q
                    .limit(limit - out.campaigns.len() as u32)
                    .cursor(Some(cur))
            }
            Some(_) => {
                out.more = true;
                return Ok(out);
            }
            None => return Ok(out),
        }
    }
}

/// (tenant, campaign id) of every RUNNING campaign.
pub async fn running_campaigns(table: &dyn Table) -> PortResult<Vec<(String, String)>> {
    let items = query_all(table, Query::new(Index::Gsi1, RUNNING_PK, SkCond::Any)).await?;
    Ok(parse_index_items::<Campaign>(items, RUNNING_PK)
        .into_iter()
        .map(|c| (c.tenant, c.id))
        .collect())
}

/// (tenant, campaign id) of SCHEDULED campaigns whose start date is at or before `now`.
pub async fn due_scheduled_campaigns(
    table: &dyn Table,
    now: Time,
) -> PortResult<Vec<(String, String)>> {
    campaigns_until(table, SCHEDULED_PK, now).await
}

/// (tenant, campaign id) of the campaigns of a time-ordered GSI1 partition
/// (`CAMPAIGNS#SCHEDULED` by start date, `CAMPAIGNS#PAUSED` by end date) due at or
/// before `now`.
pub(crate) async fn campaigns_until(
    table: &dyn Table,
    pk: &str,
    now: Time,
) -> PortResult<Vec<(String, String)>> {
    let q = Query::new(Index::Gsi1, pk, SkCond::Lte(format!("{}#~", time_key(now))));
    let items = query_all(table, q).await?;
    Ok(parse_index_items::<Campaign>(items, pk)
        .into_iter()
        .map(|c| (c.tenant, c.id))
        .collect())
}

/// Campaigns marked for deletion, oldest request first per tenant.
pub async fn deleting_campaigns(table: &dyn Table) -> PortResult<Vec<Campaign>> {
    let items = query_all(table, Query::new(Index::Gsi1, DELETING_PK, SkCond::Any)).await?;
    Ok(parse_index_items(items, DELETING_PK))
}

fn campaign_pk(tenant: &str, id: &str) -> String {
    format!("CAMPAIGN#{tenant}#{id}")
}

/// Counter items per campaign (`STATS#0` .. `STATS#15`). DynamoDB takes about 1,000
/// writes per second on one item; a campaign sending 1,000 messages/s moves its counters
/// a few hundred times per second, so each write goes to one of these shards and a read
/// sums them (counts are additive: which shard a change lands on does not matter).
pub const COUNTER_SHARDS: u32 = 16;
/// The single counter item of campaigns stored before the counters were sharded; still
/// summed by [`get_counters`].
const LEGACY_STATS_SK: &str = "STATS";

fn stats_sk(shard: u32) -> String {
    format!("STATS#{shard}")
}

/// The shard the next counter write goes to: a per-process rotation starting at a random
/// shard, so concurrent writers (Lambda instances) spread over every shard.
fn next_counter_shard() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        AtomicU32::new((uuid::Uuid::new_v4().as_u128() % u128::from(COUNTER_SHARDS)) as u32)
    });
    next.fetch_add(1, Ordering::Relaxed) % COUNTER_SHARDS
}

/// Applies counter changes in one atomic write, to one counter shard.
pub async fn add_counters(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    d: &Delta,
) -> PortResult<()> {
    if d.is_empty() {
        return Ok(());
    }
    let deltas: Vec<(String, i64)> = d.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    table
        .add(
            &campaign_pk(tenant, campaign),
            &stats_sk(next_counter_shard()),
            &deltas,
        )
        .await
        .map(|_| ())
}

/// Applies counter changes given by name (a recount's repair) in one atomic write to
/// counter shard 0.
pub async fn add_named_counters(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    d: &BTreeMap<String, i64>,
) -> PortResult<()> {
    let deltas: Vec<(String, i64)> = d
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if deltas.is_empty() {
        return Ok(());
    }
    table
        .add(&campaign_pk(tenant, campaign), &stats_sk(0), &deltas)
        .await
        .map(|_| ())
}

/// The campaign's counters: the sum of its counter shards (and of the legacy single
/// item). Each shard is read with a strongly consistent get, all at once, so a read
/// right after a write sees it (a launch right after attaching a list finds its target),
/// as the single item did.
pub async fn get_counters(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
) -> PortResult<BTreeMap<String, i64>> {
    let pk = campaign_pk(tenant, campaign);
    let sks: Vec<String> = std::iter::once(LEGACY_STATS_SK.to_owned())
        .chain((0..COUNTER_SHARDS).map(stats_sk))
        .collect();
    let items = futures::future::try_join_all(sks.iter().map(|sk| table.get(&pk, sk))).await?;
    let mut sum = BTreeMap::new();
    for item in items.into_iter().flatten() {
        for (k, v) in item {
            if let Some(n) = v.as_i64() {
                *sum.entry(k).or_insert(0) += n;
            }
        }
    }
    Ok(sum)
}

/// Reserves `n` dispatch sequence numbers; returns the first.
pub async fn reserve_seq(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    n: u64,
) -> PortResult<u64> {
    let item = table
        .add(
            &campaign_pk(tenant, campaign),
            "SEQ",
            &[("seq".into(), n as i64)],
        )
        .await?;
    let last = item
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| PortError::Backend("seq missing".into()))?;
    Ok(last + 1 - n)
}

/// The sequence number the next reservation of the campaign will start at (a read, not a
/// reservation).
pub async fn next_seq(table: &dyn Table, tenant: &str, campaign: &str) -> PortResult<u64> {
    let item = table.get(&campaign_pk(tenant, campaign), "SEQ").await?;
    Ok(item
        .and_then(|i| i.get("seq").and_then(Value::as_u64))
        .unwrap_or(0)
        + 1)
}

pub use crate::domain::cursor::Cursors;

pub async fn get_cursors(table: &dyn Table, tenant: &str, campaign: &str) -> PortResult<Cursors> {
    Ok(get_as(table, &campaign_pk(tenant, campaign), "DISPATCH")
        .await?
        .unwrap_or_default())
}

pub async fn save_cursors(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    c: &mut Cursors,
) -> PortResult<()> {
    let item = to_item(
        c,
        "dispatch",
        &[
            ("PK", campaign_pk(tenant, campaign)),
            ("SK", "DISPATCH".into()),
        ],
    )?;
    put_versioned(table, item, &mut c.version).await
}

/// Records that `child` is a test campaign of `parent` (R1.6).
pub async fn put_test_link(
    table: &dyn Table,
    tenant: &str,
    parent: &str,
    child: &str,
) -> PortResult<()> {
    let mut item = Item::new();
    item.insert("PK".into(), campaign_pk(tenant, parent).into());
    item.insert("SK".into(), format!("TEST#{child}").into());
    item.insert("type".into(), "test_link".into());
    item.insert("child".into(), child.into());
    table.put(item, Cond::None).await
}

/// Ids of the test campaigns of `parent`, oldest first.
pub async fn test_campaign_ids(
    table: &dyn Table,
    tenant: &str,
    parent: &str,
) -> PortResult<Vec<String>> {
    let q = Query::new(
        Index::Primary,
        campaign_pk(tenant, parent),
        SkCond::BeginsWith("TEST#".into()),
    );
    Ok(query_all(table, q)
        .await?
        .into_iter()
        .filter_map(|i| i.get("child").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// A primary key: (PK, SK).
pub type Key = (String, String);

/// The key of a stored item.
pub fn key_of(item: &Item) -> Option<Key> {
    let s = |a: &str| item.get(a).and_then(Value::as_str).map(str::to_owned);
    Some((s("PK")?, s("SK")?))
}

/// Up to `limit` items of the campaign's own partition (counters, cursors, sequence,
/// test links): what a delete removes after the hopper.
pub async fn campaign_partition_page(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    limit: u32,
) -> PortResult<Vec<Item>> {
    let q = Query::new(Index::Primary, campaign_pk(tenant, campaign), SkCond::Any).limit(limit);
    Ok(table.query(&q).await?.items)
}

// ---- hopper ----

fn entry_pk(tenant: &str, campaign: &str, shard: u16) -> String {
    format!("HOPPER#{tenant}#{campaign}#{shard}")
}

fn ready_pk(tenant: &str, campaign: &str, shard: u16) -> String {
    format!("READY#{tenant}#{campaign}#{shard}")
}

pub fn seq_key(seq: u64) -> String {
    format!("{seq:020}")
}

/// The time-ordered GSI1 indexes an entry sits in while it waits for something: each
/// spread over [`DUE_SHARDS`] partitions by phone, sorted by the instant it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeIndex {
    /// PENDING, by the end of the response timeout (the sweeper closes it).
    Due,
    /// SENDING, by claim time (the sweeper reclaims stale claims, R4.10).
    Sending,
    /// FRESH and waiting, by `wait_until` (the sweeper puts it back in line).
    Wait,
}

impl TimeIndex {
    fn prefix(self) -> &'static str {
        match self {
            TimeIndex::Due => "DUE",
            TimeIndex::Sending => "SENDING",
            TimeIndex::Wait => "WAIT",
        }
    }

    /// Which index holds the entry, and its time there.
    fn of(e: &HopperEntry) -> Option<(TimeIndex, Time)> {
        match (e.state, e.wait_until, e.expires_at, e.claimed_at) {
            (EntryState::Fresh, Some(until), _, _) => Some((TimeIndex::Wait, until)),
            (EntryState::Pending, _, Some(at), _) => Some((TimeIndex::Due, at)),
            (EntryState::Sending, _, _, Some(at)) => Some((TimeIndex::Sending, at)),
            _ => None,
        }
    }
}

fn entry_keys(e: &HopperEntry) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("PK", entry_pk(&e.tenant, &e.campaign_id, e.shard)),
        ("SK", format!("ENTRY#{}", e.phone)),
    ];
    if (e.state, e.wait_until) == (EntryState::Fresh, None) {
        keys.push(("GSI2PK", ready_pk(&e.tenant, &e.campaign_id, e.shard)));
        keys.push(("GSI2SK", seq_key(e.seq)));
    }
    if let Some((index, at)) = TimeIndex::of(e) {
        let partition = stable_hash(e.phone.as_str()) % u64::from(DUE_SHARDS);
        keys.push(("GSI1PK", format!("{}#{partition}", index.prefix())));
        keys.push((
            "GSI1SK",
            format!(
                "{}#{}#{}#{}#{}",
                time_key(at),
                e.tenant,
                e.campaign_id,
                e.shard,
                e.phone
            ),
        ));
    }
    keys
}

/// Adds an entry unless the contact is already in the campaign's hopper (R2.2).
/// Returns false when it was already there.
pub async fn insert_entry(table: &dyn Table, e: &mut HopperEntry, now: Time) -> PortResult<bool> {
    e.changed_at = Some(now);
    let item = to_item(e, "entry", &entry_keys(e))?;
    match put_versioned(table, item, &mut e.version).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Stores a changed entry if nobody changed it since it was read, dated `now`.
pub async fn save_entry(table: &dyn Table, e: &mut HopperEntry, now: Time) -> PortResult<()> {
    e.changed_at = Some(now);
    let item = to_item(e, "entry", &entry_keys(e))?;
    put_versioned(table, item, &mut e.version).await
}

pub async fn get_entry(table: &dyn Table, r: &EntryRef) -> PortResult<Option<HopperEntry>> {
    table
        .get(
            &entry_pk(&r.tenant, &r.campaign_id, r.shard),
            &format!("ENTRY#{}", r.phone),
        )
        .await?
        .map(from_item)
        .transpose()
}

/// FRESH entries of one shard after the cursor, in dispatch order.
pub async fn ready_entries(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    after: Option<&str>,
    limit: u32,
) -> PortResult<Vec<HopperEntry>> {
    let sk = match after {
        Some(a) => SkCond::Gt(a.to_owned()),
        None => SkCond::Any,
    };
    read_ready(table, ready_pk(tenant, campaign, shard), sk, limit).await
}

/// FRESH entries of one shard up to (and including) a sequence key, in dispatch order.
pub async fn ready_entries_up_to(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    up_to: &str,
    limit: u32,
) -> PortResult<Vec<HopperEntry>> {
    let sk = SkCond::Lte(up_to.to_owned());
    read_ready(table, ready_pk(tenant, campaign, shard), sk, limit).await
}

async fn read_ready(
    table: &dyn Table,
    pk: String,
    sk: SkCond,
    limit: u32,
) -> PortResult<Vec<HopperEntry>> {
    let mut out = Vec::new();
    let mut q = Query::new(Index::Gsi2, pk, sk).limit(limit);
    // DynamoDB may return short pages; keep reading until the limit or the end.
    loop {
        let page = table.query(&q).await?;
        out.extend(parse_index_items(page.items, "READY"));
        match page.cursor {
            Some(c) if (out.len() as u32) < limit => {
                q = q.limit(limit - out.len() as u32).cursor(Some(c))
            }
            _ => return Ok(out),
        }
    }
}

/// Every entry of a campaign (for recounts, exports and tests).
pub async fn all_entries(table: &dyn Table, c: &Campaign) -> PortResult<Vec<HopperEntry>> {
    let mut out = Vec::new();
    for shard in 0..c.hopper_shards {
        let q = Query::new(
            Index::Primary,
            entry_pk(&c.tenant, &c.id, shard),
            SkCond::BeginsWith("ENTRY#".into()),
        );
        for item in query_all(table, q).await? {
            out.push(from_item(item)?);
        }
    }
    Ok(out)
}

/// The first `limit` items of one hopper shard, as stored (a delete reads a page,
/// removes it and reads again from the start, so it needs no cursor to resume).
pub async fn hopper_page(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    limit: u32,
) -> PortResult<Vec<Item>> {
    let q = Query::new(
        Index::Primary,
        entry_pk(tenant, campaign, shard),
        SkCond::BeginsWith("ENTRY#".into()),
    )
    .limit(limit);
    Ok(table.query(&q).await?.items)
}

/// The key of the link a contact's partition keeps to a campaign whose hopper holds it
/// (written by the audience use cases, `repo::audience::put_campaign_link`); a delete
/// removes it with the entry.
pub fn contact_campaign_link_key(tenant: &str, phone: &str, campaign: &str) -> Key {
    (
        format!("TENANT#{tenant}#PHONE#{phone}"),
        format!("IN#{campaign}"),
    )
}

/// Walks every partition of a [`TimeIndex`] page by page, entries due at or before
/// `until`, oldest first within a partition. The index is eventually consistent: re-read
/// an entry before acting on it.
///
/// A walk cut short by its budget is resumed by a new one (what it changed left the
/// index); each starts at another partition, taken from `until`'s minute, so a backlog in
/// one partition never starves the others.
pub struct IndexWalk {
    index: TimeIndex,
    until: Time,
    /// Partitions visited so far; the walk reads `(start + visited) % DUE_SHARDS`.
    visited: u16,
    start: u16,
    cursor: Option<String>,
}

impl IndexWalk {
    pub fn new(index: TimeIndex, until: Time) -> Self {
        let minute = until.timestamp().div_euclid(60);
        IndexWalk {
            index,
            until,
            visited: 0,
            start: minute.rem_euclid(i64::from(DUE_SHARDS)) as u16,
            cursor: None,
        }
    }

    /// The next page of up to 100 entries (possibly empty), or `None` when done.
    pub async fn next(&mut self, table: &dyn Table) -> PortResult<Option<Vec<HopperEntry>>> {
        if self.visited >= DUE_SHARDS {
            return Ok(None);
        }
        let partition = (self.start + self.visited) % DUE_SHARDS;
        let q = Query::new(
            Index::Gsi1,
            format!("{}#{}", self.index.prefix(), partition),
            SkCond::Lte(format!("{}#~", time_key(self.until))),
        )
        .limit(100)
        .cursor(self.cursor.take());
        let page = table.query(&q).await?;
        self.cursor = page.cursor;
        if self.cursor.is_none() {
            self.visited += 1;
        }
        Ok(Some(parse_index_items(page.items, self.index.prefix())))
    }
}

// ---- contact holds ----

pub use crate::domain::eligibility::ContactHold;

fn hold_key(tenant: &str, phone: &PhoneNumber) -> Key {
    (format!("TENANT#{tenant}#PHONE#{phone}"), "HOLD".into())
}

/// The contact's hold, or a free one to take.
pub async fn get_hold(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<ContactHold> {
    let (pk, sk) = hold_key(tenant, phone);
    Ok(get_as(table, &pk, &sk)
        .await?
        .unwrap_or_else(|| ContactHold::new(tenant, phone.clone())))
}

/// Stores a hold read with [`get_hold`], if nobody changed it since
/// ([`PortError::ConditionFailed`] otherwise). Kept a day after it lapses (TTL).
pub async fn save_hold(table: &dyn Table, h: &mut ContactHold) -> PortResult<()> {
    let (pk, sk) = hold_key(&h.tenant, &h.phone);
    let mut item = to_item(h, "hold", &[("PK", pk), ("SK", sk)])?;
    let ttl = (h.until + chrono::Duration::days(1)).timestamp();
    item.insert("ttl".into(), ttl.into());
    put_versioned(table, item, &mut h.version).await
}

// ---- answers to SMS HELP ----

/// Marks the HELP message `message_id` to `sender_id` as answered; `false` when it was
/// already (a webhook delivered again answers nothing twice). Kept a week (TTL).
pub async fn claim_help_answer(
    table: &dyn Table,
    sender_id: &str,
    message_id: &str,
    now: crate::domain::Time,
) -> PortResult<bool> {
    let mut item = Item::new();
    item.insert("PK".into(), format!("HELP#{sender_id}#{message_id}").into());
    item.insert("SK".into(), "HELP".into());
    item.insert("type".into(), "help_answer".into());
    let ttl = (now + chrono::Duration::days(7)).timestamp();
    item.insert("ttl".into(), ttl.into());
    match table.put(item, Cond::NotExists).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---- interactions ----

pub use crate::domain::eligibility::Interaction;

fn interaction_pk(sender_id: &str, phone: &PhoneNumber) -> String {
    format!("INTERACTION#{sender_id}#{phone}")
}

pub async fn put_interaction(
    table: &dyn Table,
    sender_id: &str,
    i: &Interaction,
) -> PortResult<()> {
    let item = to_item(
        i,
        "interaction",
        &[
            ("PK", interaction_pk(sender_id, &i.entry.phone)),
            ("SK", "INTERACTION".into()),
        ],
    )?;
    table.put(item, Cond::None).await
}

/// The key of the interaction of a contact with one of our senders.
pub fn interaction_key(sender_id: &str, phone: &PhoneNumber) -> Key {
    (interaction_pk(sender_id, phone), "INTERACTION".into())
}

pub async fn get_interaction(
    table: &dyn Table,
    sender_id: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<Interaction>> {
    get_as(table, &interaction_pk(sender_id, phone), "INTERACTION").await
}

/// Marks the contact's interaction with a sender closed by a reply to `message_id`
/// (R4.6: other campaigns may write to the contact again). Nothing changes when a later
/// send replaced the interaction meanwhile.
pub async fn close_interaction(
    table: &dyn Table,
    sender_id: &str,
    phone: &PhoneNumber,
    message_id: &str,
    at: Time,
) -> PortResult<()> {
    let Some(mut i) = get_interaction(table, sender_id, phone).await? else {
        return Ok(());
    };
    if i.message_id != message_id || i.closed_at.is_some() {
        return Ok(());
    }
    i.closed_at = Some(at);
    let item = to_item(
        &i,
        "interaction",
        &[
            ("PK", interaction_pk(sender_id, phone)),
            ("SK", "INTERACTION".into()),
        ],
    )?;
    match table
        .put(item, Cond::Eq("message_id".into(), message_id.into()))
        .await
    {
        Ok(()) | Err(PortError::ConditionFailed) => Ok(()),
        Err(e) => Err(e),
    }
}
