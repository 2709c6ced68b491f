//! Benchmark of the CSV importer (R2.4): generates a CSV of N rows as a stream (never whole
//! in memory), runs it through the importer's own code path (`ImportService::run`, the
//! same the Lambda function calls on an S3 event) and prints rows/s, wall time and peak RSS.
//!
//! ```sh
//! cargo run --release -p importer --example import-bench -- 1000000
//! cargo run --release -p importer --example import-bench -- 1000000 --table memory
//! cargo run --release -p importer --example import-bench -- 200000 --budget-secs 2
//! ```
//!
//! `--table discard` (the default) stores only the import item and drops every other
//! write, so the peak RSS is the importer's own (streaming, parsing, validation, batches
//! in flight). `--table memory` keeps everything in the in-memory table; its RSS then
//! includes a million stored contacts and their tag index. `--budget-secs N` stops at a
//! checkpoint every N seconds and continues from it with a ranged read, as the function
//! does across invocations.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shared::adapters::clock::SystemClock;
use shared::app::import::{ImportService, ImportTuning, RunOutcome};
use shared::ports::{ByteChunks, Cond, Item, ObjectStore, Page, PortResult, Query, Table};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::memory::MemoryTable;

const CITIES: [&str; 5] = ["Pune", "Mumbai", "Delhi", "Chennai", "Kolkata"];

/// One CSV row; one in 50 has an invalid phone so the error path is measured too.
fn row(i: u64) -> String {
    let phone = if i % 50 == 49 {
        format!("+91 12{i:03}")
    } else {
        format!("+91 9{:09}", 100_000_000 + i)
    };
    let tags = if i.is_multiple_of(3) {
        "vip;gold"
    } else {
        "regular"
    };
    format!(
        "{phone},Customer {i},customer{i}@example.com,{tags},{},CODE{i}\n",
        CITIES[(i % 5) as usize]
    )
}

const HEADER: &str = "phone,name,email,tags,tag:city,code\n";

/// An object store whose one object is a generated CSV of `rows` rows, streamed in 64 KB
/// chunks from any offset.
struct GeneratedCsv {
    rows: u64,
}

#[async_trait]
impl ObjectStore for GeneratedCsv {
    async fn presign_put(&self, key: &str, _: &str, _: Duration) -> PortResult<String> {
        Ok(format!("generated://{key}"))
    }
    async fn put(&self, _: &str, _: Bytes, _: &str) -> PortResult<()> {
        Ok(())
    }
    async fn get_from(&self, _key: &str, offset: u64) -> PortResult<Option<ByteChunks>> {
        let rows = self.rows;
        // (next row, bytes still to skip, buffer)
        let state = (0u64, offset, false);
        let s = futures::stream::unfold(
            state,
            move |(mut next, mut skip, mut header_done)| async move {
                let mut buf = String::with_capacity(70 * 1024);
                while buf.len() < 64 * 1024 {
                    let piece = if !header_done {
                        header_done = true;
                        HEADER.to_owned()
                    } else if next < rows {
                        next += 1;
                        row(next - 1)
                    } else {
                        break;
                    };
                    if skip >= piece.len() as u64 {
                        skip -= piece.len() as u64;
                    } else {
                        buf.push_str(&piece[skip as usize..]);
                        skip = 0;
                    }
                }
                (!buf.is_empty()).then(|| (Ok(Bytes::from(buf)), (next, skip, header_done)))
            },
        );
        Ok(Some(s.boxed()))
    }
    async fn delete(&self, _: &str) -> PortResult<()> {
        Ok(())
    }
}

/// A table that keeps only import items (the importer's checkpoints) and drops the rest:
/// every contact reads as new, every write is counted and discarded.
#[derive(Default)]
struct DiscardTable {
    kept: Mutex<HashMap<(String, String), Item>>,
    writes: AtomicU64,
    reads: AtomicU64,
}

fn key(item: &Item) -> (String, String) {
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (s("PK"), s("SK"))
}

#[async_trait]
impl Table for DiscardTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .kept
            .lock()
            .unwrap()
            .get(&(pk.to_owned(), sk.to_owned()))
            .cloned())
    }
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let k = key(&item);
        if k.0.starts_with("IMPORT#") && k.1 == "IMPORT" {
            let mut kept = self.kept.lock().unwrap();
            let ok = match &cond {
                Cond::None => true,
                Cond::NotExists => !kept.contains_key(&k),
                Cond::Eq(a, v) => kept.get(&k).and_then(|i| i.get(a)) == Some(v),
            };
            if !ok {
                return Err(shared::ports::PortError::ConditionFailed);
            }
            kept.insert(k, item);
        }
        Ok(())
    }
    async fn delete(&self, _: &str, _: &str) -> PortResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn query(&self, _: &Query) -> PortResult<Page> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(Page::default())
    }
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut item = Item::new();
        item.insert("PK".into(), pk.into());
        item.insert("SK".into(), sk.into());
        for (k, d) in deltas {
            item.insert(k.clone(), (*d).into());
        }
        Ok(item)
    }
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut rows = 1_000_000u64;
    let mut table_kind = "discard".to_owned();
    let mut budget = Duration::from_secs(14 * 60);
    let mut tuning = ImportTuning::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--table" => table_kind = args.next().unwrap_or_default(),
            "--budget-secs" => {
                budget = Duration::from_secs(args.next().unwrap_or_default().parse()?)
            }
            "--batch" => tuning.batch_rows = args.next().unwrap_or_default().parse()?,
            "--concurrency" => tuning.concurrency = args.next().unwrap_or_default().parse()?,
            "-h" | "--help" => {
                println!("usage: import-bench [ROWS] [--table discard|memory] [--budget-secs N] [--batch N] [--concurrency N]");
                return Ok(());
            }
            n => rows = n.replace('_', "").parse()?,
        }
    }
    let discard = Arc::new(DiscardTable::default());
    let memory = Arc::new(MemoryTable::new());
    let table: Arc<dyn Table> = match table_kind.as_str() {
        "discard" => discard.clone(),
        "memory" => memory.clone(),
        other => anyhow::bail!("--table discard|memory, not {other}"),
    };
    let svc = ImportService {
        table,
        objects: Arc::new(GeneratedCsv { rows }),
        clock: Arc::new(SystemClock),
        tuning: tuning.clone(),
    };
    let rss_before = status_kb("VmRSS:");
    let tenant = shared::domain::ids::TenantId::parse("bench")?;
    let ticket = svc.create_upload(&tenant, None, None).await?;
    let id = ticket.import.id;
    let started = Instant::now();
    let mut invocations = 0;
    let finished = loop {
        invocations += 1;
        match svc
            .run(&tenant, &id, &format!("run-{invocations}"), budget)
            .await?
        {
            RunOutcome::Continue(_) => continue,
            RunOutcome::Finished(i) => break i,
            other => anyhow::bail!("unexpected {other:?}"),
        }
    };
    let wall = started.elapsed();
    let hwm = status_kb("VmHWM:");
    let (reads, writes) = match table_kind.as_str() {
        "discard" => (
            discard.reads.load(Ordering::Relaxed),
            discard.writes.load(Ordering::Relaxed),
        ),
        _ => (
            memory.reads.load(Ordering::Relaxed),
            memory.writes.load(Ordering::Relaxed),
        ),
    };
    println!(
        "import-bench: {rows} rows, table={table_kind}, batch={} rows, concurrency={}",
        tuning.batch_rows, tuning.concurrency
    );
    println!(
        "  status {:?}: rows {} imported {} invalid {} (errors stored {}), {} run(s) of at most {:?}",
        finished.status, finished.rows, finished.imported, finished.invalid, finished.errors_stored, invocations, budget
    );
    println!(
        "  wall {:.2} s, {:.0} rows/s; table calls: {reads} reads, {writes} writes ({:.2} per row)",
        wall.as_secs_f64(),
        finished.rows as f64 / wall.as_secs_f64(),
        (reads + writes) as f64 / finished.rows.max(1) as f64
    );
    println!(
        "  peak RSS (VmHWM) {:.1} MB; RSS before the import {:.1} MB",
        hwm as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    if table_kind == "memory" {
        println!("  (the in-memory table holds {} items)", memory.len());
    }
    anyhow::ensure!(finished.rows == rows, "every row was read");
    Ok(())
}
