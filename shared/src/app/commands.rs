//! Campaign commands that touch every hopper entry (R4.9): reset list, retry campaign,
//! and the expiry of entries still unsent when the campaign's end date passes.
//!
//! A hopper may hold a million entries, so no request walks it. A command is validated
//! and stored as the campaign's operation item (`repo::commands`), the API answers 202
//! with it, and the sweeper ([`Commands::run_pending`], every minute) walks the hopper
//! shard by shard in pages within a time budget, changing each entry with a versioned
//! conditional write and moving the counters by the difference, and stores where it
//! stopped (the shard and the last entry key) after every page; the next sweep goes on
//! from there. Every change is idempotent (an entry already put back is left alone), so a
//! page walked twice after a crash changes nothing twice.
//!
//! - **Retry** (RUNNING, PAUSED or COMPLETED, before the end date): RETRY entries go back
//!   to FRESH at the end of the dispatch order; permanent failures never. A COMPLETED
//!   campaign reopens as RUNNING at once (the sweeper does not complete a campaign while
//!   an operation runs); PAUSED stays PAUSED. A retry asked for while one runs restarts
//!   that walk from the first shard (entries that failed again meanwhile are picked up)
//!   and answers with the same operation, `requests` counting both. Refused with 409
//!   while a reset runs (the reset covers RETRY entries too) and when no entry is RETRY.
//! - **Reset** (`confirm` required; refused while RUNNING: pause first): every entry but
//!   SENDING ones (in flight) back to FRESH with its outcome cleared. A COMPLETED campaign
//!   reopens as PAUSED, so nothing goes out until the operator resumes. A reset replaces a
//!   running retry; a reset asked for while one runs restarts it. Interactions that waited
//!   for a reply to a reset entry are closed.
//! - **Expiry** (R4.9 "entries not sent by the end date expire with a reason"): once a
//!   RUNNING or PAUSED campaign's end date passes, its FRESH entries (waiting ones too)
//!   become SKIPPED "campaign ended"; this replaces any running retry or reset. A RUNNING
//!   campaign then completes as before (the sweeper, once nothing is in flight); a PAUSED
//!   one, which can no longer resume, completes the same way.

use super::audience::{self, attach_page};
use super::campaigns::{AttachResult, PAGE};
use super::operations::{abort, new_operation, replaces};
pub use super::operations::{OperationProgress, OperationView};
use super::report_walks::Walk;
use super::{busy, retry_on_conflict, update_campaign, AppResult, WorkBudget};
use crate::domain::campaign::{AudienceRef, Campaign, CampaignStatus};
use crate::domain::contact::{AttachSource, PendingAttach, Segment};
use crate::domain::hopper::{EntryState, HopperEntry};
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::stats::{self, Delta};
use crate::domain::{new_id, DomainError, Time};
use crate::ports::{Clock, EventBus, PortError, Table};
use crate::repo;
use crate::repo::commands::{Operation, OperationKind, OperationStatus};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sweeper's part: carries out running operations and starts the expiry of ended
/// campaigns.
pub struct Commands {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// How long an attach request walks its source before it answers 202 and leaves the
    /// rest to the sweeper ([`ATTACH_INLINE`] by default; zero: everything in the
    /// background).
    pub attach_inline: Duration,
}

/// The part of an attach done inside its request: well inside API Gateway's 29 s.
pub const ATTACH_INLINE: Duration = Duration::from_secs(10);
/// How long past its budget an attach request keeps its operation from the sweeper: a
/// request that died mid-walk is taken over after this.
const ATTACH_LEASE_MARGIN: Duration = Duration::from_secs(20);
/// Sweeps in a row whose attach page failed before the attach gives up.
pub const ATTACH_MAX_FAILURES: u32 = 10;

/// What an attach request did: all of it within the request, or the part it could, with
/// the operation that carries on in the background.
pub type Attached = super::operations::Walked<AttachResult>;

/// How much one sweep may spend walking hoppers for commands; what is left continues in
/// the next sweep.
#[derive(Debug, Clone, Copy)]
pub struct CommandBudget {
    /// Wall-clock time for the walks.
    pub time: Duration,
    /// Entries to read at most.
    pub max_entries: usize,
    /// Entries read (and written) per page; the progress is stored after each page.
    pub page: u32,
}

impl Default for CommandBudget {
    fn default() -> Self {
        CommandBudget {
            time: Duration::from_secs(15),
            max_entries: usize::MAX,
            page: 200,
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CommandsReport {
    /// Entries a reset or a retry put back to FRESH.
    pub applied: usize,
    /// FRESH entries expired because their campaign's end date passed.
    pub expired_unsent: usize,
    /// Operations that finished in this run.
    pub operations_done: usize,
    /// Operations still running after this run (the budget ran out).
    pub operations_pending: usize,
    /// PAUSED campaigns completed because their end date passed.
    pub completed: usize,
    /// Entries background attaches added.
    pub attached: usize,
}

/// Entries writes in flight while a page is applied.
const WRITE_CONCURRENCY: usize = 16;

/// The same operation asked for again: its walk starts over from the first shard.
fn restart(mut op: Operation, now: Time) -> Operation {
    op.requests += 1;
    op.shard = 0;
    op.after = None;
    op.updated_at = now;
    op
}

/// Applies the operation's change to one entry; `seq` is its new place in the dispatch
/// order when it goes back to FRESH.
fn apply(kind: OperationKind, e: &mut HopperEntry, seq: u64) -> bool {
    match kind {
        OperationKind::Reset => e.reset(seq),
        OperationKind::Retry => e.retry(seq),
        OperationKind::Expire => e.expire_unsent(),
        // An attach adds entries; a report only reads them.
        OperationKind::Attach | OperationKind::Recount | OperationKind::Estimate => false,
    }
}

/// A retry needs RETRY entries to send again: 409 without.
async fn has_retry_entries(t: &dyn Table, tenant: &str, id: &str) -> AppResult<()> {
    let counters = repo::get_counters(t, tenant, id).await?;
    Ok(crate::domain::operation::retry_needs_entries(
        id, &counters,
    )?)
}

/// Whether the campaign has an operation still running that changes its hopper (the
/// sweeper does not complete such a campaign: a retry may be about to give it entries to
/// send). A report's walk (recount, estimate) only reads: it does not count.
pub async fn has_running_operation(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
) -> AppResult<bool> {
    Ok(repo::commands::get_operation(table, tenant, campaign)
        .await?
        .is_some_and(|o| o.is_running() && !o.kind.is_report()))
}

// ---- requests (the API) -----------------------------------------------------------------

impl Commands {
    /// Retry campaign (R4.9): validates, stores the operation (or restarts the running
    /// retry) and reopens a COMPLETED campaign as RUNNING. The sweeper does the rest.
    pub async fn request_retry(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> AppResult<OperationView> {
        self.request(tenant, id, OperationKind::Retry).await
    }

    /// Reset list (R4.9): needs `confirm`; validates, stores the operation (replacing a
    /// running retry, restarting a running reset) and reopens a COMPLETED campaign as
    /// PAUSED. The sweeper does the rest.
    pub async fn request_reset(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        confirm: bool,
    ) -> AppResult<OperationView> {
        if !confirm {
            return Err(DomainError::invalid(
                "confirm",
                "a reset puts every entry of the campaign back to FRESH: send {\"confirm\": true}",
            )
            .into());
        }
        self.request(tenant, id, OperationKind::Reset).await
    }

    /// The campaign's latest operation (reset, retry, expiry or attach) and its progress.
    pub async fn operation(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<OperationView> {
        let c = super::load_visible(&*self.table, tenant, id).await?;
        let op = repo::commands::get_operation(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("operation of campaign", id.as_str()))?;
        Ok(OperationView::new(&op, c.status))
    }

    async fn request(
        &self,
        tenant: &str,
        id: &str,
        kind: OperationKind,
    ) -> AppResult<OperationView> {
        let t = &*self.table;
        let now = self.clock.now();
        let change = move |c: &mut Campaign| match kind {
            OperationKind::Retry => c.retry(now),
            _ => c.reset(now),
        };
        let change = &change;
        let mut op = retry_on_conflict(|_| async move {
            let c = super::load_visible(&*self.table, tenant, id).await?;
            change(&mut c.clone())?;
            let current = repo::commands::get_operation(t, tenant, id).await?;
            let mut op = match current {
                Some(o) if o.is_running() && !o.kind.is_report() => {
                    next_operation(o, kind, &c, now)?
                }
                // Nothing running but a report's walk, which this replaces.
                other => {
                    if kind == OperationKind::Retry {
                        has_retry_entries(t, tenant, id).await?;
                    }
                    let version = other.as_ref().map_or(0, |o| o.version);
                    let mut op = new_operation(kind, &c, now, version);
                    op.message = other.filter(|o| o.is_running()).map(|o| replaces(&o));
                    op
                }
            };
            // What is in line now, and only that (a restart covers what came since).
            op.below_seq = Some(repo::next_seq(t, tenant, id).await?);
            repo::commands::save_operation(t, &mut op).await?;
            Ok(op)
        })
        .await
        .map_err(busy(|| format!("campaign {id}")))?;
        // The operation first: a campaign reopened by a retry is not completed again
        // by the sweeper while its operation runs.
        let reason = Some(format!("{} requested", kind.as_str()));
        match update_campaign(t, &*self.bus, tenant, id, (reason, now), change).await {
            Ok((c, ())) => Ok(OperationView::new(&op, c.status)),
            Err(e) => {
                abort(t, &mut op, &format!("refused: {e}"), now).await?;
                Err(e)
            }
        }
    }
}

impl Commands {
    /// Attaches a list's contacts to the campaign (R2.1): as much as [`Self::attach_inline`]
    /// allows within the request, the rest by the sweeper as an `attach` operation.
    pub async fn attach_list(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        list_id: &str,
    ) -> AppResult<Attached> {
        let t = &*self.table;
        let campaign = audience::attach_campaign(t, tenant, id, self.clock.now()).await?;
        let (source, name) = audience::list_source(t, tenant, list_id).await?;
        let shown = AudienceRef::List {
            list_id: list_id.to_owned(),
            name,
        };
        self.attach(campaign, source, shown).await
    }

    /// Attaches every contact of a segment (R2.3), like [`Self::attach_list`].
    pub async fn attach_segment(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        segment: &Segment,
    ) -> AppResult<Attached> {
        let t = &*self.table;
        let campaign = audience::attach_campaign(t, tenant, id, self.clock.now()).await?;
        let source = audience::segment_source(t, tenant, segment).await?;
        let shown = match &source {
            AttachSource::Segment { segment, .. } => AudienceRef::Segment {
                segment: segment.clone(),
            },
            AttachSource::List { .. } => unreachable!("a segment's source"),
        };
        self.attach(campaign, source, shown).await
    }

    /// Stores the attach first (a new operation, or one more source behind the running
    /// attach; a running reset, retry or expiry refuses it with 409), so the sweeper does
    /// not complete the campaign while its contacts arrive; then walks the source within
    /// the request's budget, the operation leased to the request meanwhile so the sweeper
    /// leaves it alone. A request that dies mid-walk leaves the sweeper to start the
    /// source over once the lease lapses (a page attached twice adds nothing twice).
    async fn attach(
        &self,
        campaign: Campaign,
        source: AttachSource,
        shown: AudienceRef,
    ) -> AppResult<Attached> {
        let t = &*self.table;
        let mut pending = PendingAttach {
            source,
            after: None,
            id: new_id("att"),
        };
        let lease = (!self.attach_inline.is_zero()).then(|| {
            let lease = self.attach_inline + ATTACH_LEASE_MARGIN;
            self.clock.now() + chrono::Duration::from_std(lease).expect("a short lease")
        });
        let (op, queued) = self.store_attach(&campaign, &pending, lease).await?;
        self.note_audience(&campaign, shown).await;
        if queued || lease.is_none() {
            return Ok(Attached::Continues(OperationView::new(
                &op,
                campaign.status,
            )));
        }
        let mut result = AttachResult::default();
        let started = Instant::now();
        let mut more = true;
        while more && started.elapsed() < self.attach_inline {
            let now = self.clock.now();
            more = attach_page(t, &campaign, &mut pending, &mut result, now).await?;
        }
        let op = self.record_inline(op, &pending, more, &result).await?;
        if !more {
            return Ok(Attached::Done(result));
        }
        Ok(Attached::Continues(OperationView::new(
            &op,
            campaign.status,
        )))
    }

    /// Notes the list or segment on the campaign once its attach is stored (the grid's
    /// "target list"). The attach is stored already: a note that fails is only missing
    /// from the campaign's `audiences`, and the request still answers with the attach.
    async fn note_audience(&self, c: &Campaign, shown: AudienceRef) {
        if c.notes_audience(&shown) {
            return;
        }
        let now = self.clock.now();
        let noted = update_campaign(
            &*self.table,
            &*self.bus,
            &c.tenant,
            &c.id,
            (None, now),
            |c| {
                c.note_audience(shown.clone());
                Ok(())
            },
        )
        .await;
        if let Err(e) = noted {
            tracing::warn!(campaign = %c.id, error = %e, "attach stored; its source not noted on the campaign");
        }
    }

    /// Stores an attach's source: a new operation (leased to the request until `lease`),
    /// or one more source behind the running attach (true: queued).
    async fn store_attach(
        &self,
        c: &Campaign,
        pending: &PendingAttach,
        lease: Option<Time>,
    ) -> AppResult<(Operation, bool)> {
        let t = &*self.table;
        let (tenant, id) = (c.tenant.as_str(), c.id.as_str());
        let now = self.clock.now();
        retry_on_conflict(|_| async move {
            let current = repo::commands::get_operation(t, tenant, id).await?;
            let (mut op, queued) = match current {
                Some(mut o) if o.is_running() && o.kind == OperationKind::Attach => {
                    o.requests += 1;
                    o.updated_at = now;
                    (o, true)
                }
                Some(o) if o.is_running() && !o.kind.is_report() => {
                    return Err(attach_refused(&o, id))
                }
                other => {
                    let version = other.as_ref().map_or(0, |o| o.version);
                    let mut op = new_operation(OperationKind::Attach, c, now, version);
                    // A report's walk is replaced: ask for it again once attached.
                    op.message = other.filter(|o| o.is_running()).map(|o| replaces(&o));
                    op.leased_until = lease;
                    (op, false)
                }
            };
            op.attaches.push(pending.clone());
            repo::commands::save_operation(t, &mut op).await?;
            Ok((op, queued))
        })
        .await
        .map_err(busy(|| format!("campaign {id}")))
    }

    /// Records what the request's walk did on its operation, whose first source is the
    /// request's (later requests only queue behind it): the cursor, or the source done,
    /// the counts, the lease released. An operation replaced meanwhile (the end date
    /// passed), or taken over by the sweeper once the lease lapsed, is left as it is.
    async fn record_inline(
        &self,
        op: Operation,
        pending: &PendingAttach,
        more: bool,
        result: &AttachResult,
    ) -> AppResult<Operation> {
        let t = &*self.table;
        let first = &op;
        retry_on_conflict(|n| async move {
            let mut op = match n {
                0 => first.clone(),
                // Changed since the request stored it: another attach queued behind (the
                // first source is still the request's, where the request found it), or,
                // once the lease lapsed, the sweeper took the walk over and moved it on,
                // perhaps to a queued source: what it stored stands (the request's pages
                // were idempotent).
                _ => match repo::commands::get_operation(t, &first.tenant, &first.campaign_id)
                    .await?
                {
                    Some(o) if o.id == first.id && o.is_running() && untouched(&o, pending) => o,
                    other => return Ok(other.unwrap_or_else(|| first.clone())),
                },
            };
            match more {
                true => op.attaches[0] = pending.clone(),
                false => drop(op.attaches.remove(0)),
            }
            op.leased_until = None;
            count_attached(&mut op, result, self.clock.now());
            repo::commands::save_operation(t, &mut op).await?;
            Ok(op)
        })
        .await
        .map_err(busy(|| format!("campaign {}", op.campaign_id)))
    }
}

/// Whether the operation's first source is still the request's `pending` one (the same
/// attach, not another of the same list), where the request found it: the sweeper has
/// not walked it on.
fn untouched(op: &Operation, pending: &PendingAttach) -> bool {
    op.attaches
        .first()
        .is_some_and(|p| p.id == pending.id && p.source == pending.source && p.after.is_none())
}

/// Counts a walked part of an attach on its operation, DONE once no source is left.
fn count_attached(op: &mut Operation, result: &AttachResult, now: Time) {
    op.examined += result.added + result.already_present;
    op.changed += result.added;
    op.already_present += result.already_present;
    op.updated_at = now;
    if op.attaches.is_empty() {
        op.status = OperationStatus::Done;
        op.finished_at = Some(now);
        op.shard = op.shards;
    }
}

/// 409 for an attach while another operation walks the hopper.
fn attach_refused(o: &Operation, id: &str) -> super::AppError {
    DomainError::Conflict(format!(
        "a {} of campaign {id} is in progress: attach when it is done (GET /campaigns/{id}/operation)",
        o.kind.as_str()
    ))
    .into()
}

// ---- the walk (the sweeper) --------------------------------------------------------------

/// What applying one page did.
#[derive(Default)]
struct PageOutcome {
    changed: u64,
    in_flight: u64,
    delta: Delta,
    error: Option<crate::app::AppError>,
}

impl PageOutcome {
    /// Counts what one entry's change did; the first error is kept.
    fn count(&mut self, r: AppResult<EntryOutcome>) {
        match r {
            Ok(EntryOutcome::Changed(d)) => {
                self.changed += 1;
                stats::fold(&mut self.delta, d);
            }
            Ok(EntryOutcome::InFlight) => self.in_flight += 1,
            Ok(EntryOutcome::Unchanged) => {}
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

enum EntryOutcome {
    Unchanged,
    InFlight,
    Changed(Delta),
}

impl Commands {
    /// Starts the expiry of RUNNING and PAUSED campaigns whose end date passed, then
    /// carries out running operations, oldest request first, within `budget`.
    pub async fn run_pending(&self, budget: CommandBudget) -> AppResult<CommandsReport> {
        let now = self.clock.now();
        let mut report = CommandsReport::default();
        self.start_expiries(now, &mut report).await?;
        let mut b = WorkBudget {
            deadline: Instant::now() + budget.time,
            items_left: budget.max_entries,
            page: budget.page.clamp(1, 1000),
        };
        let pending = repo::commands::pending_operations(&*self.table).await?;
        for (i, (tenant, id)) in pending.iter().enumerate() {
            if b.spent() {
                report.operations_pending += pending.len() - i;
                break;
            }
            if let Err(e) = self.run_one(tenant, id, &mut b, &mut report).await {
                report.operations_pending += 1;
                tracing::warn!(campaign_id = %id, error = %e, "campaign operation failed; it continues in the next sweep");
            }
        }
        if report != CommandsReport::default() {
            tracing::info!(
                applied = report.applied,
                expired_unsent = report.expired_unsent,
                done = report.operations_done,
                pending = report.operations_pending,
                completed = report.completed,
                "campaign operations"
            );
        }
        Ok(report)
    }

    async fn start_expiries(&self, now: Time, report: &mut CommandsReport) -> AppResult<()> {
        let t = &*self.table;
        let mut ids = repo::running_campaigns(t).await?;
        ids.extend(repo::commands::paused_campaigns_ended(t, now).await?);
        for (tenant, id) in ids {
            if let Err(e) = self.start_expiry(&tenant, &id, now, report).await {
                tracing::warn!(campaign_id = %id, error = %e, "expiry of unsent entries not started");
            }
        }
        Ok(())
    }

    /// An ended RUNNING or PAUSED campaign with FRESH entries (or a retry or reset still
    /// running) gets an expiry operation; an ended PAUSED one with nothing left to expire
    /// or in flight completes.
    async fn start_expiry(
        &self,
        tenant: &str,
        id: &str,
        now: Time,
        report: &mut CommandsReport,
    ) -> AppResult<()> {
        let t = &*self.table;
        let Some(c) = repo::get_campaign(t, tenant, id).await? else {
            return Ok(());
        };
        if !matches!(c.status, CampaignStatus::Running | CampaignStatus::Paused)
            || !c.has_ended(now)
        {
            return Ok(());
        }
        let current = repo::commands::get_operation(t, tenant, id).await?;
        // A report's walk reads on whatever became of the campaign: it is replaced only
        // when there are entries to expire.
        let running = current
            .as_ref()
            .filter(|o| o.is_running() && !o.kind.is_report());
        if running.is_some_and(|o| o.kind == OperationKind::Expire) {
            return Ok(());
        }
        let counters = repo::get_counters(t, tenant, id).await?;
        let count = |s: EntryState| counters.get(s.as_str()).copied().unwrap_or(0);
        if count(EntryState::Fresh) > 0 || running.is_some() {
            let version = current.as_ref().map_or(0, |o| o.version);
            let mut op = new_operation(OperationKind::Expire, &c, now, version);
            op.message = running.map(|o| format!("{}: the end date passed", replaces(o)));
            match repo::commands::save_operation(t, &mut op).await {
                Ok(()) | Err(PortError::ConditionFailed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        if c.status == CampaignStatus::Paused {
            self.complete_paused(tenant, id, now, report).await?;
        }
        Ok(())
    }

    /// Walks one campaign's running operation on from where it stopped.
    async fn run_one(
        &self,
        tenant: &str,
        id: &str,
        b: &mut WorkBudget,
        report: &mut CommandsReport,
    ) -> AppResult<()> {
        let t = &*self.table;
        let now = self.clock.now();
        let Some(mut op) = repo::commands::get_operation(t, tenant, id).await? else {
            return Ok(());
        };
        if !op.is_running() {
            return Ok(()); // the index lags behind the table
        }
        let c = repo::get_campaign(t, tenant, id).await?;
        // The purge removes a deleted campaign's operation with its partition.
        if c.as_ref()
            .is_some_and(|c| c.status == CampaignStatus::Deleting)
        {
            return Ok(());
        }
        if let Some(why) = why_stop(c.as_ref(), &op, now) {
            return abort(t, &mut op, why, now).await;
        }
        let c = c.expect("why_stop stops an operation without its campaign");
        match op.kind {
            OperationKind::Attach => return self.run_attach(op, &c, b, report).await,
            k if k.is_report() => return self.run_report(op, &c, b, report).await,
            _ => {}
        }
        let sender = self.reset_sender(&op, &c).await?;
        while op.shard < op.shards {
            if b.spent()
                || !self
                    .walk_page(&mut op, sender.as_deref(), b, report)
                    .await?
            {
                report.operations_pending += 1;
                return Ok(());
            }
        }
        if op.is_running() {
            // No shard to walk (stored before the hopper had any): nothing left to do.
            super::operations::done(t, &mut op, now).await?;
        }
        report.operations_done += 1;
        tracing::info!(campaign_id = %id, kind = op.kind.as_str(), examined = op.examined, changed = op.changed, "campaign operation done");
        if op.kind == OperationKind::Expire && c.status == CampaignStatus::Paused {
            self.complete_paused(tenant, id, now, report).await?;
        }
        Ok(())
    }

    /// Carries a recount's or an estimate's walk on ([`super::report_walks`]).
    async fn run_report(
        &self,
        op: Operation,
        c: &Campaign,
        b: &mut WorkBudget,
        report: &mut CommandsReport,
    ) -> AppResult<()> {
        let now = self.clock.now();
        match super::report_walks::run(&*self.table, op, c, b, now).await? {
            Walk::Pending => report.operations_pending += 1,
            Walk::Done => report.operations_done += 1,
            Walk::Aborted => {}
        }
        Ok(())
    }

    /// A page of the attach failed: counted on the operation, which gives up (ABORTED,
    /// saying why) after [`ATTACH_MAX_FAILURES`] sweeps in a row failed, so a source that
    /// can never be read does not hold the campaign (no completion, no reset) for ever.
    async fn attach_failed(&self, mut op: Operation, e: super::AppError) -> AppResult<()> {
        let t = &*self.table;
        op.failures += 1;
        if op.failures >= ATTACH_MAX_FAILURES {
            let why = format!("gave up after {} failed attempts: {e}", op.failures);
            return abort(t, &mut op, &why, self.clock.now()).await;
        }
        match repo::commands::save_operation(t, &mut op).await {
            Ok(()) | Err(PortError::ConditionFailed) => Err(e),
            Err(save) => Err(save.into()),
        }
    }

    /// A reset closes the interactions of the entries it puts back: they are keyed by the
    /// campaign's sending number.
    async fn reset_sender(&self, op: &Operation, c: &Campaign) -> AppResult<Option<String>> {
        Ok(match (&op.kind, &c.account_id) {
            (OperationKind::Reset, Some(a)) => repo::get_account(&*self.table, &c.tenant, a)
                .await?
                .map(|a| a.sender_id),
            _ => None,
        })
    }

    /// Carries an attach on from where it stopped, a page of contacts at a time, storing
    /// its sources' cursors after each page. A page attached twice (a save that lost to a
    /// request queueing another source) adds nothing twice: its contacts count as already
    /// present.
    async fn run_attach(
        &self,
        mut op: Operation,
        c: &Campaign,
        b: &mut WorkBudget,
        report: &mut CommandsReport,
    ) -> AppResult<()> {
        let t = &*self.table;
        if let Err(e) = c.accepts_audience() {
            return abort(t, &mut op, &e.to_string(), self.clock.now()).await;
        }
        // A request still walks its source: the sweeper takes over once the lease lapses.
        if op.leased_until.is_some_and(|l| l > self.clock.now()) {
            report.operations_pending += 1;
            return Ok(());
        }
        while let Some(pending) = op.attaches.first_mut() {
            if b.spent() {
                report.operations_pending += 1;
                return Ok(());
            }
            let mut result = AttachResult::default();
            match attach_page(t, c, pending, &mut result, self.clock.now()).await {
                Ok(true) => {}
                Ok(false) => drop(op.attaches.remove(0)),
                Err(e) => return self.attach_failed(op, e).await,
            }
            op.failures = 0;
            b.take(PAGE as usize);
            report.attached += result.added as usize;
            count_attached(&mut op, &result, self.clock.now());
            match repo::commands::save_operation(t, &mut op).await {
                Ok(()) => {}
                Err(PortError::ConditionFailed) => {
                    report.operations_pending += 1;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        report.operations_done += 1;
        tracing::info!(campaign_id = %c.id, examined = op.examined, added = op.changed, "attach done");
        Ok(())
    }

    /// Applies the operation to the next page of its hopper walk, counts what changed and
    /// stores how far it got. False when the operation was asked again (restarted) or
    /// replaced meanwhile: the next sweep goes on from what is stored.
    async fn walk_page(
        &self,
        op: &mut Operation,
        sender: Option<&str>,
        b: &mut WorkBudget,
        report: &mut CommandsReport,
    ) -> AppResult<bool> {
        let t = &*self.table;
        let (tenant, id) = (op.tenant.clone(), op.campaign_id.clone());
        let page = repo::commands::hopper_entries_after(
            t,
            &tenant,
            &id,
            op.shard,
            op.after.as_deref(),
            b.page(),
        )
        .await?;
        let examined = page.entries.len();
        let outcome = self.apply_page(op, page.entries, sender).await;
        // Counters follow every stored change, even when part of the page failed.
        repo::add_counters(t, &tenant, &id, &outcome.delta).await?;
        match op.kind {
            OperationKind::Expire => report.expired_unsent += outcome.changed as usize,
            _ => report.applied += outcome.changed as usize,
        }
        if let Some(e) = outcome.error {
            return Err(e);
        }
        b.take(examined.max(1));
        op.examined += examined as u64;
        op.changed += outcome.changed;
        op.in_flight += outcome.in_flight;
        if page.done {
            op.shard += 1;
            op.after = None;
        } else {
            op.after = page.last;
        }
        op.updated_at = self.clock.now();
        if op.shard >= op.shards {
            op.status = OperationStatus::Done;
            op.finished_at = Some(op.updated_at);
        }
        match repo::commands::save_operation(t, op).await {
            Ok(()) => Ok(true),
            Err(PortError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// An ended PAUSED campaign can never resume: once nothing is left to expire or in
    /// flight it completes (a RUNNING one is completed by the sweeper's completion pass).
    async fn complete_paused(
        &self,
        tenant: &str,
        id: &str,
        now: Time,
        report: &mut CommandsReport,
    ) -> AppResult<()> {
        let counters = repo::get_counters(&*self.table, tenant, id).await?;
        let count = |s: EntryState| counters.get(s.as_str()).copied().unwrap_or(0);
        if [EntryState::Fresh, EntryState::Sending, EntryState::Pending]
            .iter()
            .any(|s| count(*s) > 0)
        {
            return Ok(());
        }
        let reason = Some("end date passed".to_owned());
        update_campaign(&*self.table, &*self.bus, tenant, id, (reason, now), |c| {
            if c.status == CampaignStatus::Paused {
                c.complete_at_end(now)
            } else {
                Err(DomainError::Conflict(format!(
                    "campaign {id} is no longer PAUSED"
                )))
            }
        })
        .await?;
        report.completed += 1;
        Ok(())
    }

    /// Applies the operation to a page of entries: new dispatch places for those going
    /// back to FRESH (one reservation per page), conditional writes a few at a time.
    async fn apply_page(
        &self,
        op: &Operation,
        entries: Vec<HopperEntry>,
        sender: Option<&str>,
    ) -> PageOutcome {
        let (kind, tenant, id) = (op.kind, op.tenant.as_str(), op.campaign_id.as_str());
        let mut out = PageOutcome::default();
        let candidates: Vec<bool> = entries
            .iter()
            .map(|e| e.in_line_before(op.below_seq) && apply(kind, &mut e.clone(), 0))
            .collect();
        let wanted = candidates.iter().filter(|c| **c).count() as u64;
        if wanted == 0 {
            out.in_flight = entries
                .iter()
                .filter(|e| matches!(left_alone(kind, e), EntryOutcome::InFlight))
                .count() as u64;
            return out;
        }
        let first = if kind == OperationKind::Expire {
            0
        } else {
            match repo::reserve_seq(&*self.table, tenant, id, wanted).await {
                Ok(s) => s,
                Err(e) => {
                    out.error = Some(e.into());
                    return out;
                }
            }
        };
        // Each candidate takes the next reserved place at the end of the line.
        let mut next = first;
        let work: Vec<(HopperEntry, Option<u64>)> = entries
            .into_iter()
            .zip(candidates)
            .map(|(e, candidate)| {
                let seq = candidate.then(|| {
                    next += 1;
                    next - 1
                });
                (e, seq)
            })
            .collect();
        let results: Vec<AppResult<EntryOutcome>> = stream::iter(work)
            .map(|(e, seq)| async move {
                match seq {
                    Some(seq) => self.change_entry(op, e, seq, sender).await,
                    None => Ok(left_alone(kind, &e)),
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().for_each(|r| out.count(r));
        out
    }

    /// Changes one entry as stored, reloading when someone changed it since it was read.
    async fn change_entry(
        &self,
        op: &Operation,
        e: HopperEntry,
        seq: u64,
        sender: Option<&str>,
    ) -> AppResult<EntryOutcome> {
        let kind = op.kind;
        let (t, first, r) = (&*self.table, &e, &e.entry_ref());
        let changed = retry_on_conflict(|n| async move {
            let mut e = match n {
                0 => first.clone(),
                _ => match repo::get_entry(t, r).await? {
                    Some(stored) => stored,
                    None => return Ok(EntryOutcome::Unchanged),
                },
            };
            let before = e.clone();
            if !e.in_line_before(op.below_seq) || !apply(kind, &mut e, seq) {
                return Ok(left_alone(kind, &e));
            }
            match repo::save_entry(t, &mut e, self.clock.now()).await {
                Ok(()) => self.close_reset_interaction(sender, &before, &e).await,
                Err(PortError::ConditionFailed) => return Err(PortError::ConditionFailed.into()),
                // The write may have landed: count it if it did.
                Err(err) if !reset_landed(t, &e).await => return Err(err.into()),
                Err(_) => {}
            }
            Ok(EntryOutcome::Changed(stats::delta(Some(&before), &e)))
        })
        .await;
        match changed {
            // Changed again and again meanwhile: left for the next walk.
            Err(e) if e.is_write_conflict() => Ok(EntryOutcome::Unchanged),
            other => other,
        }
    }

    /// A reset entry no longer waits for a reply: its interaction closes, so the contact
    /// is not held back from this or another campaign.
    async fn close_reset_interaction(
        &self,
        sender: Option<&str>,
        before: &HopperEntry,
        e: &HopperEntry,
    ) {
        if let (Some(sender), EntryState::Pending, Some(m)) =
            (sender, before.state, &before.message_id)
        {
            let now = self.clock.now();
            let closed = repo::close_interaction(&*self.table, sender, &e.phone, m, now).await;
            if let Err(err) = closed {
                tracing::warn!(phone = %e.phone.masked(), error = %err, "interaction of a reset entry not closed; it ends at its timeout");
            }
        }
    }
}

/// A command asked for while operation `o` still runs: the same command restarts the
/// walk, another replaces it, except that an expiry cannot be replaced and a retry is
/// already part of a running reset.
fn next_operation(
    o: Operation,
    kind: OperationKind,
    c: &Campaign,
    now: Time,
) -> AppResult<Operation> {
    if let Some(refused) = crate::domain::operation::refused_by_running(o.kind, kind, &c.id) {
        return Err(refused.into());
    }
    match (o.kind, kind) {
        (old, new) if old == new => Ok(restart(o, now)),
        _ => {
            let mut op = new_operation(kind, c, now, o.version);
            op.message = Some(replaces(&o));
            Ok(op)
        }
    }
}

/// Why a running operation stops before walking: its campaign is gone or cancelled, or
/// (for anything but an expiry) past its end date.
fn why_stop(c: Option<&Campaign>, op: &Operation, now: Time) -> Option<&'static str> {
    match c {
        None => Some("the campaign no longer exists"),
        // A report reads what is there, whatever became of the campaign.
        Some(_) if op.kind.is_report() => None,
        Some(c) if c.status == CampaignStatus::Cancelled => Some("the campaign was cancelled"),
        Some(c) if op.kind != OperationKind::Expire && c.has_ended(now) => {
            Some("the campaign's end date passed")
        }
        Some(_) => None,
    }
}

/// An entry the operation does not change: a reset leaves a SENDING entry alone (its
/// send is in flight); anything else is simply unchanged.
fn left_alone(kind: OperationKind, e: &HopperEntry) -> EntryOutcome {
    if kind == OperationKind::Reset && e.state == EntryState::Sending {
        EntryOutcome::InFlight
    } else {
        EntryOutcome::Unchanged
    }
}

/// Whether the write of `e` that answered an error was stored nonetheless: the stored
/// entry is the next version, in the same state and place in line.
async fn reset_landed(t: &dyn Table, e: &HopperEntry) -> bool {
    matches!(repo::get_entry(t, &e.entry_ref()).await, Ok(Some(stored))
        if stored.version == e.version + 1 && stored.state == e.state && stored.seq == e.seq)
}
