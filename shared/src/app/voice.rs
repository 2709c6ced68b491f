//! Voice campaigns' use cases (issue 17): the dispatcher gives each call a line of its
//! Connect account (pacing by concurrency, not rate), the sender frees the line of a call
//! it did not place, and a call's contact events settle its entry, free its line and let
//! the account's campaigns take it again at once.

use super::dispatch::{Dispatched, Dispatcher};
use super::inbox::{BatchCache, Inbox};
use super::{retry_on_conflict, AppResult};
use crate::domain::account::Account;
use crate::domain::campaign::{Campaign, Channel};
use crate::domain::hopper::{CallApplied, HopperEntry};
use crate::domain::inbound::{CallEvent, EntryRef, SendJob};
use crate::domain::stats;
use crate::domain::voice::{fair_lines, line_key, Lines};
use crate::domain::Time;
use crate::ports::{OutMessage, PortError};
use crate::repo;

/// Entries read from one shard's line at most per dispatch, looking past entries that
/// already hold a line or wait for their retry.
const MAX_READ_PER_SHARD: usize = 2000;

/// Frees the line `r`'s call held on the instance, if it held one.
pub(crate) async fn free_line(
    table: &dyn crate::ports::Table,
    tenant: &str,
    instance: &str,
    r: &EntryRef,
) -> AppResult<bool> {
    let key = line_key(r);
    retry_on_conflict(|_| {
        let key = key.clone();
        async move {
            let mut lines = repo::voice::get_lines(table, tenant, instance).await?;
            if !lines.free(&key) {
                return Ok(false);
            }
            repo::voice::save_lines(table, tenant, instance, &mut lines).await?;
            Ok(true)
        }
    })
    .await
}

/// Holds `r`'s line for a call about to be dialled now ([`Lines::confirm`]); false when it
/// lapsed and no line is free (then nothing is dialled).
pub(crate) async fn hold_line(
    table: &dyn crate::ports::Table,
    account: &Account,
    c: &Campaign,
    r: &EntryRef,
    now: Time,
) -> AppResult<bool> {
    let Some(v) = &c.voice else {
        return Ok(false);
    };
    let key = line_key(r);
    let limit = account.concurrent_calls();
    retry_on_conflict(|_| {
        let key = key.clone();
        async move {
            let mut lines =
                repo::voice::get_lines(table, &account.tenant, &account.sender_id).await?;
            let before = lines.clone();
            let held = lines.confirm(&key, &c.id, v.max_concurrent, limit, now, v.line_bound());
            if lines != before {
                repo::voice::save_lines(table, &account.tenant, &account.sender_id, &mut lines)
                    .await?;
            }
            Ok(held)
        }
    })
    .await
}

impl Dispatcher {
    /// Dispatches the running voice campaigns of one Connect account: lines whose bound
    /// passed are freed (their final event was lost), the account's lines are shared
    /// max-min fairly by the campaigns with calls to make (each asking its
    /// `max_concurrent`), and each campaign's free lines go to its next entries in line,
    /// written with the lines' version before anything is queued (of two dispatchers at
    /// once one gives them out, the other nothing). Calling hours hold entries back as for
    /// messages.
    pub async fn dispatch_calls(
        &self,
        account: &Account,
        campaigns: &[Campaign],
    ) -> AppResult<Dispatched> {
        let now = self.clock.now();
        let t = &*self.table;
        let mut lines = repo::voice::get_lines(t, &account.tenant, &account.sender_id).await?;
        let lapsed = lines.lapse(now);
        if lapsed > 0 {
            tracing::warn!(account_id = %account.id, lapsed, "lines freed at their bound: the calls' final events never came");
        }
        let limit = account.concurrent_calls();
        let mut demands = Vec::with_capacity(campaigns.len());
        for c in campaigns {
            let wants = match &c.voice {
                Some(v) if !c.has_ended(now) && self.has_ready(c).await? => v.max_concurrent,
                _ => 0,
            };
            demands.push(wants);
        }
        let shares = fair_lines(limit, &demands);
        let mut msgs = Vec::new();
        let mut deferred = 0;
        for (c, share) in campaigns.iter().zip(shares) {
            let (Some(v), free) = (&c.voice, lines.free_for(&c.id, share, limit)) else {
                continue;
            };
            if free == 0 {
                continue;
            }
            let (next, held) = self.next_calls(c, &lines, free as usize, now).await?;
            deferred += held;
            for e in next {
                lines.take(line_key(&e.entry_ref()), &c.id, now, v.line_bound());
                msgs.push(call_job(&e, now));
            }
        }
        self.give_out(account, lines, lapsed, msgs, deferred).await
    }

    /// Stores the lines given out, then queues their calls.
    async fn give_out(
        &self,
        account: &Account,
        mut lines: Lines,
        lapsed: usize,
        msgs: Vec<OutMessage>,
        deferred: usize,
    ) -> AppResult<Dispatched> {
        let done = Dispatched {
            enqueued: 0,
            deferred,
        };
        if msgs.is_empty() && lapsed == 0 {
            return Ok(done);
        }
        let t = &*self.table;
        match repo::voice::save_lines(t, &account.tenant, &account.sender_id, &mut lines).await {
            Ok(()) => {}
            // Another dispatcher gave the lines out meanwhile.
            Err(PortError::ConditionFailed) => return Ok(done),
            Err(e) => return Err(e.into()),
        }
        let n = msgs.len();
        if n > 0 {
            // Lost, the lines lapse at their bound and the entries go out then.
            self.queue.send(msgs).await?;
            tracing::info!(account_id = %account.id, calls = n, in_use = lines.in_use(), "calls dispatched");
        }
        Ok(Dispatched {
            enqueued: n,
            ..done
        })
    }

    /// The next `want` entries of the campaign to call now, in line order: FRESH, not
    /// holding a line already (dispatched, not yet claimed) and not waiting for a retry;
    /// an entry whose recipient's calling hours are closed is held back until they open
    /// (counted in the second value). Nothing while the campaign's own hours are closed.
    async fn next_calls(
        &self,
        c: &Campaign,
        lines: &Lines,
        want: usize,
        now: Time,
    ) -> AppResult<(Vec<HopperEntry>, usize)> {
        let window = c.calling_hours.as_ref().map(|h| h.window());
        let mut found = Vec::new();
        let mut held = 0;
        for shard in 0..c.hopper_shards.max(1) {
            let (mut after, mut read) = (None::<String>, 0);
            let mut mine = 0;
            while mine < want && read < MAX_READ_PER_SHARD {
                let page = repo::ready_entries(
                    &*self.table,
                    &c.tenant,
                    &c.id,
                    shard,
                    after.as_deref(),
                    (want + 50) as u32,
                )
                .await?;
                let last = page.len() < want + 50;
                read += page.len();
                after = page.last().map(|e| repo::seq_key(e.seq));
                for e in page {
                    if lines.holds(&line_key(&e.entry_ref())) || e.retry_at.is_some_and(|r| r > now)
                    {
                        continue;
                    }
                    if let Some(w) = window.as_ref().filter(|w| !w.allows_for(&e.phone, now)) {
                        if !w.per_recipient() {
                            // The campaign's own hours are closed: no call now.
                            return Ok((Vec::new(), held));
                        }
                        let opens = w.next_open_for(&e.phone, now);
                        held += usize::from(self.hold_back(e, opens).await?);
                        continue;
                    }
                    found.push(e);
                    mine += 1;
                }
                if last {
                    break;
                }
            }
        }
        found.sort_by_key(|e| e.seq);
        found.truncate(want);
        Ok((found, held))
    }

    /// Dispatches the calls of one Connect account's running voice campaigns again: its
    /// lines were freed (calls ended).
    pub async fn refill_lines(&self, tenant: &str, account_id: &str) -> AppResult<Dispatched> {
        let t = &*self.table;
        let Some(account) = repo::get_account(t, tenant, account_id).await? else {
            return Ok(Dispatched::default());
        };
        let mut campaigns = Vec::new();
        for (ct, id) in repo::running_campaigns(t).await? {
            if ct != tenant {
                continue;
            }
            if let Some(c) = repo::get_campaign(t, &ct, &id).await? {
                let ours = c.account_id.as_deref() == Some(account_id);
                if ours && c.is_sending() && c.channel == Channel::Voice {
                    campaigns.push(c);
                }
            }
        }
        self.dispatch_calls(&account, &campaigns).await
    }
}

/// The send queue's message for a call: at once.
fn call_job(e: &HopperEntry, now: Time) -> OutMessage {
    let job = SendJob {
        entry: e.entry_ref(),
        due: Some(now),
    };
    OutMessage {
        body: serde_json::to_string(&job).expect("send job serialises"),
        delay_secs: 0,
    }
}

impl Inbox {
    /// A call's contact event: found by its contact id (for the tenant owning the
    /// instance), applied to its entry by the campaign's call settings; the call's end
    /// frees its line, and the account's campaigns take it again at once. An event for an
    /// entry whose call is still being recorded fails its record, which comes again.
    pub(super) async fn call_event(
        &self,
        ev: CallEvent,
        cache: &mut BatchCache,
    ) -> AppResult<bool> {
        let t = &*self.table;
        let Some(owner) = cache.owners.of(t, &ev.instance_id).await? else {
            tracing::info!("contact event of an instance no account owns; ignored");
            return Ok(false);
        };
        let Some(call) = repo::voice::get_call(t, &ev.instance_id, &ev.contact_id).await? else {
            tracing::debug!(contact_id = %ev.contact_id, "contact event of a call the engine did not place; ignored");
            return Ok(false);
        };
        if call.entry.tenant != owner {
            tracing::warn!(contact_id = %ev.contact_id, "contact event for another tenant's entry; ignored");
            return Ok(false);
        }
        let settings = match cache.campaign(t, &call.entry).await? {
            Some(Campaign { voice: Some(v), .. }) => v,
            _ => return Ok(false),
        };
        let (applied, delta) = self.apply_call(&call.entry, &ev, &settings).await?;
        if !delta.is_empty() {
            let r = &call.entry;
            if let Err(e) = repo::add_counters(t, &r.tenant, &r.campaign_id, &delta).await {
                tracing::error!(campaign_id = %r.campaign_id, error = %e, "counter update lost; a recount will repair it");
            }
        }
        match applied {
            CallApplied::Ignored => Ok(false),
            CallApplied::NotYet => Err(PortError::Backend(
                "contact event before its call was recorded; delivered again".into(),
            )
            .into()),
            CallApplied::Applied { ended } => {
                if ended {
                    // The call is over: other campaigns may call or write the contact.
                    let (phone, at) = (&call.entry.phone, ev.at);
                    repo::close_interaction(t, &ev.instance_id, phone, &ev.contact_id, at).await?;
                    self.line_freed(&call.entry, &ev.instance_id, &call.account_id)
                        .await?;
                }
                Ok(true)
            }
        }
    }

    /// Applies the event to the entry and stores it (reloaded when someone else wrote
    /// first); what it did and the counters' change.
    async fn apply_call(
        &self,
        r: &EntryRef,
        ev: &CallEvent,
        settings: &crate::domain::voice::VoiceSettings,
    ) -> AppResult<(CallApplied, stats::Delta)> {
        retry_on_conflict(|_| async move {
            let Some(mut e) = repo::get_entry(&*self.table, r).await? else {
                return Ok((CallApplied::Ignored, stats::Delta::new()));
            };
            let before = e.clone();
            let applied = e.apply_call(ev, settings);
            if e == before {
                return Ok((applied, stats::Delta::new()));
            }
            repo::save_entry(&*self.table, &mut e, self.clock.now()).await?;
            Ok((applied, stats::delta(Some(&before), &e)))
        })
        .await
    }

    /// A call ended: its line is free, and the account's voice campaigns are dispatched
    /// again so the line is used at once (without a dispatcher here, at the next tick).
    async fn line_freed(&self, r: &EntryRef, instance: &str, account_id: &str) -> AppResult<()> {
        free_line(&*self.table, &r.tenant, instance, r).await?;
        if let Some(d) = &self.calls {
            if let Err(e) = d.refill_lines(&r.tenant, account_id).await {
                tracing::warn!(account_id, error = %e, "lines not refilled; the next tick does");
            }
        }
        Ok(())
    }
}
