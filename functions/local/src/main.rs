//! Runs the whole system in one process: API, webhook, launcher ticks, sender, sweeper and
//! a WhatsApp simulator, on the in-memory adapters (or on AWS services / a local emulator
//! when `AWS_ENDPOINT_URL` is set). `--demo` plays a campaign with a live progress line.

mod control;
mod demo;
mod wiring;

use shared::config;
use std::sync::Arc;

struct Args {
    demo: bool,
    exit_after_demo: bool,
    port: u16,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        demo: false,
        exit_after_demo: false,
        port: config::number("PORT", 3000)?,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--demo" => a.demo = true,
            "--exit-after-demo" => {
                a.demo = true;
                a.exit_after_demo = true;
            }
            "--port" => {
                a.port = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--port needs a number"))?
            }
            "-h" | "--help" => {
                println!("usage: local [--demo] [--exit-after-demo] [--port N]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; try --help"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    config::init_tracing();
    let args = args()?;
    let tenants = control::known_tenants()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let aws = std::env::var("AWS_ENDPOINT_URL").is_ok();
    let local = Arc::new(wiring::build(&base, args.demo, aws).await?);
    let tenants_line = match &tenants {
        Some(k) => format!(
            "tenants: {} (x-tenant-id required)",
            k.0.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "tenant: x-tenant-id, default demo".to_owned(),
    };
    let app = control::router(local.clone(), tenants);
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::spawn(control::run_loop(local.clone()));
    println!(
        "Campaign engine running locally on {base} ({}; {tenants_line})",
        local.backend
    );
    println!("  API: {base}/campaigns  ·  simulator record: {base}/local/sim/messages  ·  events: {base}/local/events  ·  clock: {base}/local/clock");
    if !args.demo {
        println!("  The simulator answers no one by itself (LOCAL_REPLY_PERCENT=0): post replies to {base}/local/sim/reply");
    }
    if args.demo {
        demo::play(&base).await?;
        if args.exit_after_demo {
            return Ok(());
        }
    }
    println!("Serving until Ctrl-C.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
