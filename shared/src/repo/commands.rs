//! Campaign commands carried out in the background (R4.9): reset list, retry campaign and
//! the expiry of unsent entries at the end date.
//!
//! | item | PK | SK | index |
//! |---|---|---|---|
//! | the campaign's latest operation (reset, retry, expire, attach) | `CAMPAIGN#t#c` | `OP` | GSI1 `OPS#PENDING` by request time, while RUNNING |
//! | PAUSED campaign with an end date (on the campaign item) | `TENANT#t` | `CAMPAIGN#c` | GSI1 `CAMPAIGNS#PAUSED` by end date |
//!
//! One operation item per campaign holds the latest command: what it does, where its walk
//! over the hopper stands (the shard and the last entry key handled in it) and how far it
//! got. The sweeper finds the running ones through the sparse `OPS#PENDING` index.

use super::{
    campaign_pk, entry_pk, from_item, get_as, put_versioned, query_all, time_key, to_item,
    PAUSED_PK,
};
use crate::domain::contact::PendingAttach;
use crate::domain::hopper::HopperEntry;
use crate::domain::Time;
use crate::ports::{Index, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The index partition of operations still to carry out.
pub const OPS_PENDING_PK: &str = "OPS#PENDING";
const OP_SK: &str = "OP";
const ENTRY_SK: &str = "ENTRY#";

pub use crate::domain::operation::OperationKind;

/// What a report's walk has counted so far, stored with its position after every page,
/// so a page is never counted twice nor skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportTally {
    /// Recount: the counters of the entries walked so far.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, i64>,
    /// Recount: the live counters (non-zero ones) when the walk began; the repair is
    /// refused when they moved meanwhile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub before: BTreeMap<String, i64>,
    /// Estimate: per recipient country, entries [in the hopper, sent, delivered].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_country: BTreeMap<String, [i64; 3]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    /// Accepted; the sweeper walks the hopper a budget at a time.
    Running,
    /// Every entry was handled.
    Done,
    /// Stopped before the end: the campaign was cancelled or ended, or another command
    /// replaced it (`message` says which).
    Aborted,
}

/// A campaign's latest background command and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub tenant: String,
    pub campaign_id: String,
    pub kind: OperationKind,
    pub status: OperationStatus,
    /// Requests this walk serves: a retry asked for while one runs restarts the walk from
    /// the first shard instead of starting a second one.
    pub requests: u32,
    pub requested_at: Time,
    pub updated_at: Time,
    pub finished_at: Option<Time>,
    /// Hopper shards of the campaign; the walk goes through them in order.
    pub shards: u16,
    /// The shard being walked (`shards` once done).
    pub shard: u16,
    /// The sort key of the last entry handled in `shard`; the walk continues after it.
    pub after: Option<String>,
    /// Entries read so far.
    pub examined: u64,
    /// Entries changed so far (put back to FRESH, or expired).
    pub changed: u64,
    /// SENDING entries a reset left alone: their send was in flight.
    pub in_flight: u64,
    /// Why it was aborted, or what it replaced.
    pub message: Option<String>,
    /// A reset or retry covers the entries in line when it was asked for: those placed
    /// before this sequence number. An entry attached later, or put back in line by this
    /// walk (a new place at the end), is left alone, so a page walked twice changes
    /// nothing twice. `None` (an expiry, or an operation stored before this was kept):
    /// every entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_seq: Option<u64>,
    /// An attach's sources still to walk, the first being walked (its cursor with it);
    /// an attach asked for while one runs joins the end of the line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attaches: Vec<PendingAttach>,
    /// Contacts an attach found already in the hopper (their entry was kept).
    #[serde(default)]
    pub already_present: u64,
    /// An attach whose request still walks its first source: the sweeper leaves it
    /// alone until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_until: Option<Time>,
    /// Sweeps in a row whose attach page failed (reset by a page that succeeds).
    #[serde(default)]
    pub failures: u32,
    /// A report's walk: what it counted so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<ReportTally>,
    /// A report's walk, once DONE: its answer (the recount or the estimate) as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default)]
    pub version: u64,
}

impl Operation {
    pub fn is_running(&self) -> bool {
        self.status == OperationStatus::Running
    }
}

fn operation_keys(op: &Operation) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("PK", campaign_pk(&op.tenant, &op.campaign_id)),
        ("SK", OP_SK.into()),
    ];
    if op.is_running() {
        keys.push(("GSI1PK", OPS_PENDING_PK.into()));
        keys.push((
            "GSI1SK",
            format!(
                "{}#{}#{}",
                time_key(op.requested_at),
                op.tenant,
                op.campaign_id
            ),
        ));
    }
    keys
}

/// The campaign's latest operation, if it ever had one.
pub async fn get_operation(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
) -> PortResult<Option<Operation>> {
    get_as(table, &campaign_pk(tenant, campaign), OP_SK).await
}

/// Stores the operation if nobody changed the item since it was read. A new operation
/// replacing an older one carries the older one's `version`.
pub async fn save_operation(table: &dyn Table, op: &mut Operation) -> PortResult<()> {
    let item = to_item(op, "operation", &operation_keys(op))?;
    put_versioned(table, item, &mut op.version).await
}

/// (tenant, campaign id) of every campaign with a running operation, oldest request first.
/// The index is eventually consistent: re-read the operation before acting.
pub async fn pending_operations(table: &dyn Table) -> PortResult<Vec<(String, String)>> {
    let items = query_all(table, Query::new(Index::Gsi1, OPS_PENDING_PK, SkCond::Any)).await?;
    Ok(super::parse_index_items::<Operation>(items, OPS_PENDING_PK)
        .into_iter()
        .map(|o| (o.tenant, o.campaign_id))
        .collect())
}

/// (tenant, campaign id) of PAUSED campaigns whose end date is at or before `now`.
pub async fn paused_campaigns_ended(
    table: &dyn Table,
    now: Time,
) -> PortResult<Vec<(String, String)>> {
    super::campaigns_until(table, PAUSED_PK, now).await
}

/// One page of a hopper shard's entries, in key order, after the entry key `after`.
pub struct EntryPage {
    pub entries: Vec<HopperEntry>,
    /// The sort key of the last entry read, to continue after.
    pub last: Option<String>,
    /// Whether the shard has no entries after this page.
    pub done: bool,
}

/// Up to `limit` entries of one hopper shard whose key sorts after `after` (from the
/// first entry when `None`), reading on through short pages.
pub async fn hopper_entries_after(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    after: Option<&str>,
    limit: u32,
) -> PortResult<EntryPage> {
    let limit = limit.max(1);
    let from = after.unwrap_or(ENTRY_SK).to_owned();
    let mut q = Query::new(
        Index::Primary,
        entry_pk(tenant, campaign, shard),
        SkCond::Gt(from),
    )
    .limit(limit);
    let mut out = EntryPage {
        entries: Vec::new(),
        last: after.map(str::to_owned),
        done: false,
    };
    loop {
        let page = table.query(&q).await?;
        for item in page.items {
            let sk = item.get("SK").and_then(Value::as_str).unwrap_or_default();
            if !sk.starts_with(ENTRY_SK) {
                out.done = true;
                return Ok(out);
            }
            out.last = Some(sk.to_owned());
            out.entries.push(from_item(item)?);
        }
        match page.cursor {
            Some(c) if (out.entries.len() as u32) < limit => {
                q = q.limit(limit - out.entries.len() as u32).cursor(Some(c))
            }
            Some(_) => return Ok(out),
            None => {
                out.done = true;
                return Ok(out);
            }
        }
    }
}
