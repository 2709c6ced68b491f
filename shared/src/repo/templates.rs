//! Accounts and templates.

use super::{from_item, query_all, tenant_pk, to_item};
use crate::domain::account::Account;
use crate::domain::template::Template;
use crate::ports::{Cond, Index, PortResult, Query, SkCond, Table};

pub async fn put_account(table: &dyn Table, a: &Account) -> PortResult<()> {
    let item = to_item(
        a,
        "account",
        &[
            ("PK", tenant_pk(&a.tenant)),
            ("SK", format!("ACCOUNT#{}", a.id)),
        ],
    )?;
    table.put(item, Cond::NotExists).await
}

pub async fn get_account(table: &dyn Table, tenant: &str, id: &str) -> PortResult<Option<Account>> {
    table
        .get(&tenant_pk(tenant), &format!("ACCOUNT#{id}"))
        .await?
        .map(from_item)
        .transpose()
}

pub async fn list_accounts(table: &dyn Table, tenant: &str) -> PortResult<Vec<Account>> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith("ACCOUNT#".into()),
    );
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

fn template_sk(account: &str, name: &str, language: &str) -> String {
    format!("TEMPLATE#{account}#{name}#{language}")
}

pub async fn put_template(table: &dyn Table, t: &Template) -> PortResult<()> {
    let sk = template_sk(&t.account_id, &t.name, &t.language);
    let item = to_item(t, "template", &[("PK", tenant_pk(&t.tenant)), ("SK", sk)])?;
    table.put(item, Cond::None).await
}

pub async fn get_template(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    name: &str,
    language: &str,
) -> PortResult<Option<Template>> {
    table
        .get(&tenant_pk(tenant), &template_sk(account, name, language))
        .await?
        .map(from_item)
        .transpose()
}

pub async fn list_templates(table: &dyn Table, tenant: &str) -> PortResult<Vec<Template>> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith("TEMPLATE#".into()),
    );
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}
