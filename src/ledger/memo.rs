//! Remembers what is costly to work out about a text (its token count, what a tool's reply
//! says): results repeat a lot (`tools/list` for every session, the same query again), and
//! finding one again costs a fraction of parsing or tokenising it. [`Memo`] keys by a hash of
//! the text's pieces (for texts not held in one piece); [`Recent`] compares the bytes
//! themselves.
//!
//! The hash is seeded at random per process, so nobody can craft two texts that share a key;
//! an accidental 64-bit collision between texts of the same length is vanishingly unlikely.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use foldhash::quality::{FoldHasher, RandomState};

use super::starts::Starts;

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

    /// The total length of the pieces.
    pub fn text_len(&self) -> usize {
        self.len
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
        if let Some(value) = self.get(key) {
            return value;
        }
        let value = make();
        self.insert(key, value.clone());
        value
    }

    /// The value remembered for `key`, if any.
    pub fn get(&self, key: &TextKey) -> Option<V> {
        self.hold().get(key)
    }

    /// The memo held for a run of look-ups (a text's parts), locked once rather than once a
    /// part; drop it before working out what is not remembered.
    pub fn hold(&self) -> Held<'_, V> {
        Held(crate::sync::lock(&self.map))
    }

    /// How many values are remembered.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        crate::sync::lock(&self.map).len()
    }

    /// Remembers `value` for `key`.
    pub fn insert(&self, key: &TextKey, value: V) {
        let mut map = crate::sync::lock(&self.map);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key.finish(), value);
    }
}

/// A [`Memo`] held locked (see [`Memo::hold`]).
pub struct Held<'m, V>(
    std::sync::MutexGuard<'m, HashMap<(usize, u64), V, foldhash::fast::FixedState>>,
);

impl<V: Clone> Held<'_, V> {
    /// The value remembered for `key`, if any.
    pub fn get(&self, key: &TextKey) -> Option<V> {
        self.0.get(&key.finish()).cloned()
    }
}

/// Remembers what was worked out about recent byte strings (a reply's `result`), found again
/// by comparing the bytes themselves: cheaper than hashing them (a `memcmp` against the one or
/// two candidates of the same length), and exact. The bytes are kept as shared [`Bytes`]
/// (usually a slice of the reply already in memory, not a copy), within a budget: when the
/// entries would hold more than `max_bytes`, it starts over.
pub struct Recent<V> {
    state: Mutex<RecentState<V>>,
    max_bytes: usize,
}

struct RecentState<V> {
    /// By kind and length: the candidates, newest last.
    entries: HashMap<(&'static str, usize), Vec<(Bytes, V)>, foldhash::fast::FixedState>,
    bytes: usize,
}

/// Candidates kept per kind and length.
const PER_LENGTH: usize = 4;

impl<V: Clone> Recent<V> {
    pub fn new(max_bytes: usize) -> Self {
        Recent {
            state: Mutex::new(RecentState {
                entries: HashMap::default(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// The value remembered for `bytes` of this `kind`, if any.
    pub fn get(&self, kind: &'static str, bytes: &[u8]) -> Option<V> {
        let state = crate::sync::lock(&self.state);
        let candidates = state.entries.get(&(kind, bytes.len()))?;
        let found = candidates.iter().rev().find(|(kept, _)| kept[..] == *bytes);
        found.map(|(_, value)| value.clone())
    }

    /// Remembers `value` for `bytes` of this `kind`, with the bytes `keep()` returns (equal to
    /// `bytes`; not called, and nothing remembered, for bytes too large to be worth holding on
    /// to). `keep` does not run under the lock.
    pub fn insert(&self, kind: &'static str, bytes: &[u8], keep: impl FnOnce() -> Bytes, value: V) {
        if bytes.len() > self.max_bytes / 16 {
            return;
        }
        let kept = keep();
        let mut state = crate::sync::lock(&self.state);
        let RecentState { entries, bytes } = &mut *state;
        if *bytes + kept.len() > self.max_bytes {
            entries.clear();
            *bytes = 0;
        }
        *bytes += kept.len();
        let candidates = entries.entry((kind, kept.len())).or_default();
        if candidates.len() >= PER_LENGTH {
            let (dropped, _) = candidates.remove(0);
            *bytes -= dropped.len();
        }
        candidates.push((kept, value));
    }
}

/// Remembers what was worked out about byte strings of at least [`SAMPLED`] bytes, found
/// again without hashing all of them: keyed by a seeded hash of their length and three of
/// their 8-byte words (first, middle, last), and confirmed by comparing the kept bytes with
/// them (a `memcmp`, far cheaper than hashing every byte); or, kept by
/// [`Sampled::insert_start`], found from the start of a longer text ([`Starts`]). At most
/// `max_bytes` of kept bytes
/// (plus ~50 bytes an entry of bookkeeping); when full, it starts over. Strings that share
/// a key only cost a comparison each, never a wrong value.
pub struct Sampled<V> {
    state: Mutex<SampledState<V>>,
    max_bytes: usize,
}

/// The shortest string a [`Sampled`] keeps.
pub const SAMPLED: usize = 16;

/// Candidates kept per key (newest last).
const PER_KEY: usize = 4;

/// Kept strings that share a key, with their values, newest last.
type Candidates<V> = Vec<(Box<[u8]>, V)>;

struct SampledState<V> {
    entries: HashMap<u64, Candidates<V>, foldhash::fast::FixedState>,
    /// Strings found from the start of a text (see [`SampledHeld::starting`]).
    starts: Starts<V>,
    bytes: usize,
}

impl<V> SampledState<V> {
    /// Makes room for `len` more bytes: starts over when they would not fit.
    fn room_for(&mut self, len: usize, max_bytes: usize) {
        if self.bytes + len > max_bytes {
            self.entries.clear();
            self.starts = Starts::default();
            self.bytes = 0;
        }
    }
}

fn sampled_key(bytes: &[u8]) -> Option<u64> {
    let word = |at: usize| {
        let word = bytes.get(at..at + 8)?;
        Some(u64::from_le_bytes(word.try_into().ok()?))
    };
    let len = bytes.len();
    if len < SAMPLED {
        return None;
    }
    let mut hasher = SEED.build_hasher();
    hasher.write_usize(len);
    hasher.write_u64(word(0)?);
    hasher.write_u64(word(len / 2 - 4)?);
    hasher.write_u64(word(len - 8)?);
    Some(hasher.finish())
}

impl<V: Clone> Sampled<V> {
    pub fn new(max_bytes: usize) -> Self {
        Sampled {
            state: Mutex::new(SampledState {
                entries: HashMap::default(),
                starts: Starts::default(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// The memo held for a run of look-ups; drop it before working out what is not kept.
    pub fn hold(&self) -> SampledHeld<'_, V> {
        SampledHeld(crate::sync::lock(&self.state))
    }

    /// Whether strings of `len` bytes are kept: at least [`SAMPLED`], at most a sixteenth of
    /// the budget.
    pub fn keeps(&self, len: usize) -> bool {
        (SAMPLED..=self.max_bytes / 16).contains(&len)
    }

    /// Keeps `bytes` with `value`, if strings of its length are kept ([`Sampled::keeps`]).
    pub fn insert(&self, bytes: &[u8], value: V) {
        let Some(key) = sampled_key(bytes).filter(|_| self.keeps(bytes.len())) else {
            return;
        };
        let mut state = crate::sync::lock(&self.state);
        state.room_for(bytes.len(), self.max_bytes);
        let SampledState {
            entries,
            bytes: held,
            ..
        } = &mut *state;
        let candidates = entries.entry(key).or_default();
        if candidates.iter().any(|(kept, _)| kept[..] == *bytes) {
            return;
        }
        if candidates.len() >= PER_KEY {
            let (dropped, _) = candidates.remove(0);
            *held -= dropped.len();
        }
        *held += bytes.len();
        candidates.push((bytes.into(), value));
    }

    /// Keeps `bytes` with `value` to be found from the start of a text that goes on with it
    /// ([`SampledHeld::starting`]), not by [`SampledHeld::get`]; if strings of its length are
    /// kept. Within the same budget.
    pub fn insert_start(&self, bytes: &[u8], value: V) {
        if !self.keeps(bytes.len()) {
            return;
        }
        let mut state = crate::sync::lock(&self.state);
        state.room_for(bytes.len(), self.max_bytes);
        if let Some(dropped) = state.starts.insert(bytes, value) {
            state.bytes = state.bytes + bytes.len() - dropped;
        }
    }

    /// How many bytes are kept.
    #[cfg(test)]
    pub fn kept_bytes(&self) -> usize {
        crate::sync::lock(&self.state).bytes
    }
}

/// A [`Sampled`] held locked (see [`Sampled::hold`]).
pub struct SampledHeld<'m, V>(std::sync::MutexGuard<'m, SampledState<V>>);

impl<V: Clone> SampledHeld<'_, V> {
    /// The value kept for `bytes`, if any (never for strings shorter than [`SAMPLED`]).
    pub fn get(&self, bytes: &[u8]) -> Option<V> {
        let candidates = self.0.entries.get(&sampled_key(bytes)?)?;
        let found = candidates.iter().rev().find(|(kept, _)| kept[..] == *bytes);
        found.map(|(_, value)| value.clone())
    }

    /// The value of the newest string kept by [`Sampled::insert_start`] that `text` starts
    /// with and whose length `ends` accepts (asked only once `text` is known to start with
    /// it), with that length.
    pub fn starting(&self, text: &[u8], ends: impl FnMut(usize) -> bool) -> Option<(usize, V)> {
        self.0.starts.find(text, ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_bytes_are_found_by_their_content_within_the_budget() {
        let recent = Recent::new(16 * 64);
        // What the ledger's analysis does: the remembered value, else the new one remembered.
        let remember = |kind: &'static str, bytes: &[u8], value: usize| {
            recent.get(kind, bytes).unwrap_or_else(|| {
                recent.insert(kind, bytes, || Bytes::copy_from_slice(bytes), value);
                value
            })
        };
        assert_eq!(remember("a", b"xyz", 1), 1);
        assert_eq!(remember("a", b"xyz", 2), 1);
        // Same length, other bytes; same bytes, other kind.
        assert_eq!(remember("a", b"xyw", 3), 3);
        assert_eq!(remember("b", b"xyz", 4), 4);
        assert_eq!(remember("a", b"xyw", 5), 3);
        // At most PER_LENGTH candidates per kind and length: the oldest goes.
        for (i, b) in [b"aaa", b"bbb", b"ccc", b"ddd"].into_iter().enumerate() {
            assert_eq!(remember("a", b, 10 + i), 10 + i);
        }
        assert_eq!(remember("a", b"xyz", 6), 6);
        // Larger than a sixteenth of the budget: worked out, not kept.
        let big = [7u8; 65];
        assert_eq!(remember("a", &big, 8), 8);
        assert_eq!(remember("a", &big, 9), 9);
        let state = recent.state.lock().unwrap();
        let held: usize = state.entries.values().flatten().map(|(b, _)| b.len()).sum();
        assert_eq!(state.bytes, held);
    }

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

    #[test]
    fn sampled_strings_are_found_by_their_bytes_within_the_budget() {
        let memo = Sampled::new(64 * 64);
        let string = |middle: &str| format!("{0}{middle}{0}", "p".repeat(20)).into_bytes();
        let (a, b) = (string("ab"), string("ac"));
        memo.insert(&a, 1);
        memo.insert(&b, 2);
        // Too short to sample: not kept.
        memo.insert(b"abc", 3);
        assert_eq!(memo.kept_bytes(), a.len() + b.len());
        let held = memo.hold();
        assert_eq!(held.get(&a), Some(1));
        assert_eq!(held.get(&b), Some(2));
        // Same length, first, middle and last words: compared, not found.
        assert_eq!(held.get(&string("ad")), None);
        assert_eq!(held.get(&a[1..]), None);
        assert_eq!(held.get(b"abc"), None);
        drop(held);
        // At most PER_KEY strings a key (the oldest goes), and the budget held.
        let same_key = |n: usize| format!("{}{n:03}{}", "q".repeat(9), "q".repeat(23)).into_bytes();
        for n in 0..2 * PER_KEY {
            memo.insert(&same_key(n), 10 + n);
        }
        assert_eq!(memo.hold().get(&same_key(0)), None);
        assert_eq!(
            memo.hold().get(&same_key(2 * PER_KEY - 1)),
            Some(10 + 2 * PER_KEY - 1)
        );
        assert_eq!(memo.kept_bytes(), a.len() + b.len() + PER_KEY * 35);
        for n in 0..1000 {
            memo.insert(&format!("{n}{}", "x".repeat(128)).into_bytes(), n);
            assert!(memo.kept_bytes() <= 64 * 64);
        }
    }

    #[test]
    fn strings_found_from_their_start_share_the_budget() {
        let memo = Sampled::new(64 * 64);
        let start = b"a string found from its start".to_vec();
        memo.insert_start(&start, 1);
        // Kept already: nothing changes.
        memo.insert_start(&start, 2);
        assert_eq!(memo.kept_bytes(), start.len());
        let text = [start.as_slice(), b" and more"].concat();
        let found = memo.hold().starting(&text, |len| len == start.len());
        assert_eq!(found, Some((start.len(), 1)));
        // Found only from a text's start, and only such strings.
        assert_eq!(memo.hold().get(&start), None);
        let whole = b"a sampled string, kept whole";
        memo.insert(whole, 3);
        assert_eq!(
            memo.hold().starting(&[whole, &b"!"[..]].concat(), |_| true),
            None
        );
        assert_eq!(memo.kept_bytes(), start.len() + whole.len());
        for n in 0..1000 {
            memo.insert_start(format!("{n}{}", "x".repeat(100)).as_bytes(), n);
            assert!(memo.kept_bytes() <= 64 * 64);
        }
    }
}
