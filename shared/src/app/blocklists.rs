//! Block lists and the tenant's opt-out list (R4.3): what operators do over the API.
//! The sender's check reads the same items through `repo::blocklists::blocked_by` and
//! `repo::blocklists::is_opted_out`.
//!
//! **Deleting a block list** marks it deleting (gone for every reader at once), removes
//! its numbers a page at a time and then the list itself. A list holding 100,000 numbers
//! may take longer than one request may run: the delete stops after a time budget and
//! answers "in progress"; calling it again continues where the table says it stopped. A
//! list attached to a campaign that may still send (DRAFT, READY, SCHEDULED, RUNNING,
//! PAUSED) cannot be deleted: detach it first, so no campaign silently loses its blocks.

use super::campaigns::PAGE;
use super::{busy, retry_on_conflict, AppResult};
use crate::domain::blocklist::{
    check_id, parse_number, BlockList, BlockedNumber, MarketingPreference, NewBlockList, NewOptOut,
    OptOut, MAX_NUMBERS_PER_REQUEST,
};
use crate::domain::campaign::CampaignStatus;
use crate::domain::ids::TenantId;
use crate::domain::DomainError;
use crate::repo;
use crate::repo::blocklists as store;
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

operator_service! {
    /// Block lists and the tenant's opt-out list (R4.2).
    BlockLists
}

/// How long one `DELETE /block-lists/{id}` removes numbers before answering "in progress"
/// (API Gateway waits 30 s at most).
pub const DELETE_TIME_BUDGET: Duration = Duration::from_secs(10);
/// Numbers removed per page while deleting a list.
pub const DELETE_PAGE: u32 = 1000;

/// What `POST /block-lists/{id}/numbers` did. Numbers that do not parse are reported one
/// by one and the others are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"added": 2, "already_present": 1, "errors": [
    {"field": "phones[3]", "input": "+91 98x", "message": "'+91 98x' contains 'x'; use digits, spaces, dashes and a leading '+'"}]}))]
pub struct NumbersAdded {
    /// Numbers newly on the list.
    pub added: usize,
    /// Numbers that were on it already (or given twice).
    pub already_present: usize,
    /// Inputs that are not phone numbers, by position.
    pub errors: Vec<NumberError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NumberError {
    /// `phones[i]`.
    pub field: String,
    /// What was given.
    pub input: String,
    pub message: String,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockListDeletion {
    /// The list and all its numbers are gone.
    Deleted,
    /// The time budget ran out: `removed` numbers went in this call, more remain. The
    /// list is already gone for every reader; delete again to continue.
    InProgress { removed: usize },
}

fn not_found(id: &str) -> DomainError {
    DomainError::not_found("block list", id)
}

impl BlockLists {
    pub async fn create_block_list(
        &self,
        tenant: &TenantId,
        input: NewBlockList,
    ) -> AppResult<BlockList> {
        let mut l = BlockList::create(tenant, input, self.now())?;
        store::save_block_list(&*self.table, &mut l).await?;
        Ok(l)
    }

    /// The block list as operators see it: one being deleted is already gone.
    pub async fn get_block_list(&self, tenant: &TenantId, id: &str) -> AppResult<BlockList> {
        check_id("id", id).map_err(|_| not_found(id))?;
        match store::get_block_list(&*self.table, tenant, id).await? {
            Some(l) if !l.deleting => Ok(l),
            _ => Err(not_found(id).into()),
        }
    }

    /// One page of the tenant's block lists, oldest first.
    pub async fn list_block_lists(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<BlockList>, Option<String>)> {
        let (lists, next) =
            store::block_lists_page(&*self.table, tenant, limit.clamp(1, 100), cursor).await?;
        Ok((lists.into_iter().filter(|l| !l.deleting).collect(), next))
    }

    /// Deletes a block list and its numbers within [`DELETE_TIME_BUDGET`].
    pub async fn delete_block_list(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> AppResult<BlockListDeletion> {
        self.delete_block_list_within(tenant, id, DELETE_TIME_BUDGET, DELETE_PAGE)
            .await
    }

    /// Deletes a block list: marks it deleting, removes its numbers `page` at a time
    /// until they are gone or `budget` has passed (at least one page per call), then the
    /// list. Refused (409) while a campaign that may still send attaches it.
    pub async fn delete_block_list_within(
        &self,
        tenant: &TenantId,
        id: &str,
        budget: Duration,
        page: u32,
    ) -> AppResult<BlockListDeletion> {
        let started = Instant::now();
        check_id("id", id).map_err(|_| not_found(id))?;
        retry_on_conflict(|_| async move {
            let Some(mut l) = store::get_block_list(&*self.table, tenant, id).await? else {
                return Err(not_found(id).into());
            };
            if l.deleting {
                return Ok(());
            }
            self.refuse_if_attached(tenant, id).await?;
            l.deleting = true;
            Ok(store::save_block_list(&*self.table, &mut l).await?)
        })
        .await
        .map_err(busy(|| format!("block list {id}")))?;
        let mut removed = 0;
        loop {
            let n = store::delete_blocked_page(&*self.table, tenant, id, page.max(1)).await?;
            if n == 0 {
                break;
            }
            removed += n;
            if started.elapsed() >= budget {
                tracing::info!(
                    tenant = %tenant,
                    block_list = id,
                    removed,
                    "block list delete continues later"
                );
                return Ok(BlockListDeletion::InProgress { removed });
            }
        }
        store::delete_block_list_item(&*self.table, tenant, id).await?;
        tracing::info!(tenant = %tenant, block_list = id, removed, "block list deleted");
        Ok(BlockListDeletion::Deleted)
    }

    /// 409 when a campaign that may still send attaches the list.
    async fn refuse_if_attached(&self, tenant: &str, id: &str) -> AppResult<()> {
        let mut after: Option<String> = None;
        loop {
            let page = repo::campaigns_after(&*self.table, tenant, after.as_deref(), PAGE).await?;
            let holder = page.campaigns.iter().find(|c| {
                matches!(
                    c.status,
                    CampaignStatus::Draft
                        | CampaignStatus::Ready
                        | CampaignStatus::Scheduled
                        | CampaignStatus::Running
                        | CampaignStatus::Paused
                ) && c.block_lists.iter().any(|l| l == id)
            });
            if let Some(c) = holder {
                return Err(DomainError::Conflict(format!(
                    "block list {id} is attached to campaign {} ({}): detach it first",
                    c.id, c.status
                ))
                .into());
            }
            if !page.more {
                return Ok(());
            }
            after = page.last;
        }
    }

    /// Adds up to [`MAX_NUMBERS_PER_REQUEST`] numbers to a block list. Any number that
    /// parses to digits is accepted (short codes too); the others are reported by
    /// position and the rest added.
    pub async fn add_blocked_numbers(
        &self,
        tenant: &TenantId,
        id: &str,
        phones: Vec<String>,
    ) -> AppResult<NumbersAdded> {
        if phones.is_empty() {
            return Err(DomainError::invalid("phones", "give at least one number").into());
        }
        if phones.len() > MAX_NUMBERS_PER_REQUEST {
            return Err(DomainError::invalid(
                "phones",
                format!(
                    "at most {MAX_NUMBERS_PER_REQUEST} numbers per request ({} given); send the rest in further requests",
                    phones.len()
                ),
            )
            .into());
        }
        self.get_block_list(tenant, id).await?;
        let now = self.now();
        let mut seen = HashSet::new();
        let mut numbers = Vec::with_capacity(phones.len());
        let mut out = NumbersAdded {
            added: 0,
            already_present: 0,
            errors: Vec::new(),
        };
        for (i, raw) in phones.into_iter().enumerate() {
            let field = format!("phones[{i}]");
            match parse_number(&raw, &field) {
                Ok(phone) if seen.insert(phone.clone()) => numbers.push(BlockedNumber {
                    phone,
                    added_at: now,
                }),
                Ok(_) => out.already_present += 1,
                Err(DomainError::Invalid { field, message }) => out.errors.push(NumberError {
                    field,
                    input: raw,
                    message,
                }),
                Err(e) => return Err(e.into()),
            }
        }
        let added = store::put_blocked_numbers(&*self.table, tenant, id, &numbers).await?;
        for new in added {
            if new {
                out.added += 1;
            } else {
                out.already_present += 1;
            }
        }
        Ok(out)
    }

    /// The number as the block list holds it, or 404.
    pub async fn get_blocked_number(
        &self,
        tenant: &TenantId,
        id: &str,
        phone: &str,
    ) -> AppResult<BlockedNumber> {
        self.get_block_list(tenant, id).await?;
        let p = parse_number(phone, "phone")?;
        store::get_blocked_number(&*self.table, tenant, id, &p)
            .await?
            .ok_or_else(|| DomainError::not_found("blocked number", p.masked()).into())
    }

    /// Takes a number off a block list; 404 when it is not on it.
    pub async fn remove_blocked_number(
        &self,
        tenant: &TenantId,
        id: &str,
        phone: &str,
    ) -> AppResult<()> {
        self.get_blocked_number(tenant, id, phone).await?;
        let p = parse_number(phone, "phone")?;
        Ok(store::delete_blocked_number(&*self.table, tenant, id, &p).await?)
    }

    /// One page of a block list's numbers, in phone order.
    pub async fn list_blocked_numbers(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<BlockedNumber>, Option<String>)> {
        self.get_block_list(tenant, id).await?;
        Ok(store::blocked_numbers(&*self.table, tenant, id, limit.clamp(1, 1000), cursor).await?)
    }

    // ---- opt-outs ----

    /// Puts a contact on the tenant's opt-out list. Returns the record and whether this
    /// call added it (an opt-out already there keeps its first time, source and note).
    pub async fn add_opt_out(
        &self,
        tenant: &TenantId,
        input: NewOptOut,
    ) -> AppResult<(OptOut, bool)> {
        let rec = OptOut::via_api(input, self.now())?;
        if store::put_opt_out_new(&*self.table, tenant, &rec).await? {
            tracing::info!(tenant = %tenant, phone = %rec.phone.masked(), "opted out via the API");
            return Ok((rec, true));
        }
        let stored = store::get_opt_out(&*self.table, tenant, &rec.phone).await?;
        Ok((stored.unwrap_or(rec), false))
    }

    pub async fn get_opt_out(&self, tenant: &TenantId, phone: &str) -> AppResult<OptOut> {
        let p = parse_number(phone, "phone")?;
        store::get_opt_out(&*self.table, tenant, &p)
            .await?
            .ok_or_else(|| DomainError::not_found("opt-out", p.masked()).into())
    }

    /// Takes a contact off the opt-out list (campaigns may send to it again); 404 when it
    /// is not on it.
    pub async fn remove_opt_out(&self, tenant: &TenantId, phone: &str) -> AppResult<()> {
        let p = parse_number(phone, "phone")?;
        if !store::is_opted_out(&*self.table, tenant, &p).await? {
            return Err(DomainError::not_found("opt-out", p.masked()).into());
        }
        store::delete_opt_out(&*self.table, tenant, &p).await?;
        tracing::info!(tenant = %tenant, phone = %p.masked(), "opt-out removed via the API");
        Ok(())
    }

    /// One page of the tenant's opt-outs, in phone order.
    pub async fn list_opt_outs(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<OptOut>, Option<String>)> {
        Ok(store::opt_outs(&*self.table, tenant, limit.clamp(1, 1000), cursor).await?)
    }
}

/// Records a contact's reported choice about the tenant's marketing messages (Meta 131050,
/// a `user_preferences` stop or resume) unless a later one is stored; returns whether it
/// changed anything. Replays and reports that arrive out of order leave the latest choice.
pub(crate) async fn note_marketing_choice(
    table: &dyn crate::ports::Table,
    tenant: &str,
    choice: &MarketingPreference,
) -> AppResult<bool> {
    retry_on_conflict(|_| async move {
        let stored = store::get_marketing_preference(table, tenant, &choice.phone).await?;
        if !choice.replaces(stored.as_ref()) {
            return Ok(false);
        }
        let mut rec = MarketingPreference {
            version: stored.as_ref().map_or(0, |s| s.version),
            ..choice.clone()
        };
        store::save_marketing_preference(table, tenant, &mut rec).await?;
        tracing::info!(phone = %choice.phone.masked(), stopped = choice.stopped, source = %choice.source, "marketing choice recorded");
        Ok(true)
    })
    .await
}
