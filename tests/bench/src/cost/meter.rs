//! A `Table` decorator in front of each function's `DynamoTable`: it sorts every request
//! by the kind of item it touches (hopper entry by the state it writes, interaction,
//! counters, ...) and estimates the request units DynamoDB bills for it, index writes
//! included. The adapter's own counters stay the authority on how many requests were
//! made; the bench checks that the two agree.
//!
//! Units follow DynamoDB's rules for on-demand tables:
//! - a write is 1 WRU per started KB of the larger of the old and new item (a failed
//!   condition is billed too, at the stored item's size); each global secondary index the
//!   item enters, stays in or leaves costs one more write there (projection ALL: the whole
//!   item), two when its index key changes (a delete and a put);
//! - a strongly consistent GetItem is 1 RRU per started 4 KB (1 when nothing is found);
//! - a Query (eventually consistent here) is half an RRU per started 4 KB of the page.
//!
//! Item sizes are estimated from the JSON item (attribute names plus values), which is
//! what DynamoDB measures too; the old item of a write is known because every write of
//! the run goes through these decorators and the shared [`Book`] remembers its size and
//! index keys.

use async_trait::async_trait;
use serde_json::Value;
use shared::adapters::aws::DynamoTable;
use shared::ports::{Cond, Item, Page, PortError, PortResult, Query, Table};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// What the decorators learned about items and what each (function, kind) cost.
#[derive(Default)]
pub struct Book {
    items: Mutex<HashMap<(String, String), Stored>>,
    tally: Mutex<BTreeMap<(&'static str, String), Tally>>,
}

/// What the book remembers of a stored item.
#[derive(Clone, Default)]
struct Stored {
    size: u64,
    gsi1: Option<(String, String)>,
    gsi2: Option<(String, String)>,
}

/// Requests and estimated units of one (function, kind of item).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub reads: u64,
    pub writes: u64,
    /// Writes that failed their condition (billed all the same).
    pub failed: u64,
    /// Read request units (half units for eventually consistent queries).
    pub rru: f64,
    /// Write request units on the table.
    pub wru: f64,
    /// Write request units on the indexes.
    pub index_wru: f64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.reads += o.reads;
        self.writes += o.writes;
        self.failed += o.failed;
        self.rru += o.rru;
        self.wru += o.wru;
        self.index_wru += o.index_wru;
    }
}

impl Book {
    /// Everything tallied so far, by (function, kind).
    pub fn snapshot(&self) -> BTreeMap<(&'static str, String), Tally> {
        self.tally.lock().unwrap().clone()
    }

    fn note(&self, function: &'static str, kind: String, f: impl FnOnce(&mut Tally)) {
        f(self
            .tally
            .lock()
            .unwrap()
            .entry((function, kind))
            .or_default());
    }
}

/// One function's table: the adapter, with the decorator in front.
pub struct MeteredTable {
    pub inner: Arc<DynamoTable>,
    function: &'static str,
    book: Arc<Book>,
}

impl MeteredTable {
    pub fn new(inner: Arc<DynamoTable>, function: &'static str, book: Arc<Book>) -> Self {
        MeteredTable {
            inner,
            function,
            book,
        }
    }

    /// Books the write of a deleted item (its size and index entries, if it was known).
    fn note_deleted(&self, pk: &str, sk: &str) {
        let old = self
            .book
            .items
            .lock()
            .unwrap()
            .remove(&(pk.to_owned(), sk.to_owned()));
        let idx = index_units(old.as_ref(), None);
        let size = old.as_ref().map_or(0, |o| o.size);
        self.book.note(self.function, kind_of(pk, sk, None), |t| {
            t.writes += 1;
            t.wru += units(size, 1024);
            t.index_wru += idx;
        });
    }
}

/// The kind of item a key names, as the breakdown shows it.
pub fn kind_of(pk: &str, sk: &str, item: Option<&Item>) -> String {
    let first = pk.split('#').next().unwrap_or(pk);
    match first {
        "HOPPER" if sk.starts_with("ENTRY#") => {
            match item.and_then(|i| i.get("state")).and_then(Value::as_str) {
                Some(state) => format!("hopper entry -> {state}"),
                None => "hopper entry".into(),
            }
        }
        "HOPPER" if sk.starts_with("MSG#") => "conversation message".into(),
        "INTERACTION" if sk == "INTERACTION" => "interaction".into(),
        "INTERACTION" => "24-hour window".into(),
        "CAMPAIGN" if sk.starts_with("STATS") => "counters".into(),
        "CAMPAIGN" if sk == "DISPATCH" => "dispatch cursors".into(),
        "CAMPAIGN" => format!(
            "campaign partition ({})",
            sk.split('#').next().unwrap_or(sk)
        ),
        "TENANT" => match sk.split('#').next().unwrap_or(sk) {
            "CAMPAIGN" => "campaign".into(),
            other => format!("tenant partition ({})", other.to_lowercase()),
        },
        "PACE" => "account pace".into(),
        other => other.to_lowercase(),
    }
}

/// DynamoDB's size of an item: attribute names plus values (strings and binary by
/// length, numbers about one byte per two digits, containers 3 bytes plus one per
/// element).
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_size(v))
        .sum()
}

fn value_size(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::String(s) => s.len() as u64,
        Value::Number(n) => {
            let digits = n.to_string().chars().filter(char::is_ascii_digit).count() as u64;
            digits.div_ceil(2) + 1
        }
        Value::Array(a) => 3 + a.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        Value::Object(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() as u64 + value_size(x))
                .sum::<u64>()
        }
    }
}

fn units(size: u64, per: u64) -> f64 {
    size.div_ceil(per).max(1) as f64
}

fn index_key(item: &Item, pk: &str, sk: &str) -> Option<(String, String)> {
    let s = |a: &str| item.get(a).and_then(Value::as_str).map(str::to_owned);
    Some((s(pk)?, s(sk)?))
}

fn stored_of(item: &Item) -> Stored {
    Stored {
        size: item_size(item),
        gsi1: index_key(item, "GSI1PK", "GSI1SK"),
        gsi2: index_key(item, "GSI2PK", "GSI2SK"),
    }
}

/// Index write units when an item goes from `old` to `new` (None: absent).
fn index_units(old: Option<&Stored>, new: Option<&Stored>) -> f64 {
    let one = |o: Option<&(String, String)>, n: Option<&(String, String)>, size: u64| match (o, n) {
        (None, None) => 0.0,
        (Some(_), None) => 1.0,
        (None, Some(_)) => units(size, 1024),
        (Some(a), Some(b)) if a == b => units(size, 1024),
        (Some(_), Some(_)) => 1.0 + units(size, 1024),
    };
    let size = old.map_or(0, |s| s.size).max(new.map_or(0, |s| s.size));
    one(
        old.and_then(|s| s.gsi1.as_ref()),
        new.and_then(|s| s.gsi1.as_ref()),
        size,
    ) + one(
        old.and_then(|s| s.gsi2.as_ref()),
        new.and_then(|s| s.gsi2.as_ref()),
        size,
    )
}

fn key_of(item: &Item) -> Option<(String, String)> {
    index_key(item, "PK", "SK")
}

#[async_trait]
impl Table for MeteredTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        let got = self.inner.get(pk, sk).await?;
        let size = got.as_ref().map_or(0, item_size);
        self.book.note(self.function, kind_of(pk, sk, None), |t| {
            t.reads += 1;
            t.rru += units(size, 4096);
        });
        Ok(got)
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        let key = key_of(&item);
        let new = stored_of(&item);
        let kind = key
            .as_ref()
            .map_or_else(|| "?".into(), |(pk, sk)| kind_of(pk, sk, Some(&item)));
        let res = self.inner.put(item, cond).await;
        let Some(key) = key else { return res };
        let mut items = self.book.items.lock().unwrap();
        let old = items.get(&key).cloned();
        let size = old.as_ref().map_or(0, |o| o.size).max(new.size);
        match &res {
            Ok(()) => {
                let idx = index_units(old.as_ref(), Some(&new));
                items.insert(key, new);
                drop(items);
                self.book.note(self.function, kind, |t| {
                    t.writes += 1;
                    t.wru += units(size, 1024);
                    t.index_wru += idx;
                });
            }
            Err(PortError::ConditionFailed) => {
                drop(items);
                let size = old.as_ref().map_or(0, |o| o.size);
                self.book.note(self.function, kind, |t| {
                    t.writes += 1;
                    t.failed += 1;
                    t.wru += units(size, 1024);
                });
            }
            Err(_) => {}
        }
        res
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.inner.delete(pk, sk).await?;
        self.note_deleted(pk, sk);
        Ok(())
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        self.inner.delete_many(keys).await?;
        for (pk, sk) in keys {
            self.note_deleted(pk, sk);
        }
        Ok(())
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        let page = self.inner.query(q).await?;
        let size: u64 = page.items.iter().map(item_size).sum();
        let kind = match page.items.first().and_then(key_of) {
            Some((pk, sk)) => format!("{} (query)", kind_of(&pk, &sk, None)),
            None => format!("{} (query, empty)", q.pk.split('#').next().unwrap_or("")),
        };
        self.book.note(self.function, kind, |t| {
            t.reads += 1;
            t.rru += units(size, 4096) / 2.0;
        });
        Ok(page)
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        let out = self.inner.add(pk, sk, deltas).await?;
        let key = (pk.to_owned(), sk.to_owned());
        let new = stored_of(&out);
        let mut items = self.book.items.lock().unwrap();
        let old = items.insert(key, new.clone());
        drop(items);
        let size = old.as_ref().map_or(0, |o| o.size).max(new.size);
        self.book.note(self.function, kind_of(pk, sk, None), |t| {
            if deltas.is_empty() {
                // A put of the bare item and a get (see `DynamoTable::add`).
                t.reads += 1;
                t.rru += 1.0;
            }
            t.writes += 1;
            t.wru += units(size, 1024);
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sizes_count_names_and_values() {
        assert_eq!(
            item_size(&item(json!({"PK": "ab", "n": 12345}))),
            2 + 2 + 1 + 4
        );
        assert_eq!(
            item_size(&item(json!({"l": ["a", true]}))),
            1 + 3 + (1 + 1) + (1 + 1)
        );
    }

    #[test]
    fn index_writes_follow_the_key() {
        let s = |g1: Option<&str>| Stored {
            size: 100,
            gsi1: g1.map(|k| ("P".to_owned(), k.to_owned())),
            gsi2: None,
        };
        assert_eq!(index_units(None, Some(&s(None))), 0.0);
        assert_eq!(index_units(None, Some(&s(Some("a")))), 1.0);
        assert_eq!(index_units(Some(&s(Some("a"))), Some(&s(Some("a")))), 1.0);
        assert_eq!(index_units(Some(&s(Some("a"))), Some(&s(Some("b")))), 2.0);
        assert_eq!(index_units(Some(&s(Some("a"))), Some(&s(None))), 1.0);
    }

    #[test]
    fn kinds_name_the_item() {
        let entry = item(json!({"state": "PENDING"}));
        assert_eq!(
            kind_of("HOPPER#t#c#1", "ENTRY#91", Some(&entry)),
            "hopper entry -> PENDING"
        );
        assert_eq!(kind_of("CAMPAIGN#t#c", "STATS#3", None), "counters");
        assert_eq!(
            kind_of("INTERACTION#s#p", "INTERACTION", None),
            "interaction"
        );
        assert_eq!(kind_of("TENANT#t", "CAMPAIGN#c", None), "campaign");
    }
}
