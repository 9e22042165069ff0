//! Servers under test as child processes (the release `steward serve`, the Python peer), their
//! databases (a temp SQLite file or a fresh PostgreSQL database), and what `/proc` says about
//! them (RSS, peak RSS, CPU time).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::Connection;

/// How long a server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM may take before the bench kills the process.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The same for a server run by a wrapper (valgrind runs it ~50x slower, slower still on a busy
/// machine: a full `instructions` run's server once took more than a minute to stop).
const WRAPPED_STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// A running server process.
pub struct ServerProc {
    pub name: String,
    child: Child,
    pub addr: SocketAddr,
    /// From spawn to the listening line on stdout.
    pub startup: Duration,
    pub log: PathBuf,
    /// How long [`ServerProc::stop`] waits before it kills the process.
    stop_timeout: Duration,
}

impl ServerProc {
    /// Spawns `cmd` (stdout piped, stderr to `log`) and waits for a line containing
    /// `marker` followed by `http://ADDR`.
    pub fn spawn(name: &str, mut cmd: Command, marker: &str, log: &Path) -> Result<ServerProc> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = mpsc::channel::<String>();
        let wanted = marker.to_string();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.contains(&wanted) {
                    sent = tx.send(line).is_ok();
                }
                // keep draining so the child never blocks on a full pipe
            }
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                kill_quietly(&mut child);
                bail!(
                    "{name} did not print '{marker}' (exit status {status:?}); its log {}:\n{}",
                    log.display(),
                    tail(log, 20)
                );
            }
        };
        let startup = t0.elapsed();
        let addr = line
            .split("http://")
            .nth(1)
            .map(|rest| rest.trim().trim_end_matches('/'))
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .ok_or_else(|| anyhow!("cannot read an address in {line:?}"))?;
        Ok(ServerProc {
            name: name.to_string(),
            child,
            addr,
            startup,
            log: log.to_path_buf(),
            stop_timeout: STOP_TIMEOUT,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stats(&self) -> ProcStats {
        ProcStats::read(self.pid())
    }

    /// SIGTERM, then wait (kill after [`STOP_TIMEOUT`], or [`WRAPPED_STOP_TIMEOUT`] for a
    /// server run by a wrapper). Returns how long the stop took.
    pub fn stop(mut self) -> Result<Duration> {
        let t0 = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!(
                        "warning: {} exited with {status} after SIGTERM; log tail:\n{}",
                        self.name,
                        tail(&self.log, 10)
                    );
                }
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > self.stop_timeout {
                // What a hung stop was waiting on, read before the kill: the run's directory
                // (and the log in it) is removed when the bench fails.
                let threads = blocked_threads(self.pid());
                let stacks = stacks(self.pid());
                kill_quietly(&mut self.child);
                bail!(
                    "{} did not stop within {:?} of SIGTERM; its threads (name, state, kernel wait):\n{threads}\n{stacks}\nlog tail:\n{}",
                    self.name,
                    self.stop_timeout,
                    tail(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Only reached when `stop` was not called (an error path): never leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_quietly(&mut self.child);
        }
    }
}

fn kill_quietly(child: &mut Child) {
    if let Err(error) = child.kill() {
        eprintln!("warning: could not kill pid {}: {error}", child.id());
    }
    if let Err(error) = child.wait() {
        eprintln!("warning: could not reap pid {}: {error}", child.id());
    }
}

/// Warnings and errors a server logged: (count, the first few distinct messages).
pub fn log_problems(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut count = 0;
    let mut distinct: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("WARNING") {
            count += 1;
            // drop the timestamp so repeated messages collapse
            let msg = line
                .split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .chars()
                .take(160)
                .collect::<String>();
            if distinct.len() < 3 && !distinct.contains(&msg) {
                distinct.push(msg);
            }
        }
    }
    (count, distinct)
}

/// One line per thread of `pid`: its name, its state and the kernel function it waits in
/// (`/proc/PID/task/TID/{comm,stat,wchan}`), for a server that does not stop.
fn blocked_threads(pid: u32) -> String {
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "  (no /proc entry)".into();
    };
    let mut lines: Vec<String> = tasks
        .flatten()
        .map(|task| {
            let dir = task.path();
            let stat = read(dir.join("stat"));
            // The state is the field after the parenthesised name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            format!(
                "  {} {} {}",
                read(dir.join("comm")).trim(),
                state.unwrap_or("?"),
                read(dir.join("wchan")).trim()
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Every thread's stack, as `gdb` prints them (where a thread spins or waits, in the
/// program's own functions); a line saying why not where `gdb` is missing or does not finish
/// within 30 s.
fn stacks(pid: u32) -> String {
    let pid = pid.to_string();
    let spawned = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "thread apply all bt 30", "-p", &pid])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut gdb = match spawned {
        Ok(gdb) => gdb,
        Err(error) => return format!("(no stacks: gdb: {error})"),
    };
    // Read as it comes: a full pipe would stop gdb.
    let out = gdb.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = out
            && let Err(error) = std::io::Read::read_to_string(&mut out, &mut text)
        {
            text.push_str(&format!("\n(reading gdb's output failed: {error})"));
        }
        text
    });
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        match gdb.try_wait() {
            Ok(Some(_)) => {
                let text = reader.join().unwrap_or_default();
                return format!("stacks (gdb):\n{text}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(error) => return format!("(no stacks: {error})"),
        }
    }
    kill_quietly(&mut gdb);
    "(no stacks: gdb did not finish within 30 s)".into()
}

/// The last `n` lines of a file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What `/proc/PID` says about a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// stime alone (time in the kernel on the process's behalf: sockets, futexes, files).
    pub sys_ticks: u64,
}

impl ProcStats {
    pub fn read(pid: u32) -> ProcStats {
        let mut s = ProcStats::default();
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                let kib = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmRSS:") {
                    s.rss_kib = kib();
                } else if line.starts_with("VmHWM:") {
                    s.hwm_kib = kib();
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                s.cpu_ticks = num(11) + num(12);
                s.sys_ticks = num(12);
            }
        }
        s
    }
}

/// CPU time (utime + stime, clock ticks) of the local PostgreSQL server's work for `database`:
/// the backends connected to it, and the server's shared processes (postmaster, WAL writer,
/// checkpointer, background writer), which work for every database. Backends of other
/// databases (another bench's, a test suite's) are left out: on a shared machine they made a
/// run's "PostgreSQL CPU" count their work too. The ledger's rows cost the database work that
/// Steward's own CPU time does not show, on the same cores.
pub fn postgres_cpu_ticks(database: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|title| works_for(&String::from_utf8_lossy(&title), database))
        })
        .map(|pid| ProcStats::read(pid).cpu_ticks)
        .sum()
}

/// Whether a `postgres` process whose title (`/proc/PID/cmdline`) is `title` works for
/// `database`: a backend's title is `postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE`
/// (`[local]` for a Unix socket); any other title is one of the server's shared processes.
fn works_for(title: &str, database: &str) -> bool {
    let Some(rest) = title.trim_end_matches('\0').strip_prefix("postgres: ") else {
        return true; // the postmaster: `/usr/lib/postgresql/N/bin/postgres -D …`
    };
    let mut words = rest.split_whitespace().peekable();
    // Debian names the cluster first (`15/main:`).
    if words.peek().is_some_and(|w| w.ends_with(':')) {
        words.next();
    }
    let words: Vec<&str> = words.collect();
    match words.as_slice() {
        [_user, db, host, ..] if host.contains('(') || host.starts_with("[local]") => {
            *db == database
        }
        _ => true,
    }
}

/// Clock ticks per second for `/proc/PID/stat` (asks `getconf`; 100 otherwise).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// Engine a Steward instance runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// A database made for one server (and dropped afterwards for PostgreSQL).
pub struct BenchDb {
    pub engine: Engine,
    pub url: String,
    pg_admin: Option<(String, String)>,
}

impl BenchDb {
    /// A new SQLite file under `dir`.
    pub fn sqlite(dir: &Path, name: &str) -> BenchDb {
        BenchDb {
            engine: Engine::Sqlite,
            url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
            pg_admin: None,
        }
    }

    /// A new, uniquely named database on the PostgreSQL server of `admin_url`.
    pub async fn postgres(admin_url: &str, name: &str) -> Result<BenchDb> {
        let db = format!(
            "steward_bench_{}_{}_{}",
            std::process::id(),
            name,
            chrono::Utc::now().timestamp_millis()
        );
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE \"{db}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {db}"))?;
        conn.close().await?;
        Ok(BenchDb {
            engine: Engine::Postgres,
            url: replace_db_name(admin_url, &db)?,
            pg_admin: Some((admin_url.to_string(), db)),
        })
    }

    /// The PostgreSQL database's name (None on SQLite).
    pub fn postgres_name(&self) -> Option<&str> {
        self.pg_admin.as_ref().map(|(_, db)| db.as_str())
    }

    /// Drops the PostgreSQL database, or deletes the SQLite file with its WAL, shared memory
    /// and ledger journal (a scenario that starts many servers would otherwise fill its temp
    /// dir, and the page cache, with the dead ones' files).
    pub async fn drop_db(self) -> Result<()> {
        if let Some(file) = self.url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                remove_if_there(Path::new(&format!("{file}{suffix}")))?;
            }
            let journal = PathBuf::from(format!("{file}.ledger-journal"));
            if journal.exists() {
                std::fs::remove_dir_all(&journal)
                    .with_context(|| format!("removing {}", journal.display()))?;
            }
        }
        if let Some((admin, db)) = self.pg_admin {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("DROP DATABASE {db}"))?;
            conn.close().await?;
        }
        Ok(())
    }
}

fn remove_if_there(file: &Path) -> Result<()> {
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", file.display()))
        }
        _ => Ok(()),
    }
}

/// `postgres://u@h:p/old?x=y` → `postgres://u@h:p/NEW?x=y`.
fn replace_db_name(url: &str, db: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .ok_or_else(|| anyhow!("not a URL: {url}"))?
        + 3;
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Options for one `steward serve`.
#[derive(Clone, Debug, Default)]
pub struct StewardOpts {
    pub durability: &'static str,
    /// A command that runs the server (e.g. valgrind and its options), or none.
    pub wrapper: Vec<String>,
    /// More arguments for `steward serve`.
    pub extra_args: Vec<String>,
}

/// Starts the release `steward serve` on 127.0.0.1:0, in `dir` (so no stray steward.toml is
/// read), with `STEWARD_*` variables from the bench's environment removed.
pub fn start_steward(
    bin: &Path,
    db: &BenchDb,
    opts: &StewardOpts,
    dir: &Path,
    name: &str,
) -> Result<ServerProc> {
    let mut cmd = match opts.wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(["--database", &db.url])
        .args(["--ledger-durability", opts.durability])
        // The bench is one anonymous client sending thousands of requests a second: the
        // per-principal rate limit (100/s by default) and session cap would measure themselves.
        .args(["--rate-limit", "0", "--max-sessions-per-principal", "0"])
        .args(&opts.extra_args)
        .current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STEWARD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG");
    let log = dir.join(format!("{name}.log"));
    let mut proc = ServerProc::spawn(name, cmd, "steward listening on", &log)?;
    if !opts.wrapper.is_empty() {
        proc.stop_timeout = WRAPPED_STOP_TIMEOUT;
    }
    Ok(proc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_process_works_for_its_database_or_for_all() {
        let backend = "postgres: 15/main: postgres steward_bench_1_a_2 127.0.0.1(40512) idle";
        assert!(works_for(backend, "steward_bench_1_a_2"));
        assert!(!works_for(backend, "steward_bench_1_b_2"));
        assert!(!works_for("postgres: postgres other [local] idle", "mine"));
        assert!(works_for("postgres: postgres mine [local] SELECT", "mine"));
        for shared in [
            "postgres: 15/main: checkpointer",
            "postgres: 15/main: background writer",
            "postgres: walwriter",
            "postgres: 15/main: logical replication launcher",
            "/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main\0",
        ] {
            assert!(works_for(shared, "mine"), "{shared}");
        }
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_db_name("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_db_name("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            replace_db_name("postgres://h:1", "x").unwrap(),
            "postgres://h:1/x"
        );
    }

    /// A hung server's report names each thread with a state: this process's own threads,
    /// one of them a named thread parked waiting (`S`, sleeping).
    #[test]
    fn a_process_s_threads_are_listed_with_their_state() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::Builder::new()
            .name("parked-here".into())
            .spawn(move || rx.recv())
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let listed = blocked_threads(std::process::id());
        drop(tx);
        parked.join().unwrap().unwrap_err();
        let line = listed
            .lines()
            .find(|l| l.trim_start().starts_with("parked-here "))
            .unwrap_or_else(|| panic!("no parked-here thread in:\n{listed}"));
        assert_eq!(line.split_whitespace().nth(1), Some("S"), "{line}");
        assert_eq!(blocked_threads(u32::MAX), "  (no /proc entry)");
    }
}
