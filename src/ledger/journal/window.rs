//! Appending through a memory map: the request path copies each record into a shared mapping
//! of its segment's file instead of calling `write` (~4 µs a call under load; a whole append
//! takes 0.22 µs alone against 0.5 with `write`: BENCHMARKS.md, "The journal appended through
//! a memory map"). A page written through a shared mapping is in the page cache at once, as a
//! `write`'s would be, so it survives `kill -9` the same way; [`super::record::copy`] orders
//! its stores so that a kill during the copy leaves the end of the records, not a damaged one.
//!
//! Only a window of the segment is mapped (pages mapped and touched count in the process's
//! RSS), moved forward, the old one unmapped, when a record would not fit. The window's
//! blocks are reserved (`fallocate`, which also makes the file long enough) before it is
//! mapped: touching a page of a sparse file on a full disk would kill the process with
//! SIGBUS, where a reservation fails as an error. Where reserving or mapping fails (another
//! OS, a filesystem without either), or a record is larger than a window, the journal
//! `write`s the record instead.

use std::fs::File;

use memmap2::{MmapMut, MmapOptions};

use super::record::STAMPED_HEADER;

/// The bytes mapped at once, ~1,700 row records; each move costs an `fallocate`, an `mmap`
/// and an `munmap`. An append costs what it does with 1 MiB, and ~10 % more with 64 KiB
/// (BENCHMARKS.md, "The journal appended through a memory map").
pub const WINDOW_BYTES: u64 = 256 * 1024;

/// Where the current segment's next records are copied.
pub enum Mapping {
    /// No window yet (a new segment), or it was given up.
    Unmapped,
    /// The window `[start, start + map.len())` of the segment's file.
    Mapped { start: u64, map: MmapMut },
    /// Mapping failed: records are written with `write` from now on.
    Off,
}

impl Mapping {
    /// The `size` bytes at `at` of the segment's `file`, mapped (the window moved there if
    /// it does not hold them), or `None` to write the record instead: it does not fit in a
    /// window ending by `limit`, or mapping is off. A window holds a stamped header's bytes
    /// past the record too, so the file never ends a few bytes after a record (a reader takes
    /// those for a torn header). An error: the window could not be reserved or mapped.
    pub fn room(
        &mut self,
        file: &File,
        at: u64,
        size: u64,
        limit: u64,
    ) -> std::io::Result<Option<&mut [u8]>> {
        let end = at + size + STAMPED_HEADER as u64;
        if !self.holds(at, end) {
            let window_end = (at + WINDOW_BYTES).min(limit);
            if matches!(self, Mapping::Off) || end > window_end {
                return Ok(None);
            }
            // The old window goes first: two are never mapped (and resident) at once.
            *self = Mapping::Unmapped;
            reserve(file, at, window_end - at)?;
            let map = map_reserved(file, at, window_end - at)?;
            *self = Mapping::Mapped { start: at, map };
        }
        Ok(match self {
            Mapping::Mapped { start, map } => {
                let from = usize::try_from(at - *start).unwrap_or(usize::MAX);
                let to = from.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
                map.get_mut(from..to)
            }
            _ => None,
        })
    }

    fn holds(&self, at: u64, end: u64) -> bool {
        match self {
            Mapping::Mapped { start, map } => *start <= at && end <= *start + map.len() as u64,
            _ => false,
        }
    }

    /// Unmaps the window (the segment is done with), keeping mapping off if it is.
    pub fn unmap(&mut self) {
        if let Mapping::Mapped { .. } = self {
            *self = Mapping::Unmapped;
        }
    }
}

/// Allocates the file's blocks in `[at, at + len)`, extending it if it is shorter.
#[cfg(target_os = "linux")]
fn reserve(file: &File, at: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), at, len)
        .map_err(std::io::Error::from)
}

/// Elsewhere `fallocate` is missing or differs (macOS's truncates a longer file): records
/// are written with `write`.
#[cfg(not(target_os = "linux"))]
fn reserve(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the ledger journal maps its segments on Linux only",
    ))
}

#[allow(unsafe_code)]
fn map_reserved(file: &File, at: u64, len: u64) -> std::io::Result<MmapMut> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: mapping a file is unsound if the file shrinks under the map (a touched page past
    // its end raises SIGBUS) or if its bytes change behind a reference into the map. Neither
    // happens: the file is a segment in this process's slot, whose OS lock this process holds
    // for its life, so no other Steward process opens it; in this process it is written only
    // under the journal's lock, through this map or by `write` while no reference into the
    // map is alive, and it is shortened (`set_len`) only as a spare, which a segment becomes
    // after rotation or shutdown has dropped its map ([`Mapping::unmap`]). `reserve` made it
    // at least `at + len` long.
    unsafe { MmapOptions::new().offset(at).len(len).map_mut(file) }
}
