//! Pacing (R4.8): when each send of a tick is due, how an account's throughput is shared
//! by its campaigns, how the engine backs off after throttling errors (AIMD), the
//! messaging tier's rolling 24-hour budget, and calling hours judged in the recipient's
//! time zone.

use super::campaign::{parse_hhmm, CallingHours};
use super::phone::PhoneNumber;
use super::tenant::parse_timezone;
use super::Time;
use chrono::{Duration, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

const NANOS_PER_SEC: f64 = 1_000_000_000.0;

/// The send times of one tick: one every `interval`, from the first due time inside
/// `[from, to)`. Times are absolute, so a tick that fires late, early or twice neither
/// skips nor repeats a slot, and a rate that changes between ticks (a new share of the
/// account, a slow-down) takes effect at the next slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slots {
    first: Time,
    interval_ns: f64,
    /// Sends this window may make.
    pub count: usize,
}

impl Slots {
    /// Slots at `rate` messages per second in `[from, to)`; `next_due` is when the send
    /// after the last one made is due (none: at once).
    pub fn plan(rate: f64, next_due: Option<Time>, from: Time, to: Time) -> Slots {
        let interval_ns = if rate > 0.0 {
            NANOS_PER_SEC / rate
        } else {
            f64::INFINITY
        };
        let first = next_due.map_or(from, |d| d.max(from));
        let span = (to - first).num_nanoseconds().unwrap_or(i64::MAX) as f64;
        let count = if span <= 0.0 || !interval_ns.is_finite() {
            0
        } else {
            (span / interval_ns).ceil() as usize
        };
        Slots {
            first,
            interval_ns,
            count,
        }
    }

    /// When the `i`-th send is due.
    pub fn at(&self, i: usize) -> Time {
        self.first + Duration::nanoseconds((i as f64 * self.interval_ns).round() as i64)
    }

    /// Whole seconds from `now` until the `i`-th send (an SQS delay: at most 899 s).
    pub fn delay_secs(&self, i: usize, now: Time) -> u32 {
        ((self.at(i) - now).num_milliseconds().max(0) / 1000).min(899) as u32
    }

    /// When the send after `used` slots is due: one interval after the last slot used,
    /// so an interval holds across ticks even when the hopper ran short.
    pub fn next_due(&self, used: usize) -> Time {
        self.at(used)
    }
}

/// Max-min fair shares of an account's `capacity` (messages per second) among campaigns
/// asking for `demands`: nobody gets more than it asks, and what a slow campaign leaves
/// is split evenly among the faster ones.
pub fn fair_shares(capacity: f64, demands: &[f64]) -> Vec<f64> {
    let mut shares = vec![0.0; demands.len()];
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|a, b| demands[*a].total_cmp(&demands[*b]));
    let mut left = capacity.max(0.0);
    for (k, i) in order.iter().enumerate() {
        let even = left / (order.len() - k) as f64;
        let s = demands[*i].max(0.0).min(even);
        shares[*i] = s;
        left -= s;
    }
    shares
}

/// The throughput the engine allows itself on one provider account, adjusted every tick:
/// halved after a throttling error (Meta 130429), then raised by a tenth of the account's
/// limit per tick without one (additive increase, multiplicative decrease).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountPace {
    /// Messages per second; none before the first tick (the account's full limit).
    pub rate: Option<f64>,
    /// When the last tick adjusted it.
    pub adjusted_at: Option<Time>,
    /// The end of the time already planned for the account's sends: a tick plans from
    /// here, so a campaign that joins (or a tick that comes early) never adds sends to
    /// seconds the account's capacity was already given out for.
    #[serde(default)]
    pub planned_until: Option<Time>,
    #[serde(default)]
    pub version: u64,
}

/// The slowest an account backs off to, as a share of its limit.
const MIN_SHARE_OF_LIMIT: f64 = 0.05;
/// What one tick without throttling adds back, as a share of the limit.
const INCREASE_SHARE_OF_LIMIT: f64 = 0.1;

impl AccountPace {
    /// The rate for the tick at `now`, given the account's `limit` and the last time a
    /// send was throttled.
    pub fn adjust(&mut self, limit: f64, throttled_at: Option<Time>, now: Time) -> f64 {
        let current = self.rate.unwrap_or(limit).min(limit);
        let throttled_since = match (throttled_at, self.adjusted_at) {
            (Some(t), Some(a)) => t > a,
            (Some(_), None) => true,
            _ => false,
        };
        let next = if throttled_since {
            (current / 2.0).max(limit * MIN_SHARE_OF_LIMIT)
        } else {
            (current + limit * INCREASE_SHARE_OF_LIMIT).min(limit)
        };
        self.rate = Some(next);
        self.adjusted_at = Some(now);
        next
    }
}

/// Unique contacts an account may still start conversations with in the rolling 24 hours
/// before `now` (R4.8 messaging tier), from counts kept per hour (`hour_start -> count`).
/// The hour that began 24 hours ago counts whole, so the budget is never overrun.
pub fn tier_remaining(limit: u32, hours: &[(Time, u64)], now: Time) -> u64 {
    let since = hour_start(now) - Duration::hours(24);
    let used: u64 = hours
        .iter()
        .filter(|(h, _)| *h >= since)
        .map(|(_, n)| n)
        .sum();
    u64::from(limit).saturating_sub(used)
}

/// Splits what is left of the messaging tier among campaigns in proportion to their
/// `shares` of the account's rate; the last takes the rounding remainder, so the parts
/// add up to `left` exactly.
pub fn split_tier(left: u64, shares: &[f64]) -> Vec<u64> {
    let total: f64 = shares.iter().sum();
    let mut parts: Vec<u64> = shares
        .iter()
        .map(|s| {
            if total > 0.0 {
                ((left as f64) * s / total).floor() as u64
            } else {
                0
            }
        })
        .collect();
    if let Some(last) = parts.len().checked_sub(1) {
        parts[last] = 0;
        parts[last] = left.saturating_sub(parts.iter().sum());
    }
    parts
}

/// The start of the hour holding `t`.
pub fn hour_start(t: Time) -> Time {
    let s = t.timestamp();
    chrono::DateTime::from_timestamp(s - s.rem_euclid(3600), 0).expect("in range")
}

/// The time zone of a country, when it has exactly one (IANA `zone.tab`, kept in
/// `shared/data/zone.tab`). Countries spanning several zones (US, BR, RU, AU, ...) have
/// none: their numbers are judged in the campaign's zone.
pub fn country_zone(region: &str) -> Option<Tz> {
    static ZONES: OnceLock<HashMap<String, Option<Tz>>> = OnceLock::new();
    let zones = ZONES.get_or_init(|| {
        let mut m: HashMap<String, Option<Tz>> = HashMap::new();
        for line in include_str!("../../data/zone.tab").lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(cc), Some(_), Some(tz)) = (cols.next(), cols.next(), cols.next()) else {
                continue;
            };
            let tz = tz.parse::<Tz>().ok();
            m.entry(cc.to_owned())
                .and_modify(|z| *z = None)
                .or_insert(tz);
        }
        m
    });
    zones.get(region).copied().flatten()
}

/// Calling hours parsed once: the rules run on this, not on the text the operator entered
/// (`CallingHours`, validated when stored). Settings that do not parse (only an item
/// edited by hand could hold them) allow nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, end and zone; none when the settings do not parse.
    parts: Option<(NaiveTime, NaiveTime, Tz)>,
    recipient_timezone: bool,
}

impl CallingHours {
    /// The window these settings describe.
    pub fn window(&self) -> Window {
        let parts = (|| {
            Some((
                parse_hhmm("start", &self.start).ok()?,
                parse_hhmm("end", &self.end).ok()?,
                parse_timezone("timezone", &self.timezone).ok()?,
            ))
        })();
        Window {
            parts,
            recipient_timezone: self.recipient_timezone,
        }
    }

    /// Whether a send at `at` falls inside the window in its own `timezone`.
    #[cfg(test)]
    pub fn allows(&self, at: Time) -> bool {
        self.window().allows(at)
    }

    /// Whether a send to `phone` at `at` falls inside the window.
    #[cfg(test)]
    pub fn allows_for(&self, phone: &PhoneNumber, at: Time) -> bool {
        self.window().allows_for(phone, at)
    }

    /// The first instant at or after `after` when a send to `phone` is allowed.
    #[cfg(test)]
    pub fn next_open_for(&self, phone: &PhoneNumber, after: Time) -> Time {
        self.window().next_open_for(phone, after)
    }
}

impl Window {
    /// Whether sends are judged in each recipient's zone.
    pub fn per_recipient(&self) -> bool {
        self.recipient_timezone
    }

    /// The zone a send to `phone` is judged in: the recipient's, from the number's
    /// country, when `recipient_timezone` is on and the country has one zone; otherwise
    /// the window's own `timezone`.
    fn zone_for(&self, phone: &PhoneNumber) -> Option<Tz> {
        let (_, _, campaign_zone) = self.parts?;
        if self.recipient_timezone {
            if let Some(z) = phone.region().as_deref().and_then(country_zone) {
                return Some(z);
            }
        }
        Some(campaign_zone)
    }

    /// Whether a send at `at` falls inside the window in its own `timezone`. Invalid
    /// settings allow nothing.
    pub fn allows(&self, at: Time) -> bool {
        match self.parts {
            Some((start, end, tz)) => inside(start, end, at.with_timezone(&tz).time()),
            None => false,
        }
    }

    /// Whether a send to `phone` at `at` falls inside the window.
    pub fn allows_for(&self, phone: &PhoneNumber, at: Time) -> bool {
        match (self.parts, self.zone_for(phone)) {
            (Some((start, end, _)), Some(tz)) => inside(start, end, at.with_timezone(&tz).time()),
            _ => false,
        }
    }

    /// The first instant at or after `after` when a send to `phone` is allowed.
    pub fn next_open_for(&self, phone: &PhoneNumber, after: Time) -> Time {
        let (Some((start, end, _)), Some(tz)) = (self.parts, self.zone_for(phone)) else {
            return after + Duration::days(1);
        };
        if inside(start, end, after.with_timezone(&tz).time()) {
            return after;
        }
        let local_day = after.with_timezone(&tz).date_naive();
        (0..=2)
            .filter_map(|d| {
                let day = local_day + Duration::days(d);
                let naive = day.and_time(start);
                // A start inside a DST gap opens at the first valid instant after it.
                tz.from_local_datetime(&naive)
                    .earliest()
                    .or_else(|| {
                        tz.from_local_datetime(&(naive + Duration::hours(1)))
                            .earliest()
                    })
                    .map(|t| t.with_timezone(&chrono::Utc))
            })
            .find(|t| *t >= after)
            .unwrap_or(after + Duration::days(1))
    }
}

fn inside(start: NaiveTime, end: NaiveTime, local: NaiveTime) -> bool {
    if start < end {
        start <= local && local < end
    } else {
        local >= start || local < end
    }
}

/// How far behind its planned slots a send batch may run before it says the sender's
/// capacity is short of the planned pace (README "Capacity model").
pub fn slot_lag_is_late(lag: Duration) -> bool {
    lag > Duration::seconds(2)
}

/// How late the record furthest behind its slot is at `now` (negative: every one is
/// early); `None` when no record names its slot.
pub fn worst_slot_lag(dues: impl IntoIterator<Item = Time>, now: Time) -> Option<Duration> {
    dues.into_iter().map(|due| now - due).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_late_when_its_furthest_record_is_more_than_two_seconds_behind() {
        let now = chrono::Utc::now();
        let dues = [
            now - Duration::milliseconds(500),
            now - Duration::seconds(3),
        ];
        let lag = worst_slot_lag(dues, now).unwrap();
        assert_eq!(lag, Duration::seconds(3));
        assert!(slot_lag_is_late(lag));
        assert!(!slot_lag_is_late(Duration::seconds(2)));
        assert_eq!(worst_slot_lag([], now), None);
    }
    use chrono::Utc;

    fn t(h: u32, m: u32, s: u32) -> Time {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, s).unwrap()
    }

    #[test]
    fn r4_8_slots_spread_a_minute_evenly_per_second() {
        let now = t(10, 0, 0);
        let s = Slots::plan(80.0, None, now, now + Duration::seconds(60));
        assert_eq!(s.count, 4800);
        let mut per_second = [0usize; 60];
        for i in 0..s.count {
            per_second[s.delay_secs(i, now) as usize] += 1;
        }
        assert!(per_second.iter().all(|n| *n == 80), "{per_second:?}");
        assert_eq!(s.next_due(s.count), now + Duration::seconds(60));
    }

    #[test]
    fn r4_8_a_late_or_repeated_tick_neither_skips_nor_repeats_slots() {
        let now = t(10, 0, 0);
        let tick = Duration::seconds(60);
        let a = Slots::plan(20.0, None, now, now + tick);
        let due = a.next_due(a.count);
        // The same tick again: nothing new.
        let again = Slots::plan(20.0, Some(due), now, now + tick);
        assert_eq!(again.count, 0);
        // The next tick 1.5 s late: 60 s of slots from where the last stopped, plus the
        // 1.5 s it was late.
        let late = now + Duration::milliseconds(61_500);
        let b = Slots::plan(20.0, Some(due), late, late + tick);
        assert_eq!(b.at(0), late);
        assert_eq!(b.count, 1200);
        // A short hopper: the next send is due one interval after the last one made.
        assert_eq!(a.next_due(3), now + Duration::milliseconds(150));
    }

    #[test]
    fn r4_8_account_capacity_is_shared_fairly() {
        let s = fair_shares(80.0, &[80.0, 80.0]);
        assert_eq!(s, vec![40.0, 40.0]);
        let s = fair_shares(80.0, &[10.0, 80.0, 80.0]);
        assert_eq!(s, vec![10.0, 35.0, 35.0]);
        let s = fair_shares(80.0, &[20.0, 30.0]);
        assert_eq!(s, vec![20.0, 30.0], "below capacity everyone gets its rate");
        assert!(fair_shares(80.0, &[50.0, 60.0, 70.0]).iter().sum::<f64>() <= 80.0);
    }

    #[test]
    fn r4_8_aimd_halves_after_throttling_and_recovers_additively() {
        let mut p = AccountPace::default();
        let now = t(10, 0, 0);
        assert_eq!(p.adjust(80.0, None, now), 80.0);
        let throttled = now + Duration::seconds(10);
        let r = p.adjust(80.0, Some(throttled), now + Duration::seconds(60));
        assert_eq!(r, 40.0);
        // The same throttle is not counted twice.
        assert_eq!(
            p.adjust(80.0, Some(throttled), now + Duration::seconds(120)),
            48.0
        );
        let mut rate = 48.0;
        for k in 3..20 {
            rate = p.adjust(80.0, Some(throttled), now + Duration::seconds(60 * k));
        }
        assert_eq!(rate, 80.0, "back to the limit, never above");
        // Repeated throttling bottoms out at 5 % of the limit.
        for k in 20..40 {
            let at = now + Duration::seconds(60 * k);
            rate = p.adjust(80.0, Some(at - Duration::seconds(1)), at);
        }
        assert_eq!(rate, 4.0);
    }

    #[test]
    fn r4_8_messaging_tier_counts_the_rolling_24_hours() {
        let now = t(10, 30, 0);
        let hours = vec![
            (hour_start(now), 300),
            (hour_start(now) - Duration::hours(5), 500),
            (hour_start(now) - Duration::hours(24), 100),
            (hour_start(now) - Duration::hours(25), 900),
        ];
        assert_eq!(tier_remaining(1000, &hours, now), 100);
        assert_eq!(tier_remaining(500, &hours, now), 0);
    }

    #[test]
    fn r4_8_tier_split_follows_the_shares_and_adds_up() {
        assert_eq!(split_tier(100, &[40.0, 40.0]), vec![50, 50]);
        assert_eq!(split_tier(10, &[10.0, 35.0, 35.0]), vec![1, 4, 5]);
        assert_eq!(split_tier(7, &[0.0, 0.0]), vec![0, 7]);
        assert_eq!(split_tier(0, &[1.0]), vec![0]);
        assert!(split_tier(5, &[]).is_empty());
    }

    fn hours(recipient: bool) -> CallingHours {
        CallingHours {
            start: "09:00".into(),
            end: "20:00".into(),
            timezone: "UTC".into(),
            recipient_timezone: recipient,
        }
    }

    #[test]
    fn r4_8_calling_hours_judged_in_the_recipients_zone() {
        let india = PhoneNumber::parse("919812345678").unwrap();
        let france = PhoneNumber::parse("33612345678").unwrap();
        let us = PhoneNumber::parse("14155550100").unwrap();
        assert_eq!(country_zone("IN"), Some(chrono_tz::Asia::Kolkata));
        assert_eq!(country_zone("US"), None, "several zones");
        let h = hours(true);
        // 04:00 UTC is 09:30 in India, 005:00 in France.
        let at = t(4, 0, 0);
        assert!(h.allows_for(&india, at));
        assert!(!h.allows_for(&france, at));
        // A country with several zones falls back to the campaign's zone (UTC here).
        assert!(!h.allows_for(&us, at));
        assert!(h.allows_for(&us, t(9, 0, 0)));
        // Judged in the campaign's zone when recipient zones are off.
        assert!(!hours(false).allows_for(&india, at));
    }

    #[test]
    fn r4_8_next_opening_of_the_calling_window() {
        let france = PhoneNumber::parse("33612345678").unwrap();
        let h = hours(true);
        // Paris is UTC+1 in November: the window opens at 08:00 UTC.
        assert_eq!(h.next_open_for(&france, t(4, 0, 0)), t(8, 0, 0));
        assert_eq!(h.next_open_for(&france, t(8, 30, 0)), t(8, 30, 0));
        // After 20:00 local it opens the next morning.
        assert_eq!(
            h.next_open_for(&france, t(19, 30, 0)),
            t(8, 0, 0) + Duration::days(1)
        );
        let overnight = CallingHours {
            start: "22:00".into(),
            end: "06:00".into(),
            timezone: "UTC".into(),
            recipient_timezone: false,
        };
        assert!(overnight.allows_for(&france, t(23, 0, 0)));
        assert_eq!(overnight.next_open_for(&france, t(12, 0, 0)), t(22, 0, 0));
    }
}
