//! The ledger journal: what makes the default (`async`) ledger survive `kill -9`.
//!
//! Before a row (or an observation the request path could not analyse) is queued for the
//! writer, the request path appends it to a segment file, copied into a shared memory map of
//! the file (see [`window`]; a plain `write` where mapping fails), with no `fsync`: once
//! copied, the operating system keeps it even if the process dies at once, so only a power
//! loss or a kernel crash can lose it (within the OS's writeback interval;
//! `--ledger-durability sync` covers those). Each record holds a
//! [`Ticket`] on its segment until its row is stored or spilled; a segment that is full and
//! whose rows are all handled is set aside as a spare, and the next segment reuses its file, so
//! the journal stays a few segments long.
//!
//! Why reuse files: most of what a `write` costs the kernel is the page cache, not the copy
//! (allocating, zeroing and accounting a new page for every 4 KiB appended, freeing them all
//! again when the file is deleted); rewriting pages the cache already holds costs about a
//! third. A reused file still holds its earlier records past the new ones, so every segment
//! has a random stamp that each of its records carries (see [`record`]); reading stops at the
//! first record of another stamp. Records are written one at a time, at the segment's end,
//! under its lock: the records written are always a prefix of the file (a record being copied
//! when the process died reads as the end of them, see [`record::copy`]).
//!
//! Each process takes a slot of its own (`slot-N/`, guarded by an OS file lock), so replicas
//! and stdio processes sharing a directory never share a journal. A `running` marker in the
//! slot, removed after a clean shutdown, tells the next process whether this one crashed; it
//! replays what the crashed process left (its own slot, and any slot nobody holds).

pub mod record;
mod window;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sync::lock;
use window::Mapping;

pub use record::{Damage, Record, Scan};

/// A segment is closed (and a new one started) before a record would take it past this many
/// bytes (a record larger than that gets a segment of its own).
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The first bytes of every segment, so a stray file is never read as records: the first
/// layout (records without a stamp, still read), and the current one, followed by the
/// segment's stamp.
const MAGIC: &[u8; 8] = b"STWJRNL1";
const MAGIC_STAMPED: &[u8; 8] = b"STWJRNL2";
/// The magic and the stamp.
const SEGMENT_HEADER: u64 = 16;
/// Retired segment files kept for reuse; more are deleted.
const MAX_SPARES: usize = 2;
const SPARE_PREFIX: &str = "spare-";
/// Slots tried before giving up (each live process holds one).
const MAX_SLOTS: usize = 4096;
const MARKER: &str = "running";
const LOCK: &str = "lock";

/// One process's journal (its slot).
pub struct Journal {
    current: Mutex<Current>,
    spares: Arc<Spares>,
    /// Held for the life of the process: the OS releases it however the process ends.
    _lock: File,
    failed: AtomicBool,
    /// Mapping a segment failed (logged once; records are written with `write`).
    map_failed: AtomicBool,
    /// A new segment could not be started (logged once; the full one keeps growing).
    rotation_failed: AtomicBool,
}

struct Current {
    segment: Arc<Segment>,
    /// False after a clean shutdown: later observations are not journaled.
    open: bool,
    /// The segment file's offset is where the next record goes (its `size`): true after a
    /// whole record or a new header was written, false after a failed write. Records are
    /// written only under this lock, so the `lseek` before each is needed only after a failure
    /// or a record copied into the map.
    positioned: bool,
    /// The current segment's mapped window, where records are copied.
    mapping: Mapping,
}

/// One segment file and how many of its records are still waiting to be stored.
struct Segment {
    id: u64,
    /// Carried by each of this segment's records (see [`record`]).
    stamp: u64,
    path: PathBuf,
    file: File,
    /// Where the next record goes; written under [`Journal::current`]'s lock only.
    size: AtomicU64,
    appended: AtomicU64,
    handled: AtomicU64,
    closed: AtomicBool,
    removed: AtomicBool,
    spares: Arc<Spares>,
}

/// The slot's retired segment files, for the next segments to reuse.
struct Spares {
    slot: PathBuf,
    files: Mutex<Vec<(PathBuf, File)>>,
    /// After a clean shutdown retired segments are deleted, not kept.
    closing: AtomicBool,
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
        remove_spares(&slot)?;
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
        let spares = Arc::new(Spares {
            slot,
            files: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
        });
        let segment = Segment::create(&spares, next)?;
        Ok((
            Journal {
                current: Mutex::new(Current {
                    segment: Arc::new(segment),
                    open: true,
                    positioned: true,
                    mapping: Mapping::Unmapped,
                }),
                spares,
                _lock: lock_file,
                failed: AtomicBool::new(false),
                map_failed: AtomicBool::new(false),
                rotation_failed: AtomicBool::new(false),
            },
            leftovers,
        ))
    }

    pub fn slot(&self) -> &Path {
        &self.spares.slot
    }

    /// Appends a record. `Ok(None)` when the journal is closed; an error when the write
    /// failed (the row is still queued; only its crash protection is gone).
    pub fn append(&self, record: &Record<'_>) -> std::io::Result<Option<Ticket>> {
        // Encoded before the lock: only the stamp, the checksum and the copy (or write) are
        // taken under it.
        let encoded = record::Encoded::new(record)?;
        let size = encoded.size();
        let mut current = lock(&self.current);
        if !current.open {
            return Ok(None);
        }
        let at = current.segment.size.load(Ordering::Relaxed);
        if at > SEGMENT_HEADER && at + size > SEGMENT_BYTES {
            self.rotate(&mut current);
        }
        let current = &mut *current;
        let at = current.segment.size.load(Ordering::Relaxed);
        // Counted before the write: a segment is never retired while a record is on its way
        // into it.
        current.segment.appended.fetch_add(1, Ordering::Relaxed);
        let put = self.put(current, at, size, &encoded);
        let segment = &current.segment;
        match put {
            Ok(n) => {
                segment.size.store(at + n, Ordering::Relaxed);
                Ok(Some(Ticket(segment.clone())))
            }
            Err(error) => {
                // Nothing readable reached the segment (the next record overwrites what did,
                // from the record's start): take the count back, or it is never trimmed.
                current.positioned = false;
                segment.appended.fetch_sub(1, Ordering::Relaxed);
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, path = %segment.path.display(), "cannot write the ledger journal: rows queued now would not survive a crash");
                }
                Err(error)
            }
        }
    }

    /// Puts the record at `at` in the current segment: copied into its mapped window, or
    /// written where it cannot be. Returns its size.
    fn put(
        &self,
        current: &mut Current,
        at: u64,
        size: u64,
        encoded: &record::Encoded<'_>,
    ) -> std::io::Result<u64> {
        // The guard's fields, borrowed apart.
        let Current {
            segment,
            mapping,
            positioned,
            ..
        } = current;
        match mapping.room(&segment.file, at, size, SEGMENT_BYTES + SEGMENT_HEADER) {
            Ok(Some(room)) => {
                // The file's offset no longer follows the records.
                *positioned = false;
                return record::copy(room, segment.stamp, encoded);
            }
            Ok(None) => {}
            Err(error) => {
                *mapping = Mapping::Off;
                if !self.map_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, path = %segment.path.display(), "cannot map the ledger journal; appending with write");
                }
            }
        }
        if !*positioned {
            (&segment.file).seek(SeekFrom::Start(at))?;
            *positioned = true;
        }
        record::write(&segment.file, segment.stamp, encoded)
    }

    /// Starts the next segment in place of the full current one.
    fn rotate(&self, current: &mut Current) {
        let full = current.segment.clone();
        match Segment::create(&self.spares, full.id + 1) {
            Ok(next) => {
                // A new segment's file is positioned just after its header. The full one's
                // window is unmapped before it can retire: a spare's file is shortened.
                current.segment = Arc::new(next);
                current.positioned = true;
                current.mapping.unmap();
                full.closed.store(true, Ordering::Release);
                full.retire_if_done();
            }
            Err(error) => {
                // Keep appending to the full one: it grows, nothing is lost.
                if !self.rotation_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "cannot start a new ledger journal segment");
                }
            }
        }
    }

    /// A clean stop with rows still waiting for the database: stops journaling and keeps every
    /// segment, so the next start stores their rows. `clean` removes the marker (the next
    /// start then reports no crash); false keeps it, for a crash not reported yet.
    pub fn close_keeping(&self, clean: bool) {
        {
            let mut current = lock(&self.current);
            current.open = false;
            current.mapping.unmap();
            self.spares.closing.store(true, Ordering::Release);
        }
        let slot = &self.spares.slot;
        if let Err(error) = remove_spares(slot) {
            tracing::warn!(%error, "cannot delete the ledger journal's spare segments");
        }
        if clean && let Err(error) = std::fs::remove_file(slot.join(MARKER)) {
            tracing::warn!(%error, slot = %slot.display(), "cannot remove the ledger journal's running marker; the next start will report an unclean shutdown");
        }
    }

    /// After a clean shutdown flush: stops journaling, deletes the current segment once its
    /// rows are handled and removes the marker, so the next start knows this run ended well.
    pub fn close_clean(&self) {
        let segment = {
            let mut current = lock(&self.current);
            current.open = false;
            current.mapping.unmap();
            self.spares.closing.store(true, Ordering::Release);
            current.segment.closed.store(true, Ordering::Release);
            current.segment.clone()
        };
        segment.retire_if_done();
        let slot = &self.spares.slot;
        if let Err(error) = remove_spares(slot) {
            tracing::warn!(%error, "cannot delete the ledger journal's spare segments");
        }
        if let Err(error) = std::fs::remove_file(slot.join(MARKER)) {
            tracing::warn!(%error, slot = %slot.display(), "cannot remove the ledger journal's running marker; the next start will report an unclean shutdown");
        }
    }
}

impl Segment {
    /// A new segment, in a spare's file if there is one. The spare gets its new header
    /// (magic and stamp) before it is named as a segment, so a crash in between leaves a
    /// spare, never a segment with an earlier life's records under its stamp.
    fn create(spares: &Arc<Spares>, id: u64) -> std::io::Result<Segment> {
        let path = spares.slot.join(format!("segment-{id:010}.journal"));
        let stamp = rand::random::<u64>().max(1);
        let mut header = [0u8; SEGMENT_HEADER as usize];
        header[..8].copy_from_slice(MAGIC_STAMPED);
        header[8..].copy_from_slice(&stamp.to_le_bytes());
        let spare = lock(&spares.files).pop();
        let file = match spare {
            Some((spare, mut file)) => {
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&header)?;
                // At least 16 bytes of the earlier life (or zeros) follow the last record, so
                // a record's end is never mistaken for a torn header.
                file.set_len(SEGMENT_BYTES + SEGMENT_HEADER)?;
                std::fs::rename(&spare, &path).map_err(|e| in_dir(&path, e))?;
                file
            }
            None => {
                // Read too: a shared mapping needs it.
                let mut file = OpenOptions::new()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| in_dir(&path, e))?;
                file.write_all(&header)?;
                file
            }
        };
        Ok(Segment {
            id,
            stamp,
            path,
            file,
            size: AtomicU64::new(SEGMENT_HEADER),
            appended: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            spares: spares.clone(),
        })
    }

    /// Retires the file once it is closed and every record in it is handled: kept as a spare
    /// for a later segment, or deleted.
    fn retire_if_done(&self) {
        if !self.closed.load(Ordering::Acquire)
            || self.handled.load(Ordering::Acquire) < self.appended.load(Ordering::Acquire)
            || self.removed.swap(true, Ordering::AcqRel)
        {
            return;
        }
        if self.spares.keep(self) {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "cannot delete a replayed ledger journal segment; its rows would be skipped as duplicates");
        }
    }
}

impl Spares {
    /// Sets a retired segment's file aside for reuse; false if it is not wanted (enough
    /// spares, a clean shutdown, or renaming failed).
    fn keep(&self, segment: &Segment) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return false;
        }
        let mut files = lock(&self.files);
        if files.len() >= MAX_SPARES {
            return false;
        }
        let Ok(file) = segment.file.try_clone() else {
            return false;
        };
        let spare = self
            .slot
            .join(format!("{SPARE_PREFIX}{:010}.journal", segment.id));
        match std::fs::rename(&segment.path, &spare) {
            Ok(()) => {
                files.push((spare, file));
                true
            }
            Err(error) => {
                tracing::debug!(%error, path = %segment.path.display(), "cannot keep a ledger journal segment for reuse");
                false
            }
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
            remove_spares(&slot)?;
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
                Ok(bytes) => read_segment(&bytes, &mut scan),
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

/// Reads one segment's records, of either layout.
fn read_segment(bytes: &[u8], scan: &mut Scan) {
    if let Some(records) = bytes.strip_prefix(MAGIC) {
        return record::scan(records, scan);
    }
    let header = SEGMENT_HEADER as usize;
    match (bytes.strip_prefix(MAGIC_STAMPED), bytes.get(8..header)) {
        (Some(_), Some(stamp)) => {
            let mut word = [0; 8];
            word.copy_from_slice(stamp);
            record::scan_stamped(&bytes[header..], u64::from_le_bytes(word), scan);
        }
        // Created but the header never made it whole: nothing was appended either.
        _ if bytes.len() < header
            && (MAGIC.starts_with(&bytes[..bytes.len().min(8)])
                || MAGIC_STAMPED.starts_with(&bytes[..bytes.len().min(8)])) => {}
        _ => scan.damaged.push(Damage::Undecodable),
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

/// Deletes a slot's spare segment files: they hold only records whose rows were stored.
fn remove_spares(slot: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(slot).map_err(|e| in_dir(slot, e))? {
        let path = entry?.path();
        let spare = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(SPARE_PREFIX));
        if spare {
            std::fs::remove_file(&path).map_err(|e| in_dir(&path, e))?;
        }
    }
    Ok(())
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
    use crate::ledger::entry::{Ending, Entry, Exchange, LedgerRow, Micros, Observation};
    use bytes::Bytes;
    use window::WINDOW_BYTES;

    fn observation() -> Observation {
        observation_of(1024 * 1024)
    }

    /// An observation whose reply is `len` bytes.
    fn observation_of(len: usize) -> Observation {
        Observation {
            request_id: uuid::Uuid::now_v7(),
            session_id: None,
            timestamp: chrono::Utc::now(),
            duration: Micros::from_micros(1),
            request: Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"),
            http_status: Some(200),
            response: Bytes::from(vec![b'x'; len]),
            response_len: len as u64,
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
            .append(&Record::Exchange(Exchange::from(&observation())))
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
        assert_eq!(scan.records.len(), 1);
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
                    .append(&Record::Exchange(Exchange::from(&observation())))
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
        assert_eq!(
            std::fs::read_dir(journal.slot())?.count(),
            1,
            "only the lock is left: no spare, no marker"
        );
        Ok(())
    }

    /// Retired segments' files are reused; after a crash, what a reused file held in its
    /// earlier life is not replayed, and spares are not read at all.
    #[test]
    fn reused_segment_files_replay_only_their_new_records() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (journal, _) = Journal::open(dir.path())?;
        let append = |n: usize| -> Vec<Ticket> {
            (0..n)
                .filter_map(|_| {
                    journal
                        .append(&Record::Exchange(Exchange::from(&observation())))
                        .expect("the write succeeds")
                })
                .collect()
        };
        // 1 MiB records: seven to a segment.
        drop(append(14));
        assert_eq!(files(journal.slot()).len(), 1);
        let slot = journal.slot().to_path_buf();
        let spares = || {
            std::fs::read_dir(&slot).map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(SPARE_PREFIX))
                    .count()
            })
        };
        assert_eq!(spares()?, 1, "the full segment was kept for reuse");
        // The next two segments reuse the two full ones' files, full of older records.
        let kept = append(8);
        assert_eq!(spares()?, 0);
        assert_eq!(files(journal.slot()).len(), 2);
        // A crash: the records are never handled.
        std::mem::forget(kept);
        drop(journal);
        let (journal, leftovers) = Journal::open(dir.path())?;
        assert_eq!(journal.slot(), slot);
        assert!(leftovers.unclean);
        assert_eq!(spares()?, 0, "spares are deleted, never read");
        let scan = leftovers.read();
        assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
        assert_eq!(
            scan.records.len(),
            8,
            "the last eight records, none of the older ones"
        );
        Ok(())
    }

    /// A row of a typical size (~170 bytes journaled).
    fn row(n: usize) -> LedgerRow {
        LedgerRow {
            request_id: uuid::Uuid::now_v7(),
            session_id: Some(format!("session-{n}")),
            jsonrpc_id: Some(n.to_string()),
            method: "tools/call".into(),
            tool_name: Some("find_tasks".into()),
            timestamp: chrono::Utc::now(),
            total_tokens: Some(2005),
            ..LedgerRow::default()
        }
    }

    fn request_ids(scan: &Scan) -> Vec<uuid::Uuid> {
        scan.records
            .iter()
            .map(|r| match r {
                Entry::Row(row) => row.request_id,
                Entry::Observed(o) => o.request_id,
            })
            .collect()
    }

    /// Checks that no segment outgrew its bound, then "crashes" (the records are never
    /// handled) and returns the request ids the next start replays, none of them damaged.
    fn crash_and_replay(
        dir: &Path,
        journal: Journal,
        kept: Vec<Ticket>,
    ) -> std::io::Result<Vec<uuid::Uuid>> {
        for segment in files(journal.slot()) {
            let length = std::fs::metadata(&segment)?.len();
            assert!(length <= SEGMENT_BYTES + SEGMENT_HEADER, "{length}");
        }
        std::mem::forget(kept);
        drop(journal);
        let (_journal, leftovers) = Journal::open(dir)?;
        let scan = leftovers.read();
        assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
        Ok(request_ids(&scan))
    }

    /// Small records are copied through the mapped window across several moves of it, a
    /// record larger than a window is written between them, and after a crash all of them
    /// replay in order, undamaged.
    #[test]
    fn records_copied_through_the_window_replay_after_a_crash() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (journal, _) = Journal::open(dir.path())?;
        let rows: Vec<LedgerRow> = (0..4000).map(row).collect();
        let large = observation_of(WINDOW_BYTES as usize);
        let mut kept = Vec::new();
        let mut ids = Vec::new();
        for (n, row) in rows.iter().enumerate() {
            kept.extend(journal.append(&Record::Row(row))?);
            ids.push(row.request_id);
            if n == 2000 {
                kept.extend(journal.append(&Record::Exchange(Exchange::from(&large)))?);
                ids.push(large.request_id);
            }
        }
        assert_eq!(kept.len(), ids.len());
        if cfg!(target_os = "linux") {
            let current = lock(&journal.current);
            assert!(
                matches!(current.mapping, Mapping::Mapped { .. }),
                "rows are copied through the map"
            );
        }
        assert_eq!(crash_and_replay(dir.path(), journal, kept)?, ids);
        Ok(())
    }

    /// Segments filled through the map rotate, retire as spares and are reused (shortened
    /// back while unmapped); a crash then replays only the records of the live segments.
    #[test]
    fn mapped_segments_rotate_and_reuse_spares() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (journal, _) = Journal::open(dir.path())?;
        let base = observation_of(100 * 1024);
        let mut ids = Vec::new();
        let mut append = |n: usize| -> std::io::Result<Vec<Ticket>> {
            let mut kept = Vec::new();
            for _ in 0..n {
                let record = Observation {
                    request_id: uuid::Uuid::now_v7(),
                    ..base.clone()
                };
                kept.extend(journal.append(&Record::Exchange(Exchange::from(&record)))?);
                ids.push(record.request_id);
            }
            Ok(kept)
        };
        // ~80 to a segment: three segments, two of them full.
        drop(append(200)?);
        assert_eq!(files(journal.slot()).len(), 1, "the full ones were retired");
        // Two more full segments, in the spares' files.
        let kept = append(200)?;
        assert_eq!(files(journal.slot()).len(), 3);
        // The three live segments' records: the last ones appended, every unhandled one among
        // them, none of what the reused files held before.
        let replayed = crash_and_replay(dir.path(), journal, kept)?;
        assert!((200..300).contains(&replayed.len()), "{}", replayed.len());
        assert_eq!(replayed, ids[ids.len() - replayed.len()..]);
        Ok(())
    }

    /// What an append of a typical row costs, copied through the map and written with `write`
    /// (BENCHMARKS.md, "the journal appended through a memory map"); each row's ticket is
    /// dropped at once, as the writer does soon after, so full segments retire and are reused:
    /// `cargo test --release --lib append_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement"]
    fn append_cost() -> std::io::Result<()> {
        let rows: Vec<LedgerRow> = (0..200_000).map(row).collect();
        for round in 0..3 {
            for mapped in [true, false] {
                let dir = tempfile::tempdir()?;
                let (journal, _) = Journal::open(dir.path())?;
                if !mapped {
                    lock(&journal.current).mapping = Mapping::Off;
                }
                let start = std::time::Instant::now();
                for row in &rows {
                    drop(journal.append(&Record::Row(row))?);
                }
                let each = start.elapsed() / rows.len() as u32;
                let how = if mapped { "mapped" } else { "write" };
                println!("round {round}: {how}: {each:?} an append");
                journal.close_clean();
            }
        }
        Ok(())
    }
}
