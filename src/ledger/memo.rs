//! Remembers what is costly to work out about a text (its token count, what a tool's reply
//! says), keyed by a hash of the text: results repeat a lot (`tools/list` for every session,
//! the same query again), and a hash costs a fraction of parsing or tokenising.
//!
//! The hash is seeded at random per process, so nobody can craft two texts that share a key;
//! an accidental 64-bit collision between texts of the same length is vanishingly unlikely.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex};

use foldhash::quality::{FoldHasher, RandomState};

static SEED: LazyLock<RandomState> = LazyLock::new(RandomState::default);

/// Identifies a text without building it: a hash of the pieces that determine it (e.g. the
/// raw, still escaped JSON of a reply) and their total length.
pub struct TextKey {
    hasher: FoldHasher<'static>,
    len: usize,
}

impl Default for TextKey {
    fn default() -> Self {
        TextKey {
            hasher: SEED.build_hasher(),
            len: 0,
        }
    }
}

impl TextKey {
    pub fn of(text: &str) -> Self {
        let mut key = TextKey::default();
        key.add(text);
        key
    }

    pub fn add(&mut self, piece: impl AsRef<[u8]>) {
        let piece = piece.as_ref();
        self.hasher.write(piece);
        self.hasher.write_usize(piece.len());
        self.len += piece.len();
    }

    fn finish(&self) -> (usize, u64) {
        (self.len, self.hasher.finish())
    }
}

/// A bounded map from texts to what was worked out about them; it starts over when full.
pub struct Memo<V> {
    map: Mutex<HashMap<(usize, u64), V, foldhash::fast::FixedState>>,
    capacity: usize,
}

impl<V: Clone> Memo<V> {
    pub fn new(capacity: usize) -> Self {
        Memo {
            map: Mutex::new(HashMap::default()),
            capacity,
        }
    }

    /// The value remembered for `key`, or `make()`, remembered. `make` runs without the lock.
    pub fn get_or_insert_with(&self, key: &TextKey, make: impl FnOnce() -> V) -> V {
        let key = key.finish();
        if let Some(value) = crate::sync::lock(&self.map).get(&key) {
            return value.clone();
        }
        let value = make();
        let mut map = crate::sync::lock(&self.map);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_a_key_and_different_ones_do_not() {
        let memo = Memo::new(2);
        assert_eq!(memo.get_or_insert_with(&TextKey::of("abc"), || 1), 1);
        assert_eq!(memo.get_or_insert_with(&TextKey::of("abc"), || 2), 1);
        assert_eq!(memo.get_or_insert_with(&TextKey::of("abd"), || 3), 3);
        // Pieces are delimited: "ab"+"c" is not "a"+"bc".
        let mut split = TextKey::default();
        split.add("ab");
        split.add("c");
        let mut other = TextKey::default();
        other.add("a");
        other.add("bc");
        assert_ne!(split.finish(), other.finish());
        // Full: starts over rather than growing.
        assert_eq!(memo.get_or_insert_with(&TextKey::of("x"), || 4), 4);
        assert_eq!(memo.map.lock().unwrap().len(), 1);
    }
}
