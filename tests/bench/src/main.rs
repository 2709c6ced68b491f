//! The performance benchmark. Every scenario prints figures beside their targets:
//!
//! ```sh
//! scripts/bench.sh              # every scenario at full size (installs what it needs)
//! scripts/bench.sh --smoke      # every scenario, small: what CI runs so the program keeps working
//! cargo run --release -p bench -- throughput pacing   # chosen scenarios (cost needs the emulator)
//! ```

mod capacity;
mod coldstart;
mod cost;
mod pacing;
mod pipeline;
mod report;
mod scale;
mod throughput;

use report::Row;

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Small sizes, short runs: checks the program works, the figures mean little.
    pub smoke: bool,
    /// Extra `--key value` arguments a scenario may read (e.g. `--contacts 200000`).
    pub extra: Vec<(String, String)>,
}

impl Opts {
    pub fn number(&self, key: &str, full: u64, smoke: u64) -> u64 {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.replace('_', "").parse().ok())
            .unwrap_or(if self.smoke { smoke } else { full })
    }
}

const SCENARIOS: [&str; 6] = [
    "throughput",
    "pacing",
    "capacity",
    "cost",
    "scale",
    "coldstart",
];

fn main() -> anyhow::Result<()> {
    // Logs only when asked for: they would cost time in the measured paths.
    if std::env::var_os("RUST_LOG").is_some() {
        shared::config::init_tracing();
    }
    let mut args = std::env::args().skip(1);
    // `bench scale-worker …` is the child process the scale scenario measures.
    if let Some(first) = std::env::args().nth(1) {
        if first == "scale-worker" {
            return scale::worker(std::env::args().skip(2).collect());
        }
    }
    let mut opts = Opts {
        smoke: false,
        extra: vec![],
    };
    let mut chosen: Vec<String> = vec![];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--smoke" => opts.smoke = true,
            "-h" | "--help" => {
                println!(
                    "usage: bench [--smoke] [--KEY VALUE ...] [{} | all ...]",
                    SCENARIOS.join(" | ")
                );
                return Ok(());
            }
            s if s.starts_with("--") => {
                let v = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("{s} needs a value"))?;
                opts.extra.push((s.trim_start_matches("--").to_owned(), v));
            }
            "all" => chosen.extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) => chosen.push(s.to_owned()),
            other => anyhow::bail!("unknown scenario {other}; try --help"),
        }
    }
    if chosen.is_empty() {
        chosen.extend(SCENARIOS.iter().map(|s| s.to_string()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows: Vec<Row> = vec![];
    for s in &chosen {
        eprintln!("== {s}{}", if opts.smoke { " (smoke)" } else { "" });
        let started = std::time::Instant::now();
        let got = rt.block_on(async {
            match s.as_str() {
                "throughput" => throughput::run(&opts).await,
                "pacing" => pacing::run(&opts).await,
                "capacity" => capacity::run(&opts).await,
                "cost" => cost::run(&opts).await,
                "scale" => scale::run(&opts).await,
                "coldstart" => coldstart::run(&opts).await,
                _ => unreachable!(),
            }
        })?;
        eprintln!("   {s} took {:.1} s", started.elapsed().as_secs_f64());
        print!("{}", report::table(&got));
        rows.extend(got);
    }
    println!(
        "\n## Results{}\n",
        if opts.smoke {
            " (smoke: small sizes)"
        } else {
            ""
        }
    );
    print!("{}", report::table(&rows));
    Ok(())
}
