//! Replaying the journal at start: what an earlier process (crashed, or killed with `kill -9`)
//! journaled but never stored becomes rows now, exactly once (rows the database already has
//! are skipped by `request_id`). Rows the database refuses wait in the spill file, like any
//! row during an outage. An unclean shutdown is logged, counted in `/metrics` and shown in
//! `/health` for [`SHOWN_FOR`], with the records that could not be read back and why.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::analyze::row_of;
use super::entry::{Entry, LedgerRow};
use super::journal::{Damage, Leftovers};
use super::writer::{WRITE_TIMEOUT, Writer};
use crate::store::requests::MAX_BATCH;

/// How long `/health` shows a recovery.
pub const SHOWN_FOR: TimeDelta = TimeDelta::hours(1);

/// What the start-up replay found.
#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    pub at: DateTime<Utc>,
    /// The previous run ended without a clean shutdown (a crash, `kill -9`, an OOM kill, a
    /// power loss).
    pub unclean_shutdown: bool,
    /// Rows read back from the journal and stored now (rows already stored are not counted).
    pub recovered_rows: u64,
    /// Rows read back that wait in the spill file because the database refused them.
    pub waiting_rows: u64,
    /// Journal records that could not be read back: those requests have no row.
    pub unrecoverable_rows: u64,
    /// Why, one line per kind of damage.
    pub unrecoverable_reasons: Vec<String>,
}

impl Writer {
    /// Replays what earlier processes left in the journal, before anything else is stored.
    pub(super) async fn recover(&mut self, leftovers: Leftovers) {
        if !leftovers.unclean && leftovers.segments.is_empty() {
            return;
        }
        let unclean = leftovers.unclean;
        let read = tokio::task::spawn_blocking(move || {
            let scan = leftovers.read();
            let rows: Vec<LedgerRow> = latest(scan.records).into_iter().map(row_of).collect();
            (leftovers, rows, scan.damaged)
        })
        .await;
        let (leftovers, mut rows, damaged) = match read {
            Ok(read) => read,
            Err(error) => {
                // The segments stay for the next start.
                tracing::error!(%error, "replaying the ledger journal failed");
                return;
            }
        };
        self.refresh_prices().await;
        for row in &mut rows {
            self.price(row).await;
        }
        let (recovered, waiting, kept) = self.store_recovered(&rows).await;
        if !kept && let Err(error) = leftovers.done() {
            tracing::warn!(%error, "cannot delete the replayed ledger journal; its rows would be skipped as duplicates next time");
        }
        self.catch_up_sessions(&rows).await;
        self.report_recovery(unclean, recovered, waiting, &damaged);
    }

    /// Stores recovered rows (duplicates skipped); what the database refuses goes to the spill
    /// file, fsynced. Returns rows stored, rows spilled, and whether the journal must be kept
    /// (neither took them).
    async fn store_recovered(&mut self, rows: &[LedgerRow]) -> (u64, u64, bool) {
        let mut recovered = 0;
        for (n, chunk) in rows.chunks(MAX_BATCH).enumerate() {
            let error = match self.insert(chunk, false).await {
                Ok(inserted) => {
                    recovered += inserted;
                    continue;
                }
                Err(error) => error,
            };
            let rest = &rows[n * MAX_BATCH..];
            self.back_off();
            self.shared.add(|s| &s.failed_writes, 1);
            return match self.spill.append(rest, true) {
                Ok(()) => {
                    self.shared.add(|s| &s.spilled, rest.len() as u64);
                    self.shared.degrade(format!(
                        "{} ledger rows recovered from the journal are waiting in {} until the database takes writes ({error})",
                        rest.len(),
                        self.spill.path().display()
                    ));
                    (recovered, rest.len() as u64, false)
                }
                Err(spill_error) => {
                    self.shared.degrade(format!(
                        "{} ledger rows recovered from the journal could not be stored ({error}) nor spilled ({spill_error}); they stay in the journal for the next start",
                        rest.len()
                    ));
                    (recovered, 0, true)
                }
            };
        }
        self.shared.add(|s| &s.written, recovered);
        (recovered, 0, false)
    }

    /// `last_activity` of live sessions moves to their last recovered request: the sessions'
    /// own periodic write of it did not happen for those requests.
    async fn catch_up_sessions(&self, rows: &[LedgerRow]) {
        let mut last: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for row in rows {
            if let Some(id) = row.session_id.as_deref() {
                let at = last.entry(id).or_insert(row.timestamp);
                *at = (*at).max(row.timestamp);
            }
        }
        let touch_all = async {
            for (id, at) in last {
                self.store.touch_sessions(&[id.to_string()], at).await?;
            }
            Ok::<(), sqlx::Error>(())
        };
        // Bounded: a lock on mcp_sessions must not keep the ledger from starting.
        match tokio::time::timeout(WRITE_TIMEOUT, touch_all).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot update last_activity of sessions after the journal replay")
            }
            Err(_) => tracing::warn!(
                "cannot update last_activity of sessions after the journal replay: no answer within {}s",
                WRITE_TIMEOUT.as_secs()
            ),
        }
    }

    fn report_recovery(&self, unclean: bool, recovered: u64, waiting: u64, damaged: &[Damage]) {
        let mut kinds: Vec<(Damage, usize)> = Vec::new();
        for damage in damaged {
            match kinds.iter_mut().find(|(kind, _)| kind == damage) {
                Some((_, n)) => *n += 1,
                None => kinds.push((*damage, 1)),
            }
        }
        let reasons: Vec<String> = kinds
            .iter()
            .map(|(kind, n)| format!("{n} × {}", kind.describe()))
            .collect();
        let unrecoverable = damaged.len() as u64;
        let s = &self.shared;
        s.add(|s| &s.unclean_shutdowns, u64::from(unclean));
        s.add(|s| &s.recovered, recovered);
        s.add(|s| &s.unrecoverable, unrecoverable);
        if unclean {
            tracing::warn!(
                recovered_rows = recovered,
                waiting_rows = waiting,
                unrecoverable_rows = unrecoverable,
                "the previous run ended without a clean shutdown (a crash, kill -9 or power loss); its ledger journal was replayed"
            );
        }
        if unrecoverable > 0 {
            tracing::error!(
                unrecoverable_rows = unrecoverable,
                reasons = %reasons.join("; "),
                "ledger journal records could not be read back: those requests have no row"
            );
        }
        *crate::sync::lock(&s.recovery) = Some(Recovery {
            at: Utc::now(),
            unclean_shutdown: unclean,
            recovered_rows: recovered,
            waiting_rows: waiting,
            unrecoverable_rows: unrecoverable,
            unrecoverable_reasons: reasons,
        });
    }
}

/// One record per request: a reply journaled before its last frame and again when it ended
/// appears twice, and the later record is the whole one.
fn latest(records: Vec<Entry>) -> Vec<Entry> {
    let mut seen = HashSet::new();
    let mut kept: Vec<Entry> = records
        .into_iter()
        .rev()
        .filter(|r| {
            seen.insert(match r {
                Entry::Row(row) => row.request_id,
                Entry::Observed(o) => o.request_id,
            })
        })
        .collect();
    kept.reverse();
    kept
}
