//! Operations on a campaign's hopper (R4.9: reset, retry, expiry; attaches and report
//! walks) and the rules that refuse a command because of the hopper or of an operation
//! still running. The commands and the campaign's `actions` (what the console offers)
//! judge with these same functions.

use super::campaign::{Campaign, CampaignAction};
use super::hopper::EntryState;
use super::{DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// What an operation does to the hopper (R4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Reset list: every entry back to FRESH (SENDING ones are in flight and left alone).
    Reset,
    /// Retry campaign: RETRY entries back to FRESH; permanent failures never.
    Retry,
    /// The end date passed: FRESH entries become SKIPPED "campaign ended".
    Expire,
    /// Attach a list or a segment: its contacts go into the hopper as FRESH, a page at a
    /// time (more than one request's time allows).
    Attach,
    /// Recount the statistics from the entries and repair the counters (R6.2): a
    /// campaign too large to count within its request. Reads the hopper, changes no entry.
    Recount,
    /// The cost estimate (R6.4) of a campaign too large to price within its request.
    /// Reads the hopper, changes no entry.
    Estimate,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Reset => "reset",
            OperationKind::Retry => "retry",
            OperationKind::Expire => "expire",
            OperationKind::Attach => "attach",
            OperationKind::Recount => "recount",
            OperationKind::Estimate => "estimate",
        }
    }

    /// A report's walk: it reads the hopper and changes no entry, so it neither holds the
    /// campaign's completion nor refuses another command (which replaces it).
    pub fn is_report(self) -> bool {
        matches!(self, OperationKind::Recount | OperationKind::Estimate)
    }
}

/// A retry needs RETRY entries to send again (409 without).
pub fn retry_needs_entries(id: &str, counters: &BTreeMap<String, i64>) -> Result<(), DomainError> {
    if counters
        .get(EntryState::Retry.as_str())
        .copied()
        .unwrap_or(0)
        <= 0
    {
        return Err(DomainError::Conflict(format!(
            "campaign {id} has no RETRY entries to send again"
        )));
    }
    Ok(())
}

/// A campaign launches with contacts in its hopper, or with an attach still running in
/// the background (it sends what is attached; the sweeper does not complete it before the
/// attach is done).
pub fn launch_needs_contacts(
    id: &str,
    counters: &BTreeMap<String, i64>,
    attaching: bool,
) -> Result<(), DomainError> {
    if counters.get("target").copied().unwrap_or(0) == 0 && !attaching {
        return Err(DomainError::Conflict(format!(
            "campaign {id} has no contacts: attach a list first"
        )));
    }
    Ok(())
}

/// What an operation still running (not a report) refuses to a new request of `kind`;
/// `None` when the request restarts or replaces it.
pub fn refused_by_running(
    running: OperationKind,
    kind: OperationKind,
    id: &str,
) -> Option<DomainError> {
    match (running, kind) {
        (OperationKind::Expire, _) => Some(DomainError::Conflict(format!(
            "cannot {} campaign {id}: its end date has passed and its unsent entries are expiring",
            kind.as_str()
        ))),
        (OperationKind::Attach, _) => Some(DomainError::Conflict(format!(
            "contacts are being attached to campaign {id}: {} when the attach is done (GET /campaigns/{id}/operation)",
            kind.as_str()
        ))),
        (OperationKind::Reset, OperationKind::Retry) => Some(DomainError::Conflict(format!(
            "a reset of campaign {id} is in progress; it puts the RETRY entries back to FRESH too"
        ))),
        _ => None,
    }
}

/// The campaign's commands as its state allows them ([`Campaign::actions`]), refined by
/// the rules that need more than the campaign: launch needs usable references (`refs`,
/// judged by the caller) and contacts, retry needs RETRY entries, and the operation still
/// running (`running`, not a report) refuses what it would clash with.
pub fn actions_of(
    c: &Campaign,
    now: Time,
    counters: &BTreeMap<String, i64>,
    running: Option<OperationKind>,
    refs: Option<DomainError>,
) -> Vec<CampaignAction> {
    let clash = |kind| running.and_then(|r| refused_by_running(r, kind, &c.id));
    let attaching = running == Some(OperationKind::Attach);
    let retry_restarts = running == Some(OperationKind::Retry);
    let refusals = [
        (
            "launch",
            refs.or_else(|| launch_needs_contacts(&c.id, counters, attaching).err()),
        ),
        (
            "retry",
            clash(OperationKind::Retry).or_else(|| {
                (!retry_restarts)
                    .then(|| retry_needs_entries(&c.id, counters).err())
                    .flatten()
            }),
        ),
        ("reset", clash(OperationKind::Reset)),
    ];
    let mut actions = c.actions(now);
    for (name, refused) in refusals {
        let Some(e) = refused else { continue };
        if let Some(a) = actions.iter_mut().find(|a| a.name == name && a.allowed) {
            a.allowed = false;
            a.reason = Some(e.to_string());
        }
    }
    actions
}
