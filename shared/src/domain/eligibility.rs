//! The checks before each send (R4.2), in order: block list (and the tenant's opt-out
//! list) -> phone validity -> duplicate window -> active interaction elsewhere. The
//! template-variable check comes last, when the message is rendered (R3.3). Each check's
//! outcome is recorded on the entry with its reason (R4.3-R4.6).

use super::campaign::Campaign;
use super::hopper::{EntryState, HopperEntry};
use super::inbound::EntryRef;
use super::phone::PhoneNumber;
use super::Time;
use serde::{Deserialize, Serialize};

/// Reason of an entry whose number is on a block list attached to the campaign (R4.3).
pub const BLOCK_LIST_REASON: &str = "block list";
/// Reason of an entry whose contact is on the tenant's opt-out list (R4.3).
pub const OPTED_OUT_REASON: &str = super::outcome::OPTED_OUT_REASON;
/// Reason of an entry whose number is too short, with no block list configured (R4.4).
pub const INVALID_NUMBER_REASON: &str = "Invalid Number";
/// Reason of an entry skipped by the duplicate window (R4.5).
pub const DUPLICATE_REASON: &str = "duplicate";
/// What a waiting entry shows while another campaign's interaction is open (R4.6), and
/// what any attempt to write to a contact a campaign waits for says (R5.1): the seed's
/// message, verbatim.
pub const WAITING_FOR_INTERACTION: &str =
    "No messages can be sent since we are waiting for the customer's response.";

/// How long a sender may hold a contact (checks, claim, provider call, interaction
/// write) before another may take it: far above a send's run time, so a live sender is
/// never overtaken. A sender that failed midway keeps its hold until it lapses: longer
/// than the sweeper takes to reclaim its SENDING claim (15 minutes, then the next sweep a
/// minute later), which holds the contact through an interaction from then on.
pub const HOLD_LEASE: chrono::Duration = chrono::Duration::minutes(20);
/// How long an entry waits when another campaign's sender holds its contact: holds
/// usually last a provider call, so it looks again soon.
pub const HOLD_RECHECK: chrono::Duration = chrono::Duration::minutes(1);
/// What a waiting entry shows while another send to its contact is under way.
pub const HELD_REASON: &str = "another campaign is sending to this contact";

/// A sender's hold on one contact of a tenant, from before the checks of R4.2 until the
/// contact's interaction is written (R4.5, R4.6). The checks read interactions, written
/// only after the provider answers: two campaigns sending to the same contact at the same
/// moment would both read "free" and both send. Whoever takes the hold (a conditional
/// write on its version) checks and sends; the other waits and checks again after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactHold {
    pub tenant: String,
    pub phone: PhoneNumber,
    /// The entry (`EntryRef::encode`) holding the contact.
    pub holder: String,
    pub until: Time,
    /// Let go of by its holder (not lapsed).
    #[serde(default)]
    pub released: bool,
    #[serde(default)]
    pub version: u64,
}

impl ContactHold {
    pub fn new(tenant: &str, phone: PhoneNumber) -> Self {
        ContactHold {
            tenant: tenant.to_owned(),
            phone,
            holder: String::new(),
            until: Time::MIN_UTC,
            released: true,
            version: 0,
        }
    }

    /// Takes the hold for `holder` until `now + HOLD_LEASE`, unless another holder's
    /// hold is still on: then `Err` with the time it lapses at the latest.
    pub fn take(&mut self, holder: &str, now: Time) -> Result<(), Time> {
        if self.holder != holder && self.until > now {
            return Err(self.until);
        }
        self.holder = holder.to_owned();
        self.until = now + HOLD_LEASE;
        self.released = false;
        Ok(())
    }

    /// The entry of another holder whose hold lapsed without being let go: its sender
    /// failed midway, maybe after the provider accepted its message.
    pub fn lapsed_holder(&self, holder: &str, now: Time) -> Option<&str> {
        (!self.released && self.holder != holder && !self.holder.is_empty() && self.until <= now)
            .then_some(self.holder.as_str())
    }

    /// Lets go of the hold if `holder` has it; whether it changed.
    pub fn release(&mut self, holder: &str, now: Time) -> bool {
        if self.holder != holder || self.until <= now {
            return false;
        }
        self.until = now;
        self.released = true;
        true
    }
}

/// Whether `campaign`'s checks depend on other campaigns' sends to a contact (the
/// duplicate window, R4.5, or waiting for an open interaction, R4.6): only then must its
/// sender wait while another holds the contact. A campaign that checks neither still takes
/// a free hold, so campaigns that do check see its send.
pub fn waits_for_holds(campaign: &Campaign) -> bool {
    campaign.duplicate_window_days.is_some() || !campaign.include_active_interactions
}

/// How long a contact held by an open interaction waits before it is looked at again.
/// An interaction usually closes early (a reply), so the entry does not wait for the
/// whole response timeout of the other campaign; it waits at most this long per check.
pub const INTERACTION_RECHECK: chrono::Duration = chrono::Duration::minutes(10);

pub use super::phone::short_phone_error;

/// The last campaign message one of our senders sent a contact, and the reply window it
/// opened: how a reply without context finds its entry (R5.2), whether the contact is
/// busy with another campaign (R4.6), and when another campaign last wrote to it (R4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub entry: EntryRef,
    pub message_id: String,
    /// When the response timeout ends.
    pub expires_at: Time,
    /// When the message went out (absent on items written before it was recorded).
    #[serde(default)]
    pub sent_at: Option<Time>,
    /// Set when a reply closed the interaction before its timeout.
    #[serde(default)]
    pub closed_at: Option<Time>,
    /// The latest earlier send by another campaign on this sender, carried forward so a
    /// retry of one campaign does not hide another campaign's send from the window.
    #[serde(default)]
    pub prior: Option<PriorSend>,
    /// The quick-reply options the message offered, so a reply is classified without
    /// reading the template (R5.2, R5.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Epoch seconds after which DynamoDB may delete the item (cleanup only).
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorSend {
    pub campaign_id: String,
    pub at: Time,
}

/// How long an interaction item outlives its timeout: the duplicate window (at most
/// 7 days, R1.2) must still see the send.
const KEEP_AFTER_TIMEOUT: chrono::Duration = chrono::Duration::days(8);

impl Interaction {
    /// The interaction a send opens; `previous` is the item it replaces on this sender.
    pub fn opened(
        entry: EntryRef,
        message_id: String,
        sent_at: Time,
        timeout: chrono::Duration,
        previous: Option<&Interaction>,
    ) -> Self {
        let prior = previous.and_then(|p| {
            if p.entry.campaign_id != entry.campaign_id {
                p.sent_at.map(|at| PriorSend {
                    campaign_id: p.entry.campaign_id.clone(),
                    at,
                })
            } else {
                p.prior.clone()
            }
        });
        let expires_at = sent_at + timeout;
        Interaction {
            entry,
            message_id,
            expires_at,
            sent_at: Some(sent_at),
            closed_at: None,
            prior,
            options: Vec::new(),
            ttl: (expires_at + KEEP_AFTER_TIMEOUT).timestamp(),
        }
    }

    /// The interaction of a message the provider may have accepted (a timeout, a worker
    /// that died after the call): the contact counts as written to from `at`, as if the
    /// message went out, so no other campaign writes to it inside the response timeout or
    /// the duplicate window. It names no real message id, so no reply is taken as an
    /// answer to it. `None` when `previous` is a later send, which stands.
    pub fn maybe_sent(
        entry: EntryRef,
        attempt: u32,
        at: Time,
        timeout: chrono::Duration,
        previous: Option<&Interaction>,
    ) -> Option<Self> {
        if previous.is_some_and(|p| p.sent_at.is_some_and(|s| s > at)) {
            return None;
        }
        let unknown_id = format!("unknown:{}", entry.encode_attempt(attempt));
        Some(Interaction::opened(
            entry, unknown_id, at, timeout, previous,
        ))
    }

    /// The interaction a recorded send should have opened, for when writing it failed
    /// (the entry has its message id and send time): closed if the contact answered
    /// already, since the send still counts for the duplicate window. `None` when the
    /// entry was not sent, or `previous` is this send or a later one, which stands.
    pub fn restored(
        entry: &HopperEntry,
        timeout: chrono::Duration,
        previous: Option<&Interaction>,
    ) -> Option<Self> {
        let (Some(message_id), Some(sent_at)) = (entry.message_id.clone(), entry.sent_at) else {
            return None;
        };
        if previous.is_some_and(|p| {
            p.message_id == message_id || p.sent_at.is_some_and(|at| at >= sent_at)
        }) {
            return None;
        }
        let mut i = Interaction::opened(entry.entry_ref(), message_id, sent_at, timeout, previous);
        if entry.state != EntryState::Pending {
            i.closed_at = entry.replied_at;
        }
        Some(i)
    }

    /// The quick-reply options the message offered (R5.2).
    pub fn with_options(mut self, options: Vec<String>) -> Self {
        self.options = options;
        self
    }

    /// Open until the timeout ends or a reply closes it.
    pub fn is_open(&self, now: Time) -> bool {
        self.closed_at.is_none() && self.expires_at > now
    }

    /// The latest send on this sender by a campaign other than `campaign`.
    pub fn last_send_by_other(&self, campaign: &str) -> Option<PriorSend> {
        match self.sent_at {
            Some(at) if self.entry.campaign_id != campaign => Some(PriorSend {
                campaign_id: self.entry.campaign_id.clone(),
                at,
            }),
            _ => self.prior.clone(),
        }
    }
}

/// What the stores know about one contact when its turn comes.
#[derive(Debug, Clone, Default)]
pub struct ContactFacts {
    /// The first attached block list holding the number.
    pub blocked_by: Option<String>,
    /// On the tenant's opt-out list.
    pub opted_out: bool,
    /// On the tenant's marketing opt-out (Meta 131050, or a `user_preferences` stop):
    /// no MARKETING template goes to it.
    pub marketing_opted_out: bool,
    /// The contact's interactions with each of the tenant's senders.
    pub interactions: Vec<Interaction>,
}

/// The answer of the checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Send,
    /// Never sent by this campaign: recorded in `state` with its reason and error.
    NotSent {
        state: EntryState,
        reason: &'static str,
        error: Option<String>,
    },
    /// Not yet: the entry stays FRESH and waits until `until` (R4.6).
    Wait {
        until: Time,
        why: &'static str,
    },
}

/// Runs the checks of R4.2 in order for one contact of `campaign`.
pub fn check(campaign: &Campaign, phone: &PhoneNumber, facts: &ContactFacts, now: Time) -> Verdict {
    // 1. Block lists, and the tenant's opt-out list, which is always honoured (R4.3).
    if let Some(list) = &facts.blocked_by {
        return Verdict::NotSent {
            state: EntryState::BlockList,
            reason: BLOCK_LIST_REASON,
            error: Some(format!("the number is on block list {list}")),
        };
    }
    if facts.opted_out {
        return Verdict::NotSent {
            state: EntryState::BlockList,
            reason: OPTED_OUT_REASON,
            error: Some("the contact opted out of messages from this business".into()),
        };
    }
    // 2. Phone validity (R4.4): with a block list configured the entry is recorded
    // BLOCK_LIST, otherwise FAILED "Invalid Number"; both keep the exact error text.
    if !phone.is_dialable() {
        let (state, reason) = if campaign.block_lists.is_empty() {
            (EntryState::Failed, INVALID_NUMBER_REASON)
        } else {
            (EntryState::BlockList, BLOCK_LIST_REASON)
        };
        return Verdict::NotSent {
            state,
            reason,
            error: Some(short_phone_error(phone)),
        };
    }
    // 3. Duplicate window over every campaign of the tenant (R4.5).
    if let Some(days) = campaign.duplicate_window_days {
        let since = now - chrono::Duration::days(i64::from(days));
        let recent = facts
            .interactions
            .iter()
            .filter_map(|i| i.last_send_by_other(&campaign.id))
            .filter(|p| p.at > since)
            .max_by_key(|p| p.at);
        if let Some(p) = recent {
            return Verdict::NotSent {
                state: EntryState::Skipped,
                reason: DUPLICATE_REASON,
                error: Some(format!(
                    "campaign {} sent to this contact at {}, inside the {days}-day duplicate window",
                    p.campaign_id,
                    p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )),
            };
        }
    }
    // 4. An open interaction with another campaign (R4.6): wait, unless the campaign
    // includes contacts with active interactions.
    if !campaign.include_active_interactions {
        let busy_until = facts
            .interactions
            .iter()
            .filter(|i| i.entry.campaign_id != campaign.id && i.is_open(now))
            .map(|i| i.expires_at)
            .max();
        if let Some(until) = busy_until {
            return Verdict::Wait {
                until: until.min(now + INTERACTION_RECHECK),
                why: WAITING_FOR_INTERACTION,
            };
        }
    }
    Verdict::Send
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::{NewCampaign, TemplateRef};
    use chrono::{Duration, TimeZone, Utc};

    fn now() -> Time {
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
    }

    fn campaign(id: &str) -> Campaign {
        let mut c = Campaign::create(
            "t",
            NewCampaign {
                name: Some("c".into()),
                account_id: Some("a".into()),
                template: Some(TemplateRef {
                    name: "x".into(),
                    language: "en".into(),
                }),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        c.id = id.into();
        c
    }

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    fn sent_by(campaign: &str, at: Time, timeout: Duration) -> Interaction {
        let r = EntryRef {
            tenant: "t".into(),
            campaign_id: campaign.into(),
            shard: 0,
            phone: phone("919812345678"),
        };
        Interaction::opened(r, "wamid.1".into(), at, timeout, None)
    }

    #[test]
    fn r4_2_checks_run_in_order_block_list_first() {
        let mut c = campaign("c1");
        c.duplicate_window_days = Some(7);
        c.block_lists = vec!["bl_1".into()];
        let facts = ContactFacts {
            blocked_by: Some("bl_1".into()),
            opted_out: true,
            marketing_opted_out: false,
            interactions: vec![sent_by("c0", now() - Duration::hours(1), Duration::days(1))],
        };
        // Blocked, opted out, short, duplicate and busy all at once: the block list wins.
        let v = check(&c, &phone("1234"), &facts, now());
        assert!(
            matches!(
                v,
                Verdict::NotSent {
                    state: EntryState::BlockList,
                    reason: BLOCK_LIST_REASON,
                    ..
                }
            ),
            "{v:?}"
        );
        // Then the opt-out list, then the phone, then the duplicate window, then the wait.
        let facts = ContactFacts {
            blocked_by: None,
            ..facts
        };
        assert!(matches!(
            check(&c, &phone("1234"), &facts, now()),
            Verdict::NotSent {
                reason: OPTED_OUT_REASON,
                ..
            }
        ));
        let facts = ContactFacts {
            opted_out: false,
            ..facts
        };
        assert!(matches!(
            check(&c, &phone("1234"), &facts, now()),
            Verdict::NotSent {
                state: EntryState::BlockList,
                reason: BLOCK_LIST_REASON,
                ..
            }
        ));
        assert!(matches!(
            check(&c, &phone("919812345678"), &facts, now()),
            Verdict::NotSent {
                reason: DUPLICATE_REASON,
                ..
            }
        ));
        c.duplicate_window_days = None;
        assert!(matches!(
            check(&c, &phone("919812345678"), &facts, now()),
            Verdict::Wait { .. }
        ));
        c.include_active_interactions = true;
        assert_eq!(
            check(&c, &phone("919812345678"), &facts, now()),
            Verdict::Send
        );
    }

    #[test]
    fn r4_4_short_phone_is_failed_invalid_number_without_block_list() {
        let c = campaign("c1");
        let v = check(&c, &phone("1234"), &ContactFacts::default(), now());
        assert_eq!(
            v,
            Verdict::NotSent {
                state: EntryState::Failed,
                reason: "Invalid Number",
                error: Some("Contact with invalid phone number: 1234. The phone number should have at least 5 digits.".into()),
            }
        );
        assert_eq!(
            check(&c, &phone("12345"), &ContactFacts::default(), now()),
            Verdict::Send
        );
    }

    #[test]
    fn r4_4_short_phone_is_block_list_when_a_block_list_is_configured() {
        let mut c = campaign("c1");
        c.block_lists = vec!["bl_1".into()];
        let v = check(&c, &phone("1234"), &ContactFacts::default(), now());
        assert_eq!(
            v,
            Verdict::NotSent {
                state: EntryState::BlockList,
                reason: BLOCK_LIST_REASON,
                error: Some("Contact with invalid phone number: 1234. The phone number should have at least 5 digits.".into()),
            }
        );
    }

    #[test]
    fn r4_5_duplicate_window_counts_other_campaigns_only_inside_n_days() {
        let mut c = campaign("c1");
        c.duplicate_window_days = Some(2);
        c.include_active_interactions = true;
        let p = phone("919812345678");
        let at = |h: i64| now() - Duration::hours(h);
        let facts = |i| ContactFacts {
            interactions: vec![i],
            ..Default::default()
        };
        let v = check(
            &c,
            &p,
            &facts(sent_by("c0", at(47), Duration::days(1))),
            now(),
        );
        assert!(
            matches!(
                v,
                Verdict::NotSent {
                    state: EntryState::Skipped,
                    reason: "duplicate",
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(
            check(
                &c,
                &p,
                &facts(sent_by("c0", at(49), Duration::days(1))),
                now()
            ),
            Verdict::Send
        );
        // Its own earlier send (a retry) is no duplicate...
        assert_eq!(
            check(
                &c,
                &p,
                &facts(sent_by("c1", at(1), Duration::days(1))),
                now()
            ),
            Verdict::Send
        );
        // ...but it does not hide another campaign's send that came before it.
        let other = sent_by("c0", at(30), Duration::days(1));
        let mut mine = other.entry.clone();
        mine.campaign_id = "c1".into();
        let own = Interaction::opened(
            mine.clone(),
            "wamid.2".into(),
            at(1),
            Duration::days(1),
            Some(&other),
        );
        assert_eq!(
            own.prior.as_ref().map(|p| p.campaign_id.as_str()),
            Some("c0")
        );
        assert!(matches!(
            check(&c, &p, &facts(own.clone()), now()),
            Verdict::NotSent {
                reason: "duplicate",
                ..
            }
        ));
        // A second send of its own carries the other campaign's send forward.
        let again =
            Interaction::opened(mine, "wamid.3".into(), now(), Duration::days(1), Some(&own));
        assert_eq!(again.prior, own.prior);
        c.duplicate_window_days = None;
        assert_eq!(
            check(
                &c,
                &p,
                &facts(sent_by("c0", at(1), Duration::days(1))),
                now()
            ),
            Verdict::Send
        );
    }

    #[test]
    fn r4_6_open_interaction_elsewhere_waits_until_it_closes() {
        let c = campaign("c1");
        let p = phone("919812345678");
        let open = sent_by("c0", now() - Duration::minutes(1), Duration::minutes(5));
        let facts = ContactFacts {
            interactions: vec![open.clone()],
            ..Default::default()
        };
        assert_eq!(
            check(&c, &p, &facts, now()),
            Verdict::Wait {
                until: now() + Duration::minutes(4),
                why: WAITING_FOR_INTERACTION
            }
        );
        // A long timeout is looked at again after INTERACTION_RECHECK, not at its end.
        let long = sent_by("c0", now() - Duration::minutes(1), Duration::days(1));
        let facts = ContactFacts {
            interactions: vec![long.clone()],
            ..Default::default()
        };
        assert!(
            matches!(check(&c, &p, &facts, now()), Verdict::Wait { until, .. } if until == now() + INTERACTION_RECHECK)
        );
        // Closed by a reply, or timed out: send.
        let mut closed = long;
        closed.closed_at = Some(now());
        let facts = ContactFacts {
            interactions: vec![closed],
            ..Default::default()
        };
        assert_eq!(check(&c, &p, &facts, now()), Verdict::Send);
        let facts = ContactFacts {
            interactions: vec![open],
            ..Default::default()
        };
        assert_eq!(
            check(&c, &p, &facts, now() + Duration::minutes(4)),
            Verdict::Send
        );
        // Its own interaction does not hold it.
        let own = sent_by("c1", now(), Duration::days(1));
        let facts = ContactFacts {
            interactions: vec![own],
            ..Default::default()
        };
        assert_eq!(check(&c, &p, &facts, now()), Verdict::Send);
    }

    #[test]
    fn a_contact_hold_goes_to_one_holder_until_released_or_lapsed() {
        let now = chrono::Utc::now();
        let mut h = ContactHold::new("t", PhoneNumber::parse("919812340000").unwrap());
        assert_eq!(h.take("a", now), Ok(()));
        assert_eq!(h.take("b", now), Err(now + HOLD_LEASE), "a holds it");
        assert_eq!(h.take("a", now), Ok(()), "a may take it again");
        assert!(!h.release("b", now), "only the holder lets go");
        assert!(h.release("a", now));
        assert_eq!(h.take("b", now), Ok(()), "free once released");
        assert_eq!(
            h.take("a", now + HOLD_LEASE + chrono::Duration::seconds(1)),
            Ok(()),
            "or lapsed"
        );
    }
}
