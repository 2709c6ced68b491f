//! The sender: claims each queued entry, renders its template, calls the provider and
//! records the outcome. At most once (R4.10): the claim is a conditional write made
//! before the provider is called, so a redelivered or retried message finds the entry
//! no longer claimable and sends nothing.

use super::blocklists::note_marketing_choice;
use super::conversations::{release_contact_hold, take_contact_hold};
use super::{retry_on_conflict, update_campaign, AppError, AppResult};
use crate::domain::account::Account;
use crate::domain::blocklist::MarketingPreference;
use crate::domain::blocklist::OptOut;
use crate::domain::campaign::{Campaign, Channel};
use crate::domain::country_rules;
use crate::domain::eligibility::{self, ContactFacts, Interaction, Verdict};
use crate::domain::hopper::{EntryState, HopperEntry, TEMPLATE_VARIABLES_REASON};
use crate::domain::inbound::{at_provider_resolution, EntryRef, SendJob};
use crate::domain::outcome::{FailureClass, SendFailure};
use crate::domain::pacing;
use crate::domain::phone::PhoneNumber;
use crate::domain::sms;
use crate::domain::stats::{self, Delta};
use crate::domain::template::{status_from_send_error, Category, Rendered, Template};
use crate::domain::voice::{self, AmdAction, VoiceSettings};
use crate::domain::Time;
use crate::ports::{
    Accepted, AmdConfig, Clock, EventBus, MessagingProvider, OutboundCall, OutboundSms,
    OutboundTemplate, PortError, Table,
};
use crate::repo;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Clone)]
pub struct SendService {
    pub table: Arc<dyn Table>,
    pub provider: Arc<dyn MessagingProvider>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// Records of one batch processed at once.
    pub concurrency: usize,
    /// Holds each record until its planned slot (at most [`MAX_SLOT_WAIT`]): SQS makes a
    /// delayed message visible up to a second early, so without it a second's sends leave
    /// in a burst, and at a number's full rate the tail of one second's burst meets the
    /// next second's (Meta's 130429). Deployed and local senders wait; tests on a manual
    /// clock, where a real sleep would not move time, do not.
    pub wait_for_slot: bool,
}

/// The longest a record is held for its slot: the queue's delay granularity.
pub const MAX_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What happened to one queued entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent(String),
    Failed(String),
    Retry(String),
    /// The provider may have taken it (its answer was lost): RETRY "outcome unknown".
    MaybeSent(String),
    /// Nothing was sent, with why (already claimed, campaign not running, ...).
    Skipped(&'static str),
    /// A check before the send ruled the contact out (R4.2): recorded with this reason.
    NotSent(&'static str),
    /// The contact is busy elsewhere; the entry waits (R4.6).
    Waiting,
}

/// What a campaign sends: a WhatsApp template, an SMS campaign's message, or a voice
/// campaign's call.
enum Content {
    Template(Box<Template>),
    Sms(String),
    Call(Box<VoiceSettings>),
}

impl Content {
    fn template(&self) -> Option<&Template> {
        match self {
            Content::Template(t) => Some(t),
            Content::Sms(_) | Content::Call(_) => None,
        }
    }

    fn call(&self) -> Option<&VoiceSettings> {
        match self {
            Content::Call(v) => Some(v),
            _ => None,
        }
    }

    /// The quick-reply payloads a reply may carry (none on SMS).
    fn quick_replies(&self) -> Vec<String> {
        self.template()
            .map(|t| t.quick_replies.clone())
            .unwrap_or_default()
    }
}

/// One attempt's message, ready for the provider.
enum Message {
    Template(OutboundTemplate),
    Sms(OutboundSms),
    Call(OutboundCall),
}

/// Who sends an entry's message and what it is: the campaign's account and content, or
/// for an entry falling back to SMS, the fallback's.
#[derive(Clone, Copy)]
struct Route<'a> {
    account: &'a Account,
    content: &'a Content,
}

/// Everything a batch needs about one campaign, read once per batch.
struct CampaignCtx {
    campaign: Campaign,
    account: Account,
    content: Content,
    /// A WhatsApp campaign's SMS fallback: its account and message.
    fallback: Option<(Account, Content)>,
    /// The sender ids of all the tenant's accounts: a contact's interactions with any of
    /// them count for the duplicate window and the active-interaction check (R4.5, R4.6).
    senders: Vec<String>,
    /// Set when a send of this batch hit a campaign-level failure: the campaign is being
    /// paused, so the rest of the batch leaves its entries untouched (R4.7).
    halted: std::sync::atomic::AtomicBool,
}

impl CampaignCtx {
    /// The route of an entry as claimed: its SMS fallback's once it falls back (the
    /// campaign's own when the fallback's account is gone: WhatsApp refuses it again and
    /// it fails, never sent twice by SMS).
    fn route(&self, e: &HopperEntry) -> Route<'_> {
        match (&self.fallback, e.sends_sms_fallback()) {
            (Some((account, content)), true) => Route { account, content },
            _ => Route {
                account: &self.account,
                content: &self.content,
            },
        }
    }

    /// The checks of R4.2 for one claimed entry: a WhatsApp template's country rules and
    /// marketing opt-out apply to its template only.
    fn verdict(&self, e: &HopperEntry, facts: &ContactFacts, now: Time) -> Verdict {
        let c = &self.campaign;
        match self.route(e).content.template() {
            Some(t) => country_rules::check_send(c, t.category, &e.phone, facts, now),
            None => eligibility::check(c, &e.phone, facts, now),
        }
    }
}

/// What claiming an entry did.
enum Claim {
    /// The entry is SENDING and this worker sends it.
    Claimed(Box<HopperEntry>),
    /// Nothing to send: the checks' outcome was recorded, or the entry is gone or taken.
    Done(SendOutcome),
}

/// The result of a write of an entry and what it changed in the counters (also when the
/// write failed but was stored nonetheless).
struct Stored<T> {
    delta: Delta,
    value: AppResult<T>,
}

impl<T> Stored<T> {
    fn nothing(value: T) -> Self {
        Stored {
            delta: Delta::new(),
            value: Ok(value),
        }
    }

    fn failed(error: AppError) -> Self {
        Stored {
            delta: Delta::new(),
            value: Err(error),
        }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Stored<U> {
        Stored {
            delta: self.delta,
            value: self.value.map(f),
        }
    }
}

/// The provider message of a claimed entry's attempt and the text the contact reads: the
/// template or SMS message filled for its contact, the entry and attempt in the callback
/// data; an error (recorded on the entry) when the contact cannot get it.
fn message_for(
    ctx: &CampaignCtx,
    entry: &HopperEntry,
) -> Result<(Message, String), (&'static str, String)> {
    let c = &ctx.campaign;
    let callback_data = entry.entry_ref().encode_attempt(entry.attempts);
    let route = ctx.route(entry);
    match route.content {
        Content::Template(t) => {
            let rendered = t
                .render(&c.variables, c.url_variable.as_ref(), &entry.contact)
                .map_err(|e| (TEMPLATE_VARIABLES_REASON, e))?;
            let text = rendered.text.clone();
            Ok((
                Message::Template(outbound(route.account, t, entry, rendered)),
                text,
            ))
        }
        Content::Sms(message) => {
            let sms = sms::render(message, &c.variables, &entry.contact, c.max_segments)?;
            let msg = OutboundSms {
                to: entry.phone.clone(),
                body: sms.text.clone(),
                segments: sms.parts.segments,
                callback_data,
            };
            Ok((Message::Sms(msg), sms.text))
        }
        Content::Call(v) => Ok((
            Message::Call(outbound_call(c, v, entry)),
            format!("call from {}", v.caller_id),
        )),
    }
}

/// The call of a claimed voice entry's attempt: its client token names the entry and the
/// attempt, so however often this attempt's start is sent, Connect starts one call; the
/// flow gets the campaign and what to do with a machine as contact attributes.
fn outbound_call(c: &Campaign, v: &VoiceSettings, entry: &HopperEntry) -> OutboundCall {
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("campaign_id".to_owned(), c.id.clone());
    if v.amd_enabled {
        attributes.insert("amd_action".to_owned(), v.amd_action.as_str().to_owned());
    }
    if let Some(m) = &v.voicemail_message {
        attributes.insert("voicemail_message".to_owned(), m.clone());
    }
    if let Some(f) = &v.voicemail_flow_id {
        attributes.insert("voicemail_flow_id".to_owned(), f.clone());
    }
    OutboundCall {
        to: entry.phone.clone(),
        caller_id: v.caller_id.clone(),
        contact_flow_id: v.contact_flow_id.clone(),
        queue_id: v.queue_id.clone(),
        client_token: entry
            .call_token
            .clone()
            .unwrap_or_else(|| voice::client_token(&entry.entry_ref(), entry.attempts)),
        attributes,
        amd: v.amd_enabled.then_some(AmdConfig {
            await_prompt: v.amd_action == AmdAction::Voicemail,
        }),
    }
}

/// The WhatsApp message of a claimed entry's attempt: the template filled for its
/// contact, through the route the account and the template's current category choose.
fn outbound(
    account: &Account,
    template: &Template,
    entry: &HopperEntry,
    rendered: Rendered,
) -> OutboundTemplate {
    OutboundTemplate {
        marketing_messages: template.routes_to_marketing_messages(account),
        to: entry.phone.clone(),
        template: template.name.clone(),
        language: template.language.clone(),
        params: rendered.params,
        quick_reply_payloads: template.quick_replies.clone(),
        callback_data: entry.entry_ref().encode_attempt(entry.attempts),
        header: template.header.clone(),
        url_suffix: rendered.url_suffix,
    }
}

/// A template that cannot be sent (not APPROVED, a placeholder without a source, a header
/// without its link) stops the campaign; the contact is not at fault, so the entry goes
/// back in line and is sent after the campaign resumes (R3.2, R4.7). An SMS message was
/// checked when it was stored.
fn unusable_template(ctx: &CampaignCtx, entry: &HopperEntry) -> Option<SendFailure> {
    let c = &ctx.campaign;
    let template = ctx.route(entry).content.template()?;
    let e = template
        .check_usable(&c.variables, c.url_variable.as_ref())
        .err()?;
    let reason = template.blocked_reason().unwrap_or_else(|| e.to_string());
    Some(SendFailure {
        class: FailureClass::Campaign,
        code: None,
        reason,
    })
}

/// Folds what a write changed into `delta` and gives its result.
fn counted<T>(delta: &mut Delta, stored: Stored<T>) -> AppResult<T> {
    stats::fold(delta, stored.delta);
    stored.value
}

struct Facts {
    contact: ContactFacts,
    /// `senders[i]` is the sender of `contact.interactions[i]`.
    senders: Vec<String>,
}

impl Facts {
    /// The contact's interaction with `sender`, if any.
    fn interaction_on(&self, sender: &str) -> Option<&Interaction> {
        self.contact
            .interactions
            .iter()
            .zip(&self.senders)
            .find(|(_, s)| *s == sender)
            .map(|(i, _)| i)
    }
}

/// What a record delivered again says when its entry is still SENDING: the sender that
/// claimed it may have died after the provider accepted the message, so the contact stays
/// held until the sweeper reclaims the entry.
const IN_FLIGHT: &str = "claimed by a sender that did not finish";

/// Logs how far the batch runs behind its planned slots: a sender that cannot keep up
/// with the planned pace shows here first.
fn note_slot_lag(work: &[Work], now: Time) {
    let Some(lag) = pacing::worst_slot_lag(work.iter().filter_map(|w| w.3), now) else {
        return;
    };
    let (records, ms) = (work.len(), lag.num_milliseconds());
    if pacing::slot_lag_is_late(lag) {
        tracing::warn!(
            records,
            slot_lag_ms = ms,
            "send batch late against its planned slots"
        );
    } else {
        tracing::debug!(records, slot_lag_ms = ms, "send batch");
    }
}

/// One queue record: its id, and the entry it names or why it could not be read.
pub type Job = (String, Result<SendJob, String>);

/// A record to send: its id, its entry, its campaign (none when gone) and its slot.
type Work = (String, EntryRef, Option<Arc<CampaignCtx>>, Option<Time>);

impl SendService {
    /// Processes a batch; returns the ids of records that should be delivered again.
    /// A malformed record is reported alone; the rest of the batch proceeds.
    pub async fn send_batch(&self, jobs: Vec<Job>) -> Vec<String> {
        let (mut work, mut failed) = self.prepare(jobs).await;
        note_slot_lag(&work, self.clock.now());
        // Every record waits for its slot, then for one of the in-flight places (given
        // in the order asked, so in slot order).
        work.sort_by_key(|w| w.3);
        let places = tokio::sync::Semaphore::new(self.concurrency.max(1));
        let places = &places;
        let records = work.len().max(1);
        // A record that fails still reports what it stored (a claim, an outcome): the
        // counters follow every stored change, so they keep equalling a recount.
        type Done = (String, EntryRef, AppResult<SendOutcome>, Delta);
        let results: Vec<Done> = stream::iter(work)
            .map(|(id, r, c, due)| async move {
                if let Some(wait) = due.and_then(|d| self.early_by(d)) {
                    tokio::time::sleep(wait).await;
                }
                let _place = places
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                let mut delta = Delta::new();
                let res = match c {
                    Some(c) => self.send_one(&c, &r, &mut delta).await,
                    None => Ok(SendOutcome::Skipped("campaign not found")),
                };
                (id, r, res, delta)
            })
            .buffer_unordered(records)
            .collect()
            .await;
        // Counter changes are folded per campaign: one counter write per batch.
        let mut deltas: HashMap<(String, String), Delta> = HashMap::new();
        for (id, r, res, d) in results {
            match res {
                Ok(outcome) => {
                    tracing::debug!(record = %id, phone = %r.phone.masked(), ?outcome, "send record done");
                }
                Err(e) => {
                    tracing::warn!(record = %id, phone = %r.phone.masked(), error = %e, "send record failed");
                    failed.push(id);
                }
            }
            stats::fold(deltas.entry((r.tenant, r.campaign_id)).or_default(), d);
        }
        for ((tenant, campaign), d) in deltas {
            if let Err(e) = repo::add_counters(&*self.table, &tenant, &campaign, &d).await {
                tracing::error!(campaign_id = %campaign, error = %e, "counter update lost; a recount will repair it");
            }
        }
        failed
    }

    /// How long before `due` it is, when the sender waits for slots and it is early by
    /// at most [`MAX_SLOT_WAIT`] (a record further ahead is sent at once: its slot is not
    /// what SQS's granularity made of it).
    fn early_by(&self, due: Time) -> Option<std::time::Duration> {
        if !self.wait_for_slot {
            return None;
        }
        (due - self.clock.now())
            .to_std()
            .ok()
            .filter(|w| !w.is_zero() && *w <= MAX_SLOT_WAIT)
    }

    /// Reads each campaign of the batch once; the records to send with their campaign
    /// (none when it no longer exists), and those to deliver again (malformed, or their
    /// campaign could not be read).
    async fn prepare(&self, jobs: Vec<Job>) -> (Vec<Work>, Vec<String>) {
        let mut failed = Vec::new();
        let mut ctx: HashMap<(String, String), Option<Arc<CampaignCtx>>> = HashMap::new();
        let mut work = Vec::new();
        for (id, job) in jobs {
            let SendJob { entry: r, due } = match job {
                Ok(j) => j,
                Err(why) => {
                    tracing::warn!(record = %id, error = %why, "malformed send record");
                    failed.push(id);
                    continue;
                }
            };
            let key = (r.tenant.clone(), r.campaign_id.clone());
            if !ctx.contains_key(&key) {
                match self.load_ctx(&r.tenant, &r.campaign_id).await {
                    Ok(c) => {
                        ctx.insert(key.clone(), c.map(Arc::new));
                    }
                    Err(e) => {
                        tracing::warn!(record = %id, error = %e, "could not load campaign");
                        failed.push(id);
                        continue;
                    }
                }
            }
            work.push((id, r, ctx[&key].clone(), due));
        }
        (work, failed)
    }

    async fn load_ctx(&self, tenant: &str, id: &str) -> AppResult<Option<CampaignCtx>> {
        let Some(campaign) = repo::get_campaign(&*self.table, tenant, id).await? else {
            return Ok(None);
        };
        let Some(account_id) = &campaign.account_id else {
            return Ok(None);
        };
        let Some(account) = repo::get_account(&*self.table, tenant, account_id).await? else {
            return Ok(None);
        };
        let content = match (campaign.channel, &campaign.template, &campaign.message) {
            (Channel::Sms, _, Some(message)) => Content::Sms(message.clone()),
            (Channel::Voice, _, _) => match &campaign.voice {
                Some(v) => Content::Call(Box::new(v.clone())),
                None => return Ok(None),
            },
            (Channel::Whatsapp, Some(tref), _) => {
                let t = &*self.table;
                match repo::get_template(t, tenant, account_id, &tref.name, &tref.language).await? {
                    Some(template) => Content::Template(Box::new(template)),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let mut senders: Vec<String> = repo::list_accounts(&*self.table, tenant)
            .await?
            .into_iter()
            .map(|a| a.sender_id)
            .collect();
        senders.sort();
        senders.dedup();
        // The number must be the tenant's: a campaign on another tenant's number pauses
        // and its entries wait, untouched.
        let foreign = super::templates::foreign_number(&*self.table, &account).await?;
        if let Some(number) = &foreign {
            let why = format!("sender_id {number} belongs to another tenant's account");
            self.pause_campaign(&campaign, &why).await;
        }
        let fallback = match &campaign.sms_fallback {
            Some(f) => repo::get_account(&*self.table, tenant, &f.account_id)
                .await?
                .map(|a| (a, Content::Sms(f.message.clone()))),
            None => None,
        };
        Ok(Some(CampaignCtx {
            fallback,
            campaign,
            account,
            content,
            senders,
            halted: std::sync::atomic::AtomicBool::new(foreign.is_some()),
        }))
    }

    async fn send_one(
        &self,
        ctx: &CampaignCtx,
        r: &EntryRef,
        delta: &mut Delta,
    ) -> AppResult<SendOutcome> {
        let now = self.clock.now();
        // Paused or stopped: the entry stays FRESH and goes out after resume. Queued inside
        // the last tick, due after the end date: it stays FRESH and the sweeper's end-date
        // walk records it as not sent (R4.9). Either way, a record delivered again may be
        // one whose send went out: its interaction is repaired first.
        let stopped = if !ctx.campaign.is_sending() || ctx.halted.load(Ordering::SeqCst) {
            Some("campaign not running")
        } else {
            ctx.campaign.has_ended(now).then_some("campaign ended")
        };
        if let Some(why) = stopped {
            if self.repair_interaction(ctx, r).await? {
                return Ok(SendOutcome::Skipped(IN_FLIGHT));
            }
            let res = Ok(SendOutcome::Skipped(why));
            self.free_line_unless_calling(ctx, r, &res).await;
            return res;
        }
        // The contact is held from before its checks until its interaction is written:
        // another campaign sending to it at the same moment waits and checks after.
        let holder = r.encode();
        let held = take_contact_hold(&*self.table, &r.tenant, &r.phone, &holder, now).await?;
        if let (Err(until), true) = (held, eligibility::waits_for_holds(&ctx.campaign)) {
            let verdict = Verdict::Wait {
                until: until.min(now + eligibility::HOLD_RECHECK),
                why: eligibility::HELD_REASON,
            };
            let verdict = move |_: &HopperEntry| verdict.clone();
            let res = match counted(delta, self.claim(r, &verdict, now, false).await?)? {
                Claim::Done(outcome) => Ok(outcome),
                Claim::Claimed(_) => unreachable!("a waiting verdict never claims"),
            };
            self.free_line_unless_calling(ctx, r, &res).await;
            return res;
        }
        let res = self.send_held(ctx, r, delta).await;
        self.free_line_unless_calling(ctx, r, &res).await;
        // A send that failed midway may have reached the provider with nothing recorded:
        // its hold stays until it lapses, after the sweeper has reclaimed the entry and
        // held the contact through its interaction (`HOLD_LEASE`).
        let in_flight = matches!(res, Ok(SendOutcome::Skipped(IN_FLIGHT)));
        if held.is_ok() && res.is_ok() && !in_flight {
            let now = self.clock.now();
            release_contact_hold(&*self.table, &r.tenant, &r.phone, &holder, now).await;
        }
        res
    }

    /// The checks, claim, provider call and records of one entry whose contact this
    /// sender holds.
    async fn send_held(
        &self,
        ctx: &CampaignCtx,
        r: &EntryRef,
        delta: &mut Delta,
    ) -> AppResult<SendOutcome> {
        // The checks before the send (R4.2), on what the stores know of the contact.
        let facts = self.facts(ctx, &r.phone).await?;
        let now = self.clock.now();
        let verdict = |e: &HopperEntry| ctx.verdict(e, &facts.contact, now);
        let calls = ctx.content.call().is_some();
        let mut entry = match counted(delta, self.claim(r, &verdict, now, calls).await?)? {
            Claim::Claimed(entry) => *entry,
            Claim::Done(outcome @ SendOutcome::Skipped("already claimed")) => {
                if self.repair_interaction(ctx, r).await? {
                    return Ok(SendOutcome::Skipped(IN_FLIGHT));
                }
                return Ok(outcome);
            }
            Claim::Done(outcome) => return Ok(outcome),
        };
        if let Some(failure) = unusable_template(ctx, &entry) {
            return self.failed(ctx, &mut entry, delta, failure, now).await;
        }
        if calls && !self.line_for_call(ctx, &mut entry, delta, now).await? {
            return Ok(SendOutcome::Skipped("no line free"));
        }
        // A contact without a value for a mapped variable is not sent to (R3.3), nor one
        // whose values make its SMS longer than the campaign allows.
        let (msg, sent_text) = match message_for(ctx, &entry) {
            Ok(m) => m,
            Err((reason, why)) => {
                let record = |e: &mut HopperEntry| e.record_unsendable(reason, why.clone());
                self.record(&mut entry, delta, record).await?;
                return Ok(SendOutcome::Failed(why));
            }
        };
        let account = ctx.route(&entry).account;
        match self.call_provider(account, &msg).await {
            Ok(accepted) if calls => {
                self.dialled(ctx, &facts, &mut entry, delta, accepted, sent_text)
                    .await
            }
            Ok(accepted) => {
                self.sent(ctx, &facts, &mut entry, delta, accepted, sent_text)
                    .await
            }
            Err(failure) => {
                // The contact is held before the entry leaves SENDING: if holding it
                // fails, the entry stays claimed and the sweeper reclaims it, holding it
                // then.
                if failure.class == FailureClass::Unknown {
                    self.maybe_sent(ctx, &facts, &entry, now).await?;
                }
                self.failed(ctx, &mut entry, delta, failure, now).await
            }
        }
    }

    /// Records a started call: its contact id is remembered for its events (before the
    /// entry, so no event finds an entry that names a contact it cannot look up), the
    /// entry waits PENDING for the call's final event, and the contact's interaction
    /// opens for the call's length, so the duplicate window sees it.
    async fn dialled(
        &self,
        ctx: &CampaignCtx,
        facts: &Facts,
        entry: &mut HopperEntry,
        delta: &mut Delta,
        accepted: Accepted,
        sent_text: String,
    ) -> AppResult<SendOutcome> {
        let Some(settings) = ctx.content.call() else {
            unreachable!("only a voice campaign dials")
        };
        let contact_id = accepted.message_id;
        let now = at_provider_resolution(self.clock.now());
        let account = &ctx.account;
        let call = repo::voice::CallRef {
            entry: entry.entry_ref(),
            attempt: entry.attempts,
            account_id: account.id.clone(),
        };
        repo::voice::put_call(&*self.table, &account.sender_id, &contact_id, &call, now).await?;
        let bound = settings.call_bound();
        let id = contact_id.clone();
        self.record(entry, delta, move |e| {
            e.record_dialled(id.clone(), now, bound);
            e.sent_text = Some(sent_text.clone());
        })
        .await?;
        let previous = facts.interaction_on(&account.sender_id);
        let interaction =
            Interaction::opened(entry.entry_ref(), contact_id.clone(), now, bound, previous);
        repo::put_interaction(&*self.table, &account.sender_id, &interaction).await?;
        Ok(SendOutcome::Sent(contact_id))
    }

    /// The provider's answer to one attempt's message.
    async fn call_provider(
        &self,
        account: &Account,
        msg: &Message,
    ) -> Result<Accepted, SendFailure> {
        match msg {
            Message::Template(m) => self.provider.send(account, m).await,
            Message::Sms(m) => self.provider.send_sms(account, m).await,
            Message::Call(m) => self.provider.start_call(account, m).await,
        }
    }

    /// Whether the claimed voice entry holds a line for its call now: a call holds one
    /// from now on. None free (its own lapsed while the job waited and others took them):
    /// the entry goes back in line undialled.
    async fn line_for_call(
        &self,
        ctx: &CampaignCtx,
        entry: &mut HopperEntry,
        delta: &mut Delta,
        now: Time,
    ) -> AppResult<bool> {
        let r = entry.entry_ref();
        if super::voice::hold_line(&*self.table, &ctx.account, &ctx.campaign, &r, now).await? {
            return Ok(true);
        }
        let none = SendFailure {
            class: FailureClass::NotAttempted,
            code: None,
            reason: "no line free".into(),
        };
        self.record(entry, delta, |e| e.record_failure(&none))
            .await?;
        Ok(false)
    }

    /// A voice entry's line is freed when this run placed no call and none may be in
    /// progress, as the entry says: not SENDING (a call being placed), not PENDING (a call
    /// in progress), not RETRY with an unknown outcome (a call may ring). A record
    /// delivered again for an entry whose call is live (while the campaign is paused, say)
    /// keeps its line; one for an entry already settled frees a line left behind. A run
    /// that failed keeps it: the record comes again.
    async fn free_line_unless_calling(
        &self,
        ctx: &CampaignCtx,
        r: &EntryRef,
        res: &AppResult<SendOutcome>,
    ) {
        if ctx.content.call().is_none() {
            return;
        }
        if matches!(
            res,
            Ok(SendOutcome::Sent(_) | SendOutcome::MaybeSent(_)) | Err(_)
        ) {
            return;
        }
        let calling = match repo::get_entry(&*self.table, r).await {
            Ok(Some(e)) => {
                matches!(e.state, EntryState::Sending | EntryState::Pending)
                    || (e.state == EntryState::Retry
                        && e.disposition.as_deref() == Some("outcome_unknown"))
            }
            Ok(None) => false,
            // Unknown: kept; it lapses at its bound.
            Err(_) => true,
        };
        if calling {
            return;
        }
        let (tenant, instance) = (&ctx.campaign.tenant, &ctx.account.sender_id);
        if let Err(e) = super::voice::free_line(&*self.table, tenant, instance, r).await {
            tracing::warn!(account_id = %ctx.account.id, error = %e, "line not freed; it lapses at its bound");
        }
    }

    /// The provider may have accepted the message: the contact counts as written to, so
    /// its interaction opens as a send's would (no other campaign writes to it inside the
    /// response timeout or the duplicate window). It names no message id, so no reply is
    /// taken as an answer to it.
    async fn maybe_sent(
        &self,
        ctx: &CampaignCtx,
        facts: &Facts,
        entry: &HopperEntry,
        now: Time,
    ) -> AppResult<()> {
        let interaction = Interaction::maybe_sent(
            entry.entry_ref(),
            entry.attempts,
            at_provider_resolution(now),
            ctx.campaign.response_timeout(),
            facts.interaction_on(&ctx.route(entry).account.sender_id),
        );
        if let Some(i) = interaction {
            let sender = &ctx.route(entry).account.sender_id;
            repo::put_interaction(&*self.table, sender, &i).await?;
        }
        Ok(())
    }

    /// Claims the entry (FRESH -> SENDING), or records the checks' outcome on it, in one
    /// conditional write. Another writer (a contact update refreshing a FRESH entry's
    /// fields) may have changed the entry since it was read: then it is reloaded and asked
    /// again, so the entry is neither lost nor claimed twice.
    async fn claim(
        &self,
        r: &EntryRef,
        verdict: &(dyn Fn(&HopperEntry) -> Verdict + Sync),
        now: Time,
        calls: bool,
    ) -> AppResult<Stored<Claim>> {
        retry_on_conflict(|_| async move {
            let Some(mut entry) = repo::get_entry(&*self.table, r).await? else {
                return Ok(Stored::nothing(Claim::Done(SendOutcome::Skipped(
                    "entry not found",
                ))));
            };
            let before = entry.clone();
            if entry.claim(now).is_err() {
                return Ok(Stored::nothing(Claim::Done(SendOutcome::Skipped(
                    "already claimed",
                ))));
            }
            // The checks judge the entry as claimed: an SMS fallback by SMS's rules.
            let outcome = match verdict(&entry) {
                // A call's client token is stored with the claim.
                Verdict::Send if calls => {
                    entry.keep_call_token();
                    None
                }
                Verdict::Send => None,
                Verdict::NotSent {
                    state,
                    reason,
                    error,
                } => {
                    entry = before.clone();
                    entry.record_ineligible(state, reason, error);
                    Some(SendOutcome::NotSent(reason))
                }
                Verdict::Wait { until, why } => {
                    entry = before.clone();
                    entry.defer(until, why);
                    Some(SendOutcome::Waiting)
                }
            };
            // The entry then waits in SENDING for the sweeper (R4.10) if the write failed.
            let stored = self.store(&before, &mut entry).await?;
            Ok(stored.map(|()| match outcome {
                Some(o) => Claim::Done(o),
                None => Claim::Claimed(Box::new(entry)),
            }))
        })
        .await
    }

    /// A record delivered again for an entry already sent: the earlier run may have died
    /// between recording the send and opening the contact's interaction (finding 8), so
    /// the interaction is written now unless it or a later one stands (closed if the
    /// contact answered meanwhile). Without it replies would
    /// find an older campaign or none, and the duplicate window would miss the send.
    /// Returns whether the entry is still SENDING: claimed by a sender that may have died
    /// after the provider accepted the message.
    async fn repair_interaction(&self, ctx: &CampaignCtx, r: &EntryRef) -> AppResult<bool> {
        let Some(entry) = repo::get_entry(&*self.table, r).await? else {
            return Ok(false);
        };
        if entry.state == EntryState::Sending {
            return Ok(true);
        }
        let route = ctx.route(&entry);
        let sender = &route.account.sender_id;
        let stored = repo::get_interaction(&*self.table, sender, &r.phone).await?;
        let timeout = ctx.campaign.response_timeout();
        if let Some(i) = Interaction::restored(&entry, timeout, stored.as_ref()) {
            tracing::warn!(phone = %r.phone.masked(), "interaction of an earlier send repaired");
            let i = i.with_options(route.content.quick_replies());
            repo::put_interaction(&*self.table, sender, &i).await?;
        }
        Ok(false)
    }

    /// Records an accepted send and opens the contact's interaction with the campaign.
    async fn sent(
        &self,
        ctx: &CampaignCtx,
        facts: &Facts,
        entry: &mut HopperEntry,
        delta: &mut Delta,
        accepted: Accepted,
        sent_text: String,
    ) -> AppResult<SendOutcome> {
        let Accepted {
            message_id,
            message_status,
        } = accepted;
        // Whole seconds, as the provider's `sent` status will say: it then confirms the
        // entry without a write.
        let now = at_provider_resolution(self.clock.now());
        let timeout = ctx.campaign.response_timeout();
        let id = message_id.clone();
        let falls_back = ctx.fallback.is_some();
        self.record(entry, delta, move |e| {
            e.record_sent(id.clone(), now, timeout);
            // A "not on WhatsApp" status that came before the answer failed it already.
            if falls_back {
                e.fall_back_to_sms(now);
            }
            // A 131049 status that came first put it back in line: nothing was sent.
            if e.state != EntryState::Fresh {
                e.message_status = message_status.clone();
                // The conversation view shows the message as the contact read it (R5.6).
                e.sent_text = Some(sent_text.clone());
            }
        })
        .await?;
        if entry.state == EntryState::Fresh {
            return Ok(SendOutcome::Waiting);
        }
        let route = ctx.route(entry);
        let previous = facts.interaction_on(&route.account.sender_id);
        let r = entry.entry_ref();
        let interaction = Interaction::opened(r, message_id.clone(), now, timeout, previous)
            .with_options(route.content.quick_replies());
        repo::put_interaction(&*self.table, &route.account.sender_id, &interaction).await?;
        Ok(SendOutcome::Sent(message_id))
    }

    /// Records a refused send: permanent, temporary, or the campaign's (which pauses it);
    /// a throttle slows the account, a template error updates the template.
    async fn failed(
        &self,
        ctx: &CampaignCtx,
        entry: &mut HopperEntry,
        delta: &mut Delta,
        failure: SendFailure,
        now: Time,
    ) -> AppResult<SendOutcome> {
        if failure.class == FailureClass::Campaign {
            ctx.halted.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if failure.class == FailureClass::MarketingOptOut {
            self.note_marketing_stop(ctx, &entry.phone, &failure, now)
                .await;
        }
        let provider = ctx.route(entry).account.provider;
        if failure.class == FailureClass::OptedOut && provider.opt_out_refusal_is_the_tenants() {
            self.note_opt_out(ctx, &entry.phone, &failure, now).await;
        }
        let (f, hold) = (failure.clone(), ctx.campaign.marketing_limit_hold());
        // A number WhatsApp refuses as not on WhatsApp goes back in line to be sent by
        // the campaign's SMS fallback, once.
        let falls_back = ctx.fallback.is_some();
        self.record(entry, delta, move |e| {
            e.record_refusal(&f, hold.as_ref(), now);
            if falls_back {
                e.fall_back_to_sms(now);
            }
        })
        .await?;
        if failure.class == FailureClass::Campaign {
            self.pause_campaign(&ctx.campaign, &failure.reason).await;
        }
        self.follow_refusal(ctx, entry, &failure, now).await;
        Ok(match entry.state {
            EntryState::Failed => SendOutcome::Failed(failure.reason),
            EntryState::Fresh if entry.sms_fallback.is_some() => SendOutcome::Waiting,
            EntryState::BlockList => SendOutcome::NotSent(eligibility::OPTED_OUT_REASON),
            EntryState::Fresh if entry.wait_until.is_some() => SendOutcome::Waiting,
            _ if failure.class == FailureClass::Unknown => SendOutcome::MaybeSent(failure.reason),
            _ => SendOutcome::Retry(failure.reason),
        })
    }

    /// What a refusal tells beyond its entry: a throttle slows the account that sent, a
    /// template error updates the template.
    async fn follow_refusal(
        &self,
        ctx: &CampaignCtx,
        entry: &HopperEntry,
        failure: &SendFailure,
        now: Time,
    ) {
        if failure.is_throttling() {
            // The next tick slows the whole account down (AIMD, R4.8).
            let (t, a) = (&ctx.campaign.tenant, &ctx.route(entry).account.id);
            let noted = repo::pacing::note_throttle(&*self.table, t, a, now).await;
            if let Err(e) = noted {
                tracing::warn!(account_id = %a, error = %e, "throttle not noted");
            }
        }
        let template = ctx.route(entry).content.template();
        if let (Some(t), Some(status)) = (template, failure.code.and_then(status_from_send_error)) {
            let res = super::templates::provider_reported_status(
                &*self.table,
                &*self.bus,
                self.clock.now(),
                t,
                status,
                &failure.reason,
            )
            .await;
            if let Err(e) = res {
                tracing::warn!(template = %t.name, error = %e, "template status from a send error not stored");
            }
        }
    }

    /// Meta refused the send because the contact stopped the business's marketing
    /// messages (131050): the contact goes on the tenant's marketing opt-out. Noted before
    /// the entry's record; a note that cannot be stored is logged and the send recorded
    /// anyway: Meta refuses the next MARKETING send the same way (nothing delivered,
    /// nothing billed) and that refusal notes it again.
    async fn note_marketing_stop(
        &self,
        ctx: &CampaignCtx,
        phone: &PhoneNumber,
        failure: &SendFailure,
        now: Time,
    ) {
        let detail = Some(failure.reason.clone());
        let choice = MarketingPreference::stopped_by_refusal(phone.clone(), now, detail);
        if let Err(e) = note_marketing_choice(&*self.table, &ctx.campaign.tenant, &choice).await {
            tracing::warn!(phone = %phone.masked(), error = %e, "marketing opt-out not noted; the next refusal notes it");
        }
    }

    /// The provider refused the SMS because the contact opted out of the number (Twilio
    /// 21610): the contact goes on the tenant's opt-out list, so no campaign of the tenant
    /// sends to it again. A note that cannot be stored is logged; the next refusal notes
    /// it again.
    async fn note_opt_out(
        &self,
        ctx: &CampaignCtx,
        phone: &PhoneNumber,
        failure: &SendFailure,
        now: Time,
    ) {
        let rec = OptOut::by_provider(phone.clone(), &failure.reason, now);
        if let Err(e) =
            repo::blocklists::put_opt_out(&*self.table, &ctx.campaign.tenant, &rec).await
        {
            tracing::warn!(phone = %phone.masked(), error = %e, "opt-out not noted; the next refusal notes it");
        }
    }

    /// What the stores know of a contact for the checks of R4.2: the attached block
    /// lists, the tenant's opt-out list, and its interactions with each of the tenant's
    /// senders.
    async fn facts(&self, ctx: &CampaignCtx, phone: &PhoneNumber) -> AppResult<Facts> {
        let t = &*self.table;
        let c = &ctx.campaign;
        let interactions = futures::future::try_join_all(
            ctx.senders
                .iter()
                .map(|s| repo::get_interaction(t, s, phone)),
        );
        // The marketing opt-out matters to MARKETING templates only: no read otherwise.
        let marketing = async {
            match ctx.content.template().map(|t| t.category) {
                Some(Category::Marketing) => {
                    repo::blocklists::is_marketing_opted_out(t, &c.tenant, phone).await
                }
                _ => Ok(false),
            }
        };
        let (blocked_by, opted_out, marketing_opted_out, found) = futures::try_join!(
            repo::blocklists::blocked_by(t, &c.tenant, &c.block_lists, phone),
            repo::blocklists::is_opted_out(t, &c.tenant, phone),
            marketing,
            interactions,
        )?;
        let (senders, interactions) = ctx
            .senders
            .iter()
            .zip(found)
            .filter_map(|(s, i)| Some((s.clone(), i?)))
            .unzip();
        Ok(Facts {
            contact: ContactFacts {
                blocked_by,
                opted_out,
                marketing_opted_out,
                interactions,
            },
            senders,
        })
    }

    /// Applies a change to a claimed entry and stores it, folding what it does to the
    /// counters into `delta`; when a webhook changed the entry meanwhile, reloads it and
    /// applies the change again.
    async fn record(
        &self,
        entry: &mut HopperEntry,
        delta: &mut Delta,
        change: impl Fn(&mut HopperEntry),
    ) -> AppResult<()> {
        let (r, first, change) = (&entry.entry_ref(), &*entry, &change);
        let stored = retry_on_conflict(|n| async move {
            let mut e = match n {
                0 => first.clone(),
                _ => match repo::get_entry(&*self.table, r).await? {
                    Some(e) => e,
                    // Gone meanwhile: nothing to retry (as before, a condition failure).
                    None => return Ok(Stored::failed(PortError::ConditionFailed.into())),
                },
            };
            let before = e.clone();
            change(&mut e);
            Ok(self.store(&before, &mut e).await?.map(|()| e))
        })
        .await?;
        *entry = counted(delta, stored)?;
        Ok(())
    }

    /// Stores `entry` (changed from `before`). A condition failure is an error (someone
    /// else wrote first: retry); any other failure is an answer, with the counters' change
    /// when the write was stored nonetheless (a lost answer), so it is still counted.
    async fn store(&self, before: &HopperEntry, entry: &mut HopperEntry) -> AppResult<Stored<()>> {
        match repo::save_entry(&*self.table, entry, self.clock.now()).await {
            Ok(()) => Ok(Stored {
                delta: stats::delta(Some(before), entry),
                value: Ok(()),
            }),
            Err(PortError::ConditionFailed) => Err(PortError::ConditionFailed.into()),
            Err(e) => {
                let landed = self.landed(entry).await;
                Ok(Stored {
                    delta: if landed {
                        stats::delta(Some(before), entry)
                    } else {
                        Delta::new()
                    },
                    value: Err(e.into()),
                })
            }
        }
    }

    /// Whether a write of `entry` that reported an error was stored nonetheless (a
    /// timeout after DynamoDB applied it): the stored entry is the next version in the
    /// same state. When that cannot be read, the answer is no and a recount repairs the
    /// counters.
    async fn landed(&self, entry: &HopperEntry) -> bool {
        match repo::get_entry(&*self.table, &entry.entry_ref()).await {
            Ok(Some(stored)) => {
                stored.version == entry.version + 1
                    && stored.state == entry.state
                    && stored.claimed_at == entry.claimed_at
                    && stored.message_id == entry.message_id
            }
            _ => false,
        }
    }

    /// A campaign-level failure pauses the campaign with the reason instead of burning
    /// through the audience (R4.7).
    async fn pause_campaign(&self, c: &Campaign, reason: &str) {
        let now = self.clock.now();
        let why = reason.to_owned();
        let res = update_campaign(
            &*self.table,
            &*self.bus,
            &c.tenant,
            &c.id,
            (Some(why.clone()), now),
            move |c| c.pause(Some(why.clone()), now),
        )
        .await;
        if let Err(e) = res {
            tracing::info!(campaign_id = %c.id, error = %e, "campaign not paused (already paused?)");
        }
    }
}
