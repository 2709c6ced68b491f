//! Contacts, lists and a campaign's audience (R2).

use super::admin::{prefix, Admin, AttachResult, PAGE};
use super::AppResult;
use crate::domain::contact::{Contact, ContactList, NewContact};
use crate::domain::hopper::HopperEntry;
use crate::domain::phone::PhoneNumber;
use crate::domain::stats;
use crate::domain::DomainError;
use crate::repo;

impl Admin {
    /// Validates every contact before storing any, so a bad row changes nothing.
    pub async fn upsert_contacts(
        &self,
        tenant: &str,
        input: Vec<NewContact>,
    ) -> AppResult<Vec<Contact>> {
        let now = self.now();
        let mut contacts = Vec::with_capacity(input.len());
        for (i, c) in input.into_iter().enumerate() {
            contacts.push(
                Contact::create(tenant, c, now)
                    .map_err(|e| prefix(e, &format!("contacts[{i}]")))?,
            );
        }
        for c in &contacts {
            repo::put_contact(&*self.table, c).await?;
        }
        Ok(contacts)
    }

    pub async fn get_contact(&self, tenant: &str, phone: &str) -> AppResult<Contact> {
        let p = PhoneNumber::parse(phone)?;
        repo::get_contact(&*self.table, tenant, &p)
            .await?
            .ok_or_else(|| DomainError::not_found("contact", p.masked()).into())
    }

    pub async fn create_list(&self, tenant: &str, name: Option<String>) -> AppResult<ContactList> {
        let l = ContactList::create(tenant, name, self.now())?;
        repo::put_list(&*self.table, &l).await?;
        Ok(l)
    }

    pub async fn get_list(&self, tenant: &str, id: &str) -> AppResult<ContactList> {
        repo::get_list(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("list", id).into())
    }

    /// Adds existing contacts to a list; unknown or malformed phones name their index.
    pub async fn add_list_members(
        &self,
        tenant: &str,
        list: &str,
        phones: Vec<String>,
    ) -> AppResult<usize> {
        self.get_list(tenant, list).await?;
        let mut parsed = Vec::with_capacity(phones.len());
        for (i, p) in phones.iter().enumerate() {
            let phone = PhoneNumber::parse(p).map_err(|e| prefix(e, &format!("phones[{i}]")))?;
            if repo::get_contact(&*self.table, tenant, &phone)
                .await?
                .is_none()
            {
                return Err(DomainError::invalid(
                    format!("phones[{i}]"),
                    "no contact has this phone; create it first",
                )
                .into());
            }
            parsed.push(phone);
        }
        for p in &parsed {
            repo::add_list_member(&*self.table, tenant, list, p).await?;
        }
        Ok(parsed.len())
    }

    /// Puts a list's contacts into the campaign's hopper as FRESH; a contact already there
    /// keeps its one entry (R2.2).
    pub async fn attach_list(
        &self,
        tenant: &str,
        campaign_id: &str,
        list_id: &str,
    ) -> AppResult<AttachResult> {
        let campaign = repo::get_campaign(&*self.table, tenant, campaign_id)
            .await?
            .ok_or_else(|| DomainError::not_found("campaign", campaign_id))?;
        campaign.accepts_audience()?;
        self.get_list(tenant, list_id).await?;
        let mut result = AttachResult {
            added: 0,
            already_present: 0,
        };
        let mut cursor = None;
        loop {
            let (phones, next) =
                repo::list_members(&*self.table, tenant, list_id, PAGE, cursor).await?;
            if !phones.is_empty() {
                let first =
                    repo::reserve_seq(&*self.table, tenant, campaign_id, phones.len() as u64)
                        .await?;
                let mut delta = stats::Delta::new();
                for (i, phone) in phones.into_iter().enumerate() {
                    let contact = repo::get_contact(&*self.table, tenant, &phone).await?;
                    let data = contact.map(|c| c.data()).unwrap_or_default();
                    let mut e = HopperEntry::new(&campaign, phone, data, first + i as u64);
                    if repo::insert_entry(&*self.table, &mut e).await? {
                        result.added += 1;
                        stats::fold(&mut delta, stats::delta(None, &e));
                    } else {
                        result.already_present += 1;
                    }
                }
                repo::add_counters(&*self.table, tenant, campaign_id, &delta).await?;
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(result),
            }
        }
    }
}
