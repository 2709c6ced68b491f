//! Deleting a campaign with a million hopper entries (R1.5), as the sweeper does it: in
//! bounded chunks per invocation, resuming where the previous one stopped. Prints the
//! time, the sweeps needed and the peak memory of the delete itself.
//!
//! ```sh
//! cargo run --release -p e2e --example delete_bench                 # 1,000,000 entries, in memory
//! cargo run --release -p e2e --example delete_bench -- 200000       # other sizes
//! eval "$(scripts/emulator.sh start)"
//! cargo run --release -p e2e --example delete_bench -- 20000 --dynamo   # DynamoDB in the emulator
//! ```
//!
//! Peak memory is the process's VmHWM from /proc/self/status. It is reset (clear_refs)
//! after the table is loaded, so the "during delete" figure is the table plus what the
//! delete holds; the difference to the resident size before the delete is the deleter's
//! own working set, which is what must fit a 128 MB Lambda.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use shared::app::sweep::{PurgeBudget, SweepService, DELETE_GRACE};
use shared::app::{Operator, OperatorPorts};
use shared::domain::hopper::HopperEntry;
use shared::domain::ids::{CampaignId, TenantId};
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::ports::{Clock, Table};
use shared::repo::{self, Interaction};
use std::sync::Arc;
use std::time::Instant;
use testkit::memory::{ManualClock, MemoryBus, MemoryScheduler, MemoryTable};

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

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Resets VmHWM to the current resident size (Linux 4.0+).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let entries: usize = args
        .iter()
        .take_while(|a| *a != "--budget")
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let dynamo = args.iter().any(|a| a == "--dynamo");
    // `--budget S`: seconds per sweep (default: the sweeper's own, 40 s).
    let budget_secs: Option<u64> = args
        .iter()
        .position(|a| a == "--budget")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let table: Arc<dyn Table> = if dynamo {
        anyhow::ensure!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "--dynamo needs AWS_ENDPOINT_URL (eval \"$(scripts/emulator.sh start)\")"
        );
        let cfg = shared::adapters::aws::sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&cfg);
        let name = format!("delete-bench-{}", uuid::Uuid::new_v4().simple());
        shared::adapters::aws::setup::ensure_table(&ddb, &name).await?;
        Arc::new(shared::adapters::aws::DynamoTable::new(ddb, name))
    } else {
        Arc::new(MemoryTable::new())
    };
    let clock = Arc::new(ManualClock::frozen(
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
    ));
    let admin = Operator::new(OperatorPorts {
        table: table.clone(),
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(MemoryBus::default()),
        clock: clock.clone(),
    });
    let tenant = TenantId::parse("bench")?;
    let account = admin
        .templates
        .create_account(
            &tenant,
            serde_json::from_value(json!({
                "name": "Main", "sender_id": "106540352242922", "token_ref": "env:TOKEN", "waba_id": "102290129340398"
            }))?,
        )
        .await?;
    let account_id = serde_json::to_value(&account)?["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = admin
        .campaigns
        .create_campaign(
            &tenant,
            serde_json::from_value(json!({"name": "Big", "account_id": account_id}))?,
        )
        .await?;
    let c = view.campaign;

    // Load: one entry per contact; one in a hundred sent, with its open interaction.
    println!(
        "loading {entries} hopper entries ({}) ...",
        if dynamo {
            "DynamoDB in the emulator"
        } else {
            "in-memory table"
        }
    );
    let t0 = Instant::now();
    let first = repo::reserve_seq(&*table, "bench", &c.id, entries as u64).await?;
    let mut delta = stats::Delta::new();
    let mut sent = 0;
    for i in 0..entries {
        let phone = PhoneNumber::parse(&format!("91{:010}", 7_000_000_000u64 + i as u64))?;
        let mut e = HopperEntry::new(&c, phone, ContactData::default(), first + i as u64);
        if i % 100 == 0 {
            e.claim(clock.now()).ok();
            e.record_sent(format!("wamid.{i}"), clock.now(), Duration::days(1));
            repo::put_interaction(
                &*table,
                "106540352242922",
                &Interaction::opened(
                    e.entry_ref(),
                    format!("wamid.{i}"),
                    clock.now(),
                    Duration::days(1),
                    None,
                ),
            )
            .await?;
            sent += 1;
        }
        repo::insert_entry(&*table, &mut e, clock.now()).await?;
        stats::fold(&mut delta, stats::delta(None, &e));
    }
    repo::add_counters(&*table, "bench", &c.id, &delta).await?;
    let load = t0.elapsed();
    let rss_loaded = status_kb("VmRSS:");
    println!(
        "loaded in {:.1} s; resident {:.0} MB (the table itself)",
        load.as_secs_f64(),
        mb(rss_loaded)
    );

    admin
        .campaigns
        .delete_campaign(&tenant, &CampaignId::parse(&c.id)?)
        .await?;
    let sweeper = SweepService {
        table: table.clone(),
        bus: Arc::new(MemoryBus::default()),
        clock: clock.clone(),
    };
    let reset = reset_peak();
    let rss_before = status_kb("VmRSS:");
    let budget = PurgeBudget {
        time: budget_secs
            .map(std::time::Duration::from_secs)
            .unwrap_or(PurgeBudget::default().time),
        ..PurgeBudget::default()
    };
    let t1 = Instant::now();
    let mut sweeps = 0;
    let mut deleted = 0;
    let mut longest = std::time::Duration::ZERO;
    loop {
        sweeps += 1;
        let s = Instant::now();
        let r = sweeper.purge_deleted(budget).await?;
        longest = longest.max(s.elapsed());
        deleted += r.items_deleted;
        println!(
            "  sweep {sweeps}: {} keys deleted in {:.1} s, campaigns pending {}",
            r.items_deleted,
            s.elapsed().as_secs_f64(),
            r.campaigns_pending
        );
        if r.campaigns_pending == 0 {
            break;
        }
        if r.items_deleted == 0 {
            // Entries are gone; the campaign item waits out the grace period.
            clock.advance(DELETE_GRACE);
        }
    }
    let took = t1.elapsed();
    let peak = status_kb("VmHWM:");
    println!();
    println!("entries                  {entries} ({sent} sent, with interactions)");
    println!("keys deleted             {deleted} (entries, their contact links, owned interactions, counters, sequence, campaign)");
    println!("sweeps (budget {} s each) {sweeps}", budget.time.as_secs());
    println!("longest sweep            {:.1} s", longest.as_secs_f64());
    println!(
        "delete time              {:.1} s ({:.0} keys/s)",
        took.as_secs_f64(),
        deleted as f64 / took.as_secs_f64()
    );
    println!("resident before delete   {:.1} MB", mb(rss_before));
    if reset {
        println!(
            "peak during delete       {:.1} MB (VmHWM, reset after loading)",
            mb(peak)
        );
        println!(
            "delete working set       {:.1} MB above the loaded table",
            mb(peak.saturating_sub(rss_before))
        );
    } else {
        println!(
            "peak (whole run)         {:.1} MB (VmHWM; clear_refs not permitted)",
            mb(peak)
        );
    }
    anyhow::ensure!(
        repo::get_campaign(&*table, "bench", &c.id).await?.is_none(),
        "the campaign is still there"
    );
    Ok(())
}
