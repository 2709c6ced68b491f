//! Campaign statistics (R6.2). Counters move only by the difference between an entry
//! before and after a stored change, so the totals always equal a recount of entries.

use super::hopper::{EntryState, HopperEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which counters one entry contributes to: the funnel steps it reached, and one counter
/// per hopper state (named after the state) so hopper counts come from the same source.
fn membership(e: &HopperEntry) -> [(&'static str, bool); 7] {
    [
        ("target", true),
        ("sent", e.sent_at.is_some()),
        ("delivered", e.delivered_at.is_some()),
        ("read", e.read_at.is_some()),
        ("replied", e.replied_at.is_some()),
        (
            "no_response",
            e.disposition.as_deref() == Some("no_response"),
        ),
        (e.state.as_str(), true),
    ]
}

/// Counter changes, by counter name; zero changes are left out.
pub type Delta = BTreeMap<&'static str, i64>;

/// What changing `before` into `after` does to the counters (`None`: the entry is new).
pub fn delta(before: Option<&HopperEntry>, after: &HopperEntry) -> Delta {
    let mut d = Delta::new();
    for (name, member) in membership(after) {
        *d.entry(name).or_insert(0) += i64::from(member);
    }
    if let Some(b) = before {
        for (name, member) in membership(b) {
            *d.entry(name).or_insert(0) -= i64::from(member);
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

/// Live statistics of a campaign (R6.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"target": 10, "sent": 10, "delivered": 9, "read": 7, "replied": 3, "failed": 1, "no_response": 4, "retry": 0, "open": 2, "delivered_pct": 90.0, "read_pct": 77.8, "replied_pct": 33.3}))]
pub struct Stats {
    pub target: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub failed: i64,
    pub no_response: i64,
    pub retry: i64,
    /// Still to send or waiting for a reply.
    pub open: i64,
    /// Delivered of sent, in percent.
    pub delivered_pct: f64,
    /// Read of delivered, in percent.
    pub read_pct: f64,
    /// Replied of delivered, in percent.
    pub replied_pct: f64,
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
        Stats {
            target: g("target"),
            sent: g("sent"),
            delivered: g("delivered"),
            read: g("read"),
            replied: g("replied"),
            failed: g("FAILED"),
            no_response: g("no_response"),
            retry: g("RETRY"),
            open: g("FRESH") + g("SENDING") + g("PENDING"),
            delivered_pct: pct(g("delivered"), g("sent")),
            read_pct: pct(g("read"), g("delivered")),
            replied_pct: pct(g("replied"), g("delivered")),
        }
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
            (3, 3, 1, 1, 1)
        );
        assert_eq!(stats.open, 2);
        assert!(!stats.is_done());
        assert_eq!(stats.delivered_pct, 33.3);
    }
}
