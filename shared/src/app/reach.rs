//! How many contacts an audience would reach (issue 15: the campaign form shows it before
//! saving): the distinct contacts of some lists, or of a segment, counted within a time
//! budget. A walk cut short answers what it counted as a lower bound (`exact: false`).

use super::audience::Audience;
use super::AppResult;
use crate::domain::contact::Segment;
use crate::domain::ids::TenantId;
use crate::domain::phone::PhoneNumber;
use crate::domain::DomainError;
use crate::repo;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// How long one count may walk before it answers what it has.
pub const REACH_BUDGET: Duration = Duration::from_secs(5);
/// Distinct phones one count holds in memory at most (about 15 MB).
pub const REACH_MAX_PHONES: usize = 200_000;
/// Lists one count may name.
pub const REACH_MAX_LISTS: usize = 20;
const PAGE: u32 = 500;
/// Contacts read at once while walking a segment.
const CONTACT_READS: usize = 16;

/// `POST /audience/count`: the lists, or the segment, a campaign would attach.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachRequest {
    /// Lists whose members are counted once each, however many lists hold them; at
    /// most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub list_ids: Vec<String>,
    /// A segment (every tag and valued tag): counted on its own, or with the lists.
    #[serde(default)]
    pub segment: Option<Segment>,
}

/// What `POST /audience/count` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reach {
    /// Distinct contacts, before block lists, the opt-out list and the duplicate window
    /// (judged at send time).
    pub contacts: u64,
    /// False when the count stopped at its time or memory budget: `contacts` is then a
    /// lower bound ("at least").
    pub exact: bool,
}

/// What one count may spend: wall time and distinct phones held in memory.
#[derive(Debug, Clone, Copy)]
pub struct ReachLimits {
    pub time: Duration,
    pub phones: usize,
}

impl Default for ReachLimits {
    fn default() -> Self {
        ReachLimits {
            time: REACH_BUDGET,
            phones: REACH_MAX_PHONES,
        }
    }
}

/// The distinct phones counted so far, and whether a limit stopped the walk.
struct Tally {
    phones: HashSet<PhoneNumber>,
    deadline: Instant,
    max: usize,
    cut: bool,
}

impl Tally {
    /// Counts `p`; false (and the walk stops) once a limit is reached.
    fn add(&mut self, p: PhoneNumber) -> bool {
        if self.full() {
            return false;
        }
        self.phones.insert(p);
        true
    }

    fn full(&mut self) -> bool {
        if Instant::now() >= self.deadline || self.phones.len() >= self.max {
            self.cut = true;
        }
        self.cut
    }
}

impl Audience {
    /// Counts the distinct contacts of `req`'s lists and segment within [`REACH_BUDGET`]
    /// and [`REACH_MAX_PHONES`].
    pub async fn count_reach(&self, tenant: &TenantId, req: ReachRequest) -> AppResult<Reach> {
        self.count_reach_within(tenant, req, ReachLimits::default())
            .await
    }

    pub async fn count_reach_within(
        &self,
        tenant: &TenantId,
        req: ReachRequest,
        limits: ReachLimits,
    ) -> AppResult<Reach> {
        if req.list_ids.is_empty() && req.segment.is_none() {
            return Err(DomainError::invalid("list_ids", "name a list or a segment").into());
        }
        if req.list_ids.len() > REACH_MAX_LISTS {
            return Err(DomainError::invalid(
                "list_ids",
                format!("at most {REACH_MAX_LISTS} lists"),
            )
            .into());
        }
        let segment = req.segment.as_ref().map(Segment::normalised).transpose()?;
        let mut lists = req.list_ids.clone();
        lists.sort();
        lists.dedup();
        for id in &lists {
            self.get_list(tenant, id).await?;
        }
        // A segment alone on a single tag: its member count is kept, no walk needed.
        if let (true, Some(s)) = (lists.is_empty(), &segment) {
            if let [key] = s.index_keys().as_slice() {
                let n = repo::index_count(&*self.table, tenant, key).await?;
                return Ok(Reach {
                    contacts: n.max(0) as u64,
                    exact: true,
                });
            }
        }
        let mut t = Tally {
            phones: HashSet::new(),
            deadline: Instant::now() + limits.time,
            max: limits.phones,
            cut: false,
        };
        for id in &lists {
            self.walk_list(tenant, id, &mut t).await?;
        }
        if let Some(s) = &segment {
            self.walk_segment(tenant, s, &mut t).await?;
        }
        Ok(Reach {
            contacts: t.phones.len() as u64,
            exact: !t.cut,
        })
    }

    async fn walk_list(&self, tenant: &str, list: &str, t: &mut Tally) -> AppResult<()> {
        let mut cursor = None;
        while !t.full() {
            let (phones, next) =
                repo::list_members(&*self.table, tenant, list, PAGE, cursor).await?;
            for p in phones {
                if !t.add(p) {
                    return Ok(());
                }
            }
            cursor = match next {
                Some(c) => Some(c),
                None => return Ok(()),
            };
        }
        Ok(())
    }

    /// Walks the smallest of the segment's index sets, reading the contacts not counted
    /// yet (as an attach does, several at a time) and counting those matching the whole
    /// segment.
    async fn walk_segment(&self, tenant: &str, s: &Segment, t: &mut Tally) -> AppResult<()> {
        let table = &*self.table;
        let key = super::audience::smallest_key(table, tenant, s).await?;
        let mut cursor = None;
        while !t.full() {
            let (phones, next) = repo::index_members(table, tenant, &key, PAGE, cursor).await?;
            let unseen: Vec<PhoneNumber> = phones
                .into_iter()
                .filter(|p| !t.phones.contains(p))
                .collect();
            for chunk in unseen.chunks(CONTACT_READS) {
                let found = futures::future::try_join_all(
                    chunk.iter().map(|p| repo::get_contact(table, tenant, p)),
                )
                .await?;
                for c in found.into_iter().flatten().filter(|c| s.matches(c)) {
                    if !t.add(c.phone) {
                        return Ok(());
                    }
                }
            }
            cursor = match next {
                Some(c) => Some(c),
                None => return Ok(()),
            };
        }
        Ok(())
    }
}
