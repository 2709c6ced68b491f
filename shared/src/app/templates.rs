//! Provider accounts and templates (R3, R7.2): registering, editing and deleting
//! templates, the 250-per-account limit, provider statuses and what they do to the
//! campaigns sending them, synchronisation from the provider, and each account's
//! recontact template.

use super::{busy, retry_on_conflict, update_campaign, AppError, AppResult};
use crate::domain::account::{validate_waba_id, Account, NewAccount};
use crate::domain::campaign::CampaignStatus;
use crate::domain::ids::{AccountId, TenantId};
use crate::domain::inbound::TemplateUpdate;
use crate::domain::portfolio::{Portfolio, PortfolioLimit};
use crate::domain::template::{
    NewTemplate, ProviderTemplate, Template, TemplateEdit, TemplateKey, TemplateListError,
    TemplateStatus, MAX_TEMPLATES_PER_ACCOUNT,
};
use crate::domain::{DomainError, Time};
use crate::ports::{Clock, EventBus, PortError, Table, TemplateSource};
use crate::repo::{self, TemplateSettings};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

operator_service! {
    /// Provider accounts and templates (R3).
    Templates
}

/// An account with its template settings.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "acc_0190a1", "tenant": "acme", "name": "Main", "provider": "meta",
    "sender_id": "106540352242922", "token_ref": "secretsmanager:campaigns/acme/meta-token",
    "rate_limit": 80, "created_at": "2026-03-01T09:00:00Z", "waba_id": "102290129340398",
    "recontact_template": {"name": "we_miss_you", "language": "en"}
}))]
pub struct AccountView {
    #[serde(flatten)]
    pub account: Account,
    /// Meta's WhatsApp Business Account id: where templates are synchronised from.
    pub waba_id: Option<String>,
    /// The template sent when a customer's 24-hour window has closed (R3.5).
    pub recontact_template: Option<TemplateKey>,
}

impl AccountView {
    fn new(account: Account, s: Option<&TemplateSettings>) -> Self {
        AccountView {
            account,
            waba_id: s.and_then(|s| s.waba_id.clone()),
            recontact_template: s.and_then(|s| s.recontact.clone()),
        }
    }
}

/// A template, and whether it is its account's recontact template.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TemplateView {
    #[serde(flatten)]
    pub template: Template,
    /// This is the template its account sends when the 24-hour window has closed (R3.5).
    pub recontact: bool,
}

impl TemplateView {
    fn new(template: Template, s: Option<&TemplateSettings>) -> Self {
        let recontact = s
            .and_then(|s| s.recontact.as_ref())
            .is_some_and(|k| k.name == template.name && k.language == template.language);
        TemplateView {
            template,
            recontact,
        }
    }
}

fn template_id(account: &str, name: &str, language: &str) -> String {
    format!("{account}/{name}/{language}")
}

// ---- shared by the API, the synchronisation and the webhook ----

/// Pauses every RUNNING campaign that sends `t` while `t` cannot be sent (R3.2), with the
/// reason ("template spring_offer (en) is PAUSED"). Returns the ids it paused.
pub(crate) async fn stop_campaigns_using(
    table: &dyn Table,
    bus: &dyn EventBus,
    now: Time,
    t: &Template,
) -> AppResult<Vec<String>> {
    let Some(reason) = t.blocked_reason() else {
        return Ok(Vec::new());
    };
    let campaigns =
        repo::campaigns_using_template(table, &t.tenant, &t.account_id, &t.name, &t.language)
            .await?;
    let mut paused = Vec::new();
    for c in campaigns
        .into_iter()
        .filter(|c| c.status == CampaignStatus::Running)
    {
        let why = reason.clone();
        let res = update_campaign(
            table,
            bus,
            &c.tenant,
            &c.id,
            (Some(reason.clone()), now),
            move |c| c.pause(Some(why.clone()), now),
        )
        .await;
        match res {
            Ok(_) => {
                tracing::info!(campaign_id = %c.id, reason = %reason, "campaign paused: its template cannot be sent");
                paused.push(c.id);
            }
            // Paused or finished meanwhile: nothing to stop.
            Err(AppError::Domain(DomainError::Conflict(_) | DomainError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(paused)
}

/// What a status change does beyond the template: PAUSED or DISABLED stops its campaigns.
async fn after_status_change(
    table: &dyn Table,
    bus: &dyn EventBus,
    now: Time,
    t: &Template,
    from: Option<TemplateStatus>,
) -> AppResult<Vec<String>> {
    match from {
        Some(_) if t.status.stops_sending() => stop_campaigns_using(table, bus, now, t).await,
        _ => Ok(Vec::new()),
    }
}

/// Loads a template, lets `change` decide (`None`: nothing to do) and stores it; retried
/// when someone else changed it first. `None` when there is no such template or nothing
/// changed.
async fn update_template<R>(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    name: &str,
    language: &str,
    change: impl Fn(&mut Template) -> Result<Option<R>, DomainError>,
) -> AppResult<Option<(Template, R)>> {
    let change = &change;
    retry_on_conflict(|_| async move {
        let Some(mut t) = repo::get_template(table, tenant, account, name, language).await? else {
            return Ok(None);
        };
        let Some(r) = change(&mut t)? else {
            return Ok(None);
        };
        repo::save_template(table, &mut t).await?;
        Ok(Some((t, r)))
    })
    .await
    .map_err(busy(|| format!("template {name} ({language})")))
}

/// What storing a template (registered again or read from the provider) did.
#[derive(Debug, Clone, PartialEq)]
enum Upserted {
    Created(Template),
    /// Changed; with the status before when the status changed.
    Updated(Template, Option<TemplateStatus>),
    Unchanged(Template),
}

/// Stores `fresh` as new, or as the new content of the stored template of that name and
/// language (R3.4: updating one does not count twice). `count` caches how many templates
/// the account holds; a new one beyond the limit is refused.
async fn upsert_template(
    table: &dyn Table,
    fresh: Template,
    waba_id: Option<&str>,
    count: &mut Option<usize>,
    now: Time,
) -> AppResult<Upserted> {
    // How many templates the account holds, learnt once and kept whatever the outcome
    // (a sync over the limit refuses each further new template without recounting).
    let known = &std::sync::Mutex::new(*count);
    let fresh = &fresh;
    let upserted = retry_on_conflict(|_| async move {
        let stored = repo::get_template(
            table,
            &fresh.tenant,
            &fresh.account_id,
            &fresh.name,
            &fresh.language,
        )
        .await?;
        let (mut t, created, from) = match stored {
            None => {
                room_for_one_more(table, fresh, known).await?;
                (fresh.clone(), true, None)
            }
            Some(mut t) => {
                let (changed, from) = t.replace_with(fresh.clone(), now);
                if !changed {
                    return Ok(Upserted::Unchanged(t));
                }
                (t, false, from)
            }
        };
        repo::save_template(table, &mut t).await?;
        repo::put_template_owner(table, &t, waba_id).await?;
        if created {
            let mut n = known.lock().expect("not poisoned");
            *n = n.map(|n| n + 1);
            return Ok(Upserted::Created(t));
        }
        Ok(Upserted::Updated(t, from))
    })
    .await;
    *count = *known.lock().expect("not poisoned");
    upserted.map_err(busy(|| {
        format!("template {} ({})", fresh.name, fresh.language)
    }))
}

/// Refuses a new template beyond the account's limit; `known` caches how many the
/// account holds (counted once per sync).
async fn room_for_one_more(
    table: &dyn Table,
    fresh: &Template,
    known: &std::sync::Mutex<Option<usize>>,
) -> AppResult<()> {
    let cached = *known.lock().expect("not poisoned");
    let n = match cached {
        Some(n) => n,
        None => repo::list_account_templates(table, &fresh.tenant, &fresh.account_id)
            .await?
            .len(),
    };
    *known.lock().expect("not poisoned") = Some(n);
    if n >= MAX_TEMPLATES_PER_ACCOUNT {
        return Err(DomainError::Conflict(format!(
            "account {} already has {MAX_TEMPLATES_PER_ACCOUNT} templates, the most an \
             account may hold; delete one before adding {} ({})",
            fresh.account_id, fresh.name, fresh.language
        ))
        .into());
    }
    Ok(())
}

/// Applies a provider's word on a template (status or quality webhook) to every account
/// holding it (R3.2, R3.4); PAUSED or DISABLED stops the campaigns sending it. Returns how
/// many stored templates changed.
pub(crate) async fn apply_template_update(
    table: &dyn Table,
    bus: &dyn EventBus,
    now: Time,
    u: &TemplateUpdate,
) -> AppResult<usize> {
    if u.status.is_none() && u.quality.is_none() && u.category.is_none() {
        tracing::info!(template = %u.name, language = %u.language, event = %u.event, "template event with nothing to apply");
        return Ok(0);
    }
    let owners = repo::template_owners(table, &u.name, &u.language).await?;
    let mut changed = 0;
    for o in owners
        .iter()
        .filter(|o| o.matches_waba(u.waba_id.as_deref()))
    {
        let res = update_template(table, &o.tenant, &o.account_id, &u.name, &u.language, |t| {
            if let (Some(mine), Some(theirs)) = (&t.provider_id, &u.template_id) {
                if mine != theirs {
                    return Ok(None);
                }
            }
            let reason = u.status.and(u.reason.clone());
            let (did, from) = t.apply_provider_update(u.status, reason, u.quality, now);
            let recategorised = u.category.is_some_and(|c| t.recategorise(c, now));
            if recategorised {
                tracing::info!(template = %t.name, category = ?t.category, "template category changed by the provider");
            }
            let did = did || recategorised;
            Ok(did.then_some(from))
        })
        .await?;
        if let Some((t, from)) = res {
            tracing::info!(tenant = %t.tenant, account = %t.account_id, template = %t.name, language = %t.language, status = %t.status, quality = ?t.quality, "template updated by the provider");
            changed += 1;
            after_status_change(table, bus, now, &t, from).await?;
        }
    }
    if changed == 0 {
        tracing::info!(template = %u.name, language = %u.language, event = %u.event, "template event matched no stored template");
    }
    Ok(changed)
}

/// The provider refused a send because the template is PAUSED or DISABLED (R3.2, R4.7):
/// the stored template says so too, and every campaign sending it stops, not only the one
/// that hit the error.
pub(crate) async fn provider_reported_status(
    table: &dyn Table,
    bus: &dyn EventBus,
    now: Time,
    t: &Template,
    status: TemplateStatus,
    reason: &str,
) -> AppResult<Vec<String>> {
    let res = update_template(table, &t.tenant, &t.account_id, &t.name, &t.language, |t| {
        let (did, from) = t.apply_provider_update(Some(status), Some(reason.to_owned()), None, now);
        Ok(did.then_some(from))
    })
    .await?;
    match res {
        Some((t, from)) => after_status_change(table, bus, now, &t, from).await,
        None => Ok(Vec::new()),
    }
}

/// Stores a portfolio's limit over whatever was stored (the latest reading or setting
/// wins); the stored portfolio.
async fn store_portfolio(table: &dyn Table, tenant: &str, p: Portfolio) -> AppResult<Portfolio> {
    retry_on_conflict(|_| {
        let p = p.clone();
        async move {
            let version = repo::pacing::get_portfolio(table, tenant, &p.id)
                .await?
                .map_or(0, |stored| stored.version);
            let mut p = Portfolio { version, ..p };
            repo::pacing::save_portfolio(table, tenant, &mut p).await?;
            Ok(p)
        }
    })
    .await
}

/// The first of the account's numbers that another tenant owns, claiming for the
/// account's tenant those nobody owns yet: an account created now, or one stored before
/// numbers had owners, whose first send claims them.
pub(crate) async fn foreign_number(table: &dyn Table, a: &Account) -> AppResult<Option<String>> {
    for number in a.owned_numbers() {
        let owner = match repo::number_owner(table, &number).await? {
            Some(o) => o,
            None => repo::claim_number(table, a, &number).await?,
        };
        if !owner.admits(a) {
            return Ok(Some(number));
        }
    }
    Ok(None)
}

// ---- the operator's use cases ----

impl Templates {
    pub async fn create_account(
        &self,
        tenant: &TenantId,
        input: NewAccount,
    ) -> AppResult<AccountView> {
        let waba_id = input
            .waba_id
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_owned);
        let a = Account::create(tenant, input, self.now())?;
        if foreign_number(&*self.table, &a).await?.is_some() {
            return Err(DomainError::Conflict(format!(
                "sender_id {} belongs to another tenant's account",
                a.sender_id
            ))
            .into());
        }
        repo::put_account(&*self.table, &a).await?;
        let mut settings = repo::get_template_settings(&*self.table, tenant, &a.id).await?;
        if waba_id.is_some() {
            settings.waba_id = waba_id;
            repo::save_template_settings(&*self.table, &mut settings).await?;
        }
        Ok(AccountView::new(a, Some(&settings)))
    }

    async fn account(&self, tenant: &str, id: &str) -> AppResult<Account> {
        repo::get_account(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("account", id).into())
    }

    pub async fn get_account(&self, tenant: &TenantId, id: &str) -> AppResult<AccountView> {
        let a = self.account(tenant, id).await?;
        let s = repo::get_template_settings(&*self.table, tenant, id).await?;
        Ok(AccountView::new(a, Some(&s)))
    }

    /// A business portfolio's messaging limit (404 until Meta's was read by a template
    /// sync of one of its accounts, or one was set by hand).
    pub async fn get_portfolio(&self, tenant: &TenantId, id: &str) -> AppResult<Portfolio> {
        crate::domain::portfolio::validate_portfolio_id(id)
            .map_err(|_| DomainError::not_found("portfolio", id))?;
        repo::pacing::get_portfolio(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("portfolio", id).into())
    }

    /// Sets a business portfolio's messaging limit by hand: every account naming the
    /// portfolio budgets against it from the next tick on.
    pub async fn set_portfolio(
        &self,
        tenant: &TenantId,
        id: &str,
        input: PortfolioLimit,
    ) -> AppResult<Portfolio> {
        let set = Portfolio::manual(id, input, self.now())?;
        store_portfolio(&*self.table, tenant, set).await
    }

    pub async fn list_accounts(&self, tenant: &TenantId) -> AppResult<Vec<AccountView>> {
        let settings = self.settings_by_account(tenant).await?;
        Ok(repo::list_accounts(&*self.table, tenant)
            .await?
            .into_iter()
            .map(|a| {
                let s = settings.get(&a.id);
                AccountView::new(a, s)
            })
            .collect())
    }

    async fn settings_by_account(
        &self,
        tenant: &str,
    ) -> AppResult<HashMap<String, TemplateSettings>> {
        Ok(repo::list_template_settings(&*self.table, tenant)
            .await?
            .into_iter()
            .map(|s| (s.account_id.clone(), s))
            .collect())
    }

    /// Flags the account's recontact template (R3.5): it must exist and be APPROVED; it
    /// replaces any template flagged before.
    pub async fn set_recontact_template(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        key: TemplateKey,
    ) -> AppResult<AccountView> {
        let account = self.account(tenant, account_id).await?;
        let name = crate::domain::account::required("name", Some(key.name))?;
        let language = crate::domain::account::required("language", Some(key.language))?;
        let t = repo::get_template(&*self.table, tenant, account_id, &name, &language)
            .await?
            .ok_or_else(|| {
                DomainError::invalid(
                    "name",
                    format!("template {name} ({language}) does not exist for account {account_id}"),
                )
            })?;
        if let Some(why) = t.blocked_reason() {
            return Err(DomainError::Conflict(format!(
                "{why}: only an APPROVED template can be the recontact template"
            ))
            .into());
        }
        let (t, name, language) = (&*self.table, &name, &language);
        let s = retry_on_conflict(|_| async move {
            let mut s = repo::get_template_settings(t, tenant, account_id).await?;
            s.recontact = Some(TemplateKey {
                name: name.clone(),
                language: language.clone(),
            });
            repo::save_template_settings(t, &mut s).await?;
            Ok(s)
        })
        .await?;
        Ok(AccountView::new(account, Some(&s)))
    }

    /// Registers a template by hand (R3.1, R3.4). The same name and language again replace
    /// the stored content (and do not count twice against the 250). Returns whether it was
    /// new.
    pub async fn create_template(
        &self,
        tenant: &TenantId,
        input: NewTemplate,
    ) -> AppResult<(TemplateView, bool)> {
        let now = self.now();
        let t = Template::create(tenant, input, now)?;
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
        let settings = repo::get_template_settings(&*self.table, tenant, &t.account_id).await?;
        let done =
            upsert_template(&*self.table, t, settings.waba_id.as_deref(), &mut None, now).await?;
        let (t, created) = match done {
            Upserted::Created(t) => (t, true),
            Upserted::Unchanged(t) => (t, false),
            Upserted::Updated(t, from) => {
                after_status_change(&*self.table, &*self.bus, now, &t, from).await?;
                (t, false)
            }
        };
        Ok((TemplateView::new(t, Some(&settings)), created))
    }

    /// The tenant's templates, or one account's.
    pub async fn list_templates(
        &self,
        tenant: &TenantId,
        account_id: Option<&str>,
    ) -> AppResult<Vec<TemplateView>> {
        let templates = match account_id {
            Some(a) => repo::list_account_templates(&*self.table, tenant, a).await?,
            None => repo::list_templates(&*self.table, tenant).await?,
        };
        let settings = self.settings_by_account(tenant).await?;
        Ok(templates
            .into_iter()
            .map(|t| {
                let s = settings.get(&t.account_id);
                TemplateView::new(t, s)
            })
            .collect())
    }

    async fn template(
        &self,
        tenant: &str,
        account_id: &str,
        name: &str,
        language: &str,
    ) -> AppResult<Template> {
        repo::get_template(&*self.table, tenant, account_id, name, language)
            .await?
            .ok_or_else(|| {
                DomainError::not_found("template", template_id(account_id, name, language)).into()
            })
    }

    pub async fn get_template(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        name: &str,
        language: &str,
    ) -> AppResult<TemplateView> {
        let t = self.template(tenant, account_id, name, language).await?;
        let s = repo::get_template_settings(&*self.table, tenant, account_id).await?;
        Ok(TemplateView::new(t, Some(&s)))
    }

    /// Edits a template (see [`TemplateEdit`]). Its content cannot change under a RUNNING
    /// campaign (R1.4); a status that stops sending pauses the campaigns using it (R3.2).
    pub async fn edit_template(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        name: &str,
        language: &str,
        edit: TemplateEdit,
    ) -> AppResult<TemplateView> {
        let now = self.now();
        let mut probe = self.template(tenant, account_id, name, language).await?;
        if probe.edit(edit.clone(), now)?.content_changed {
            let running: Vec<String> =
                repo::campaigns_using_template(&*self.table, tenant, account_id, name, language)
                    .await?
                    .into_iter()
                    .filter(|c| c.status == CampaignStatus::Running)
                    .map(|c| c.id)
                    .collect();
            if !running.is_empty() {
                return Err(DomainError::Conflict(format!(
                    "template {name} ({language}) is sent by running campaign(s) {}: pause them \
                     before changing its content",
                    running.join(", ")
                ))
                .into());
            }
        }
        let res = update_template(&*self.table, tenant, account_id, name, language, |t| {
            let before = t.clone();
            let done = t.edit(edit.clone(), now)?;
            Ok(Some((done.status_from, *t != before)))
        })
        .await?;
        let Some((t, (from, _))) = res else {
            return Err(DomainError::not_found(
                "template",
                template_id(account_id, name, language),
            )
            .into());
        };
        after_status_change(&*self.table, &*self.bus, now, &t, from).await?;
        let s = repo::get_template_settings(&*self.table, tenant, account_id).await?;
        Ok(TemplateView::new(t, Some(&s)))
    }

    /// Deletes a template no unfinished campaign uses (409 otherwise). When it was the
    /// account's recontact template, the account has none afterwards.
    pub async fn delete_template(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        name: &str,
        language: &str,
    ) -> AppResult<()> {
        let t = self.template(tenant, account_id, name, language).await?;
        let users: Vec<String> =
            repo::campaigns_using_template(&*self.table, tenant, account_id, name, language)
                .await?
                .into_iter()
                .filter(|c| {
                    !matches!(
                        c.status,
                        CampaignStatus::Completed | CampaignStatus::Cancelled
                    )
                })
                .map(|c| format!("{} ({})", c.id, c.status))
                .collect();
        if !users.is_empty() {
            return Err(DomainError::Conflict(format!(
                "template {name} ({language}) is used by campaign(s) {}; it can be deleted once \
                 they are completed or cancelled",
                users.join(", ")
            ))
            .into());
        }
        let table = &*self.table;
        let unset = retry_on_conflict(|_| async move {
            let mut s = repo::get_template_settings(table, tenant, account_id).await?;
            if !s
                .recontact
                .as_ref()
                .is_some_and(|k| k.name == name && k.language == language)
            {
                return Ok(());
            }
            s.recontact = None;
            Ok(repo::save_template_settings(table, &mut s).await?)
        })
        .await;
        match unset {
            Err(e) if !e.is_write_conflict() => return Err(e),
            _ => {}
        }
        repo::delete_template(&*self.table, &t).await?;
        Ok(())
    }
}

// ---- synchronisation from the provider (R3.4) ----

/// Reads an account's templates from the provider and stores them.
pub struct TemplateSync {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub source: Arc<dyn TemplateSource>,
}

/// A provider template list is read at most this many pages deep.
pub const MAX_SYNC_PAGES: u32 = 100;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({"waba_id": "102290129340398"}))]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The WhatsApp Business Account to read; stored on the account. Optional when the
    /// account already has one.
    #[serde(default)]
    pub waba_id: Option<String>,
}

/// A provider template that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SkippedTemplate {
    pub name: String,
    pub language: String,
    pub reason: String,
}

/// What a synchronisation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "waba_id": "102290129340398", "pages": 2, "received": 3, "created": 2, "updated": 1,
    "unchanged": 0, "skipped": [], "paused_campaigns": ["cmp_0190a7"], "messaging_limit_tier": "TIER_2K"
}))]
pub struct SyncReport {
    pub waba_id: String,
    /// Pages read from the provider.
    pub pages: u32,
    /// Templates the provider listed.
    pub received: u32,
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub skipped: Vec<SkippedTemplate>,
    /// Campaigns paused because a template they send is now PAUSED or DISABLED.
    pub paused_campaigns: Vec<String>,
    /// The messaging limit tier Meta reports for the account's number (`TIER_2K`), stored
    /// as its business portfolio's limit; none when the account names no portfolio or the
    /// read failed (the sync itself stands).
    pub messaging_limit_tier: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    App(#[from] AppError),
    /// The provider refused or failed to list the templates.
    #[error("{0}")]
    Provider(TemplateListError),
}

impl From<DomainError> for SyncError {
    fn from(e: DomainError) -> Self {
        SyncError::App(e.into())
    }
}

impl From<PortError> for SyncError {
    fn from(e: PortError) -> Self {
        SyncError::App(e.into())
    }
}

impl TemplateSync {
    /// Reads every page of the account's template list and upserts each template (body,
    /// header, buttons, status, quality, category). Templates only we know are left alone.
    pub async fn sync(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        req: SyncRequest,
    ) -> Result<SyncReport, SyncError> {
        let table = &*self.table;
        let account = repo::get_account(table, tenant, account_id)
            .await?
            .ok_or_else(|| DomainError::not_found("account", account_id.as_str()))?;
        if !account.provider.lists_meta_templates() {
            return Err(DomainError::invalid(
                "account_id",
                "an aws_social account holds no Meta token to read Meta's template list: register its templates with POST /templates; their status changes arrive with its events",
            )
            .into());
        }
        let waba_id = self
            .resolve_waba_id(tenant, account_id, req.waba_id)
            .await?;

        let mut report = SyncReport {
            waba_id: waba_id.clone(),
            ..Default::default()
        };
        let mut count = None;
        let mut after: Option<String> = None;
        loop {
            if report.pages >= MAX_SYNC_PAGES {
                return Err(SyncError::Provider(TemplateListError {
                    code: None,
                    reason: format!("the template list goes on past {MAX_SYNC_PAGES} pages"),
                }));
            }
            let page = self
                .source
                .list_templates(&account, &waba_id, after.as_deref())
                .await
                .map_err(SyncError::Provider)?;
            report.pages += 1;
            for p in &page.templates {
                self.sync_one(tenant, account_id, &waba_id, p, &mut count, &mut report)
                    .await?;
            }
            match page.after {
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => break,
            }
        }
        report.messaging_limit_tier = self.sync_portfolio_limit(tenant, &account).await;
        tracing::info!(tenant = %tenant, account = %account_id, waba = %waba_id, pages = report.pages,
            created = report.created, updated = report.updated, skipped = report.skipped.len(),
            "templates synchronised");
        Ok(report)
    }

    /// Reads the messaging limit tier of the account's number and stores it as its business
    /// portfolio's limit (Meta counts it per portfolio since October 2025). A failure is
    /// logged: the limit stays as it was.
    async fn sync_portfolio_limit(&self, tenant: &str, account: &Account) -> Option<String> {
        let portfolio = account.portfolio_id.as_deref()?;
        let tier = match self.source.messaging_limit_tier(account).await {
            Ok(tier) => tier?,
            Err(e) => {
                tracing::warn!(account = %account.id, reason = %e.reason, "messaging limit not read; kept as it was");
                return None;
            }
        };
        let now = self.clock.now();
        let Some(read) = Portfolio::from_meta(portfolio, &tier, now) else {
            tracing::warn!(account = %account.id, tier = %tier, "unknown messaging limit tier; kept as it was");
            return None;
        };
        match store_portfolio(&*self.table, tenant, read).await {
            Ok(_) => Some(tier),
            Err(e) => {
                tracing::warn!(account = %account.id, error = %e, "messaging limit not stored");
                None
            }
        }
    }

    /// The WABA id to read: the one asked (stored when new) or the account's; 422 if neither.
    async fn resolve_waba_id(
        &self,
        tenant: &str,
        account_id: &str,
        asked: Option<String>,
    ) -> Result<String, SyncError> {
        let table = &*self.table;
        let asked = asked.map(|w| w.trim().to_owned()).filter(|w| !w.is_empty());
        if let Some(w) = &asked {
            validate_waba_id(w)?;
        }
        let mut settings = repo::get_template_settings(table, tenant, account_id).await?;
        let waba_id = match (asked, &settings.waba_id) {
            (Some(w), Some(known)) if &w == known => w,
            (Some(w), _) => {
                settings.waba_id = Some(w.clone());
                repo::save_template_settings(table, &mut settings).await?;
                w
            }
            (None, Some(known)) => known.clone(),
            (None, None) => {
                return Err(DomainError::invalid(
                    "waba_id",
                    format!(
                        "account {account_id} has no WhatsApp Business Account id: give waba_id"
                    ),
                )
                .into())
            }
        };
        Ok(waba_id)
    }

    /// Stores one provider template and counts in `report` what became of it.
    async fn sync_one(
        &self,
        tenant: &str,
        account_id: &str,
        waba_id: &str,
        p: &ProviderTemplate,
        count: &mut Option<usize>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let table = &*self.table;
        report.received += 1;
        let now = self.clock.now();
        let skip = |reason: String| SkippedTemplate {
            name: p.name.clone(),
            language: p.language.clone(),
            reason,
        };
        let fresh = match Template::from_provider(tenant, account_id, p, now) {
            Ok(t) => t,
            Err(reason) => {
                report.skipped.push(skip(reason));
                return Ok(());
            }
        };
        match upsert_template(table, fresh, Some(waba_id), count, now).await {
            Ok(Upserted::Created(_)) => report.created += 1,
            Ok(Upserted::Unchanged(_)) => report.unchanged += 1,
            Ok(Upserted::Updated(t, from)) => {
                report.updated += 1;
                let paused = after_status_change(table, &*self.bus, now, &t, from).await?;
                report.paused_campaigns.extend(paused);
            }
            Err(AppError::Domain(DomainError::Conflict(m))) => report.skipped.push(skip(m)),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}
