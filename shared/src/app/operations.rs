//! A campaign's background operation as the API shows it, and the steps every kind shares:
//! a new one replacing the stored one, what it replaced, an abort. The walks themselves are
//! [`super::commands`] (reset, retry, expiry, attach) and [`super::report_walks`]
//! (recount, estimate).

use super::AppResult;
use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::{new_id, Time};
use crate::ports::{PortError, Table};
use crate::repo;
use crate::repo::commands::{Operation, OperationKind, OperationStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// An operation as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationView {
    pub id: String,
    pub campaign_id: String,
    /// `reset`, `retry`, `expire` (the end date passed), `attach` (a list or segment;
    /// what its request did not finish the sweeper carries on), or a report too large for
    /// its request: `recount` or `estimate` (they only read the hopper; any other command
    /// replaces them).
    pub kind: OperationKind,
    /// RUNNING until every entry was handled, then DONE; ABORTED when the campaign was
    /// cancelled or ended, another command replaced it, or an attach gave up after its
    /// failed attempts.
    pub status: OperationStatus,
    /// The campaign's status now.
    pub campaign_status: CampaignStatus,
    /// Requests this walk serves (a retry asked again while one runs restarts it).
    pub requests: u32,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: OperationProgress,
    /// Why it was aborted, or what it replaced.
    pub message: Option<String>,
    /// A report's answer once DONE: the recount (`recount`, as `POST
    /// /campaigns/{id}/stats/recount` answers it) or the cost estimate (`estimate`, as
    /// `GET /campaigns/{id}/cost` answers it).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationProgress {
    /// Hopper shards walked completely, of `shards`.
    pub shards_done: u16,
    pub shards: u16,
    /// Entries read so far (an attach: contacts handled).
    pub examined: u64,
    /// Entries put back to FRESH (reset, retry), expired (expire) or added (attach) so far.
    pub changed: u64,
    /// SENDING entries a reset left alone: their send was in flight.
    pub in_flight: u64,
    /// Contacts an attach found already in the hopper (their one entry was kept).
    pub already_present: u64,
    /// Attach: lists or segments still to walk, the one being walked included.
    pub sources_left: u32,
    /// Shards walked, in percent with one decimal (an attach: 100 once done).
    pub percent: f64,
}

impl OperationView {
    pub fn new(op: &Operation, campaign_status: CampaignStatus) -> Self {
        let shards_done = op.shard.min(op.shards);
        let percent = if op.status == OperationStatus::Done || op.shards == 0 {
            100.0
        } else {
            (f64::from(shards_done) * 1000.0 / f64::from(op.shards)).round() / 10.0
        };
        OperationView {
            id: op.id.clone(),
            campaign_id: op.campaign_id.clone(),
            kind: op.kind,
            status: op.status,
            campaign_status,
            requests: op.requests,
            requested_at: op.requested_at,
            updated_at: op.updated_at,
            finished_at: op.finished_at,
            progress: OperationProgress {
                shards_done,
                shards: op.shards,
                examined: op.examined,
                changed: op.changed,
                in_flight: op.in_flight,
                already_present: op.already_present,
                sources_left: op.attaches.len() as u32,
                percent,
            },
            message: op.message.clone(),
            result: op
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
        }
    }
}

/// A new running operation on `c`, replacing the stored one at `version`.
pub(crate) fn new_operation(
    kind: OperationKind,
    c: &Campaign,
    now: Time,
    version: u64,
) -> Operation {
    Operation {
        id: new_id("op"),
        tenant: c.tenant.clone(),
        campaign_id: c.id.clone(),
        kind,
        status: OperationStatus::Running,
        requests: 1,
        requested_at: now,
        updated_at: now,
        finished_at: None,
        shards: c.hopper_shards.max(1),
        shard: 0,
        after: None,
        examined: 0,
        changed: 0,
        in_flight: 0,
        message: None,
        below_seq: None,
        attaches: Vec::new(),
        leased_until: None,
        failures: 0,
        already_present: 0,
        tally: None,
        result: None,
        version,
    }
}

pub(crate) fn replaces(old: &Operation) -> String {
    format!(
        "replaces the {} {} requested at {}",
        old.kind.as_str(),
        old.id,
        old.requested_at.to_rfc3339()
    )
}

/// Marks a running operation aborted with `why`, unless it changed meanwhile.
pub(crate) async fn abort(
    table: &dyn Table,
    op: &mut Operation,
    why: &str,
    now: Time,
) -> AppResult<()> {
    op.status = OperationStatus::Aborted;
    op.message = Some(why.to_owned());
    op.finished_at = Some(now);
    op.updated_at = now;
    match repo::commands::save_operation(table, op).await {
        Ok(()) | Err(PortError::ConditionFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Marks a running operation DONE, unless it changed meanwhile (then what is stored
/// stands).
pub(crate) async fn done(table: &dyn Table, op: &mut Operation, now: Time) -> AppResult<()> {
    op.status = OperationStatus::Done;
    op.finished_at = Some(now);
    op.updated_at = now;
    match repo::commands::save_operation(table, op).await {
        Ok(()) | Err(PortError::ConditionFailed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What a request that walks a campaign's hopper gives: its answer, done within the
/// request, or (too large for it) the operation that carries on in the background: an
/// attach, whose `progress` says how far, or a report, whose `result` carries the answer
/// once DONE.
#[derive(Debug, Clone)]
pub enum Walked<T> {
    Done(T),
    Continues(OperationView),
}
