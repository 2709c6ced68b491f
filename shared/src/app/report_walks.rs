//! Reports too large for their request, walked by the sweeper in the background: the
//! statistics recount (R6.2) and the cost estimate (R6.4) of a campaign whose hopper
//! cannot be read within [`super::reports::Reports::inline`].
//!
//! Such a walk is the campaign's operation (`recount` or `estimate`, `repo::commands`):
//! it reads the hopper shard by shard, a page at a time, and stores what it counted so far
//! (the [`ReportTally`]) together with where it stands after every page, in one versioned
//! write. A page is therefore counted once: a sweep that dies before its save leaves the
//! page to the next sweep, and a save that loses to another writer (a second sweeper, a
//! command replacing the walk) stops this one. Once every shard is read, the answer is
//! stored on the operation (`result`): the recount repairs the counters first, unless
//! they moved while the entries were counted (then the walk is ABORTED saying so, as the
//! request would answer 409); the estimate prices what it counted.
//!
//! A report changes no entry: it does not hold the campaign's completion, a command that
//! changes the hopper (reset, retry, expiry, attach) replaces it, and it is not stopped
//! by the campaign's end date or cancellation. A recount stops if the campaign is resumed.

pub use super::operations::Walked;
use super::operations::{abort, done, new_operation, replaces, OperationView};
use super::reports::{
    check_recount, count_entry, estimate, fold_hopper, price_basis, price_entry, recount_within,
    repair_to, CostEstimate, Recount, Reports, PAGE,
};
use super::{busy, retry_on_conflict, AppResult, WorkBudget};
use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::hopper::HopperEntry;
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::stats;
use crate::domain::{DomainError, Time};
use crate::ports::{PortError, Table};
use crate::repo;
use crate::repo::commands::{Operation, OperationKind, ReportTally};
use std::collections::BTreeMap;
use std::time::Instant;

/// How long a finished background estimate is served as the answer to `GET
/// /campaigns/{id}/cost` before a new walk is started.
pub const ESTIMATE_KEPT: chrono::Duration = chrono::Duration::minutes(10);

/// Where one sweep left a report's walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// More to read (the budget ran out), or another walker has it.
    Pending,
    Done,
    Aborted,
}

impl Reports {
    /// Recounts the campaign's entries (page by page) and repairs the live counters to
    /// equal the recount: the repair for counters that drifted, e.g. a worker that died
    /// between storing an entry and adding its counter change (R6.2).
    ///
    /// The repair adds the difference (recount minus live) to one counter shard, so
    /// counter writes landing meanwhile are kept, not overwritten. It must not race with
    /// entry changes whose counter write is still to come: refused (409) while the
    /// campaign is RUNNING or a reset/retry walk runs, and when the counters moved while
    /// the entries were being counted (statuses or replies arriving while PAUSED): try
    /// again. A send already in flight when the campaign paused can still land between
    /// the count and the repair; recounting again later corrects that too.
    ///
    /// A campaign too large to count within [`Reports::inline`] is counted by the sweeper
    /// in the background: the answer is then the `recount` operation, and asking again
    /// while it runs answers the same operation.
    pub async fn recount_stats(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> AppResult<Walked<Recount>> {
        let c = self.load(tenant, id).await?;
        let t = &*self.table;
        let running = repo::commands::get_operation(t, tenant, id)
            .await?
            .filter(|o| o.is_running());
        check_recount(&c, running.as_ref().map(|o| o.kind))?;
        if let Some(o) = running.filter(|o| o.kind == OperationKind::Recount) {
            return Ok(Walked::Continues(OperationView::new(&o, c.status)));
        }
        let before = stats::nonzero(&repo::get_counters(t, tenant, id).await?);
        let deadline = Instant::now() + self.inline;
        if let Some((entries, recounted)) = recount_within(t, &c, Some(deadline)).await? {
            return Ok(Walked::Done(
                repair_to(t, &c, &before, entries, &recounted).await?,
            ));
        }
        let tally = ReportTally {
            before,
            ..ReportTally::default()
        };
        let op = start(t, &c, OperationKind::Recount, tally, self.now()).await?;
        Ok(Walked::Continues(OperationView::new(&op, c.status)))
    }

    /// The cost estimate of the campaign (R6.4): every entry's number priced by its
    /// country for the template's category, on three bases (the whole audience, sent so
    /// far, delivered so far).
    ///
    /// A campaign too large to price within [`Reports::inline`] is priced by the sweeper
    /// in the background: the answer is then the `estimate` operation; asking again while
    /// it runs answers the same operation, and once it is DONE its estimate (for
    /// [`ESTIMATE_KEPT`]; `counted_at` says when the entries were read).
    pub async fn cost_estimate(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> AppResult<Walked<CostEstimate>> {
        let c = self.load(tenant, id).await?;
        let basis = price_basis(&*self.table, &c).await?;
        let t = &*self.table;
        let now = self.now();
        if let Some(o) = repo::commands::get_operation(t, tenant, id)
            .await?
            .filter(|o| o.kind == OperationKind::Estimate)
        {
            if o.is_running() {
                return Ok(Walked::Continues(OperationView::new(&o, c.status)));
            }
            let fresh = o.finished_at.is_some_and(|f| now - f < ESTIMATE_KEPT);
            let kept = o
                .result
                .as_deref()
                .map(serde_json::from_str::<CostEstimate>);
            if let (true, Some(Ok(e))) = (fresh, kept) {
                return Ok(Walked::Done(e));
            }
        }
        let deadline = Instant::now() + self.inline;
        let price = |acc: &mut BTreeMap<String, [i64; 3]>, e: &HopperEntry| price_entry(acc, &c, e);
        let parts = fold_hopper(t, &c, Some(deadline), BTreeMap::new, price).await?;
        let Some(parts) = parts else {
            let tally = ReportTally::default();
            let op = start(t, &c, OperationKind::Estimate, tally, now).await?;
            return Ok(Walked::Continues(OperationView::new(&op, c.status)));
        };
        let mut by_country: BTreeMap<String, [i64; 3]> = BTreeMap::new();
        for part in parts {
            for (k, v) in part {
                let n = by_country.entry(k).or_default();
                for i in 0..3 {
                    n[i] += v[i];
                }
            }
        }
        Ok(Walked::Done(estimate(&c, basis, by_country, now)))
    }
}

/// How long the finisher of a walk holds it: longer than a function lives (15 minutes).
const FINISH_LEASE: chrono::Duration = chrono::Duration::minutes(16);

/// Stores a report's walk as the campaign's operation, starting with `tally` (a recount's
/// counters before), and answers it; the running walk of the same kind when there is one.
/// A finished operation, or a running estimate (by a recount), is replaced; a running
/// command that changes the hopper, or a running recount (for an estimate), refuses it
/// (409).
pub(super) async fn start(
    t: &dyn Table,
    c: &Campaign,
    kind: OperationKind,
    tally: ReportTally,
    now: Time,
) -> AppResult<Operation> {
    let (tenant, id) = (c.tenant.as_str(), c.id.as_str());
    let tally = &tally;
    retry_on_conflict(|_| async move {
        let current = repo::commands::get_operation(t, tenant, id).await?;
        let running = current.as_ref().filter(|o| o.is_running());
        if let Some(o) = running {
            if o.kind == kind {
                return Ok(o.clone());
            }
            // A recount (a repair, asked for with POST) replaces a running estimate; an
            // estimate never cancels a recount.
            if !o.kind.is_report() || kind == OperationKind::Estimate {
                return Err(DomainError::Conflict(format!(
                    "campaign {id} has a {} walking its hopper; ask for the {} once it finishes (GET /campaigns/{id}/operation)",
                    o.kind.as_str(),
                    kind.as_str()
                ))
                .into());
            }
        }
        let mut op = new_operation(kind, c, now, current.as_ref().map_or(0, |o| o.version));
        op.message = running.map(replaces);
        op.tally = Some(tally.clone());
        repo::commands::save_operation(t, &mut op).await?;
        tracing::info!(campaign_id = %id, kind = kind.as_str(), "report continues in the background");
        Ok(op)
    })
    .await
    .map_err(busy(|| format!("campaign {id}")))
}

/// Walks a report on from where it stopped, within the sweep's budget; DONE with its
/// answer once every shard is read.
pub(super) async fn run(
    t: &dyn Table,
    mut op: Operation,
    c: &Campaign,
    b: &mut WorkBudget,
    now: Time,
) -> AppResult<Walk> {
    // A finisher is at work (see `finish`).
    if op.leased_until.is_some_and(|l| l > now) {
        return Ok(Walk::Pending);
    }
    if op.kind == OperationKind::Recount && c.status == CampaignStatus::Running {
        let why = "the campaign was resumed: its counters move with every send; pause it and recount again";
        abort(t, &mut op, why, now).await?;
        return Ok(Walk::Aborted);
    }
    let (tenant, id) = (c.tenant.clone(), c.id.clone());
    while op.shard < op.shards {
        if b.spent() {
            return Ok(Walk::Pending);
        }
        // Pages as large as the reports' (reading is all a report does), within what the
        // sweep may still read.
        let (after, limit) = (op.after.as_deref(), b.items_left.clamp(1, PAGE) as u32);
        let page =
            repo::commands::hopper_entries_after(t, &tenant, &id, op.shard, after, limit).await?;
        let tally = op.tally.get_or_insert_with(ReportTally::default);
        for e in &page.entries {
            match op.kind {
                OperationKind::Recount => count_entry(&mut tally.counters, e),
                _ => price_entry(&mut tally.by_country, c, e),
            }
        }
        b.take(page.entries.len().max(1));
        op.examined += page.entries.len() as u64;
        (op.shard, op.after) = match page.done {
            true => (op.shard + 1, None),
            false => (op.shard, page.last),
        };
        op.updated_at = now;
        if op.shard < op.shards {
            match repo::commands::save_operation(t, &mut op).await {
                Ok(()) => {}
                Err(PortError::ConditionFailed) => return Ok(Walk::Pending),
                Err(e) => return Err(e.into()),
            }
        }
    }
    finish(t, op, c, now).await
}

/// The walk read every shard: the answer (the recount's repair made first), stored on the
/// operation, DONE; ABORTED when the recount's counters moved meanwhile or the estimate
/// can no longer be priced (its template was deleted).
///
/// One finisher only: it first takes the operation for [`FINISH_LEASE`] with a versioned
/// write (two sweeps that read the last page at once: one wins, the other stops), so the
/// repair is added once. A finisher that dies after its repair leaves counters equal to
/// the recount, which the next finisher (once the lease lapses) does not repair again.
async fn finish(t: &dyn Table, mut op: Operation, c: &Campaign, now: Time) -> AppResult<Walk> {
    op.leased_until = Some(now + FINISH_LEASE);
    op.updated_at = now;
    match repo::commands::save_operation(t, &mut op).await {
        Ok(()) => {}
        Err(PortError::ConditionFailed) => return Ok(Walk::Pending),
        Err(e) => return Err(e.into()),
    }
    op.leased_until = None;
    let tally = op.tally.clone().unwrap_or_default();
    let answer = match op.kind {
        OperationKind::Recount => {
            let entries = op.examined as i64;
            repair_to(t, c, &tally.before, entries, &tally.counters)
                .await
                .map(|r| serde_json::to_string(&r))
        }
        _ => price_basis(t, c).await.map(|basis| {
            let e = estimate(c, basis, tally.by_country, now);
            serde_json::to_string(&e)
        }),
    };
    match answer {
        Ok(json) => (op.result, op.tally) = (Some(json.expect("a report serializes")), None),
        Err(super::AppError::Domain(e)) => {
            abort(t, &mut op, &e.to_string(), now).await?;
            return Ok(Walk::Aborted);
        }
        // The store failed: the lease is let go, so the next sweep finishes it.
        Err(e) => {
            let _ = repo::commands::save_operation(t, &mut op).await;
            return Err(e);
        }
    }
    done(t, &mut op, now).await?;
    tracing::info!(campaign_id = %c.id, kind = op.kind.as_str(), entries = op.examined, "report done");
    Ok(Walk::Done)
}
