//! Results: measured runs, single facts and ratios, printed as tables or as JSON.

use serde::Serialize;
use serde_json::Value;

use crate::client::LoadOutcome;
use crate::mappings::Peak;
use crate::server::ProcStats;

/// One load run against one server.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub label: String,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Server RSS after the run (MiB); none for the in-process limit server.
    pub rss_mib: Option<f64>,
    /// Server peak RSS so far (MiB).
    pub hwm_mib: Option<f64>,
    /// The server's resident memory by mapping at the highest of the run's samples (`run`,
    /// `peer` and `sessions` only; see [`crate::mappings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_by_mapping: Option<Peak>,
    /// Server CPU time (user + system) per request during the run.
    pub server_cpu_ms_per_call: Option<f64>,
    /// The part of it spent in the kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_sys_ms_per_call: Option<f64>,
    /// The local PostgreSQL server's CPU time per request during the run (its processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_ms_per_call: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

impl Row {
    pub fn new(
        scenario: &str,
        label: &str,
        out: &LoadOutcome,
        concurrency: usize,
        stats: Option<(ProcStats, ProcStats)>,
        ticks_per_s: f64,
    ) -> Row {
        let per_call = |ticks: u64| ms_per_call(ticks, ticks_per_s, out.sent);
        let (rss, hwm, cpu, sys) = match stats {
            Some((before, after)) => (
                Some(mib(after.rss_kib)),
                Some(mib(after.hwm_kib)),
                Some(per_call(after.cpu_ticks.saturating_sub(before.cpu_ticks))),
                Some(per_call(after.sys_ticks.saturating_sub(before.sys_ticks))),
            ),
            None => (None, None, None, None),
        };
        Row {
            scenario: scenario.to_string(),
            label: label.to_string(),
            requests: out.sent,
            ok: out.ok,
            errors: out.errors,
            concurrency,
            seconds: out.elapsed.as_secs_f64(),
            rps: out.throughput(),
            p50_ms: out.pct_ms(50.0),
            p95_ms: out.pct_ms(95.0),
            p99_ms: out.pct_ms(99.0),
            max_ms: out.max_ms(),
            rss_mib: rss,
            hwm_mib: hwm,
            peak_by_mapping: None,
            server_cpu_ms_per_call: cpu,
            server_sys_ms_per_call: sys,
            database_cpu_ms_per_call: None,
            first_errors: out.first_errors.clone(),
        }
    }
}

/// CPU clock ticks spread over `calls` calls, in milliseconds per call.
pub fn ms_per_call(ticks: u64, ticks_per_s: f64, calls: usize) -> f64 {
    ticks as f64 / ticks_per_s * 1000.0 / calls.max(1) as f64
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A single measured quantity (a startup time, memory per session, a row count, …).
#[derive(Clone, Debug, Serialize)]
pub struct Fact {
    pub scenario: String,
    pub name: String,
    pub value: Value,
    pub unit: String,
}

/// A ratio between two measurements of the same run, with the target when it has one.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub scenario: String,
    pub name: String,
    pub value: f64,
    pub target: Option<String>,
    /// Whether the target is met (none without a target).
    pub met: Option<bool>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: Value,
    pub settings: Value,
    pub rows: Vec<Row>,
    pub facts: Vec<Fact>,
    pub ratios: Vec<Ratio>,
    pub notes: Vec<String>,
    /// Servers whose ledger did not hold one row per message sent: the bench exits non-zero.
    pub incomplete_ledgers: Vec<String>,
}

impl Report {
    pub fn row(&mut self, row: Row) {
        eprintln!(
            "  {:<44} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            row.label, row.rps, row.p50_ms, row.p99_ms, row.errors
        );
        for e in &row.first_errors {
            eprintln!("    error: {e}");
        }
        self.rows.push(row);
    }

    pub fn fact(&mut self, scenario: &str, name: &str, value: impl Into<Value>, unit: &str) {
        let value = value.into();
        eprintln!("  {name}: {value} {unit}");
        self.facts.push(Fact {
            scenario: scenario.to_string(),
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        });
    }

    /// A ratio; `target` is `(text, met)`.
    pub fn ratio(&mut self, scenario: &str, name: &str, value: f64, target: Option<(&str, bool)>) {
        eprintln!(
            "  {name}: {value:.3}{}",
            target.map_or(String::new(), |(t, met)| format!(
                " (target {t}: {})",
                if met { "met" } else { "NOT met" }
            ))
        );
        self.ratios.push(Ratio {
            scenario: scenario.to_string(),
            name: name.to_string(),
            value,
            target: target.map(|(t, _)| t.to_string()),
            met: target.map(|(_, m)| m),
        });
    }

    /// `{name} p50 / {base} p50` and the same for p99.
    pub fn latency_ratios(&mut self, scenario: &str, name: &str, row: &Row, base: &str, of: &Row) {
        let p50 = format!("{name} p50 / {base} p50");
        self.ratio(scenario, &p50, row.p50_ms / of.p50_ms, None);
        let p99 = format!("{name} p99 / {base} p99");
        self.ratio(scenario, &p99, row.p99_ms / of.p99_ms, None);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  note: {text}");
        self.notes.push(text);
    }

    /// A ledger that lost or doubled rows: noted, and the run fails at the end (after the
    /// report is printed) however well the rest went.
    pub fn incomplete_ledger(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.incomplete_ledgers.push(text.clone());
        self.note(text);
    }

    /// Why the run fails if a ledger was incomplete (None: every checked ledger held one row per
    /// message sent).
    pub fn ledger_failure(&self) -> Option<String> {
        (!self.incomplete_ledgers.is_empty()).then(|| {
            format!(
                "{} ledger(s) did not hold one row per message sent: {}",
                self.incomplete_ledgers.len(),
                self.incomplete_ledgers.join("; ")
            )
        })
    }

    pub fn total_errors(&self) -> usize {
        self.rows.iter().map(|r| r.errors).sum()
    }

    /// The readable form.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "machine: {}\nsettings: {}\n\n",
            self.machine, self.settings
        ));
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        s.push_str(&format!(
            "{:<9} {:<44} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8}\n",
            "scenario",
            "run",
            "reqs",
            "errors",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "RSS MiB",
            "HWM MiB",
            "cpu ms/req"
        ));
        for r in &self.rows {
            s.push_str(&format!(
                "{:<9} {:<44} {:>7} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>7} {:>8}\n",
                r.scenario,
                r.label,
                r.requests,
                r.errors,
                r.rps,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.max_ms,
                opt(r.rss_mib, 1),
                opt(r.hwm_mib, 1),
                opt(r.server_cpu_ms_per_call, 3),
            ));
        }
        s.push_str(&self.peaks_table());
        if !self.facts.is_empty() {
            s.push('\n');
            for f in &self.facts {
                s.push_str(&format!(
                    "{:<9} {:<60} {} {}\n",
                    f.scenario, f.name, f.value, f.unit
                ));
            }
        }
        if !self.ratios.is_empty() {
            s.push('\n');
            s.push_str(&format!(
                "{:<9} {:<60} {:>9}  target\n",
                "scenario", "ratio", "value"
            ));
            for r in &self.ratios {
                s.push_str(&format!(
                    "{:<9} {:<60} {:>9.3}  {}\n",
                    r.scenario,
                    r.name,
                    r.value,
                    match (&r.target, r.met) {
                        (Some(t), Some(true)) => format!("{t} (met)"),
                        (Some(t), Some(false)) => format!("{t} (NOT met)"),
                        _ => String::new(),
                    }
                ));
            }
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                s.push_str(&format!("note: {n}\n"));
            }
        }
        s
    }

    /// The runs' memory by mapping, for those that sampled it.
    fn peaks_table(&self) -> String {
        let sampled: Vec<(&Row, &Peak)> = self
            .rows
            .iter()
            .filter_map(|r| Some((r, r.peak_by_mapping.as_ref()?)))
            .collect();
        if sampled.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "\nresident memory at the run's sampled peak, by mapping (MiB; {}):\n",
            crate::mappings::COLUMNS
        );
        s.push_str(&format!(
            "{:<9} {:<44} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
            "scenario", "run", "RSS", "anon", "code", "rodata", "libs", "other", "samples"
        ));
        for (r, p) in sampled {
            s.push_str(&format!(
                "{:<9} {:<44} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7}\n",
                r.scenario,
                r.label,
                p.rss_mib,
                p.anon_mib,
                p.code_mib,
                p.rodata_mib,
                p.libs_mib,
                p.other_mib,
                p.samples
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[test]
    fn an_incomplete_ledger_fails_the_run_and_says_which() {
        let mut report = Report::default();
        assert_eq!(report.ledger_failure(), None);
        report.incomplete_ledger("steward sqlite ledger=async: the ledger holds 9 rows for 10");
        let failure = report
            .ledger_failure()
            .expect("an incomplete ledger fails the run");
        assert!(failure.starts_with("1 ledger(s) did not hold one row per message sent"));
        assert!(failure.contains("holds 9 rows for 10"), "{failure}");
        assert_eq!(report.notes.len(), 1, "it is noted in the report too");
    }
}
