//! Conversations with a contact outside the campaign send itself (R5.5, R5.6): the
//! recontact template an operator sends after the 24-hour window expired, the
//! conversation view ("spy"), and releasing a contact when its interaction times out.
//!
//! Only operator sends are governed here: the engine sends no free-form (agent) messages
//! yet, so "only the recontact template after the window expires" is enforced by
//! [`crate::domain::conversation::may_send`] for the recontact endpoint and is ready for an
//! agent send path.

use super::hopper_views::Views;
use super::AppResult;
use crate::domain::account::Account;
use crate::domain::campaign::Campaign;
use crate::domain::conversation::{
    self, ConversationMessage, ConversationView, Direction, MessageKind, OperatorMessage,
    ServiceWindow,
};
use crate::domain::hopper::{shard_of, HopperEntry};
use crate::domain::idempotency::{self, IdempotencyKey, KeyedRequest};
use crate::domain::ids::{CampaignId, TenantId};
use crate::domain::inbound::EntryRef;
use crate::domain::outcome::{FailureClass, SendFailure};
use crate::domain::phone::PhoneNumber;
use crate::domain::template::{ContactData, Rendered, Template, TemplateKey, VariableSource};
use crate::domain::{DomainError, Time};
use crate::ports::{Clock, MessagingProvider, OutboundTemplate, PortError, Table};
use crate::repo;
use crate::repo::conversations as conv;
use crate::repo::Interaction;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// The operator's sends outside campaigns; needs the messaging provider, so it runs on its
/// own state beside the operator API.
pub struct Conversations {
    pub table: Arc<dyn Table>,
    pub provider: Arc<dyn MessagingProvider>,
    pub clock: Arc<dyn Clock>,
}

/// `POST /contacts/{phone}/recontact`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "acc_0190a1", "variables": [{"source": "contact_name"}]}))]
pub struct RecontactRequest {
    /// The provider account (business number) whose recontact template is sent.
    pub account_id: Option<String>,
    /// Source of each placeholder of the recontact template, `{{1}}` first, as for
    /// campaigns; none when the template has no placeholders.
    #[serde(default)]
    pub variables: Vec<VariableSource>,
    /// Source of the URL button's `{{1}}`, when the template's link ends with one.
    #[serde(default)]
    pub url_variable: Option<VariableSource>,
}

/// What a recontact send did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"phone": "919812345678", "account_id": "acc_0190a1",
    "template": {"name": "we_miss_you", "language": "en"}, "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgT",
    "text": "Hello Asha, the chat window has expired, please reply to this message if you still need support",
    "sent_at": "2026-11-23T10:00:00Z", "window_open": false, "window_until": "2026-11-22T09:20:00Z",
    "campaign_id": "cmp_0190a1"}))]
pub struct RecontactSent {
    pub phone: PhoneNumber,
    pub account_id: String,
    pub template: TemplateKey,
    /// The provider's message id.
    pub message_id: String,
    /// The template as the contact reads it.
    pub text: String,
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: Time,
    /// Whether the contact's 24-hour window was open when it went out.
    pub window_open: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window_until: Option<Time>,
    /// The campaign whose conversation view shows it (the contact's last campaign
    /// interaction on this number), if any.
    pub campaign_id: Option<String>,
}

/// What a recontact did: sent, or refused by the provider (or its outcome is unknown).
pub type RecontactAnswer = Result<RecontactSent, SendFailure>;

/// The operation idempotency keys of recontacts are kept under.
const RECONTACT: &str = "recontact";

/// What a recontact request asks for, as a digest: the same key with another request is
/// refused.
fn recontact_fingerprint(phone: &PhoneNumber, req: &RecontactRequest) -> String {
    use sha2::Digest;
    let asked = serde_json::json!({"phone": phone, "account_id": req.account_id, "variables": req.variables});
    hex::encode(sha2::Sha256::digest(asked.to_string()))
}

/// Marks recontact sends' callback data, so their statuses are told from campaign ones.
const RECONTACT_CALLBACK: &str = "rc1";

impl Conversations {
    /// Sends the account's recontact template to a contact (R5.5), when
    /// [`conversation::may_send`] allows it: not while a campaign waits for the contact's
    /// answer (409 with R5.1's message), never to an opted-out contact. 404 for an
    /// unknown account, 409 when it has no (usable) recontact template, 422 for a bad
    /// number or a placeholder without a value. `Ok(Err(_))`: the provider refused it.
    ///
    /// With an idempotency key, the same request again gets the first answer and sends
    /// nothing ([`crate::domain::idempotency`]); the key is taken before the send and
    /// freed only when nothing went out.
    pub async fn recontact(
        &self,
        tenant: &TenantId,
        phone: &str,
        req: RecontactRequest,
        key: Option<IdempotencyKey>,
    ) -> AppResult<RecontactAnswer> {
        let phone = PhoneNumber::parse(phone)?;
        if !phone.is_dialable() {
            let why = crate::domain::phone::short_phone_error(&phone);
            return Err(DomainError::invalid("phone", why).into());
        }
        let Some(key) = key else {
            return self.recontact_held(tenant, &phone, req).await;
        };
        let fingerprint = recontact_fingerprint(&phone, &req);
        let mut keyed = match self.take_key(tenant, key, fingerprint).await? {
            Ok(keyed) => keyed,
            Err(earlier) => return Ok(earlier),
        };
        let answer = self.recontact_held(tenant, &phone, req).await;
        let kept = match &answer {
            // Sent, or maybe sent: the key answers this from now on, never sending again.
            Ok(Ok(_))
            | Ok(Err(SendFailure {
                class: FailureClass::Unknown,
                ..
            })) => {
                keyed.answer = answer.as_ref().ok().cloned();
                conv::save_keyed(&*self.table, RECONTACT, &mut keyed).await
            }
            // Refused before anything went out (a rule, the contact busy, storage, or the
            // provider's definite refusal): the same request may try again.
            _ => conv::delete_keyed(&*self.table, RECONTACT, &keyed).await,
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "idempotency key not updated; it answers 409 until it expires");
        }
        answer
    }

    /// Takes `key` for a new request, or the answer an earlier request with it had.
    async fn take_key(
        &self,
        tenant: &str,
        key: IdempotencyKey,
        fingerprint: String,
    ) -> AppResult<Result<KeyedRequest<RecontactAnswer>, RecontactAnswer>> {
        let now = self.clock.now();
        let mut keyed = KeyedRequest::new(tenant, key, fingerprint, now);
        let t = &*self.table;
        if let Some(old) =
            conv::get_keyed::<RecontactAnswer>(t, tenant, RECONTACT, &keyed.key).await?
        {
            if old.expires_at() > now {
                return Ok(Err(old.replay(&keyed.fingerprint)?));
            }
            keyed.version = old.version;
        }
        match conv::save_keyed(t, RECONTACT, &mut keyed).await {
            Ok(()) => Ok(Ok(keyed)),
            // Another request with the key took it between the read and the write.
            Err(PortError::ConditionFailed) => Err(idempotency::unfinished().into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The recontact itself, with the contact held from its checks to its records, so a
    /// campaign's send or another recontact cannot reach the contact at the same moment.
    async fn recontact_held(
        &self,
        tenant: &str,
        phone: &PhoneNumber,
        req: RecontactRequest,
    ) -> AppResult<RecontactAnswer> {
        let holder = crate::domain::new_id("recontact");
        let now = self.clock.now();
        if take_contact_hold(&*self.table, tenant, phone, &holder, now)
            .await?
            .is_err()
        {
            return Err(DomainError::Conflict(
                "another send to this contact is under way (a campaign's or a recontact); \
                 try again in a minute"
                    .into(),
            )
            .into());
        }
        let res = self.recontact_checked(tenant, phone, req).await;
        // A provider call whose outcome is unknown keeps the hold until it lapses.
        if !matches!(&res, Ok(Err(f)) if f.class == FailureClass::Unknown) {
            let now = self.clock.now();
            release_contact_hold(&*self.table, tenant, phone, &holder, now).await;
        }
        res
    }

    async fn recontact_checked(
        &self,
        tenant: &str,
        phone: &PhoneNumber,
        req: RecontactRequest,
    ) -> AppResult<RecontactAnswer> {
        let phone = phone.clone();
        let account_id = crate::domain::account::required("account_id", req.account_id.clone())?;
        let (account, template) = self.recontact_template(tenant, &account_id, &req).await?;
        let sender = &account.sender_id;
        let (interaction, window, data) = self.check_may_recontact(tenant, sender, &phone).await?;
        let rendered = template
            .render(&req.variables, req.url_variable.as_ref(), &data)
            .map_err(|why| DomainError::invalid("variables", why))?;
        let msg = recontact_message(&template, &phone, tenant, rendered.clone());
        let message_id = match self.provider.send(&account, &msg).await {
            Ok(a) => a.message_id,
            Err(failure) => {
                tracing::warn!(phone = %phone.masked(), account_id = %account_id, reason = %failure.reason, "recontact template refused by the provider");
                return Ok(Err(failure));
            }
        };
        let sent_at = self.clock.now();
        let window_open = window.as_ref().is_some_and(|w| w.is_open(sent_at));
        let window_until = window.as_ref().and_then(|w| w.until);
        self.note_recontact(tenant, sender, &phone, &message_id, &template.name, sent_at)
            .await;
        let campaign_id = self
            .record_on_conversation(
                interaction.as_ref(),
                &phone,
                &message_id,
                &rendered.text,
                &template.name,
                sent_at,
            )
            .await;
        tracing::info!(phone = %phone.masked(), account_id = %account_id, "recontact template sent");
        Ok(Ok(RecontactSent {
            phone,
            account_id,
            template: TemplateKey {
                name: template.name,
                language: template.language,
            },
            message_id,
            text: rendered.text,
            sent_at,
            window_open,
            window_until,
            campaign_id,
        }))
    }

    /// Loads the account and its recontact template, checked usable with `variables`.
    async fn recontact_template(
        &self,
        tenant: &str,
        account_id: &str,
        req: &RecontactRequest,
    ) -> AppResult<(Account, Template)> {
        let t = &*self.table;
        let account = repo::get_account(t, tenant, account_id)
            .await?
            .ok_or_else(|| DomainError::not_found("account", account_id))?;
        let settings = repo::get_template_settings(t, tenant, account_id).await?;
        let key = settings.recontact.ok_or_else(|| {
            DomainError::Conflict(format!(
                "account {account_id} has no recontact template: choose one with PUT /accounts/{account_id}/recontact-template"
            ))
        })?;
        let template = repo::get_template(t, tenant, account_id, &key.name, &key.language)
            .await?
            .ok_or_else(|| {
                DomainError::Conflict(format!(
                    "the recontact template {} ({}) of account {account_id} no longer exists",
                    key.name, key.language
                ))
            })?;
        template.check_usable(&req.variables, req.url_variable.as_ref())?;
        Ok((account, template))
    }

    /// Refuses (409) unless `may_send` allows a recontact now; answers interaction, window, data.
    async fn check_may_recontact(
        &self,
        tenant: &str,
        sender: &str,
        phone: &PhoneNumber,
    ) -> AppResult<(Option<Interaction>, Option<ServiceWindow>, ContactData)> {
        let t = &*self.table;
        let (interaction, window, opted_out, contact) = futures::try_join!(
            repo::get_interaction(t, sender, phone),
            conv::get_window(t, sender, phone),
            repo::blocklists::is_opted_out(t, tenant, phone),
            repo::get_contact(t, tenant, phone),
        )?;
        // An interaction of another tenant on a shared number is none of ours.
        let interaction = interaction.filter(|i| i.entry.tenant == tenant);
        let now = self.clock.now();
        conversation::may_send(
            OperatorMessage::RecontactTemplate,
            interaction.as_ref(),
            window.as_ref(),
            opted_out,
            now,
        )
        .map_err(|r| DomainError::Conflict(r.message().to_owned()))?;
        let data: ContactData = contact.map(|c| c.data()).unwrap_or_default();
        Ok((interaction, window, data))
    }

    /// Adds the recontact to the contact's campaign conversation (best effort); its campaign id.
    async fn record_on_conversation(
        &self,
        interaction: Option<&Interaction>,
        phone: &PhoneNumber,
        message_id: &str,
        text: &str,
        template: &str,
        sent_at: Time,
    ) -> Option<String> {
        let i = interaction?;
        let m = ConversationMessage {
            direction: Direction::Outbound,
            kind: MessageKind::Recontact,
            message_id: Some(message_id.to_owned()),
            at: sent_at,
            text: Some(text.to_owned()),
            button: None,
            template: Some(template.to_owned()),
        };
        if let Err(e) = conv::put_message(&*self.table, &i.entry, &m).await {
            tracing::warn!(phone = %phone.masked(), error = %e, "recontact not recorded on the conversation");
        }
        Some(i.entry.campaign_id.clone())
    }

    /// Records the recontact on the contact's window item (best effort: the message went
    /// out whatever happens here).
    async fn note_recontact(
        &self,
        tenant: &str,
        sender: &str,
        phone: &PhoneNumber,
        message_id: &str,
        template: &str,
        at: Time,
    ) {
        let t = &*self.table;
        let noted = super::retry_on_conflict(|_| async move {
            let mut w = conv::get_window(t, sender, phone)
                .await?
                .unwrap_or_else(|| ServiceWindow::new(sender, phone.clone()));
            w.recontacted(tenant, message_id.to_owned(), template.to_owned(), at);
            Ok(conv::save_window(t, &mut w).await?)
        })
        .await;
        match noted {
            // Changed by others every time: they noted newer news on the window.
            Err(e) if e.is_write_conflict() => {}
            Err(e) => tracing::warn!(error = %e, "recontact not noted on the window"),
            Ok(()) => {}
        }
    }
}

/// The provider message of a recontact, marked as one in its callback data.
fn recontact_message(
    template: &Template,
    phone: &PhoneNumber,
    tenant: &str,
    rendered: Rendered,
) -> OutboundTemplate {
    OutboundTemplate {
        to: phone.clone(),
        template: template.name.clone(),
        language: template.language.clone(),
        params: rendered.params,
        url_suffix: rendered.url_suffix,
        quick_reply_payloads: template.quick_replies.clone(),
        callback_data: format!("{RECONTACT_CALLBACK}|{tenant}|{phone}"),
        header: template.header.clone(),
        // A recontact reopens a conversation; it goes through the Cloud API, whose
        // statuses carry its callback data.
        marketing_messages: false,
    }
}

impl Views {
    /// The conversation view of one contact in a campaign (R5.6): the template it received
    /// as rendered, then every reply and later message in order. 404 for an unknown
    /// campaign or a contact not in its hopper.
    pub async fn conversation(
        &self,
        tenant: &TenantId,
        campaign_id: &CampaignId,
        phone: &str,
    ) -> AppResult<ConversationView> {
        let t = &*self.table;
        let c = self.load(tenant, campaign_id).await?;
        let phone = PhoneNumber::parse(phone)?;
        let r = EntryRef {
            tenant: tenant.to_string(),
            campaign_id: c.id.clone(),
            shard: shard_of(&phone, c.hopper_shards),
            phone: phone.clone(),
        };
        let entry = repo::get_entry(t, &r)
            .await?
            .ok_or_else(|| DomainError::not_found("contact in campaign", phone.as_str()))?;
        let stored = conv::messages(t, &r).await?;
        let window = match sender_of(t, &c).await? {
            Some(s) => conv::get_window(t, &s, &phone).await?,
            None => None,
        };
        let template = c.template.as_ref().map(|tr| tr.name.as_str());
        Ok(ConversationView::of(
            &entry,
            template,
            stored,
            window.and_then(|w| w.until),
        ))
    }
}

/// The business number a campaign sends from.
async fn sender_of(table: &dyn Table, c: &Campaign) -> AppResult<Option<String>> {
    Ok(match &c.account_id {
        Some(a) => repo::get_account(table, &c.tenant, a)
            .await?
            .map(|a| a.sender_id),
        None => None,
    })
}

/// Sender and response timeout of campaigns, read once per sweep.
pub(crate) type CampaignSenders = HashMap<(String, String), Option<(String, chrono::Duration)>>;

/// Takes the hold on a contact of `tenant` for `holder` (an entry's sender, or an
/// operator's recontact), or says until when another has it.
pub(crate) async fn take_contact_hold(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
    holder: &str,
    now: Time,
) -> AppResult<Result<(), Time>> {
    super::retry_on_conflict(|_| async move {
        let mut hold = repo::get_hold(table, tenant, phone).await?;
        // A sender that failed midway left the contact held until now: its entry may
        // have gone out (still SENDING, or recorded without its interaction), so the
        // contact is held for it first, as the sweeper or a redelivery would.
        if let Some(lapsed) = hold.lapsed_holder(holder, now).and_then(EntryRef::decode) {
            if let Some(stale) = repo::get_entry(table, &lapsed).await? {
                let mut campaigns = CampaignSenders::new();
                if !hold_after_unknown_outcome(table, &mut campaigns, &stale).await {
                    return Ok(Err(now + crate::domain::eligibility::HOLD_RECHECK));
                }
            }
        }
        if let Err(until) = hold.take(holder, now) {
            return Ok(Err(until));
        }
        repo::save_hold(table, &mut hold).await?;
        Ok(Ok(()))
    })
    .await
}

/// Lets go of a contact once its interaction is written (or nothing was sent). A failure
/// only delays the contact's next send until the hold lapses.
pub(crate) async fn release_contact_hold(
    table: &dyn Table,
    tenant: &str,
    phone: &PhoneNumber,
    holder: &str,
    now: Time,
) {
    let res = super::retry_on_conflict(|_| async move {
        let mut hold = repo::get_hold(table, tenant, phone).await?;
        if hold.release(holder, now) {
            repo::save_hold(table, &mut hold).await?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = res {
        tracing::warn!(phone = %phone.masked(), error = %e, "contact hold not released; it lapses");
    }
}

/// Holds the contact for `entry`, whose sender failed midway: the sweeper reclaiming a
/// stale claim, or another sender finding its hold lapsed. A SENDING entry's message may
/// have been accepted: the contact counts as written to from the claim on
/// ([`Interaction::maybe_sent`]); an entry recorded as sent gets the interaction its
/// sender may have failed to write ([`Interaction::restored`]). Returns false when that
/// could not be stored (the caller tries again later); true when it was, or when there is
/// nothing to hold (never claimed, a campaign or account gone).
pub(crate) async fn hold_after_unknown_outcome(
    table: &dyn Table,
    campaigns: &mut CampaignSenders,
    entry: &HopperEntry,
) -> bool {
    let Some(at) = entry.claimed_at else {
        return true;
    };
    let key = (entry.tenant.clone(), entry.campaign_id.clone());
    if !campaigns.contains_key(&key) {
        let found = match repo::get_campaign(table, &entry.tenant, &entry.campaign_id).await {
            Ok(Some(c)) => sender_of(table, &c)
                .await
                .ok()
                .flatten()
                .map(|s| (s, c.response_timeout())),
            _ => None,
        };
        campaigns.insert(key.clone(), found);
    }
    let Some((sender, timeout)) = campaigns.get(&key).cloned().flatten() else {
        return true;
    };
    let held = async {
        let previous = repo::get_interaction(table, &sender, &entry.phone).await?;
        let i = if entry.state == crate::domain::hopper::EntryState::Sending {
            Interaction::maybe_sent(
                entry.entry_ref(),
                entry.attempts,
                at,
                timeout,
                previous.as_ref(),
            )
        } else {
            Interaction::restored(entry, timeout, previous.as_ref())
        };
        if let Some(i) = i {
            repo::put_interaction(table, &sender, &i).await?;
        }
        Ok::<_, crate::ports::PortError>(())
    };
    match held.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(phone = %entry.phone.masked(), error = %e, "contact not held after an unknown outcome; reclaimed next sweep");
            false
        }
    }
}
