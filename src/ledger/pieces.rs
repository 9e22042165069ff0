//! A bounded cache of the token counts of pieces that are more than one token, the standard
//! technique of BPE tokenizers (HuggingFace `tokenizers` keeps a word → tokens cache of 10,000
//! entries): merging a piece costs a rank lookup per pair and per merge, finding it again one
//! compare, and a board's answers repeat their words (titles, statuses, field names) far more
//! than they repeat whole texts.
//!
//! Bounded in entries and bytes: [`CAPACITY`] entries of [`ENTRY_BYTES`] (128 KiB once every
//! shard is used; a shard's entries are allocated by its first insert, so a server that has
//! counted nothing holds none), pieces of at most [`LONGEST`] bytes, kept inline. Each shard
//! is two-way set-associative: a set holds its two most recent pieces, and a new one pushes
//! the older out, so the cache never grows and never needs clearing.
//!
//! The writer's analysis thread and the request path's workers may count at once: the cache is
//! split in [`SHARDS`] shards, each behind its own lock, and a count whose shard is busy goes
//! without the cache rather than wait for it.

use std::sync::{Mutex, MutexGuard, TryLockError};

/// The longest piece kept, in bytes (an entry's bytes are inline).
pub const LONGEST: usize = 30;
/// Locks the cache is split between (picked by the piece's hash).
const SHARDS: usize = 16;
/// Sets of two entries per shard.
const SETS: usize = 128;
/// Entries the cache holds at most.
pub const CAPACITY: usize = SHARDS * SETS * 2;
/// What an entry takes: its piece's length, its count, the piece's bytes.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
// The bound the module's documentation and `tokens.rs` state.
const _: () = assert!(CAPACITY * ENTRY_BYTES <= 128 * 1024);

#[derive(Clone, Copy)]
struct Entry {
    /// 0 for a free entry (no piece is empty).
    len: u8,
    count: u8,
    bytes: [u8; LONGEST],
}

const FREE: Entry = Entry {
    len: 0,
    count: 0,
    bytes: [0; LONGEST],
};

impl Entry {
    fn holds(&self, piece: &[u8]) -> bool {
        usize::from(self.len) == piece.len() && self.bytes.get(..piece.len()) == Some(piece)
    }
}

pub struct PieceCache {
    /// Each shard's sets, two entries apiece (the more recent first); empty until its first
    /// insert.
    shards: [Mutex<Vec<Entry>>; SHARDS],
}

impl PieceCache {
    pub const fn new() -> Self {
        PieceCache {
            shards: [const { Mutex::new(Vec::new()) }; SHARDS],
        }
    }

    /// The count kept for `piece`, whose hash is `hash` (any well-mixed 32-bit hash of its
    /// bytes, the same on every call); `None` if it is not kept, or its shard is busy.
    pub fn get(&self, hash: u32, piece: &[u8]) -> Option<usize> {
        let (shard, set) = place(hash);
        let mut entries = self.shard(shard)?;
        let [first, second] = entries.get_mut(set * 2..set * 2 + 2)? else {
            return None;
        };
        if first.holds(piece) {
            return Some(usize::from(first.count));
        }
        if second.holds(piece) {
            // Found again: the more recent of the two now.
            std::mem::swap(first, second);
            return Some(usize::from(first.count));
        }
        None
    }

    /// Keeps `count` for `piece` (not if it is longer than [`LONGEST`] or its shard is busy).
    pub fn insert(&self, hash: u32, piece: &[u8], count: usize) {
        let (Ok(len), Ok(count)) = (u8::try_from(piece.len()), u8::try_from(count)) else {
            return;
        };
        if piece.is_empty() || piece.len() > LONGEST {
            return;
        }
        let (shard, set) = place(hash);
        let Some(mut entries) = self.shard(shard) else {
            return;
        };
        if entries.is_empty() {
            entries.resize(SETS * 2, FREE);
        }
        let Some([first, second]) = entries.get_mut(set * 2..set * 2 + 2) else {
            return;
        };
        let mut bytes = [0; LONGEST];
        bytes[..piece.len()].copy_from_slice(piece);
        *second = std::mem::replace(first, Entry { len, count, bytes });
    }

    /// The shard's entries, unless another thread holds them.
    fn shard(&self, shard: usize) -> Option<MutexGuard<'_, Vec<Entry>>> {
        match self.shards.get(shard)?.try_lock() {
            Ok(entries) => Some(entries),
            // An insert cannot leave an entry half-written by panicking: nothing in it panics.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The pieces kept and the bytes the entries take.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize) {
        let mut pieces = 0;
        let mut bytes = 0;
        for shard in &self.shards {
            let entries = crate::sync::lock(shard);
            pieces += entries.iter().filter(|entry| entry.len > 0).count();
            bytes += entries.capacity() * ENTRY_BYTES;
        }
        (pieces, bytes)
    }
}

/// The shard and the set a piece with this hash goes to: bits from the hash's top (`bpe.rs`
/// passes the high half of its piece hash).
fn place(hash: u32) -> (usize, usize) {
    let shard = (hash >> 28) as usize % SHARDS;
    let set = (hash >> 21) as usize % SETS;
    (shard, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_count_is_found_by_its_bytes_only() {
        let cache = PieceCache::new();
        assert_eq!(cache.held(), (0, 0), "nothing allocated before an insert");
        cache.insert(7, b"ledger", 2);
        assert_eq!(cache.get(7, b"ledger"), Some(2));
        // Same hash, other bytes (a collision): not found.
        assert_eq!(cache.get(7, b"ledgex"), None);
        assert_eq!(cache.get(7, b"ledge"), None);
        // Two pieces of one set are both kept; a third pushes out the least recent.
        cache.insert(7, b"writer", 3);
        assert_eq!(cache.get(7, b"ledger"), Some(2));
        cache.insert(7, b"store", 4);
        assert_eq!(cache.get(7, b"writer"), None);
        assert_eq!(cache.get(7, b"ledger"), Some(2));
        assert_eq!(cache.get(7, b"store"), Some(4));
        // Too long to keep.
        let long = [b'x'; LONGEST + 1];
        cache.insert(9, &long, 5);
        assert_eq!(cache.get(9, &long), None);
        assert_eq!(cache.held().0, 2);
    }
}
