//! One contract for the `Table` port, run against the in-memory twin and against DynamoDB
//! on the local emulator, so the two cannot drift. The DynamoDB half needs the emulator:
//! run `scripts/test.sh` (or `eval "$(scripts/emulator.sh start)"` first).

use testkit::harness as common;

use serde_json::{json, Value};
use shared::adapters::aws::{setup, DynamoTable};
use shared::ports::*;
use testkit::memory::MemoryTable;

fn item(v: Value) -> Item {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn sks(page: &Page) -> Vec<String> {
    page.items
        .iter()
        .map(|i| i["SK"].as_str().unwrap().to_owned())
        .collect()
}

// ---- the suite -------------------------------------------------------------------------

async fn round_trip(t: &dyn Table) {
    let it = item(json!({
        "PK": "TENANT#t1",
        "SK": "CAMPAIGN#c1",
        "name": "Spring sale",
        "empty": "",
        "count": 42,
        "negative": -7,
        "big": 1_152_921_504_606_846_976_u64,
        "beyond_i64": 18_000_000_000_000_000_000_u64,
        "ratio": 0.25,
        "active": true,
        "tags": ["a", "b", "a"],
        "mixed": [1, "two", false, {"three": 3}],
        "nested": {"window": {"from": "09:00", "to": "18:00", "days": [1, 2, 3]}, "n": 0},
        "empty_obj": {},
        "empty_list": []
    }));
    t.put(it.clone(), Cond::None).await.unwrap();
    let back = t
        .get("TENANT#t1", "CAMPAIGN#c1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(back, it);
    assert!(
        back["count"].is_i64(),
        "integers come back as integers: {}",
        back["count"]
    );
    assert!(back["nested"]["window"]["days"][0].is_i64());
    assert_eq!(t.get("TENANT#t1", "CAMPAIGN#other").await.unwrap(), None);
    assert_eq!(t.get("TENANT#other", "CAMPAIGN#c1").await.unwrap(), None);

    // A put replaces the whole item: attributes left out are gone.
    let smaller = item(json!({"PK": "TENANT#t1", "SK": "CAMPAIGN#c1", "name": "Renamed"}));
    t.put(smaller.clone(), Cond::None).await.unwrap();
    assert_eq!(
        t.get("TENANT#t1", "CAMPAIGN#c1").await.unwrap(),
        Some(smaller)
    );
}

async fn conditional_put(t: &dyn Table) {
    let first = item(json!({"PK": "C#1", "SK": "META", "v": "first"}));
    let second = item(json!({"PK": "C#1", "SK": "META", "v": "second"}));
    t.put(first.clone(), Cond::NotExists).await.unwrap();
    assert_eq!(
        t.put(second, Cond::NotExists).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(t.get("C#1", "META").await.unwrap(), Some(first));
    // Same PK, other SK: a different item, so the condition holds.
    t.put(item(json!({"PK": "C#1", "SK": "OTHER"})), Cond::NotExists)
        .await
        .unwrap();
}

async fn version_condition(t: &dyn Table) {
    let v = |n: i64, s: &str| item(json!({"PK": "C#2", "SK": "META", "version": n, "state": s}));
    // Eq on a missing item fails.
    assert_eq!(
        t.put(v(1, "draft"), Cond::Eq("version".into(), json!(0)))
            .await,
        Err(PortError::ConditionFailed)
    );
    t.put(v(1, "draft"), Cond::NotExists).await.unwrap();
    // Stale version.
    assert_eq!(
        t.put(v(2, "running"), Cond::Eq("version".into(), json!(7)))
            .await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(t.get("C#2", "META").await.unwrap(), Some(v(1, "draft")));
    // Right version.
    t.put(v(2, "running"), Cond::Eq("version".into(), json!(1)))
        .await
        .unwrap();
    assert_eq!(t.get("C#2", "META").await.unwrap(), Some(v(2, "running")));
    // The old version is now stale.
    assert_eq!(
        t.put(v(3, "paused"), Cond::Eq("version".into(), json!(1)))
            .await,
        Err(PortError::ConditionFailed)
    );
    // String-valued conditions work too.
    t.put(v(3, "paused"), Cond::Eq("state".into(), json!("running")))
        .await
        .unwrap();
    assert_eq!(
        t.put(v(4, "x"), Cond::Eq("state".into(), json!("running")))
            .await,
        Err(PortError::ConditionFailed)
    );
    // Eq on an attribute the item lacks fails.
    assert_eq!(
        t.put(v(4, "x"), Cond::Eq("absent".into(), json!(1))).await,
        Err(PortError::ConditionFailed)
    );
}

async fn query_primary_begins_with(t: &dyn Table) {
    for sk in ["B#1", "A#2", "A#10", "A#1", "AB#1"] {
        t.put(item(json!({"PK": "P#1", "SK": sk, "x": 1})), Cond::None)
            .await
            .unwrap();
    }
    t.put(item(json!({"PK": "P#2", "SK": "A#1"})), Cond::None)
        .await
        .unwrap();

    let page = t
        .query(&Query::new(
            Index::Primary,
            "P#1",
            SkCond::BeginsWith("A#".into()),
        ))
        .await
        .unwrap();
    assert_eq!(sks(&page), ["A#1", "A#10", "A#2"], "byte order");
    assert_eq!(page.cursor, None);
    assert_eq!(
        page.items[0],
        item(json!({"PK": "P#1", "SK": "A#1", "x": 1}))
    );

    let all = t
        .query(&Query::new(Index::Primary, "P#1", SkCond::Any))
        .await
        .unwrap();
    assert_eq!(sks(&all), ["A#1", "A#10", "A#2", "AB#1", "B#1"]);

    let lte = t
        .query(&Query::new(
            Index::Primary,
            "P#1",
            SkCond::Lte("A#2".into()),
        ))
        .await
        .unwrap();
    assert_eq!(sks(&lte), ["A#1", "A#10", "A#2"]);

    let none = t
        .query(&Query::new(Index::Primary, "P#9", SkCond::Any))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.cursor, None);
}

async fn gsi1_lte_and_sparse(t: &dyn Table) {
    let entry = |sk: &str, due: Option<&str>| {
        let mut i = item(json!({"PK": "CAMPAIGN#c", "SK": sk, "n": 1}));
        if let Some(due) = due {
            i.insert("GSI1PK".into(), json!("DUE"));
            i.insert("GSI1SK".into(), json!(due));
        }
        i
    };
    t.put(entry("E#1", Some("2030-01-01T00:00:00Z#1")), Cond::None)
        .await
        .unwrap();
    t.put(entry("E#2", Some("2030-01-02T00:00:00Z#2")), Cond::None)
        .await
        .unwrap();
    t.put(entry("E#3", Some("2030-01-03T00:00:00Z#3")), Cond::None)
        .await
        .unwrap();
    t.put(entry("E#4", None), Cond::None).await.unwrap();

    let q = Query::new(
        Index::Gsi1,
        "DUE",
        SkCond::Lte("2030-01-02T23:59:59Z".into()),
    );
    let page = t.query(&q).await.unwrap();
    assert_eq!(sks(&page), ["E#1", "E#2"]);
    assert_eq!(
        page.items[1],
        entry("E#2", Some("2030-01-02T00:00:00Z#2")),
        "projection ALL"
    );

    // Re-put without the index attributes: the item leaves the index.
    t.put(entry("E#1", None), Cond::None).await.unwrap();
    assert_eq!(sks(&t.query(&q).await.unwrap()), ["E#2"]);
    let all = t
        .query(&Query::new(Index::Gsi1, "DUE", SkCond::Any))
        .await
        .unwrap();
    assert_eq!(sks(&all), ["E#2", "E#3"]);
    // And rejoins it when they come back.
    t.put(entry("E#1", Some("2029-12-31T00:00:00Z#1")), Cond::None)
        .await
        .unwrap();
    assert_eq!(sks(&t.query(&q).await.unwrap()), ["E#1", "E#2"]);
    // Deleting an item removes it from the index.
    t.delete("CAMPAIGN#c", "E#2").await.unwrap();
    assert_eq!(sks(&t.query(&q).await.unwrap()), ["E#1"]);
}

async fn gsi2_gt(t: &dyn Table) {
    for (sk, at) in [
        ("R#1", "0005"),
        ("R#2", "0010"),
        ("R#3", "0015"),
        ("R#4", "0020"),
    ] {
        t.put(
            item(
                json!({"PK": "CONTACT#p", "SK": sk, "GSI2PK": "CAMPAIGN#c#REPLIES", "GSI2SK": at}),
            ),
            Cond::None,
        )
        .await
        .unwrap();
    }
    // Another partition of the index.
    t.put(
        item(json!({"PK": "CONTACT#q", "SK": "R#9", "GSI2PK": "CAMPAIGN#d#REPLIES", "GSI2SK": "0099"})),
        Cond::None,
    )
    .await
    .unwrap();
    let page = t
        .query(&Query::new(
            Index::Gsi2,
            "CAMPAIGN#c#REPLIES",
            SkCond::Gt("0010".into()),
        ))
        .await
        .unwrap();
    assert_eq!(sks(&page), ["R#3", "R#4"]);
    // GSI1 is untouched by GSI2-only items.
    let g1 = t
        .query(&Query::new(Index::Gsi1, "CAMPAIGN#c#REPLIES", SkCond::Any))
        .await
        .unwrap();
    assert!(g1.items.is_empty());
}

/// Follows cursors until the end; returns the sort keys seen and the number of pages.
async fn drain(t: &dyn Table, base: Query, limit: u32) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        let page = t
            .query(&base.clone().limit(limit).cursor(cursor))
            .await
            .unwrap();
        assert!(
            page.items.len() <= limit as usize,
            "page longer than the limit"
        );
        seen.extend(sks(&page));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return (seen, pages),
        }
    }
}

async fn pagination(t: &dyn Table) {
    let mut expected = Vec::new();
    for n in 0..11 {
        let sk = format!("M#{n:03}");
        t.put(
            item(json!({"PK": "PAGE#1", "SK": sk, "GSI1PK": "PAGED", "GSI1SK": format!("Z#{:03}", 100 - n)})),
            Cond::None,
        )
        .await
        .unwrap();
        expected.push(sk);
    }
    t.put(item(json!({"PK": "PAGE#2", "SK": "M#000"})), Cond::None)
        .await
        .unwrap();

    for limit in [1, 3, 4, 11, 50] {
        let (seen, pages) =
            drain(t, Query::new(Index::Primary, "PAGE#1", SkCond::Any), limit).await;
        assert_eq!(seen, expected, "primary, limit {limit}");
        assert!(pages >= expected.len().div_ceil(limit as usize));
    }
    let (seen, _) = drain(
        t,
        Query::new(Index::Primary, "PAGE#1", SkCond::BeginsWith("M#00".into())),
        4,
    )
    .await;
    assert_eq!(seen, expected[..10]);

    // Through an index, whose cursor carries the index key too; reverse order of SK.
    let mut reversed = expected.clone();
    reversed.reverse();
    for limit in [2, 5] {
        let (seen, _) = drain(t, Query::new(Index::Gsi1, "PAGED", SkCond::Any), limit).await;
        assert_eq!(seen, reversed, "GSI1, limit {limit}");
    }
}

/// A cursor the table never gave out, or one of another partition's listing, is
/// [`PortError::BadCursor`]: the caller's mistake, not a backend failure to retry.
async fn foreign_or_garbage_cursor(t: &dyn Table) {
    for n in 0..3 {
        for pk in ["CUR#1", "CUR#2"] {
            t.put(
                item(json!({"PK": pk, "SK": format!("M#{n}"), "GSI1PK": format!("I{pk}"), "GSI1SK": "Z"})),
                Cond::None,
            )
            .await
            .unwrap();
        }
    }
    for index in [Index::Primary, Index::Gsi1] {
        let pk = |p: &str| match index {
            Index::Primary => p.to_owned(),
            _ => format!("I{p}"),
        };
        let page = t
            .query(&Query::new(index, pk("CUR#2"), SkCond::Any).limit(1))
            .await
            .unwrap();
        let theirs = page.cursor.expect("more follow");
        for bad in [theirs.as_str(), "", "abc", "[]", r#"{"PK": 1}"#, "{}"] {
            let q = Query::new(index, pk("CUR#1"), SkCond::Any)
                .limit(1)
                .cursor(Some(bad.to_owned()));
            assert!(
                matches!(t.query(&q).await, Err(PortError::BadCursor(_))),
                "{index:?} {bad}"
            );
        }
    }
}

async fn add_counters(t: &dyn Table) {
    let d = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(a, n)| ((*a).to_owned(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(t.get("STATS#c", "SHARD#0").await.unwrap(), None);
    let first = t
        .add("STATS#c", "SHARD#0", &d(&[("sent", 1), ("failed", 2)]))
        .await
        .unwrap();
    assert_eq!(
        first,
        item(json!({"PK": "STATS#c", "SK": "SHARD#0", "sent": 1, "failed": 2}))
    );
    let second = t
        .add("STATS#c", "SHARD#0", &d(&[("sent", 5), ("read", 1)]))
        .await
        .unwrap();
    assert_eq!(
        second,
        item(json!({"PK": "STATS#c", "SK": "SHARD#0", "sent": 6, "failed": 2, "read": 1}))
    );
    let third = t
        .add("STATS#c", "SHARD#0", &d(&[("failed", -2)]))
        .await
        .unwrap();
    assert_eq!(third["failed"], json!(0));
    assert!(third["sent"].is_i64());
    assert_eq!(t.get("STATS#c", "SHARD#0").await.unwrap(), Some(third));

    // Existing non-counter attributes survive an add.
    t.put(
        item(json!({"PK": "STATS#c", "SK": "SHARD#1", "label": "x", "sent": 10})),
        Cond::None,
    )
    .await
    .unwrap();
    let got = t
        .add("STATS#c", "SHARD#1", &d(&[("sent", 1)]))
        .await
        .unwrap();
    assert_eq!(
        got,
        item(json!({"PK": "STATS#c", "SK": "SHARD#1", "label": "x", "sent": 11}))
    );
}

async fn delete(t: &dyn Table) {
    let it = item(json!({"PK": "D#1", "SK": "X", "v": 1}));
    t.put(it.clone(), Cond::None).await.unwrap();
    t.put(item(json!({"PK": "D#1", "SK": "Y"})), Cond::None)
        .await
        .unwrap();
    t.delete("D#1", "X").await.unwrap();
    assert_eq!(t.get("D#1", "X").await.unwrap(), None);
    assert!(t.get("D#1", "Y").await.unwrap().is_some(), "only that item");
    // Deleting a missing item is fine; NotExists holds again after a delete.
    t.delete("D#1", "X").await.unwrap();
    t.put(it, Cond::NotExists).await.unwrap();
}

async fn delete_many(t: &dyn Table) {
    // More than one BatchWriteItem's worth (25), with a repeated and a missing key.
    for i in 0..60 {
        t.put(
            item(json!({"PK": "M#1", "SK": format!("E#{i:03}"), "v": i})),
            Cond::None,
        )
        .await
        .unwrap();
    }
    t.put(item(json!({"PK": "M#2", "SK": "E#000"})), Cond::None)
        .await
        .unwrap();
    let mut keys: Vec<(String, String)> = (0..55)
        .map(|i| ("M#1".to_owned(), format!("E#{i:03}")))
        .collect();
    keys.push(("M#1".into(), "E#000".into()));
    keys.push(("M#1".into(), "E#999".into()));
    t.delete_many(&keys).await.unwrap();
    let left = t
        .query(&Query::new(Index::Primary, "M#1", SkCond::Any))
        .await
        .unwrap();
    assert_eq!(sks(&left), ["E#055", "E#056", "E#057", "E#058", "E#059"]);
    assert!(
        t.get("M#2", "E#000").await.unwrap().is_some(),
        "only the listed keys"
    );
    t.delete_many(&[]).await.unwrap();
    // Deleted items leave the indexes too.
    t.put(
        item(json!({"PK": "M#3", "SK": "X", "GSI1PK": "G#M", "GSI1SK": "1"})),
        Cond::None,
    )
    .await
    .unwrap();
    t.delete_many(&[("M#3".into(), "X".into())]).await.unwrap();
    let idx = t
        .query(&Query::new(Index::Gsi1, "G#M", SkCond::Any))
        .await
        .unwrap();
    assert!(idx.items.is_empty());
}

// ---- backends -----------------------------------------------------------------------------

async fn dynamo() -> DynamoTable {
    let conf = common::emulator_config("DynamoDB contract").await;
    let name = common::unique_name("contract");
    let client = common::create_table(&conf, &name).await;
    // Idempotent.
    setup::ensure_table(&client, &name)
        .await
        .expect("ensure_table twice");
    DynamoTable::new(client, name)
}

macro_rules! contract {
    ($($case:ident: $memory:ident, $dynamo:ident;)*) => {$(
        #[tokio::test]
        async fn $memory() {
            $case(&MemoryTable::new()).await;
        }

        #[tokio::test]
        async fn $dynamo() {
            $case(&dynamo().await).await;
        }
    )*};
}

contract! {
    round_trip: contract_memory_round_trip, contract_dynamo_round_trip;
    conditional_put: contract_memory_conditional_put, contract_dynamo_conditional_put;
    version_condition: contract_memory_version_condition, contract_dynamo_version_condition;
    query_primary_begins_with: contract_memory_query_primary_begins_with, contract_dynamo_query_primary_begins_with;
    gsi1_lte_and_sparse: contract_memory_gsi1_lte_and_sparse, contract_dynamo_gsi1_lte_and_sparse;
    gsi2_gt: contract_memory_gsi2_gt, contract_dynamo_gsi2_gt;
    pagination: contract_memory_pagination, contract_dynamo_pagination;
    foreign_or_garbage_cursor: contract_memory_foreign_or_garbage_cursor, contract_dynamo_foreign_or_garbage_cursor;
    add_counters: contract_memory_add_counters, contract_dynamo_add_counters;
    delete: contract_memory_delete, contract_dynamo_delete;
    delete_many: contract_memory_delete_many, contract_dynamo_delete_many;
}

#[tokio::test]
async fn contract_dynamo_counts_reads_and_writes() {
    use std::sync::atomic::Ordering;
    let t = dynamo().await;
    t.put(item(json!({"PK": "A", "SK": "B"})), Cond::None)
        .await
        .unwrap();
    t.get("A", "B").await.unwrap();
    t.query(&Query::new(Index::Primary, "A", SkCond::Any))
        .await
        .unwrap();
    assert_eq!(t.writes.load(Ordering::Relaxed), 1);
    assert_eq!(t.reads.load(Ordering::Relaxed), 2);
}
