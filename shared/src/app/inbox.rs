//! The webhook's use case: apply delivery statuses and customer replies to hopper
//! entries, idempotently and never backwards (R6.1, R5.2), and the provider's template
//! status and quality changes to the stored templates (R3.2).

use super::{publish, AppResult, CONFLICT_RETRIES};
use crate::domain::events::{DomainEvent, ReplyReceived};
use crate::domain::hopper::{HopperEntry, Reply, ReplyOutcome};
use crate::domain::inbound::{EntryRef, Inbound, InboundMessage, StatusUpdate};
use crate::domain::stats::{self, Delta};
use crate::ports::{Clock, EventBus, PortError, Table};
use crate::repo;
use std::sync::Arc;

pub struct Inbox {
    pub table: Arc<dyn Table>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboxReport {
    pub applied: usize,
    pub ignored: usize,
}

impl Inbox {
    /// Applies verified webhook events. An error means the provider should deliver the
    /// webhook again; everything here is idempotent, so a redelivery is harmless.
    pub async fn handle(&self, events: Vec<Inbound>) -> AppResult<InboxReport> {
        let mut report = InboxReport::default();
        for ev in events {
            let applied = match ev {
                Inbound::Status(s) => self.status(s).await?,
                Inbound::Message(m) => self.message(m).await?,
                Inbound::TemplateStatus(u) => {
                    let now = self.clock.now();
                    super::templates::apply_template_update(&*self.table, &*self.bus, now, &u)
                        .await?
                        > 0
                }
            };
            if applied {
                report.applied += 1;
            } else {
                report.ignored += 1;
            }
        }
        Ok(report)
    }

    async fn status(&self, s: StatusUpdate) -> AppResult<bool> {
        let Some(r) = s.entry else {
            tracing::debug!(message_id = %s.message_id, "status without our callback data; ignored");
            return Ok(false);
        };
        let changed = self
            .change_entry(&r, |e| e.apply_status(&s.status, s.at).then_some(()))
            .await?;
        Ok(changed.is_some())
    }

    async fn message(&self, m: InboundMessage) -> AppResult<bool> {
        let Some(interaction) = repo::get_interaction(&*self.table, &m.sender_id, &m.from).await?
        else {
            tracing::info!(phone = %m.from.masked(), "inbound message with no campaign interaction");
            return Ok(false);
        };
        if m.context_id
            .as_deref()
            .is_some_and(|c| c != interaction.message_id)
        {
            tracing::info!(phone = %m.from.masked(), "reply to an older message; not counted for the campaign");
            return Ok(false);
        }
        let reply = Reply {
            message_id: m.message_id.clone(),
            text: m.text.clone(),
            button: m.button.clone(),
            at: m.at,
        };
        let outcome = self
            .change_entry(&interaction.entry, |e| match e.apply_reply(reply.clone()) {
                ReplyOutcome::NotWaiting => None,
                o => Some(o),
            })
            .await?;
        if outcome.is_some() {
            // Answered (in time or late): the contact is free for other campaigns (R4.6).
            repo::close_interaction(
                &*self.table,
                &m.sender_id,
                &m.from,
                &interaction.message_id,
                m.at,
            )
            .await?;
        }
        if outcome == Some(ReplyOutcome::InTime) {
            let ev = DomainEvent::ReplyReceived(ReplyReceived {
                tenant: interaction.entry.tenant.clone(),
                campaign_id: interaction.entry.campaign_id.clone(),
                phone: m.from.to_string(),
                text: m.text,
                button: m.button,
                at: m.at,
            });
            publish(&*self.bus, &[ev]).await;
        }
        Ok(outcome.is_some())
    }

    /// Loads an entry, applies `change` (None: nothing to do), stores it conditionally and
    /// moves the counters by the difference. Retried when another writer got there first.
    async fn change_entry<R>(
        &self,
        r: &EntryRef,
        change: impl Fn(&mut HopperEntry) -> Option<R>,
    ) -> AppResult<Option<R>> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(mut e) = repo::get_entry(&*self.table, r).await? else {
                tracing::info!(campaign_id = %r.campaign_id, "webhook for an entry that no longer exists");
                return Ok(None);
            };
            let before = e.clone();
            let Some(out) = change(&mut e) else {
                return Ok(None);
            };
            match repo::save_entry(&*self.table, &mut e).await {
                Ok(()) => {
                    let d: Delta = stats::delta(Some(&before), &e);
                    repo::add_counters(&*self.table, &r.tenant, &r.campaign_id, &d).await?;
                    return Ok(Some(out));
                }
                Err(PortError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PortError::ConditionFailed.into())
    }
}
