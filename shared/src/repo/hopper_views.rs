//! Walking a campaign's hopper for the pending and history views (R4.1): shard by shard
//! (`HOPPER#t#c#0`, `#1`, ...), each in sort-key order (`ENTRY#phone`), keeping the
//! entries a filter accepts, until a page is full or a read budget is spent. Where the
//! walk stopped is a [`HopperPosition`], which the API hands out as an opaque cursor.

use super::{entry_pk, from_item};
use crate::domain::hopper::HopperEntry;
use crate::ports::{Index, PortResult, Query, SkCond, Table};

const ENTRY_PREFIX: &str = "ENTRY#";

/// Where a walk of a campaign's hopper stands: a shard and the last phone read in it
/// (`None`: the shard's start). Entries come in shard order, then phone order (as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopperPosition {
    pub shard: u16,
    pub after: Option<String>,
}

impl HopperPosition {
    /// The very beginning: shard 0, before its first entry.
    pub fn start() -> Self {
        HopperPosition {
            shard: 0,
            after: None,
        }
    }

    /// `shard:phone` (`shard:` at a shard's start): digits only, safe in a query string.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.shard, self.after.as_deref().unwrap_or(""))
    }

    /// The position [`Self::encode`] wrote, or `None` when `s` is not one. Whether the
    /// shard exists in a given campaign is the caller's question.
    pub fn decode(s: &str) -> Option<Self> {
        let (shard, after) = s.split_once(':')?;
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if shard.is_empty() || shard.len() > 5 || !digits(shard) {
            return None;
        }
        if after.len() > 15 || !digits(after) {
            return None;
        }
        Some(HopperPosition {
            shard: shard.parse().ok()?,
            after: (!after.is_empty()).then(|| after.to_owned()),
        })
    }
}

/// How much one walk may read before it answers with what it found and where it stopped,
/// so a very selective filter over a large hopper never runs long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    /// Most items one query asks for.
    pub page_size: u32,
    /// Entries read (kept or not) after which the walk stops.
    pub max_items: usize,
    /// Queries after which the walk stops (each shard costs at least one).
    pub max_queries: usize,
}

impl Default for ReadBudget {
    /// Pages of up to 1,000 entries, about five full pages, and enough queries to pass
    /// every shard of a small or empty hopper at once.
    fn default() -> Self {
        ReadBudget {
            page_size: 1000,
            max_items: 5000,
            max_queries: 40,
        }
    }
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq)]
pub struct Walked {
    /// The entries kept, in walk order.
    pub entries: Vec<HopperEntry>,
    /// Where to continue; `None` when every shard was read to its end.
    pub next: Option<HopperPosition>,
    /// Entries read, kept or not.
    pub read: usize,
    /// Queries made.
    pub queries: usize,
}

/// Reads the campaign's hopper from `from` on (shards `from.shard..shards`), keeping the
/// entries `keep` accepts, until `limit` are kept, the hopper ends or `budget` is spent.
/// The position returned follows the last entry kept when the page filled, else the last
/// entry read, so continuing from it neither skips nor repeats an entry.
#[allow(clippy::too_many_arguments)]
pub async fn walk_entries(
    table: &dyn Table,
    tenant: &str,
    campaign: &str,
    shards: u16,
    from: HopperPosition,
    keep: impl Fn(&HopperEntry) -> bool,
    limit: usize,
    budget: ReadBudget,
) -> PortResult<Walked> {
    let mut out = Walked {
        entries: Vec::new(),
        next: None,
        read: 0,
        queries: 0,
    };
    let limit = limit.max(1);
    let max_page = budget.page_size.max(1);
    let mut pos = from;
    // Small first pages when few entries are wanted; larger ones as a filter proves
    // selective.
    let mut page_size = ((limit as u32).saturating_mul(2)).clamp(50.min(max_page), max_page);
    while pos.shard < shards {
        if out.queries >= budget.max_queries || out.read >= budget.max_items {
            out.next = Some(pos);
            return Ok(out);
        }
        let sk = match &pos.after {
            Some(p) => SkCond::Gt(format!("{ENTRY_PREFIX}{p}")),
            None => SkCond::BeginsWith(ENTRY_PREFIX.into()),
        };
        let q =
            Query::new(Index::Primary, entry_pk(tenant, campaign, pos.shard), sk).limit(page_size);
        let page = table.query(&q).await?;
        out.queries += 1;
        let n = page.items.len();
        let mut shard_ends = page.cursor.is_none();
        for (i, item) in page.items.into_iter().enumerate() {
            let is_entry = item
                .get("SK")
                .and_then(|v| v.as_str())
                .is_some_and(|s| s.starts_with(ENTRY_PREFIX));
            if !is_entry {
                // Entries sort together: anything else after them ends the shard's entries.
                shard_ends = true;
                break;
            }
            let e: HopperEntry = from_item(item)?;
            out.read += 1;
            pos.after = Some(e.phone.as_str().to_owned());
            let kept = keep(&e);
            if kept {
                out.entries.push(e);
            }
            if kept && out.entries.len() >= limit {
                let last_of_shard = shard_ends && i + 1 == n;
                out.next = if !last_of_shard {
                    Some(pos)
                } else if pos.shard + 1 < shards {
                    Some(HopperPosition {
                        shard: pos.shard + 1,
                        after: None,
                    })
                } else {
                    None
                };
                return Ok(out);
            }
        }
        if shard_ends {
            pos = HopperPosition {
                shard: pos.shard + 1,
                after: None,
            };
        }
        page_size = page_size.saturating_mul(2).min(max_page);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::HopperPosition;

    #[test]
    fn r4_1_positions_round_trip_and_reject_anything_else() {
        for p in [
            HopperPosition::start(),
            HopperPosition {
                shard: 15,
                after: Some("919812345678".into()),
            },
        ] {
            assert_eq!(HopperPosition::decode(&p.encode()), Some(p));
        }
        for bad in [
            "",
            ":",
            "x:1",
            "3",
            "3:abc",
            "3:+91",
            "-1:",
            "99999999:",
            "3:1234567890123456",
            "3:1:2",
        ] {
            assert_eq!(HopperPosition::decode(bad), None, "{bad}");
        }
    }
}
