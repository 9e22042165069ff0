//! `steward stats`.

use super::table;
use crate::stats::{NameKind, Named};
use crate::stdout::{out, outln};
use crate::store::Store;

pub async fn run(store: &Store, since: String, json: bool) -> anyhow::Result<()> {
    let since = super::parse_since(&since)?;
    let stats = crate::api::compute_stats(store, since).await?;
    if json {
        return super::print_json(&stats);
    }
    let t = &stats.totals;
    outln!(
        "since {}: {} requests ({} in the period before), {} errors ({}%), {} tokens*, ${}*",
        stats.since.format("%Y-%m-%d %H:%M UTC"),
        t.count,
        stats.previous_period_requests,
        t.errors,
        t.error_rate_percent,
        t.tokens,
        t.estimated_cost_usd
    )?;
    for (title, groups) in [("TOOL / METHOD", &stats.tools), ("CLIENT", &stats.clients)] {
        outln!()?;
        out!("{}", render(title, groups))?;
    }
    if stats.percentiles != "exact" {
        outln!("(percentiles from a latency histogram: within ±1/32 of the exact value)")?;
    }
    outln!("{}", super::COST_NOTE)?;
    Ok(())
}

/// A per-tool row's name with what it is: `manage_task (tool)`, `initialize (method)`.
fn labelled(g: &Named) -> String {
    match g.kind {
        Some(NameKind::Tool) => format!("{} (tool)", g.name),
        Some(NameKind::Method) => format!("{} (method)", g.name),
        None => g.name.clone(),
    }
}

fn render(title: &str, groups: &[Named]) -> String {
    table::columns(
        groups,
        40,
        &[
            (title, &labelled),
            ("COUNT", &|g| g.stats.count.to_string()),
            ("ERRORS", &|g| g.stats.errors.to_string()),
            ("RATE", &|g| format!("{}%", g.stats.error_rate_percent)),
            ("P50 MS", &|g| g.stats.p50_ms.to_string()),
            ("P95 MS", &|g| g.stats.p95_ms.to_string()),
            ("P99 MS", &|g| g.stats.p99_ms.to_string()),
            ("MAX MS", &|g| g.stats.max_ms.to_string()),
            ("TOKENS*", &|g| g.stats.tokens.to_string()),
            ("COST* $", &|g| g.stats.estimated_cost_usd.to_string()),
        ],
    )
}
