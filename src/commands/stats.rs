//! `steward stats`.

use super::table;
use crate::stats::{NameKind, Named};
use crate::store::Store;

pub async fn run(store: &Store, since: String, json: bool) -> anyhow::Result<()> {
    let since = super::parse_since(&since)?;
    let stats = crate::api::compute_stats(store, since).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let t = &stats.totals;
    println!(
        "since {}: {} requests ({} in the period before), {} errors ({}%), {} tokens*, ${}*",
        stats.since.format("%Y-%m-%d %H:%M UTC"),
        t.count,
        stats.previous_period_requests,
        t.errors,
        t.error_rate_percent,
        t.tokens,
        t.estimated_cost_usd
    );
    for (title, groups) in [("TOOL / METHOD", &stats.tools), ("CLIENT", &stats.clients)] {
        println!();
        print!("{}", render(title, groups));
    }
    if stats.percentiles != "exact" {
        println!("(percentiles from a latency histogram: within ±1/32 of the exact value)");
    }
    println!("{}", super::COST_NOTE);
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
    table::rows(
        &[
            title, "COUNT", "ERRORS", "RATE", "P50 MS", "P95 MS", "P99 MS", "MAX MS", "TOKENS*",
            "COST* $",
        ],
        groups,
        40,
        |g| {
            let s = &g.stats;
            vec![
                labelled(g),
                s.count.to_string(),
                s.errors.to_string(),
                format!("{}%", s.error_rate_percent),
                s.p50_ms.to_string(),
                s.p95_ms.to_string(),
                s.p99_ms.to_string(),
                s.max_ms.to_string(),
                s.tokens.to_string(),
                s.estimated_cost_usd.to_string(),
            ]
        },
    )
}
