//! Storage on two real engines, SQLite (embedded default) and PostgreSQL.
//!
//! [`Store`] is an enum over the two typed pools so callers stay non-generic. Every query is
//! written once with `$n` placeholders (which both engines accept) and the [`on_pool!`] macro
//! compiles the same body once per engine, so the SQL cannot drift apart. Each engine has its
//! own checked-in migration history under `migrations/{sqlite,postgres}`.

/// Implements sqlx's `Type` for a value type on one engine as the column type it is stored as
/// there (e.g. `Money` as text on SQLite and as `NUMERIC` on PostgreSQL).
macro_rules! stored_as {
    ($ty:ty, $db:ty, $column:ty) => {
        impl sqlx::Type<$db> for $ty {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <$column as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <$column as sqlx::Type<$db>>::compatible(ty)
            }
        }
    };
}

/// Implements sqlx's `Encode` for a value type on one engine: `|value| expr` turns the value
/// into the `$stored` value that is bound in its place.
macro_rules! encoded_as {
    ($ty:ty, $db:ty, $stored:ty, |$value:ident| $encode:expr) => {
        impl<'q> sqlx::Encode<'q, $db> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let $value = self;
                <$stored as sqlx::Encode<'q, $db>>::encode($encode, buf)
            }
        }
    };
}

/// Implements sqlx's `Decode` for a value type on one engine: the column is read as `$stored`
/// and `|stored| expr` makes the value of it (or an error saying what is wrong with it).
macro_rules! decoded_from {
    ($ty:ty, $db:ty, $stored:ty, |$column:ident| $decode:expr) => {
        impl<'r> sqlx::Decode<'r, $db> for $ty {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let $column = <$stored as sqlx::Decode<'r, $db>>::decode(value)?;
                $decode
            }
        }
    };
}

pub mod answer_memo;
pub mod availability;
mod board_tx;
mod id;

pub mod claims;
pub mod cost;
pub mod documents;
pub mod events;
pub mod import;
pub mod keys;
mod ledger_aggregates;
mod ledger_copy;
pub mod money;
pub mod overview;
pub mod prefix;
pub mod pricing;
pub mod projects;
pub mod request_columns;
pub mod request_row;
pub mod request_stats;
pub mod requests;
pub mod restore;
pub mod session_totals;
pub mod sessions;
mod stamp;
pub mod task_activity;
mod task_columns;
mod task_count_memo;
mod task_list;
pub mod tasks;
pub mod upstream_calls;
pub mod upstream_sessions;
pub mod url;
mod version_reads;
pub mod versions;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use board_tx::NextFilter;
pub use id::Id;
pub use money::Money;
pub use prefix::{IdKind, IdMatch};
pub use stamp::Stamp;
pub use url::{DatabaseUrl, UrlError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a writer waits for SQLite's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Each SQLite connection's page cache, in KiB (`PRAGMA cache_size = -N`; SQLite's default is
/// 2,000). Each of the pool's connections fills its cache before reusing a page, so the
/// default held up to ~16 MiB of pages that the OS page cache holds anyway; a board read's
/// own pages (an index walk and a page of rows: 25–130 pages at 10,000 tasks) fit in 512 KiB,
/// and a text query that walks the order index reads more than 2,000 KiB, so it missed in
/// either. Measured in BENCHMARKS.md ("Resident memory, session 17").
const SQLITE_CACHE_KIB: &str = "-512";
/// The SQLite pool's connections: one per core, at least 2 and at most 4. Each is a thread of
/// its own (sqlx runs SQLite on one per connection) with its page cache, parsed schema
/// (~71 KiB), lookaside buffers, prepared statements (~150–380 KiB) and the allocator's pages
/// of that thread: each held ~0.75 MiB of heap under the peer load (BENCHMARKS.md, branches
/// `rss` and `mem5`). No more SQLite calls run at once than there are cores, and a board read
/// answered from memory runs one short statement (`store::answer_memo`), so connections beyond
/// the cores only queue the same work elsewhere.
fn sqlite_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    u32::try_from(cores).unwrap_or(u32::MAX).clamp(2, 4)
}
/// How long a SQLite connection may stay idle before the pool closes it (sqlx's default is
/// ten minutes). Start-up opens all of [`sqlite_connections`] at once, and an idle server's
/// periodic reads (the revocation poll every 2 s) take them in turn from sqlx's first-in,
/// first-out idle queue, so a longer timeout never closes any: idle, each held ~0.5 MiB of
/// heap and a thread. With 3 s an idle server keeps two (BENCHMARKS.md, branch `mem3`); under
/// load no connection is idle that long, so none is reopened.
const SQLITE_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection idle at least this long is pinged before it is handed out (a database restart
/// may have closed it); one back from use moments ago is not.
const PING_IF_IDLE: Duration = Duration::from_secs(1);

/// The options of every pool. sqlx pings each connection it takes from the idle queue by
/// default: a round trip to PostgreSQL, or to SQLite's worker thread, before every statement
/// run on the pool (a `find_projects` runs two: its page and its count). Only connections idle
/// for [`PING_IF_IDLE`] are pinged here; under load connections come back within milliseconds.
fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// What a committed transaction of a [`Store::dedicated`] pool survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commits {
    /// As the shared pool: a process crash. SQLite's WAL with `synchronous = NORMAL` syncs only
    /// at checkpoints, so a power loss may roll back the last commits; PostgreSQL follows the
    /// server's `synchronous_commit`.
    AsShared,
    /// Also a power loss or kernel crash: SQLite syncs the WAL at every commit
    /// (`synchronous = FULL`), and PostgreSQL waits for its WAL flush (`synchronous_commit =
    /// on`, whatever the server's default).
    Durable,
}

/// A connection pool on one of the two supported engines.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the engine's typed pool. The body is compiled once per
/// engine, so a query that does not type-check on both engines does not build.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Inside [`on_pool!`]: one page of `SELECT * FROM $from` rows as `$row`, ordered by `$order`
/// (`$limit` rows after `$offset`, see [`push_limit`]), and the number of all matches, as
/// [`Paged`]. `$filter` pushes the conditions onto the `QueryBuilder` named `$q`; it runs for
/// both queries, so the page and the count cannot disagree about what matches.
macro_rules! fetch_page {
    ($pool:expr, $row:ty, $from:literal, $order:literal, $limit:expr, $offset:expr, |$q:ident| $filter:block) => {{
        let mut $q = $crate::store::page_query(concat!("SELECT * FROM ", $from));
        $filter
        $q.push(concat!(" ORDER BY ", $order));
        $crate::store::push_limit(&mut $q, i64::from($limit), i64::from($offset));
        let items = $q.build_query_as::<$row>().fetch_all($pool).await?;
        let mut $q = sqlx::QueryBuilder::new(concat!("SELECT COUNT(*) FROM ", $from));
        $filter
        let total: i64 = $q.build_query_scalar().fetch_one($pool).await?;
        Ok::<_, sqlx::Error>($crate::store::Paged { items, total })
    }};
}
pub(crate) use fetch_page;

/// A page's statement that starts with `select`; [`push_limit`] ends it.
pub(crate) fn page_query<'a, DB: sqlx::Database>(select: &str) -> sqlx::QueryBuilder<'a, DB> {
    let mut q = sqlx::QueryBuilder::new(match DB::NAME {
        "SQLite" => "",
        _ => "SELECT * FROM (",
    });
    q.push(select);
    q
}

/// Ends a [`page_query`], ordered so far, with its limit and offset, so that page sizes share a
/// statement: each statement text is prepared once per connection, and a prepare costs more
/// than the read.
///
/// SQLite binds both: its plans do not depend on their values (without `ANALYZE` statistics
/// its estimates are the same for any table, and a bound limit changes none of the board's
/// plans), and a subquery would copy every column of every row once more.
///
/// On PostgreSQL the offset and an inner limit are literals: bound, they leave the generic
/// plan guessing a tenth of the table, so it plans the statement again on every call
/// (0.1–0.3 ms). The inner limit is [`planned_limit`], and the outer one, bound, stops the inner
/// query after the page's rows: a subquery with a limit is not merged into its outer query, and
/// is read row by row, in its order.
pub(crate) fn push_limit<'a, DB>(q: &mut sqlx::QueryBuilder<'a, DB>, limit: i64, offset: i64)
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if DB::NAME == "SQLite" {
        q.push(" LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        return;
    }
    q.push(" LIMIT ")
        .push(planned_limit(limit))
        .push(" OFFSET ")
        .push(offset)
        .push(") AS page LIMIT ")
        .push_bind(limit);
}

/// The limit PostgreSQL plans a page for (see [`push_limit`]): the page size rounded up to a
/// power of two, at least 8, so the sizes 1–100 share five statements and each is planned for
/// at most twice the rows it reads. A limit below 1 is kept as it is.
fn planned_limit(limit: i64) -> i64 {
    match u64::try_from(limit) {
        Ok(rows) if rows > 0 => rows
            .max(8)
            .checked_next_power_of_two()
            .and_then(|planned| i64::try_from(planned).ok())
            .unwrap_or(limit),
        _ => limit,
    }
}

/// A write transaction as [`WritePool::begin_write`] opens it.
pub(crate) type WriteTx<Db> = Result<sqlx::Transaction<'static, Db>, sqlx::Error>;

/// Engine-specific pieces of a read-modify-write transaction.
pub(crate) trait WritePool {
    type Db: sqlx::Database;
    /// Appended to a `SELECT` that reads a row the transaction will change: `FOR UPDATE` on
    /// PostgreSQL; empty on SQLite, where `BEGIN IMMEDIATE` already holds the write lock.
    const LOCK_ROW: &'static str;
    fn begin_write(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send;
}

impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;
    const LOCK_ROW: &'static str = "";
    // IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading a
    // read snapshot (which SQLite reports as SQLITE_BUSY, bypassing busy_timeout).
    fn begin_write(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl WritePool for PgPool {
    type Db = sqlx::Postgres;
    const LOCK_ROW: &'static str = " FOR UPDATE";
    fn begin_write(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send {
        self.begin()
    }
}

/// The engine's row-lock suffix for a `SELECT` inside [`WritePool::begin_write`].
pub(crate) fn lock_row<P: WritePool>(_pool: &P) -> &'static str {
    P::LOCK_ROW
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Connect(#[from] sqlx::Error),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A read-only command found no Steward database there (nothing was created).
    #[error("no Steward database is there")]
    Missing(String),
    /// The PostgreSQL server could not be reached at all.
    #[error("cannot connect to PostgreSQL at {address}: {reason}")]
    Unreachable { address: String, reason: String },
}

/// Whether opening may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `serve`, `stdio` and commands that write: create the SQLite file (and its directory)
    /// and apply migrations.
    Create,
    /// Read-only commands: a database that does not exist yet is an error, so a typo or
    /// another working directory never shows an empty board as if it were the real one.
    Existing,
}

/// Creates the SQLite file readable by its owner only (0600) before SQLite opens it: the ledger
/// holds every request. SQLite gives the `-wal` and `-shm` files the main file's mode. An
/// existing file is left as it is (its mode is the operator's choice); `:memory:` and other
/// special names are not files.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() || text.starts_with(':') || text.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A missing directory: let SQLite report it, with the usual hint.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

impl Store {
    /// Connects (creating a SQLite file on first run) and applies pending migrations.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, OpenError> {
        Self::open_with(url, OpenMode::Create).await
    }

    /// Connects and applies pending migrations; with [`OpenMode::Existing`] only if Steward's
    /// database is already there.
    pub async fn open_with(url: &DatabaseUrl, mode: OpenMode) -> Result<Self, OpenError> {
        let store = match url {
            DatabaseUrl::Sqlite { path } => {
                if mode == OpenMode::Existing && !path.exists() {
                    return Err(OpenError::Missing(url.redacted()));
                }
                if mode == OpenMode::Create {
                    create_private(path).map_err(sqlx::Error::Io)?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(mode == OpenMode::Create)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .pragma("cache_size", SQLITE_CACHE_KIB)
                    .foreign_keys(true);
                let pool = pool_options()
                    .max_connections(sqlite_connections())
                    .idle_timeout(SQLITE_IDLE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Store::Sqlite(pool)
            }
            DatabaseUrl::Postgres { url } => {
                let options = PgConnectOptions::from_str(url)?.application_name("steward");
                probe_postgres(&options).await?;
                let pool = pool_options()
                    .max_connections(16)
                    .connect_with(options)
                    .await?;
                Store::Postgres(pool)
            }
        };
        if mode == OpenMode::Existing && !store.has_migrations().await? {
            store.close().await;
            return Err(OpenError::Missing(url.redacted()));
        }
        store.migrate().await?;
        Ok(store)
    }

    /// A PostgreSQL store that connects on first use, for a server that starts while the
    /// database is unreachable (see [`availability`]); [`Store::migrate`] before any other use.
    pub fn open_lazy(url: &DatabaseUrl) -> Result<Self, OpenError> {
        match url {
            DatabaseUrl::Postgres { url } => {
                let options = PgConnectOptions::from_str(url)?.application_name("steward");
                Ok(Store::Postgres(
                    pool_options()
                        .max_connections(16)
                        .connect_lazy_with(options),
                ))
            }
            // A local file is never "unreachable": opening it fails or succeeds at once.
            DatabaseUrl::Sqlite { .. } => Err(OpenError::Missing(url.redacted())),
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        match self {
            Store::Sqlite(pool) => {
                SQLITE_MIGRATIONS.run(pool).await?;
                // The connection that ran them (the pool's only one yet, so the one this
                // statement gets) read the whole schema and filled its page cache with pages
                // no request needs; it may be the connection an idle server keeps open.
                sqlx::query("PRAGMA shrink_memory").execute(pool).await?;
            }
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Whether Steward's migrations have ever run here (an empty file or database has none).
    async fn has_migrations(&self) -> Result<bool, sqlx::Error> {
        let sql = match self {
            Store::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Store::Postgres(_) => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' \
                 AND table_schema = current_schema()"
            }
        };
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?;
        Ok(count > 0)
    }

    /// A pool of its own, with `connections` connections to the same database, for a task that
    /// writes steadily (the ledger's writer). It never waits for, or holds, a connection a
    /// request needs, and its prepared statements (the ledger's multi-row INSERTs are costly to
    /// prepare) stay in the cache of the connection that uses them
    /// instead of being prepared again on each of the shared pool's connections in turn.
    /// Connects on first use.
    pub fn dedicated(&self, connections: u32, commits: Commits) -> Store {
        match self {
            Store::Sqlite(pool) => {
                let mut options = (*pool.connect_options()).clone();
                if commits == Commits::Durable {
                    options = options.synchronous(SqliteSynchronous::Full);
                }
                Store::Sqlite(
                    pool_options()
                        .max_connections(connections)
                        .connect_lazy_with(options),
                )
            }
            Store::Postgres(pool) => {
                let mut options = (*pool.connect_options()).clone();
                if commits == Commits::Durable {
                    options = options.options([("synchronous_commit", "on")]);
                }
                Store::Postgres(
                    pool_options()
                        .max_connections(connections)
                        .connect_lazy_with(options),
                )
            }
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn engine(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Waits for in-flight queries and closes every connection. A connection still busy
    /// [`CLOSE_LIMIT`] later (its statement waiting on a lock another session holds, which
    /// PostgreSQL waits for without limit by default) is left for the process's exit to close,
    /// rather than holding the stop for as long as that lock is held; the log says how many.
    pub async fn close(&self) {
        let closing = on_pool!(self, pool => tokio::time::timeout(CLOSE_LIMIT, pool.close()).await);
        if closing.is_err() {
            let busy = on_pool!(self, pool => pool.size());
            tracing::warn!(
                connections = busy,
                "database connections still running a statement {}s after the stop asked them to close (waiting on another session's lock?): leaving them open",
                CLOSE_LIMIT.as_secs()
            );
        }
    }
}

/// How long [`Store::close`] waits for connections still running a statement.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// Bounds for an open-ended time range, so a query can always say `timestamp >= $n AND
/// timestamp < $m`: a range the index serves on both engines, where `($n IS NULL OR ...)` makes
/// SQLite scan from the newest row. (Both sort before and after any real timestamp, also as
/// SQLite's RFC 3339 text.)
pub fn beginning_of_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or_default() // 0001-01-01
}

/// See [`beginning_of_time`].
pub fn end_of_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(253_402_214_400, 0).unwrap_or_default() // 9999-12-31
}

/// ` AND search_text LIKE …` for a search given, nothing without one: a condition only for
/// what is asked leaves the planner free to read a listing's order off an index.
pub(crate) fn push_search<'a, DB>(q: &mut sqlx::QueryBuilder<'a, DB>, pattern: Option<&'a str>)
where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let Some(pattern) = pattern else {
        return;
    };
    // On SQLite a bare parameter right of `LIKE` is planned for its value, so each new
    // binding re-prepares the statement (see `task_list`'s text condition): bind it inside
    // an expression there.
    if DB::NAME == "SQLite" {
        q.push(" AND search_text LIKE (")
            .push_bind(pattern)
            .push(" || '') ESCAPE '\\'");
    } else {
        q.push(" AND search_text LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }
}

/// Turns a user's search text into a case-insensitive `LIKE` pattern, escaping `%`, `_` and `\`
/// so they match literally (queries use `ESCAPE '\'`).
pub(crate) fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `head` (ending in `IN (`), then `values` bound as a comma-separated list, then `tail`
/// (starting with `)`): a statement about a set of rows.
pub(crate) fn in_list<'a, DB: sqlx::Database, T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>>(
    head: &str,
    values: impl IntoIterator<Item = T>,
    tail: &str,
) -> sqlx::QueryBuilder<'a, DB> {
    let mut query = sqlx::QueryBuilder::new(head);
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    query.push(tail);
    query
}

/// The folded text a row is searched by (`search_text` columns): full Unicode lowercase,
/// computed here because SQLite's `LOWER()` folds ASCII only.
pub(crate) fn search_text(parts: &[&str]) -> String {
    parts.join("\n").to_lowercase()
}

/// A page request already validated by the caller: `page` ≥ 1, `per_page` in 1..=100.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }
    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }
}

/// One page of results plus the total number of matches.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// One direct connection before the pool: a pool retries a refused connection until its
/// acquire timeout and then reports only "pool timed out"; this says what happened and where.
async fn probe_postgres(options: &PgConnectOptions) -> Result<(), OpenError> {
    use sqlx::ConnectOptions;
    match tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            use sqlx::Connection;
            if let Err(error) = connection.close().await {
                // The pool opens connections of its own: a probe that will not close is no
                // reason to refuse to start.
                tracing::debug!(%error, "closing the PostgreSQL probe connection failed");
            }
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(error))) => Err(OpenError::Unreachable {
            address: format!("{}:{}", options.get_host(), options.get_port()),
            reason: error.to_string(),
        }),
        Ok(Err(error)) => Err(OpenError::Connect(error)),
        Err(_) => Err(OpenError::Unreachable {
            address: format!("{}:{}", options.get_host(), options.get_port()),
            reason: format!("no answer within {ACQUIRE_TIMEOUT:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sqlx-core 0.8.6 counted a returned connection as idle only after another task could take
    /// it, so the count could wrap below zero, and the pool's maintenance task then spun a
    /// worker forever (launchbadge/sqlx#3645; vendor/README.md has the patch). Threads taking
    /// and returning connections as fast as they can never see more idle connections than
    /// the pool holds.
    #[test]
    fn the_pool_never_counts_more_idle_connections_than_it_holds() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        const MAX: u32 = 3;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let pool = runtime.block_on(async {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(MAX)
                .connect("sqlite::memory:")
                .await
                .expect("an in-memory SQLite pool");
            let mut held = Vec::new();
            for _ in 0..MAX {
                held.push(pool.acquire().await.expect("a connection"));
            }
            drop(held);
            pool
        });
        let max_seen = Arc::new(AtomicUsize::new(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (pool, max_seen) = (pool.clone(), max_seen.clone());
                let handle = runtime.handle().clone();
                std::thread::spawn(move || {
                    // A dropped connection goes back to the pool from a task on the runtime.
                    let _runtime = handle.enter();
                    while std::time::Instant::now() < deadline {
                        if let Some(connection) = pool.try_acquire() {
                            max_seen.fetch_max(pool.num_idle(), Ordering::Relaxed);
                            drop(connection);
                        }
                        max_seen.fetch_max(pool.num_idle(), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a hammering thread");
        }
        let seen = max_seen.load(Ordering::Relaxed);
        assert!(
            seen <= MAX as usize,
            "the pool counted {seen} idle connections, holding at most {MAX}"
        );
        runtime.block_on(pool.close());
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("100%_x\\"), "%100\\%\\_x\\\\%");
    }

    #[test]
    fn page_offsets() {
        let p = Page {
            page: 3,
            per_page: 10,
        };
        assert_eq!((p.limit(), p.offset()), (10, 20));
    }

    #[test]
    fn a_page_is_planned_for_at_least_its_rows() {
        for limit in (1..=1_000).chain([i64::MAX / 2 + 2, i64::MAX]) {
            let planned = planned_limit(limit);
            assert!(planned >= limit, "{limit}: {planned}");
            assert!(
                planned <= limit.saturating_mul(2).max(8),
                "{limit}: {planned}"
            );
        }
        assert_eq!(
            [1, 8, 9, 16, 17, 100].map(planned_limit),
            [8, 8, 16, 16, 32, 128]
        );
        assert_eq!([0, -1, i64::MIN].map(planned_limit), [0, -1, i64::MIN]);
    }
}
