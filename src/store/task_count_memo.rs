//! Exact task totals remembered between task writes. A text query's total is a `COUNT` over
//! every matching task (thousands at 100,000 tasks), and its answer only changes when a task
//! write changes `board_version` (migration 0019, set in the write's own transaction). So a
//! total counted at one version answers every later read at that version; one read of the
//! version row tells whether it still holds, on any replica. A page reads that row in its own
//! statement, so a text query whose totals are remembered costs one statement.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use super::task_list::Filter;

/// Most filters remembered: past it the memo starts over. Bounds the memory client queries
/// can take (each key holds one query text of at most a title's length).
const CAPACITY: usize = 4_096;

/// Process-wide, by filter: the version a total was counted at, and the total. Versions are
/// random per database, so a total of another database is not taken for this one's.
static MEMO: LazyLock<Mutex<HashMap<Filter, (i64, i64)>>> = LazyLock::new(Mutex::default);

/// The total counted for `filter` at `version`, if it was.
pub(super) fn recall(version: i64, filter: &Filter) -> Option<i64> {
    let memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    memo.get(filter)
        .filter(|(at, _)| *at == version)
        .map(|(_, total)| *total)
}

/// The total last counted for `filter`, at whatever version: a guess of its size that only
/// steers how a page is read (see `task_list`), never an answer.
pub(super) fn last(filter: &Filter) -> Option<i64> {
    let memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    memo.get(filter).map(|(_, total)| *total)
}

/// Remembers `total` for `filter` at `version`.
pub(super) fn remember(version: i64, filter: &Filter, total: i64) {
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    if memo.len() >= CAPACITY && !memo.contains_key(filter) {
        memo.clear();
    }
    memo.insert(filter.clone(), (version, total));
}
