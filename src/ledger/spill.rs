//! The spill file: an append-only JSON-lines file of ledger rows the database could not take
//! yet. Rows wait there across restarts and are replayed (exactly once, thanks to the
//! `request_id` key) as soon as the database takes writes again.
//!
//! The file is created readable by its owner only (0600), and holds at most
//! [`MAX_SPILL_BYTES`]: rows that would take it past that are not written ([`SpillError::Full`]);
//! the writer counts them as lost and `/health` says so until the file is replayed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::entry::LedgerRow;

/// The most the spill file (with a replay in progress) holds: 256 MiB, about a million rows.
pub const MAX_SPILL_BYTES: u64 = 256 * 1024 * 1024;

pub struct Spill {
    path: PathBuf,
    max_bytes: u64,
}

/// Why rows were not spilled.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the spill file is full ({cap} bytes); these rows could not be kept")]
    Full { cap: u64 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Rows read back from the spill file, plus lines that could not be parsed.
pub struct Replay {
    pub rows: Vec<LedgerRow>,
    pub unreadable: usize,
    file: PathBuf,
}

impl Spill {
    pub fn new(path: PathBuf) -> Self {
        Self::with_cap(path, MAX_SPILL_BYTES)
    }

    pub fn with_cap(path: PathBuf, max_bytes: u64) -> Self {
        Spill { path, max_bytes }
    }

    /// Bytes in the spill files now (the file and a replay in progress).
    fn bytes(&self) -> u64 {
        [self.replaying_path(), self.path.clone()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn replaying_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".replaying");
        PathBuf::from(name)
    }

    /// Appends rows; with `durable`, waits until they are on disk (fsync). Refuses them all
    /// when they would take the file past its cap.
    pub fn append(&self, rows: &[LedgerRow], durable: bool) -> Result<(), SpillError> {
        let mut buf = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut buf, row).map_err(std::io::Error::from)?;
            buf.push(b'\n');
        }
        if self.bytes() + buf.len() as u64 > self.max_bytes {
            return Err(SpillError::Full {
                cap: self.max_bytes,
            });
        }
        let (mut file, created) = open_for_append(&self.path)?;
        file.write_all(&buf)?;
        if durable {
            file.sync_data()?;
            // A new file's name is in its directory, which its own fsync does not write: a
            // power loss could otherwise leave the synced rows in a file that has no name.
            if created {
                sync_directory_of(&self.path)?;
            }
        }
        Ok(())
    }

    /// Number of rows waiting in the spill files (for health after a restart).
    pub fn count(&self) -> usize {
        [self.replaying_path(), self.path.clone()]
            .iter()
            .filter_map(|p| File::open(p).ok())
            .map(|f| BufReader::new(f).lines().count())
            .sum()
    }

    /// Takes the rows out for replay. The file is renamed first, so rows appended meanwhile
    /// go to a fresh file and are never lost; a replay left over from a crash comes first.
    pub fn take(&self) -> std::io::Result<Option<Replay>> {
        let replaying = self.replaying_path();
        if !replaying.exists() {
            if !self.path.exists() {
                return Ok(None);
            }
            std::fs::rename(&self.path, &replaying)?;
        }
        let mut rows = Vec::new();
        let mut unreadable = 0;
        for line in BufReader::new(File::open(&replaying)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LedgerRow>(&line) {
                Ok(row) => rows.push(row),
                Err(_) => unreadable += 1,
            }
        }
        Ok(Some(Replay {
            rows,
            unreadable,
            file: replaying,
        }))
    }
}

impl Replay {
    /// Call once every row is stored: removes the replayed file.
    pub fn done(self) -> std::io::Result<()> {
        if self.unreadable > 0 {
            // Keep what could not be read for a person to look at; never delete data silently.
            let mut kept = self.file.clone().into_os_string();
            kept.push(".unreadable");
            return std::fs::rename(&self.file, kept);
        }
        std::fs::remove_file(&self.file)
    }
}

/// Opens `path` to append (0600 where it is created); `true` when this call created it.
fn open_for_append(path: &Path) -> std::io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((options.open(path)?, false))
        }
        Err(error) => Err(error),
    }
}

/// Writes the directory holding `path` to disk (its entries: a file created or renamed in it).
fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::ledger::entry::Micros;

    fn row(method: &str) -> LedgerRow {
        LedgerRow {
            request_id: Uuid::new_v4(),
            method: method.into(),
            duration: Micros::from_micros(5),
            request_bytes: 1,
            response_bytes: 2,
            args_tokens: Some(0),
            result_tokens: Some(0),
            total_tokens: Some(0),
            timestamp: Utc::now(),
            ..LedgerRow::default()
        }
    }

    #[test]
    fn rows_survive_a_round_trip_and_new_appends_are_kept() -> Result<(), SpillError> {
        let dir = tempfile::tempdir()?;
        let spill = Spill::new(dir.path().join("ledger.spill"));
        assert!(spill.take()?.is_none());
        spill.append(&[row("a"), row("b")], true)?;
        assert_eq!(spill.count(), 2);
        let replay = spill.take()?.expect("rows to replay");
        spill.append(&[row("c")], false)?; // arrives during the replay
        assert_eq!(
            replay
                .rows
                .iter()
                .map(|r| r.method.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        replay.done()?;
        let next = spill.take()?.expect("the row appended during replay");
        assert_eq!(next.rows.len(), 1);
        next.done()?;
        assert_eq!(spill.count(), 0);
        Ok(())
    }

    #[test]
    fn the_file_is_private_and_capped() -> Result<(), SpillError> {
        let dir = tempfile::tempdir()?;
        let one = serde_json::to_vec(&row("a"))
            .map_err(std::io::Error::from)?
            .len() as u64
            + 1;
        let spill = Spill::with_cap(dir.path().join("ledger.spill"), 2 * one);
        spill.append(&[row("a"), row("b")], false)?;
        assert!(matches!(
            spill.append(&[row("c")], false),
            Err(SpillError::Full { .. })
        ));
        assert_eq!(spill.count(), 2, "a refused row is not written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spill.path())?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        Ok(())
    }
}
