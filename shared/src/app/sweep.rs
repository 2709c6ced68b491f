//! The sweeper: closes interactions whose response timeout passed (R5.5) and completes
//! campaigns with nothing left to send or wait for.

use super::{update_campaign, AppResult, CONFLICT_RETRIES};
use crate::domain::stats::{self, Stats};
use crate::ports::{Clock, EventBus, PortError, Table};
use crate::repo;
use std::sync::Arc;

pub struct SweepService {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub expired: usize,
    pub completed: usize,
}

impl SweepService {
    pub async fn sweep(&self) -> AppResult<SweepReport> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for due_shard in 0..repo::DUE_SHARDS {
            let mut cursor = None;
            loop {
                let (entries, next) =
                    repo::due_entries(&*self.table, due_shard, now, 100, cursor).await?;
                for stale in entries {
                    // The index is eventually consistent: decide on the entry as stored.
                    let r = stale.entry_ref();
                    for _ in 0..CONFLICT_RETRIES {
                        let Some(mut e) = repo::get_entry(&*self.table, &r).await? else {
                            break;
                        };
                        let before = e.clone();
                        if !e.expire(now) {
                            break;
                        }
                        match repo::save_entry(&*self.table, &mut e).await {
                            Ok(()) => {
                                report.expired += 1;
                                let d = stats::delta(Some(&before), &e);
                                repo::add_counters(&*self.table, &r.tenant, &r.campaign_id, &d)
                                    .await?;
                                break;
                            }
                            Err(PortError::ConditionFailed) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        for (tenant, id) in repo::running_campaigns(&*self.table).await? {
            let s = Stats::from_counters(&repo::get_counters(&*self.table, &tenant, &id).await?);
            if !s.is_done() {
                continue;
            }
            match update_campaign(&*self.table, &*self.bus, &tenant, &id, None, |c| {
                c.complete(now)
            })
            .await
            {
                Ok(_) => report.completed += 1,
                Err(e) => tracing::info!(campaign_id = %id, error = %e, "campaign not completed"),
            }
        }
        if report != SweepReport::default() {
            tracing::info!(
                expired = report.expired,
                completed = report.completed,
                "swept"
            );
        }
        Ok(report)
    }
}
