//! Contacts, lists and a campaign's audience (R2.1-R2.3).
//!
//! **Custom fields follow the contact into the hopper (R2.2).** A hopper entry keeps a
//! snapshot of the contact's name, fields and valued tags (what its template renders).
//! When the contact is updated, or attached to a campaign again (list or segment), the
//! snapshot of each of its entries is refreshed **while the entry has not been handed to
//! the sender**: FRESH entries after the shard's dispatch cursor, and RETRY entries.
//! Entries already queued, sent or finished keep what they had (what was sent stays what
//! was sent). The contact's partition links it to its campaigns, so an update finds its
//! entries with one query.
//!
//! **The segmentation index (R2.3)** lists each contact under each of its tags and valued
//! tags. New memberships are written before the contact and stale ones removed after it,
//! so the index is always a superset of the truth; a segment checks every candidate on the
//! contact itself, so a stale membership costs a read, never a wrong send.
//!
//! **Deleting a contact** removes it, its list memberships and its index items. Entries
//! already in a campaign's hopper stay: they are that campaign's record.

use super::campaigns::{prefix, AttachResult, PAGE};
use super::{busy, retry_on_conflict, AppResult};
use crate::domain::campaign::Campaign;
use crate::domain::contact::{
    index_keys, AttachSource, CheckedKey, Contact, ContactList, NewContact, PendingAttach, Segment,
};
use crate::domain::hopper::{EntryState, HopperEntry};
use crate::domain::ids::TenantId;
use crate::domain::inbound::EntryRef;
use crate::domain::phone::PhoneNumber;
use crate::domain::stats;
use crate::domain::template::ContactData;
use crate::domain::{DomainError, Time};
use crate::ports::Table;
use crate::repo::{self, CampaignLink, Cursors};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};

operator_service! {
    /// Contacts, lists, imports and campaign audiences (R2).
    Audience
}

/// At most this many contacts in one `POST /contacts`; more go through the CSV import.
pub const MAX_CONTACTS_PER_REQUEST: usize = 1000;
/// Concurrent table calls while attaching a page of contacts.
const ATTACH_CONCURRENCY: usize = 16;

/// What one upsert did.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub contact: Contact,
    /// Member-count changes of the index keys (+1 added, -1 removed), for the caller to
    /// fold and apply.
    pub index_delta: BTreeMap<String, i64>,
}

fn same_content(a: &Contact, b: &Contact) -> bool {
    let strip = |c: &Contact| Contact {
        updated_at: c.created_at.unwrap_or(c.updated_at),
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// Creates or updates one contact (see `domain::contact` for the rules), keeps the
/// segmentation index in step and refreshes the contact's unsent hopper entries.
/// Index member counts are returned, not written, so bulk callers can fold them.
pub async fn upsert_one(
    table: &dyn Table,
    tenant: &str,
    input: NewContact,
    now: Time,
) -> AppResult<Upserted> {
    let key = input.checked_key()?;
    upsert_keyed(table, tenant, &key, input, now).await
}

/// [`upsert_one`] with the key already validated.
pub async fn upsert_keyed(
    table: &dyn Table,
    tenant: &str,
    checked: &CheckedKey,
    input: NewContact,
    now: Time,
) -> AppResult<Upserted> {
    let key = &checked.phone;
    let input = &input;
    // The contact is stored first (retried on a conflict); then the index members it
    // left and the open snapshots of its entries follow.
    let stored = retry_on_conflict(|_| async move {
        let existing = repo::get_contact(table, tenant, key).await?;
        let mut c = Contact::apply_keyed(tenant, existing.clone(), checked, input.clone(), now)?;
        if let Some(old) = existing.as_ref().filter(|old| same_content(old, &c)) {
            return Ok(Err(old.clone()));
        }
        let before = existing.as_ref().map(index_keys).unwrap_or_default();
        let after = index_keys(&c);
        for k in after.difference(&before) {
            repo::put_index_member(table, tenant, k, &c.phone).await?;
        }
        repo::save_contact(table, &mut c, existing.is_some()).await?;
        Ok(Ok((c, existing, before, after)))
    })
    .await
    .map_err(busy(|| format!("contact {}", key.masked())))?;
    // Err: nothing to change, the stored contact as it is.
    let (c, existing, before, after) = match stored {
        Ok(changed) => changed,
        Err(unchanged) => {
            return Ok(Upserted {
                contact: unchanged,
                index_delta: BTreeMap::new(),
            })
        }
    };
    let mut index_delta = BTreeMap::new();
    for k in after.difference(&before) {
        index_delta.insert(k.clone(), 1);
    }
    for k in before.difference(&after) {
        repo::delete_index_member(table, tenant, k, &c.phone).await?;
        index_delta.insert(k.clone(), -1);
    }
    if let Some(old) = &existing {
        if old.data() != c.data() {
            let rec = repo::load_contact(table, tenant, &c.phone).await?;
            let mut cursors = HashMap::new();
            for link in &rec.campaigns {
                sync_entry(table, tenant, link, &c.phone, &c.data(), &mut cursors, now).await?;
            }
        }
    }
    Ok(Upserted {
        contact: c,
        index_delta,
    })
}

/// Whether an entry's contact snapshot may still change: it has not been handed to the
/// sender (FRESH after the dispatch cursor of its shard) or waits for a retry.
fn snapshot_open(e: &HopperEntry, cursors: &Cursors) -> bool {
    match e.state {
        EntryState::Retry => true,
        EntryState::Fresh => cursors
            .after
            .get(&e.shard)
            .is_none_or(|c| repo::seq_key(e.seq).as_str() > c.as_str()),
        _ => false,
    }
}

/// Refreshes one entry's contact snapshot if it is still open (R2.2). Returns whether it
/// changed.
async fn sync_entry(
    table: &dyn Table,
    tenant: &str,
    link: &CampaignLink,
    phone: &PhoneNumber,
    data: &ContactData,
    cursors: &mut HashMap<String, Cursors>,
    now: Time,
) -> AppResult<bool> {
    let r = EntryRef {
        tenant: tenant.to_owned(),
        campaign_id: link.campaign_id.clone(),
        shard: link.shard,
        phone: phone.clone(),
    };
    if !cursors.contains_key(&link.campaign_id) {
        let c = repo::get_cursors(table, tenant, &link.campaign_id).await?;
        cursors.insert(link.campaign_id.clone(), c);
    }
    let (cur, r) = (&cursors[&link.campaign_id], &r);
    let synced = retry_on_conflict(|_| async move {
        let Some(mut e) = repo::get_entry(table, r).await? else {
            return Ok(false);
        };
        if e.contact == *data || !snapshot_open(&e, cur) {
            return Ok(false);
        }
        e.contact = data.clone();
        repo::save_entry(table, &mut e, now).await?;
        Ok(true)
    })
    .await;
    match synced {
        Err(e) if e.is_write_conflict() => Ok(false),
        other => other,
    }
}

/// Puts contacts into a campaign's hopper as FRESH, in order; a contact already there
/// keeps its one entry, whose snapshot is refreshed while still open (R2.2).
async fn add_to_hopper(
    table: &dyn Table,
    campaign: &Campaign,
    contacts: Vec<Contact>,
    result: &mut AttachResult,
    now: Time,
) -> AppResult<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    let tenant = &campaign.tenant;
    let first = repo::reserve_seq(table, tenant, &campaign.id, contacts.len() as u64).await?;
    let outcomes: Vec<(bool, stats::Delta)> = stream::iter(contacts.into_iter().enumerate())
        .map(|(i, c)| async move {
            let mut e = HopperEntry::new(campaign, c.phone.clone(), c.data(), first + i as u64);
            // The link first: a link without an entry is harmless, an entry without a
            // link would miss updates.
            let link = CampaignLink {
                campaign_id: campaign.id.clone(),
                shard: e.shard,
            };
            repo::put_campaign_link(table, tenant, &c.phone, &link).await?;
            if repo::insert_entry(table, &mut e, now).await? {
                Ok::<_, super::AppError>((true, stats::delta(None, &e)))
            } else {
                let mut cursors = HashMap::new();
                sync_entry(table, tenant, &link, &c.phone, &c.data(), &mut cursors, now).await?;
                Ok((false, stats::Delta::new()))
            }
        })
        .buffer_unordered(ATTACH_CONCURRENCY)
        .try_collect()
        .await?;
    let mut delta = stats::Delta::new();
    for (added, d) in outcomes {
        if added {
            result.added += 1;
        } else {
            result.already_present += 1;
        }
        stats::fold(&mut delta, d);
    }
    repo::add_counters(table, tenant, &campaign.id, &delta).await?;
    Ok(())
}

/// Reads the contacts of a page of phones; phones without a contact (deleted) drop out.
async fn contacts_of(
    table: &dyn Table,
    tenant: &str,
    phones: Vec<PhoneNumber>,
) -> AppResult<Vec<Contact>> {
    let found: Vec<Option<Contact>> = stream::iter(phones)
        .map(|p| async move { repo::get_contact(table, tenant, &p).await })
        .buffered(ATTACH_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

impl Audience {
    /// Creates or updates many contacts. Every input is validated before any is stored, so
    /// a bad one changes nothing; errors name it (`[3].phone`).
    pub async fn upsert_contacts(
        &self,
        tenant: &TenantId,
        input: Vec<NewContact>,
    ) -> AppResult<Vec<Contact>> {
        if input.len() > MAX_CONTACTS_PER_REQUEST {
            return Err(DomainError::invalid(
                "contacts",
                format!(
                    "at most {MAX_CONTACTS_PER_REQUEST} contacts per request; import a CSV \
                     (POST /contacts/import or POST /imports) for more"
                ),
            )
            .into());
        }
        let now = self.now();
        for (i, c) in input.iter().enumerate() {
            Contact::create(tenant, c.clone(), now).map_err(|e| prefix(e, &format!("[{i}]")))?;
        }
        let mut out = Vec::with_capacity(input.len());
        let mut counts = BTreeMap::new();
        for c in input {
            let u = upsert_one(&*self.table, tenant, c, now).await?;
            fold_counts(&mut counts, u.index_delta);
            out.push(u.contact);
        }
        repo::add_index_counts(&*self.table, tenant, &counts).await?;
        Ok(out)
    }

    /// Creates or updates one contact; with `phone` (from the path) the body's phone, if
    /// any, must be the same number.
    pub async fn upsert_contact(
        &self,
        tenant: &TenantId,
        phone: Option<&str>,
        mut input: NewContact,
    ) -> AppResult<Contact> {
        if let Some(p) = phone {
            let key = PhoneNumber::parse(p)?;
            if let Some(given) = input.phone.as_deref() {
                // The body's number is validated with the rest of it (`checked_key`).
                if PhoneNumber::parse(given)? != key {
                    return Err(DomainError::invalid(
                        "phone",
                        "differs from the phone in the path; a contact's phone cannot change",
                    )
                    .into());
                }
            }
            input.phone = Some(key.to_string());
        }
        let u = upsert_one(&*self.table, tenant, input, self.now()).await?;
        repo::add_index_counts(&*self.table, tenant, &u.index_delta).await?;
        Ok(u.contact)
    }

    pub async fn get_contact(&self, tenant: &TenantId, phone: &str) -> AppResult<Contact> {
        let p = PhoneNumber::parse(phone)?;
        repo::get_contact(&*self.table, tenant, &p)
            .await?
            .ok_or_else(|| DomainError::not_found("contact", p.masked()).into())
    }

    pub async fn list_contacts(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<Contact>, Option<String>)> {
        Ok(repo::list_contacts(&*self.table, tenant, limit.clamp(1, 100), cursor).await?)
    }

    /// Deletes a contact with its list memberships and index items (see the module docs).
    pub async fn delete_contact(&self, tenant: &TenantId, phone: &str) -> AppResult<()> {
        let p = PhoneNumber::parse(phone)?;
        let rec = repo::load_contact(&*self.table, tenant, &p).await?;
        let Some(c) = &rec.contact else {
            return Err(DomainError::not_found("contact", p.masked()).into());
        };
        let mut counts = BTreeMap::new();
        for k in index_keys(c) {
            repo::delete_index_member(&*self.table, tenant, &k, &p).await?;
            counts.insert(k, -1);
        }
        repo::delete_contact_partition(&*self.table, tenant, &p, &rec).await?;
        repo::add_index_counts(&*self.table, tenant, &counts).await?;
        Ok(())
    }

    pub async fn create_list(
        &self,
        tenant: &TenantId,
        name: Option<String>,
    ) -> AppResult<ContactList> {
        let l = ContactList::create(tenant, name, self.now())?;
        repo::put_list(&*self.table, &l).await?;
        Ok(l)
    }

    /// A page of the tenant's lists, oldest first.
    pub async fn list_lists(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<ContactList>, Option<String>)> {
        Ok(repo::lists_page(&*self.table, tenant, limit.clamp(1, 100), cursor).await?)
    }

    pub async fn get_list(&self, tenant: &TenantId, id: &str) -> AppResult<ContactList> {
        repo::get_list(&*self.table, tenant, id)
            .await?
            .ok_or_else(|| DomainError::not_found("list", id).into())
    }

    /// Adds existing contacts to a list; unknown or malformed phones name their index.
    pub async fn add_list_members(
        &self,
        tenant: &TenantId,
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

    /// One page of a list's members (phones, in phone order).
    pub async fn list_members(
        &self,
        tenant: &TenantId,
        list: &str,
        limit: u32,
        cursor: Option<String>,
    ) -> AppResult<(Vec<PhoneNumber>, Option<String>)> {
        self.get_list(tenant, list).await?;
        Ok(repo::list_members(&*self.table, tenant, list, limit.clamp(1, 1000), cursor).await?)
    }
}

/// The campaign an attach fills: visible and accepting contacts now
/// ([`Campaign::accepts_contacts_at`]).
pub(crate) async fn attach_campaign(
    table: &dyn Table,
    tenant: &str,
    campaign_id: &str,
    now: Time,
) -> AppResult<Campaign> {
    let campaign = super::load_visible(table, tenant, campaign_id).await?;
    campaign.accepts_contacts_at(now)?;
    Ok(campaign)
}

/// A list as an attach's source, and its name (404 when the tenant has no such list).
pub(crate) async fn list_source(
    table: &dyn Table,
    tenant: &str,
    list_id: &str,
) -> AppResult<(AttachSource, String)> {
    let list = repo::get_list(table, tenant, list_id)
        .await?
        .ok_or_else(|| DomainError::not_found("list", list_id))?;
    let source = AttachSource::List {
        list_id: list_id.to_owned(),
    };
    Ok((source, list.name))
}

/// A segment as an attach's source (R2.3): normalised, walking the smallest of the index
/// sets involved and checking the others on each contact.
pub(crate) async fn segment_source(
    table: &dyn Table,
    tenant: &str,
    segment: &Segment,
) -> AppResult<AttachSource> {
    let segment = segment.normalised()?;
    let key = smallest_key(table, tenant, &segment).await?;
    Ok(AttachSource::Segment { segment, key })
}

/// The index key of a normalised segment with the fewest members: the set to walk.
pub(crate) async fn smallest_key(
    table: &dyn Table,
    tenant: &str,
    segment: &Segment,
) -> AppResult<String> {
    let mut smallest: Option<(i64, String)> = None;
    for k in segment.index_keys() {
        let n = repo::index_count(table, tenant, &k).await?;
        if smallest.as_ref().is_none_or(|(m, _)| n < *m) {
            smallest = Some((n, k));
        }
    }
    let (_, key) = smallest.expect("a normalised segment has a key");
    Ok(key)
}

/// Puts the next page of the source's contacts into the campaign's hopper as FRESH (a
/// contact already there keeps its one entry, R2.2) and moves the cursor on. False once
/// the source is walked to its end. A page attached twice (a walk continued from a cursor
/// stored before a crash) adds nothing twice. A page that fails leaves the cursor where it
/// was, so the walk goes on from there, not from the first page.
pub(crate) async fn attach_page(
    table: &dyn Table,
    campaign: &Campaign,
    pending: &mut PendingAttach,
    result: &mut AttachResult,
    now: Time,
) -> AppResult<bool> {
    let tenant = &campaign.tenant;
    let cursor = pending.after.clone();
    let (contacts, next) = match &pending.source {
        AttachSource::List { list_id } => {
            let (phones, next) = repo::list_members(table, tenant, list_id, PAGE, cursor).await?;
            (contacts_of(table, tenant, phones).await?, next)
        }
        AttachSource::Segment { segment, key } => {
            let (phones, next) = repo::index_members(table, tenant, key, PAGE, cursor).await?;
            let matching = contacts_of(table, tenant, phones)
                .await?
                .into_iter()
                .filter(|c| segment.matches(c))
                .collect();
            (matching, next)
        }
    };
    add_to_hopper(table, campaign, contacts, result, now).await?;
    pending.after = next;
    Ok(pending.after.is_some())
}

/// Adds one upsert's index count changes to a running total.
pub fn fold_counts(acc: &mut BTreeMap<String, i64>, d: BTreeMap<String, i64>) {
    for (k, v) in d {
        *acc.entry(k).or_insert(0) += v;
    }
}
