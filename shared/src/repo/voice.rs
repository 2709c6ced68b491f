//! What voice calls keep (issue 17).
//!
//! | item | PK | SK |
//! |---|---|---|
//! | the lines the calls through a Connect instance hold | `LINES#t#<instance>` | `LINES` |
//! | a call's entry, by Connect's contact id (TTL a week) | `CALL#<instance>#<contact id>` | `CALL` |

use super::{get_as, put_versioned, to_item};
use crate::domain::inbound::EntryRef;
use crate::domain::voice::Lines;
use crate::domain::Time;
use crate::ports::{Cond, PortResult, Table};
use serde::{Deserialize, Serialize};

/// Lines are counted per instance (its concurrent-calls quota), whichever of the tenant's
/// accounts names it; an instance belongs to one tenant.
fn lines_pk(tenant: &str, instance: &str) -> String {
    format!("LINES#{tenant}#{instance}")
}

pub async fn get_lines(table: &dyn Table, tenant: &str, instance: &str) -> PortResult<Lines> {
    Ok(get_as(table, &lines_pk(tenant, instance), "LINES")
        .await?
        .unwrap_or_default())
}

/// Stores the lines if nobody changed them since they were read (ConditionFailed
/// otherwise): two dispatchers never give out one line twice.
pub async fn save_lines(
    table: &dyn Table,
    tenant: &str,
    instance: &str,
    lines: &mut Lines,
) -> PortResult<()> {
    let item = to_item(
        lines,
        "lines",
        &[("PK", lines_pk(tenant, instance)), ("SK", "LINES".into())],
    )?;
    put_versioned(table, item, &mut lines.version).await
}

/// The entry (and attempt) a call was placed for: contact events name only the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRef {
    pub entry: EntryRef,
    pub attempt: u32,
    /// The account whose line the call holds.
    pub account_id: String,
}

fn call_pk(instance: &str, contact_id: &str) -> String {
    format!("CALL#{instance}#{contact_id}")
}

/// Remembers which entry a contact is, a week (the contact events of a call come within
/// hours; TTL cleans up).
pub async fn put_call(
    table: &dyn Table,
    instance: &str,
    contact_id: &str,
    call: &CallRef,
    now: Time,
) -> PortResult<()> {
    let mut item = to_item(
        call,
        "call",
        &[("PK", call_pk(instance, contact_id)), ("SK", "CALL".into())],
    )?;
    let ttl = (now + chrono::Duration::days(7)).timestamp();
    item.insert("ttl".into(), ttl.into());
    table.put(item, Cond::None).await
}

pub async fn get_call(
    table: &dyn Table,
    instance: &str,
    contact_id: &str,
) -> PortResult<Option<CallRef>> {
    get_as(table, &call_pk(instance, contact_id), "CALL").await
}
