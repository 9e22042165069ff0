//! `instructions`: the ledger's cost counted in CPU instructions by valgrind's callgrind.
//!
//! Throughput on a shared two-core machine moves by more than the ledger costs (the same binary
//! measured 6% and 16% in two runs), so the ratio the issue asks for is also taken where noise
//! cannot reach it: instructions executed by the server per JSON-RPC message, ledger off vs.
//! async. Each variant runs twice, with a short and a long load; the difference between the
//! two divided by the messages between them is the cost per message, free of startup work
//! (migrations, the tokenizer's tables). Under valgrind the server is ~50x slower, so the
//! ledger's flush interval is raised (hidden `--ledger-flush-interval`) to keep its batches
//! as large as at full speed; otherwise per-batch work would be counted many times over.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::scenarios::{Ctx, Instance};
use crate::server::{Engine, StewardOpts};

/// Flush interval under valgrind: ~130 requests/s there, so ~650 rows per batch (the
/// writer stores at most 500 per transaction), as at ~5,000 requests/s with the real 100 ms.
const FLUSH_UNDER_VALGRIND: &str = "5s";

pub async fn instructions(ctx: &mut Ctx, quick: bool, keep: Option<&Path>) -> Result<()> {
    eprintln!(
        "== instructions: the ledger's cost in instructions per message (valgrind callgrind)"
    );
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        bail!(
            "the instructions scenario needs valgrind on PATH (Debian: apt-get install valgrind)"
        );
    }
    let loads = if quick { (300, 900) } else { (1_000, 3_000) };
    for engine in ctx.engines() {
        let off = per_message(ctx, engine, "off", loads, keep).await?;
        let async_ = per_message(ctx, engine, "async", loads, keep).await?;
        let added = 100.0 * (async_ / off - 1.0);
        ctx.report.ratio(
            "instructions",
            &format!(
                "{}: async ledger instructions vs off, % more",
                engine.label()
            ),
            added,
            Some(("≤ 5%", added <= 5.0)),
        );
    }
    Ok(())
}

/// Instructions per message with this durability: the difference between a short and a long
/// load, divided by the messages between them.
async fn per_message(
    ctx: &mut Ctx,
    engine: Engine,
    durability: &'static str,
    (short, long): (usize, usize),
    keep: Option<&Path>,
) -> Result<f64> {
    let (m1, i1) = count(ctx, engine, durability, short, keep).await?;
    let (m2, i2) = count(ctx, engine, durability, long, keep).await?;
    if m2 <= m1 {
        bail!("the long run sent no more messages than the short one");
    }
    let cost = i2.saturating_sub(i1) as f64 / (m2 - m1) as f64;
    ctx.report.fact(
        "instructions",
        &format!(
            "steward {} ledger={durability}: instructions per message",
            engine.label()
        ),
        json!(cost.round()),
        "instr",
    );
    Ok(cost)
}

/// Runs `requests` tool calls on a server under callgrind; returns (messages sent, instructions).
async fn count(
    ctx: &mut Ctx,
    engine: Engine,
    durability: &'static str,
    requests: usize,
    keep: Option<&Path>,
) -> Result<(u64, u64)> {
    let name = format!("instructions-{}-{durability}-{requests}", engine.label());
    let out = ctx.tmp.path().join(format!("{name}.callgrind"));
    let opts = StewardOpts {
        durability,
        wrapper: vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()),
        ],
        extra_args: vec![
            "--ledger-flush-interval".into(),
            FLUSH_UNDER_VALGRIND.into(),
        ],
    };
    eprintln!("   {name}");
    let mut inst = Instance::start_with(ctx, engine, opts, &name).await?;
    let load = inst.load(ctx, requests).await;
    if load.errors > 0 {
        bail!(
            "{name}: {} requests failed: {:?}",
            load.errors,
            load.first_errors
        );
    }
    let messages = inst.messages;
    inst.finish(ctx, "instructions", durability != "off")
        .await?;
    let instructions = total_instructions(&out)?;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::copy(&out, dir.join(format!("{name}.callgrind"))))
            .with_context(|| format!("keeping {name}'s callgrind output in {}", dir.display()))?;
    }
    Ok((messages, instructions))
}

/// The instructions a callgrind output file counts (its `summary:` or `totals:` line).
fn total_instructions(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading callgrind output {}", path.display()))?;
    text.lines()
        .find_map(|line| {
            let rest = line
                .strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no summary line in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(
            &path,
            "version: 1\nevents: Ir\nfn=(1) main\n5 10\nsummary: 123456\n",
        )
        .unwrap();
        assert_eq!(total_instructions(&path).unwrap(), 123_456);
        std::fs::write(&path, "events: Ir\n").unwrap();
        assert!(total_instructions(&path).is_err());
    }
}
