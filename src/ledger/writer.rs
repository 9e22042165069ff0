//! The ledger writer: the request path hands over a row (or an [`Observation`] it could not
//! analyse cheaply) and moves on; this task analyses what is left, prices and stores rows in
//! batches. When the database refuses, rows wait in memory
//! and then in the spill file, retried with backoff, and every failure is counted and shown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::analyst::Analyst;
use super::entry::{Entry, LedgerRow};
use super::journal::{Journal, Leftovers, Ticket};
use super::pricing::{Period, PriceTable, PricingPolicy, estimate_cost};
use super::spill::{Spill, SpillError};
use super::{Durability, LedgerSettings, Shared, analyze::row_of};
use crate::store::availability::Availability;
use crate::store::requests::MAX_BATCH;
use crate::store::{Money, Store};

/// The row of an entry, boxed (as the request path's rows already are).
fn boxed_row(entry: Entry) -> Box<LedgerRow> {
    match entry {
        Entry::Row(row) => row,
        observed => Box::new(row_of(observed)),
    }
}

/// Confirms (or refuses) that a row is durable, for `--ledger-durability sync`.
pub type Ack = oneshot::Sender<Result<(), String>>;

pub struct Job {
    pub entry: Entry,
    pub ack: Option<Ack>,
    /// The entry's journal record, released once its row is stored or spilled.
    pub ticket: Option<Ticket>,
    /// What the entry counts against the queue's byte bound ([`Entry::held_bytes`], worked
    /// out once, when it was queued).
    pub size: u64,
}

/// Who waits on a row besides the database: a request (sync durability) and the journal
/// record the row came from (dropped, and so released, with this value).
#[derive(Default)]
pub struct Waiter {
    ack: Option<Ack>,
    _ticket: Option<Ticket>,
}

impl Waiter {
    fn is_request(&self) -> bool {
        self.ack.is_some()
    }
}

/// Longest wait between retries while the database refuses writes.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Jobs the writer's receive buffer keeps room for between batches (about two flushes' worth
/// at full load).
const KEPT_JOBS: usize = 2 * MAX_BATCH;
/// How often prices are reloaded from `llm_pricing`.
const PRICE_REFRESH: Duration = Duration::from_secs(60);
/// Longest wait for one INSERT before it counts as a failure.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a read rows are priced with (a session's client type, the price table).
/// They take milliseconds; one waiting on a lock another database session holds would
/// otherwise stop the whole ledger, and the stop with it, for as long as the lock is held.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// After a read timed out, how long the rows of sessions not seen yet are priced as an
/// unknown client's without asking again: a locked table costs one timeout, not one a session.
const LOOKUP_PAUSE: Duration = Duration::from_secs(10);
/// How long a shutdown keeps retrying before it spills what is left.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(5);
/// How long an INSERT in flight when the stop comes may still take (one to a database that
/// answers takes milliseconds; see [`Writer::insert_unless_stopped`]).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// When [`Writer::store_pending`] runs: while serving, until `stop` fires; or at the stop,
/// which retries for [`SHUTDOWN_RETRY`] and then spills what is left.
#[derive(Clone, Copy)]
enum Phase<'a> {
    Serving { stop: &'a CancellationToken },
    Stopping,
}

/// What a cost estimate is worked out from: input and output rate, argument and result tokens.
type CostInputs = (Money, Money, u32, u32);

/// The client type a row was priced for and the price period it was priced in.
struct LastPrice {
    client_type: String,
    period: Period,
}

pub struct Writer {
    pub store: Store,
    pub shared: Arc<Shared>,
    pub settings: LedgerSettings,
    policy: PricingPolicy,
    prices: PriceTable,
    pub spill: Arc<Spill>,
    /// Rows waiting to be stored, boxed as the request path made them: a row moved by value
    /// (into this queue, out of it, back) was ~450 bytes copied each time.
    pending: VecDeque<(Box<LedgerRow>, Waiter)>,
    journal: Option<Arc<Journal>>,
    /// What crashed processes left in the journal, replayed before anything else.
    leftovers: Option<Leftovers>,
    /// Where what the request path left unanalysed is analysed.
    analyst: Analyst,
    /// Whether the database has answered since start; the writer waits for it.
    database: Arc<Availability>,
    /// How many rows at the front of `pending` were offered to the database before (a failed
    /// or timed-out INSERT may have committed): those are stored with duplicates skipped.
    maybe_stored: usize,
    /// The last write failed for want of a connection (not refused by the database).
    unreachable: bool,
    client_types: HashMap<String, String, foldhash::fast::RandomState>,
    /// The last cost worked out and what it was worked out from (the rates and the token
    /// counts): consecutive rows are mostly the same call with the same counts, and exact
    /// decimal arithmetic is not free.
    last_cost: Option<(CostInputs, Money)>,
    /// How the last row was priced (see [`Writer::period_of`]); cleared when prices reload.
    last_price: Option<LastPrice>,
    backoff: Duration,
    next_try: Instant,
    prices_loaded: Instant,
    /// Until when no client type is looked up, after a look-up timed out (see [`LOOKUP_PAUSE`]).
    lookups_paused_until: Option<Instant>,
}

impl Writer {
    pub fn new(
        store: Store,
        shared: Arc<Shared>,
        settings: LedgerSettings,
        policy: PricingPolicy,
        prices: PriceTable,
        spill: Arc<Spill>,
    ) -> Self {
        Writer {
            store,
            shared,
            settings,
            policy,
            prices,
            spill,
            pending: VecDeque::new(),
            journal: None,
            leftovers: None,
            analyst: Analyst::default(),
            database: Availability::available(),
            maybe_stored: 0,
            unreachable: false,
            client_types: HashMap::default(),
            last_cost: None,
            last_price: None,
            backoff: MIN_BACKOFF,
            next_try: Instant::now(),
            prices_loaded: Instant::now(),
            lookups_paused_until: None,
        }
    }

    pub fn with_journal(
        mut self,
        journal: Option<Arc<Journal>>,
        leftovers: Option<Leftovers>,
    ) -> Self {
        self.journal = journal;
        self.leftovers = leftovers;
        self
    }

    pub fn with_database(mut self, database: Arc<Availability>) -> Self {
        self.database = database;
        self
    }

    pub fn with_analyst(mut self, analyst: Analyst) -> Self {
        self.analyst = analyst;
        self
    }

    /// Waits until the database answers (at once, normally), then loads the prices it could
    /// not load at start. False if `shutdown` came first: nothing was replayed, and the
    /// journal's leftovers stay for the next start.
    async fn wait_for_database(&mut self, shutdown: &CancellationToken) -> bool {
        if self.database.is_ready() {
            return true;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return false,
            _ = self.database.wait() => {}
        }
        self.load_prices().await;
        true
    }

    /// Runs until `shutdown`, then drains the queue, stores or spills every row, and returns.
    ///
    /// The writer is woken by the first observation of a batch only: it then sleeps out the
    /// flush interval while the request path keeps enqueueing, so an ordinary request costs a
    /// queue push, not a task wake-up (a cross-thread futex on a busy server). `urgent` cuts the
    /// wait short for a request waiting on its row (sync durability) or a queue filling up.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Job>,
        urgent: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        if self.wait_for_database(&shutdown).await {
            if let Some(leftovers) = self.leftovers.take() {
                self.recover(leftovers).await;
            }
            self.replay_spill().await;
        }
        let mut buffer: Vec<Job> = Vec::new();
        loop {
            let waiting = !self.pending.is_empty() || self.shared.counter(|s| &s.spilled) > 0;
            let retry_at = waiting.then_some(self.next_try);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => buffer.push(job),
                    None => break,
                },
                _ = sleep_until(retry_at) => {}
            }
            if !buffer.is_empty() && buffer.iter().all(|j| j.ack.is_none()) {
                let flush_at = Instant::now() + self.settings.flush_interval;
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = urgent.notified() => {}
                    _ = tokio::time::sleep_until(flush_at) => {}
                }
            }
            // Everything queued, taken at once: one at a time (`try_recv`), each job gave its
            // permit back to the channel's semaphore on its own.
            let queued = rx.len();
            if queued > 0 {
                rx.recv_many(&mut buffer, queued).await;
            }
            // The buffer is kept: grown from nothing for every batch, it copied each job taken
            // so far at every doubling (~600 instructions per row). A burst's capacity is given
            // back.
            self.take_in(&mut buffer).await;
            buffer.shrink_to(KEPT_JOBS);
            self.store_pending(Phase::Serving { stop: &shutdown }).await;
            // Rows in the spill file are retried on the backoff too, traffic or not.
            if self.pending.is_empty()
                && self.shared.counter(|s| &s.spilled) > 0
                && Instant::now() >= self.next_try
            {
                self.replay_spill().await;
            }
        }
        // Shutdown: everything queued is stored (or, failing that, spilled) before returning.
        rx.close();
        while let Ok(job) = rx.try_recv() {
            buffer.push(job);
        }
        // A database that refuses now would only make the stop wait out the retry window and
        // the write timeout: what is journaled waits for the next start instead.
        let left = match self.database_down() {
            true => self.leave_for_next_start(buffer),
            false => {
                self.take_in(&mut buffer).await;
                self.store_pending(Phase::Stopping).await;
                // Unreachable on the way: the same, for what is still pending.
                match self.unreachable {
                    true => self.leave_for_next_start(Vec::new()),
                    false => 0,
                }
            }
        };
        tracing::info!(
            written = self.shared.counter(|s| &s.written),
            "ledger flushed"
        );
        if let Some(journal) = &self.journal {
            let crashed_before = self.leftovers.as_ref().is_some_and(|l| l.unclean);
            if left > 0 || self.leftovers.is_some() {
                // The next start replays the journal (and what crashed runs left, still
                // unreplayed); the stop itself was clean unless a crash is still unreported.
                journal.close_keeping(!crashed_before);
            } else if self.pending.is_empty() {
                // Everything is stored or spilled: the journal has nothing left to protect.
                // Rows still in memory (the spill file failed too) keep their records for the
                // next start.
                journal.close_clean();
            }
        }
        // The writer's own connection (see `Store::dedicated`), closed cleanly.
        self.store.close().await;
    }

    /// Whether the database cannot be reached: not since start, or not at the last write
    /// (still backing off). A database that answers but refuses writes gets the shutdown's
    /// retry window, then the spill file.
    fn database_down(&self) -> bool {
        !self.database.is_ready() || (self.unreachable && self.next_try > Instant::now())
    }

    /// At shutdown with the database down: rows whose records are in the journal (queued
    /// `jobs` and pending rows) stay there for the next start, their records never released;
    /// the others go to the spill file, unpriced (pricing reads the database). Returns how
    /// many wait in the journal.
    fn leave_for_next_start(&mut self, jobs: Vec<Job>) -> usize {
        let count = jobs.len() as u64;
        let bytes = jobs.iter().map(|j| j.size).sum();
        self.shared.sub(|s| &s.queued_bytes, bytes);
        self.shared.sub(|s| &s.queued, count);
        let (journaled, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, waiter)| waiter._ticket.is_some() && !waiter.is_request());
        self.pending = rest;
        self.maybe_stored = self.maybe_stored.min(self.pending.len());
        let mut left = journaled.len();
        // Released, a ticket would let its segment be deleted with the row unstored.
        journaled
            .into_iter()
            .for_each(|(_, waiter)| std::mem::forget(waiter._ticket));
        for job in jobs {
            match (job.ticket, job.ack) {
                (Some(ticket), None) => {
                    std::mem::forget(ticket);
                    left += 1;
                }
                (ticket, ack) => {
                    let row = boxed_row(job.entry);
                    let waiter = Waiter {
                        ack,
                        _ticket: ticket,
                    };
                    self.pending.push_back((row, waiter));
                }
            }
        }
        self.spill_oldest(self.pending.len());
        self.shared.set_pending(self.pending.len());
        if left > 0 {
            let journal = self
                .journal
                .as_ref()
                .map(|j| j.slot().display().to_string());
            tracing::warn!(
                rows = left,
                journal = journal.unwrap_or_default(),
                "the database does not answer at shutdown (unreachable, or its connection still busy): these ledger rows wait in the journal, and the next start stores them"
            );
        }
        left
    }

    /// Analyses what the request path left unanalysed and prices a batch (tokenising is CPU
    /// work: on the analysis thread, see [`Analyst`]).
    async fn take_in(&mut self, jobs: &mut Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let count = jobs.len() as u64;
        // Out of the queue: their bytes no longer count against its bound (observations are
        // dropped once analysed, below).
        let bytes = jobs.iter().map(|j| j.size).sum();
        self.shared.sub(|s| &s.queued_bytes, bytes);
        let analysed = jobs.iter().all(|j| matches!(j.entry, Entry::Row(_)));
        let first = self.pending.len();
        if analysed {
            // Each row goes from its job to the pending queue, priced on the way: collected
            // first, every row was copied once more.
            self.refresh_prices().await;
            for job in jobs.drain(..) {
                let waiter = Waiter {
                    ack: job.ack,
                    _ticket: job.ticket,
                };
                self.queue_priced(boxed_row(job.entry), waiter).await;
            }
        } else {
            let (entries, acks): (Vec<_>, Vec<_>) = jobs
                .drain(..)
                .map(|j| {
                    let waiter = Waiter {
                        ack: j.ack,
                        _ticket: j.ticket,
                    };
                    (j.entry, waiter)
                })
                .unzip();
            let Some(rows) = self.analyst.rows_of(entries).await else {
                // A panic in analysis must not lose the requests: this cannot recover the
                // observations, so it is counted loudly.
                tracing::error!("ledger analysis failed");
                self.shared.add(|s| &s.lost, count);
                return;
            };
            self.refresh_prices().await;
            for (row, ack) in rows.into_iter().zip(acks) {
                self.queue_priced(Box::new(row), ack).await;
            }
        }
        crate::metrics::record_requests(self.pending.range(first..).map(|(row, _)| &**row));
        self.shared.sub(|s| &s.queued, count);
        self.shared.set_pending(self.pending.len());
    }

    /// Prices `row` and puts it at the end of the pending queue.
    async fn queue_priced(&mut self, mut row: Box<LedgerRow>, waiter: Waiter) {
        self.price(&mut row).await;
        if row.sanitized {
            self.shared.add(|s| &s.sanitized, 1);
        }
        self.pending.push_back((row, waiter));
    }

    /// Picks up prices added with `steward pricing add` while running.
    pub(super) async fn refresh_prices(&mut self) {
        if self.prices_loaded.elapsed() < PRICE_REFRESH {
            return;
        }
        self.load_prices().await;
    }

    async fn load_prices(&mut self) {
        self.prices_loaded = Instant::now();
        match tokio::time::timeout(LOOKUP_TIMEOUT, PriceTable::load(&self.store)).await {
            Ok(Ok(prices)) => {
                self.prices = prices;
                self.last_price = None;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not reload model prices; keeping the previous ones")
            }
            Err(_) => tracing::warn!(
                "could not reload model prices within {}s (is llm_pricing locked?); keeping the previous ones",
                LOOKUP_TIMEOUT.as_secs()
            ),
        }
    }

    pub(super) async fn price(&mut self, row: &mut LedgerRow) {
        let Some(period) = self.period_of(row).await else {
            return;
        };
        let Some(price) = self.prices.at(period) else {
            return;
        };
        let args = row.args_tokens.unwrap_or(0).max(0) as u32;
        let result = row.result_tokens.unwrap_or(0).max(0) as u32;
        let inputs = (price.input_per_1k, price.output_per_1k, args, result);
        let cost = match self.last_cost {
            Some((last, cost)) if last == inputs => cost,
            _ => estimate_cost(price, args, result),
        };
        self.last_cost = Some((inputs, cost));
        row.estimated_cost_usd = Some(cost);
        // The price row is the model's: its name is the model the row is priced as.
        row.pricing_model = Some(price.model.clone());
    }

    /// The price in force for `row`: its session's client type's model's, at the row's time.
    /// Kept for the next row while it comes from a session of the same client type within
    /// the same price period (a batch's rows mostly do), so most rows need no search of the
    /// table.
    async fn period_of(&mut self, row: &LedgerRow) -> Option<Period> {
        let session = row.session_id.as_deref();
        let known = match session.map(|id| (id, self.client_types.get(id))) {
            Some((_, Some(client_type))) => Some(client_type),
            Some((id, None)) => {
                self.learn_client_type(id).await;
                self.client_types.get(id)
            }
            None => None,
        };
        let client_type = known.map_or("unknown", String::as_str);
        if let Some(last) = &self.last_price
            && last.client_type == client_type
            && last.period.holds(row.timestamp)
        {
            return Some(last.period);
        }
        let model = self.policy.model_for(client_type);
        let period = self.prices.period(model, row.timestamp)?;
        self.last_price = Some(LastPrice {
            client_type: client_type.to_string(),
            period,
        });
        Some(period)
    }

    /// Looks up the session's client type (not known yet). A session unknown (e.g. a
    /// rejected id) or unreadable right now is left out: its rows are priced as an unknown
    /// client's. A look-up that times out pauses look-ups for [`LOOKUP_PAUSE`].
    async fn learn_client_type(&mut self, session_id: &str) {
        if self
            .lookups_paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.store.get_session(session_id)).await {
            Ok(Ok(Some(row))) => {
                if self.client_types.len() > 100_000 {
                    self.client_types.clear();
                }
                self.client_types
                    .insert(session_id.to_string(), row.client_type);
            }
            Ok(Ok(None) | Err(_)) => {}
            Err(_) => {
                self.lookups_paused_until = Some(Instant::now() + LOOKUP_PAUSE);
                self.shared.add(|s| &s.lookup_timeouts, 1);
                tracing::warn!(
                    "a session's client type could not be read within {}s (is mcp_sessions locked?): rows of sessions not seen yet are priced as an unknown client's for the next {}s",
                    LOOKUP_TIMEOUT.as_secs(),
                    LOOKUP_PAUSE.as_secs()
                );
            }
        }
    }

    /// Stores pending rows in batches. While the database refuses, waits for the backoff;
    /// past the memory bound (or at shutdown after a last retry window) rows go to the spill file.
    async fn store_pending(&mut self, phase: Phase<'_>) {
        let shutting_down = matches!(phase, Phase::Stopping);
        let deadline = Instant::now() + SHUTDOWN_RETRY;
        while !self.pending.is_empty() {
            if Instant::now() < self.next_try {
                // At the stop, a database that cannot be reached is not waited for (see `run`).
                if !shutting_down || Instant::now() >= deadline || self.unreachable {
                    break;
                }
                tokio::time::sleep_until(self.next_try.min(deadline)).await;
                continue;
            }
            let n = self.pending.len().min(MAX_BATCH);
            // Taken out of the queue (not copied) while the database has them; put back if
            // it refuses.
            let (rows, acks): (Vec<LedgerRow>, Vec<Waiter>) = self
                .pending
                .drain(..n)
                .map(|(row, waiter)| (*row, waiter))
                .unzip();
            let all_new = self.maybe_stored == 0;
            let outcome = match phase {
                Phase::Serving { stop } => self.insert_unless_stopped(&rows, all_new, stop).await,
                Phase::Stopping => within(STOP_GRACE, self.insert(&rows, all_new)).await,
            };
            match outcome {
                Err(error) => {
                    for (row, ack) in rows.into_iter().zip(acks).rev() {
                        self.pending.push_front((Box::new(row), ack));
                    }
                    self.refused(error, n).await;
                }
                Ok(_) => {
                    self.unreachable = false;
                    self.maybe_stored = self.maybe_stored.saturating_sub(n);
                    acks.into_iter().for_each(|ack| reply(ack, Ok(())));
                    self.shared.announce(rows);
                    self.shared.add(|s| &s.written, n as u64);
                    self.backoff = MIN_BACKOFF;
                    self.next_try = Instant::now();
                    if self.shared.counter(|s| &s.spilled) > 0 {
                        self.replay_spill().await;
                    }
                    self.shared.recovered();
                }
            }
        }
        let over = self.pending.len().saturating_sub(self.settings.max_pending);
        let spill_all = shutting_down && !self.unreachable && !self.pending.is_empty();
        if over > 0 || spill_all {
            let n = if spill_all { self.pending.len() } else { over };
            self.spill_oldest(n);
        }
        self.shared.set_pending(self.pending.len());
    }

    /// The database refused the first `n` pending rows (they are back in the queue).
    async fn refused(&mut self, error: sqlx::Error, n: usize) {
        if is_row_content_error(&error) {
            self.store_one_by_one(n).await;
            self.maybe_stored = self.maybe_stored.saturating_sub(n);
            return;
        }
        self.maybe_stored = self.maybe_stored.max(n);
        self.unreachable = is_connection_error(&error);
        self.shared.add(|s| &s.failed_writes, 1);
        self.shared
            .degrade(format!("the database refused ledger writes: {error}"));
        self.back_off();
        // A request waiting for its row (sync durability) must not wait for the database to
        // come back: its row goes to the spill file (fsynced), which is durable too, and the
        // request is answered.
        self.spill_waiting_rows();
    }

    /// One row in a batch has content the database refuses: store rows one at a time,
    /// sanitising the offender; a row that still cannot be stored is spilled, never dropped.
    async fn store_one_by_one(&mut self, n: usize) {
        for _ in 0..n {
            let Some((mut row, ack)) = self.pending.pop_front() else {
                break;
            };
            let mut outcome = self.insert(std::slice::from_ref(&*row), false).await;
            if matches!(&outcome, Err(e) if is_row_content_error(e)) {
                row.sanitize();
                row.sanitized = true;
                self.shared.add(|s| &s.sanitized, 1);
                outcome = self.insert(std::slice::from_ref(&*row), false).await;
            }
            match outcome {
                Ok(_) => {
                    self.shared.add(|s| &s.written, 1);
                    reply(ack, Ok(()));
                    self.shared.announce(vec![*row]);
                }
                Err(error) => {
                    self.shared.add(|s| &s.failed_writes, 1);
                    self.shared
                        .degrade(format!("the database refused a ledger row: {error}"));
                    self.spill_rows(vec![(row, ack)]);
                }
            }
        }
    }

    /// One INSERT, bounded in time: a database that hangs (a lock, a dead connection) is
    /// treated like one that refuses, so the outage shows up in `/health` instead of stalling.
    /// `all_new`: no row was offered to the database before (see [`Store::insert_new_requests`]).
    pub(super) async fn insert(
        &self,
        rows: &[LedgerRow],
        all_new: bool,
    ) -> Result<u64, sqlx::Error> {
        let insert = async {
            match all_new {
                true => self.store.insert_new_requests(rows).await,
                false => self.store.insert_requests(rows).await,
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, insert).await {
            Ok(outcome) => outcome,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// [`Writer::insert`] while serving. When the stop comes, an INSERT still in flight gets
    /// [`STOP_GRACE`] to finish; past it the database counts as unreachable (a connection
    /// error), so the stop does not wait out the pool's 5-s acquire timeout: the rows wait in
    /// the journal, and the next start stores them (duplicates skipped, in case it committed).
    async fn insert_unless_stopped(
        &self,
        rows: &[LedgerRow],
        all_new: bool,
        stop: &CancellationToken,
    ) -> Result<u64, sqlx::Error> {
        let insert = self.insert(rows, all_new);
        tokio::pin!(insert);
        tokio::select! {
            biased;
            outcome = &mut insert => return outcome,
            _ = stop.cancelled() => {}
        }
        within(STOP_GRACE, insert).await
    }

    pub(super) fn back_off(&mut self) {
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Moves rows that a request is waiting on to the spill file (durably) and answers them.
    fn spill_waiting_rows(&mut self) {
        let (waiting, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, waiter)| waiter.is_request());
        self.pending = rest;
        // Rows left the front from anywhere: the count stays an upper bound (the safe side).
        self.maybe_stored = self.maybe_stored.min(self.pending.len());
        self.spill_rows(waiting.into_iter().collect());
    }

    fn spill_oldest(&mut self, n: usize) {
        let rows: Vec<_> = self.pending.drain(..n.min(self.pending.len())).collect();
        self.maybe_stored = self.maybe_stored.saturating_sub(rows.len());
        self.spill_rows(rows);
    }

    fn spill_rows(&mut self, rows: Vec<(Box<LedgerRow>, Waiter)>) {
        if rows.is_empty() {
            return;
        }
        let durable = rows.iter().any(|(_, waiter)| waiter.is_request())
            || self.settings.durability == Durability::Sync;
        let (rows, acks): (Vec<LedgerRow>, Vec<_>) =
            rows.into_iter().map(|(row, ack)| (*row, ack)).unzip();
        match self.spill.append(&rows, durable) {
            Ok(()) => {
                self.shared.add(|s| &s.spilled, rows.len() as u64);
                self.shared.degrade(format!(
                    "{} ledger rows are waiting in {} until the database takes writes",
                    self.shared.counter(|s| &s.spilled),
                    self.spill.path().display()
                ));
                acks.into_iter().for_each(|ack| reply(ack, Ok(())));
            }
            Err(SpillError::Full { cap }) => {
                // Past the cap the rows are counted as lost: loud in /health, never silent.
                let lost = rows.len() as u64;
                self.shared.add(|s| &s.lost, lost);
                tracing::error!(
                    lost,
                    cap,
                    path = %self.spill.path().display(),
                    "the ledger spill file is full: requests are NOT being recorded"
                );
                self.shared.degrade(format!(
                    "the ledger spill file {} is full ({cap} bytes) and the database takes no writes: {} requests were not recorded",
                    self.spill.path().display(),
                    self.shared.counter(|s| &s.lost)
                ));
                let message = "the request could not be recorded: the ledger spill file is full";
                acks.into_iter()
                    .for_each(|ack| reply(ack, Err(message.to_string())));
            }
            Err(SpillError::Io(error)) => {
                // Memory is the last place left: keep the rows there rather than lose them.
                tracing::error!(%error, path = %self.spill.path().display(), "cannot write the ledger spill file");
                self.shared
                    .degrade(format!("cannot write the ledger spill file: {error}"));
                // Back at the front; they may have been offered to the database already.
                self.maybe_stored += rows.len();
                for (row, ack) in rows.into_iter().zip(acks).rev() {
                    self.pending.push_front((Box::new(row), ack));
                }
            }
        }
    }

    /// Stores rows left in the spill file (after an outage or a restart).
    async fn replay_spill(&mut self) {
        let mut replay = match self.spill.take() {
            Ok(Some(replay)) => replay,
            Ok(None) => return,
            Err(error) => {
                self.shared
                    .degrade(format!("cannot read the ledger spill file: {error}"));
                return;
            }
        };
        let total = replay.rows.len();
        for chunk in replay.rows.chunks(MAX_BATCH) {
            if let Err(error) = self.insert(chunk, false).await {
                // Leave the file for the next attempt; the key makes the retry exactly-once.
                self.shared
                    .degrade(format!("replaying the ledger spill file failed: {error}"));
                self.back_off();
                return;
            }
        }
        let rows = std::mem::take(&mut replay.rows);
        if replay.unreadable > 0 {
            self.shared.add(|s| &s.lost, replay.unreadable as u64);
            tracing::error!(
                lines = replay.unreadable,
                "unreadable lines in the ledger spill file were kept aside"
            );
        }
        if let Err(error) = replay.done() {
            tracing::warn!(%error, "could not remove the replayed spill file; its rows would be skipped as duplicates");
        }
        self.shared.sub(|s| &s.spilled, total as u64);
        self.shared.add(|s| &s.written, total as u64);
        // Only now, when every chunk is in: a replay that fails half-way is retried whole.
        self.shared.announce(rows);
        tracing::info!(rows = total, "replayed the ledger spill file");
        self.shared.recovered();
    }
}

/// `insert`'s outcome, or a connection error (see [`is_connection_error`]) after `limit`.
async fn within(
    limit: Duration,
    insert: impl std::future::Future<Output = Result<u64, sqlx::Error>>,
) -> Result<u64, sqlx::Error> {
    tokio::time::timeout(limit, insert)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

fn reply(waiter: Waiter, outcome: Result<(), String>) {
    if let Some(ack) = waiter.ack {
        // The requester may have gone away; its row is stored either way.
        if ack.send(outcome).is_err() {
            tracing::debug!("a sync ledger waiter went away before its row was confirmed");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Errors that say the database could not be reached (or did not answer in time), as opposed
/// to one that answered with a refusal.
fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// Errors caused by a row's content (PostgreSQL classes 22 "data exception" and 23
/// "integrity constraint violation"; SQLite constraint and type errors), as opposed to the
/// database being unavailable.
fn is_row_content_error(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation
        | sqlx::error::ErrorKind::CheckViolation
        | sqlx::error::ErrorKind::NotNullViolation
        | sqlx::error::ErrorKind::ForeignKeyViolation => true,
        // PostgreSQL SQLSTATEs have five characters; SQLite's codes are numbers
        // (18 = SQLITE_TOOBIG, 20 = SQLITE_MISMATCH).
        _ if code.len() == 5 => code.starts_with("22") || code.starts_with("23"),
        _ => code == "18" || code == "20",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::store::pricing::PriceRow;
    use crate::store::sessions::NewSession;

    fn session(id: &str, client_type: &str) -> NewSession {
        NewSession {
            session_id: id.to_string(),
            kind: "session",
            protocol_version: None,
            client_name: None,
            client_version: None,
            client_type: client_type.to_string(),
            client_capabilities: serde_json::json!({}),
            initialize_params: None,
            principal: None,
            at: Utc::now(),
        }
    }

    /// Rows of sessions with different client types, of no session and of a session not
    /// stored yet, interleaved and across a price change, are each priced as their session's
    /// model at their time: what is kept from the row before never prices the next one wrong.
    #[tokio::test]
    async fn each_row_is_priced_as_its_session_s_model_at_its_time() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("steward.db");
        let url = crate::store::DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        let store = Store::open(&url).await?;
        let change: DateTime<Utc> = "2026-12-06T12:00:00Z".parse()?;
        store
            .add_pricing(&PriceRow {
                model: "claude-sonnet-4-5".into(),
                provider: "anthropic".into(),
                input_per_1k: "0.004".parse()?,
                output_per_1k: "0.02".parse()?,
                effective_from: change,
            })
            .await?;
        store.insert_session(&session("codex", "Codex")).await?;
        store
            .insert_session(&session("claude", "Claude Code"))
            .await?;
        let prices = PriceTable::load(&store).await?;
        let policy = PricingPolicy::default();
        let spill = dir.path().join("ledger.spill");
        let mut writer = Writer::new(
            store.clone(),
            Arc::new(Shared::default()),
            LedgerSettings::new(Durability::Async, spill.clone()),
            policy.clone(),
            prices.clone(),
            Arc::new(Spill::new(spill)),
        );
        let before = change - chrono::Duration::microseconds(1);
        let rows = [
            (Some("codex"), before),
            (Some("codex"), change),
            (Some("claude"), before),
            (Some("claude"), before),
            (Some("claude"), change),
            (None, change),
            (None, before),
            (Some("later"), before),
            (Some("later"), before),
            (Some("codex"), before),
        ];
        let mut priced = Vec::new();
        for (n, (session_id, at)) in rows.into_iter().enumerate() {
            if n == 8 {
                // Stored now: its next row is priced as its client type's.
                store
                    .insert_session(&session("later", "Gemini CLI"))
                    .await?;
            }
            let mut row = LedgerRow {
                session_id: session_id.map(str::to_string),
                args_tokens: Some(n as i32 * 11),
                result_tokens: Some(1_000 + n as i32),
                timestamp: at,
                ..LedgerRow::default()
            };
            writer.price(&mut row).await;
            priced.push((row.pricing_model, row.estimated_cost_usd));
        }
        let client_types = [
            "Codex",
            "Codex",
            "Claude Code",
            "Claude Code",
            "Claude Code",
            "unknown",
            "unknown",
            "unknown",
            "Gemini CLI",
            "Codex",
        ];
        for (n, ((_, at), client_type)) in rows.iter().zip(client_types).enumerate() {
            let model = policy.model_for(client_type);
            let price = prices
                .price(model, *at)
                .expect("every model here has a price");
            let cost = estimate_cost(price, n as u32 * 11, 1_000 + n as u32);
            assert_eq!(priced[n], (Some(model.to_string()), Some(cost)), "row {n}");
        }
        let sonnet = |at| {
            prices
                .price("claude-sonnet-4-5", at)
                .map(|p| p.input_per_1k)
        };
        assert_ne!(
            sonnet(before),
            sonnet(change),
            "the rows straddle a price change"
        );
        Ok(())
    }
}
