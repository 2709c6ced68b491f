//! The webhook's use case: apply delivery statuses and customer messages to hopper
//! entries, idempotently and never backwards (R6.1, R5.1-R5.7), and the provider's
//! template status and quality changes to the stored templates (R3.2).
//!
//! A customer message, in order:
//! 1. It finds the contact's campaign interaction on the business number that received it
//!    (the message's context id must be that interaction's message, when it names one;
//!    else the phone alone finds it) and the contact's 24-hour window item. A message
//!    already on the conversation is a webhook delivered again: nothing more happens.
//! 2. It opens or extends the contact's 24-hour customer-service window (R5.2).
//! 3. An opt-out keyword of the tenant (R5.7) puts the contact on the opt-out list,
//!    closes a waiting entry as `opted_out` (not counted as a reply) and publishes
//!    `ContactOptedOut`; nothing else.
//! 4. Otherwise the entry applies it ([`HopperEntry::apply_answer`]): an in-time answer is
//!    recorded and publishes `ReplyReceived` (and `AgentConversationRequested` when the
//!    contact's first answer matches no option, R5.3); a late one closes the entry as expired (R5.4); a message
//!    the campaign no longer waits for, or with no campaign at all, publishes
//!    `InboundConversation`. A closed entry (or late reply) marks the interaction closed.
//! 5. The message is added to the campaign's conversation (R5.6).
//!
//! Statuses cost one write per entry and batch: the inbound worker hands a whole SQS
//! batch to [`Inbox::handle_batch`], which applies every status of an entry in memory
//! and stores the entry once (nothing when they change nothing, as a `sent` confirming
//! what the sender recorded), with one counter write per campaign for the batch.

use super::blocklists::note_marketing_choice;
use super::{retry_on_conflict, AppError, AppResult};
use crate::domain::blocklist::{MarketingPreference, OptOut};
use crate::domain::campaign::{Campaign, MarketingLimitHold};
use crate::domain::conversation::{Answer, ConversationMessage, MessageKind, ServiceWindow};
use crate::domain::eligibility::Interaction;
use crate::domain::events::{
    AgentConversationRequested, ContactOptedOut, DomainEvent, InboundConversation, InboundReason,
    InteractionState, ReplyReceived,
};
use crate::domain::hopper::{HopperEntry, Reply, ReplyOutcome};
use crate::domain::inbound::{
    EntryRef, Inbound, InboundMessage, MarketingChoice, StatusKind, StatusUpdate,
};
use crate::domain::outcome::{
    FailureClass, META_MARKETING_LIMIT_CODE, META_MARKETING_OPT_OUT_CODE,
};
use crate::domain::phone::PhoneNumber;
use crate::domain::stats::{self, Delta};
use crate::domain::tenant::Tenant;
use crate::domain::Time;
use crate::ports::{Clock, EventBus, MessagingProvider, OutboundSms, Table};
use crate::repo;
use crate::repo::conversations as conv;
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct Inbox {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// Sends the tenant's answer to an SMS HELP from the number it came to; none: HELP
    /// is left unanswered here (the provider's keyword handling may answer it).
    pub replies: Option<Arc<dyn MessagingProvider>>,
    /// Refills the lines a call's end frees: the account's voice campaigns are
    /// dispatched again at once; none: the next tick does.
    pub calls: Option<Arc<super::dispatch::Dispatcher>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboxReport {
    pub applied: usize,
    pub ignored: usize,
}

/// What one batch of webhook events reads once: campaigns and tenant settings.
#[derive(Default)]
pub(super) struct BatchCache {
    campaigns: HashMap<(String, String), Option<Campaign>>,
    tenants: HashMap<String, Tenant>,
    pub(super) owners: Owners,
}

/// Which tenant owns each number a batch's webhooks came from, read once per batch.
#[derive(Default)]
pub(super) struct Owners(std::sync::Mutex<HashMap<String, Option<String>>>);

impl Owners {
    /// The tenant whose account sends from `sender_id` (or whose Kaleyra SID it is): a
    /// webhook from the number is theirs. `None` for a number no account has claimed.
    pub(super) async fn of(&self, t: &dyn Table, sender_id: &str) -> AppResult<Option<String>> {
        if let Some(o) = self.0.lock().expect("not poisoned").get(sender_id) {
            return Ok(o.clone());
        }
        let o = repo::number_owner(t, sender_id).await?.map(|o| o.tenant);
        let mut map = self.0.lock().expect("not poisoned");
        map.insert(sender_id.to_owned(), o.clone());
        Ok(o)
    }

    /// Whether a status from `sender_id` may touch an entry of `tenant`. A status that
    /// names no number, or a number claimed by no account (one stored before numbers had
    /// owners), is judged by its message id alone.
    async fn allow(&self, t: &dyn Table, sender_id: Option<&str>, tenant: &str) -> AppResult<bool> {
        Ok(match sender_id {
            Some(s) => self.of(t, s).await?.is_none_or(|o| o == tenant),
            None => true,
        })
    }
}

impl BatchCache {
    pub(super) async fn campaign(
        &mut self,
        t: &dyn Table,
        r: &EntryRef,
    ) -> AppResult<Option<Campaign>> {
        let key = (r.tenant.clone(), r.campaign_id.clone());
        if let Some(c) = self.campaigns.get(&key) {
            return Ok(c.clone());
        }
        let c = repo::get_campaign(t, &r.tenant, &r.campaign_id).await?;
        self.campaigns.insert(key, c.clone());
        Ok(c)
    }

    async fn tenant(&mut self, t: &dyn Table, tenant: &str) -> AppResult<Tenant> {
        if let Some(s) = self.tenants.get(tenant) {
            return Ok(s.clone());
        }
        let s = repo::get_tenant(t, tenant).await?;
        self.tenants.insert(tenant.to_owned(), s.clone());
        Ok(s)
    }
}

/// The API path of a contact's conversation view in a campaign (R5.6).
pub fn conversation_path(campaign_id: &str, phone: &str) -> String {
    format!("/campaigns/{campaign_id}/contacts/{phone}/conversation")
}

/// Entries whose statuses one batch applies at the same time.
const STATUS_CONCURRENCY: usize = 10;
/// Records whose customer messages and template changes one batch applies at the same
/// time (each record's in order).
const RECORD_CONCURRENCY: usize = 10;

/// The statuses of one entry in a batch, each with the record it came in.
type StatusGroup = (EntryRef, Vec<(usize, StatusUpdate)>);

impl Inbox {
    /// Applies verified webhook events. An error means the provider should deliver the
    /// webhook again; everything here is idempotent, so a redelivery is harmless.
    pub async fn handle(&self, events: Vec<Inbound>) -> AppResult<InboxReport> {
        let (report, mut failed) = self.handle_batch(vec![events]).await;
        match failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(report),
        }
    }

    /// Applies the events of a batch of queued webhooks, one list per record, and
    /// returns the report and the records to deliver again (storage failures), each with
    /// its first error.
    ///
    /// Delivery statuses go first, grouped by entry: one read and at most one write per
    /// entry for all its statuses in the batch, since statuses are order-independent
    /// (the entry keeps the furthest state and the earliest time of each step), and no
    /// write at all when they change nothing (a `sent` confirming what the sender
    /// recorded). Their counter changes are folded into one write per campaign. Customer
    /// messages and template changes follow, in order within each record.
    pub async fn handle_batch(
        &self,
        records: Vec<Vec<Inbound>>,
    ) -> (InboxReport, Vec<(usize, AppError)>) {
        let mut report = InboxReport::default();
        let mut failed: BTreeMap<usize, AppError> = BTreeMap::new();
        let mut records = records;
        self.resolve_by_interaction(&mut records, &mut failed).await;
        let (groups, rest) = group_statuses(records, &mut report);
        self.apply_status_groups(groups, &mut report, &mut failed)
            .await;
        let others: Vec<(usize, InboxReport, AppResult<()>)> = stream::iter(rest)
            .map(|(i, events)| async move {
                let mut rep = InboxReport::default();
                let mut cache = BatchCache::default();
                for ev in events {
                    match self.other(ev, &mut cache).await {
                        Ok(true) => rep.applied += 1,
                        Ok(false) => rep.ignored += 1,
                        Err(e) => return (i, rep, Err(e)),
                    }
                }
                (i, rep, Ok(()))
            })
            .buffer_unordered(RECORD_CONCURRENCY)
            .collect()
            .await;
        for (i, rep, res) in others {
            report.applied += rep.applied;
            report.ignored += rep.ignored;
            if let Err(e) = res {
                failed.entry(i).or_insert(e);
            }
        }
        (report, failed.into_iter().collect())
    }

    /// Gives a status without our callback data (Meta's Marketing Messages API takes
    /// none) the entry of the contact's interaction on the number that sent it, when that
    /// interaction names the same message: one read per contact and batch. A status of a
    /// message the engine did not send, or of one a later send on the number replaced,
    /// stays without an entry and is ignored; a failed read fails its record (delivered
    /// again).
    async fn resolve_by_interaction(
        &self,
        records: &mut [Vec<Inbound>],
        failed: &mut BTreeMap<usize, AppError>,
    ) {
        let mut found: HashMap<(String, PhoneNumber), Option<Interaction>> = HashMap::new();
        for (i, events) in records.iter_mut().enumerate() {
            for ev in events.iter_mut() {
                let Inbound::Status(s) = ev else { continue };
                let (None, Some(sender), Some(phone)) = (&s.entry, &s.sender_id, &s.recipient)
                else {
                    continue;
                };
                let key = (sender.clone(), phone.clone());
                if !found.contains_key(&key) {
                    match repo::get_interaction(&*self.table, sender, phone).await {
                        Ok(it) => found.insert(key.clone(), it),
                        Err(e) => {
                            failed.entry(i).or_insert_with(|| e.into());
                            continue;
                        }
                    };
                }
                if let Some(Some(it)) = found.get(&key) {
                    if it.message_id == s.message_id {
                        s.entry = Some(it.entry.clone());
                    }
                }
            }
        }
    }

    /// Applies each entry's statuses (one read, at most one write per entry), then the
    /// counters' changes in one write per campaign; the records of a group that failed
    /// go into `failed`.
    async fn apply_status_groups(
        &self,
        groups: Vec<StatusGroup>,
        report: &mut InboxReport,
        failed: &mut BTreeMap<usize, AppError>,
    ) {
        let owners = &Owners::default();
        let applied: Vec<(StatusGroup, AppResult<(usize, Delta)>)> = stream::iter(groups)
            .map(|g| async move {
                let res = self.apply_statuses(&g.0, &g.1, owners).await;
                (g, res)
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        let mut deltas: BTreeMap<(String, String), Delta> = BTreeMap::new();
        for ((r, statuses), res) in applied {
            match res {
                Ok((n, d)) => {
                    report.applied += n;
                    report.ignored += statuses.len() - n;
                    stats::fold(deltas.entry((r.tenant, r.campaign_id)).or_default(), d);
                }
                Err(e) => {
                    tracing::warn!(campaign_id = %r.campaign_id, phone = %r.phone.masked(), error = %e, "statuses not applied; their webhooks will be delivered again");
                    for (i, _) in &statuses {
                        failed.entry(*i).or_insert_with(|| e.clone());
                    }
                }
            }
        }
        for ((tenant, campaign), d) in deltas {
            if let Err(e) = repo::add_counters(&*self.table, &tenant, &campaign, &d).await {
                tracing::error!(campaign_id = %campaign, error = %e, "counter update lost; a recount will repair it");
            }
        }
    }

    /// A customer message or a template change.
    async fn other(&self, ev: Inbound, cache: &mut BatchCache) -> AppResult<bool> {
        match ev {
            Inbound::Status(_) => unreachable!("statuses are applied by entry"),
            Inbound::Message(m) => self.message(m, cache).await,
            Inbound::MarketingChoice(c) => self.marketing_choice(c, cache).await,
            Inbound::Call(ev) => self.call_event(ev, cache).await,
            Inbound::TemplateStatus(u) => {
                let now = self.clock.now();
                Ok(
                    super::templates::apply_template_update(&*self.table, &*self.bus, now, &u)
                        .await?
                        > 0,
                )
            }
        }
    }

    /// Applies every status of one entry in memory and stores the entry once, if they
    /// changed it; returns how many changed it and the counter change (not yet stored).
    /// Retried from a fresh read when another writer got there first.
    async fn apply_statuses(
        &self,
        r: &EntryRef,
        statuses: &[(usize, StatusUpdate)],
        owners: &Owners,
    ) -> AppResult<(usize, Delta)> {
        let mut own = Vec::with_capacity(statuses.len());
        for (_, s) in statuses {
            if owners
                .allow(&*self.table, s.sender_id.as_deref(), &r.tenant)
                .await?
            {
                own.push(s);
            } else {
                tracing::warn!(campaign_id = %r.campaign_id, "status from another tenant's number; ignored");
            }
        }
        let statuses = &own;
        let hold = &self.marketing_hold(r, statuses).await?;
        let falls_back = self.falls_back_to_sms(r, statuses).await?;
        let applied = retry_on_conflict(|_| async move {
            let Some(mut e) = repo::get_entry(&*self.table, r).await? else {
                tracing::info!(campaign_id = %r.campaign_id, "webhook for an entry that no longer exists");
                return Ok((0, Delta::new()));
            };
            let before = e.clone();
            let Applied {
                changed,
                stopped,
                opted_out,
            } = apply_all(&mut e, statuses, hold.as_ref());
            // The provider refused it because the contact opted out of the number
            // (Twilio's 21610): the tenant's opt-out list takes the contact.
            if let Some(s) = opted_out {
                self.note_provider_opt_out(r, s).await?;
            }
            // Not on WhatsApp, and the campaign names an SMS fallback: back in line to go
            // by SMS, once.
            let fell_back = falls_back && e.fall_back_to_sms(self.clock.now());
            // Noted before the entry is stored: a failure leaves both to the webhook's
            // next delivery, and no counter change is lost.
            if let Some(at) = stopped {
                self.note_marketing_stop(r, at).await?;
            }
            if changed == 0 && !fell_back {
                return Ok((0, Delta::new()));
            }
            repo::save_entry(&*self.table, &mut e, self.clock.now()).await?;
            Ok((changed, stats::delta(Some(&before), &e)))
        })
        .await?;
        self.pause_for_campaign_fault(r, statuses).await;
        Ok(applied)
    }

    /// A failed status whose code is the campaign's fault (Twilio's 30034: the number's
    /// 10DLC registration; a From that cannot send) pauses the campaign with the reason,
    /// as the same refusal of a send does (R4.7), instead of failing the rest of the
    /// audience one by one. Best effort: a campaign already paused stays so, and a pause
    /// that cannot be stored is logged (the next such status pauses it).
    async fn pause_for_campaign_fault(&self, r: &EntryRef, statuses: &[&StatusUpdate]) {
        let Some(reason) = statuses.iter().find_map(|s| match &s.status {
            StatusKind::Failed {
                reason,
                class: Some(FailureClass::Campaign),
                ..
            } => Some(reason.clone()),
            _ => None,
        }) else {
            return;
        };
        let now = self.clock.now();
        let why = reason.clone();
        let res = super::update_campaign(
            &*self.table,
            &*self.bus,
            &r.tenant,
            &r.campaign_id,
            (Some(reason), now),
            move |c| c.pause(Some(why.clone()), now),
        )
        .await;
        if let Err(e) = res {
            tracing::info!(campaign_id = %r.campaign_id, error = %e, "campaign not paused for a provider status (already paused?)");
        }
    }

    /// The contact opted out of the number at the provider: on the tenant's opt-out list,
    /// as of the status.
    async fn note_provider_opt_out(&self, r: &EntryRef, s: &StatusUpdate) -> AppResult<()> {
        let detail = match &s.status {
            StatusKind::Failed { reason, .. } => reason.as_str(),
            _ => "",
        };
        let rec = OptOut::by_provider(r.phone.clone(), detail, s.at);
        repo::blocklists::put_opt_out(&*self.table, &r.tenant, &rec).await?;
        Ok(())
    }

    /// The campaign's rule for Meta's marketing limit, read only when a status of the
    /// group reports it (131049).
    async fn marketing_hold(
        &self,
        r: &EntryRef,
        statuses: &[&StatusUpdate],
    ) -> AppResult<Option<MarketingLimitHold>> {
        if !statuses
            .iter()
            .any(|s| failed_with(s, META_MARKETING_LIMIT_CODE))
        {
            return Ok(None);
        }
        let c = repo::get_campaign(&*self.table, &r.tenant, &r.campaign_id).await?;
        Ok(c.and_then(|c| c.marketing_limit_hold()))
    }

    /// Whether the campaign falls back to SMS for a number not on WhatsApp, read only when
    /// a status of the group reports that refusal (Meta's 131026, Kaleyra's invalid
    /// number) while the campaign still sends (RUNNING or PAUSED).
    async fn falls_back_to_sms(&self, r: &EntryRef, statuses: &[&StatusUpdate]) -> AppResult<bool> {
        let refused = statuses.iter().any(|s| {
            matches!(&s.status, StatusKind::Failed { reason, .. } if crate::domain::outcome::is_not_on_whatsapp_reason(reason))
        });
        if !refused {
            return Ok(false);
        }
        let c = repo::get_campaign(&*self.table, &r.tenant, &r.campaign_id).await?;
        Ok(c.is_some_and(|c| c.falls_back_to_sms()))
    }

    /// A status of the entry's message failed with 131050 (the contact stopped the
    /// business's marketing messages): the contact goes on the tenant's marketing opt-out,
    /// as of the status.
    async fn note_marketing_stop(&self, r: &EntryRef, at: Time) -> AppResult<()> {
        let choice = MarketingPreference::stopped_by_refusal(r.phone.clone(), at, None);
        note_marketing_choice(&*self.table, &r.tenant, &choice).await?;
        Ok(())
    }

    /// A contact's marketing choice from Meta's `user_preferences` webhook, for the
    /// tenant that owns the number it came for; a number nobody owns takes nothing.
    async fn marketing_choice(
        &self,
        c: MarketingChoice,
        cache: &mut BatchCache,
    ) -> AppResult<bool> {
        let Some(tenant) = cache.owners.of(&*self.table, &c.sender_id).await? else {
            tracing::info!("marketing choice for a number no account owns; ignored");
            return Ok(false);
        };
        let choice = MarketingPreference::from_user_preferences(c.phone, c.stopped, c.at, c.detail);
        note_marketing_choice(&*self.table, &tenant, &choice).await
    }

    /// A customer message: a reply to a campaign's message (R5.2-R5.4), an opt-out
    /// keyword (R5.7), or a message for agents; every one opens the 24-hour window (R5.5).
    /// One customer message: applied, then its events published once through the
    /// message's outbox item (`repo::outbox`); a message whose outbox item exists was
    /// handled before (a webhook delivered again) and changes nothing.
    async fn message(&self, m: InboundMessage, cache: &mut BatchCache) -> AppResult<bool> {
        let t = &*self.table;
        if repo::outbox::exists(t, &m.sender_id, &m.message_id).await? {
            tracing::debug!(phone = %m.from.masked(), "message already handled; ignored");
            return Ok(false);
        }
        let (sender_id, message_id) = (m.sender_id.clone(), m.message_id.clone());
        let Some(events) = self.message_events(m, cache).await? else {
            return Ok(false);
        };
        let outbox = repo::outbox::Outbox::new(&sender_id, &message_id, events, self.clock.now());
        if repo::outbox::claim(t, &outbox).await? {
            super::publish_from_outbox(t, &*self.bus, &outbox).await;
        }
        Ok(true)
    }

    /// Applies one customer message; the events it produces (`None`: it was applied
    /// before).
    async fn message_events(
        &self,
        m: InboundMessage,
        cache: &mut BatchCache,
    ) -> AppResult<Option<Vec<DomainEvent>>> {
        let t = &*self.table;
        let owner = cache.owners.of(t, &m.sender_id).await?;
        let (interaction, window) = futures::try_join!(
            repo::get_interaction(t, &m.sender_id, &m.from),
            conv::get_window(t, &m.sender_id, &m.from),
        )?;
        // Only the number's owner sends from it; anything else is not theirs to see.
        let interaction =
            interaction.filter(|i| owner.as_ref().is_none_or(|o| *o == i.entry.tenant));
        // A message handled before has an outbox item (checked by the caller); one whose
        // handling died before that is applied again, each step idempotent, so it
        // publishes what the first handling would have.
        let tenant = owner
            .or_else(|| interaction.as_ref().map(|i| i.entry.tenant.clone()))
            .or_else(|| window.as_ref().and_then(|w| w.tenant.clone()));
        let window_until = self.open_window(&m, tenant.as_deref(), window).await?;

        // R5.7: an opt-out keyword; on SMS, HELP.
        if let Some(tenant) = &tenant {
            let keyword = self
                .keyword_events(&m, tenant, interaction.as_ref(), cache)
                .await?;
            if keyword.is_some() {
                return Ok(keyword);
            }
        }
        let received = Received {
            m: &m,
            tenant,
            window_until,
        };
        let Some(interaction) = interaction else {
            tracing::info!(phone = %m.from.masked(), "inbound message with no campaign interaction");
            let ev = received.for_agents(None, InboundReason::NoCampaignInteraction);
            return Ok(Some(vec![ev]));
        };
        let r = interaction.entry.clone();
        if m.context_id
            .as_deref()
            .is_some_and(|c| c != interaction.message_id)
        {
            tracing::info!(phone = %m.from.masked(), "reply to another message; not counted for the campaign");
            self.record(&r, &m, MessageKind::OtherMessage).await?;
            let ev = received.for_agents(Some(&r), InboundReason::OtherMessage);
            return Ok(Some(vec![ev]));
        }
        Ok(Some(self.reply(&received, &interaction, cache).await?))
    }

    /// A message answering the campaign message the contact's interaction is about: the
    /// entry records it, the interaction closes when it is answered (or late), and the
    /// reply (or a request for an agent) is published.
    async fn reply(
        &self,
        received: &Received<'_>,
        interaction: &Interaction,
        cache: &mut BatchCache,
    ) -> AppResult<Vec<DomainEvent>> {
        let (m, r) = (received.m, &interaction.entry);
        let campaign = cache.campaign(&*self.table, r).await?;
        let close_on_quick_reply = campaign.as_ref().is_some_and(|c| c.close_on_quick_reply);
        let reply_route = campaign.as_ref().and_then(|c| c.reply_route.clone());
        let answer = Answer::of(m.text.as_deref(), m.button.as_deref(), &interaction.options);
        let applied = self
            .apply_reply(r, m, &answer, close_on_quick_reply)
            .await?;
        let outcome = applied.map(|(o, _)| o);
        if matches!(outcome, Some(ReplyOutcome::InTime | ReplyOutcome::Late)) {
            // Answered, or too late: the contact is free for other campaigns (R4.6, R5.4).
            self.close_interaction(m, interaction).await?;
        }
        let (kind, events) = match outcome {
            Some(o @ (ReplyOutcome::InTime | ReplyOutcome::KeptPending)) => {
                let first_answer = applied.is_some_and(|(_, first)| first);
                let pending = o == ReplyOutcome::KeptPending;
                reply_events(
                    received,
                    interaction,
                    &answer,
                    pending,
                    first_answer,
                    reply_route,
                )
            }
            Some(_) => received.not_counted(r, MessageKind::Late),
            // The entry no longer waits (answered and closed, timed out, or gone).
            None if m.at > interaction.expires_at => received.not_counted(r, MessageKind::Late),
            None => received.not_counted(r, MessageKind::AfterClose),
        };
        self.record(r, m, kind).await?;
        Ok(events)
    }

    /// Applies the reply to its entry: how it came out and whether it is the contact's
    /// first answer (a first answer that matches no option opens an agent conversation,
    /// R5.3; later messages go to whoever took the conversation). `None` when the entry
    /// no longer waits.
    async fn apply_reply(
        &self,
        r: &EntryRef,
        m: &InboundMessage,
        answer: &Answer,
        close_on_quick_reply: bool,
    ) -> AppResult<Option<(ReplyOutcome, bool)>> {
        let reply = Reply {
            message_id: m.message_id.clone(),
            text: m.text.clone(),
            button: m.button.clone(),
            at: m.at,
        };
        let applied = self
            .change_entry(r, |e| {
                let first = e.replied_at.is_none();
                match e.apply_answer(reply.clone(), answer, close_on_quick_reply) {
                    ReplyOutcome::NotWaiting => None,
                    o => {
                        e.learn_user_id(m.user_id.as_deref());
                        Some((o, first))
                    }
                }
            })
            .await?;
        if applied.is_some() {
            return Ok(applied);
        }
        // The entry holds this very reply: an earlier handling applied it and died
        // before its events were stored; they are the events of that handling.
        Ok(repo::get_entry(&*self.table, r)
            .await?
            .filter(|e| e.holds_reply(&m.message_id))
            .map(|e| (e.reply_outcome(), e.replied_at == Some(m.at))))
    }

    /// What a keyword does: an opt-out keyword (R5.7; on SMS also SMS's own words) puts
    /// the contact on the opt-out list; an SMS HELP gets the tenant's answer. `None`: not
    /// a keyword, the message is read as a reply.
    async fn keyword_events(
        &self,
        m: &InboundMessage,
        tenant: &str,
        interaction: Option<&Interaction>,
        cache: &mut BatchCache,
    ) -> AppResult<Option<Vec<DomainEvent>>> {
        let settings = cache.tenant(&*self.table, tenant).await?;
        let keyword = match m.sms {
            true => settings.sms_opt_out_keyword(m.text.as_deref()),
            false => settings.opt_out_keyword(m.text.as_deref(), m.button.as_deref()),
        };
        if let Some(keyword) = keyword {
            return self
                .opt_out(m, tenant, &keyword, interaction)
                .await
                .map(Some);
        }
        if !(m.sms && crate::domain::tenant::asks_for_help(m.text.as_deref())) {
            return Ok(None);
        }
        // A HELP is never a reply; without the tenant's text the provider's own keyword
        // handling answers it, if anything.
        if let Some(help) = settings
            .sms_help_reply(m.text.as_deref())
            .map(str::to_owned)
        {
            self.answer_help(m, tenant, &help).await?;
        }
        Ok(Some(Vec::new()))
    }

    /// Sends the tenant's HELP answer from the number the message came to, once per
    /// message. A send that fails is logged: the contact may ask again.
    async fn answer_help(&self, m: &InboundMessage, tenant: &str, help: &str) -> AppResult<()> {
        let Some(replies) = &self.replies else {
            tracing::info!(phone = %m.from.masked(), "SMS HELP received; no sender to answer it here");
            return Ok(());
        };
        let t = &*self.table;
        let owner = repo::number_owner(t, &m.sender_id).await?;
        let account = match owner.filter(|o| o.tenant == tenant) {
            Some(o) => repo::get_account(t, tenant, &o.account_id).await?,
            None => None,
        };
        let Some(account) = account.filter(|a| a.provider.sends_sms()) else {
            return Ok(());
        };
        if !repo::claim_help_answer(t, &m.sender_id, &m.message_id, self.clock.now()).await? {
            return Ok(());
        }
        let msg = OutboundSms {
            to: m.from.clone(),
            body: help.to_owned(),
            segments: crate::domain::sms::parts(help).segments,
            callback_data: String::new(),
        };
        if let Err(f) = replies.send_sms(&account, &msg).await {
            tracing::warn!(phone = %m.from.masked(), reason = %f.reason, "SMS HELP answer not sent");
        }
        Ok(())
    }

    /// R5.7: the contact sent one of the tenant's opt-out keywords.
    async fn opt_out(
        &self,
        m: &InboundMessage,
        tenant: &str,
        keyword: &str,
        interaction: Option<&Interaction>,
    ) -> AppResult<Vec<DomainEvent>> {
        let t = &*self.table;
        let rec = crate::domain::blocklist::OptOut::by_keyword(m.from.clone(), keyword, m.at);
        let added = repo::blocklists::put_opt_out_new(t, tenant, &rec).await?;
        tracing::info!(phone = %m.from.masked(), added, "opt-out keyword received");
        let mine = interaction.filter(|i| i.entry.tenant == tenant);
        if let Some(i) = mine {
            let closed = self
                .change_entry(&i.entry, |e| e.apply_opt_out().then_some(()))
                .await?;
            if closed.is_some() {
                self.close_interaction(m, i).await?;
            }
            self.record(&i.entry, m, MessageKind::OptOut).await?;
        }
        if added {
            let ev = DomainEvent::ContactOptedOut(ContactOptedOut {
                tenant: tenant.to_owned(),
                phone: m.from.to_string(),
                sender_id: m.sender_id.clone(),
                message_id: m.message_id.clone(),
                keyword: keyword.to_owned(),
                campaign_id: mine.map(|i| i.entry.campaign_id.clone()),
                at: m.at,
            });
            return Ok(vec![ev]);
        }
        Ok(Vec::new())
    }

    /// Opens or extends the contact's 24-hour window with this business number (R5.2);
    /// returns until when it is open.
    async fn open_window(
        &self,
        m: &InboundMessage,
        tenant: Option<&str>,
        mut window: Option<ServiceWindow>,
    ) -> AppResult<Option<Time>> {
        let t = &*self.table;
        let first = &std::sync::Mutex::new(window.take());
        retry_on_conflict(|n| async move {
            // The window read with the interaction first; after a conflict, again.
            let read = match n {
                0 => first.lock().expect("not poisoned").take(),
                _ => conv::get_window(t, &m.sender_id, &m.from).await?,
            };
            let mut w = read.unwrap_or_else(|| ServiceWindow::new(&m.sender_id, m.from.clone()));
            if !w.inbound(m.at, tenant) {
                return Ok(w.until);
            }
            conv::save_window(t, &mut w).await?;
            Ok(w.until)
        })
        .await
    }

    async fn close_interaction(&self, m: &InboundMessage, i: &Interaction) -> AppResult<()> {
        repo::close_interaction(&*self.table, &m.sender_id, &m.from, &i.message_id, m.at).await?;
        Ok(())
    }

    /// Adds the message to the campaign's conversation (R5.6).
    async fn record(&self, r: &EntryRef, m: &InboundMessage, kind: MessageKind) -> AppResult<()> {
        let msg = ConversationMessage::inbound(
            kind,
            &m.message_id,
            m.at,
            m.text.clone(),
            m.button.clone(),
        );
        conv::put_message(&*self.table, r, &msg).await?;
        Ok(())
    }

    /// Loads an entry, applies `change` (None: nothing to do), stores it conditionally and
    /// moves the counters by the difference. Retried when another writer got there first.
    async fn change_entry<R>(
        &self,
        r: &EntryRef,
        change: impl Fn(&mut HopperEntry) -> Option<R>,
    ) -> AppResult<Option<R>> {
        let change = &change;
        retry_on_conflict(|_| async move {
            let Some(mut e) = repo::get_entry(&*self.table, r).await? else {
                tracing::info!(campaign_id = %r.campaign_id, "webhook for an entry that no longer exists");
                return Ok(None);
            };
            let before = e.clone();
            let Some(out) = change(&mut e) else {
                return Ok(None);
            };
            repo::save_entry(&*self.table, &mut e, self.clock.now()).await?;
            let d: Delta = stats::delta(Some(&before), &e);
            repo::add_counters(&*self.table, &r.tenant, &r.campaign_id, &d).await?;
            Ok(Some(out))
        })
        .await
    }
}

/// Whether `s` reports a failure with Meta's `code`.
/// What a group of statuses did to their entry.
struct Applied<'a> {
    /// How many changed it.
    changed: usize,
    /// The earliest 131050 of the entry's own message: the contact stopped marketing.
    stopped: Option<Time>,
    /// A refusal of the entry's own message because the contact opted out of the number.
    opted_out: Option<&'a StatusUpdate>,
}

/// Applies each status to the entry in memory, under the campaign's marketing-limit rule.
fn apply_all<'a>(
    e: &mut HopperEntry,
    statuses: &[&'a StatusUpdate],
    hold: Option<&MarketingLimitHold>,
) -> Applied<'a> {
    let mut done = Applied {
        changed: 0,
        stopped: None,
        opted_out: None,
    };
    for s in statuses {
        // Only a status about the entry's own message tells of its contact.
        if e.reports_current_attempt(&s.message_id, s.attempt) {
            if failed_with(s, META_MARKETING_OPT_OUT_CODE) {
                done.stopped = Some(done.stopped.map_or(s.at, |t| t.min(s.at)));
            }
            if failed_as(s, FailureClass::OptedOut) {
                done.opted_out = Some(s);
            }
        }
        if e.apply_update_held(s, hold) {
            done.changed += 1;
        }
    }
    done
}

/// Whether the status is a failure the provider classified as `class` (a provider whose
/// codes are not Meta's: Twilio).
fn failed_as(s: &StatusUpdate, class: FailureClass) -> bool {
    matches!(&s.status, StatusKind::Failed { class: Some(c), .. } if *c == class)
}

fn failed_with(s: &StatusUpdate, code: i64) -> bool {
    matches!(&s.status, StatusKind::Failed { code: Some(c), .. } if *c == code)
}

/// Splits a batch's events: delivery statuses grouped by entry (with the record each
/// came from), and the other events of each record in order. A status without our
/// callback data is counted as ignored.
fn group_statuses(
    records: Vec<Vec<Inbound>>,
    report: &mut InboxReport,
) -> (Vec<StatusGroup>, Vec<(usize, Vec<Inbound>)>) {
    let mut groups: Vec<StatusGroup> = Vec::new();
    let mut group_of: HashMap<EntryRef, usize> = HashMap::new();
    let mut rest: Vec<(usize, Vec<Inbound>)> = Vec::new();
    for (i, events) in records.into_iter().enumerate() {
        let mut others = Vec::new();
        for ev in events {
            match ev {
                Inbound::Status(s) => match s.entry.clone() {
                    Some(r) => {
                        let g = *group_of.entry(r.clone()).or_insert_with(|| {
                            groups.push((r, Vec::new()));
                            groups.len() - 1
                        });
                        groups[g].1.push((i, s));
                    }
                    None => {
                        tracing::debug!(message_id = %s.message_id, "status without our callback data; ignored");
                        report.ignored += 1;
                    }
                },
                other => others.push(other),
            }
        }
        if !others.is_empty() {
            rest.push((i, others));
        }
    }
    (groups, rest)
}

/// An inbound message with what was learnt of it before its reply is judged.
struct Received<'a> {
    m: &'a InboundMessage,
    /// The tenant of the contact's interaction or window, if any.
    tenant: Option<String>,
    /// The contact's 24-hour window, opened by this message.
    window_until: Option<Time>,
}

impl Received<'_> {
    /// A message the campaign does not count (late, or after its interaction closed):
    /// recorded as `kind` and handed to agents.
    fn not_counted(&self, r: &EntryRef, kind: MessageKind) -> (MessageKind, Vec<DomainEvent>) {
        let reason = match kind {
            MessageKind::AfterClose => InboundReason::InteractionClosed,
            _ => InboundReason::LateReply,
        };
        (kind, vec![self.for_agents(Some(r), reason)])
    }

    /// The `InboundConversation` event handing the message to agents or bots.
    fn for_agents(&self, r: Option<&EntryRef>, reason: InboundReason) -> DomainEvent {
        inbound_conversation(
            self.m,
            self.tenant.clone(),
            r.map(|r| r.campaign_id.clone()),
            reason,
            self.window_until,
        )
    }
}

/// What an in-time answer (or one kept pending) publishes: the reply, and a request for
/// an agent when a first answer matches no option (R5.3); and how the conversation
/// records it.
fn reply_events(
    received: &Received<'_>,
    interaction: &Interaction,
    answer: &Answer,
    pending: bool,
    first_answer: bool,
    reply_route: Option<String>,
) -> (MessageKind, Vec<DomainEvent>) {
    let (m, r) = (received.m, &interaction.entry);
    let conversation = conversation_path(&r.campaign_id, r.phone.as_str());
    let mut evs = vec![DomainEvent::ReplyReceived(ReplyReceived {
        tenant: r.tenant.clone(),
        campaign_id: r.campaign_id.clone(),
        phone: m.from.to_string(),
        sender_id: m.sender_id.clone(),
        message_id: m.message_id.clone(),
        text: m.text.clone(),
        button: answer.option().map(str::to_owned),
        answer: answer.kind(),
        interaction: if pending {
            InteractionState::Pending
        } else {
            InteractionState::Closed
        },
        reply_route: reply_route.clone(),
        conversation: conversation.clone(),
        window_until: received.window_until,
        at: m.at,
    })];
    if *answer != Answer::NoMatch {
        return (MessageKind::Reply, evs);
    }
    if first_answer {
        evs.push(DomainEvent::AgentConversationRequested(
            AgentConversationRequested {
                tenant: r.tenant.clone(),
                campaign_id: r.campaign_id.clone(),
                phone: m.from.to_string(),
                sender_id: m.sender_id.clone(),
                message_id: m.message_id.clone(),
                text: m.text.clone(),
                options: interaction.options.clone(),
                reason: "the reply matches none of the quick-reply options".into(),
                reply_route,
                conversation,
                window_until: received.window_until,
                at: m.at,
            },
        ));
    }
    (MessageKind::NoMatch, evs)
}

fn inbound_conversation(
    m: &InboundMessage,
    tenant: Option<String>,
    campaign_id: Option<String>,
    reason: InboundReason,
    window_until: Option<Time>,
) -> DomainEvent {
    DomainEvent::InboundConversation(InboundConversation {
        tenant,
        campaign_id,
        phone: m.from.to_string(),
        sender_id: m.sender_id.clone(),
        message_id: m.message_id.clone(),
        text: m.text.clone(),
        button: m.button.clone(),
        reason,
        window_until,
        at: m.at,
    })
}
