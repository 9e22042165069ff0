//! The ledger journal: what makes the default (`async`) ledger survive `kill -9`.
//!
//! Before an observation is queued for the writer, the request path appends it to a segment
//! file with a plain `write` (no `fsync`): once written, the operating system keeps it even if
//! the process dies at once, so only a power loss or a kernel crash can lose it (within the
//! OS's writeback interval; `--ledger-durability sync` covers those). Each record holds a
//! [`Ticket`] on its segment until its row is stored or spilled; a segment that is full and
//! whose rows are all handled is deleted, so the journal stays a few segments long.
//!
//! Each process takes a slot of its own (`slot-N/`, guarded by an OS file lock), so replicas
//! and stdio processes sharing a directory never share a journal. A `running` marker in the
//! slot, removed after a clean shutdown, tells the next process whether this one crashed; it
//! replays what the crashed process left (its own slot, and any slot nobody holds).

pub mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sync::lock;

pub use record::{Damage, Record, Scan};

/// A segment is closed (and a new one started) once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The first bytes of every segment, so a stray file is never read as records.
const MAGIC: &[u8; 8] = b"STWJRNL1";
/// Slots tried before giving up (each live process holds one).
const MAX_SLOTS: usize = 4096;
const MARKER: &str = "running";
const LOCK: &str = "lock";

/// One process's journal (its slot).
pub struct Journal {
    slot: PathBuf,
    current: Mutex<Current>,
    /// Held for the life of the process: the OS releases it however the process ends.
    _lock: File,
    failed: AtomicBool,
}

struct Current {
    segment: Arc<Segment>,
    /// False after a clean shutdown: later observations are not journaled.
    open: bool,
}

/// One segment file and how many of its records are still waiting to be stored.
struct Segment {
    id: u64,
    path: PathBuf,
    file: File,
    size: AtomicU64,
    appended: AtomicU64,
    handled: AtomicU64,
    closed: AtomicBool,
    rotating: AtomicBool,
    removed: AtomicBool,
}

/// A journaled record whose row is not stored yet. Dropping it (once the row is stored or
/// spilled) lets its segment be deleted.
pub struct Ticket(Arc<Segment>);

/// What earlier processes left behind, to replay before anything else is stored.
pub struct Leftovers {
    /// Segment files, oldest first.
    pub segments: Vec<PathBuf>,
    /// Whether a process ended without a clean shutdown.
    pub unclean: bool,
    /// Slots of crashed processes, locked by this one until their segments are replayed.
    orphans: Vec<(PathBuf, File)>,
}

impl Journal {
    /// Takes a free slot in `dir` (creating it) and collects what crashed processes left.
    pub fn open(dir: &Path) -> std::io::Result<(Journal, Leftovers)> {
        std::fs::create_dir_all(dir).map_err(|e| in_dir(dir, e))?;
        let (slot, lock_file) = take_slot(dir)?;
        let unclean = slot.join(MARKER).exists();
        let segments = segments_in(&slot)?;
        let mut leftovers = Leftovers {
            segments,
            unclean,
            orphans: Vec::new(),
        };
        leftovers.adopt_orphans(dir, &slot)?;
        write_marker(&slot)?;
        let next = leftovers
            .segments
            .iter()
            .filter(|p| p.parent() == Some(&slot))
            .filter_map(|p| segment_id(p))
            .max()
            .map_or(0, |id| id + 1);
        let segment = Segment::create(&slot, next)?;
        Ok((
            Journal {
                slot,
                current: Mutex::new(Current {
                    segment: Arc::new(segment),
                    open: true,
                }),
                _lock: lock_file,
                failed: AtomicBool::new(false),
            },
            leftovers,
        ))
    }

    pub fn slot(&self) -> &Path {
        &self.slot
    }

    /// Appends a record. `Ok(None)` when the journal is closed; an error when the write
    /// failed (the row is still queued; only its crash protection is gone).
    pub fn append(&self, record: &Record<'_>) -> std::io::Result<Option<Ticket>> {
        let ticket = {
            let current = lock(&self.current);
            if !current.open {
                return Ok(None);
            }
            // Counted before the write, under the lock that rotation takes: a segment is never
            // deleted while a record is on its way into it.
            current.segment.appended.fetch_add(1, Ordering::Relaxed);
            Ticket(current.segment.clone())
        };
        let segment = &ticket.0;
        match record::write(&segment.file, record) {
            Ok(n) => {
                let size = segment.size.fetch_add(n, Ordering::Relaxed) + n;
                if size >= SEGMENT_BYTES && !segment.rotating.swap(true, Ordering::AcqRel) {
                    self.rotate(segment);
                }
                Ok(Some(ticket))
            }
            Err(error) => {
                // Nothing reached the segment: take the count back, or it is never trimmed.
                segment.appended.fetch_sub(1, Ordering::Relaxed);
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, path = %segment.path.display(), "cannot write the ledger journal: rows queued now would not survive a crash");
                }
                Err(error)
            }
        }
    }

    /// Starts a new segment after `full`. Only one caller gets here per segment.
    fn rotate(&self, full: &Arc<Segment>) {
        let next = match Segment::create(&self.slot, full.id + 1) {
            Ok(next) => Arc::new(next),
            Err(error) => {
                // Keep appending to the full one: it grows, nothing is lost.
                tracing::warn!(%error, "cannot start a new ledger journal segment");
                full.rotating.store(false, Ordering::Release);
                return;
            }
        };
        {
            let mut current = lock(&self.current);
            current.segment = next;
            full.closed.store(true, Ordering::Release);
        }
        full.retire_if_done();
    }

    /// After a clean shutdown flush: stops journaling, deletes the current segment once its
    /// rows are handled and removes the marker, so the next start knows this run ended well.
    pub fn close_clean(&self) {
        let segment = {
            let mut current = lock(&self.current);
            current.open = false;
            current.segment.closed.store(true, Ordering::Release);
            current.segment.clone()
        };
        segment.retire_if_done();
        if let Err(error) = std::fs::remove_file(self.slot.join(MARKER)) {
            tracing::warn!(%error, slot = %self.slot.display(), "cannot remove the ledger journal's running marker; the next start will report an unclean shutdown");
        }
    }
}

impl Segment {
    fn create(slot: &Path, id: u64) -> std::io::Result<Segment> {
        let path = slot.join(format!("segment-{id:010}.journal"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| in_dir(&path, e))?;
        file.write_all(MAGIC)?;
        Ok(Segment {
            id,
            path,
            file,
            size: AtomicU64::new(MAGIC.len() as u64),
            appended: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            rotating: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        })
    }

    /// Deletes the file once it is closed and every record in it is handled.
    fn retire_if_done(&self) {
        if !self.closed.load(Ordering::Acquire)
            || self.handled.load(Ordering::Acquire) < self.appended.load(Ordering::Acquire)
            || self.removed.swap(true, Ordering::AcqRel)
        {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "cannot delete a replayed ledger journal segment; its rows would be skipped as duplicates");
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // A panic unwinding through the writer has not stored this row: keep the record for
        // the next start.
        if std::thread::panicking() {
            return;
        }
        self.0.handled.fetch_add(1, Ordering::AcqRel);
        self.0.retire_if_done();
    }
}

impl Leftovers {
    /// Locks the slots nobody holds (their process is gone) and takes their segments.
    fn adopt_orphans(&mut self, dir: &Path, own: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| in_dir(dir, e))? {
            let slot = entry?.path();
            let is_slot = slot
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("slot-"));
            if !is_slot || slot == own || !slot.is_dir() {
                continue;
            }
            let Some(lock_file) = try_lock(&slot)? else {
                continue;
            };
            let crashed = slot.join(MARKER).exists();
            let segments = segments_in(&slot)?;
            if !crashed && segments.is_empty() {
                continue; // Ended cleanly: nothing to do, and the slot is free for others.
            }
            self.unclean |= crashed;
            self.segments.extend(segments);
            self.orphans.push((slot, lock_file));
        }
        Ok(())
    }

    /// Reads every leftover segment.
    pub fn read(&self) -> Scan {
        let mut scan = Scan::default();
        for path in &self.segments {
            match std::fs::read(path) {
                Ok(bytes) => match bytes.strip_prefix(MAGIC) {
                    Some(records) => record::scan(records, &mut scan),
                    // Created but the magic never made it: nothing was appended either.
                    None if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) => {}
                    None => scan.damaged.push(Damage::Undecodable),
                },
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "cannot read a ledger journal segment");
                    scan.damaged.push(Damage::Undecodable);
                }
            }
        }
        scan
    }

    /// Call once every row read is stored (or durably spilled): deletes the segments and the
    /// crashed processes' markers, and lets their slots go.
    pub fn done(self) -> std::io::Result<()> {
        for path in &self.segments {
            std::fs::remove_file(path).map_err(|e| in_dir(path, e))?;
        }
        for (slot, _lock) in &self.orphans {
            match std::fs::remove_file(slot.join(MARKER)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(in_dir(slot, e)),
                _ => {}
            }
        }
        Ok(())
    }
}

fn take_slot(dir: &Path) -> std::io::Result<(PathBuf, File)> {
    for n in 0..MAX_SLOTS {
        let slot = dir.join(format!("slot-{n}"));
        std::fs::create_dir_all(&slot).map_err(|e| in_dir(&slot, e))?;
        if let Some(lock_file) = try_lock(&slot)? {
            return Ok((slot, lock_file));
        }
    }
    Err(std::io::Error::other(format!(
        "all {MAX_SLOTS} ledger journal slots in {} are taken by running processes",
        dir.display()
    )))
}

/// The slot's lock, if no other process holds it.
fn try_lock(slot: &Path) -> std::io::Result<Option<File>> {
    let path = slot.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| in_dir(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(in_dir(&path, e)),
    }
}

fn write_marker(slot: &Path) -> std::io::Result<()> {
    let path = slot.join(MARKER);
    let text = format!(
        "pid {} started {}\n",
        std::process::id(),
        chrono::Utc::now().to_rfc3339()
    );
    std::fs::write(&path, text).map_err(|e| in_dir(&path, e))
}

/// The slot's segment files, oldest first.
fn segments_in(slot: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut segments: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(slot).map_err(|e| in_dir(slot, e))? {
        let path = entry?.path();
        if let Some(id) = segment_id(&path) {
            segments.push((id, path));
        }
    }
    segments.sort();
    Ok(segments.into_iter().map(|(_, path)| path).collect())
}

fn segment_id(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("segment-")?
        .strip_suffix(".journal")?
        .parse()
        .ok()
}

/// Names the path in an I/O error, so the message says where to look.
fn in_dir(path: &Path, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{Ending, Micros, Observation};
    use bytes::Bytes;

    fn observation() -> Observation {
        Observation {
            request_id: uuid::Uuid::now_v7(),
            session_id: None,
            timestamp: chrono::Utc::now(),
            duration: Micros::from_micros(1),
            request: Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"),
            http_status: Some(200),
            response: Bytes::from(vec![b'x'; 1024 * 1024]),
            response_len: 1024 * 1024,
            ending: Ending::Complete,
            protocol_version: None,
            stream_get: None,
            upstream: None,
            subject: None,
        }
    }

    fn files(slot: &Path) -> Vec<PathBuf> {
        segments_in(slot).unwrap_or_default()
    }

    #[test]
    fn two_processes_get_two_slots_and_a_crashed_one_is_replayed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (first, leftovers) = Journal::open(dir.path())?;
        assert!(!leftovers.unclean && leftovers.segments.is_empty());
        let (second, _) = Journal::open(dir.path())?;
        assert_ne!(first.slot(), second.slot());
        let kept = first
            .append(&Record::from(&observation()))
            .expect("the write succeeds");
        assert!(kept.is_some());
        // The first "crashes": its lock goes, its marker and segment stay.
        std::mem::forget(kept);
        let slot = first.slot().to_path_buf();
        drop(first);
        let (third, leftovers) = Journal::open(dir.path())?;
        assert_eq!(third.slot(), slot, "the free slot is reused");
        assert!(leftovers.unclean);
        let scan = leftovers.read();
        assert_eq!(scan.observations.len(), 1);
        assert!(scan.damaged.is_empty());
        leftovers.done()?;
        assert_eq!(files(third.slot()).len(), 1, "only the new, empty segment");
        third.close_clean();
        second.close_clean();
        let (_, leftovers) = Journal::open(dir.path())?;
        assert!(!leftovers.unclean, "both shut down cleanly");
        assert!(leftovers.segments.is_empty());
        Ok(())
    }

    #[test]
    fn full_segments_are_deleted_once_their_rows_are_handled() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (journal, _) = Journal::open(dir.path())?;
        let per_segment = (SEGMENT_BYTES / (1024 * 1024)) as usize;
        let tickets: Vec<_> = (0..per_segment * 2 + 1)
            .filter_map(|_| {
                journal
                    .append(&Record::from(&observation()))
                    .expect("the write succeeds")
            })
            .collect();
        assert_eq!(files(journal.slot()).len(), 3);
        drop(tickets);
        assert_eq!(
            files(journal.slot()).len(),
            1,
            "only the open segment is left"
        );
        journal.close_clean();
        assert!(files(journal.slot()).is_empty());
        Ok(())
    }
}
