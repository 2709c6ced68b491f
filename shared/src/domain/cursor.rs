//! Where the dispatcher stands in a campaign's hopper: one cursor per shard over the READY
//! index (in sequence order), when the next send is due, and marks of where the cursors
//! stood at earlier dispatches, so that nothing left behind below a cursor is stranded.
//!
//! Writers reserve blocks of sequence numbers and write them concurrently (attach while
//! RUNNING, the retry walk, the sweeper's release), and DynamoDB's indexes are eventually
//! consistent: a dispatch may see sequence N+1 before N and move the cursor past N. An
//! entry the dispatcher enqueued leaves the READY index when the sender claims it, within
//! a tick or two; one still READY below the cursors of a mark older than the rescan delay
//! was indexed late, held back by a write that lost a race, or lost on its way to the
//! sender, and is dispatched again. A second enqueue of an entry still in flight sends
//! nothing twice: the sender's claim is conditional.

use super::Time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Marks kept at most (ticks are a minute apart, so a handful cover the rescan delay).
const MAX_MARKS: usize = 32;

/// Where the dispatcher stopped in each hopper shard, and when the next send is due.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursors {
    /// Shard -> last dispatched sequence key (zero-padded, so keys sort as numbers).
    pub after: BTreeMap<u16, String>,
    /// When the campaign's next send is due (R4.8): one interval after the last send
    /// dispatched, so the rate holds across ticks whatever their timing, and fractions
    /// carry (30 contacts/hour over 60 s ticks sends one every other tick).
    #[serde(default)]
    pub next_due: Option<Time>,
    /// The cursors after earlier dispatches, oldest first.
    #[serde(default)]
    pub marks: Vec<CursorMark>,
    #[serde(default)]
    pub version: u64,
}

/// The cursors as they stood after one dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorMark {
    pub at: Time,
    pub after: BTreeMap<u16, String>,
}

impl Cursors {
    /// The dispatcher handed the entry at `key` of `shard` to the sender: the cursor moves
    /// up to it, never back (an entry found below the cursor leaves it where it is).
    pub fn advance(&mut self, shard: u16, key: &str) {
        let at = self.after.entry(shard).or_default();
        if key > at.as_str() {
            *at = key.to_owned();
        }
    }

    /// Per shard, the key up to which READY entries are overdue: the cursor of the newest
    /// mark at least `delay` old. Everything up to it was enqueued that long ago.
    pub fn overdue_up_to(&self, now: Time, delay: chrono::Duration) -> BTreeMap<u16, String> {
        self.marks
            .iter()
            .rev()
            .find(|m| m.at + delay <= now)
            .map(|m| m.after.clone())
            .unwrap_or_default()
    }

    /// Remembers the cursors as of `now`, keeping the newest mark at least `delay` old and
    /// those after it (and at most [`MAX_MARKS`]).
    pub fn mark(&mut self, now: Time, delay: chrono::Duration) {
        if self.marks.last().is_none_or(|m| m.after != self.after) {
            self.marks.push(CursorMark {
                at: now,
                after: self.after.clone(),
            });
        }
        let old = self.marks.iter().filter(|m| m.at + delay <= now).count();
        let drop = old
            .saturating_sub(1)
            .max(self.marks.len().saturating_sub(MAX_MARKS));
        self.marks.drain(..drop);
    }

    /// Dispatch starts over from the start of every shard (a resume): the marks go too.
    pub fn restart(&mut self) {
        self.after.clear();
        self.marks.clear();
        self.next_due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn key(n: u64) -> String {
        format!("{n:020}")
    }

    #[test]
    fn the_cursor_never_moves_back() {
        let mut c = Cursors::default();
        c.advance(0, &key(5));
        c.advance(0, &key(3));
        c.advance(1, &key(2));
        assert_eq!(c.after[&0], key(5));
        assert_eq!(c.after[&1], key(2));
    }

    #[test]
    fn entries_are_overdue_below_the_cursor_of_a_mark_older_than_the_delay() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let delay = Duration::minutes(5);
        let mut c = Cursors::default();
        for minute in 0..10 {
            c.advance(0, &key(minute * 10));
            c.mark(t0 + Duration::minutes(minute as i64), delay);
        }
        let now = t0 + Duration::minutes(9);
        // The newest mark at least 5 minutes old is minute 4's.
        assert_eq!(c.overdue_up_to(now, delay)[&0], key(40));
        // Marks older than that one are gone; the newer ones stay.
        assert_eq!(c.marks.first().unwrap().at, t0 + Duration::minutes(4));
        assert_eq!(c.marks.len(), 6);
        // Nothing is overdue before any mark is old enough.
        assert!(c.overdue_up_to(t0 + Duration::minutes(3), delay).is_empty());
        // A dispatch that moved nothing adds no mark.
        c.mark(now, delay);
        assert_eq!(c.marks.len(), 6);
        c.restart();
        assert!(c.after.is_empty() && c.marks.is_empty() && c.next_due.is_none());
    }
}
