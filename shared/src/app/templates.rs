//! Provider accounts and templates (R3, R7.2).

use super::admin::Admin;
use super::AppResult;
use crate::domain::account::{Account, NewAccount};
use crate::domain::template::{NewTemplate, Template};
use crate::domain::DomainError;
use crate::repo;

impl Admin {
    pub async fn create_account(&self, tenant: &str, input: NewAccount) -> AppResult<Account> {
        let a = Account::create(tenant, input, self.now())?;
        repo::put_account(&*self.table, &a).await?;
        Ok(a)
    }

    pub async fn get_account(&self, tenant: &str, id: &str) -> AppResult<Account> {
        repo::get_account(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("account", id).into())
    }

    pub async fn list_accounts(&self, tenant: &str) -> AppResult<Vec<Account>> {
        Ok(repo::list_accounts(&*self.table, tenant).await?)
    }

    pub async fn create_template(&self, tenant: &str, input: NewTemplate) -> AppResult<Template> {
        let t = Template::create(tenant, input, self.now())?;
        if repo::get_account(&*self.table, tenant, &t.account_id)
            .await?
            .is_none()
        {
            return Err(DomainError::invalid(
                "account_id",
                format!("account '{}' does not exist", t.account_id),
            )
            .into());
        }
        repo::put_template(&*self.table, &t).await?;
        Ok(t)
    }

    pub async fn list_templates(&self, tenant: &str) -> AppResult<Vec<Template>> {
        Ok(repo::list_templates(&*self.table, tenant).await?)
    }
}
