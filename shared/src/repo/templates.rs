//! Accounts and templates.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | account | `TENANT#t` | `ACCOUNT#a` |
//! | account's template settings (WABA id, recontact template) | `TENANT#t` | `TPLCFG#a` |
//! | template | `TENANT#t` | `TEMPLATE#a#name#lang` |
//! | template owner (webhook lookup) | `TPLNAME#name#lang` | `t#a` |
//! | sending number's owner | `NUMBER#sender` | `OWNER` |
//!
//! Provider webhooks about a template name the WABA, the template name and language, never
//! our tenant: the owner items answer "which tenants' accounts have this template".

use super::{from_item, get_as, query_all, tenant_pk, to_item};
use crate::domain::account::Account;
use crate::domain::campaign::Campaign;
use crate::domain::template::{Template, TemplateKey};
use crate::ports::{Cond, Index, Item, PortError, PortResult, Query, SkCond, Table};
use serde::{Deserialize, Serialize};

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

pub use crate::domain::account::NumberOwner;

fn number_pk(sender_id: &str) -> String {
    format!("NUMBER#{sender_id}")
}

/// Claims `number` (one of [`Account::owned_numbers`]) for the account's tenant: the
/// first claim wins. Returns the owner afterwards, which is another tenant's when the
/// number was already theirs.
pub async fn claim_number(table: &dyn Table, a: &Account, number: &str) -> PortResult<NumberOwner> {
    let owner = NumberOwner::of(a);
    let item = to_item(
        &owner,
        "number",
        &[("PK", number_pk(number)), ("SK", "OWNER".into())],
    )?;
    match table.put(item, Cond::NotExists).await {
        Ok(()) => Ok(owner),
        Err(PortError::ConditionFailed) => number_owner(table, number)
            .await?
            .ok_or_else(|| PortError::Backend("number owner vanished".into())),
        Err(e) => Err(e),
    }
}

pub async fn number_owner(table: &dyn Table, sender_id: &str) -> PortResult<Option<NumberOwner>> {
    get_as(table, &number_pk(sender_id), "OWNER").await
}

pub async fn get_account(table: &dyn Table, tenant: &str, id: &str) -> PortResult<Option<Account>> {
    get_as(table, &tenant_pk(tenant), &format!("ACCOUNT#{id}")).await
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

/// Puts an item carrying `version`: the first write needs the key free, later ones the
/// version read. Bumps the version on success.
async fn put_versioned(table: &dyn Table, mut item: Item, version: &mut u64) -> PortResult<()> {
    let cond = if *version == 0 {
        Cond::NotExists
    } else {
        Cond::Eq("version".into(), (*version).into())
    };
    item.insert("version".into(), (*version + 1).into());
    table.put(item, cond).await?;
    *version += 1;
    Ok(())
}

// ---- account template settings ----

/// What an account knows about its templates: where they are synchronised from and which
/// one recontacts customers whose 24-hour window closed (R3.4, R3.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSettings {
    pub tenant: String,
    pub account_id: String,
    #[serde(default)]
    pub waba_id: Option<String>,
    #[serde(default)]
    pub recontact: Option<TemplateKey>,
    #[serde(default)]
    pub version: u64,
}

fn settings_sk(account: &str) -> String {
    format!("TPLCFG#{account}")
}

/// The account's settings; empty (version 0) when none were stored.
pub async fn get_template_settings(
    table: &dyn Table,
    tenant: &str,
    account: &str,
) -> PortResult<TemplateSettings> {
    Ok(get_as(table, &tenant_pk(tenant), &settings_sk(account))
        .await?
        .unwrap_or_else(|| TemplateSettings {
            tenant: tenant.to_owned(),
            account_id: account.to_owned(),
            ..Default::default()
        }))
}

/// Stores settings if nobody changed them since they were read.
pub async fn save_template_settings(table: &dyn Table, s: &mut TemplateSettings) -> PortResult<()> {
    let item = to_item(
        s,
        "template_settings",
        &[
            ("PK", tenant_pk(&s.tenant)),
            ("SK", settings_sk(&s.account_id)),
        ],
    )?;
    put_versioned(table, item, &mut s.version).await
}

pub async fn list_template_settings(
    table: &dyn Table,
    tenant: &str,
) -> PortResult<Vec<TemplateSettings>> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith("TPLCFG#".into()),
    );
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

// ---- templates ----

fn template_sk(account: &str, name: &str, language: &str) -> String {
    format!("TEMPLATE#{account}#{name}#{language}")
}

fn template_item(t: &Template) -> PortResult<Item> {
    let sk = template_sk(&t.account_id, &t.name, &t.language);
    to_item(t, "template", &[("PK", tenant_pk(&t.tenant)), ("SK", sk)])
}

/// Stores a template if nobody changed it since it was read (version 0: if it is new).
pub async fn save_template(table: &dyn Table, t: &mut Template) -> PortResult<()> {
    let item = template_item(t)?;
    put_versioned(table, item, &mut t.version).await
}

pub async fn get_template(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    name: &str,
    language: &str,
) -> PortResult<Option<Template>> {
    get_as(
        table,
        &tenant_pk(tenant),
        &template_sk(account, name, language),
    )
    .await
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

/// Every template of one account (at most 250, R3.4).
pub async fn list_account_templates(
    table: &dyn Table,
    tenant: &str,
    account: &str,
) -> PortResult<Vec<Template>> {
    let q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith(format!("TEMPLATE#{account}#")),
    );
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

/// Removes a template and its owner item.
pub async fn delete_template(table: &dyn Table, t: &Template) -> PortResult<()> {
    table
        .delete(
            &tenant_pk(&t.tenant),
            &template_sk(&t.account_id, &t.name, &t.language),
        )
        .await?;
    table
        .delete(
            &owner_pk(&t.name, &t.language),
            &owner_sk(&t.tenant, &t.account_id),
        )
        .await
}

// ---- template owners: the webhook's way from (WABA, name, language) to our templates ----

/// An account holding a template of a given name and language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOwner {
    pub tenant: String,
    pub account_id: String,
    /// The account's WABA when the owner was written; `None` when it had none yet.
    #[serde(default)]
    pub waba_id: Option<String>,
}

impl TemplateOwner {
    /// Whether a webhook from business account `waba` concerns this owner: only when both
    /// name the same WABA. A template name is not unique across businesses, so an owner
    /// or a webhook that names none is nobody's match.
    pub fn matches_waba(&self, waba: Option<&str>) -> bool {
        matches!((self.waba_id.as_deref(), waba), (Some(mine), Some(theirs)) if mine == theirs)
    }
}

fn owner_pk(name: &str, language: &str) -> String {
    format!("TPLNAME#{name}#{language}")
}

fn owner_sk(tenant: &str, account: &str) -> String {
    format!("{tenant}#{account}")
}

/// Records that `t`'s account holds a template of that name and language (idempotent).
pub async fn put_template_owner(
    table: &dyn Table,
    t: &Template,
    waba_id: Option<&str>,
) -> PortResult<()> {
    let owner = TemplateOwner {
        tenant: t.tenant.clone(),
        account_id: t.account_id.clone(),
        waba_id: waba_id.map(str::to_owned),
    };
    let item = to_item(
        &owner,
        "template_owner",
        &[
            ("PK", owner_pk(&t.name, &t.language)),
            ("SK", owner_sk(&t.tenant, &t.account_id)),
        ],
    )?;
    table.put(item, Cond::None).await
}

/// Every account, of any tenant, holding a template of this name and language.
pub async fn template_owners(
    table: &dyn Table,
    name: &str,
    language: &str,
) -> PortResult<Vec<TemplateOwner>> {
    let q = Query::new(Index::Primary, owner_pk(name, language), SkCond::Any);
    query_all(table, q)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

// ---- campaigns by template ----

/// The tenant's campaigns that send this template of this account, read a page at a time.
pub async fn campaigns_using_template(
    table: &dyn Table,
    tenant: &str,
    account: &str,
    name: &str,
    language: &str,
) -> PortResult<Vec<Campaign>> {
    let mut q = Query::new(
        Index::Primary,
        tenant_pk(tenant),
        SkCond::BeginsWith("CAMPAIGN#".into()),
    )
    .limit(100);
    let mut out = Vec::new();
    loop {
        let page = table.query(&q).await?;
        for item in page.items {
            let c: Campaign = from_item(item)?;
            let uses = c.account_id.as_deref() == Some(account)
                && c.template
                    .as_ref()
                    .is_some_and(|t| t.name == name && t.language == language);
            if uses {
                out.push(c);
            }
        }
        match page.cursor {
            Some(next) => q.cursor = Some(next),
            None => return Ok(out),
        }
    }
}
