//! The launcher: starts campaigns whose start date arrived and, every tick, enqueues each
//! RUNNING campaign's allowance of FRESH entries, each with the delay of its send time, so
//! sends spread evenly over the tick (R4.8). Campaigns on one provider account share its
//! throughput fairly, slowed after throttling errors; the account's messaging tier caps
//! the contacts per rolling 24 hours; calling hours hold entries back.

use super::{update_campaign, AppResult};
use crate::domain::account::Account;
use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::hopper::{EntryState, HopperEntry, SmsFallback};
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::inbound::SendJob;
use crate::domain::pacing::{self, Slots};
use crate::domain::Time;
use crate::ports::{Clock, EventBus, OutMessage, PortError, Queue, Table};
use crate::repo;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Clone)]
pub struct Dispatcher {
    pub table: Arc<dyn Table>,
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// Seconds between ticks; each tick enqueues the sends due before the next one.
    pub tick_seconds: u32,
    /// Seconds planned beyond the next tick. A tick that fires late plans from where the
    /// last one stopped, so with this margin a tick up to this late leaves no slot
    /// unplanned (without it the seconds a tick is late are lost: a 5 s tick firing
    /// 0.17 s late sent 3.3 % under the rate). [`PLAN_AHEAD_SECONDS`] when deployed.
    pub plan_ahead_secs: u32,
    /// Milliseconds between a dispatch's start and the first slot it may plan. A dispatch
    /// makes its table round trips before its messages are queued and the first sender
    /// makes its own before calling the provider (1.1 s for a 1,000/s campaign in the
    /// capacity bench); slots already past by then leave together with the next second's,
    /// and at a number's full rate Meta refuses the excess (130429), which also slows the
    /// account down. [`START_LEAD_MS`] when deployed; 0 in tests on a manual clock.
    pub start_lead_ms: u32,
    /// Messages per second the deployment's sender carries (README "Capacity model").
    /// When the running accounts ask for more, each gets its max-min fair share of it:
    /// sends planned beyond what the sender carries wait in the queue's order, where the
    /// account dispatched first each second goes first and the others starve. `None`:
    /// unlimited.
    pub send_capacity: Option<f64>,
}

/// The running campaigns by (tenant, account).
type ByAccount = BTreeMap<(String, Option<String>), Vec<Campaign>>;

/// The running campaigns' accounts by (tenant, account), or why one could not be read.
type Accounts = BTreeMap<(String, Option<String>), Result<Option<Account>, String>>;

/// One account's running campaigns, by (tenant, account).
type AccountCampaigns = ((String, Option<String>), Vec<Campaign>);

/// Lanes of accounts a tick dispatches at once ([`Dispatcher::lanes`]): each dispatch is
/// a series of table round trips, and one after another they held the twentieth number
/// of a deployment 4-7 s behind the first; in waves of 8, 0.1-0.4 s past the 2 s a first
/// send may take. A deployment feeds about 20 numbers at their full rate (README,
/// "Capacity model"): they all go in the first wave.
const DISPATCH_CONCURRENCY: usize = 32;

/// Running campaigns read at once by a tick.
const READ_CONCURRENCY: usize = 16;

/// The deployed launcher's margin beyond the next tick: EventBridge Scheduler's minute
/// ticks start a few seconds late at worst.
pub const PLAN_AHEAD_SECONDS: u32 = 10;

/// The deployed launcher's first slot after a dispatch's start
/// ([`Dispatcher::start_lead_ms`]): within the 2 s from launch to first send.
pub const START_LEAD_MS: u32 = 1500;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub started: usize,
    pub campaigns: usize,
    pub enqueued: usize,
    /// Entries held back until their calling hours open (R4.8).
    pub deferred: usize,
}

/// Reads a campaign's READY entries shard by shard, after each shard's cursor.
struct ShardReader {
    buffer: VecDeque<HopperEntry>,
    exhausted: Vec<bool>,
    shards: u16,
}

impl ShardReader {
    fn new(shards: u16) -> Self {
        ShardReader {
            buffer: VecDeque::new(),
            exhausted: vec![false; shards as usize],
            shards,
        }
    }

    /// A reader for `slots` sends whose line starts with the entries overdue below each
    /// shard's mark (see [`RESCAN_AFTER`]): about what the slots need, spread over the
    /// shards; the rest wait for the next dispatch.
    async fn open(
        table: &dyn Table,
        c: &Campaign,
        cursors: &repo::Cursors,
        now: Time,
        slots: usize,
    ) -> AppResult<Self> {
        let mut reader = ShardReader::new(c.hopper_shards.max(1));
        if slots > 0 {
            let up_to = cursors.overdue_up_to(now, RESCAN_AFTER);
            reader.overdue(table, c, &up_to, slots).await?;
        }
        Ok(reader)
    }

    async fn overdue(
        &mut self,
        table: &dyn Table,
        c: &Campaign,
        up_to: &BTreeMap<u16, String>,
        slots: usize,
    ) -> AppResult<()> {
        let want = slots.div_ceil(self.shards as usize).clamp(1, 1000) as u32;
        for (shard, key) in up_to.iter().filter(|(s, _)| **s < self.shards) {
            let entries =
                repo::ready_entries_up_to(table, &c.tenant, &c.id, *shard, key, want).await?;
            if !entries.is_empty() {
                tracing::warn!(campaign_id = %c.id, shard, entries = entries.len(), "entries left behind the dispatch cursor; dispatched again");
            }
            self.buffer.extend(entries);
        }
        Ok(())
    }

    /// Reads about what `slots_left` need, spread over the shards not yet exhausted.
    /// The buffer is empty, so each shard's cursor is where its reading stopped. False
    /// when every shard is exhausted.
    async fn refill(
        &mut self,
        table: &dyn Table,
        c: &Campaign,
        cursors: &repo::Cursors,
        slots_left: usize,
    ) -> AppResult<bool> {
        if self.exhausted.iter().all(|x| *x) {
            return Ok(false);
        }
        let want = slots_left.div_ceil(self.shards as usize).clamp(1, 1000) as u32;
        for shard in 0..self.shards {
            if self.exhausted[shard as usize] {
                continue;
            }
            let after = cursors.after.get(&shard).cloned();
            let entries =
                repo::ready_entries(table, &c.tenant, &c.id, shard, after.as_deref(), want).await?;
            if (entries.len() as u32) < want {
                self.exhausted[shard as usize] = true;
            }
            self.buffer.extend(entries);
        }
        Ok(true)
    }
}

/// What one campaign may send this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    /// Messages per second: its pacing, or less when the account is shared or slowed.
    pub rate: f64,
    /// At most this many sends (the messaging tier's budget); none is unlimited.
    pub max: Option<u64>,
    /// Plan sends from this instant on (the end of what the account already planned);
    /// none is now.
    pub from: Option<crate::domain::Time>,
}

impl Allowance {
    /// The campaign's own pacing, unshared and unlimited.
    pub fn of(c: &Campaign) -> Self {
        Allowance {
            rate: c.pacing.messages_per_second(),
            max: None,
            from: None,
        }
    }

    /// A share of an account's pace from `from` on, at most `max` sends.
    pub fn new(rate: f64, max: Option<u64>, from: crate::domain::Time) -> Self {
        Allowance {
            rate,
            max,
            from: Some(from),
        }
    }
}

/// What a dispatch of one campaign did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    pub enqueued: usize,
    pub deferred: usize,
}

impl Dispatched {
    fn add(&mut self, d: &Dispatched) {
        self.enqueued += d.enqueued;
        self.deferred += d.deferred;
    }
}

/// Entries one dispatch of a campaign may hold back for calling hours.
pub const MAX_HELD_BACK_PER_TICK: usize = 2000;

/// How long after the dispatcher moved a shard's cursor past an entry that entry must
/// have left the READY index (claimed by the sender); one still there was indexed late
/// or lost on the way, and is dispatched again.
pub const RESCAN_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// Why an entry is held back by the dispatcher.
pub const WAITING_FOR_CALLING_HOURS: &str = "waiting: outside calling hours";

/// The send queue's message for `e` at its slot: delayed until the slot's second, with
/// the slot itself for the sender to wait out the rest.
fn send_message(e: &HopperEntry, slots: &Slots, slot: usize, now: Time) -> OutMessage {
    let job = SendJob {
        entry: e.entry_ref(),
        due: Some(slots.at(slot)),
    };
    OutMessage {
        body: serde_json::to_string(&job).expect("send job serialises"),
        delay_secs: slots.delay_secs(slot, now),
    }
}

/// The slots an entry's message takes: an SMS of several parts as many as its parts (the
/// number's limit counts parts); a WhatsApp campaign's fallback SMS as many as keep it to
/// its own number's rate (`sms_rate`).
fn units_of(c: &Campaign, e: &HopperEntry, rate: f64, sms_rate: Option<f64>) -> usize {
    match sms_rate {
        Some(r) if e.sms_fallback == Some(SmsFallback::Due) => {
            c.fallback_pace_units(&e.contact, rate, r)
        }
        _ => c.pace_units(&e.contact),
    }
}

/// Whether the account belongs to a business portfolio (whose messaging limit its
/// accounts draw from together), or could not be read.
fn in_portfolio(accounts: &Accounts, key: &(String, Option<String>)) -> bool {
    match accounts.get(key) {
        Some(Ok(Some(a))) => a.portfolio_id.is_some(),
        Some(Err(_)) => true,
        _ => false,
    }
}

/// The accounts in lanes a tick dispatches side by side: one per business portfolio
/// (its accounts one after another: the portfolio's messaging limit is drawn account by
/// account), one for each account outside a portfolio; none for an account that could
/// not be read.
fn lanes(by_account: ByAccount, accounts: &Accounts) -> Vec<Vec<AccountCampaigns>> {
    let mut lanes: BTreeMap<(String, String), Vec<AccountCampaigns>> = BTreeMap::new();
    for (key, campaigns) in by_account {
        let portfolio = match accounts.get(&key) {
            Some(Ok(Some(a))) => a.portfolio_id.clone(),
            // Its portfolio is unknown: dispatched beside a sibling it could overspend the
            // portfolio's messaging limit, so it waits for the next tick.
            Some(Err(e)) => {
                tracing::warn!(account_id = ?key.1, error = %e, "account not read; dispatched at the next tick");
                continue;
            }
            _ => None,
        };
        let lane = match portfolio {
            Some(p) => format!("portfolio {p}"),
            None => format!("account {:?}", key.1),
        };
        lanes
            .entry((key.0.clone(), lane))
            .or_default()
            .push((key, campaigns));
    }
    lanes.into_values().collect()
}

fn group_by_account(running: Vec<Campaign>) -> ByAccount {
    let mut by_account = ByAccount::new();
    for c in running {
        by_account
            .entry((c.tenant.clone(), c.account_id.clone()))
            .or_default()
            .push(c);
    }
    by_account
}

impl Dispatcher {
    /// Where a tick's plan ends: the next tick, plus the margin for a late one.
    fn horizon(&self, now: Time) -> Time {
        now + chrono::Duration::seconds(
            i64::from(self.tick_seconds.max(1)) + i64::from(self.plan_ahead_secs),
        )
    }

    /// The one-time schedule of a start date fired. Starting twice is harmless.
    pub async fn launch(&self, tenant: &TenantId, campaign_id: &CampaignId) -> AppResult<usize> {
        let Some(c) = repo::get_campaign(&*self.table, tenant, campaign_id).await? else {
            tracing::warn!(
                campaign_id = %campaign_id,
                "schedule fired for a campaign that no longer exists"
            );
            return Ok(0);
        };
        let c = match c.status {
            // A schedule left behind by a reschedule fires before the new date: ignore it.
            CampaignStatus::Scheduled if c.start_at.is_some_and(|at| at > self.clock.now()) => {
                tracing::info!(
                    campaign_id = %campaign_id,
                    "schedule fired before the campaign's start date (rescheduled); ignored"
                );
                return Ok(0);
            }
            CampaignStatus::Scheduled => self.start(tenant, campaign_id).await?,
            CampaignStatus::Running => c,
            other => {
                tracing::info!(campaign_id = %campaign_id, status = %other, "schedule fired for a campaign that is not scheduled; ignored");
                return Ok(0);
            }
        };
        // Alone on its account it goes out at once; beside other campaigns it waits for
        // the tick, which shares the account between them (R4.8).
        let (running, listed) = self.running_with(&c).await?;
        if self.waits_for_tick(&c, &running).await? {
            return Ok(0);
        }
        let by_account = group_by_account(running);
        let accounts = self.accounts(&by_account).await;
        let key = (c.tenant.clone(), c.account_id.clone());
        if !listed && in_portfolio(&accounts, &key) {
            tracing::info!(campaign_id = %c.id, "running index not caught up; the tick budgets the portfolio's campaigns together");
            return Ok(0);
        }
        let caps = self.account_caps(&by_account, &accounts).await?;
        // When the numbers ask for more than the sender carries, the others' shares of
        // the time already planned cannot shrink now: the tick shares out what follows.
        let asked: f64 = caps.values().map(|(_, asked)| asked).sum();
        if self.send_capacity.is_some_and(|capacity| asked > capacity) {
            tracing::info!(campaign_id = %c.id, "the sender is fully shared; the tick dispatches it");
            return Ok(0);
        }
        let mine: Vec<Campaign> = by_account
            .get(&key)
            .map(|cs| cs.iter().filter(|o| o.id == c.id).cloned().collect())
            .unwrap_or_default();
        let cap = caps.get(&key).map(|(share, _)| *share);
        let done = self.dispatch_account(&mine, cap).await?;
        Ok(done.enqueued)
    }

    /// Whether a campaign launched now must leave its first dispatch to the tick: another
    /// running campaign shares its account (its throughput), or runs on another account
    /// of the same business portfolio (its messaging limit); the tick budgets those
    /// together, one after the other.
    async fn waits_for_tick(&self, c: &Campaign, running: &[Campaign]) -> AppResult<bool> {
        let others: Vec<&Campaign> = running
            .iter()
            .filter(|o| o.id != c.id && o.tenant == c.tenant)
            .collect();
        if others.iter().any(|o| o.account_id == c.account_id) {
            return Ok(true);
        }
        let t = &*self.table;
        let portfolio_of = |account: Option<String>| async move {
            let Some(a) = account else {
                return Ok(None);
            };
            let account = repo::get_account(t, &c.tenant, &a).await?;
            AppResult::Ok(account.and_then(|a| a.portfolio_id))
        };
        let Some(mine) = portfolio_of(c.account_id.clone()).await? else {
            return Ok(false);
        };
        for o in others {
            if portfolio_of(o.account_id.clone()).await?.as_ref() == Some(&mine) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn start(&self, tenant: &str, id: &str) -> AppResult<Campaign> {
        let now = self.clock.now();
        let (c, ()) = update_campaign(&*self.table, &*self.bus, tenant, id, (None, now), |c| {
            c.start(now)
        })
        .await?;
        Ok(c)
    }

    /// Starts scheduled campaigns that are due (in case a schedule was missed), then
    /// dispatches every running campaign, account by account.
    pub async fn tick(&self) -> AppResult<TickReport> {
        let mut report = TickReport::default();
        let now = self.clock.now();
        for (tenant, id) in repo::due_scheduled_campaigns(&*self.table, now).await? {
            match self.start(&tenant, &id).await {
                Ok(_) => report.started += 1,
                Err(e) => {
                    tracing::warn!(campaign_id = %id, error = %e, "could not start due campaign")
                }
            }
        }
        let by_account = group_by_account(self.running().await?);
        let accounts = self.accounts(&by_account).await;
        let caps = self.account_caps(&by_account, &accounts).await?;
        let caps = &caps;
        let lanes: Vec<(usize, Dispatched)> = stream::iter(lanes(by_account, &accounts))
            .map(|lane| async move {
                let (mut campaigns, mut done) = (0, Dispatched::default());
                for (key, cs) in lane {
                    campaigns += cs.len();
                    let cap = caps.get(&key).map(|(share, _)| *share);
                    match self.dispatch_account(&cs, cap).await {
                        Ok(d) => done.add(&d),
                        // One account's trouble does not hold up the others.
                        Err(e) => {
                            tracing::warn!(account_id = ?key.1, error = %e, "dispatch failed for an account")
                        }
                    }
                }
                (campaigns, done)
            })
            .buffer_unordered(DISPATCH_CONCURRENCY)
            .collect()
            .await;
        for (campaigns, done) in lanes {
            report.campaigns += campaigns;
            report.enqueued += done.enqueued;
            report.deferred += done.deferred;
        }
        Ok(report)
    }

    /// The running campaigns' accounts, read once per tick or launch (at most
    /// [`READ_CONCURRENCY`] at once); a read that failed keeps its error.
    async fn accounts(&self, by_account: &ByAccount) -> Accounts {
        // Owned keys: a stream of borrowed ones is not `Send` for every lifetime.
        let keys: Vec<(String, String)> = by_account
            .keys()
            .filter_map(|(tenant, a)| Some((tenant.clone(), a.clone()?)))
            .collect();
        stream::iter(keys)
            .map(|(tenant, account)| async move {
                let read = repo::get_account(&*self.table, &tenant, &account).await;
                ((tenant, Some(account)), read.map_err(|e| e.to_string()))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await
    }

    /// Each account's share of [`Dispatcher::send_capacity`] and what it asks for: max-min
    /// fair among the accounts' demands (their campaigns' rates, up to the account's
    /// limit); nothing when the capacity is unlimited. An account whose demand cannot be
    /// read counts at its campaigns' rates: one account's trouble holds up no other.
    async fn account_caps(
        &self,
        by_account: &ByAccount,
        accounts: &Accounts,
    ) -> AppResult<BTreeMap<(String, Option<String>), (f64, f64)>> {
        let Some(capacity) = self.send_capacity else {
            return Ok(BTreeMap::new());
        };
        let mut demands = Vec::with_capacity(by_account.len());
        for (key, campaigns) in by_account {
            let (tenant, account) = key;
            let rates: f64 = campaigns
                .iter()
                .map(|c| c.pacing.messages_per_second())
                .sum();
            let limit = match accounts.get(key) {
                Some(Ok(a)) => Ok(a.as_ref().map_or(0.0, |a| f64::from(a.rate_limit))),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(0.0),
            };
            let asked = self
                .demands(tenant, campaigns)
                .await
                .map(|d| d.iter().sum())
                .map_err(|e| e.to_string());
            let demand = match (limit, asked) {
                (Ok(limit), Ok(asked)) => f64::min(limit, asked),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(account_id = ?account, error = %e, "demand not read; counted at its campaigns' rates");
                    rates
                }
            };
            demands.push(demand);
        }
        let shares = pacing::fair_shares(capacity, &demands);
        Ok(by_account
            .keys()
            .cloned()
            .zip(shares.into_iter().zip(demands))
            .collect())
    }

    /// The RUNNING campaigns, as stored (the index lags behind the table).
    async fn running(&self) -> AppResult<Vec<Campaign>> {
        let ids = repo::running_campaigns(&*self.table).await?;
        self.read_running(ids).await
    }

    /// The running campaigns with `c` (just read from the table, RUNNING) among them, and
    /// whether the RUNNING index listed it: the index is eventually consistent, and a
    /// launch event follows the write by milliseconds.
    async fn running_with(&self, c: &Campaign) -> AppResult<(Vec<Campaign>, bool)> {
        let ids = repo::running_campaigns(&*self.table).await?;
        let listed = ids.iter().any(|(t, id)| *t == c.tenant && *id == c.id);
        let mut running = self.read_running(ids).await?;
        if !listed {
            running.push(c.clone());
        }
        Ok((running, listed))
    }

    /// The campaigns named, as stored, those still sending.
    async fn read_running(&self, ids: Vec<(String, String)>) -> AppResult<Vec<Campaign>> {
        let read: Vec<Option<Campaign>> = stream::iter(ids)
            .map(|(tenant, id)| async move { repo::get_campaign(&*self.table, &tenant, &id).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(read
            .into_iter()
            .flatten()
            .filter(|c| c.is_sending())
            .collect())
    }

    /// Dispatches the running campaigns of one provider account: the account's pace
    /// (its limit, halved after throttling and recovering additively) is shared fairly
    /// among them, and its messaging tier's remaining budget split in the same proportion.
    /// `cap`: the account's share of the deployment's sender ([`Self::account_caps`]).
    pub async fn dispatch_account(
        &self,
        campaigns: &[Campaign],
        cap: Option<f64>,
    ) -> AppResult<Dispatched> {
        let Some(first) = campaigns.first() else {
            return Ok(Dispatched::default());
        };
        let tenant = first.tenant.as_str();
        let account = match &first.account_id {
            Some(a) => repo::get_account(&*self.table, tenant, a).await?,
            None => None,
        };
        let Some(account) = account else {
            tracing::warn!(campaign_id = %first.id, "running campaign without its account; not dispatched");
            return Ok(Dispatched::default());
        };
        // Calls go by lines, not by rate.
        if account.provider.calls() {
            return self.dispatch_calls(&account, campaigns).await;
        }
        let now = self.clock.now();
        let t = &*self.table;
        let mut pace = repo::pacing::get_account_pace(t, tenant, &account.id).await?;
        let throttled = repo::pacing::last_throttle(t, tenant, &account.id).await?;
        let capacity = pace.adjust(f64::from(account.rate_limit), throttled, now);
        let capacity = cap.map_or(capacity, |c| capacity.min(c));
        let demands = self.demands(tenant, campaigns).await?;
        let shares = pacing::fair_shares(capacity, &demands);
        let budget = repo::pacing::budget_key(&account);
        let tier_left = self.tier_left(&account, &budget, now).await?;
        let from = pace.planned_until.map_or(now, |p| p.max(now));
        // The window is reserved before anything is planned in it: of two dispatchers of
        // one account at once (a tick and a launch, two launches), one plans it, the
        // other finds the pace changed and leaves it (never twice the account's rate).
        pace.planned_until = Some(self.horizon(now).max(from));
        match repo::pacing::save_account_pace(t, tenant, &account.id, &mut pace).await {
            Ok(()) => {}
            Err(PortError::ConditionFailed) => return Ok(Dispatched::default()),
            Err(e) => return Err(e.into()),
        }
        let (done, tier_given) = self
            .dispatch_shares(campaigns, &shares, tier_left, from)
            .await?;
        // A portfolio's usage is counted even while its limit is unknown or unlimited: a
        // limit that appears later (a sync, a hand setting) sees the last 24 hours.
        if tier_left.is_some() || account.portfolio_id.is_some() {
            // Every dispatched contact counts against the tier (conservative: a contact
            // dispatched twice in 24 hours uses two places).
            let hour = pacing::hour_start(now);
            repo::pacing::add_tier_usage(t, tenant, &budget, hour, tier_given).await?;
        }
        Ok(done)
    }

    /// What is left of the messaging limit the account's sends count under (`budget`,
    /// [`repo::pacing::budget_key`]): its business portfolio's limit, shared by the
    /// portfolio's accounts (the account's own `messaging_tier` until the portfolio's is
    /// known), or the account's; `None` when unlimited.
    async fn tier_left(
        &self,
        account: &Account,
        budget: &str,
        now: Time,
    ) -> AppResult<Option<u64>> {
        let t = &*self.table;
        let portfolio = match &account.portfolio_id {
            Some(p) => repo::pacing::get_portfolio(t, &account.tenant, p).await?,
            None => None,
        };
        let Some(limit) = account.messaging_limit(portfolio.as_ref()) else {
            return Ok(None);
        };
        let since = pacing::hour_start(now) - chrono::Duration::hours(24);
        let hours = repo::pacing::tier_hours(t, &account.tenant, budget, since).await?;
        Ok(Some(pacing::tier_remaining(limit, &hours, now)))
    }

    /// The rate each campaign asks for: its pacing, or nothing when it has nothing FRESH
    /// left (only waiting for replies), so its share goes to the others.
    async fn demands(&self, tenant: &str, campaigns: &[Campaign]) -> AppResult<Vec<f64>> {
        let mut demands: Vec<f64> = Vec::with_capacity(campaigns.len());
        for c in campaigns {
            let counters = repo::get_counters(&*self.table, tenant, &c.id).await?;
            let fresh = counters
                .get(EntryState::Fresh.as_str())
                .copied()
                .unwrap_or(0);
            // A lost counter write can leave the counter at zero with entries ready: the
            // READY index decides then (a query per shard of a campaign waiting only for
            // replies, each tick).
            let ready = fresh > 0 || self.has_ready(c).await?;
            demands.push(if ready {
                c.pacing.messages_per_second()
            } else {
                0.0
            });
        }
        Ok(demands)
    }

    /// Whether any shard of the campaign's hopper has an entry in the READY index.
    pub(super) async fn has_ready(&self, c: &Campaign) -> AppResult<bool> {
        for shard in 0..c.hopper_shards.max(1) {
            if !repo::ready_entries(&*self.table, &c.tenant, &c.id, shard, None, 1)
                .await?
                .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Dispatches each campaign at its share, the tier's remaining budget split in the
    /// same proportion; what a campaign with too little to send left of the tier goes to
    /// those the tier held back, their slots continuing where the first pass stopped.
    /// Returns what was dispatched and how many places of the tier it used.
    async fn dispatch_shares(
        &self,
        campaigns: &[Campaign],
        shares: &[f64],
        tier_left: Option<u64>,
        from: Time,
    ) -> AppResult<(Dispatched, u64)> {
        let mut done = Dispatched::default();
        let tier_split = tier_left.map(|left| pacing::split_tier(left, shares));
        let mut tier_given = 0;
        let mut capped = Vec::new();
        for (i, (c, share)) in campaigns.iter().zip(shares).enumerate() {
            let max = tier_split.as_ref().map(|split| split[i]);
            let d = self.dispatch(c, Allowance::new(*share, max, from)).await?;
            tier_given += d.enqueued as u64;
            done.add(&d);
            if max.is_some_and(|m| d.enqueued as u64 >= m) {
                capped.push((c, *share));
            }
        }
        let Some(left) = tier_left else {
            return Ok((done, tier_given));
        };
        for (c, share) in capped {
            let rest = left.saturating_sub(tier_given);
            if rest == 0 {
                break;
            }
            let d = self
                .dispatch(c, Allowance::new(share, Some(rest), from))
                .await?;
            tier_given += d.enqueued as u64;
            done.add(&d);
        }
        Ok((done, tier_given))
    }

    /// A dispatch's slots, and how many of them it may fill: from where the campaign's
    /// plan stopped, no earlier than the account's window (or the start lead after now
    /// when that has lapsed), up to the horizon, at most the allowance's maximum.
    fn slots(&self, allowance: &Allowance, next_due: Option<Time>, now: Time) -> (Slots, usize) {
        // The lead only where the account's plan has lapsed: a plan still running goes on
        // from where it stops, so a tick in time loses no slot to it.
        let from = match allowance.from {
            Some(f) if f > now => f,
            _ => now + chrono::Duration::milliseconds(i64::from(self.start_lead_ms)),
        };
        let slots = Slots::plan(allowance.rate, next_due, from, self.horizon(now));
        let limit = allowance
            .max
            .map_or(slots.count, |m| slots.count.min(m as usize));
        (slots, limit)
    }

    /// Enqueues one tick's sends of the campaign's FRESH entries at `allowance.rate`,
    /// taking from the shards in turn, each message delayed until its send time, and
    /// remembers where it stopped. Outside calling hours a slot passes unused; with
    /// recipient zones, an entry whose zone is closed waits for its window to open
    /// instead. Nothing goes out after the end date.
    pub async fn dispatch(&self, c: &Campaign, allowance: Allowance) -> AppResult<Dispatched> {
        let now = self.clock.now();
        if c.has_ended(now) {
            tracing::info!(campaign_id = %c.id, "end date passed; nothing dispatched");
            return Ok(Dispatched::default());
        }
        let mut cursors = repo::get_cursors(&*self.table, &c.tenant, &c.id).await?;
        let (slots, limit) = self.slots(&allowance, cursors.next_due, now);
        let mut reader = ShardReader::open(&*self.table, c, &cursors, now, limit).await?;
        // Calling hours parsed once per dispatch, not once per slot.
        let window = c.calling_hours.as_ref().map(|h| h.window());
        let sms_rate = self.fallback_rate(c).await?;
        let mut msgs: Vec<OutMessage> = Vec::new();
        let mut deferred = 0;
        let mut slot = 0;
        // Holding entries back costs a write each: a hopper whose recipients all sleep is
        // held back a bounded number per tick, the rest in later ticks.
        while slot < limit && deferred < MAX_HELD_BACK_PER_TICK {
            let Some(e) = reader.buffer.pop_front() else {
                if !reader
                    .refill(&*self.table, c, &cursors, limit - slot)
                    .await?
                {
                    break;
                }
                continue;
            };
            let at = slots.at(slot);
            if let Some(h) = &window {
                if !h.allows_for(&e.phone, at) {
                    if !h.per_recipient() {
                        // The campaign's window is closed at this slot: it passes unused.
                        reader.buffer.push_front(e);
                        slot += 1;
                        continue;
                    }
                    // This recipient's window is closed: it waits; the slot goes to the next.
                    cursors.advance(e.shard, &repo::seq_key(e.seq));
                    let opens = h.next_open_for(&e.phone, at);
                    if self.hold_back(e, opens).await? {
                        deferred += 1;
                    }
                    continue;
                }
            }
            let units = units_of(c, &e, allowance.rate, sms_rate);
            if slot > 0 && slot + units > limit {
                reader.buffer.push_front(e);
                break;
            }
            cursors.advance(e.shard, &repo::seq_key(e.seq));
            msgs.push(send_message(&e, &slots, slot, now));
            slot += units;
        }
        let next_due = slots.next_due(slot);
        self.store_progress(c, cursors, next_due, msgs, deferred, allowance.rate)
            .await
    }

    /// The rate (parts per second) of the SMS account a WhatsApp campaign falls back to;
    /// none without a fallback (or when its account is gone: the send then fails it).
    async fn fallback_rate(&self, c: &Campaign) -> AppResult<Option<f64>> {
        let Some(f) = &c.sms_fallback else {
            return Ok(None);
        };
        let account = repo::get_account(&*self.table, &c.tenant, &f.account_id).await?;
        Ok(account.map(|a| f64::from(a.rate_limit)))
    }

    /// Sends the tick's messages and moves the campaign's cursors past them; nothing at
    /// all when nothing moved.
    async fn store_progress(
        &self,
        c: &Campaign,
        mut cursors: repo::Cursors,
        next_due: Time,
        msgs: Vec<OutMessage>,
        deferred: usize,
        rate: f64,
    ) -> AppResult<Dispatched> {
        let n = msgs.len();
        if n == 0 && deferred == 0 && cursors.next_due == Some(next_due) {
            return Ok(Dispatched::default());
        }
        cursors.next_due = Some(next_due);
        cursors.mark(self.clock.now(), RESCAN_AFTER);
        if n > 0 {
            self.queue.send(msgs).await?;
        }
        // A lost race here only means the next tick enqueues some entries again; the
        // sender's conditional claim keeps that from sending anything twice.
        match repo::save_cursors(&*self.table, &c.tenant, &c.id, &mut cursors).await {
            Ok(()) | Err(PortError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
        if n > 0 || deferred > 0 {
            tracing::info!(campaign_id = %c.id, enqueued = n, deferred, rate, "dispatched");
        }
        Ok(Dispatched {
            enqueued: n,
            deferred,
        })
    }

    /// Holds an entry back until `until` (it leaves the dispatch order; the sweeper puts
    /// it back when the time comes). Returns whether it was stored that way; an entry
    /// changed meanwhile is left as it is.
    pub(super) async fn hold_back(
        &self,
        mut e: HopperEntry,
        until: crate::domain::Time,
    ) -> AppResult<bool> {
        e.defer(until, WAITING_FOR_CALLING_HOURS);
        match repo::save_entry(&*self.table, &mut e, self.clock.now()).await {
            Ok(()) => Ok(true),
            Err(PortError::ConditionFailed) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::campaign::{Pacing, PacingUnit};
    use crate::domain::pacing::Slots;
    use chrono::{Duration, TimeZone, Utc};

    /// Send times of `ticks` ticks of `tick` seconds at the pacing's rate, each tick
    /// carrying the next due time to the next, as the dispatcher does.
    fn simulate(p: Pacing, tick: i64, ticks: i64) -> Vec<Vec<i64>> {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let mut due = None;
        (0..ticks)
            .map(|k| {
                let now = t0 + Duration::seconds(k * tick);
                let s = Slots::plan(
                    p.messages_per_second(),
                    due,
                    now,
                    now + Duration::seconds(tick),
                );
                due = Some(s.next_due(s.count));
                (0..s.count).map(|i| (s.at(i) - t0).num_seconds()).collect()
            })
            .collect()
    }

    #[test]
    fn r1_2_messages_per_second_fill_each_tick_evenly() {
        let ticks = simulate(Pacing::per_second(20), 60, 3);
        for (k, t) in ticks.iter().enumerate() {
            assert_eq!(t.len(), 1200);
            for s in 0..60 {
                let second = k as i64 * 60 + s;
                assert_eq!(
                    t.iter().filter(|d| **d == second).count(),
                    20,
                    "second {second}"
                );
            }
        }
    }

    #[test]
    fn r1_2_contacts_per_hour_carry_the_fraction_instead_of_rounding_to_zero() {
        let p = Pacing {
            unit: PacingUnit::ContactsPerHour,
            value: 30,
        };
        let ticks = simulate(p, 60, 120);
        let sent: usize = ticks.iter().map(Vec::len).sum();
        assert_eq!(sent, 60, "30 an hour for two hours");
        assert!(ticks.iter().all(|t| t.len() <= 1));
        let odd = Pacing {
            unit: PacingUnit::ContactsPerHour,
            value: 7,
        };
        let sent: usize = simulate(odd, 60, 60 * 24).iter().map(Vec::len).sum();
        assert_eq!(sent, 7 * 24);
    }

    #[test]
    fn r1_2_minimum_interval_holds_across_ticks() {
        let p = Pacing {
            unit: PacingUnit::MinIntervalSeconds,
            value: 90,
        };
        let times: Vec<i64> = simulate(p, 60, 30).into_iter().flatten().collect();
        assert_eq!(times.len(), 20, "1800 s / 90 s");
        assert!(times.windows(2).all(|w| w[1] - w[0] == 90), "{times:?}");
    }
}
