//! A map bounded in entries and in bytes, for what is remembered on behalf of client requests
//! (their distinct queries are not bounded, so neither would the map be).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// A map of at most `max_entries` entries holding at most `max_bytes` (as `size` counts an
/// entry): an entry that would pass either bound starts it over, and one larger than
/// `max_bytes` alone is not kept.
pub(crate) struct Bounded<K, V> {
    entries: HashMap<K, V>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    size: fn(&K, &V) -> usize,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    pub(crate) fn new(max_entries: usize, max_bytes: usize, size: fn(&K, &V) -> usize) -> Self {
        Bounded {
            entries: HashMap::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            size,
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps `value` for `key` (replacing what was kept for it), within the bounds.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        let added = (self.size)(&key, &value);
        if added > self.max_bytes {
            return;
        }
        if let Some((old_key, old)) = self.entries.remove_entry(&key) {
            self.bytes -= (self.size)(&old_key, &old);
        }
        if self.entries.len() >= self.max_entries || self.bytes + added > self.max_bytes {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += added;
        self.entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded() -> Bounded<String, String> {
        Bounded::new(3, 10, |k, v| k.len() + v.len())
    }

    #[test]
    fn it_starts_over_past_its_entries_or_bytes() {
        let mut map = bounded();
        for key in ["a", "b", "c"] {
            map.insert(key.into(), "x".into());
        }
        assert_eq!(map.len(), 3);
        map.insert("d".into(), "x".into());
        assert_eq!(map.len(), 1, "a fourth entry starts over");
        assert!(map.get("d").is_some());
        map.insert("e".into(), "12345678".into());
        assert_eq!(map.len(), 1, "2 + 9 bytes would pass 10: starts over");
        assert!(map.get("e").is_some() && map.get("d").is_none());
    }

    #[test]
    fn a_replaced_entry_is_counted_once_and_a_too_large_one_not_kept() {
        let mut map = bounded();
        map.insert("a".into(), "1234".into());
        map.insert("a".into(), "12345".into());
        map.insert("b".into(), "123".into());
        assert_eq!(map.len(), 2, "6 + 4 bytes fit in 10");
        map.insert("c".into(), "x".repeat(10));
        assert!(map.get("c").is_none());
        assert_eq!(map.len(), 2);
    }
}
