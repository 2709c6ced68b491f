//! Campaign statistics (R6.2). Counters move only by the difference between an entry
//! before and after a stored change, so the totals always equal a recount of entries.
//!
//! Counter names: `target`, the funnel steps `sent`, `delivered`, `read`, `replied`,
//! `no_response`, `agent_requested` (replied, never with an option), one per hopper state (`FRESH`, `PENDING`, `FAILED`, ...), and one per
//! reason an entry did not reach its contact, `reason:<reason>` (R6.2 "not sent by
//! reason"). Every entry in FAILED, BLOCK_LIST, SKIPPED or RETRY counts under exactly one
//! reason (`unspecified` when it has none), so the reason counters sum to those states.

use super::campaign::Channel;
use super::hopper::{EntryState, HopperEntry, SmsFallback};
use super::outcome::MARKETING_LIMIT_HELD_REASON;
use super::Time;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};

/// Prefix of the counters of entries that did not reach their contact, by reason.
pub const REASON_PREFIX: &str = "reason:";
/// The reason counted for a not-sent entry that carries none (entries stored before
/// reasons existed).
pub const UNSPECIFIED_REASON: &str = "unspecified";
/// Longest reason kept in a counter name (characters); longer provider texts are cut, so
/// a counter item cannot grow without bound.
pub const MAX_REASON_CHARS: usize = 100;

/// The states whose entries did not reach (or have not yet reached) their contact and
/// carry a reason: ruled out before the send, refused, failed, or waiting for a retry.
pub fn is_not_sent(state: EntryState) -> bool {
    matches!(
        state,
        EntryState::Failed | EntryState::BlockList | EntryState::Skipped | EntryState::Retry
    )
}

/// The reason an entry counts under, when it is in a not-sent state: its `reason`
/// trimmed and cut to [`MAX_REASON_CHARS`], or [`UNSPECIFIED_REASON`].
pub fn not_sent_reason(e: &HopperEntry) -> Option<String> {
    if !is_not_sent(e.state) {
        return None;
    }
    let r = e.reason.as_deref().map(str::trim).unwrap_or("");
    Some(if r.is_empty() {
        UNSPECIFIED_REASON.to_owned()
    } else {
        r.chars().take(MAX_REASON_CHARS).collect()
    })
}

/// The counter name of `reason` (`reason:<reason>`). Counter names are `&'static str` so
/// deltas stay cheap to fold; reason names are interned once per process (reasons come
/// from a bounded vocabulary: the checks' reasons and the providers' error texts, cut to
/// [`MAX_REASON_CHARS`]).
pub fn reason_counter(reason: &str) -> &'static str {
    static KEYS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let key = format!("{REASON_PREFIX}{reason}");
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(k) = keys.get(key.as_str()) {
        return k;
    }
    let k: &'static str = Box::leak(key.into_boxed_str());
    keys.insert(k);
    k
}

/// The counter of entries whose SMS fallback went out (claimed): their number is not on
/// WhatsApp.
pub const SMS_FALLBACK: &str = "sms_fallback";

/// The counter of entries waiting to be sent again after Meta's marketing limit (131049).
pub const MARKETING_LIMIT_HELD: &str = "marketing_limit_held";

/// Whether the entry waits to be sent again after Meta's marketing limit: FRESH under
/// that reason (waiting, or back in line and not yet sent).
pub fn held_by_marketing_limit(e: &HopperEntry) -> bool {
    e.state == EntryState::Fresh && e.reason.as_deref() == Some(MARKETING_LIMIT_HELD_REASON)
}

/// Voice counters (issue 17): calls placed (an entry counts each of its calls), entries
/// with a call that connected, and entries settled as answered by a person, by a
/// machine (voicemail left or hung up), with no answer, or busy.
pub const CALLS: &str = "calls";
pub const CONNECTED: &str = "connected";
pub const ANSWERED: &str = "answered";
pub const VOICEMAIL: &str = "voicemail";
pub const NO_ANSWER: &str = "no_answer";
pub const BUSY: &str = "busy";

/// Which counters one entry contributes to and by how much (one, or none; `calls` by its
/// number of calls): the funnel steps it reached, one counter per hopper state (named
/// after the state) so hopper counts come from the same source, the reason it did not
/// reach its contact, and a voice entry's calls and their outcome.
fn membership(e: &HopperEntry) -> [(&'static str, i64); 17] {
    let one = i64::from;
    let reason = match not_sent_reason(e) {
        Some(r) => (reason_counter(&r), 1),
        None => ("", 0),
    };
    let d = e.disposition.as_deref();
    [
        ("target", 1),
        ("sent", one(e.sent_at.is_some())),
        ("delivered", one(e.delivered_at.is_some())),
        ("read", one(e.read_at.is_some())),
        ("replied", one(e.replied_at.is_some())),
        ("no_response", one(d == Some("no_response"))),
        (
            "agent_requested",
            one(d == Some(super::hopper::AGENT_REQUESTED)),
        ),
        (e.state.as_str(), 1),
        reason,
        (MARKETING_LIMIT_HELD, one(held_by_marketing_limit(e))),
        (SMS_FALLBACK, one(e.sms_fallback == Some(SmsFallback::Sent))),
        (CALLS, e.calls.len() as i64),
        (
            CONNECTED,
            one(e.calls.iter().any(|c| c.connected_at.is_some())),
        ),
        (ANSWERED, one(d == Some("answered"))),
        (
            VOICEMAIL,
            one(matches!(d, Some("voicemail" | "machine_hung_up"))),
        ),
        (NO_ANSWER, one(d == Some("no_answer"))),
        (BUSY, one(d == Some("busy"))),
    ]
}

/// Counter changes, by counter name; zero changes are left out.
pub type Delta = BTreeMap<&'static str, i64>;

/// What changing `before` into `after` does to the counters (`None`: the entry is new).
pub fn delta(before: Option<&HopperEntry>, after: &HopperEntry) -> Delta {
    let mut d = Delta::new();
    for (name, n) in membership(after) {
        if n != 0 {
            *d.entry(name).or_insert(0) += n;
        }
    }
    if let Some(b) = before {
        for (name, n) in membership(b) {
            if n != 0 {
                *d.entry(name).or_insert(0) -= n;
            }
        }
    }
    d.retain(|_, v| *v != 0);
    d
}

/// Adds `other` into `acc`, for folding a batch's changes into one counter write.
pub fn fold(acc: &mut Delta, other: Delta) {
    for (k, v) in other {
        *acc.entry(k).or_insert(0) += v;
    }
    acc.retain(|_, v| *v != 0);
}

/// Sums counters over entries: the recount the live counters must equal.
pub fn recount<'a>(entries: impl IntoIterator<Item = &'a HopperEntry>) -> Delta {
    let mut acc = Delta::new();
    for e in entries {
        fold(&mut acc, delta(None, e));
    }
    acc
}

/// How long after an entry is stored changed its counters' change is surely applied or
/// lost: longer than any function lives (Lambda stops every function within 15 minutes),
/// and writers change an entry before they move the counters.
pub const SETTLED_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// What one walk over a campaign's hopper found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HopperWalk {
    /// The counters the entries give.
    pub recount: Delta,
    /// Entries still to be sent or waited for (FRESH, SENDING, PENDING).
    pub open: u64,
    /// Entries the provider may still be working on (SENDING, PENDING).
    pub in_flight: u64,
    /// Entries changed too recently (or during the walk) for the counters to be judged.
    pub unsettled: u64,
}

impl HopperWalk {
    /// Folds one entry, read by a walk that began at `started`.
    pub fn add(&mut self, e: &HopperEntry, started: Time) {
        fold(&mut self.recount, delta(None, e));
        if e.state.is_open() {
            self.open += 1;
        }
        if matches!(e.state, EntryState::Sending | EntryState::Pending) {
            self.in_flight += 1;
        }
        if e.changed_at.is_some_and(|t| t > started - SETTLED_AFTER) {
            self.unsettled += 1;
        }
    }

    /// Another shard's walk.
    pub fn merge(&mut self, other: HopperWalk) {
        fold(&mut self.recount, other.recount);
        self.open += other.open;
        self.in_flight += other.in_flight;
        self.unsettled += other.unsettled;
    }

    /// What makes `live` (read before the walk began) equal the recount, when that can be
    /// known: every entry's change settled before the walk began, so each change either
    /// moved `live` already or never will; a change made during the walk was either read
    /// by it (then it is unsettled and nothing is repaired) or not (then neither `live`
    /// nor the recount holds it, and its writer moves the counters as usual). `None` when
    /// some entry is unsettled; an empty map when nothing drifted.
    pub fn repair_of(&self, live: &Counters) -> Option<Counters> {
        if self.unsettled > 0 {
            return None;
        }
        let recounted: Counters = self
            .recount
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Some(repair(live, &recounted))
    }
}

/// Whether the sweeper walks a running campaign's hopper this minute although its
/// counters say it is not done, to find counters that drifted (a lost counter write can
/// make them say there is something left when there is not): once every
/// `max(15, target / 10,000)` minutes, so a million-entry hopper is read about every
/// hour and a half, spread over the hour by campaign id.
pub fn periodic_walk_due(campaign_id: &str, target: i64, now: Time) -> bool {
    walk_slot(campaign_id, (target / 10_000).max(15) as u64, now)
}

/// How long after its last change a campaign that is not running has its counters
/// reconciled: past the longest response timeout and the late statuses after it.
pub const SETTLING_FOR: chrono::Duration = chrono::Duration::days(9);

/// Whether the sweeper walks the hopper of a campaign that is not running (and changed
/// less than [`SETTLING_FOR`] ago) this minute: once every `max(60, target / 1,000)`
/// minutes, spread by campaign id.
pub fn settling_walk_due(campaign_id: &str, target: i64, now: Time) -> bool {
    walk_slot(campaign_id, (target / 1_000).max(60) as u64, now)
}

fn walk_slot(campaign_id: &str, every: u64, now: Time) -> bool {
    let minute = (now.timestamp() / 60) as u64;
    minute
        .wrapping_add(super::stable_hash(campaign_id))
        .is_multiple_of(every)
}

/// Live counters as stored (by name), the shape `repo::get_counters` answers.
pub type Counters = BTreeMap<String, i64>;

/// What `add`ing to `live` makes it equal `recounted`: for each counter, the recount
/// minus the live value (counters missing from the recount go to zero); zero changes
/// left out. The repair of counters that drifted from their entries.
pub fn repair(live: &Counters, recounted: &Counters) -> Counters {
    let mut d = Counters::new();
    for (k, v) in recounted {
        d.insert(k.clone(), v - live.get(k).copied().unwrap_or(0));
    }
    for (k, v) in live {
        if !recounted.contains_key(k) {
            d.insert(k.clone(), -v);
        }
    }
    d.retain(|_, v| *v != 0);
    d
}

/// `c` without its zero counters (a counter that went back to zero stays stored as 0).
pub fn nonzero(c: &Counters) -> Counters {
    c.iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Entries per hopper state plus the total (R4.1 hopper view).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"total": 10, "states": {"FRESH": 4, "SENDING": 0, "RETRY": 1, "PENDING": 3, "CLOSED": 2, "FAILED": 0, "BLOCK_LIST": 0, "SKIPPED": 0}}))]
pub struct HopperCounts {
    pub total: i64,
    pub states: BTreeMap<String, i64>,
}

impl HopperCounts {
    pub fn from_counters(c: &BTreeMap<String, i64>) -> Self {
        HopperCounts {
            total: c.get("target").copied().unwrap_or(0),
            states: EntryState::ALL
                .iter()
                .map(|s| {
                    (
                        s.as_str().to_owned(),
                        c.get(s.as_str()).copied().unwrap_or(0),
                    )
                })
                .collect(),
        }
    }
}

/// Live statistics of a campaign (R6.2). Everything comes from the counters, which equal
/// a recount of the entries: `target` = entries in the hopper; `sent`, `delivered`,
/// `read`, `replied` = entries that reached each step (a step implies the ones before
/// it: a read message was delivered); `not_sent` = entries in FAILED, BLOCK_LIST, SKIPPED
/// or RETRY, and `not_sent_by_reason` splits exactly that number by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"target": 10, "sent": 8, "delivered": 7, "read": 5, "replied": 2, "agent_requested": 1, "failed": 1, "no_response": 3, "retry": 0, "marketing_limit_held": 0, "open": 2, "not_sent": 2, "not_sent_by_reason": {"Message Undeliverable": 1, "block list": 1}, "delivered_pct": 87.5, "read_pct": 71.4, "replied_pct": 28.6}))]
pub struct Stats {
    /// Entries in the hopper (contacts targeted).
    pub target: i64,
    /// Messages the provider accepted.
    pub sent: i64,
    /// Messages that reached the phone ("received").
    pub delivered: i64,
    /// Messages read; `null` on a channel that reports no reads (SMS), rather than 0.
    pub read: Option<i64>,
    /// Replies within the response timeout.
    pub replied: i64,
    /// Of `replied`, the entries whose replies matched none of the quick-reply options and
    /// went to an agent (disposition `agent_requested`): replied, never with an option
    /// (still PENDING until the timeout, then CLOSED with that disposition).
    pub agent_requested: i64,
    /// Entries in FAILED (ruled out before the send, refused, or failed after it).
    pub failed: i64,
    /// Sent, delivered or not, and no reply before the timeout.
    pub no_response: i64,
    /// Entries in RETRY (a temporary failure or an unknown outcome; sent again only by
    /// a retry command).
    pub retry: i64,
    /// Of `open`, the entries held by Meta's marketing limit (131049): waiting to be sent
    /// again automatically (hopper reason `held by Meta's marketing limit`).
    pub marketing_limit_held: i64,
    /// Entries whose number WhatsApp refused as not on WhatsApp and that went to SMS
    /// instead, once (the campaign's `sms_fallback`): counted apart, while their SMS
    /// counts in `sent`, `delivered` and `replied` like any message.
    pub sms_fallback: i64,
    /// Still to send or waiting for a reply.
    pub open: i64,
    /// Entries that did not reach their contact: FAILED + BLOCK_LIST + SKIPPED + RETRY.
    pub not_sent: i64,
    /// `not_sent` by reason (`block list`, `opted out`, `Invalid Number`, `duplicate`,
    /// `template variables`, `campaign ended`, `outcome unknown`, the provider's reason,
    /// or `unspecified`); the values sum to `not_sent`.
    pub not_sent_by_reason: BTreeMap<String, i64>,
    /// Received of sent: delivered / sent, in percent with one decimal.
    pub delivered_pct: f64,
    /// Read of received: read / delivered, in percent; `null` where `read` is.
    pub read_pct: Option<f64>,
    /// Replied of received: replied / delivered, in percent.
    pub replied_pct: f64,
    /// A voice campaign's calls (issue 17); absent on the other channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceStats>,
}

/// A voice campaign's statistics (issue 17), instead of WhatsApp's read and replied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"dialled": 8, "calls": 11, "connected": 6, "answered": 4, "voicemail": 2, "no_answer": 1, "busy": 0, "failed": 1, "average_attempts": 1.38}))]
pub struct VoiceStats {
    /// Contacts called at least once.
    pub dialled: i64,
    /// Calls placed, retries included.
    pub calls: i64,
    /// Contacts with a call that was answered (by anyone or anything).
    pub connected: i64,
    /// Contacts a person answered (answering-machine detection said so, or an agent took
    /// the call).
    pub answered: i64,
    /// Contacts whose call a machine answered (voicemail left, or hung up).
    pub voicemail: i64,
    /// Contacts settled with no answer after their last retry.
    pub no_answer: i64,
    /// Contacts settled busy after their last retry.
    pub busy: i64,
    /// Contacts whose number could not take the call (invalid, a fax, failed calls), or
    /// ruled out before it: entries in FAILED.
    pub failed: i64,
    /// Calls per contact called: `calls / dialled`, two decimals.
    pub average_attempts: f64,
}

fn pct(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

impl Stats {
    pub fn from_counters(c: &BTreeMap<String, i64>) -> Self {
        let g = |k: &str| c.get(k).copied().unwrap_or(0);
        let not_sent_by_reason: BTreeMap<String, i64> = c
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(REASON_PREFIX)?.to_owned(), *v)))
            .filter(|(_, v)| *v != 0)
            .collect();
        Stats {
            target: g("target"),
            sent: g("sent"),
            delivered: g("delivered"),
            read: Some(g("read")),
            replied: g("replied"),
            agent_requested: g("agent_requested"),
            failed: g("FAILED"),
            no_response: g("no_response"),
            retry: g("RETRY"),
            marketing_limit_held: g(MARKETING_LIMIT_HELD),
            sms_fallback: g(SMS_FALLBACK),
            open: g("FRESH") + g("SENDING") + g("PENDING"),
            not_sent: g("FAILED") + g("BLOCK_LIST") + g("SKIPPED") + g("RETRY"),
            not_sent_by_reason,
            delivered_pct: pct(g("delivered"), g("sent")),
            read_pct: Some(pct(g("read"), g("delivered"))),
            replied_pct: pct(g("replied"), g("delivered")),
            voice: Some(VoiceStats {
                dialled: g("sent"),
                calls: g(CALLS),
                connected: g(CONNECTED),
                answered: g(ANSWERED),
                voicemail: g(VOICEMAIL),
                no_answer: g(NO_ANSWER),
                busy: g(BUSY),
                failed: g("FAILED"),
                average_attempts: if g("sent") > 0 {
                    (g(CALLS) as f64 * 100.0 / g("sent") as f64).round() / 100.0
                } else {
                    0.0
                },
            }),
        }
    }

    /// The statistics of a campaign on `channel`: one that reports no reads (SMS, voice)
    /// shows none rather than 0 %; only a voice campaign shows its calls.
    pub fn on_channel(mut self, channel: Channel) -> Self {
        if !channel.reports_reads() {
            self.read = None;
            self.read_pct = None;
        }
        if channel != Channel::Voice {
            self.voice = None;
        }
        self
    }

    /// Nothing left to send or wait for.
    pub fn is_done(&self) -> bool {
        self.target > 0 && self.open == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::{Campaign, NewCampaign, TemplateRef};
    use crate::domain::inbound::StatusKind;
    use crate::domain::phone::PhoneNumber;
    use crate::domain::template::ContactData;
    use chrono::{Duration, Utc};

    #[test]
    fn r6_2_counters_follow_entry_changes_and_equal_a_recount() {
        let now = Utc::now();
        let c = Campaign::create(
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
            now,
        )
        .unwrap();
        let mut live = Delta::new();
        let mut entries = Vec::new();
        for i in 0..3 {
            let e = HopperEntry::new(
                &c,
                PhoneNumber::parse(&format!("91981234567{i}")).unwrap(),
                ContactData::default(),
                i,
            );
            fold(&mut live, delta(None, &e));
            entries.push(e);
        }
        for (i, e) in entries.iter_mut().enumerate() {
            let before = e.clone();
            e.claim(now).unwrap();
            e.record_sent(format!("m{i}"), now, Duration::days(1));
            if i == 0 {
                e.apply_status(&StatusKind::Read, now);
            }
            if i == 1 {
                e.expire(now + Duration::days(2));
            }
            fold(&mut live, delta(Some(&before), e));
        }
        assert_eq!(live, recount(&entries));
        let stats = Stats::from_counters(&live.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        assert_eq!(
            (
                stats.target,
                stats.sent,
                stats.delivered,
                stats.read,
                stats.no_response
            ),
            (3, 3, 1, Some(1), 1)
        );
        assert_eq!(stats.open, 2);
        assert!(!stats.is_done());
        assert_eq!(stats.delivered_pct, 33.3);
        // SMS reports no reads: none, not 0 %.
        let sms = stats
            .clone()
            .on_channel(crate::domain::campaign::Channel::Sms);
        assert_eq!((sms.read, sms.read_pct), (None, None));
        assert_eq!(
            stats
                .on_channel(crate::domain::campaign::Channel::Whatsapp)
                .read,
            Some(1)
        );
    }

    #[test]
    fn r6_2_not_sent_reasons_move_with_the_entry_and_sum_to_the_not_sent_states() {
        use crate::domain::outcome::SendFailure;
        let now = Utc::now();
        let c = Campaign::create(
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
            now,
        )
        .unwrap();
        let mk = |i: u64| {
            HopperEntry::new(
                &c,
                PhoneNumber::parse(&format!("91981234560{i}")).unwrap(),
                ContactData::default(),
                i,
            )
        };
        let mut live = Delta::new();
        let mut entries: Vec<HopperEntry> = (0..5).map(mk).collect();
        for e in &entries {
            fold(&mut live, delta(None, e));
        }
        let change = |live: &mut Delta, e: &mut HopperEntry, f: &dyn Fn(&mut HopperEntry)| {
            let before = e.clone();
            f(e);
            fold(live, delta(Some(&before), e));
        };
        change(&mut live, &mut entries[0], &|e| {
            e.record_ineligible(EntryState::BlockList, "block list", None)
        });
        change(&mut live, &mut entries[1], &|e| {
            e.claim(now).unwrap();
            e.record_failure(&SendFailure::meta(131026, "x"));
        });
        change(&mut live, &mut entries[2], &|e| {
            e.claim(now).unwrap();
            e.record_failure(&SendFailure::meta(131000, "Something went wrong"));
        });
        // Legacy entry without a reason.
        change(&mut live, &mut entries[3], &|e| {
            e.record_ineligible(EntryState::Skipped, "duplicate", None);
            e.reason = None;
        });
        assert_eq!(live, recount(&entries));
        let counters: Counters = live.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let s = Stats::from_counters(&counters);
        assert_eq!(
            s.not_sent_by_reason,
            BTreeMap::from([
                ("Message Undeliverable".to_owned(), 1),
                ("Something went wrong (131000)".to_owned(), 1),
                ("block list".to_owned(), 1),
                ("unspecified".to_owned(), 1),
            ])
        );
        assert_eq!(s.not_sent, s.not_sent_by_reason.values().sum::<i64>());
        assert_eq!((s.failed, s.retry, s.open, s.target), (1, 1, 1, 5));
        // The retried entry leaves its reason behind.
        change(&mut live, &mut entries[2], &|e| {
            assert!(e.retry(99));
        });
        let s = Stats::from_counters(&live.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        assert!(!s
            .not_sent_by_reason
            .contains_key("Something went wrong (131000)"));
        assert_eq!(s.not_sent, 3);
        // A long provider text is cut, the same way every time.
        let long = "x".repeat(500);
        assert_eq!(reason_counter(&long).len(), REASON_PREFIX.len() + 500);
        let mut e = mk(9);
        e.record_ineligible(EntryState::Failed, &long, None);
        assert_eq!(
            not_sent_reason(&e).unwrap().chars().count(),
            MAX_REASON_CHARS
        );
        assert!(std::ptr::eq(reason_counter("a"), reason_counter("a")));
    }

    #[test]
    fn r6_2_repair_is_what_makes_live_equal_the_recount() {
        let live = Counters::from([("target".into(), 5), ("sent".into(), 7), ("x".into(), 1)]);
        let recounted =
            Counters::from([("target".into(), 5), ("sent".into(), 4), ("read".into(), 2)]);
        let d = repair(&live, &recounted);
        assert_eq!(
            d,
            Counters::from([("sent".into(), -3), ("read".into(), 2), ("x".into(), -1)])
        );
        let mut fixed = live.clone();
        for (k, v) in &d {
            *fixed.entry(k.clone()).or_insert(0) += v;
        }
        assert_eq!(nonzero(&fixed), recounted);
    }
}
