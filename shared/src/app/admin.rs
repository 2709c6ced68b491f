//! What operators do over the API: accounts, templates, contacts, lists, campaigns.

use super::{update_campaign, AppError, AppResult};
use crate::domain::campaign::{Campaign, Launched, NewCampaign};
use crate::domain::stats::{HopperCounts, Stats};
use crate::domain::DomainError;
use crate::ports::{Clock, EventBus, OneTimeSchedule, Scheduler, Table};
use crate::repo;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub struct Admin {
    pub table: Arc<dyn Table>,
    pub scheduler: Arc<dyn Scheduler>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

/// What the launcher receives from a one-time schedule or the recurring tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LauncherEvent {
    Launch { tenant: String, campaign_id: String },
    Tick,
}

/// The schedule name for a campaign's start date (Scheduler allows [0-9a-zA-Z-_.]{1,64}).
pub fn launch_schedule_name(campaign_id: &str) -> String {
    format!("launch-{campaign_id}")
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub progress: Progress,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub sent: i64,
    pub target: i64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachResult {
    pub added: u64,
    pub already_present: u64,
}

/// Members are read and entries written a page at a time.
pub(crate) const PAGE: u32 = 100;

impl Admin {
    pub(crate) fn now(&self) -> crate::domain::Time {
        self.clock.now()
    }

    pub async fn create_campaign(&self, tenant: &str, input: NewCampaign) -> AppResult<Campaign> {
        let mut c = Campaign::create(tenant, input, self.now())?;
        self.check_references(&c).await?;
        repo::save_campaign(&*self.table, &mut c).await?;
        Ok(c)
    }

    /// The account and template a campaign names must exist, and the template must be
    /// usable with the campaign's variables (R3.2, R3.3).
    async fn check_references(&self, c: &Campaign) -> AppResult<()> {
        if let Some(a) = &c.account_id {
            if repo::get_account(&*self.table, &c.tenant, a)
                .await?
                .is_none()
            {
                return Err(DomainError::invalid(
                    "account_id",
                    format!("account '{a}' does not exist"),
                )
                .into());
            }
            if let Some(t) = &c.template {
                let template = repo::get_template(&*self.table, &c.tenant, a, &t.name, &t.language)
                    .await?
                    .ok_or_else(|| {
                        DomainError::invalid(
                            "template",
                            format!(
                                "template {} ({}) does not exist for account {a}",
                                t.name, t.language
                            ),
                        )
                    })?;
                template.check_usable(&c.variables)?;
            }
        }
        Ok(())
    }

    pub async fn get_campaign(&self, tenant: &str, id: &str) -> AppResult<CampaignView> {
        let c = repo::get_campaign(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("campaign", id))?;
        self.view(c).await
    }

    async fn view(&self, c: Campaign) -> AppResult<CampaignView> {
        let s = Stats::from_counters(&repo::get_counters(&*self.table, &c.tenant, &c.id).await?);
        let percent = if s.target > 0 {
            (s.sent as f64 * 1000.0 / s.target as f64).round() / 10.0
        } else {
            0.0
        };
        Ok(CampaignView {
            campaign: c,
            progress: Progress {
                sent: s.sent,
                target: s.target,
                percent,
            },
        })
    }

    pub async fn list_campaigns(
        &self,
        tenant: &str,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<CampaignView>, Option<String>)> {
        let (cs, next) =
            repo::list_campaigns(&*self.table, tenant, limit.clamp(1, 100), cursor).await?;
        let mut out = Vec::with_capacity(cs.len());
        for c in cs {
            out.push(self.view(c).await?);
        }
        Ok((out, next))
    }

    /// Launch now, or at the start date through a one-time schedule.
    pub async fn launch(&self, tenant: &str, id: &str) -> AppResult<CampaignView> {
        let c = repo::get_campaign(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("campaign", id))?;
        self.check_references(&c).await?;
        let counts = repo::get_counters(&*self.table, tenant, id).await?;
        if counts.get("target").copied().unwrap_or(0) == 0 {
            return Err(DomainError::Conflict(format!(
                "campaign {id} has no contacts: attach a list first"
            ))
            .into());
        }
        let now = self.now();
        let (c, launched) = update_campaign(&*self.table, &*self.bus, tenant, id, None, |c| {
            c.launch(now)
        })
        .await?;
        if let Launched::Scheduled(at) = launched {
            let payload = serde_json::to_string(&LauncherEvent::Launch {
                tenant: tenant.to_owned(),
                campaign_id: id.to_owned(),
            })
            .expect("event serialises");
            self.scheduler
                .put(OneTimeSchedule {
                    name: launch_schedule_name(id),
                    at,
                    payload,
                })
                .await?;
        }
        self.view(c).await
    }

    pub async fn pause(&self, tenant: &str, id: &str) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = update_campaign(&*self.table, &*self.bus, tenant, id, None, |c| {
            c.pause(None, now)
        })
        .await?;
        self.view(c).await
    }

    /// Resume continues where it stopped: the dispatcher re-reads each shard from the
    /// start, so entries whose queued messages were dropped while paused go out again.
    pub async fn resume(&self, tenant: &str, id: &str) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = update_campaign(&*self.table, &*self.bus, tenant, id, None, |c| {
            c.resume(now)
        })
        .await?;
        let mut cursors = repo::get_cursors(&*self.table, tenant, id).await?;
        cursors.after.clear();
        if cursors.version > 0 {
            repo::save_cursors(&*self.table, tenant, id, &mut cursors).await?;
        }
        self.view(c).await
    }

    pub async fn hopper(&self, tenant: &str, id: &str) -> AppResult<HopperCounts> {
        self.get_campaign(tenant, id).await?;
        Ok(HopperCounts::from_counters(
            &repo::get_counters(&*self.table, tenant, id).await?,
        ))
    }

    pub async fn stats(&self, tenant: &str, id: &str) -> AppResult<Stats> {
        self.get_campaign(tenant, id).await?;
        Ok(Stats::from_counters(
            &repo::get_counters(&*self.table, tenant, id).await?,
        ))
    }
}

pub(crate) fn prefix(e: DomainError, at: &str) -> AppError {
    match e {
        DomainError::Invalid { field, message } => {
            DomainError::invalid(format!("{at}.{field}"), message).into()
        }
        other => other.into(),
    }
}
