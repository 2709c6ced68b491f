//! What operators do over the API: accounts, templates, contacts, lists, campaigns.

use super::{update_campaign, AppError, AppResult};
use crate::domain::account::{Account, NewAccount};
use crate::domain::campaign::{Campaign, Launched, NewCampaign};
use crate::domain::contact::{Contact, ContactList, NewContact};
use crate::domain::hopper::HopperEntry;
use crate::domain::phone::PhoneNumber;
use crate::domain::stats::{self, HopperCounts, Stats};
use crate::domain::template::{NewTemplate, Template};
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
const PAGE: u32 = 100;

impl Admin {
    fn now(&self) -> crate::domain::Time {
        self.clock.now()
    }

    pub async fn create_account(&self, tenant: &str, input: NewAccount) -> AppResult<Account> {
        let a = Account::create(tenant, input, self.now())?;
        repo::put_account(&*self.table, &a).await?;
        Ok(a)
    }

    pub async fn get_account(&self, tenant: &str, id: &str) -> AppResult<Account> {
        repo::get_account(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("account", id).into())
    }

    pub async fn list_accounts(&self, tenant: &str) -> AppResult<Vec<Account>> {
        Ok(repo::list_accounts(&*self.table, tenant).await?)
    }

    pub async fn create_template(&self, tenant: &str, input: NewTemplate) -> AppResult<Template> {
        let t = Template::create(tenant, input, self.now())?;
        if repo::get_account(&*self.table, tenant, &t.account_id)
            .await?
            .is_none()
        {
            return Err(DomainError::invalid(
                "account_id",
                format!("account '{}' does not exist", t.account_id),
            )
            .into());
        }
        repo::put_template(&*self.table, &t).await?;
        Ok(t)
    }

    pub async fn list_templates(&self, tenant: &str) -> AppResult<Vec<Template>> {
        Ok(repo::list_templates(&*self.table, tenant).await?)
    }

    /// Validates every contact before storing any, so a bad row changes nothing.
    pub async fn upsert_contacts(
        &self,
        tenant: &str,
        input: Vec<NewContact>,
    ) -> AppResult<Vec<Contact>> {
        let now = self.now();
        let mut contacts = Vec::with_capacity(input.len());
        for (i, c) in input.into_iter().enumerate() {
            contacts.push(
                Contact::create(tenant, c, now)
                    .map_err(|e| prefix(e, &format!("contacts[{i}]")))?,
            );
        }
        for c in &contacts {
            repo::put_contact(&*self.table, c).await?;
        }
        Ok(contacts)
    }

    pub async fn get_contact(&self, tenant: &str, phone: &str) -> AppResult<Contact> {
        let p = PhoneNumber::parse(phone)?;
        repo::get_contact(&*self.table, tenant, &p)
            .await?
            .ok_or_else(|| DomainError::not_found("contact", p.masked()).into())
    }

    pub async fn create_list(&self, tenant: &str, name: Option<String>) -> AppResult<ContactList> {
        let l = ContactList::create(tenant, name, self.now())?;
        repo::put_list(&*self.table, &l).await?;
        Ok(l)
    }

    pub async fn get_list(&self, tenant: &str, id: &str) -> AppResult<ContactList> {
        repo::get_list(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("list", id).into())
    }

    /// Adds existing contacts to a list; unknown or malformed phones name their index.
    pub async fn add_list_members(
        &self,
        tenant: &str,
        list: &str,
        phones: Vec<String>,
    ) -> AppResult<usize> {
        self.get_list(tenant, list).await?;
        let mut parsed = Vec::with_capacity(phones.len());
        for (i, p) in phones.iter().enumerate() {
            let phone = PhoneNumber::parse(p).map_err(|e| prefix(e, &format!("phones[{i}]")))?;
            if repo::get_contact(&*self.table, tenant, &phone)
                .await?
                .is_none()
            {
                return Err(DomainError::invalid(
                    format!("phones[{i}]"),
                    "no contact has this phone; create it first",
                )
                .into());
            }
            parsed.push(phone);
        }
        for p in &parsed {
            repo::add_list_member(&*self.table, tenant, list, p).await?;
        }
        Ok(parsed.len())
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

    /// Puts a list's contacts into the campaign's hopper as FRESH; a contact already there
    /// keeps its one entry (R2.2).
    pub async fn attach_list(
        &self,
        tenant: &str,
        campaign_id: &str,
        list_id: &str,
    ) -> AppResult<AttachResult> {
        let campaign = repo::get_campaign(&*self.table, tenant, campaign_id)
            .await?
            .ok_or_else(|| DomainError::not_found("campaign", campaign_id))?;
        campaign.accepts_audience()?;
        self.get_list(tenant, list_id).await?;
        let mut result = AttachResult {
            added: 0,
            already_present: 0,
        };
        let mut cursor = None;
        loop {
            let (phones, next) =
                repo::list_members(&*self.table, tenant, list_id, PAGE, cursor).await?;
            if !phones.is_empty() {
                let first =
                    repo::reserve_seq(&*self.table, tenant, campaign_id, phones.len() as u64)
                        .await?;
                let mut delta = stats::Delta::new();
                for (i, phone) in phones.into_iter().enumerate() {
                    let contact = repo::get_contact(&*self.table, tenant, &phone).await?;
                    let data = contact.map(|c| c.data()).unwrap_or_default();
                    let mut e = HopperEntry::new(&campaign, phone, data, first + i as u64);
                    if repo::insert_entry(&*self.table, &mut e).await? {
                        result.added += 1;
                        stats::fold(&mut delta, stats::delta(None, &e));
                    } else {
                        result.already_present += 1;
                    }
                }
                repo::add_counters(&*self.table, tenant, campaign_id, &delta).await?;
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(result),
            }
        }
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

fn prefix(e: DomainError, at: &str) -> AppError {
    match e {
        DomainError::Invalid { field, message } => {
            DomainError::invalid(format!("{at}.{field}"), message).into()
        }
        other => other.into(),
    }
}
