//! The sweeper: closes interactions whose response timeout passed (R5.5), moves entries
//! whose sender died after claiming them to RETRY "outcome unknown" (R4.10), completes
//! campaigns with nothing left to send or wait for (or whose end date passed), carries
//! out reset and retry commands and expires entries unsent at the end date in budgeted
//! walks (R4.9, `app::commands`), and removes deleted campaigns in bounded chunks (R1.5).

use super::commands::{has_running_operation, CommandBudget, Commands, CommandsReport};
use super::{retry_on_conflict, update_campaign, AppResult, WorkBudget};
use crate::domain::campaign::Campaign;
use crate::domain::hopper::HopperEntry;
use crate::domain::phone::PhoneNumber;
use crate::domain::stats::{self, Stats};
use crate::domain::Time;
use crate::ports::{Clock, EventBus, PortError, PortResult, Table};
use crate::repo::{self, IndexWalk, Key, TimeIndex};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SweepService {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub expired: usize,
    /// SENDING entries whose claim went stale, now RETRY "outcome unknown" (R4.10).
    pub reclaimed: usize,
    /// Waiting FRESH entries (R4.6, R4.8) whose wait ended, back in the dispatch order.
    pub released: usize,
    pub completed: usize,
    /// Entries a reset or retry command put back to FRESH in this sweep (R4.9).
    pub commands_applied: usize,
    /// FRESH entries expired because their campaign's end date passed (R4.9).
    pub expired_unsent: usize,
    /// Items of deleted campaigns removed in this sweep.
    pub purged_items: usize,
    /// Deleted campaigns fully removed in this sweep.
    pub purged_campaigns: usize,
    /// Outbox items whose events a bus outage held back, published now.
    pub republished: usize,
    /// Entries background attaches (lists or segments too large for one request) added.
    pub attached: usize,
}

/// How long an outbox item may stay pending before the sweeper publishes it: longer than
/// the function that claimed it takes to publish it itself.
pub const OUTBOX_PUBLISH_AFTER: chrono::Duration = chrono::Duration::minutes(2);
/// A campaign outbox mark whose save has not landed after this long never will (a save
/// is one request; it lost its race or failed).
pub const MARK_ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// How long an entry may stay SENDING after its claim before the sweeper takes the
/// worker for dead and moves it to RETRY "outcome unknown" (R4.10). Far above a sender's
/// run time (a batch of ten with a provider timeout), so a live worker is never overtaken.
pub const SENDING_STALE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// How much one sweep may spend removing deleted campaigns. The sweeper runs every
/// minute with a 55 s timeout, so the default leaves room for the rest of its work; what
/// is left continues in the next sweep.
#[derive(Debug, Clone, Copy)]
pub struct PurgeBudget {
    /// Wall-clock time for the purge.
    pub time: Duration,
    /// Items to delete at most.
    pub max_items: usize,
    /// Items read (and deleted) per query; bounds the memory a sweep holds.
    pub page: u32,
}

impl Default for PurgeBudget {
    fn default() -> Self {
        PurgeBudget {
            time: Duration::from_secs(40),
            max_items: usize::MAX,
            page: 1000,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Keys deleted (an entry's contact link counts even when the contact had none).
    pub items_deleted: usize,
    pub campaigns_removed: usize,
    /// Campaigns still being deleted (the budget ran out, or the grace period runs).
    pub campaigns_pending: usize,
}

/// How long a DELETING campaign item outlives its entries. Work that loaded the campaign
/// before it was marked (a sender batch, an attach) finishes well within it; the last
/// step checks again that nothing came back before removing the campaign.
pub const DELETE_GRACE: chrono::Duration = chrono::Duration::minutes(5);
/// Interaction reads in flight while purging a page.
const PURGE_CONCURRENCY: usize = 16;
/// Entries closed at once while expiring a page of timed-out interactions.
const SWEEP_CONCURRENCY: usize = 16;

/// Entries closed at their timeout whose counter changes one counter write carries at
/// most: a sweep that dies loses at most these (the periodic walk of a running campaign,
/// or the settling walk of a finished one, repairs them).
const FOLD_AT_MOST: usize = 1000;

/// Counter changes of entries a sweep closed, folded per campaign until written: one
/// counter write per campaign and sweep (or [`FOLD_AT_MOST`] entries), not one per entry.
#[derive(Default)]
struct FoldedCounters {
    by_campaign: std::collections::BTreeMap<(String, String), stats::Delta>,
    entries: usize,
}

impl FoldedCounters {
    /// Folds a page's results in; the entries that changed, and the first error.
    fn fold(
        &mut self,
        results: Vec<AppResult<Option<(HopperEntry, stats::Delta)>>>,
    ) -> (Vec<HopperEntry>, Option<super::AppError>) {
        let (mut changed, mut first_error) = (Vec::with_capacity(results.len()), None);
        for r in results {
            match r {
                Ok(Some((e, d))) => {
                    let key = (e.tenant.clone(), e.campaign_id.clone());
                    stats::fold(self.by_campaign.entry(key).or_default(), d);
                    self.entries += 1;
                    changed.push(e);
                }
                Ok(None) => {}
                Err(e) => drop(first_error.get_or_insert(e)),
            }
        }
        (changed, first_error)
    }

    /// Writes what is folded, one counter write per campaign.
    async fn flush(&mut self, t: &dyn Table) {
        for ((tenant, campaign), d) in std::mem::take(&mut self.by_campaign) {
            if let Err(e) = repo::add_counters(t, &tenant, &campaign, &d).await {
                tracing::error!(campaign_id = %campaign, error = %e, "counter update lost; a recount will repair it");
            }
        }
        self.entries = 0;
    }
}
/// How long one sweep may spend closing timed-out interactions (R5.5). The sweeper runs
/// every minute with a 55 s timeout: a backlog larger than this (a million contacts whose
/// timeout passed together) is closed over several sweeps, each leaving time for the rest
/// of its work.
pub const EXPIRY_BUDGET: Duration = Duration::from_secs(15);

/// What one sweep may spend on each walk over a shared index (wall-clock time; each walk
/// does at least one page). The sweeper runs every minute with a 55 s timeout: each walk
/// keeps to its share and the next sweep resumes it (what it changed left the index), so a
/// backlog in one (a million contacts whose calling hours open at 09:00) never starves
/// the others, nor completions, commands and purges.
#[derive(Debug, Clone)]
pub struct SweepBudget {
    /// Closing PENDING entries whose response timeout passed.
    pub expiry: Duration,
    /// Moving stale SENDING claims to RETRY "outcome unknown".
    pub claims: Duration,
    /// Putting waiting FRESH entries back in line.
    pub release: Duration,
    pub commands: CommandBudget,
    /// The whole sweep: the purge gets what is left of it.
    pub total: Duration,
}

impl Default for SweepBudget {
    fn default() -> Self {
        SweepBudget {
            expiry: EXPIRY_BUDGET,
            claims: Duration::from_secs(5),
            release: Duration::from_secs(10),
            commands: CommandBudget {
                time: Duration::from_secs(10),
                ..CommandBudget::default()
            },
            total: Duration::from_secs(50),
        }
    }
}

impl SweepBudget {
    /// One page of each walk: for tests of resumption.
    pub fn none() -> Self {
        SweepBudget {
            expiry: Duration::ZERO,
            claims: Duration::ZERO,
            release: Duration::ZERO,
            commands: CommandBudget {
                time: Duration::ZERO,
                ..CommandBudget::default()
            },
            total: Duration::ZERO,
        }
    }
}

impl SweepService {
    pub async fn sweep(&self) -> AppResult<SweepReport> {
        self.sweep_within(SweepBudget::default()).await
    }

    /// A sweep in which each walk keeps to its share of `budget`.
    pub async fn sweep_within(&self, budget: SweepBudget) -> AppResult<SweepReport> {
        let started = Instant::now();
        let now = self.clock.now();
        let mut report = SweepReport {
            expired: self.expire_timed_out(budget.expiry, now).await?,
            ..SweepReport::default()
        };
        report.reclaimed = self.reclaim_stale_sending(budget.claims, now).await?;
        report.released = self.release_waiting(budget.release, now).await?;
        let commands = self.run_commands(budget.commands).await?;
        report.commands_applied = commands.applied;
        report.expired_unsent = commands.expired_unsent;
        report.attached = commands.attached;
        report.completed += commands.completed;
        report.completed += self.complete_finished(now).await?;
        report.republished = self.publish_pending(now).await?;
        report.republished += self.publish_campaign_outboxes(now).await?;
        self.reconcile_settling(now).await?;
        let budget = PurgeBudget {
            time: budget.total.saturating_sub(started.elapsed()),
            ..PurgeBudget::default()
        };
        let purge = self.purge_deleted(budget).await?;
        report.purged_items = purge.items_deleted;
        report.purged_campaigns = purge.campaigns_removed;
        if report != SweepReport::default() {
            tracing::info!(
                expired = report.expired,
                reclaimed = report.reclaimed,
                released = report.released,
                completed = report.completed,
                purged_items = report.purged_items,
                purged_campaigns = report.purged_campaigns,
                "swept"
            );
        }
        Ok(report)
    }

    /// Closes PENDING entries whose response timeout passed (R5.4), a page at a time,
    /// its entries a few at once, and releases their contacts; what the budget leaves
    /// goes to the next sweep (closed entries leave the index, so it resumes by itself).
    /// Returns how many closed.
    async fn expire_timed_out(&self, budget: Duration, now: Time) -> AppResult<usize> {
        let mut counters = FoldedCounters::default();
        let closed = self.close_due(budget, now, &mut counters).await;
        counters.flush(&*self.table).await;
        closed
    }

    /// [`Self::expire_timed_out`]'s walk, the counter changes folded into `counters`.
    async fn close_due(
        &self,
        budget: Duration,
        now: Time,
        counters: &mut FoldedCounters,
    ) -> AppResult<usize> {
        let started = Instant::now();
        let mut expired = 0;
        let mut due = IndexWalk::new(TimeIndex::Due, now);
        loop {
            let Some(entries) = due.next(&*self.table).await? else {
                break;
            };
            let results: Vec<AppResult<Option<(HopperEntry, stats::Delta)>>> =
                stream::iter(entries)
                    .map(|stale| async move {
                        let r = stale.entry_ref();
                        let changed = self.change_entry(&r, |e| e.expire(now)).await?;
                        Ok(changed.map(|d| (stale, d)))
                    })
                    .buffer_unordered(SWEEP_CONCURRENCY)
                    .collect()
                    .await;
            // Their contacts are free from the timeout on: an interaction is open only
            // until its `expires_at` (R5.5), so nothing is written to it.
            let (closed, failed) = counters.fold(results);
            if counters.entries >= FOLD_AT_MOST {
                counters.flush(&*self.table).await;
            }
            expired += closed.len();
            let worked = !closed.is_empty();
            if let Some(e) = failed {
                return Err(e);
            }
            if worked && started.elapsed() >= budget {
                break;
            }
        }
        Ok(expired)
    }

    /// Walks the campaign's hopper and repairs its counters (read before the walk, as
    /// `live`) when they drifted and every entry's change has settled.
    async fn reconcile(
        &self,
        c: &Campaign,
        live: &stats::Counters,
        now: Time,
    ) -> AppResult<stats::HopperWalk> {
        let walk = super::reports::walk_hopper(&*self.table, c, now).await?;
        if let Some(repair) = walk.repair_of(live).filter(|r| !r.is_empty()) {
            tracing::warn!(campaign_id = %c.id, ?repair, "counters repaired to a recount");
            repo::add_named_counters(&*self.table, &c.tenant, &c.id, &repair).await?;
        }
        Ok(walk)
    }

    /// Reconciles the counters of campaigns not running that changed lately, each at its
    /// slot ([`stats::settling_walk_due`]). Returns how many were walked.
    async fn reconcile_settling(&self, now: Time) -> AppResult<usize> {
        let mut walked = 0;
        for (tenant, id) in
            repo::settling_campaigns(&*self.table, now - stats::SETTLING_FOR).await?
        {
            let live = repo::get_counters(&*self.table, &tenant, &id).await?;
            let target = live.get("target").copied().unwrap_or(0);
            if !stats::settling_walk_due(&id, target, now)
                || has_running_operation(&*self.table, &tenant, &id).await?
            {
                continue;
            }
            let Some(c) = repo::get_campaign(&*self.table, &tenant, &id).await? else {
                continue;
            };
            self.reconcile(&c, &live, now).await?;
            walked += 1;
        }
        Ok(walked)
    }

    /// Publishes the outbox items a bus outage (or a function that died) left pending.
    async fn publish_pending(&self, now: Time) -> AppResult<usize> {
        let mut published = 0;
        for o in repo::outbox::pending(&*self.table, now - OUTBOX_PUBLISH_AFTER).await? {
            if super::publish_from_outbox(&*self.table, &*self.bus, &o).await {
                published += 1;
            }
        }
        Ok(published)
    }

    /// Publishes the status changes campaigns still hold in their outbox (the bus was
    /// down, or the function died after the save), found through their marks. A mark
    /// whose save never landed (the campaign never reached its version) is dropped after
    /// [`MARK_ABANDONED_AFTER`]. Returns how many campaigns' outboxes were emptied.
    async fn publish_campaign_outboxes(&self, now: Time) -> AppResult<usize> {
        let t = &*self.table;
        let mut published = 0;
        for m in repo::outbox::campaign_marks(t, now - OUTBOX_PUBLISH_AFTER).await? {
            // One campaign that cannot be read or unmarked waits for the next sweep; the
            // others, and the rest of the sweep, go on.
            let done: PortResult<bool> = async {
                Ok(
                    match repo::get_campaign(t, &m.tenant, &m.campaign_id).await? {
                        Some(c) if c.version < m.version => {
                            if now - m.created_at >= MARK_ABANDONED_AFTER {
                                repo::outbox::unmark_campaign(t, &m).await?;
                            }
                            false
                        }
                        Some(mut c) => {
                            let had_events = !c.unpublished.is_empty();
                            super::publish_transitions(t, &*self.bus, &mut c, Some(&m)).await
                                && had_events
                        }
                        // Purged: its outbox was published first.
                        None => {
                            repo::outbox::unmark_campaign(t, &m).await?;
                            false
                        }
                    },
                )
            }
            .await;
            match done {
                Ok(true) => published += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(campaign_id = %m.campaign_id, error = %e, "campaign outbox not published; the next sweep tries again")
                }
            }
        }
        Ok(published)
    }

    /// Completes the running campaigns with nothing left to send or wait for (or past
    /// their end date with nothing in flight) and no reset or retry walking their hopper.
    /// Counters only say when to look: a campaign is completed when a walk of its hopper
    /// finds nothing open, and the walk repairs counters that drifted (a lost counter
    /// write) once every entry's change has settled. Returns how many completed.
    async fn complete_finished(&self, now: Time) -> AppResult<usize> {
        let mut completed = 0;
        for (tenant, id) in repo::running_campaigns(&*self.table).await? {
            // Read before the walk, as `HopperWalk::repair_of` needs.
            let live = repo::get_counters(&*self.table, &tenant, &id).await?;
            let s = Stats::from_counters(&live);
            let in_flight = ["SENDING", "PENDING"]
                .iter()
                .any(|k| live.get(*k).copied().unwrap_or(0) > 0);
            let Some(c) = repo::get_campaign(&*self.table, &tenant, &id).await? else {
                continue;
            };
            let ended = c.has_ended(now);
            let look = s.is_done()
                || (ended && !in_flight)
                || stats::periodic_walk_due(&id, s.target, now);
            // A retry or reset still walking the hopper may give it entries to send.
            if !look || has_running_operation(&*self.table, &tenant, &id).await? {
                continue;
            }
            let walk = self.reconcile(&c, &live, now).await?;
            let done = walk.open == 0 || (ended && walk.in_flight == 0);
            if !done {
                continue;
            }
            match update_campaign(&*self.table, &*self.bus, &tenant, &id, (None, now), |c| {
                c.complete(now)
            })
            .await
            {
                Ok(_) => completed += 1,
                Err(e) => tracing::info!(campaign_id = %id, error = %e, "campaign not completed"),
            }
        }
        Ok(completed)
    }

    /// Carries out reset and retry commands and the expiry of ended campaigns' unsent
    /// entries within `budget` (R4.9; `app::commands`).
    pub async fn run_commands(&self, budget: CommandBudget) -> AppResult<CommandsReport> {
        let commands = Commands {
            table: self.table.clone(),
            bus: self.bus.clone(),
            clock: self.clock.clone(),
            attach_inline: super::commands::ATTACH_INLINE,
        };
        commands.run_pending(budget).await
    }

    /// Moves entries claimed more than [`SENDING_STALE_AFTER`] ago and still SENDING to
    /// RETRY "outcome unknown" (R4.10); they are never sent again automatically. Returns
    /// how many moved.
    pub async fn reclaim_stale_sending(&self, budget: Duration, now: Time) -> AppResult<usize> {
        let started = Instant::now();
        let mut reclaimed = 0;
        let claimed_by = now - SENDING_STALE_AFTER;
        let mut campaigns = super::conversations::CampaignSenders::new();
        let mut claims = IndexWalk::new(TimeIndex::Sending, claimed_by);
        while let Some(entries) = claims.next(&*self.table).await? {
            // The worker may have died after the provider accepted the message: the
            // contact is held first, and an entry whose contact could not be held stays
            // SENDING for the next sweep.
            let mut held = Vec::with_capacity(entries.len());
            for stale in entries {
                let ok = super::conversations::hold_after_unknown_outcome(
                    &*self.table,
                    &mut campaigns,
                    &stale,
                )
                .await;
                if ok {
                    held.push(stale);
                }
            }
            let changed: Vec<bool> = stream::iter(held)
                .map(|stale| async move {
                    self.change_stored(&stale.entry_ref(), |e| {
                        e.reclaim_stale(now, SENDING_STALE_AFTER)
                    })
                    .await
                })
                .buffer_unordered(SWEEP_CONCURRENCY)
                .try_collect()
                .await?;
            reclaimed += changed.iter().filter(|c| **c).count();
            if !changed.is_empty() && started.elapsed() >= budget {
                break;
            }
        }
        if reclaimed > 0 {
            tracing::warn!(
                reclaimed,
                "stale SENDING entries moved to RETRY, outcome unknown"
            );
        }
        Ok(reclaimed)
    }

    /// Puts FRESH entries whose wait ended (an interaction elsewhere, calling hours) back
    /// at the end of their campaign's dispatch order, where the dispatcher finds them
    /// after its cursor. Returns how many went back.
    pub async fn release_waiting(&self, budget: Duration, now: Time) -> AppResult<usize> {
        let started = Instant::now();
        let mut released = 0;
        let mut waiting = IndexWalk::new(TimeIndex::Wait, now);
        while let Some(entries) = waiting.next(&*self.table).await? {
            let worked = !entries.is_empty();
            // One block of sequence numbers per campaign and page.
            let mut by_campaign: std::collections::BTreeMap<(String, String), Vec<_>> =
                Default::default();
            for e in entries {
                by_campaign
                    .entry((e.tenant.clone(), e.campaign_id.clone()))
                    .or_default()
                    .push(e.entry_ref());
            }
            for ((tenant, campaign), refs) in by_campaign {
                let first =
                    repo::reserve_seq(&*self.table, &tenant, &campaign, refs.len() as u64).await?;
                let changed: Vec<bool> = stream::iter(refs.into_iter().enumerate())
                    .map(|(i, r)| async move {
                        let seq = first + i as u64;
                        self.change_stored(&r, |e| e.release(seq, now)).await
                    })
                    .buffer_unordered(SWEEP_CONCURRENCY)
                    .try_collect()
                    .await?;
                released += changed.into_iter().filter(|c| *c).count();
            }
            if worked && started.elapsed() >= budget {
                break;
            }
        }
        Ok(released)
    }

    /// Applies `change` to an entry as stored (the index that found it is eventually
    /// consistent) with a conditional write, reloading on conflict, and moves the
    /// counters by the difference. Returns whether the entry changed.
    async fn change_stored(
        &self,
        r: &crate::domain::inbound::EntryRef,
        change: impl Fn(&mut crate::domain::hopper::HopperEntry) -> bool,
    ) -> AppResult<bool> {
        let Some(d) = self.change_entry(r, change).await? else {
            return Ok(false);
        };
        repo::add_counters(&*self.table, &r.tenant, &r.campaign_id, &d).await?;
        Ok(true)
    }

    /// [`Self::change_stored`] without the counter write: the counter change of the entry
    /// when it changed, for the caller to fold with others.
    async fn change_entry(
        &self,
        r: &crate::domain::inbound::EntryRef,
        change: impl Fn(&mut crate::domain::hopper::HopperEntry) -> bool,
    ) -> AppResult<Option<stats::Delta>> {
        let (t, change) = (&*self.table, &change);
        let changed = retry_on_conflict(|_| async move {
            let Some(mut e) = repo::get_entry(t, r).await? else {
                return Ok(None);
            };
            let before = e.clone();
            if !change(&mut e) {
                return Ok(None);
            }
            repo::save_entry(t, &mut e, self.clock.now()).await?;
            Ok(Some(stats::delta(Some(&before), &e)))
        })
        .await;
        match changed {
            Err(e) if e.is_write_conflict() => Ok(None),
            other => other,
        }
    }

    /// Removes campaigns marked DELETING, within `budget` (R1.5): their hopper entries,
    /// the interactions they own, their counters, cursors, sequence and test links (their
    /// test campaigns are marked for deletion in turn), and finally the campaign item.
    /// Each step re-reads what is left, so a later call resumes where this one stopped.
    pub async fn purge_deleted(&self, budget: PurgeBudget) -> AppResult<PurgeReport> {
        let mut b = WorkBudget {
            deadline: Instant::now() + budget.time,
            items_left: budget.max_items,
            page: budget.page.clamp(1, 1000),
        };
        let mut report = PurgeReport::default();
        let campaigns = repo::deleting_campaigns(&*self.table).await?;
        for (i, c) in campaigns.iter().enumerate() {
            if b.spent() {
                report.campaigns_pending += campaigns.len() - i;
                break;
            }
            match self.purge_campaign(c, &mut b, &mut report).await {
                Ok(true) => report.campaigns_removed += 1,
                Ok(false) => report.campaigns_pending += 1,
                Err(e) => {
                    report.campaigns_pending += 1;
                    tracing::warn!(campaign_id = %c.id, error = %e, "purge of a deleted campaign failed; it continues in the next sweep");
                }
            }
        }
        if report.items_deleted > 0 || report.campaigns_removed > 0 {
            tracing::info!(
                items = report.items_deleted,
                removed = report.campaigns_removed,
                pending = report.campaigns_pending,
                "purged deleted campaigns"
            );
        }
        Ok(report)
    }

    /// Returns whether the campaign is gone.
    async fn purge_campaign(
        &self,
        c: &Campaign,
        b: &mut WorkBudget,
        report: &mut PurgeReport,
    ) -> AppResult<bool> {
        let t = &*self.table;
        let sender = match &c.account_id {
            Some(a) => repo::get_account(t, &c.tenant, a)
                .await?
                .map(|a| a.sender_id),
            None => None,
        };
        for shard in 0..c.hopper_shards.max(1) {
            if !self
                .purge_shard(c, shard, sender.as_deref(), b, report)
                .await?
            {
                return Ok(false);
            }
        }
        if !self.purge_partition(c, b, report).await? {
            return Ok(false);
        }
        // Last: once the grace period is over and nothing came back, the campaign itself.
        if self.clock.now() - c.updated_at < DELETE_GRACE {
            return Ok(false);
        }
        for shard in 0..c.hopper_shards.max(1) {
            if !repo::hopper_page(t, &c.tenant, &c.id, shard, 1)
                .await?
                .is_empty()
            {
                return Ok(false);
            }
        }
        if !repo::campaign_partition_page(t, &c.tenant, &c.id, 1)
            .await?
            .is_empty()
        {
            return Ok(false);
        }
        // Its outbox goes with it: published first (a bus outage keeps the campaign); no
        // need to empty an outbox that is about to be deleted.
        if !c.unpublished.is_empty() {
            if let Err(e) = self.bus.publish(&super::transition_events(c)).await {
                tracing::warn!(campaign_id = %c.id, error = %e, "events of a deleted campaign not published; the purge waits");
                return Ok(false);
            }
        }
        repo::delete_campaign_item(t, &c.tenant, &c.id).await?;
        report.items_deleted += 1;
        tracing::info!(campaign_id = %c.id, "deleted campaign removed");
        Ok(true)
    }

    /// Deletes one hopper shard of a deleted campaign a page at a time: its entries, the
    /// contacts' links to it, the interactions it still owns, then the shard's
    /// conversation messages. False when the budget ran out first.
    async fn purge_shard(
        &self,
        c: &Campaign,
        shard: u16,
        sender: Option<&str>,
        b: &mut WorkBudget,
        report: &mut PurgeReport,
    ) -> AppResult<bool> {
        let t = &*self.table;
        loop {
            if b.spent() {
                return Ok(false);
            }
            let page = b.page();
            let items = repo::hopper_page(t, &c.tenant, &c.id, shard, page).await?;
            // DynamoDB may return a short page (1 MB per query): only an empty one means
            // the shard is done.
            if items.is_empty() {
                break;
            }
            let mut keys: Vec<Key> = items.iter().filter_map(repo::key_of).collect();
            keys.extend(
                items
                    .iter()
                    .filter_map(|i| i.get("phone").and_then(Value::as_str))
                    .map(|p| repo::contact_campaign_link_key(&c.tenant, p, &c.id)),
            );
            if let Some(sender) = sender {
                keys.extend(self.owned_interactions(c, sender, &items).await?);
            }
            drop(items);
            t.delete_many(&keys).await?;
            report.items_deleted += keys.len();
            b.take(keys.len());
        }
        // The shard's conversation messages (R5.6), kept beside its entries.
        loop {
            if b.spent() {
                return Ok(false);
            }
            let page = b.page();
            let n = repo::conversations::purge_messages(t, &c.tenant, &c.id, shard, page).await?;
            if n == 0 {
                return Ok(true);
            }
            report.items_deleted += n;
            b.take(n);
        }
    }

    /// Deletes the campaign's own partition (counters, cursors, sequence, test links; its
    /// test campaigns are marked for deletion in turn). False when the budget ran out.
    async fn purge_partition(
        &self,
        c: &Campaign,
        b: &mut WorkBudget,
        report: &mut PurgeReport,
    ) -> AppResult<bool> {
        let t = &*self.table;
        loop {
            if b.spent() {
                return Ok(false);
            }
            let items = repo::campaign_partition_page(t, &c.tenant, &c.id, b.page).await?;
            if items.is_empty() {
                return Ok(true);
            }
            for child in items
                .iter()
                .filter_map(|i| i.get("child").and_then(Value::as_str))
            {
                let now = self.clock.now();
                match update_campaign(t, &*self.bus, &c.tenant, child, (None, now), |tc| {
                    tc.mark_deleting(now)
                })
                .await
                {
                    Ok(_) => {}
                    // Already deleting, or gone.
                    Err(super::AppError::Domain(crate::domain::DomainError::NotFound {
                        ..
                    })) => {}
                    Err(e) => return Err(e),
                }
            }
            let keys: Vec<Key> = items.iter().filter_map(repo::key_of).collect();
            t.delete_many(&keys).await?;
            report.items_deleted += keys.len();
            b.take(keys.len());
        }
    }

    /// Keys of the interactions that still point at entries of this campaign, among the
    /// entries that were sent (an interaction of another campaign is left alone).
    async fn owned_interactions(
        &self,
        c: &Campaign,
        sender: &str,
        entries: &[crate::ports::Item],
    ) -> AppResult<Vec<Key>> {
        let sent: Vec<PhoneNumber> = entries
            .iter()
            .filter(|i| i.get("message_id").is_some_and(|m| !m.is_null()))
            .filter_map(|i| i.get("phone").and_then(Value::as_str))
            .filter_map(|p| PhoneNumber::parse(p).ok())
            .collect();
        let t = &*self.table;
        let owned: Vec<Option<Key>> = stream::iter(sent)
            .map(|phone| async move {
                let i = repo::get_interaction(t, sender, &phone).await?;
                Ok::<_, PortError>(
                    i.filter(|i| i.entry.tenant == c.tenant && i.entry.campaign_id == c.id)
                        .map(|_| repo::interaction_key(sender, &phone)),
                )
            })
            .buffer_unordered(PURGE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(owned.into_iter().flatten().collect())
    }
}
