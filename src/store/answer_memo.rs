//! Whole answers of board reads remembered between board writes. A read such as `find_tasks`
//! answers the same text until a write changes what it shows, and every such write sets a new
//! `board_answers` version in its own transaction (migration 0024). So the answer a read made
//! at one version answers every later read of the same arguments at that version, on any
//! replica: one read of the version row replaces the read's statements, its rows'
//! decoding and its serialisation.
//!
//! Time changes an answer too: a claim whose lease runs out is ended (and recorded) by the
//! next read that shows tasks, and `unclaimed` filters by it. An answer is therefore only kept
//! until the earliest lease on the board when it was made; past that, the read is made afresh
//! (and sweeps). The version and that lease are read *before* the answer is made, so a write
//! that lands meanwhile can only leave the entry under an old version (never used again),
//! never make a stale one.
//!
//! What is remembered belongs to one [`Answers`], made for one store and owned by the board
//! that serves from it: two boards in one process (two replicas in a test) never share an
//! answer or a version read.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::version_reads::VersionReads;
use super::{Store, on_pool};
use crate::bounded::Bounded;
use crate::sync::lock;

/// Most answers remembered, and most bytes of them (keys and texts): past either, the memo
/// starts over. Bounds what distinct client queries can take; one 100-row page is ~100 KB.
const MAX_ENTRIES: usize = 512;
const MAX_BYTES: usize = 4 << 20;

const STAMP: &str = "SELECT version, (SELECT MIN(lease_until) FROM tasks \
    WHERE claimed_by IS NOT NULL) AS earliest_lease FROM board_answers";

/// Which answer: the tool and its arguments as validated (their `Debug` text, which names
/// every field, so two calls with one key ask the same question).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    tool: &'static str,
    args: String,
}

impl AnswerKey {
    pub fn new(tool: &'static str, args: &impl std::fmt::Debug) -> AnswerKey {
        AnswerKey {
            tool,
            args: format!("{args:?}"),
        }
    }
}

/// What an answer made now may be remembered under: the version it was read at and the
/// earliest lease then on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerStamp {
    version: i64,
    until: Option<DateTime<Utc>>,
}

impl AnswerStamp {
    /// Whether an answer made under this stamp still holds at `version` and `now`.
    pub fn holds(&self, version: i64, now: DateTime<Utc>) -> bool {
        self.version == version && self.until.is_none_or(|t| now < t)
    }
}

/// An answer remembered (with the stamp it was made under), or the stamp to remember a new
/// one under.
pub enum Recalled {
    Answer(Arc<str>, AnswerStamp),
    Make(AnswerStamp),
}

struct Entry {
    stamp: AnswerStamp,
    text: Arc<str>,
}

/// The answers by key, within [`MAX_ENTRIES`] and [`MAX_BYTES`] (keys' arguments and texts).
struct Memo(Bounded<AnswerKey, Entry>);

impl Default for Memo {
    fn default() -> Memo {
        Memo(Bounded::new(MAX_ENTRIES, MAX_BYTES, |key, entry| {
            key.args.len() + entry.text.len()
        }))
    }
}

impl Memo {
    /// The answer remembered for `key` at `version`, if it still holds at `now`.
    fn recall(&self, key: &AnswerKey, version: i64, now: DateTime<Utc>) -> Option<&Entry> {
        self.0
            .get(key)
            .filter(|entry| entry.stamp.holds(version, now))
    }

    fn remember(&mut self, key: AnswerKey, stamp: AnswerStamp, text: Arc<str>) {
        self.0.insert(key, Entry { stamp, text });
    }
}

/// The answers remembered for one store, and the reads of its version (see
/// [`super::version_reads`]).
pub struct Answers {
    store: Store,
    memo: Mutex<Memo>,
    reads: Arc<VersionReads>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("entries", &lock(&self.memo).0.len())
            .finish_non_exhaustive()
    }
}

impl Answers {
    /// Nothing remembered yet, for the board in `store`.
    pub fn new(store: Store) -> Answers {
        Answers {
            reads: Arc::new(VersionReads::new(store.clone())),
            store,
            memo: Mutex::default(),
        }
    }

    /// The board's answer version, read by a statement that started after this call (shared
    /// with the calls that arrive meanwhile: see [`super::version_reads`]).
    pub async fn version(&self) -> Result<i64, sqlx::Error> {
        self.reads.version().await
    }

    /// The answer remembered for `key` if no board write happened since it was made and no
    /// lease it saw has run out; else the stamp (read now, before the caller makes the
    /// answer) to [`Answers::remember`] the new answer under. One statement when remembered,
    /// two when not.
    pub async fn recall(&self, key: &AnswerKey) -> Result<Recalled, sqlx::Error> {
        let version = self.version().await?;
        let now = Utc::now();
        if let Some(entry) = lock(&self.memo).recall(key, version, now) {
            return Ok(Recalled::Answer(entry.text.clone(), entry.stamp));
        }
        let (version, until) = on_pool!(&self.store, pool => {
            sqlx::query_as::<_, (i64, Option<DateTime<Utc>>)>(STAMP).fetch_one(pool).await
        })?;
        Ok(Recalled::Make(AnswerStamp { version, until }))
    }

    /// Remembers `text` as the answer to `key` under `stamp`.
    pub fn remember(&self, key: AnswerKey, stamp: AnswerStamp, text: Arc<str>) {
        lock(&self.memo).remember(key, stamp, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn recalled(memo: &Memo, key: &AnswerKey, version: i64, now: DateTime<Utc>) -> Option<String> {
        memo.recall(key, version, now).map(|e| e.text.to_string())
    }

    #[test]
    fn an_answer_holds_at_its_version_until_its_lease() {
        let mut memo = Memo::default();
        let now = Utc::now();
        let key = AnswerKey::new("test_tool", &("an_answer_holds", 1));
        let stamp = AnswerStamp {
            version: 7,
            until: Some(now + TimeDelta::seconds(5)),
        };
        memo.remember(key.clone(), stamp, Arc::from("text"));
        assert_eq!(recalled(&memo, &key, 7, now).as_deref(), Some("text"));
        assert_eq!(recalled(&memo, &key, 8, now), None, "another version");
        assert_eq!(
            recalled(&memo, &key, 7, now + TimeDelta::seconds(5)),
            None,
            "lease ran out"
        );
        let other = AnswerKey::new("test_tool", &("an_answer_holds", 2));
        assert_eq!(recalled(&memo, &other, 7, now), None, "other arguments");
    }

    #[test]
    fn an_answer_larger_than_the_bound_is_not_kept() {
        let mut memo = Memo::default();
        let key = AnswerKey::new("test_tool", &"too large");
        let stamp = AnswerStamp {
            version: 1,
            until: None,
        };
        memo.remember(key.clone(), stamp, Arc::from("x".repeat(MAX_BYTES + 1)));
        assert_eq!(recalled(&memo, &key, 1, Utc::now()), None);
    }
}
