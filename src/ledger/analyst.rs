//! Where the ledger writer analyses what the request path left unanalysed: one thread of its
//! own that lives as long as the writer. Token counting is CPU work, kept off the async
//! workers; on tokio's blocking pool it ran on threads that end after ten idle seconds, and a
//! thread that ends leaves the allocator pages it filled behind, still holding whatever
//! outlives it there (the tokenizer, the memos, rows not yet freed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::analyze::row_of;
use super::entry::{Entry, LedgerRow};

/// A batch to analyse, and where its rows go (`None`: the analysis panicked).
type Batch = (Vec<Entry>, oneshot::Sender<Option<Vec<LedgerRow>>>);

/// The analysis thread's queue; without one (not started, or it could not be) batches are
/// analysed on tokio's blocking pool.
#[derive(Default)]
pub struct Analyst {
    tx: Option<mpsc::Sender<Batch>>,
    /// Batches analysed on tokio's blocking pool because the thread was not there: each is
    /// counted (`steward_ledger_analysis_fallbacks_total`) and the first one logged, so a
    /// thread that could not start or died does not pass unnoticed.
    fallbacks: AtomicU64,
}

impl Analyst {
    /// Starts the thread. The tokenizer is built by the first batch that needs it (see
    /// [`super::tokens`]): until then the request path leaves every new text to this thread.
    pub fn start() -> Analyst {
        let (tx, rx) = mpsc::channel::<Batch>();
        let spawned = std::thread::Builder::new()
            .name("steward-ledger".into())
            .spawn(move || serve(rx));
        match spawned {
            Ok(_) => Analyst {
                tx: Some(tx),
                fallbacks: AtomicU64::new(0),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot start the ledger's analysis thread; the ledger analyses on tokio's blocking threads");
                Analyst::default()
            }
        }
    }

    /// The rows of `entries`, in order; `None` if the analysis panicked.
    pub async fn rows_of(&self, entries: Vec<Entry>) -> Option<Vec<LedgerRow>> {
        let (reply, rows) = oneshot::channel();
        let entries = match &self.tx {
            Some(tx) => match tx.send((entries, reply)) {
                Ok(()) => return rows.await.ok().flatten(),
                // The thread is gone: its batch comes back.
                Err(mpsc::SendError((entries, _))) => entries,
            },
            None => entries,
        };
        self.fell_back();
        tokio::task::spawn_blocking(move || analyse(entries))
            .await
            .ok()
            .flatten()
    }

    /// How many batches were analysed on tokio's blocking pool instead of the thread.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn fell_back(&self) {
        metrics::counter!("steward_ledger_analysis_fallbacks_total").increment(1);
        if self.fallbacks.fetch_add(1, Ordering::Relaxed) == 0 {
            let why = match self.tx {
                Some(_) => "its thread is gone",
                None => "it has no thread",
            };
            tracing::warn!(
                "the ledger analyses on tokio's blocking threads: {why} (counted in steward_ledger_analysis_fallbacks_total)"
            );
        }
    }
}

fn serve(batches: mpsc::Receiver<Batch>) {
    while let Ok((entries, reply)) = batches.recv() {
        if reply.send(analyse(entries)).is_err() {
            tracing::debug!("the ledger writer stopped waiting for an analysis");
        }
    }
}

/// A panic in one row's analysis is the batch's, not the thread's.
fn analyse(entries: Vec<Entry>) -> Option<Vec<LedgerRow>> {
    catch_unwind(AssertUnwindSafe(|| {
        entries.into_iter().map(row_of).collect()
    }))
    .ok()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::ledger::entry::{Ending, Micros, Observation};

    fn observation(query: &str) -> Observation {
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"find_tasks","arguments":{{"query":"{query}"}}}}}}"#
        );
        let response = format!(
            r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":"{query} {query}"}}]}}}}"#
        );
        Observation {
            request_id: Uuid::new_v4(),
            session_id: Some("s".into()),
            timestamp: Utc::now(),
            duration: Micros::from_micros(1500),
            request: Bytes::from(request),
            http_status: Some(200),
            response_len: response.len() as u64,
            response: Bytes::from(response),
            ending: Ending::Complete,
            protocol_version: None,
            stream_get: None,
            upstream: None,
            subject: None,
        }
    }

    fn batch() -> Vec<Observation> {
        ["one", "two words", "three words here"]
            .into_iter()
            .map(observation)
            .collect()
    }

    fn entries(observations: &[Observation]) -> Vec<Entry> {
        observations.iter().cloned().map(Entry::observed).collect()
    }

    fn expected(observations: &[Observation]) -> Vec<LedgerRow> {
        entries(observations).into_iter().map(row_of).collect()
    }

    /// The names of this process's threads (Linux: `/proc/self/task/*/comm`).
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                    .map(|name| name.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_thread_analyses_batch_after_batch_in_order_and_stays() {
        let analyst = Analyst::start();
        for _ in 0..2 {
            let observations = batch();
            let rows = analyst.rows_of(entries(&observations)).await;
            assert_eq!(rows, Some(expected(&observations)));
        }
        if cfg!(target_os = "linux") {
            // `/proc/self/task` is listed by position: a thread of another test ending during
            // the listing shifts the rest and one entry can be skipped, so one listing that
            // misses the thread proves nothing; a thread that had ended would miss them all.
            let found = (0..50).any(|_| {
                let found = thread_names().iter().any(|name| name == "steward-ledger");
                if !found {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                found
            });
            assert!(found, "the steward-ledger thread is gone after two batches");
        }
    }

    #[tokio::test]
    async fn without_the_thread_the_blocking_pool_analyses_the_same_and_counts_it() {
        let analyst = Analyst::default();
        for round in 1..=2 {
            let observations = batch();
            let rows = analyst.rows_of(entries(&observations)).await;
            assert_eq!(rows, Some(expected(&observations)));
            assert_eq!(analyst.fallbacks(), round);
        }
    }

    #[tokio::test]
    async fn a_batch_for_a_thread_that_is_gone_is_analysed_and_counted() {
        let (tx, rx) = mpsc::channel::<Batch>();
        drop(rx);
        let analyst = Analyst {
            tx: Some(tx),
            fallbacks: AtomicU64::new(0),
        };
        let observations = batch();
        let rows = analyst.rows_of(entries(&observations)).await;
        assert_eq!(rows, Some(expected(&observations)));
        assert_eq!(analyst.fallbacks(), 1);
    }

    #[tokio::test]
    async fn the_thread_counts_no_fallback() {
        let analyst = Analyst::start();
        let observations = batch();
        assert_eq!(
            analyst.rows_of(entries(&observations)).await,
            Some(expected(&observations))
        );
        assert_eq!(analyst.fallbacks(), 0);
    }
}
