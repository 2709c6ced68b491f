//! Use cases: each loads state through the ports, asks the domain what to do, stores the
//! answer and publishes what happened. One service per function keeps each Lambda's
//! dependencies to what it uses; the operator API's use cases are one service per
//! aggregate (campaigns, audience, templates, block lists, commands, reports, views),
//! gathered in [`Operator`].

/// A service of the operator API: a name for the [`OperatorPorts`] it runs on, so each
/// aggregate's use cases are their own type while sharing the ports' helpers.
macro_rules! operator_service {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(pub crate::app::OperatorPorts);

        impl std::ops::Deref for $name {
            type Target = crate::app::OperatorPorts;
            fn deref(&self) -> &crate::app::OperatorPorts {
                &self.0
            }
        }
    };
}

pub mod audience;
pub mod blocklists;
pub mod campaigns;
pub mod commands;
pub mod conversations;
pub mod dispatch;
pub mod hopper_views;
pub mod import;
pub mod inbox;
pub mod operations;
pub mod reach;
pub mod report_walks;
pub mod reports;
pub mod send;
pub mod sweep;
pub mod templates;
pub mod voice;

use crate::domain::campaign::{Campaign, CampaignStatus};
use crate::domain::events::{CampaignStateChanged, DomainEvent};
use crate::domain::{DomainError, Time};
use crate::ports::{Clock, Scheduler};
use crate::ports::{EventBus, PortError, Table};
use crate::repo;
use std::sync::Arc;
use thiserror::Error;

/// The ports the operator's services run on.
#[derive(Clone)]
pub struct OperatorPorts {
    pub table: Arc<dyn Table>,
    pub scheduler: Arc<dyn Scheduler>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

impl OperatorPorts {
    pub(crate) fn now(&self) -> crate::domain::Time {
        self.clock.now()
    }

    /// The campaign as operators see it: one being deleted is already gone.
    pub async fn load(&self, tenant: &str, id: &str) -> AppResult<Campaign> {
        load_visible(&*self.table, tenant, id).await
    }
}

/// A campaign that is not being deleted, or 404.
pub(crate) async fn load_visible(table: &dyn Table, tenant: &str, id: &str) -> AppResult<Campaign> {
    match repo::get_campaign(table, tenant, id).await? {
        Some(c) if c.status != CampaignStatus::Deleting => Ok(c),
        _ => Err(DomainError::not_found("campaign", id).into()),
    }
}

/// The operator API's use cases, one service per aggregate, on one set of ports.
#[derive(Clone)]
pub struct Operator {
    pub campaigns: Arc<campaigns::Campaigns>,
    pub audience: Arc<audience::Audience>,
    pub templates: Arc<templates::Templates>,
    pub block_lists: Arc<blocklists::BlockLists>,
    pub commands: Arc<commands::Commands>,
    pub reports: Arc<reports::Reports>,
    pub views: Arc<hopper_views::Views>,
    /// The ports the services run on.
    pub ports: OperatorPorts,
}

impl Operator {
    pub fn new(ports: OperatorPorts) -> Self {
        Operator {
            campaigns: Arc::new(campaigns::Campaigns(ports.clone())),
            audience: Arc::new(audience::Audience(ports.clone())),
            templates: Arc::new(templates::Templates(ports.clone())),
            block_lists: Arc::new(blocklists::BlockLists(ports.clone())),
            commands: Arc::new(commands::Commands {
                table: ports.table.clone(),
                bus: ports.bus.clone(),
                clock: ports.clock.clone(),
                attach_inline: commands::ATTACH_INLINE,
            }),
            reports: Arc::new(reports::Reports {
                ports: ports.clone(),
                inline: commands::ATTACH_INLINE,
            }),
            views: Arc::new(hopper_views::Views(ports.clone())),
            ports,
        }
    }
}

#[derive(Debug, Error, Clone)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Port(#[from] PortError),
}

pub type AppResult<T> = Result<T, AppError>;

/// How often an optimistic update is retried when someone else changed the item first.
pub(crate) const CONFLICT_RETRIES: usize = 8;

impl AppError {
    /// Someone else wrote the item first (a versioned put's condition failed).
    pub fn is_write_conflict(&self) -> bool {
        matches!(self, AppError::Port(PortError::ConditionFailed))
    }
}

/// Runs `attempt` again while it fails because someone else wrote first (a versioned
/// put's condition failed), at most [`CONFLICT_RETRIES`] times in all; then the last
/// conflict is the answer. Each attempt reloads what it changes (`attempt` gets its
/// number, 0 first, so one can start from an item already in hand), asks the domain
/// again and stores conditionally, so a retry never applies a stale decision. The one
/// optimistic-concurrency loop of the use cases.
pub(crate) async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let mut n = 0;
    loop {
        match attempt(n).await {
            Err(e) if e.is_write_conflict() && n + 1 < CONFLICT_RETRIES => n += 1,
            other => return other,
        }
    }
}

/// What a background walk (the sweeper's purge, a reset or retry) may still do in one
/// run: until `deadline`, at most `items_left` items, read `page` at a time.
pub(crate) struct WorkBudget {
    pub(crate) deadline: std::time::Instant,
    pub(crate) items_left: usize,
    pub(crate) page: u32,
}

impl WorkBudget {
    pub(crate) fn spent(&self) -> bool {
        self.items_left == 0 || std::time::Instant::now() >= self.deadline
    }

    /// The next page's size: `page`, or what is left if that is less (at least 1).
    pub(crate) fn page(&self) -> u32 {
        self.page
            .min(self.items_left.min(u32::MAX as usize) as u32)
            .max(1)
    }

    pub(crate) fn take(&mut self, n: usize) {
        self.items_left = self.items_left.saturating_sub(n);
    }
}

/// The 409 an operator sees when every retry met someone else's write to `what`.
pub(crate) fn busy(what: impl FnOnce() -> String) -> impl FnOnce(AppError) -> AppError {
    move |e| {
        if e.is_write_conflict() {
            DomainError::Conflict(format!(
                "{} is being changed by someone else; try again",
                what()
            ))
            .into()
        } else {
            e
        }
    }
}

/// Loads a campaign, lets `change` decide, and stores the result; retried when another
/// writer got there first. A status change is stored with it and then published.
pub(crate) async fn update_campaign<R>(
    table: &dyn Table,
    bus: &dyn EventBus,
    tenant: &str,
    id: &str,
    (reason, now): (Option<String>, Time),
    change: impl Fn(&mut Campaign) -> Result<R, DomainError>,
) -> AppResult<(Campaign, R)> {
    let (reason, change) = (&reason, &change);
    let (mut c, r, mark) = retry_on_conflict(|_| async move {
        let mut c = repo::get_campaign(table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("campaign", id))?;
        let from = c.status;
        let r = change(&mut c)?;
        let mark = save_campaign_change(table, &mut c, from, reason.clone(), now).await?;
        Ok((c, r, mark))
    })
    .await
    .map_err(busy(|| format!("campaign {id}")))?;
    publish_transitions(table, bus, &mut c, mark.as_ref()).await;
    Ok((c, r))
}

/// Stores `c` after a change from status `from`: a status change goes into the
/// campaign's outbox, written with it, after a mark that lets the sweeper find it.
pub(crate) async fn save_campaign_change(
    table: &dyn Table,
    c: &mut Campaign,
    from: CampaignStatus,
    reason: Option<String>,
    now: Time,
) -> AppResult<Option<repo::outbox::CampaignMark>> {
    let mark = if c.note_transition(from, reason) {
        Some(repo::outbox::mark_campaign(table, c, now).await?)
    } else {
        None
    };
    repo::save_campaign(table, c).await?;
    Ok(mark)
}

/// The events of the status changes `c` holds unpublished, oldest first.
pub(crate) fn transition_events(c: &Campaign) -> Vec<DomainEvent> {
    c.unpublished
        .iter()
        .map(|t| DomainEvent::CampaignStateChanged(CampaignStateChanged::of(c, t)))
        .collect()
}

/// Publishes the campaign's stored status changes and empties its outbox, then removes
/// `mark`. False when the bus, the emptying or the removal failed: what is stored stays,
/// and the sweeper publishes it later. Delivery is at least once: an outbox that could
/// not be emptied is published again.
pub(crate) async fn publish_transitions(
    table: &dyn Table,
    bus: &dyn EventBus,
    c: &mut Campaign,
    mark: Option<&repo::outbox::CampaignMark>,
) -> bool {
    if !c.unpublished.is_empty() {
        if let Err(e) = bus.publish(&transition_events(c)).await {
            tracing::warn!(campaign_id = %c.id, error = %e, "publishing campaign events failed; the campaign's outbox keeps them");
            return false;
        }
        if let Err(e) = repo::clear_unpublished(table, c).await {
            tracing::info!(campaign_id = %c.id, error = %e, "campaign outbox not emptied; its events will be published again");
            return false;
        }
    }
    if let Some(m) = mark {
        if let Err(e) = repo::outbox::unmark_campaign(table, m).await {
            tracing::info!(campaign_id = %c.id, error = %e, "campaign outbox mark not removed; the sweeper will");
            return false;
        }
    }
    true
}

/// Every block list a campaign attaches must exist for the tenant (and not be being
/// deleted); the error names the offending `block_lists[i]`.
pub(crate) async fn check_exist(
    table: &dyn Table,
    tenant: &str,
    lists: &[String],
) -> AppResult<()> {
    for (i, id) in lists.iter().enumerate() {
        let found = repo::blocklists::get_block_list(table, tenant, id).await?;
        if found.is_none_or(|l| l.deleting) {
            return Err(DomainError::invalid(
                format!("block_lists[{i}]"),
                format!("block list '{id}' does not exist"),
            )
            .into());
        }
    }
    Ok(())
}

/// Publishes an outbox item's events and marks it published; on a bus failure it stays
/// pending and the sweeper publishes it later ([`sweep::SweepService`]), so a bus outage
/// delays events and loses none. Delivery is at least once: a failure to mark it after
/// publishing publishes it again.
pub(crate) async fn publish_from_outbox(
    table: &dyn Table,
    bus: &dyn EventBus,
    o: &crate::repo::outbox::Outbox,
) -> bool {
    if !o.events.is_empty() {
        if let Err(e) = bus.publish(&o.events).await {
            tracing::warn!(error = %e, count = o.events.len(), "publishing events failed; the outbox keeps them");
            return false;
        }
    }
    if let Err(e) = crate::repo::outbox::mark_published(table, o).await {
        tracing::warn!(error = %e, "outbox item not marked published; it will be published again");
        return false;
    }
    true
}
