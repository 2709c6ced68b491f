//! One row per figure: what was measured, the value, the target and whether it was met.

use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub value: String,
    /// The target as written in the issue ("<= 30 ms"); empty when the figure is context.
    pub target: String,
    /// `Some(true)` met, `Some(false)` missed, `None` no target.
    pub met: Option<bool>,
}

impl Row {
    /// A figure with no target (context for the others).
    pub fn info(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
    ) -> Row {
        Row {
            scenario,
            figure: figure.into(),
            value: value.into(),
            target: String::new(),
            met: None,
        }
    }

    /// A figure measured against a target.
    pub fn target(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> Row {
        Row {
            scenario,
            figure: figure.into(),
            value: value.into(),
            target: target.into(),
            met: Some(met),
        }
    }
}

/// A markdown table (pasteable into the README).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| scenario | figure | value | target | met |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.figure, r.value, r.target, met
        );
    }
    out
}

/// Thousands separators: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Kilobytes of this process's `field` in /proc/self/status (VmHWM, VmRSS).
pub fn status_kb(field: &str) -> u64 {
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

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// On-CPU time so far of this process's threads, split into those whose name starts with
/// `prefix` and the rest (first field of /proc/self/task/*/schedstat; threads that have
/// exited are not counted).
pub fn thread_cpu(prefix: &str) -> (std::time::Duration, std::time::Duration) {
    let (mut matched, mut rest) = (0u64, 0u64);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Default::default();
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if comm.trim_end().starts_with(prefix) {
            matched += ns;
        } else {
            rest += ns;
        }
    }
    (
        std::time::Duration::from_nanos(matched),
        std::time::Duration::from_nanos(rest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
