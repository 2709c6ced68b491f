//! Funnel steps a bot flow reports back for a contact of a campaign (R6.3).
//!
//! | item | PK | SK |
//! |---|---|---|
//! | funnel step | `CAMPAIGN#t#c` | `STEP#<shard:05>#<phone>#<time_key>#<step>` |
//!
//! Steps live in the campaign's own partition, which a campaign delete already removes
//! page by page. The key starts with the contact's hopper shard and phone, so the steps
//! of a page of entries (one shard, a range of phones in sort-key order) are one range
//! read; then time, so a contact's steps come in the order they happened; then the step,
//! so recording the same step at the same instant again is the same item (idempotent).

use super::{campaign_pk, from_item, time_key, to_item};
use crate::domain::Time;
use crate::ports::{Cond, Index, PortError, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const STEP_PREFIX: &str = "STEP#";
/// Items one range read asks for.
const STEP_PAGE: u32 = 500;

/// One step a bot flow reported for a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub phone: String,
    pub step: String,
    pub at: Time,
}

fn shard_prefix(shard: u16) -> String {
    format!("{STEP_PREFIX}{shard:05}#")
}

fn step_sk(shard: u16, s: &FunnelStep) -> String {
    format!(
        "{}{}#{}#{}",
        shard_prefix(shard),
        s.phone,
        time_key(s.at),
        s.step
    )
}

/// Stores a step of a contact whose entry is in hopper shard `shard`. `false` when the
/// same step at the same instant (to the millisecond) was already recorded.
pub async fn put_step(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    s: &FunnelStep,
) -> PortResult<bool> {
    let item = to_item(
        s,
        "funnel_step",
        &[
            ("PK", campaign_pk(tenant, campaign)),
            ("SK", step_sk(shard, s)),
        ],
    )?;
    match table.put(item, Cond::NotExists).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The steps of the contacts `phones` of hopper shard `shard`, by phone, each contact's
/// in time order. One range read from the first phone to the last (in sort-key order),
/// so a page of entries costs one query (more for contacts with many steps).
pub async fn steps_of(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shard: u16,
    phones: &BTreeSet<String>,
) -> PortResult<BTreeMap<String, Vec<FunnelStep>>> {
    let mut out: BTreeMap<String, Vec<FunnelStep>> = BTreeMap::new();
    let (Some(first), Some(last)) = (phones.first(), phones.last()) else {
        return Ok(out);
    };
    let prefix = shard_prefix(shard);
    // Every key of `first`'s steps (and of any phone sorting after it) is greater than
    // `STEP#shard#first`; phones that are a prefix of `first` or sort before it are less.
    let mut q = Query::new(
        Index::Primary,
        campaign_pk(tenant, campaign),
        SkCond::Gt(format!("{prefix}{first}")),
    )
    .limit(STEP_PAGE);
    loop {
        let page = table.query(&q).await?;
        for item in page.items {
            let in_shard = item
                .get("SK")
                .and_then(Value::as_str)
                .is_some_and(|sk| sk.starts_with(&prefix));
            if !in_shard {
                return Ok(out);
            }
            let s: FunnelStep = from_item(item)?;
            // Keys sort by phone as text, as entries do: past `last`, the page's range ends.
            if s.phone.as_str() > last.as_str() {
                return Ok(out);
            }
            if phones.contains(&s.phone) {
                out.entry(s.phone.clone()).or_default().push(s);
            }
        }
        match page.cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}
