//! Kept byte strings found from the start of a longer text that goes on with them, without
//! knowing where they end: the counted insides of a board's objects, found at an object's
//! start so the search for its end can be skipped.
//!
//! A tree whose nodes tell their strings apart by the 8-byte word at one offset, the one that
//! ends with the first byte where the strings they held when they split differ: a board's
//! tasks share their first
//! ~270 bytes (sorted keys, `archived\":false,…`), so a key of their first bytes would put
//! them all under one, while the words where they differ (the assignee, a timestamp, the
//! title) part them in a look-up or two. Every string found is confirmed by comparing its
//! bytes (after its last word, which passes over a leaf's other strings at once); a look-up
//! visits every kept string the text starts with.

use std::collections::HashMap;

/// Strings a leaf holds before it splits; a leaf whose strings no word parts (each a prefix
/// of the next, say) holds at most as many, the oldest dropped.
const PER_NODE: usize = 4;

/// A kept string, with its last word: a text whose word at the string's length less 8 is
/// another is passed over without a byte comparison. 8 bytes more an entry.
struct Kept<V> {
    bytes: Box<[u8]>,
    last: u64,
    value: V,
}

impl<V> Kept<V> {
    fn new(bytes: &[u8], value: V) -> Self {
        Kept {
            last: last_word(bytes),
            bytes: bytes.into(),
            value,
        }
    }

    /// Whether `text` starts with this string: its last word first (a leaf's strings share
    /// the words its path picked them by, and a board's tasks their first ~270 bytes, so a
    /// byte comparison with a sibling's text would run that far before it failed; where they
    /// end, their `updated_at` or title, they differ).
    fn starts(&self, text: &[u8]) -> bool {
        text.get(..self.bytes.len())
            .is_some_and(|head| last_word(head) == self.last && *head == *self.bytes)
    }
}

/// The last 8 bytes of `bytes` as a word, zero-padded if it has fewer.
fn last_word(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    word(bytes, len.wrapping_sub(8)).unwrap_or_else(|| {
        let mut padded = [0; 8];
        padded[..len.min(8)].copy_from_slice(&bytes[..len.min(8)]);
        u64::from_le_bytes(padded)
    })
}

/// A node: a leaf, or a split by the word at one offset.
pub(super) struct Starts<V> {
    /// A leaf's strings, newest last.
    here: Vec<Kept<V>>,
    /// Where the word that picks a child begins; None for a leaf.
    at: Option<usize>,
    /// The children by their word at `at`. Seeded per map: the words are a tool's text,
    /// which a caller may choose.
    children: HashMap<u64, Starts<V>, foldhash::fast::RandomState>,
    /// The strings too short to hold the word at `at`.
    short: Option<Box<Starts<V>>>,
}

impl<V> Default for Starts<V> {
    fn default() -> Self {
        Starts {
            here: Vec::new(),
            at: None,
            children: HashMap::default(),
            short: None,
        }
    }
}

/// The 8-byte word of `bytes` at `at`, if it holds one there.
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(word.try_into().ok()?))
}

impl<V: Clone> Starts<V> {
    /// The value of a kept string that `text` starts with and whose length `ends` accepts
    /// (asked only once `text` is known to start with it), with that length (the newest of a
    /// leaf's first).
    pub(super) fn find(
        &self,
        text: &[u8],
        mut ends: impl FnMut(usize) -> bool,
    ) -> Option<(usize, V)> {
        // Subtrees of shorter strings, looked in after the path by words (none on a board: the
        // empty Vec does not allocate).
        let mut shorts: Vec<&Starts<V>> = Vec::new();
        let mut node = self;
        loop {
            // The bytes first: `ends` may take them for those of the kept string.
            let found = node
                .here
                .iter()
                .rev()
                .find(|kept| kept.starts(text) && ends(kept.bytes.len()));
            if let Some(kept) = found {
                return Some((kept.bytes.len(), kept.value.clone()));
            }
            if let Some(short) = node.short.as_deref() {
                shorts.push(short);
            }
            node = node.child(text).or_else(|| shorts.pop())?;
        }
    }

    /// The child that `text`'s word at this node's offset picks, if this is a split.
    fn child(&self, text: &[u8]) -> Option<&Starts<V>> {
        self.children.get(&word(text, self.at?)?)
    }

    /// Keeps `bytes` with `value`: the bytes of the strings dropped to make room (0 if none),
    /// or None if `bytes` was kept already (nothing changes).
    pub(super) fn insert(&mut self, bytes: &[u8], value: V) -> Option<usize> {
        let mut node = self;
        while let Some(at) = node.at {
            node = match word(bytes, at) {
                Some(word) => node.children.entry(word).or_default(),
                None => node.short.get_or_insert_with(Box::default),
            };
        }
        if node.here.iter().any(|kept| *kept.bytes == *bytes) {
            return None;
        }
        node.here.push(Kept::new(bytes, value));
        if node.here.len() > PER_NODE {
            node.split_here();
        }
        let mut dropped = 0;
        while node.here.len() > PER_NODE {
            dropped += node.here.remove(0).bytes.len();
        }
        Some(dropped)
    }

    /// Turns a full leaf into a split by the word that parts its strings most (see
    /// [`Starts::parting_word`]), if one parts them; its strings go to the children, in order.
    fn split_here(&mut self) {
        let Some(at) = self.parting_word() else {
            return;
        };
        for kept in std::mem::take(&mut self.here) {
            let child = match word(&kept.bytes, at) {
                Some(word) => self.children.entry(word).or_default(),
                None => self.short.get_or_insert_with(Box::default),
            };
            child.here.push(kept);
        }
        self.at = Some(at);
    }

    /// Where the word that parts the strings here into most groups begins: the first such
    /// from where they first differ on, among the words every string holds (a board's tasks:
    /// a timestamp or an id, rather than one of four assignees), or else the word that ends
    /// where they first differ; None if neither parts them.
    fn parting_word(&self) -> Option<usize> {
        let (first, rest) = self.here.split_first()?;
        let common = |kept: &Kept<V>| {
            let same = first
                .bytes
                .iter()
                .zip(kept.bytes.iter())
                .take_while(|(a, b)| a == b);
            same.count()
        };
        let differ = rest.iter().map(common).min()?.saturating_sub(7);
        let shortest = self.here.iter().map(|kept| kept.bytes.len()).min()?;
        let mut best: Option<(usize, usize)> = None;
        for at in std::iter::once(differ).chain(differ..=shortest.saturating_sub(8)) {
            let parted = self.parted_by(at);
            if parted > best.map_or(1, |(most, _)| most) {
                best = Some((parted, at));
            }
            if parted == self.here.len() {
                break;
            }
        }
        best.map(|(_, at)| at)
    }

    /// Into how many groups the word at `at` parts the strings here (those too short to hold
    /// it one group).
    fn parted_by(&self, at: usize) -> usize {
        let mut words: Vec<u64> = self
            .here
            .iter()
            .filter_map(|kept| word(&kept.bytes, at))
            .collect();
        let short = usize::from(words.len() < self.here.len());
        words.sort_unstable();
        words.dedup();
        words.len() + short
    }

    /// How many strings are kept, and their bytes.
    #[cfg(test)]
    pub(super) fn kept(&self) -> (usize, usize) {
        let here = self.here.iter().map(|kept| kept.bytes.len());
        let (mut strings, mut bytes) = (self.here.len(), here.sum());
        for child in self.children.values().chain(self.short.as_deref()) {
            let (s, b) = child.kept();
            strings += s;
            bytes += b;
        }
        (strings, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kept string a text starts with is found, whatever was kept before or after it
    /// and however the tree split; strings the text does not start with are not, nor ones
    /// whose length is refused.
    #[test]
    fn every_kept_string_a_text_starts_with_is_found() {
        let mut starts = Starts::default();
        // Strings with a long shared head, told apart far in, some prefixes of others.
        let head = "archived\\\":false,\\\"archived_at\\\":null,\\\"assignee\\\":\\\"".repeat(4);
        let string =
            |n: usize, tail: &str| format!("{head}{}{n:05}{tail}", ["User", "Archon"][n % 2]);
        let mut kept = Vec::new();
        for n in 0..300 {
            let short = string(n, "").into_bytes();
            let long = string(n, "\\\",\\\"title\\\":\\\"x").into_bytes();
            for bytes in [&short, &long] {
                assert_eq!(starts.insert(bytes, bytes.len()), Some(0));
            }
            kept.push((short, long));
        }
        assert_eq!(starts.insert(&kept[7].1, 0), None);
        let bytes = kept
            .iter()
            .map(|(short, long)| short.len() + long.len())
            .sum();
        assert_eq!(starts.kept(), (2 * kept.len(), bytes));
        for (short, long) in &kept {
            let text = [long.as_slice(), b"\\\"}"].concat();
            // The one whose length is asked for, though a shorter one also starts the text.
            for bytes in [short, long] {
                let found = starts.find(&text, |len| len == bytes.len());
                assert_eq!(found, Some((bytes.len(), bytes.len())));
            }
            let cut_short = &long[..long.len() - 1];
            assert_eq!(
                starts.find(cut_short, |_| true),
                Some((short.len(), short.len()))
            );
            assert_eq!(starts.find(&short[..short.len() - 1], |_| true), None);
        }
        assert_eq!(starts.find(string(301, "").as_bytes(), |_| true), None);
        assert_eq!(starts.find(string(7, "").as_bytes(), |_| false), None);
        assert_eq!(starts.find(b"", |_| true), None);
    }

    /// A kept string is found only where the text starts with all of its bytes, not where
    /// its last word matches: one byte changed anywhere (before or inside that word), or one
    /// missing, and it is not found; strings shorter than a word are found by their bytes
    /// too.
    #[test]
    fn a_kept_string_is_found_by_its_bytes_not_its_last_word() {
        for len in [1, 5, 7, 8, 9, 15, 16, 17, 40, 701] {
            let kept: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut starts = Starts::default();
            assert_eq!(starts.insert(&kept, len), Some(0));
            let text = [kept.as_slice(), b"}"].concat();
            assert_eq!(starts.find(&text, |_| true), Some((len, len)));
            for at in 0..len {
                let mut other = text.clone();
                other[at] ^= 0x20;
                assert_eq!(
                    starts.find(&other, |_| true),
                    None,
                    "{len} bytes, {at} changed"
                );
            }
            assert_eq!(starts.find(&kept[..len - 1], |_| true), None, "{len}");
        }
    }

    /// Strings with the same last word, told apart only by their first bytes, are each found
    /// with their own value, and a text starting with none of them finds nothing.
    #[test]
    fn strings_sharing_a_last_word_are_told_apart_by_their_bytes() {
        let mut starts = Starts::default();
        let string = |n: usize| format!("{n:04}{}", "x".repeat(60)).into_bytes();
        for n in 0..50 {
            assert_eq!(starts.insert(&string(n), n), Some(0));
        }
        for n in 0..50 {
            let text = [string(n).as_slice(), b"\\\"}"].concat();
            assert_eq!(starts.find(&text, |_| true), Some((64, n)));
        }
        assert_eq!(starts.find(&string(50), |_| true), None);
    }

    /// Strings too short to hold the word a node splits by are kept apart, in a subtree of
    /// their own, and found.
    #[test]
    fn strings_shorter_than_a_split_word_are_found() {
        let mut starts = Starts::default();
        // Parted by the number at their end, then shorter ones that share their first bytes.
        let head = "x".repeat(40);
        let long: Vec<Vec<u8>> = (0..5)
            .map(|n| format!("{head}{n:04}").into_bytes())
            .collect();
        let short: Vec<Vec<u8>> = (0..12)
            .map(|n| format!("{}{n:02}", &head[..20]).into_bytes())
            .collect();
        for bytes in long.iter().chain(&short) {
            assert_eq!(starts.insert(bytes, bytes.len()), Some(0));
        }
        for bytes in long.iter().chain(&short) {
            let text = [bytes.as_slice(), b"!"].concat();
            let found = starts.find(&text, |len| len == bytes.len());
            assert_eq!(found, Some((bytes.len(), bytes.len())));
        }
    }

    /// Strings that cannot be told apart within their lengths are kept at most
    /// [`PER_NODE`] at a node, the oldest dropped and their bytes given back.
    #[test]
    fn strings_not_told_apart_are_bounded() {
        let mut starts = Starts::default();
        let mut dropped = 0;
        // Each a prefix of the next: no word tells them apart.
        for len in 1..=20 {
            dropped += starts.insert(&vec![b'a'; len], len).unwrap_or(0);
        }
        let (strings, bytes) = starts.kept();
        assert!(strings < 20, "{strings}");
        assert_eq!(bytes + dropped, (1..=20).sum::<usize>());
        assert_eq!(starts.find(&[b'a'; 30], |len| len == 20), Some((20, 20)));
        assert_eq!(starts.find(&[b'a'; 30], |len| len == 1), None);
    }
}
