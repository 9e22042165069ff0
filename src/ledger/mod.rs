//! The request ledger: every request that reaches Steward lands in `mcp_requests` exactly once,
//! with a true status, an integer duration, and estimated tokens and cost.
//!
//! The request path takes an [`Observation`] ([`http`] for Streamable HTTP, [`stdio`] for the
//! stdio transport), analyses it when the reply's verdict is remembered ([`analyze`]; else the
//! writer does), journals and enqueues it; the [`writer`] prices and stores rows in batches. When the database refuses writes, rows wait in memory, then in the [`spill`] file,
//! and `/health`, `/metrics`, the logs and the dashboard say so.
//!
//! Like the session layer, the ledger knows nothing about the board's tools.

mod analyst;
pub mod analyze;
mod bpe;
pub mod entry;
pub mod http;
pub mod journal;
mod json_text;
pub mod memo;
mod pieces;
mod pretokenize;
pub mod pricing;
mod rank_hash;
pub mod recovery;
pub mod retention;
pub mod spill;
mod starts;
pub mod stdio;
mod swar;
pub mod tokens;
pub mod writer;

use crate::logs::LastError;
use crate::sync::lock;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use entry::{
    Ending, Entry, Exchange, LedgerRow, Micros, Observation, ReadRequest, Served, Status,
    TraceContext,
};

use crate::store::availability::Availability;
use crate::store::{Commits, Store};
use analyst::Analyst;
use journal::{Journal, Ticket};
use pricing::{PriceTable, PricingPolicy};
pub use recovery::Recovery;
use spill::Spill;
use writer::{Job, Writer};

/// When a request's answer may leave: before its row is stored (`async`, the default), or only
/// after (`sync`: group commit; the promise holds even against `kill -9`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Off,
    Async,
    Sync,
}

impl Durability {
    /// Every mode, by the name flags and the config file use.
    pub const NAMES: [(&str, Durability); 3] = [
        ("off", Durability::Off),
        ("async", Durability::Async),
        ("sync", Durability::Sync),
    ];
}

/// Default bound on the bytes of observations waiting for the writer (64 MiB).
pub const DEFAULT_QUEUE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct LedgerSettings {
    pub durability: Durability,
    /// Rows are stored at least this often.
    pub flush_interval: Duration,
    /// Rows (or observations) waiting for the writer; beyond this the request path spills
    /// directly.
    pub queue_capacity: usize,
    /// The bytes those may hold (a row's text; an observation's request and reply bodies):
    /// past this they spill rather than hold `queue_capacity` × their size in memory.
    pub queue_bytes: u64,
    /// Analysed rows kept in memory while the database refuses; older ones go to the spill file.
    pub max_pending: usize,
    pub spill_path: PathBuf,
    /// Where the async ledger journals rows before queueing them, so a crash loses none (see
    /// [`journal`]); `None` keeps no journal.
    pub journal_dir: Option<PathBuf>,
    /// Rows older than this are folded into hourly rollups and pruned.
    pub retention: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl LedgerSettings {
    pub fn new(durability: Durability, spill_path: PathBuf) -> Self {
        LedgerSettings {
            durability,
            flush_interval: Duration::from_millis(100),
            queue_capacity: 16_384,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            max_pending: 50_000,
            spill_path,
            journal_dir: None,
            retention: Duration::from_secs(30 * 24 * 60 * 60),
            retention_interval: Duration::from_secs(60),
        }
    }
}

/// Counters and state shared by the request path, the writer and `/health`.
#[derive(Debug, Default)]
pub struct Shared {
    pub queued: AtomicU64,
    /// Bytes held by the queued rows and observations (see [`LedgerSettings::queue_bytes`]).
    pub queued_bytes: AtomicU64,
    /// Requests spilled because the queue was full, by rows and by bytes (monotonic).
    pub overflow_rows: AtomicU64,
    pub overflow_bytes: AtomicU64,
    pub pending: AtomicU64,
    pub written: AtomicU64,
    pub failed_writes: AtomicU64,
    pub spilled: AtomicU64,
    pub sanitized: AtomicU64,
    /// Reads of a session's client type that timed out (its rows priced as an unknown client's).
    pub lookup_timeouts: AtomicU64,
    /// Requests that could not be recorded at all (should stay 0; shown loudly if not).
    pub lost: AtomicU64,
    degraded: Mutex<Option<(String, DateTime<Utc>)>>,
    pub retention: Mutex<RetentionState>,
    /// What the start-up replay of the journal found (see [`recovery`]).
    pub recovery: Mutex<Option<Recovery>>,
    pub unclean_shutdowns: AtomicU64,
    pub recovered: AtomicU64,
    pub unrecoverable: AtomicU64,
    /// Stored rows, for live views (`/api/events`).
    stored: OnceLock<broadcast::Sender<Arc<LedgerRow>>>,
}

/// What the last retention pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RetentionState {
    pub last_run: Option<DateTime<Utc>>,
    /// Rows folded into hourly rollups since start.
    pub pruned: u64,
    pub last_error: LastError,
}

impl Shared {
    pub fn counter(&self, field: impl Fn(&Self) -> &AtomicU64) -> u64 {
        field(self).load(Ordering::Relaxed)
    }
    pub fn add(&self, field: impl Fn(&Self) -> &AtomicU64, n: u64) {
        field(self).fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, field: impl Fn(&Self) -> &AtomicU64, n: u64) {
        let counter = field(self);
        let mut current = counter.load(Ordering::Relaxed);
        while let Err(actual) = counter.compare_exchange_weak(
            current,
            current.saturating_sub(n),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            current = actual;
        }
    }
    fn feed(&self) -> &broadcast::Sender<Arc<LedgerRow>> {
        self.stored.get_or_init(|| broadcast::channel(1024).0)
    }

    /// Tells live subscribers about rows just stored. Nobody listening is fine.
    fn announce(&self, rows: Vec<LedgerRow>) {
        let feed = self.feed();
        if feed.receiver_count() == 0 {
            return;
        }
        for row in rows {
            if feed.send(Arc::new(row)).is_err() {
                break;
            }
        }
    }

    fn set_pending(&self, n: usize) {
        self.pending.store(n as u64, Ordering::Relaxed);
    }

    /// Enters (or updates) the degraded state; logs only when the reason changes.
    fn degrade(&self, reason: String) {
        let mut state = lock(&self.degraded);
        let changed = state.as_ref().is_none_or(|(old, _)| *old != reason);
        if changed {
            tracing::error!(%reason, "ledger degraded");
        }
        let since = state.as_ref().map_or_else(Utc::now, |(_, since)| *since);
        *state = Some((reason, since));
    }

    /// Leaves the degraded state if nothing is left waiting.
    fn recovered(&self) {
        let mut state = lock(&self.degraded);
        if state.is_none() || self.counter(|s| &s.spilled) > 0 {
            return;
        }
        *state = None;
        tracing::info!("ledger recovered: the database takes writes again");
    }
}

/// What `/health` and `health_check` show about the ledger.
#[derive(Debug, Serialize)]
pub struct LedgerReport {
    pub status: &'static str,
    pub durability: Durability,
    pub reason: Option<String>,
    pub degraded_since: Option<DateTime<Utc>>,
    /// Requests waiting to be stored (queued, in memory, or in the spill file).
    pub pending: u64,
    pub spilled: u64,
    /// Bytes held by requests waiting in the queue, and its bound.
    pub queue_bytes: u64,
    pub queue_bytes_limit: u64,
    /// Requests spilled because the queue was full: by its row bound, by its byte bound.
    pub overflow_rows: u64,
    pub overflow_bytes: u64,
    pub written: u64,
    pub failed_writes: u64,
    pub sanitized: u64,
    /// Client-type reads that timed out: rows priced as an unknown client's meanwhile.
    pub lookup_timeouts: u64,
    pub lost: u64,
    pub retention: RetentionState,
    /// After an unclean shutdown, for an hour: what the journal's replay recovered and lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip)]
    counters: RecoveryCounters,
}

/// Monotonic since start, for `/metrics`.
#[derive(Debug, Default)]
struct RecoveryCounters {
    unclean_shutdowns: u64,
    recovered: u64,
    unrecoverable: u64,
}

impl LedgerReport {
    /// Sets the ledger gauges (at scrape time).
    pub fn record_metrics(&self) {
        let report = self;
        metrics::gauge!("steward_ledger_pending_rows").set(report.pending as f64);
        metrics::gauge!("steward_ledger_spilled_rows").set(report.spilled as f64);
        metrics::gauge!("steward_ledger_queue_bytes").set(report.queue_bytes as f64);
        metrics::counter!("steward_ledger_queue_overflows_total", "bound" => "rows")
            .absolute(report.overflow_rows);
        metrics::counter!("steward_ledger_queue_overflows_total", "bound" => "bytes")
            .absolute(report.overflow_bytes);
        // Monotonic since start: counters, so rate() works.
        metrics::counter!("steward_ledger_written_rows_total").absolute(report.written);
        metrics::counter!("steward_ledger_failed_writes_total").absolute(report.failed_writes);
        metrics::counter!("steward_ledger_sanitized_rows_total").absolute(report.sanitized);
        metrics::counter!("steward_ledger_lookup_timeouts_total").absolute(report.lookup_timeouts);
        metrics::counter!("steward_ledger_lost_rows_total").absolute(report.lost);
        let recovery = &report.counters;
        metrics::counter!("steward_unclean_shutdowns_total").absolute(recovery.unclean_shutdowns);
        metrics::counter!("steward_ledger_recovered_rows_total").absolute(recovery.recovered);
        metrics::counter!("steward_ledger_unrecoverable_rows_total")
            .absolute(recovery.unrecoverable);
        metrics::gauge!("steward_ledger_degraded").set(if report.status == "ok" {
            0.0
        } else {
            1.0
        });
    }
}

/// The ledger's front door, cheap to clone into every request.
#[derive(Clone)]
pub struct Ledger {
    tx: Option<mpsc::Sender<Job>>,
    /// Wakes the writer before its flush interval is up (see [`Writer::run`]).
    urgent: Arc<Notify>,
    shared: Arc<Shared>,
    spill: Arc<Spill>,
    journal: Option<Arc<Journal>>,
    durability: Durability,
    /// See [`LedgerSettings::queue_bytes`].
    queue_bytes: u64,
}

/// The journal record of an entry.
pub fn record_of(entry: &Entry) -> journal::Record<'_> {
    match entry {
        Entry::Row(row) => journal::Record::Row(row),
        Entry::Observed(observation) => journal::Record::Exchange(Exchange::from(&**observation)),
    }
}

/// Which bound of the queue a request found full.
#[derive(Clone, Copy)]
enum Bound {
    Rows,
    Bytes,
}

/// Why the ledger could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(
        "cannot open the ledger journal: {0}; point --ledger-journal (STEWARD_LEDGER_JOURNAL) at a writable directory"
    )]
    Journal(std::io::Error),
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Starts the writer. `shutdown` makes it store (or spill) everything and stop; await the
    /// returned handle before closing the store.
    ///
    /// While `database` is not ready (PostgreSQL unreachable at start), the writer and the
    /// retention pass wait for it; rows queue, then spill, and the journal keeps what a crashed
    /// run left until it can be stored.
    pub async fn start(
        store: Store,
        database: Arc<Availability>,
        settings: LedgerSettings,
        policy: PricingPolicy,
        shutdown: CancellationToken,
    ) -> Result<(Ledger, JoinHandle<()>), StartError> {
        let shared = Arc::new(Shared::default());
        let spill = Arc::new(Spill::new(settings.spill_path.clone()));
        let waiting = spill.count() as u64;
        if waiting > 0 {
            shared.add(|s| &s.spilled, waiting);
            shared.degrade(format!(
                "{waiting} ledger rows from an earlier run are waiting in {}",
                spill.path().display()
            ));
        }
        let durability = settings.durability;
        let queue_bytes = settings.queue_bytes;
        // Only the async mode answers before its row is stored; sync needs no journal.
        let (journal, leftovers) = match (&settings.journal_dir, durability) {
            (Some(dir), Durability::Async) => {
                let (journal, leftovers) = Journal::open(dir).map_err(StartError::Journal)?;
                (Some(Arc::new(journal)), Some(leftovers))
            }
            _ => (None, None),
        };
        // The analysis thread; it builds the tokenizer on its first batch.
        let analyst = match durability {
            Durability::Off => Analyst::default(),
            _ => Analyst::start(),
        };
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        // Loaded by the writer once the database answers (see `Writer::run`).
        let prices = match database.is_ready() {
            true => PriceTable::load(&store).await?,
            false => PriceTable::new(Vec::new()),
        };
        let pruner = retention::spawn(
            store.clone(),
            database.clone(),
            shared.clone(),
            settings.retention,
            settings.retention_interval,
            shutdown.clone(),
        );
        if database.is_ready() && prices.price(&policy.default_model, Utc::now()).is_none() {
            tracing::warn!(
                model = %policy.default_model,
                "the default pricing model has no price in llm_pricing, so costs stay empty; add one with `steward pricing add`"
            );
        }
        let writer = Writer::new(
            // One connection of its own: the writer runs one transaction at a time. `sync`
            // answers only once its row's commit would survive a power loss.
            store.dedicated(
                1,
                match durability {
                    Durability::Sync => Commits::Durable,
                    _ => Commits::AsShared,
                },
            ),
            shared.clone(),
            settings,
            policy,
            prices,
            spill.clone(),
        )
        .with_journal(journal.clone(), leftovers)
        .with_database(database)
        .with_analyst(analyst);
        let urgent = Arc::new(Notify::new());
        let woken = urgent.clone();
        let handle = tokio::spawn(async move {
            writer.run(rx, woken, shutdown).await;
            if let Err(error) = pruner.await {
                tracing::warn!(%error, "ledger retention ended abnormally");
            }
        });
        let tx = (durability != Durability::Off).then_some(tx);
        Ok((
            Ledger {
                tx,
                urgent,
                shared,
                spill,
                journal,
                durability,
                queue_bytes,
            },
            handle,
        ))
    }

    /// Rows as they are stored (lagging subscribers skip ahead).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LedgerRow>> {
        self.shared.feed().subscribe()
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Records an observation without waiting: analysed now if its reply's verdict is
    /// remembered (see [`analyze::analyze_remembered`]), journaled and queued. Never blocks on
    /// the database: if the queue is full (or the writer has stopped) the row goes straight to
    /// the spill file.
    pub fn record(&self, observation: Observation) {
        self.record_read(observation, None);
    }

    /// [`Ledger::record`] of a request the protocol layer already read (`read`): analysed
    /// from that reading instead of parsing the body again.
    pub fn record_read(&self, observation: Observation, read: Option<&ReadRequest>) {
        if self.tx.is_none() {
            return;
        }
        self.record_entry(self.analysed(observation, read));
    }

    /// Journals and queues an entry the request path made (see [`Ledger::record`]).
    pub fn record_entry(&self, entry: Entry) {
        if self.tx.is_none() {
            return;
        }
        let ticket = self.journal(&record_of(&entry));
        self.record_journaled(entry, ticket);
    }

    /// The observation's row when [`analyze::analyze_remembered`] can work it out now, else
    /// the observation (the writer analyses it). `read`: the request as the protocol layer
    /// read it, if it did.
    pub fn analysed(&self, observation: Observation, read: Option<&ReadRequest>) -> Entry {
        let exchange = Exchange {
            read,
            ..Exchange::from(&observation)
        };
        match analyze::analyze_remembered(&exchange, Some(&observation.response)) {
            Some(row) => Entry::Row(row),
            None => Entry::observed(observation),
        }
    }

    /// Appends a row (or an observation) to the journal (async durability only), for a
    /// transport that must journal a reply before its last bytes leave, then
    /// [`Ledger::record_journaled`] it.
    pub fn journal(&self, record: &journal::Record<'_>) -> Option<Ticket> {
        match self.journal.as_ref()?.append(record) {
            Ok(ticket) => ticket,
            Err(error) => {
                // Counted and shown like any other ledger failure (/health, /metrics, dashboard).
                self.shared.add(|s| &s.failed_writes, 1);
                self.shared.degrade(format!(
                    "cannot write the ledger journal ({error}): queued rows would not survive a crash"
                ));
                None
            }
        }
    }

    /// [`Ledger::record`] for an entry already journaled (`ticket`).
    pub fn record_journaled(&self, entry: Entry, ticket: Option<Ticket>) {
        let Some(tx) = &self.tx else { return };
        let size = entry.held_bytes();
        if !self.reserve(size) {
            return self.overflow(entry, Bound::Bytes, false);
        }
        self.shared.add(|s| &s.queued, 1);
        match tx.try_send(Job {
            entry,
            ack: None,
            ticket,
            size,
        }) {
            // Half full: store now rather than at the end of the flush interval.
            Ok(()) if tx.capacity() < tx.max_capacity() / 2 => self.urgent.notify_one(),
            Ok(()) => {}
            Err(error) => {
                self.unreserve(size);
                match error {
                    mpsc::error::TrySendError::Full(job) => {
                        self.overflow(job.entry, Bound::Rows, false)
                    }
                    mpsc::error::TrySendError::Closed(job) => {
                        self.spill_now(job.entry, false, "the ledger writer has stopped")
                    }
                }
            }
        }
    }

    /// Records an observation and waits until its row is durable (stored, or fsynced to the
    /// spill file while the database is down).
    pub async fn record_durably(&self, observation: Observation) {
        let Some(tx) = &self.tx else { return };
        // Analysed by the writer: the request waits for its row to be stored anyway.
        let entry = Entry::observed(observation);
        let size = entry.held_bytes();
        if !self.reserve(size) {
            return self.overflow(entry, Bound::Bytes, true);
        }
        let (ack, done) = oneshot::channel();
        self.shared.add(|s| &s.queued, 1);
        match tx
            .send(Job {
                entry,
                ack: Some(ack),
                ticket: None,
                size,
            })
            .await
        {
            Ok(()) => {
                self.urgent.notify_one();
                if !matches!(done.await, Ok(Ok(()))) {
                    tracing::warn!("a sync ledger row was not confirmed");
                }
            }
            Err(mpsc::error::SendError(job)) => {
                self.unreserve(size);
                self.spill_now(job.entry, true, "the ledger writer has stopped");
            }
        }
    }

    /// Takes `size` bytes of the queue's byte bound; false (and nothing taken) when that would
    /// pass it. An empty queue takes any one observation, so no request is too big to queue.
    fn reserve(&self, size: u64) -> bool {
        let before = self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before == 0 || before.saturating_add(size) <= self.queue_bytes {
            return true;
        }
        self.shared.sub(|s| &s.queued_bytes, size);
        false
    }

    /// Gives back what [`Ledger::reserve`] took for a job that was not queued after all.
    fn unreserve(&self, size: u64) {
        self.shared.sub(|s| &s.queued, 1);
        self.shared.sub(|s| &s.queued_bytes, size);
    }

    /// The queue is full (`bound` says in what): the row goes to the spill file, counted, and
    /// the writer is woken to empty the queue.
    fn overflow(&self, entry: Entry, bound: Bound, durable: bool) {
        let reason = match bound {
            Bound::Rows => {
                self.shared.add(|s| &s.overflow_rows, 1);
                "the ledger queue is full".to_string()
            }
            Bound::Bytes => {
                self.shared.add(|s| &s.overflow_bytes, 1);
                format!(
                    "the ledger queue holds its limit of {} bytes (--ledger-queue-bytes)",
                    self.queue_bytes
                )
            }
        };
        self.urgent.notify_one();
        self.spill_now(entry, durable, &reason);
    }

    fn spill_now(&self, entry: Entry, durable: bool, why: &str) {
        let row = analyze::row_of(entry);
        match self.spill.append(std::slice::from_ref(&row), durable) {
            Ok(()) => {
                self.shared.add(|s| &s.spilled, 1);
                self.shared.degrade(format!(
                    "{why}; rows are waiting in {}",
                    self.spill.path().display()
                ));
            }
            Err(error) => {
                self.shared.add(|s| &s.lost, 1);
                self.shared.degrade(format!(
                    "a request could not be recorded: {why} and the spill file failed: {error}"
                ));
            }
        }
    }

    pub fn report(&self) -> LedgerReport {
        let s = &self.shared;
        let degraded = lock(&s.degraded).clone();
        let lost = s.counter(|s| &s.lost);
        let retention = lock(&s.retention).clone();
        let recovery = lock(&s.recovery)
            .clone()
            .filter(|r| Utc::now() - r.at < recovery::SHOWN_FOR);
        let failing = degraded.is_some() || lost > 0 || retention.last_error.get().is_some();
        LedgerReport {
            status: if failing { "degraded" } else { "ok" },
            retention,
            durability: self.durability,
            reason: degraded.as_ref().map(|(reason, _)| reason.clone()),
            degraded_since: degraded.map(|(_, since)| since),
            pending: s.counter(|s| &s.queued)
                + s.counter(|s| &s.pending)
                + s.counter(|s| &s.spilled),
            spilled: s.counter(|s| &s.spilled),
            queue_bytes: s.counter(|s| &s.queued_bytes),
            queue_bytes_limit: self.queue_bytes,
            overflow_rows: s.counter(|s| &s.overflow_rows),
            overflow_bytes: s.counter(|s| &s.overflow_bytes),
            written: s.counter(|s| &s.written),
            failed_writes: s.counter(|s| &s.failed_writes),
            sanitized: s.counter(|s| &s.sanitized),
            lookup_timeouts: s.counter(|s| &s.lookup_timeouts),
            lost,
            recovery,
            counters: RecoveryCounters {
                unclean_shutdowns: s.counter(|s| &s.unclean_shutdowns),
                recovered: s.counter(|s| &s.recovered),
                unrecoverable: s.counter(|s| &s.unrecoverable),
            },
        }
    }
}
