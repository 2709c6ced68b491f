//! The single table on DynamoDB. Same semantics as `MemoryTable`: conditional puts,
//! sparse GSIs, sort-key order and opaque cursors.

use super::backend;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Attrs = HashMap<String, AttributeValue>;

/// A `Table` backed by one DynamoDB table with the `PK`/`SK` key and the `GSI1` and
/// `GSI2` indexes (see `setup::ensure_table`).
pub struct DynamoTable {
    client: Client,
    table: String,
    /// Read and write requests made (the totals of [`TableMetrics`]).
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    metrics: Arc<TableMetrics>,
}

/// The requests a [`DynamoTable`] sent, by kind: what DynamoDB bills (the cost
/// benchmark reads them, tests check them). Relaxed atomic increments, so they stay on
/// in production at no measurable cost.
#[derive(Debug, Default)]
pub struct TableMetrics {
    get_item: AtomicU64,
    query_pages: AtomicU64,
    items_read: AtomicU64,
    put_item: AtomicU64,
    delete_item: AtomicU64,
    update_item: AtomicU64,
    batch_write_requests: AtomicU64,
    batch_write_items: AtomicU64,
    conditional_failures: AtomicU64,
}

/// A snapshot of [`TableMetrics`]; `later - earlier` is what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// GetItem requests (strongly consistent).
    pub get_item: u64,
    /// Query requests: one per page.
    pub query_pages: u64,
    /// Items returned by GetItem and Query.
    pub items_read: u64,
    /// PutItem requests, conditional failures included.
    pub put_item: u64,
    pub delete_item: u64,
    /// UpdateItem requests (`Table::add`).
    pub update_item: u64,
    /// BatchWriteItem requests, retries of unprocessed items included.
    pub batch_write_requests: u64,
    /// Items sent in BatchWriteItem requests: each is billed as one write.
    pub batch_write_items: u64,
    /// Conditional writes that failed their condition: DynamoDB still bills them.
    pub conditional_failures: u64,
}

impl TableCounts {
    /// Requests that read.
    pub fn read_requests(&self) -> u64 {
        self.get_item + self.query_pages
    }

    /// Requests that write.
    pub fn write_requests(&self) -> u64 {
        self.put_item + self.delete_item + self.update_item + self.batch_write_requests
    }

    /// Items written, each billed as (at least) one write request unit: single-item
    /// writes plus every item of a batch.
    pub fn items_written(&self) -> u64 {
        self.put_item + self.delete_item + self.update_item + self.batch_write_items
    }
}

impl std::ops::Sub for TableCounts {
    type Output = TableCounts;
    fn sub(self, o: TableCounts) -> TableCounts {
        TableCounts {
            get_item: self.get_item.saturating_sub(o.get_item),
            query_pages: self.query_pages.saturating_sub(o.query_pages),
            items_read: self.items_read.saturating_sub(o.items_read),
            put_item: self.put_item.saturating_sub(o.put_item),
            delete_item: self.delete_item.saturating_sub(o.delete_item),
            update_item: self.update_item.saturating_sub(o.update_item),
            batch_write_requests: self
                .batch_write_requests
                .saturating_sub(o.batch_write_requests),
            batch_write_items: self.batch_write_items.saturating_sub(o.batch_write_items),
            conditional_failures: self
                .conditional_failures
                .saturating_sub(o.conditional_failures),
        }
    }
}

impl std::ops::Add for TableCounts {
    type Output = TableCounts;
    fn add(self, o: TableCounts) -> TableCounts {
        TableCounts {
            get_item: self.get_item + o.get_item,
            query_pages: self.query_pages + o.query_pages,
            items_read: self.items_read + o.items_read,
            put_item: self.put_item + o.put_item,
            delete_item: self.delete_item + o.delete_item,
            update_item: self.update_item + o.update_item,
            batch_write_requests: self.batch_write_requests + o.batch_write_requests,
            batch_write_items: self.batch_write_items + o.batch_write_items,
            conditional_failures: self.conditional_failures + o.conditional_failures,
        }
    }
}

impl TableMetrics {
    pub fn snapshot(&self) -> TableCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TableCounts {
            get_item: n(&self.get_item),
            query_pages: n(&self.query_pages),
            items_read: n(&self.items_read),
            put_item: n(&self.put_item),
            delete_item: n(&self.delete_item),
            update_item: n(&self.update_item),
            batch_write_requests: n(&self.batch_write_requests),
            batch_write_items: n(&self.batch_write_items),
            conditional_failures: n(&self.conditional_failures),
        }
    }
}

fn bump(a: &AtomicU64, by: u64) {
    a.fetch_add(by, Ordering::Relaxed);
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTable {
            client,
            table: table.into(),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            metrics: Arc::default(),
        }
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The requests this adapter sent so far (shared: it keeps counting).
    pub fn metrics(&self) -> Arc<TableMetrics> {
        self.metrics.clone()
    }

    fn read(&self, counter: &AtomicU64) {
        bump(&self.reads, 1);
        bump(counter, 1);
    }

    fn write(&self, counter: &AtomicU64) {
        bump(&self.writes, 1);
        bump(counter, 1);
    }

    fn key(pk: &str, sk: &str) -> Attrs {
        HashMap::from([
            ("PK".to_owned(), AttributeValue::S(pk.to_owned())),
            ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
        ])
    }
}

/// Keys per BatchWriteItem call (DynamoDB's limit).
const BATCH_WRITE_MAX: usize = 25;
/// BatchWriteItem calls in flight at once for one `delete_many`.
const BATCH_CONCURRENCY: usize = 4;
/// Attempts for a batch whose items keep coming back unprocessed (throttling).
const BATCH_ATTEMPTS: u32 = 8;

impl DynamoTable {
    /// One BatchWriteItem of at most 25 deletes; unprocessed items are sent again with
    /// exponential backoff (50 ms, 100 ms, ... capped at 2 s).
    async fn batch_delete(&self, mut requests: Vec<WriteRequest>) -> PortResult<()> {
        for attempt in 0..BATCH_ATTEMPTS {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                let ms = (50u64 << (attempt - 1)).min(2000);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            self.write(&self.metrics.batch_write_requests);
            bump(&self.metrics.batch_write_items, requests.len() as u64);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| backend("BatchWriteItem", e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(PortError::Backend(format!(
                "BatchWriteItem: {} deletes still unprocessed after {BATCH_ATTEMPTS} attempts",
                requests.len()
            )))
        }
    }
}

fn to_attrs(item: Item) -> PortResult<Attrs> {
    serde_dynamo::to_item(item).map_err(|e| PortError::Backend(format!("item to DynamoDB: {e}")))
}

fn to_attr(v: &Value) -> PortResult<AttributeValue> {
    serde_dynamo::to_attribute_value(v)
        .map_err(|e| PortError::Backend(format!("value to DynamoDB: {e}")))
}

/// Integral numbers come back as JSON integers: serde_dynamo tries i64, then u64, then
/// f64, and `integral` turns what is left with no fraction (`"1.0"`, `"1E+2"`; DynamoDB
/// normalises these itself, emulators may not) into integers too.
fn from_attrs(attrs: Attrs) -> PortResult<Item> {
    let mut item = serde_dynamo::from_item::<_, Map<String, Value>>(attrs)
        .map_err(|e| PortError::Backend(format!("item from DynamoDB: {e}")))?;
    item.values_mut().for_each(integral);
    Ok(item)
}

/// 2^53: beyond it an f64 no longer holds every integer exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

fn integral(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_EXACT)
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral),
        Value::Object(m) => m.values_mut().for_each(integral),
        _ => {}
    }
}

fn index_spec(index: Index) -> (Option<&'static str>, &'static str, &'static str) {
    match index {
        Index::Primary => (None, "PK", "SK"),
        Index::Gsi1 => (Some("GSI1"), "GSI1PK", "GSI1SK"),
        Index::Gsi2 => (Some("GSI2"), "GSI2PK", "GSI2SK"),
    }
}

/// LastEvaluatedKey (string attributes only) as a JSON object string.
fn encode_cursor(key: Attrs) -> PortResult<String> {
    let obj = from_attrs(key)?;
    serde_json::to_string(&obj).map_err(|e| PortError::Backend(format!("cursor: {e}")))
}

/// A cursor back into LastEvaluatedKey, if it is one of this query's: string key
/// attributes only, the query's partition key among them.
fn decode_cursor(cursor: &str, pk_attr: &str, pk: &str) -> PortResult<Attrs> {
    let bad = |why: &str| PortError::BadCursor(why.to_owned());
    let obj: Map<String, Value> = serde_json::from_str(cursor).map_err(|_| bad("not JSON"))?;
    if !obj.values().all(Value::is_string) {
        return Err(bad("non-string key attribute"));
    }
    if obj.get(pk_attr).and_then(Value::as_str) != Some(pk)
        || !obj.contains_key("PK")
        || !obj.contains_key("SK")
    {
        return Err(bad("not a cursor of this listing"));
    }
    to_attrs(obj)
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.read(&self.metrics.get_item);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        if out.item.is_some() {
            bump(&self.metrics.items_read, 1);
        }
        out.item.map(from_attrs).transpose()
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        if !matches!(item.get("PK"), Some(Value::String(_)))
            || !matches!(item.get("SK"), Some(Value::String(_)))
        {
            return Err(PortError::Backend("item lacks string PK/SK".into()));
        }
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attrs(item)?));
        match &cond {
            Cond::None => {}
            Cond::NotExists => {
                req = req.condition_expression("attribute_not_exists(PK)");
            }
            Cond::Eq(attr, v) => {
                req = req
                    .condition_expression("#a = :v")
                    .expression_attribute_names("#a", attr)
                    .expression_attribute_values(":v", to_attr(v)?);
            }
        }
        self.write(&self.metrics.put_item);
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                bump(&self.metrics.conditional_failures, 1);
                Err(PortError::ConditionFailed)
            }
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.write(&self.metrics.delete_item);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .send()
            .await
            .map_err(|e| backend("DeleteItem", e))?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        // BatchWriteItem refuses a batch that names one key twice.
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        let unique: Vec<&(String, String)> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let batches = unique.chunks(BATCH_WRITE_MAX).map(|chunk| {
            chunk
                .iter()
                .map(|(pk, sk)| {
                    let del = DeleteRequest::builder()
                        .set_key(Some(Self::key(pk, sk)))
                        .build()
                        .map_err(|e| backend("DeleteRequest", e))?;
                    Ok(WriteRequest::builder().delete_request(del).build())
                })
                .collect::<PortResult<Vec<WriteRequest>>>()
        });
        let batches = batches.collect::<PortResult<Vec<_>>>()?;
        let results: Vec<PortResult<()>> = futures::stream::iter(batches)
            .map(|b| self.batch_delete(b))
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        let (index_name, pk_attr, sk_attr) = index_spec(q.index);
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index_name.map(str::to_owned))
            .expression_attribute_names("#pk", pk_attr)
            .expression_attribute_values(":pk", AttributeValue::S(q.pk.clone()));
        let sk_expr = match &q.sk {
            SkCond::Any => None,
            SkCond::BeginsWith(v) => Some(("begins_with(#sk, :sk)", v)),
            SkCond::Lte(v) => Some(("#sk <= :sk", v)),
            SkCond::Gt(v) => Some(("#sk > :sk", v)),
        };
        req = match sk_expr {
            None => req.key_condition_expression("#pk = :pk"),
            Some((expr, v)) => req
                .key_condition_expression(format!("#pk = :pk AND {expr}"))
                .expression_attribute_names("#sk", sk_attr)
                .expression_attribute_values(":sk", AttributeValue::S(v.clone())),
        };
        if let Some(limit) = q.limit {
            let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
            req = req.limit(limit);
        }
        if let Some(c) = &q.cursor {
            req = req.set_exclusive_start_key(Some(decode_cursor(c, pk_attr, &q.pk)?));
        }
        self.read(&self.metrics.query_pages);
        let out = req.send().await.map_err(|e| backend("Query", e))?;
        bump(&self.metrics.items_read, out.items().len() as u64);
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attrs)
            .collect::<PortResult<Vec<_>>>()?;
        let cursor = out.last_evaluated_key.map(encode_cursor).transpose()?;
        Ok(Page { items, cursor })
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        if deltas.is_empty() {
            // An UpdateExpression cannot be empty: create the bare item if missing.
            let mut bare = Item::new();
            bare.insert("PK".into(), pk.into());
            bare.insert("SK".into(), sk.into());
            match self.put(bare, Cond::NotExists).await {
                Ok(()) | Err(PortError::ConditionFailed) => {}
                Err(e) => return Err(e),
            }
            return self
                .get(pk, sk)
                .await?
                .ok_or_else(|| PortError::Backend("item vanished during add".into()));
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .return_values(ReturnValue::AllNew);
        // DynamoDB rejects two clauses on one attribute; the twin applies both.
        let mut merged: Vec<(&str, i64)> = Vec::with_capacity(deltas.len());
        for (attr, d) in deltas {
            match merged.iter_mut().find(|(a, _)| a == attr) {
                Some((_, sum)) => *sum += d,
                None => merged.push((attr, *d)),
            }
        }
        let mut clauses = Vec::with_capacity(merged.len());
        for (i, (attr, d)) in merged.into_iter().enumerate() {
            clauses.push(format!("#a{i} :v{i}"));
            req = req
                .expression_attribute_names(format!("#a{i}"), attr)
                .expression_attribute_values(format!(":v{i}"), AttributeValue::N(d.to_string()));
        }
        self.write(&self.metrics.update_item);
        let out = req
            .update_expression(format!("ADD {}", clauses.join(", ")))
            .send()
            .await
            .map_err(|e| backend("UpdateItem", e))?;
        from_attrs(out.attributes.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_numbers_come_back_as_integers() {
        let attrs: Attrs = HashMap::from([
            ("a".to_owned(), AttributeValue::N("1.0".into())),
            ("b".to_owned(), AttributeValue::N("1E+2".into())),
            ("c".to_owned(), AttributeValue::N("0.5".into())),
            ("d".to_owned(), AttributeValue::N("-3".into())),
            (
                "e".to_owned(),
                AttributeValue::N("18000000000000000000".into()),
            ),
            (
                "f".to_owned(),
                AttributeValue::L(vec![AttributeValue::N("2.00".into())]),
            ),
            (
                "g".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "h".to_owned(),
                    AttributeValue::N("7.0".into()),
                )])),
            ),
        ]);
        let item = from_attrs(attrs).unwrap();
        assert_eq!(
            Value::Object(item.clone()),
            json!({"a": 1, "b": 100, "c": 0.5, "d": -3, "e": 18_000_000_000_000_000_000_u64, "f": [2], "g": {"h": 7}})
        );
        assert!(item["a"].is_i64() && item["f"][0].is_i64() && item["g"]["h"].is_i64());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key: Attrs = HashMap::from([
            ("PK".to_owned(), AttributeValue::S("P".into())),
            ("SK".to_owned(), AttributeValue::S("S#1".into())),
            ("GSI1PK".to_owned(), AttributeValue::S("DUE".into())),
        ]);
        let c = encode_cursor(key.clone()).unwrap();
        assert_eq!(decode_cursor(&c, "PK", "P").unwrap(), key);
        assert!(decode_cursor(&c, "PK", "Q").is_err());
        assert!(decode_cursor("not json", "PK", "P").is_err());
        assert!(decode_cursor(r#"{"PK": 1}"#, "PK", "P").is_err());
    }
}
