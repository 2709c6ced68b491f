//! What the dispatcher keeps per provider account (R4.8).
//!
//! | item | PK | SK |
//! |---|---|---|
//! | the account's current pace (AIMD) | `PACE#t#a` | `PACE` |
//! | when a send was last throttled | `PACE#t#a` | `THROTTLE` |
//! | contacts dispatched in one hour (messaging tier) | `PACE#t#a` | `TIER#<hour>` |
//! | the same, for a business portfolio's accounts | `PACE#t#PF-p` | `TIER#<hour>` |
//! | a business portfolio's messaging limit | `TENANT#t` | `PORTFOLIO#p` |

use super::{get_as, put_versioned, time_key, to_item};
use crate::domain::account::Account;
use crate::domain::pacing::AccountPace;
use crate::domain::portfolio::Portfolio;
use crate::domain::Time;
use crate::ports::{Cond, Index, Item, PortResult, Query, SkCond, Table};
use serde_json::Value;

fn from_time_key(s: &str) -> Option<Time> {
    chrono::DateTime::from_timestamp_millis(s.parse().ok()?)
}

fn pace_pk(tenant: &str, account: &str) -> String {
    format!("PACE#{tenant}#{account}")
}

pub async fn get_account_pace(
    table: &dyn Table,
    tenant: &str,
    account: &str,
) -> PortResult<AccountPace> {
    Ok(get_as(table, &pace_pk(tenant, account), "PACE")
        .await?
        .unwrap_or_default())
}

/// Stores the pace if nobody changed it since it was read (ConditionFailed otherwise).
pub async fn save_account_pace(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    p: &mut AccountPace,
) -> PortResult<()> {
    let item = to_item(
        p,
        "account_pace",
        &[("PK", pace_pk(tenant, account)), ("SK", "PACE".into())],
    )?;
    put_versioned(table, item, &mut p.version).await
}

/// A send on the account was throttled (Meta 130429) at `at`: the next tick slows down.
pub async fn note_throttle(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    at: Time,
) -> PortResult<()> {
    let mut item = Item::new();
    item.insert("PK".into(), pace_pk(tenant, account).into());
    item.insert("SK".into(), "THROTTLE".into());
    item.insert("type".into(), "throttle".into());
    item.insert("at".into(), time_key(at).into());
    table.put(item, Cond::None).await
}

pub async fn last_throttle(
    table: &dyn Table,
    tenant: &str,
    account: &str,
) -> PortResult<Option<Time>> {
    let item = table.get(&pace_pk(tenant, account), "THROTTLE").await?;
    Ok(item
        .as_ref()
        .and_then(|i| i.get("at"))
        .and_then(Value::as_str)
        .and_then(from_time_key))
}

/// Whose messaging-limit usage an account's sends count under: its business portfolio's
/// (shared by the portfolio's accounts) or, without one, its own. The key for
/// [`tier_hours`] and [`add_tier_usage`].
pub fn budget_key(account: &Account) -> String {
    match &account.portfolio_id {
        Some(p) => format!("PF-{p}"),
        None => account.id.clone(),
    }
}

pub async fn get_portfolio(
    table: &dyn Table,
    tenant: &str,
    id: &str,
) -> PortResult<Option<Portfolio>> {
    get_as(table, &super::tenant_pk(tenant), &format!("PORTFOLIO#{id}")).await
}

/// Stores a portfolio's limit if nobody changed it since it was read (`p.version` is the
/// version read, 0 for a new one).
pub async fn save_portfolio(table: &dyn Table, tenant: &str, p: &mut Portfolio) -> PortResult<()> {
    let item = to_item(
        &*p,
        "portfolio",
        &[
            ("PK", super::tenant_pk(tenant)),
            ("SK", format!("PORTFOLIO#{}", p.id)),
        ],
    )?;
    put_versioned(table, item, &mut p.version).await
}

/// Contacts dispatched per hour since `since` (hour start, count), for the messaging tier.
pub async fn tier_hours(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    since: Time,
) -> PortResult<Vec<(Time, u64)>> {
    let q = Query::new(
        Index::Primary,
        pace_pk(tenant, account),
        SkCond::Gt(format!(
            "TIER#{}",
            time_key(since - chrono::Duration::seconds(1))
        )),
    );
    let items = super::query_all(table, q).await?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let sk = i.get("SK")?.as_str()?.strip_prefix("TIER#")?;
            Some((from_time_key(sk)?, i.get("n")?.as_u64()?))
        })
        .collect())
}

/// Counts `n` contacts dispatched in the hour starting at `hour`.
pub async fn add_tier_usage(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    hour: Time,
    n: u64,
) -> PortResult<()> {
    if n == 0 {
        return Ok(());
    }
    table
        .add(
            &pace_pk(tenant, account),
            &format!("TIER#{}", time_key(hour)),
            &[("n".into(), n as i64)],
        )
        .await
        .map(|_| ())
}
