//! Campaigns and the tenant's settings (R1): create, edit, list, the lifecycle (launch,
//! schedule, pause, resume, cancel, delete), test sends, hopper counts and statistics.
//! The operator's other aggregates have their own services: `audience`, `templates`,
//! `blocklists`, `commands`, `reports`, `hopper_views` (all gathered in [`Operator`]).

use super::{
    busy, publish_transitions, retry_on_conflict, save_campaign_change, update_campaign, AppError,
    AppResult,
};
use crate::domain::campaign::{
    Campaign, CampaignAction, CampaignPatch, CampaignStatus, Channel, Launched, NewCampaign,
};
use crate::domain::hopper::HopperEntry;
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::operation;
use crate::domain::phone::PhoneNumber;
use crate::domain::stats::{self, HopperCounts, Stats};
use crate::domain::tenant::{Tenant, TenantSettings, TenantSwitches};
use crate::domain::DomainError;
use crate::ports::OneTimeSchedule;
use crate::repo;
use crate::repo::commands::OperationKind;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use utoipa::ToSchema;

operator_service! {
    /// Campaigns and the tenant's settings.
    Campaigns
}

/// The schedule name for a campaign's start date (Scheduler allows [0-9a-zA-Z-_.]{1,64}).
pub fn launch_schedule_name(campaign_id: &str) -> String {
    format!("launch-{campaign_id}")
}

/// A campaign as the API shows it: its settings and its progress (R1.7).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub progress: Progress,
    /// Every command with whether the campaign's state allows it now, and why not.
    pub actions: Vec<CampaignAction>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    /// Messages sent so far.
    pub sent: i64,
    /// Contacts in the hopper.
    pub target: i64,
    /// `sent` of `target`, in percent with one decimal.
    pub percent: f64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AttachResult {
    pub added: u64,
    pub already_present: u64,
}

/// Members are read and entries written a page at a time.
pub(crate) const PAGE: u32 = 100;
/// Most phones one test send accepts (R1.6: "a few given numbers").
pub const MAX_TEST_PHONES: usize = 10;
/// Campaigns read while filtering one listing page before it answers with what it has
/// (and a cursor to go on), so a very selective filter never runs for long.
const MAX_LIST_SCAN: usize = 2000;

/// Filters of `GET /campaigns` (R1.7). By default CANCELLED campaigns and test campaigns
/// are hidden; DELETING ones never show.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub statuses: Vec<CampaignStatus>,
    pub channel: Option<Channel>,
    pub account_id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    pub include_cancelled: bool,
    pub include_tests: bool,
}

impl CampaignFilter {
    pub fn matches(&self, c: &Campaign) -> bool {
        if c.status == CampaignStatus::Deleting {
            return false;
        }
        if !self.statuses.is_empty() {
            if !self.statuses.contains(&c.status) {
                return false;
            }
        } else if c.status == CampaignStatus::Cancelled && !self.include_cancelled {
            return false;
        }
        if c.is_test() && !self.include_tests {
            return false;
        }
        if self.channel.is_some_and(|ch| ch != c.channel) {
            return false;
        }
        if let Some(a) = &self.account_id {
            if c.account_id.as_deref() != Some(a.as_str()) {
                return false;
            }
        }
        if let Some(n) = &self.name {
            if !c.name.to_lowercase().contains(&n.to_lowercase()) {
                return false;
            }
        }
        true
    }
}

/// A listing cursor is the id of the last campaign read.
fn check_cursor(cursor: &str) -> Result<(), DomainError> {
    if crate::domain::ids::safe(cursor, 64) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "cursor",
            "is not a cursor this API returned",
        ))
    }
}

impl Campaigns {
    // ---- tenants (R1.8) ----

    pub async fn get_tenant(&self, tenant: &TenantId) -> AppResult<Tenant> {
        Ok(repo::get_tenant(&*self.table, tenant).await?)
    }

    pub async fn put_tenant(&self, tenant: &TenantId, s: TenantSettings) -> AppResult<Tenant> {
        let s = &s;
        retry_on_conflict(|_| async move {
            let mut t = repo::get_tenant(&*self.table, tenant).await?;
            t.apply(s.clone(), self.now())?;
            repo::save_tenant(&*self.table, &mut t).await?;
            Ok(t)
        })
        .await
        .map_err(busy(|| format!("tenant {tenant}")))
    }

    /// An administrator's switches on `tenant` (R1.8). Who may call this is decided at the
    /// edge (the administrator's JWT scope in AWS); no tenant route reaches it.
    pub async fn switch_tenant(&self, tenant: &TenantId, s: TenantSwitches) -> AppResult<Tenant> {
        let s = &s;
        retry_on_conflict(|_| async move {
            let mut t = repo::get_tenant(&*self.table, tenant).await?;
            t.switch(s, self.now());
            repo::save_tenant(&*self.table, &mut t).await?;
            Ok(t)
        })
        .await
        .map_err(busy(|| format!("tenant {tenant}")))
    }

    /// Whether the tenant may use the campaign endpoints (R1.8).
    pub async fn campaigns_enabled(&self, tenant: &TenantId) -> AppResult<bool> {
        Ok(self.get_tenant(tenant).await?.campaigns_enabled)
    }

    // ---- campaigns ----

    pub async fn create_campaign(
        &self,
        tenant: &TenantId,
        input: NewCampaign,
    ) -> AppResult<CampaignView> {
        let mut c = Campaign::create(tenant, input, self.now())?;
        if c.display_timezone.is_none() {
            c.display_timezone = Some(self.get_tenant(tenant).await?.timezone);
        }
        self.check_references(&c).await?;
        super::check_exist(&*self.table, tenant, &c.block_lists).await?;
        repo::save_campaign(&*self.table, &mut c).await?;
        self.view(c).await
    }

    /// The account and template a campaign names must exist, the account must send the
    /// campaign's channel, and the template must be usable with the campaign's variables
    /// (R3.2, R3.3).
    async fn check_references(&self, c: &Campaign) -> AppResult<()> {
        if let Some(a) = &c.account_id {
            let Some(account) = repo::get_account(&*self.table, &c.tenant, a).await? else {
                return Err(DomainError::invalid(
                    "account_id",
                    format!("account '{a}' does not exist"),
                )
                .into());
            };
            c.channel.check_provider(account.provider, a)?;
            if let Some(v) = &c.voice {
                account.check_caller_id(&v.caller_id)?;
            }
            if let Some(f) = &c.sms_fallback {
                let sms = repo::get_account(&*self.table, &c.tenant, &f.account_id).await?;
                let fits = sms.map(|s| Channel::Sms.check_provider(s.provider, &f.account_id));
                match fits {
                    None => Err(DomainError::invalid(
                        "sms_fallback.account_id",
                        format!("account '{}' does not exist", f.account_id),
                    )),
                    Some(r) => r.map_err(|e| match e {
                        DomainError::Invalid { message, .. } => {
                            DomainError::invalid("sms_fallback.account_id", message)
                        }
                        other => other,
                    }),
                }?;
            }
            if let (Channel::Whatsapp, Some(t)) = (c.channel, &c.template) {
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
                template.check_usable(&c.variables, c.url_variable.as_ref())?;
            }
        }
        Ok(())
    }

    pub async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> AppResult<CampaignView> {
        let c = self.load(tenant, id).await?;
        self.view(c).await
    }

    pub async fn view(&self, mut c: Campaign) -> AppResult<CampaignView> {
        // The outbox is the engine's, not a setting or a figure.
        c.unpublished.clear();
        let counters = repo::get_counters(&*self.table, &c.tenant, &c.id).await?;
        let op = repo::commands::get_operation(&*self.table, &c.tenant, &c.id).await?;
        // A READY campaign's launch also needs its account and an APPROVED template that
        // its variables fit, which the launch command checks first.
        let refs = match c.status {
            CampaignStatus::Ready => match self.check_references(&c).await {
                Ok(()) => None,
                Err(AppError::Domain(e)) => Some(e),
                Err(e) => return Err(e),
            },
            _ => None,
        };
        let running = op
            .filter(|o| o.is_running() && !o.kind.is_report())
            .map(|o| o.kind);
        let actions = operation::actions_of(&c, self.now(), &counters, running, refs);
        let s = Stats::from_counters(&counters);
        let percent = if s.target > 0 {
            (s.sent as f64 * 1000.0 / s.target as f64).round() / 10.0
        } else {
            0.0
        };
        Ok(CampaignView {
            actions,
            campaign: c,
            progress: Progress {
                sent: s.sent,
                target: s.target,
                percent,
            },
        })
    }

    /// One page of the tenant's campaigns that pass `filter`, oldest first (R1.7). It
    /// keeps reading until the page is full or the campaigns end, so a filter still gives
    /// full pages; the cursor is the id to continue after.
    pub async fn list_campaigns(
        &self,
        tenant: &TenantId,
        filter: &CampaignFilter,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<CampaignView>, Option<String>)> {
        if let Some(c) = &cursor {
            check_cursor(c)?;
        }
        let limit = limit.clamp(1, 100) as usize;
        let mut picked = Vec::new();
        let mut after = cursor;
        let mut scanned = 0;
        let next = loop {
            let page = repo::campaigns_after(&*self.table, tenant, after.as_deref(), PAGE).await?;
            let n = page.campaigns.len();
            let mut full_at = None;
            for (i, c) in page.campaigns.into_iter().enumerate() {
                scanned += 1;
                if filter.matches(&c) {
                    picked.push(c);
                    if picked.len() == limit {
                        full_at = Some(i);
                        break;
                    }
                }
            }
            if let Some(i) = full_at {
                let more = i + 1 < n || page.more;
                break more.then(|| picked.last().map(|c| c.id.clone())).flatten();
            }
            if !page.more {
                break None;
            }
            after = page.last;
            if scanned >= MAX_LIST_SCAN {
                break after;
            }
        };
        // Progress is one counter read per campaign: a few at a time, in order.
        let out = futures::stream::iter(picked)
            .map(|c| self.view(c))
            .buffered(8)
            .try_collect()
            .await?;
        Ok((out, next))
    }

    /// Loads, changes and stores a campaign with the versioned save, checking the account
    /// and template when they change (R1.4). A SCHEDULED campaign's new start date moves
    /// its schedule.
    pub async fn edit_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        patch: CampaignPatch,
    ) -> AppResult<CampaignView> {
        let patch = &patch;
        let (mut c, mark, rescheduled) = retry_on_conflict(|_| async move {
            let mut c = self.load(tenant, id).await?;
            let from = c.status;
            let now = self.now();
            let edited = c.edit(patch.clone(), now)?;
            if edited.references {
                self.check_references(&c).await?;
            }
            if patch.block_lists.is_some() {
                super::check_exist(&*self.table, tenant, &c.block_lists).await?;
            }
            let mark = save_campaign_change(&*self.table, &mut c, from, None, now).await?;
            Ok((c, mark, edited.rescheduled))
        })
        .await
        .map_err(busy(|| format!("campaign {id}")))?;
        publish_transitions(&*self.table, &*self.bus, &mut c, mark.as_ref()).await;
        if let Some(at) = rescheduled {
            self.put_schedule(tenant, id, at).await?;
        }
        self.view(c).await
    }

    /// A one-time schedule that launches the campaign at `at`; putting it again moves it.
    async fn put_schedule(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        at: crate::domain::Time,
    ) -> AppResult<()> {
        let payload = serde_json::to_string(&crate::lambda::events::LauncherEvent::Launch {
            tenant: tenant.clone(),
            campaign_id: id.clone(),
        })
        .expect("event serialises");
        self.scheduler
            .put(OneTimeSchedule {
                name: launch_schedule_name(id),
                at,
                payload,
            })
            .await?;
        Ok(())
    }

    /// Removes the start-date schedule. A schedule left behind is harmless (the launcher
    /// ignores a campaign that is not SCHEDULED, or not yet due), so a failure is logged.
    async fn drop_schedule(&self, id: &str) {
        if let Err(e) = self.scheduler.delete(&launch_schedule_name(id)).await {
            tracing::warn!(campaign_id = %id, error = %e, "could not delete the start-date schedule; the launcher will ignore it");
        }
    }

    /// Runs a lifecycle change on a visible campaign.
    async fn transition<R>(
        &self,
        tenant: &str,
        id: &str,
        change: impl Fn(&mut Campaign) -> Result<R, DomainError>,
    ) -> AppResult<(Campaign, R)> {
        self.load(tenant, id).await?;
        update_campaign(
            &*self.table,
            &*self.bus,
            tenant,
            id,
            (None, self.now()),
            change,
        )
        .await
    }

    /// Launch now, or at the start date through a one-time schedule.
    pub async fn launch(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignView> {
        let c = self.load(tenant, id).await?;
        self.check_references(&c).await?;
        let counts = repo::get_counters(&*self.table, tenant, id).await?;
        let op = repo::commands::get_operation(&*self.table, tenant, id).await?;
        let attaching = op.is_some_and(|o| o.is_running() && o.kind == OperationKind::Attach);
        operation::launch_needs_contacts(id, &counts, attaching)?;
        let now = self.now();
        let (c, launched) = self.transition(tenant, id, |c| c.launch(now)).await?;
        if let Launched::Scheduled(at) = launched {
            self.put_schedule(tenant, id, at).await?;
        }
        self.view(c).await
    }

    /// SCHEDULED -> READY; the schedule is deleted (R1.3).
    pub async fn unschedule(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = self.transition(tenant, id, |c| c.unschedule(now)).await?;
        self.drop_schedule(id).await;
        self.view(c).await
    }

    pub async fn pause(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = self.transition(tenant, id, |c| c.pause(None, now)).await?;
        self.view(c).await
    }

    /// Resume continues where it stopped: the dispatcher re-reads each shard from the
    /// start, so entries whose queued messages were dropped while paused go out again.
    pub async fn resume(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = self.transition(tenant, id, |c| c.resume(now)).await?;
        // The pacing may have changed while paused: its count starts afresh too. A
        // dispatch that saved the cursors meanwhile does not fail the resume.
        let table = &*self.table;
        retry_on_conflict(|_| async move {
            let mut cursors = repo::get_cursors(table, tenant, id).await?;
            cursors.restart();
            if cursors.version > 0 {
                repo::save_cursors(table, tenant, id, &mut cursors).await?;
            }
            Ok(())
        })
        .await?;
        self.view(c).await
    }

    /// Cancel (R1.5): the campaign stays, CANCELLED and hidden from default listings;
    /// nothing more is sent and its schedule goes. Not undoable.
    pub async fn cancel(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignView> {
        let now = self.now();
        let (c, ()) = self.transition(tenant, id, |c| c.cancel(now)).await?;
        self.drop_schedule(id).await;
        self.view(c).await
    }

    /// Delete (R1.5): the campaign disappears at once (DELETING answers as not found)
    /// and the sweeper removes its hopper, counters, cursors, sequence, test campaigns and
    /// owned interactions in bounded chunks, then the campaign. Not undoable.
    pub async fn delete_campaign(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<Campaign> {
        let now = self.now();
        let (c, ()) = self
            .transition(tenant, id, |c| c.mark_deleting(now))
            .await?;
        self.drop_schedule(id).await;
        Ok(c)
    }

    /// A test send (R1.6): a child campaign with the same settings, flagged `test_of`,
    /// whose hopper holds the given contacts, launched at once. Its statistics are its
    /// own; it is hidden from default listings and listed by `tests`.
    pub async fn test_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        phones: Vec<String>,
    ) -> AppResult<CampaignView> {
        let parent = self.load(tenant, id).await?;
        if phones.is_empty() || phones.len() > MAX_TEST_PHONES {
            return Err(DomainError::invalid(
                "phones",
                format!("give between 1 and {MAX_TEST_PHONES} phone numbers"),
            )
            .into());
        }
        let mut contacts = Vec::with_capacity(phones.len());
        for (i, p) in phones.iter().enumerate() {
            let field = format!("phones[{i}]");
            let phone = PhoneNumber::parse(p).map_err(|e| match e {
                DomainError::Invalid { message, .. } => DomainError::invalid(&field, message),
                other => other,
            })?;
            let contact = repo::get_contact(&*self.table, tenant, &phone)
                .await?
                .ok_or_else(|| {
                    DomainError::invalid(&field, "no contact has this phone; create it first")
                })?;
            if !contacts.iter().any(|(q, _)| *q == phone) {
                contacts.push((phone, contact.data()));
            }
        }
        let now = self.now();
        let mut test = parent.test_copy(now)?;
        self.check_references(&test).await?;
        // The hopper first, then the campaign: it is RUNNING from its first write.
        let first =
            repo::reserve_seq(&*self.table, tenant, &test.id, contacts.len() as u64).await?;
        let mut delta = stats::Delta::new();
        for (i, (phone, data)) in contacts.into_iter().enumerate() {
            let mut e = HopperEntry::new(&test, phone, data, first + i as u64);
            if repo::insert_entry(&*self.table, &mut e, now).await? {
                stats::fold(&mut delta, stats::delta(None, &e));
            }
        }
        repo::add_counters(&*self.table, tenant, &test.id, &delta).await?;
        repo::put_test_link(&*self.table, tenant, &parent.id, &test.id).await?;
        let reason = Some(format!("test of {}", parent.id));
        let from = CampaignStatus::Ready;
        let mark = save_campaign_change(&*self.table, &mut test, from, reason, now).await?;
        publish_transitions(&*self.table, &*self.bus, &mut test, mark.as_ref()).await;
        self.view(test).await
    }

    /// The test campaigns of a campaign, oldest first.
    pub async fn tests(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<Vec<CampaignView>> {
        self.load(tenant, id).await?;
        let mut out = Vec::new();
        for child in repo::test_campaign_ids(&*self.table, tenant, id).await? {
            if let Some(c) = repo::get_campaign(&*self.table, tenant, &child).await? {
                if c.status != CampaignStatus::Deleting {
                    out.push(self.view(c).await?);
                }
            }
        }
        Ok(out)
    }

    pub async fn hopper(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<HopperCounts> {
        self.load(tenant, id).await?;
        Ok(HopperCounts::from_counters(
            &repo::get_counters(&*self.table, tenant, id).await?,
        ))
    }

    pub async fn stats(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<Stats> {
        let c = self.load(tenant, id).await?;
        let counters = repo::get_counters(&*self.table, tenant, id).await?;
        Ok(Stats::from_counters(&counters).on_channel(c.channel))
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
