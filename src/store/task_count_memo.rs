//! Exact task totals remembered between task writes. A text query's total is a `COUNT` over
//! every matching task (thousands at 100,000 tasks), and its answer only changes when a task
//! write changes `board_version` (migration 0019, set in the write's own transaction). So a
//! total counted at one version answers every later read at that version; one read of the
//! version row tells whether it still holds, on any replica. A page reads that row in its own
//! statement, so a text query whose totals are remembered costs one statement.
//!
//! What is remembered belongs to one store (its pool and every clone of it): two stores in one
//! process (in-process servers in tests, a restored copy beside its original) never see each
//! other's totals, even where their versions agree.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use sqlx::{Database, Pool};

use super::task_list::Filter;
use crate::sync::lock;

/// Most filters remembered per store: past it the store's memo starts over. Bounds the memory
/// client queries can take (each key holds one query text of at most a title's length).
const CAPACITY: usize = 4_096;

/// By filter: the version a total was counted at, and the total.
type Totals = HashMap<Filter, (i64, i64)>;

/// One store's totals, under the identity of its pool: the pool's connect options, which it
/// holds in one `Arc` for its lifetime. The `Weak` keeps that allocation's address from being
/// reused by a later pool while the entry lives, and says when the pool is gone.
struct Memo {
    pool: Weak<dyn Any + Send + Sync>,
    totals: Totals,
}

/// The memos of the stores open in this process (a handful: one per store).
static MEMOS: LazyLock<Mutex<Vec<Memo>>> = LazyLock::new(Mutex::default);

/// Runs `f` on the totals remembered for `pool`'s store (empty the first time); drops the
/// memos of stores that are gone.
fn with_totals<DB: Database, T>(pool: &Pool<DB>, f: impl FnOnce(&mut Totals) -> T) -> T {
    let options: Arc<dyn Any + Send + Sync> = pool.connect_options();
    let mut memos = lock(&MEMOS);
    memos.retain(|memo| memo.pool.strong_count() > 0);
    let index = match memos
        .iter()
        .position(|memo| std::ptr::addr_eq(memo.pool.as_ptr(), Arc::as_ptr(&options)))
    {
        Some(index) => index,
        None => {
            memos.push(Memo {
                pool: Arc::downgrade(&options),
                totals: Totals::new(),
            });
            memos.len() - 1
        }
    };
    f(&mut memos[index].totals)
}

/// The total counted for `filter` at `version` on `pool`'s store, if it was.
pub(super) fn recall<DB: Database>(pool: &Pool<DB>, version: i64, filter: &Filter) -> Option<i64> {
    with_totals(pool, |totals| {
        totals
            .get(filter)
            .filter(|(at, _)| *at == version)
            .map(|(_, total)| *total)
    })
}

/// The total last counted for `filter` on `pool`'s store, at whatever version: a guess of its
/// size that only steers how a page is read (see `task_list`), never an answer.
pub(super) fn last<DB: Database>(pool: &Pool<DB>, filter: &Filter) -> Option<i64> {
    with_totals(pool, |totals| totals.get(filter).map(|(_, total)| *total))
}

/// Remembers `total` for `filter` at `version` on `pool`'s store.
pub(super) fn remember<DB: Database>(pool: &Pool<DB>, version: i64, filter: &Filter, total: i64) {
    with_totals(pool, |totals| {
        if totals.len() >= CAPACITY && !totals.contains_key(filter) {
            totals.clear();
        }
        totals.insert(filter.clone(), (version, total));
    })
}
