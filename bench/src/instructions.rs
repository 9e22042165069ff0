//! `instructions`: the ledger's cost counted in CPU instructions by valgrind's callgrind.
//!
//! Throughput on a shared two-core machine moves by more than the ledger costs (the same binary
//! measured 6% and 16% in two runs), so the ratio the issue asks for is also taken where noise
//! cannot reach it: instructions executed by the server per JSON-RPC message, ledger off vs.
//! async. Only the steady state is counted: the server starts and warms up under callgrind,
//! the bench waits until the ledger has stored every warm-up row, zeroes the counters
//! (`callgrind_control --zero`), runs the measured load, waits until those rows are stored
//! too, and dumps the counters (`callgrind_control --dump`). Start-up work (migrations, the
//! tokenizer's tables: ~700 M instructions whose count varies by millions from run to run
//! with the hash seeds of its maps) stays out. Under valgrind the server is ~50x slower, so
//! the ledger's flush interval is raised (hidden `--ledger-flush-interval`) to keep its
//! batches as large as at full speed; otherwise per-batch work would be counted many times
//! over.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::scenarios::{Ctx, Instance};
use crate::server::{Engine, StewardOpts};

/// Flush interval under valgrind: ~130 requests/s there, so ~650 rows per batch (the
/// writer stores at most 500 per transaction), as at ~5,000 requests/s with the real 100 ms.
const FLUSH_UNDER_VALGRIND: &str = "5s";

/// Longest wait for the ledger to store the rows of the messages sent so far.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn instructions(ctx: &mut Ctx, quick: bool, keep: Option<&Path>) -> Result<()> {
    eprintln!(
        "== instructions: the ledger's cost in instructions per message (valgrind callgrind)"
    );
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool).arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            bail!(
                "the instructions scenario needs {tool} on PATH (Debian: apt-get install valgrind)"
            );
        }
    }
    let requests = if quick { 600 } else { 3_000 };
    for engine in ctx.engines() {
        let off = per_message(ctx, engine, "off", requests, keep).await?;
        let async_ = per_message(ctx, engine, "async", requests, keep).await?;
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

/// Instructions per message with this durability, counted over `requests` tool calls after
/// the warm-up (see the module's comment).
async fn per_message(
    ctx: &mut Ctx,
    engine: Engine,
    durability: &'static str,
    requests: usize,
    keep: Option<&Path>,
) -> Result<f64> {
    let name = format!("instructions-{}-{durability}", engine.label());
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
    let pid = inst.proc.pid().to_string();
    let ledger = durability != "off";
    let measured = async {
        settle(&inst, ledger).await?;
        callgrind_control(&["--zero", &pid])?;
        let before = inst.messages;
        let load = inst.load(ctx, requests).await;
        if load.errors > 0 {
            bail!(
                "{name}: {} requests failed: {:?}",
                load.errors,
                load.first_errors
            );
        }
        settle(&inst, ledger).await?;
        callgrind_control(&["--dump=measured", &pid])?;
        Ok(inst.messages - before)
    }
    .await;
    // The dump is the first part file: `<out>.1`.
    let dump = PathBuf::from(format!("{}.1", out.display()));
    inst.finish(ctx, "instructions", ledger).await?;
    let messages = measured?;
    let instructions = total_instructions(&dump)?;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::copy(&dump, dir.join(format!("{name}.callgrind"))))
            .with_context(|| format!("keeping {name}'s callgrind output in {}", dir.display()))?;
    }
    let cost = instructions as f64 / messages.max(1) as f64;
    ctx.report.fact(
        "instructions",
        &format!(
            "steward {} ledger={durability}: instructions per message ({messages} messages)",
            engine.label()
        ),
        json!(cost.round()),
        "instr",
    );
    Ok(cost)
}

/// Waits until the ledger holds a row for every message sent so far (nothing to wait for
/// with the ledger off).
async fn settle(inst: &Instance, ledger: bool) -> Result<()> {
    if !ledger {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let (rows, _) = inst.ledger_rows().await?;
        if rows >= inst.messages as i64 {
            return Ok(());
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!(
                "{}: the ledger stored {rows} of {} rows within {SETTLE_TIMEOUT:?}",
                inst.label,
                inst.messages
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn callgrind_control(args: &[&str]) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control")?;
    if !output.status.success() {
        bail!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
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
