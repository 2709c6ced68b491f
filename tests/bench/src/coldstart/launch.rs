//! Starts a function binary the way Lambda does (a fresh process, Lambda's environment,
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API) and measures the time from
//! exec to its first poll for an invocation, then its resident memory while idle.

use super::runtime_api::{Event, RuntimeApi};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One start of a function.
#[derive(Debug, Clone)]
pub struct Start {
    /// Exec to the first `GET …/invocation/next`.
    pub init: Duration,
    /// VmRSS in kB read from /proc once the function polled (idle, waiting for an event).
    pub rss_kb: Option<u64>,
    /// CPU time all its threads used until then (/proc/<pid>/task/*/schedstat): steadier
    /// than the wall time on a busy machine.
    pub cpu: Option<Duration>,
}

/// How the function got to (or failed to get to) its first poll.
pub type Outcome = Result<Start, String>;

/// Runs `bin` with exactly `env` (plus `AWS_LAMBDA_RUNTIME_API`) and waits up to `timeout`
/// for its first poll. The process is killed before this returns.
pub fn start_once(bin: &Path, env: &[(String, String)], timeout: Duration) -> Outcome {
    let api = RuntimeApi::start().map_err(|e| format!("local Runtime API: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.host_port())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = bin.parent() {
        cmd.current_dir(dir);
    }
    let exec_at = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let output = Output::capture(&mut child);
    let result = wait_first_poll(&api, &mut child, exec_at, timeout);
    let result = match result {
        Ok(init) => {
            // Let the runtime settle into its wait before reading its footprint.
            std::thread::sleep(Duration::from_millis(20));
            let rss_kb = proc_status_kb(child.id(), "VmRSS:");
            let cpu = cpu_time(child.id());
            Ok(Start { init, rss_kb, cpu })
        }
        Err(e) => Err(format!("{e}{}", output.tail(&mut child))),
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn wait_first_poll(
    api: &RuntimeApi,
    child: &mut Child,
    exec_at: Instant,
    timeout: Duration,
) -> Result<Duration, String> {
    let mut others = vec![];
    loop {
        match api.next_event(Duration::from_millis(5)) {
            Some(Event::Poll { at }) => return Ok(at.saturating_duration_since(exec_at)),
            Some(Event::InitError {
                at,
                error_type,
                body,
            }) => {
                return Err(format!(
                    "init error after {:.1} ms ({}): {}",
                    ms(at.saturating_duration_since(exec_at)),
                    error_type.as_deref().unwrap_or("no error type"),
                    one_line(&body, 400)
                ))
            }
            Some(Event::Other { method, path }) => others.push(format!("{method} {path}")),
            None => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            // A poll or error report may have landed just before the exit.
            if let Some(Event::Poll { at }) = api.next_event(Duration::from_millis(20)) {
                return Ok(at.saturating_duration_since(exec_at));
            }
            return Err(format!(
                "exited ({status}) after {:.1} ms without polling{}",
                ms(exec_at.elapsed()),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" (it sent: {})", others.join(", "))
                }
            ));
        }
        if exec_at.elapsed() > timeout {
            return Err(format!("no poll within {} s", timeout.as_secs()));
        }
    }
}

/// The child's stdout and stderr, drained on threads (a full pipe would stall it).
struct Output {
    buf: Arc<Mutex<Vec<u8>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Output {
    const KEEP: usize = 16 * 1024;

    fn capture(child: &mut Child) -> Output {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let mut threads = vec![];
        let sources: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for mut src in sources {
            let buf = buf.clone();
            threads.push(std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = src.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let mut b = buf.lock().unwrap();
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > 2 * Self::KEEP {
                        let cut = b.len() - Self::KEEP;
                        b.drain(..cut);
                    }
                }
            }));
        }
        Output { buf, threads }
    }

    /// The last lines the function printed, for an error message (kills it first so the
    /// pipes close).
    fn tail(self, child: &mut Child) -> String {
        let _ = child.kill();
        let _ = child.wait();
        // A grandchild could hold the pipes open: wait briefly, never forever.
        let until = Instant::now() + Duration::from_millis(200);
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let b = self.buf.lock().unwrap();
        let text = String::from_utf8_lossy(&b);
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = text.lines().collect();
        let last = lines[lines.len().saturating_sub(3)..].join(" / ");
        format!("; output: {}", one_line(&last, 600))
    }
}

/// A `kB` field of /proc/<pid>/status (VmRSS, VmHWM).
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The on-CPU time of every thread of `pid` so far (first field of each schedstat, ns).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}
