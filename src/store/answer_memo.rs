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

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::{Store, on_pool};

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
#[derive(Clone, Copy)]
pub struct AnswerStamp {
    version: i64,
    until: Option<DateTime<Utc>>,
}

/// An answer remembered, or the stamp to remember a new one under.
pub enum Recalled {
    Answer(Arc<str>),
    Make(AnswerStamp),
}

struct Entry {
    stamp: AnswerStamp,
    text: Arc<str>,
}

#[derive(Default)]
struct Memo {
    entries: HashMap<AnswerKey, Entry>,
    bytes: usize,
}

/// Process-wide. Versions are random per database, so an answer of another database is not
/// taken for this one's.
static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(Mutex::default);

fn size(key: &AnswerKey, text: &str) -> usize {
    key.args.len() + text.len()
}

/// The answer remembered for `key` at `version`, if it still holds at `now`.
fn recall(key: &AnswerKey, version: i64, now: DateTime<Utc>) -> Option<Arc<str>> {
    let memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = memo.entries.get(key)?;
    let live = entry.stamp.version == version && entry.stamp.until.is_none_or(|t| now < t);
    live.then(|| entry.text.clone())
}

/// Remembers `text` as the answer to `key` under `stamp`.
pub fn remember(key: AnswerKey, stamp: AnswerStamp, text: Arc<str>) {
    let added = size(&key, &text);
    if added > MAX_BYTES {
        return;
    }
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = memo.entries.remove(&key) {
        memo.bytes -= size(&key, &old.text);
    }
    if memo.entries.len() >= MAX_ENTRIES || memo.bytes + added > MAX_BYTES {
        memo.entries.clear();
        memo.bytes = 0;
    }
    memo.bytes += added;
    memo.entries.insert(key, Entry { stamp, text });
}

impl Store {
    /// The answer remembered for `key` if no board write happened since it was made and no
    /// lease it saw has run out; else the stamp (read now, before the caller makes the
    /// answer) to [`remember`] the new answer under. One statement when remembered, two when
    /// not.
    pub async fn recall_answer(&self, key: &AnswerKey) -> Result<Recalled, sqlx::Error> {
        let version = self.board_answers_version().await?;
        if let Some(text) = recall(key, version, Utc::now()) {
            return Ok(Recalled::Answer(text));
        }
        let (version, until) = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, Option<DateTime<Utc>>)>(STAMP).fetch_one(pool).await
        })?;
        Ok(Recalled::Make(AnswerStamp { version, until }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn an_answer_holds_at_its_version_until_its_lease() {
        let now = Utc::now();
        let key = AnswerKey::new("test_tool", &("an_answer_holds", 1));
        let stamp = AnswerStamp {
            version: 7,
            until: Some(now + TimeDelta::seconds(5)),
        };
        remember(key.clone(), stamp, Arc::from("text"));
        assert_eq!(recall(&key, 7, now).as_deref(), Some("text"));
        assert_eq!(recall(&key, 8, now), None, "another version");
        assert_eq!(
            recall(&key, 7, now + TimeDelta::seconds(5)),
            None,
            "lease ran out"
        );
        let other = AnswerKey::new("test_tool", &("an_answer_holds", 2));
        assert_eq!(recall(&other, 7, now), None, "other arguments");
    }

    #[test]
    fn an_answer_larger_than_the_bound_is_not_kept() {
        let key = AnswerKey::new("test_tool", &"too large");
        let stamp = AnswerStamp {
            version: 1,
            until: None,
        };
        remember(key.clone(), stamp, Arc::from("x".repeat(MAX_BYTES + 1)));
        assert_eq!(recall(&key, 1, Utc::now()), None);
    }
}
