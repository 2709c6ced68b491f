//! The hopper's open and history views and its whole listing (R4.1): pages of a
//! campaign's entries in one or more states, with their outcome, disposition, reply,
//! attempts and times.

use super::AppResult;
use crate::domain::hopper_view::{self, EntryFilter, EntryView, HopperView};
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::DomainError;
use crate::repo::hopper_views::{walk_entries, HopperPosition, ReadBudget};

operator_service! {
    /// Read views of a campaign's entries: the hopper's open and history views
    /// (R4.1) and one contact's conversation (R5.6, in `conversations`).
    Views
}

/// What a caller asks of a view: an optional single state, a page size and the cursor of
/// the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryListing {
    /// One state (by name, case-insensitive); the view's default states when absent.
    pub state: Option<String>,
    /// Only entries with this reason (case-insensitive).
    pub reason: Option<String>,
    /// Only entries with this disposition.
    pub disposition: Option<String>,
    /// `1..=500`; 100 when absent.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a view and the cursor of the next one (`None` on the last page).
pub type EntryPage = (Vec<EntryView>, Option<String>);

fn bad_cursor() -> DomainError {
    DomainError::invalid("cursor", "is not a cursor this view returned")
}

/// A filter given empty is a mistake, not "any": 400 naming it.
fn non_empty(field: &str, v: Option<String>) -> Result<Option<String>, DomainError> {
    match v {
        Some(t) if t.trim().is_empty() => Err(DomainError::invalid(
            field,
            "must not be empty; leave it out to list every value",
        )),
        other => Ok(other.map(|t| t.trim().to_owned())),
    }
}

impl Views {
    /// One page of `view`, in shard order and then phone order (the table has no order by
    /// time). A page may hold fewer than `limit` entries and still have a next cursor when
    /// the walk spent its read budget on entries of other states: follow `next_cursor`
    /// until it is absent.
    pub async fn hopper_entries(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        view: HopperView,
        q: EntryListing,
    ) -> AppResult<EntryPage> {
        let filter = EntryFilter {
            states: view.states(q.state.as_deref())?,
            reason: non_empty("reason", q.reason)?,
            disposition: non_empty("disposition", q.disposition)?,
        };
        let limit = hopper_view::page_limit(q.limit)?;
        let from = match q.cursor.as_deref() {
            None => HopperPosition::start(),
            Some(c) => HopperPosition::decode(c).ok_or_else(bad_cursor)?,
        };
        let c = self.load(tenant, id).await?;
        if from.shard >= c.hopper_shards {
            return Err(bad_cursor().into());
        }
        let walked = walk_entries(
            &*self.table,
            tenant,
            id,
            c.hopper_shards,
            from,
            |e| filter.keeps(e),
            limit as usize,
            ReadBudget::default(),
        )
        .await?;
        Ok((
            walked.entries.iter().map(EntryView::from).collect(),
            walked.next.map(|p| p.encode()),
        ))
    }
}
