//! Contacts, lists, the segmentation index and imports.
//!
//! | item | PK | SK | index |
//! |---|---|---|---|
//! | contact | `TENANT#t#PHONE#p` | `CONTACT` | GSI1 `CONTACTS#t#k` (k = hash(p) mod 16) / `p` |
//! | contact is in campaign c | `TENANT#t#PHONE#p` | `IN#c` (hopper shard) | |
//! | contact is in list l | `TENANT#t#PHONE#p` | `LIST#l` | |
//! | list | `TENANT#t` | `LIST#l` | |
//! | list member | `LIST#t#l` | `PHONE#p` | |
//! | tag member | `TAG#t#tag` | `PHONE#p` | |
//! | valued-tag member | `VTAG#t#key=value` (value lower-cased) | `PHONE#p` | |
//! | members per tag | `TAGS#t` | `TAG#tag` / `VTAG#key=value` (`count`) | |
//! | import | `IMPORT#t#i` | `IMPORT` | |
//! | invalid row of an import | `IMPORT#t#i` | `ERR#<line, 12 digits>` | |
//!
//! The contact's own partition holds the contact and the links to its lists and
//! campaigns, so one query reads all of it: what an update needs to refresh hopper
//! entries (R2.2) and what a delete removes. Contacts are listed through GSI1 spread over
//! 16 partitions per tenant so a large import does not write one hot index partition.

use super::{from_item, get_as, query_all, tenant_pk, to_item};
use crate::domain::contact::{Contact, ContactList};
use crate::domain::import::{Import, RowError};
use crate::domain::phone::PhoneNumber;
use crate::domain::stable_hash;
use crate::ports::{Cond, Index, PortError, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Partitions of the contact listing index per tenant.
pub const CONTACT_SHARDS: u16 = 16;

fn contact_pk(tenant: &str, phone: &PhoneNumber) -> String {
    format!("TENANT#{tenant}#PHONE#{phone}")
}

fn contacts_index_pk(tenant: &str, shard: u16) -> String {
    format!("CONTACTS#{tenant}#{shard}")
}

fn contact_shard(phone: &PhoneNumber) -> u16 {
    (stable_hash(phone.as_str()) % u64::from(CONTACT_SHARDS)) as u16
}

fn contact_item(c: &Contact) -> PortResult<crate::ports::Item> {
    to_item(
        c,
        "contact",
        &[
            ("PK", contact_pk(&c.tenant, &c.phone)),
            ("SK", "CONTACT".into()),
            (
                "GSI1PK",
                contacts_index_pk(&c.tenant, contact_shard(&c.phone)),
            ),
            ("GSI1SK", c.phone.to_string()),
        ],
    )
}

/// Stores a contact unconditionally (seeding, tests). Upserts use [`save_contact`].
pub async fn put_contact(table: &dyn Table, c: &Contact) -> PortResult<()> {
    table.put(contact_item(c)?, Cond::None).await
}

/// Stores a contact if nobody changed it since it was read: a new one needs the key free,
/// a stored one its version unchanged (`existed` with version 0 is an item written before
/// contacts had versions, stored unconditionally). Bumps the version.
pub async fn save_contact(table: &dyn Table, c: &mut Contact, existed: bool) -> PortResult<()> {
    let cond = match (existed, c.version) {
        (false, _) => Cond::NotExists,
        (true, 0) => Cond::None,
        (true, v) => Cond::Eq("version".into(), v.into()),
    };
    let mut item = contact_item(c)?;
    item.insert("version".into(), (c.version + 1).into());
    table.put(item, cond).await?;
    c.version += 1;
    Ok(())
}

pub async fn get_contact(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<Contact>> {
    get_as(table, &contact_pk(tenant, phone), "CONTACT").await
}

/// A contact's hopper entry in one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignLink {
    pub campaign_id: String,
    pub shard: u16,
}

/// A contact with the links its partition holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactRecord {
    pub contact: Option<Contact>,
    pub campaigns: Vec<CampaignLink>,
    pub lists: Vec<String>,
}

/// Reads a contact's whole partition in one query (usually one page).
pub async fn load_contact(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<ContactRecord> {
    let items = query_all(
        table,
        Query::new(Index::Primary, contact_pk(tenant, phone), SkCond::Any),
    )
    .await?;
    let mut rec = ContactRecord::default();
    for item in items {
        let sk = item.get("SK").and_then(Value::as_str).unwrap_or_default();
        if sk == "CONTACT" {
            rec.contact = Some(from_item(item)?);
        } else if sk.starts_with("IN#") {
            rec.campaigns.push(from_item(item)?);
        } else if let Some(l) = sk.strip_prefix("LIST#") {
            rec.lists.push(l.to_owned());
        }
    }
    Ok(rec)
}

/// Removes a contact and the links in its partition (not its index items: the caller
/// removes those, it knows the tags).
pub async fn delete_contact_partition(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
    rec: &ContactRecord,
) -> PortResult<()> {
    let pk = contact_pk(tenant, phone);
    for c in &rec.campaigns {
        table.delete(&pk, &format!("IN#{}", c.campaign_id)).await?;
    }
    for l in &rec.lists {
        table.delete(&pk, &format!("LIST#{l}")).await?;
        table
            .delete(&format!("LIST#{tenant}#{l}"), &format!("PHONE#{phone}"))
            .await?;
    }
    table.delete(&pk, "CONTACT").await
}

/// Records that the contact has an entry in a campaign's hopper (idempotent).
pub async fn put_campaign_link(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
    link: &CampaignLink,
) -> PortResult<()> {
    let item = to_item(
        link,
        "contact_campaign",
        &[
            ("PK", contact_pk(tenant, phone)),
            ("SK", format!("IN#{}", link.campaign_id)),
        ],
    )?;
    table.put(item, Cond::None).await
}

/// One page of a tenant's contacts. The cursor walks the index partitions in turn:
/// `<partition>.<cursor inside it>`.
pub async fn list_contacts(
    table: &dyn Table,
    tenant: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<Contact>, Option<String>)> {
    let (mut shard, mut inner) = match cursor.as_deref() {
        None => (0u16, None),
        Some(c) => {
            let bad = || PortError::BadCursor("not a contacts cursor".into());
            let (s, rest) = c.split_once('.').ok_or_else(bad)?;
            let s: u16 = s
                .parse()
                .ok()
                .filter(|s| *s < CONTACT_SHARDS)
                .ok_or_else(bad)?;
            (s, (!rest.is_empty()).then(|| rest.to_owned()))
        }
    };
    let mut out = Vec::new();
    while shard < CONTACT_SHARDS {
        let want = limit.saturating_sub(out.len() as u32);
        if want == 0 {
            return Ok((out, Some(format!("{shard}.{}", inner.unwrap_or_default()))));
        }
        let q = Query::new(Index::Gsi1, contacts_index_pk(tenant, shard), SkCond::Any)
            .limit(want)
            .cursor(inner.take());
        let page = table.query(&q).await?;
        for item in page.items {
            out.push(from_item(item)?);
        }
        match page.cursor {
            Some(c) => inner = Some(c),
            None => {
                shard += 1;
                inner = None;
            }
        }
    }
    Ok((out, None))
}

// ---- lists ----

pub async fn put_list(table: &dyn Table, l: &ContactList) -> PortResult<()> {
    let item = to_item(
        l,
        "list",
        &[
            ("PK", tenant_pk(&l.tenant)),
            ("SK", format!("LIST#{}", l.id)),
        ],
    )?;
    table.put(item, Cond::NotExists).await
}

/// One page of the tenant's lists in id order (ids sort by creation time).
pub async fn lists_page(
    table: &dyn Table,
    tenant: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<ContactList>, Option<String>)> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith("LIST#".into()),
    )
    .limit(limit)
    .cursor(cursor);
    let page = table.query(&q).await?;
    let lists = page
        .items
        .into_iter()
        .map(from_item)
        .collect::<PortResult<_>>()?;
    Ok((lists, page.cursor))
}

pub async fn get_list(
    table: &dyn Table,
    tenant: &str,
    id: &str,
) -> PortResult<Option<ContactList>> {
    get_as(table, &tenant_pk(tenant), &format!("LIST#{id}")).await
}

#[derive(Serialize, Deserialize)]
struct ListMember {
    phone: PhoneNumber,
}

/// Adds a contact to a list (idempotent): the member item and the link in the contact's
/// partition.
pub async fn add_list_member(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    phone: &PhoneNumber,
) -> PortResult<()> {
    let item = to_item(
        &ListMember {
            phone: phone.clone(),
        },
        "list_member",
        &[
            ("PK", format!("LIST#{tenant}#{list}")),
            ("SK", format!("PHONE#{phone}")),
        ],
    )?;
    table.put(item, Cond::None).await?;
    let link = to_item(
        &serde_json::json!({ "list_id": list }),
        "contact_list",
        &[
            ("PK", contact_pk(tenant, phone)),
            ("SK", format!("LIST#{list}")),
        ],
    )?;
    table.put(link, Cond::None).await
}

async fn phones_page(
    table: &dyn Table,
    pk: String,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<PhoneNumber>, Option<String>)> {
    let q = Query::new(Index::Primary, pk, SkCond::BeginsWith("PHONE#".into()))
        .limit(limit)
        .cursor(cursor);
    let page = table.query(&q).await?;
    let phones = page
        .items
        .into_iter()
        .map(|i| from_item::<ListMember>(i).map(|m| m.phone))
        .collect::<PortResult<_>>()?;
    Ok((phones, page.cursor))
}

/// One page of a list's members.
pub async fn list_members(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<PhoneNumber>, Option<String>)> {
    phones_page(table, format!("LIST#{tenant}#{list}"), limit, cursor).await
}

// ---- segmentation index ----

fn index_pk(tenant: &str, key: &str) -> String {
    // key is `TAG#tag` or `VTAG#key=value`
    format!("{}#{tenant}#{}", key_kind(key), key_rest(key))
}

fn key_kind(key: &str) -> &str {
    key.split_once('#').map(|(k, _)| k).unwrap_or(key)
}

fn key_rest(key: &str) -> &str {
    key.split_once('#').map(|(_, r)| r).unwrap_or("")
}

/// Lists the contact under an index key (`TAG#vip`, `VTAG#city=pune`).
pub async fn put_index_member(
    table: &dyn Table,
    tenant: &str,
    key: &str,
    phone: &PhoneNumber,
) -> PortResult<()> {
    let item = to_item(
        &ListMember {
            phone: phone.clone(),
        },
        "tag_member",
        &[
            ("PK", index_pk(tenant, key)),
            ("SK", format!("PHONE#{phone}")),
        ],
    )?;
    table.put(item, Cond::None).await
}

pub async fn delete_index_member(
    table: &dyn Table,
    tenant: &str,
    key: &str,
    phone: &PhoneNumber,
) -> PortResult<()> {
    table
        .delete(&index_pk(tenant, key), &format!("PHONE#{phone}"))
        .await
}

/// One page of the contacts listed under an index key.
pub async fn index_members(
    table: &dyn Table,
    tenant: &str,
    key: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<PhoneNumber>, Option<String>)> {
    phones_page(table, index_pk(tenant, key), limit, cursor).await
}

/// Moves the member counts of index keys (folded by the caller, one write per key).
pub async fn add_index_counts(
    table: &dyn Table,
    tenant: &str,
    deltas: &BTreeMap<String, i64>,
) -> PortResult<()> {
    for (key, d) in deltas.iter().filter(|(_, d)| **d != 0) {
        table
            .add(&format!("TAGS#{tenant}"), key, &[("count".into(), *d)])
            .await?;
    }
    Ok(())
}

/// How many contacts are listed under an index key (used to pick the smallest set).
pub async fn index_count(table: &dyn Table, tenant: &str, key: &str) -> PortResult<i64> {
    Ok(table
        .get(&format!("TAGS#{tenant}"), key)
        .await?
        .and_then(|i| i.get("count").and_then(Value::as_i64))
        .unwrap_or(0))
}

// ---- imports ----

fn import_pk(tenant: &str, id: &str) -> String {
    format!("IMPORT#{tenant}#{id}")
}

/// Stores an import if nobody changed it since it was read; bumps the version.
pub async fn save_import(table: &dyn Table, i: &mut Import) -> PortResult<()> {
    let cond = if i.version == 0 {
        Cond::NotExists
    } else {
        Cond::Eq("version".into(), i.version.into())
    };
    let mut item = to_item(
        i,
        "import",
        &[("PK", import_pk(&i.tenant, &i.id)), ("SK", "IMPORT".into())],
    )?;
    item.insert("version".into(), (i.version + 1).into());
    table.put(item, cond).await?;
    i.version += 1;
    Ok(())
}

pub async fn get_import(table: &dyn Table, tenant: &str, id: &str) -> PortResult<Option<Import>> {
    get_as(table, &import_pk(tenant, id), "IMPORT").await
}

/// Stores one invalid row (idempotent: keyed by its line).
pub async fn put_import_error(
    table: &dyn Table,
    tenant: &str,
    id: &str,
    e: &RowError,
) -> PortResult<()> {
    let item = to_item(
        e,
        "import_error",
        &[
            ("PK", import_pk(tenant, id)),
            ("SK", format!("ERR#{:012}", e.line)),
        ],
    )?;
    table.put(item, Cond::None).await
}

/// One page of an import's invalid rows, by line.
pub async fn import_errors(
    table: &dyn Table,
    tenant: &str,
    id: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<RowError>, Option<String>)> {
    let q = Query::new(
        Index::Primary,
        import_pk(tenant, id),
        SkCond::BeginsWith("ERR#".into()),
    )
    .limit(limit)
    .cursor(cursor);
    let page = table.query(&q).await?;
    Ok((
        page.items
            .into_iter()
            .map(from_item)
            .collect::<PortResult<_>>()?,
        page.cursor,
    ))
}
