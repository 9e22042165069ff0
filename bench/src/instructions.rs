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
//!
//! The calls counted vary as traffic does: each one searches a board of [`BOARD_TASKS`] tasks
//! (seeded straight into the database, shaped like the Python peer's) for another word of the
//! board's, with another page size ([`search_args`]), so no request and no answer is a text the
//! ledger has seen before in the run: calls that repeated one text would have the ledger's memos
//! answer every one and leave its token counter, its largest cost on new text, out of the count.
//! The `off` and `async` servers get the same calls, so the difference is the ledger's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::board_seed;
use crate::db::Pool;
use crate::gateway;
use crate::rmcp_limit;
use crate::scenarios::{Ctx, Instance};
use crate::server::{Engine, StewardOpts};

/// Flush interval under valgrind: ~130 requests/s there, so ~650 rows per batch (the
/// writer stores at most 500 per transaction), as at ~5,000 requests/s with the real 100 ms.
const FLUSH_UNDER_VALGRIND: &str = "5s";

/// Longest wait for the ledger to store the rows of the messages sent so far.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Tasks on the board the counted calls search: the `board` scenario's small board.
pub(crate) const BOARD_TASKS: usize = 200;

/// Page sizes the searches ask for: 1 to this.
const MAX_PER_PAGE: usize = 20;

/// The searches made before one repeats (word, page size): the board's words by the page sizes.
const SEARCHES: usize = board_seed::WORDS.len() * MAX_PER_PAGE;
const _: () = assert!(
    SEARCHES >= 1_000 + 3_000,
    "a full run's warm-up and counted calls repeat no search"
);

/// How to run the scenario.
pub struct Opts<'a> {
    /// 200 measured calls instead of 3,000.
    pub quick: bool,
    /// Where to keep the callgrind files.
    pub keep: Option<&'a Path>,
    /// Simulate the caches too.
    pub cache_sim: bool,
    /// Simulate the branch predictors too.
    pub branch_sim: bool,
    /// Count a gateway hop instead: `tools/call`s of the `gateway` scenario's upstream tool
    /// through Steward (`--upstream`), ledger off and async.
    pub gateway: bool,
}

pub async fn instructions(ctx: &mut Ctx, opts: &Opts<'_>) -> Result<()> {
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
    // Each measured run sends all its calls, however slow valgrind (and its cache simulation)
    // makes the server: the runs are counted, not timed.
    ctx.max_time = ctx.max_time.max(Duration::from_secs(3600));
    if opts.gateway {
        return gateway_hop(ctx, opts).await;
    }
    ctx.tool = "find_tasks".into();
    ctx.varied_args = Some(search_args);
    // The board is seeded straight into the database (`per_message`).
    ctx.tasks = 0;
    let calls = ctx.warmup + counted_calls(opts);
    ctx.report.note(format!(
        "instructions: every call is a find_tasks search of a {BOARD_TASKS}-task board for another \
         of its words with another page size (1-{MAX_PER_PAGE}); {SEARCHES} searches before one \
         repeats, {calls} made per server (--tool, --args and --tasks do not apply)"
    ));
    for engine in ctx.engines() {
        let off = per_message(ctx, engine, "off", opts, &Hop::None).await?;
        let async_ = per_message(ctx, engine, "async", opts, &Hop::None).await?;
        let added = 100.0 * (async_.instructions / off.instructions - 1.0);
        ctx.report.fact(
            "instructions",
            &format!("{}: async ledger minus off per message", engine.label()),
            json!((async_.instructions - off.instructions).round()),
            "instr",
        );
        ctx.report.ratio(
            "instructions",
            &format!(
                "{}: async ledger instructions vs off, % more",
                engine.label()
            ),
            added,
            Some(("≤ 5%", added <= 5.0)),
        );
        report_simulated(ctx, engine, &off, &async_);
    }
    Ok(())
}

/// With `--cache-sim` or `--branch-sim`: the simulated misses per message, off → async, and
/// KCachegrind's cycle estimate of both (see [`PerMessage::cycles`]).
fn report_simulated(ctx: &mut Ctx, engine: Engine, off: &PerMessage, on: &PerMessage) {
    let mut facts = Vec::new();
    if let (Some(off), Some(on)) = (off.misses, on.misses) {
        facts.push(("first-level cache misses", off.first_level, on.first_level));
        facts.push(("last-level cache misses", off.last_level, on.last_level));
    }
    if let (Some(off), Some(on)) = (off.mispredicted, on.mispredicted) {
        facts.push(("branch mispredictions (conditional and indirect)", off, on));
    }
    if facts.is_empty() {
        return;
    }
    for (what, off, on) in facts {
        ctx.report.fact(
            "instructions",
            &format!("{}: {what} per message, off → async", engine.label()),
            json!(format!("{off:.0} → {on:.0}")),
            "",
        );
    }
    ctx.report.ratio(
        "instructions",
        &format!(
            "{}: async ledger estimated cycles vs off, % more ({})",
            engine.label(),
            on.cycles_formula()
        ),
        100.0 * (on.cycles() / off.cycles() - 1.0),
        None,
    );
}

/// `--gateway`: Steward's instructions per proxied `tools/call` (SQLite), ledger off and
/// async. The upstream is the `gateway` scenario's bare rmcp server, in this process, so only
/// Steward's own work is counted (serving the client, the HTTP exchange with the upstream,
/// decoding its answer and encoding it again). As in that scenario, each call's arguments differ
/// and the upstream echoes them, so the ledger counts every call's texts anew.
async fn gateway_hop(ctx: &mut Ctx, opts: &Opts<'_>) -> Result<()> {
    let upstream = rmcp_limit::start(gateway::upstream_answer())?;
    let hop = Hop::Upstream(format!("http://{}/mcp", upstream.addr));
    ctx.tool = gateway::upstream_tool();
    ctx.varied_args = Some(gateway::args);
    let mut counted = Vec::new();
    for durability in ["off", "async"] {
        counted.push(per_message(ctx, Engine::Sqlite, durability, opts, &hop).await);
    }
    upstream.stop();
    let [off, async_] = <[_; 2]>::try_from(counted).map_err(|_| anyhow!("two runs"))?;
    let (off, async_) = (off?, async_?);
    ctx.report.ratio(
        "instructions",
        "gateway hop: async ledger instructions vs off, % more",
        100.0 * (async_.instructions / off.instructions - 1.0),
        None,
    );
    Ok(())
}

/// Whether Steward stands in front of an upstream (its URL) for the counted calls.
enum Hop {
    None,
    Upstream(String),
}

/// Instructions per message with this durability, counted over `requests` tool calls after
/// the warm-up (see the module's comment).
async fn per_message(
    ctx: &mut Ctx,
    engine: Engine,
    durability: &'static str,
    opts: &Opts<'_>,
    hop: &Hop,
) -> Result<PerMessage> {
    let requests = counted_calls(opts);
    let keep = opts.keep;
    let what = match hop {
        Hop::None => "instructions",
        Hop::Upstream(_) => "instructions-gateway",
    };
    let name = format!("{what}-{}-{durability}", engine.label());
    let out = ctx.tmp.path().join(format!("{name}.callgrind"));
    let mut wrapper = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    if opts.cache_sim {
        wrapper.push("--cache-sim=yes".into());
    }
    if opts.branch_sim {
        wrapper.push("--branch-sim=yes".into());
    }
    let mut extra_args = vec![
        "--ledger-flush-interval".into(),
        FLUSH_UNDER_VALGRIND.into(),
    ];
    if let Hop::Upstream(url) = hop {
        extra_args.extend(["--upstream".into(), format!("{}={url}", gateway::UPSTREAM)]);
    }
    let opts = StewardOpts {
        durability,
        wrapper,
        extra_args,
    };
    eprintln!("   {name}");
    let mut inst = match hop {
        Hop::None => Instance::start_seeded(ctx, engine, opts, &name, BOARD_TASKS).await?,
        Hop::Upstream(_) => Instance::start_with(ctx, engine, opts, &name).await?,
    };
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
    if ledger && measured.is_ok() {
        report_sizes(ctx, &inst).await;
    }
    inst.finish(ctx, "instructions", ledger).await?;
    let messages = measured?;
    let totals = Totals::read(&dump)?;
    let instructions = totals.get("Ir")?;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::copy(&dump, dir.join(format!("{name}.callgrind"))))
            .with_context(|| format!("keeping {name}'s callgrind output in {}", dir.display()))?;
    }
    let per = |n: u64| n as f64 / messages.max(1) as f64;
    let cost = per(instructions);
    ctx.report.fact(
        "instructions",
        &format!(
            "steward {} ledger={durability}{}: instructions per message ({messages} messages)",
            engine.label(),
            match hop {
                Hop::None => "",
                Hop::Upstream(_) => ", gateway hop",
            }
        ),
        json!(cost.round()),
        "instr",
    );
    let misses = match totals.has("D1mr") {
        true => Some(Misses {
            first_level: per(totals.get("I1mr")? + totals.get("D1mr")? + totals.get("D1mw")?),
            last_level: per(totals.get("ILmr")? + totals.get("DLmr")? + totals.get("DLmw")?),
        }),
        false => None,
    };
    let mispredicted = match totals.has("Bcm") {
        true => Some(per(totals.get("Bcm")? + totals.get("Bim")?)),
        false => None,
    };
    Ok(PerMessage {
        instructions: cost,
        misses,
        mispredicted,
    })
}

/// What the ledger recorded of the calls' size: what its token counter had to read.
async fn report_sizes(ctx: &mut Ctx, inst: &Instance) {
    let sizes = async {
        let pool = Pool::open(&inst.db).await?;
        let sizes = pool.tool_call_sizes().await;
        pool.close().await;
        sizes
    };
    match sizes.await {
        Ok((bytes, tokens)) => ctx.report.fact(
            "instructions",
            &format!(
                "{}: tools/call mean response bytes / result tokens",
                inst.label
            ),
            json!(format!("{bytes:.0} / {tokens:.0}")),
            "",
        ),
        Err(e) => ctx
            .report
            .note(format!("{}: no call sizes: {e:#}", inst.label)),
    }
}

/// Tool calls counted per server.
fn counted_calls(opts: &Opts<'_>) -> usize {
    if opts.quick { 200 } else { 3_000 }
}

/// The arguments of the call with JSON-RPC id `id`: a search for one of the seeded board's
/// words with a page size from 1 to [`MAX_PER_PAGE`]. Any [`SEARCHES`] consecutive ids get
/// different arguments, and so different answers (an answer names its page size; the words
/// match different tasks).
pub(crate) fn search_args(id: u64) -> String {
    // A prime larger than SEARCHES: stepping by it visits every search once before repeating,
    // in an order that mixes the words and the page sizes.
    const STEP: u64 = 1_000_003;
    const _: () = assert!(SEARCHES < STEP as usize);
    let searches = SEARCHES as u64;
    let k = (id % searches * STEP % searches) as usize;
    let word = board_seed::WORDS[k % board_seed::WORDS.len()];
    let per_page = 1 + k / board_seed::WORDS.len();
    format!(r#"{{"query":"{word}","per_page":{per_page}}}"#)
}

/// What one variant costs per message.
struct PerMessage {
    instructions: f64,
    /// With `--cache-sim` only.
    misses: Option<Misses>,
    /// Branch mispredictions, conditional and indirect; with `--branch-sim` only.
    mispredicted: Option<f64>,
}

impl PerMessage {
    /// KCachegrind's cycle estimate of what was simulated: an instruction costs 1, a
    /// first-level miss or a mispredicted branch 10 more, a last-level miss 100 more. Rough,
    /// but it prices memory traffic and pipeline flushes, which instruction counts leave out.
    fn cycles(&self) -> f64 {
        let misses = self
            .misses
            .map_or(0.0, |m| 10.0 * m.first_level + 100.0 * m.last_level);
        self.instructions + misses + 10.0 * self.mispredicted.unwrap_or(0.0)
    }

    /// [`PerMessage::cycles`]'s formula, as far as it was simulated.
    fn cycles_formula(&self) -> String {
        let mut formula = String::from("instructions");
        if self.misses.is_some() {
            formula.push_str(" + 10 per first-level miss + 100 per last-level miss");
        }
        if self.mispredicted.is_some() {
            formula.push_str(" + 10 per mispredicted branch");
        }
        formula
    }
}

/// Simulated cache misses per message (valgrind's model of this machine's caches).
#[derive(Clone, Copy)]
struct Misses {
    /// First-level caches: instruction reads, data reads and writes.
    first_level: f64,
    /// Last-level cache: instruction reads, data reads and writes (each one a trip to memory).
    last_level: f64,
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

/// The event totals of a callgrind output file: its `events:` line names them, its
/// `summary:` (or `totals:`) line counts them.
struct Totals {
    path: PathBuf,
    counts: Vec<(String, u64)>,
}

impl Totals {
    fn read(path: &Path) -> Result<Totals> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading callgrind output {}", path.display()))?;
        let after = |prefixes: &[&str]| {
            text.lines().find_map(|line| {
                prefixes
                    .iter()
                    .find_map(|p| line.strip_prefix(p))
                    .map(str::split_whitespace)
            })
        };
        let names =
            after(&["events:"]).with_context(|| format!("no events line in {}", path.display()))?;
        let values = after(&["summary:", "totals:"])
            .with_context(|| format!("no summary line in {}", path.display()))?;
        let counts = names
            .zip(values)
            .map(|(name, value)| {
                let value = value
                    .parse()
                    .with_context(|| format!("{name} = {value:?} in {}", path.display()))?;
                Ok((name.to_string(), value))
            })
            .collect::<Result<_>>()?;
        Ok(Totals {
            path: path.to_path_buf(),
            counts,
        })
    }

    fn has(&self, event: &str) -> bool {
        self.counts.iter().any(|(name, _)| name == event)
    }

    fn get(&self, event: &str) -> Result<u64> {
        self.counts
            .iter()
            .find(|(name, _)| name == event)
            .map(|(_, n)| *n)
            .with_context(|| format!("no {event} count in {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cycle estimate prices only what was simulated, and says so.
    #[test]
    fn cycles_count_what_was_simulated() {
        let mut per = PerMessage {
            instructions: 1000.0,
            misses: None,
            mispredicted: None,
        };
        assert_eq!(
            (per.cycles(), per.cycles_formula()),
            (1000.0, "instructions".into())
        );
        per.mispredicted = Some(7.0);
        assert_eq!(per.cycles(), 1070.0);
        assert!(
            per.cycles_formula()
                .ends_with("+ 10 per mispredicted branch")
        );
        per.misses = Some(Misses {
            first_level: 3.0,
            last_level: 2.0,
        });
        assert_eq!(per.cycles(), 1000.0 + 30.0 + 200.0 + 70.0);
        assert!(
            per.cycles_formula()
                .contains("+ 100 per last-level miss + 10 per")
        );
    }

    /// Every search of a run is new, whatever id the run starts at, and is a valid call.
    #[test]
    fn searches_do_not_repeat_within_a_cycle() {
        for first in [1, 301, 123_456] {
            let args: std::collections::HashSet<String> =
                (first..first + SEARCHES as u64).map(search_args).collect();
            assert_eq!(args.len(), SEARCHES);
        }
        for id in 0..2 * SEARCHES as u64 {
            let args: serde_json::Value = serde_json::from_str(&search_args(id)).unwrap();
            let per_page = args["per_page"].as_u64().unwrap();
            assert!((1..=MAX_PER_PAGE as u64).contains(&per_page), "{args}");
            assert!(board_seed::WORDS.contains(&args["query"].as_str().unwrap()));
        }
        assert_eq!(search_args(7), search_args(7 + SEARCHES as u64));
    }

    #[test]
    fn reads_the_event_totals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(
            &path,
            "version: 1\nevents: Ir\nfn=(1) main\n5 10\nsummary: 123456\n",
        )
        .unwrap();
        let totals = Totals::read(&path).unwrap();
        assert_eq!(totals.get("Ir").unwrap(), 123_456);
        assert!(!totals.has("D1mr") && totals.get("D1mr").is_err());
        std::fs::write(
            &path,
            "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nsummary: 100 40 20 3 5 6 1 2 4\n",
        )
        .unwrap();
        let totals = Totals::read(&path).unwrap();
        assert_eq!(totals.get("D1mw").unwrap(), 6);
        assert_eq!(totals.get("DLmw").unwrap(), 4);
        std::fs::write(&path, "events: Ir\n").unwrap();
        assert!(Totals::read(&path).is_err());
    }
}
