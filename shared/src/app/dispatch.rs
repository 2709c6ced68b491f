//! The launcher: starts campaigns whose start date arrived and, every tick, enqueues each
//! RUNNING campaign's allowance of FRESH entries, spread evenly over the tick (R4.8).

use super::{update_campaign, AppResult};
use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::inbound::EntryRef;
use crate::ports::{Clock, EventBus, OutMessage, PortError, Queue, Table};
use crate::repo;
use std::sync::Arc;

pub struct Dispatcher {
    pub table: Arc<dyn Table>,
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// Seconds between ticks; each tick enqueues `rate * tick_seconds` messages.
    pub tick_seconds: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub started: usize,
    pub campaigns: usize,
    pub enqueued: usize,
}

/// The delay of the `i`-th of `n` messages spread over `period` seconds. SQS delays are
/// whole seconds, so messages of one second share a delay.
pub fn spread_delay(i: usize, n: usize, period: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    ((i as u64 * u64::from(period)) / n as u64).min(899) as u32
}

impl Dispatcher {
    /// The one-time schedule of a start date fired. Starting twice is harmless.
    pub async fn launch(&self, tenant: &str, campaign_id: &str) -> AppResult<usize> {
        let Some(c) = repo::get_campaign(&*self.table, tenant, campaign_id).await? else {
            tracing::warn!(
                campaign_id,
                "schedule fired for a campaign that no longer exists"
            );
            return Ok(0);
        };
        let c = match c.status {
            // A schedule left behind by a reschedule fires before the new date: ignore it.
            CampaignStatus::Scheduled if c.start_at.is_some_and(|at| at > self.clock.now()) => {
                tracing::info!(
                    campaign_id,
                    "schedule fired before the campaign's start date (rescheduled); ignored"
                );
                return Ok(0);
            }
            CampaignStatus::Scheduled => self.start(tenant, campaign_id).await?,
            CampaignStatus::Running => c,
            other => {
                tracing::info!(campaign_id, status = %other, "schedule fired for a campaign that is not scheduled; ignored");
                return Ok(0);
            }
        };
        self.dispatch(&c).await
    }

    async fn start(&self, tenant: &str, id: &str) -> AppResult<Campaign> {
        let now = self.clock.now();
        let (c, ()) =
            update_campaign(&*self.table, &*self.bus, tenant, id, None, |c| c.start(now)).await?;
        Ok(c)
    }

    /// Starts scheduled campaigns that are due (in case a schedule was missed), then
    /// dispatches every running campaign.
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
        for (tenant, id) in repo::running_campaigns(&*self.table).await? {
            let Some(c) = repo::get_campaign(&*self.table, &tenant, &id).await? else {
                continue;
            };
            if !c.is_sending() {
                continue; // the index lags behind the table
            }
            report.campaigns += 1;
            report.enqueued += self.dispatch(&c).await?;
        }
        Ok(report)
    }

    /// Enqueues one tick's allowance of the campaign's FRESH entries, taking from the
    /// shards in turn, and remembers where it stopped in each shard. The allowance
    /// follows the campaign's pacing exactly (`pacing_slots`), carrying fractions of a
    /// message to the next tick; nothing goes out after the end date.
    pub async fn dispatch(&self, c: &Campaign) -> AppResult<usize> {
        if c.has_ended(self.clock.now()) {
            tracing::info!(campaign_id = %c.id, "end date passed; nothing dispatched");
            return Ok(0);
        }
        let mut cursors = repo::get_cursors(&*self.table, &c.tenant, &c.id).await?;
        let (num, den) = c.pacing.rate_fraction();
        let plan = pacing_slots(num, den, self.tick_seconds, cursors.pace_offset);
        let allowance = plan.slots;
        let shards = c.hopper_shards.max(1);
        let per_shard = allowance.div_ceil(shards as usize).max(1) as u32;
        let mut picked: Vec<EntryRef> = Vec::new();
        let mut exhausted = vec![false; shards as usize];
        while picked.len() < allowance && exhausted.iter().any(|e| !e) {
            for shard in 0..shards {
                let remaining = allowance - picked.len();
                if remaining == 0 || exhausted[shard as usize] {
                    continue;
                }
                let want = per_shard.min(remaining as u32);
                let after = cursors.after.get(&shard).cloned();
                let entries = repo::ready_entries(
                    &*self.table,
                    &c.tenant,
                    &c.id,
                    shard,
                    after.as_deref(),
                    want,
                )
                .await?;
                if (entries.len() as u32) < want {
                    exhausted[shard as usize] = true;
                }
                if let Some(last) = entries.last() {
                    cursors.after.insert(shard, repo::seq_key(last.seq));
                }
                picked.extend(entries.iter().map(|e| e.entry_ref()));
            }
        }
        let n = picked.len();
        let offset = plan.next_offset(n);
        if n == 0 && offset == cursors.pace_offset {
            return Ok(0);
        }
        cursors.pace_offset = offset;
        if n > 0 {
            let msgs = picked
                .iter()
                .enumerate()
                .map(|(i, r)| OutMessage {
                    body: serde_json::to_string(r).expect("entry ref serialises"),
                    delay_secs: plan.delay(i),
                })
                .collect();
            self.queue.send(msgs).await?;
        }
        // A lost race here only means the next tick enqueues some entries again; the
        // sender's conditional claim keeps that from sending anything twice.
        match repo::save_cursors(&*self.table, &c.tenant, &c.id, &mut cursors).await {
            Ok(()) | Err(PortError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
        if n > 0 {
            tracing::info!(campaign_id = %c.id, enqueued = n, "dispatched");
        }
        Ok(n)
    }
}

/// The sends one tick may make at a rate of `num/den` messages per second.
///
/// Time inside a tick is counted in units of `1/num` seconds, so a send every `den`
/// units is exactly the rate, in integers. `offset` is when the next send is due,
/// counted from the tick's start; each send due before the tick ends gets a slot, and
/// the next tick's offset carries the remainder. 20/s over a 60 s tick: 1,200 slots,
/// 20 per second. 30 contacts/hour over 60 s ticks: one slot every other tick. A minimum
/// interval of 90 s: sends at 0 s, 90 s, 180 s... as delays inside the ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingSlots {
    num: u64,
    den: u64,
    span: u64,
    offset: u64,
    /// Sends this tick may make.
    pub slots: usize,
}

pub fn pacing_slots(num: u64, den: u64, tick_seconds: u32, offset: u64) -> PacingSlots {
    let num = num.max(1);
    let den = den.max(1);
    let span = u64::from(tick_seconds.max(1)) * num;
    // An offset from another pacing (changed while paused) cannot exceed one period.
    let offset = if offset > span + den { 0 } else { offset };
    let slots = if offset >= span {
        0
    } else {
        (span - offset).div_ceil(den) as usize
    };
    PacingSlots {
        num,
        den,
        span,
        offset,
        slots,
    }
}

impl PacingSlots {
    /// SQS delay of the `i`-th send: when it is due, in whole seconds (at most 899).
    pub fn delay(&self, i: usize) -> u32 {
        ((self.offset + i as u64 * self.den) / self.num).min(899) as u32
    }

    /// The next tick's offset after `sent` sends: the next one is due a period after the
    /// last, so an interval holds even across ticks and when the hopper ran short.
    pub fn next_offset(&self, sent: usize) -> u64 {
        (self.offset + sent as u64 * self.den).saturating_sub(self.span)
    }
}

#[cfg(test)]
mod tests {
    use super::{pacing_slots, spread_delay};
    use crate::domain::campaign::{Pacing, PacingUnit};

    /// Sends per tick and their delays over `ticks` ticks of `tick` seconds.
    fn simulate(p: Pacing, tick: u32, ticks: usize) -> Vec<Vec<u32>> {
        let (num, den) = p.rate_fraction();
        let mut offset = 0;
        (0..ticks)
            .map(|_| {
                let plan = pacing_slots(num, den, tick, offset);
                offset = plan.next_offset(plan.slots);
                (0..plan.slots).map(|i| plan.delay(i)).collect()
            })
            .collect()
    }

    #[test]
    fn r1_2_messages_per_second_fill_each_tick_evenly() {
        let ticks = simulate(Pacing::per_second(20), 60, 3);
        for t in &ticks {
            assert_eq!(t.len(), 1200);
            for s in 0..60 {
                assert_eq!(t.iter().filter(|d| **d == s).count(), 20, "second {s}");
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
        let ticks = simulate(p, 60, 30);
        let times: Vec<u64> = ticks
            .iter()
            .enumerate()
            .flat_map(|(n, t)| t.iter().map(move |d| n as u64 * 60 + u64::from(*d)))
            .collect();
        assert_eq!(times.len(), 20, "1800 s / 90 s");
        assert!(times.windows(2).all(|w| w[1] - w[0] == 90), "{times:?}");
        // A short hopper does not let the next send come early.
        let plan = pacing_slots(1, 90, 60, 0);
        assert_eq!(plan.slots, 1);
        assert_eq!(
            plan.next_offset(0),
            0,
            "nothing sent: the next may go at once"
        );
        assert_eq!(plan.next_offset(1), 30);
    }

    #[test]
    fn r4_8_delays_spread_the_allowance_evenly_over_the_tick() {
        let delays: Vec<u32> = (0..120).map(|i| spread_delay(i, 120, 60)).collect();
        assert_eq!(delays[0], 0);
        assert_eq!(delays[119], 59);
        for s in 0..60 {
            assert_eq!(delays.iter().filter(|d| **d == s).count(), 2, "second {s}");
        }
    }
}
