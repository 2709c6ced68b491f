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

    /// Enqueues up to one tick's allowance of the campaign's FRESH entries, taking from
    /// the shards in turn, and remembers where it stopped in each shard.
    pub async fn dispatch(&self, c: &Campaign) -> AppResult<usize> {
        let allowance = (c.rate as usize) * (self.tick_seconds as usize);
        let mut cursors = repo::get_cursors(&*self.table, &c.tenant, &c.id).await?;
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
        if picked.is_empty() {
            return Ok(0);
        }
        let n = picked.len();
        let msgs = picked
            .iter()
            .enumerate()
            .map(|(i, r)| OutMessage {
                body: serde_json::to_string(r).expect("entry ref serialises"),
                delay_secs: spread_delay(i, allowance, self.tick_seconds),
            })
            .collect();
        self.queue.send(msgs).await?;
        // A lost race here only means the next tick enqueues some entries again; the
        // sender's conditional claim keeps that from sending anything twice.
        match repo::save_cursors(&*self.table, &c.tenant, &c.id, &mut cursors).await {
            Ok(()) | Err(PortError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(campaign_id = %c.id, enqueued = n, "dispatched");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::spread_delay;

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
