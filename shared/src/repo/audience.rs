//! Contacts and lists.

use super::{from_item, tenant_pk, to_item};
use crate::domain::contact::{Contact, ContactList};
use crate::domain::phone::PhoneNumber;
use crate::ports::{Cond, Index, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};

fn contact_pk(tenant: &str, phone: &PhoneNumber) -> String {
    format!("TENANT#{tenant}#PHONE#{phone}")
}

pub async fn put_contact(table: &dyn Table, c: &Contact) -> PortResult<()> {
    let item = to_item(
        c,
        "contact",
        &[
            ("PK", contact_pk(&c.tenant, &c.phone)),
            ("SK", "CONTACT".into()),
        ],
    )?;
    table.put(item, Cond::None).await
}

pub async fn get_contact(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
) -> PortResult<Option<Contact>> {
    table
        .get(&contact_pk(tenant, phone), "CONTACT")
        .await?
        .map(from_item)
        .transpose()
}

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

pub async fn get_list(
    table: &dyn Table,
    tenant: &str,
    id: &str,
) -> PortResult<Option<ContactList>> {
    table
        .get(&tenant_pk(tenant), &format!("LIST#{id}"))
        .await?
        .map(from_item)
        .transpose()
}

#[derive(Serialize, Deserialize)]
struct ListMember {
    phone: PhoneNumber,
}

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
    table.put(item, Cond::None).await
}

/// One page of a list's members.
pub async fn list_members(
    table: &dyn Table,
    tenant: &str,
    list: &str,
    limit: u32,
    cursor: Option<String>,
) -> PortResult<(Vec<PhoneNumber>, Option<String>)> {
    let q = Query::new(
        Index::Primary,
        format!("LIST#{tenant}#{list}"),
        SkCond::BeginsWith("PHONE#".into()),
    )
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
