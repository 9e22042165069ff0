//! Listing tasks: one page, its total, and the done tasks a listing hides. The statements
//! carry a condition only for each filter given, so each read can use the index migration
//! 0017 made for it (a `($n IS NULL OR …)` condition makes the planner scan every task); a
//! total that only project, status, assignee and done-ness narrow comes from the counts the
//! triggers of 0017 and 0018 keep (`task_counts` per project, `task_totals` for the whole
//! board), not from a `COUNT(*)`; and a text query reads the engine's text index (SQLite's
//! FTS5 trigram table of 0018, PostgreSQL's `pg_trgm` GIN index of 0017). Each statement is a
//! round trip on PostgreSQL, so a page carries its blockers, its trigger-kept totals and the
//! board's version as columns: one statement per listing in the common cases.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Encode, QueryBuilder, Row, Type};

use super::task_columns::TaskColumns;
use super::task_count_memo::{last, recall, remember};
use super::tasks::{Task, TaskQuery, fold};
use super::{Id, Page, Paged, Store, like_pattern, on_pool, page_query, push_limit};
use crate::board::TaskStatus;

/// The version every task write that can change a count sets (migration 0019).
const VERSION: &str = "SELECT version FROM board_version";

/// The totals of `$filters` on `$pool`, in one statement. Totals the trigger-kept counts
/// cannot answer come from the memo while the board's version is the one they were counted
/// at, else are counted with the version (in one statement, so the two agree) and
/// remembered. A macro so the body is compiled per engine like `on_pool!`'s.
macro_rules! totals {
    ($pool:expr, $filters:expr) => {{
        let filters: &[&Filter] = $filters;
        let remembered = filters.iter().all(|f| f.remembered());
        let mut known = None;
        if remembered {
            let version: i64 = sqlx::query_scalar(VERSION).fetch_one($pool).await?;
            known = filters
                .iter()
                .map(|f| recall($pool, version, f))
                .collect::<Option<Vec<i64>>>();
        }
        match known {
            Some(totals) => totals,
            None => count_now!($pool, filters, remembered),
        }
    }};
}

/// Counts `$filters` on `$pool` in one statement; when `$versioned`, with the board's version,
/// and remembers each total at it.
macro_rules! count_now {
    ($pool:expr, $filters:expr, $versioned:expr) => {{
        let filters: &[&Filter] = $filters;
        let versioned: bool = $versioned;
        let row = Statement::counts(filters, versioned)
            .build()
            .fetch_one($pool)
            .await?;
        let first = usize::from(versioned);
        let totals = (first..first + filters.len())
            .map(|i| row.try_get::<i64, _>(i))
            .collect::<Result<Vec<i64>, _>>()?;
        if versioned {
            let version: i64 = row.try_get(0)?;
            for (filter, total) in filters.iter().zip(&totals) {
                remember($pool, version, filter, *total);
            }
        }
        totals
    }};
}

/// Which done tasks a count or page takes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Done {
    Hidden,
    Included,
    Only,
}

/// How a text condition is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Search {
    /// Through the engine's text index: the matches of a rare term, and every count.
    Indexed,
    /// Along the listing's order index, checking each task: a common term fills a page after
    /// a few tasks, where the text index would fetch and sort every match first.
    Walk,
}

/// The conditions of a task listing, folded and escaped as the columns hold them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Filter {
    project_id: Option<Id>,
    status: Option<&'static str>,
    assignee: Option<String>,
    pattern: Option<String>,
    /// The text query as an FTS5 phrase, on SQLite and when it is long enough for the trigram
    /// index (3 characters: a shorter query has no trigram and is matched by scanning).
    phrase: Option<String>,
    feature: Option<String>,
    done: Done,
    /// Only tasks no live claim holds at this time.
    unclaimed_at: Option<DateTime<Utc>>,
    postgres: bool,
}

impl Filter {
    fn new(store: &Store, query: &TaskQuery, done: Done) -> Filter {
        let postgres = matches!(store, Store::Postgres(_));
        Filter {
            project_id: query.project_id,
            status: query.status,
            assignee: query.assignee.as_deref().map(fold),
            pattern: query.text.as_deref().map(like_pattern),
            phrase: query
                .text
                .as_deref()
                .filter(|_| !postgres)
                .and_then(trigram_phrase),
            feature: query.feature.as_deref().map(fold),
            done,
            unclaimed_at: query.unclaimed.then(Utc::now),
            postgres,
        }
    }

    /// Whether the trigger-kept counts can answer the total: nothing narrows it but their keys.
    fn counted(&self) -> bool {
        self.pattern.is_none() && self.feature.is_none() && self.unclaimed_at.is_none()
    }

    /// Whether a total counted for this filter holds until the board's version changes: one
    /// the counts cannot answer, and that does not depend on the time (`unclaimed`).
    fn remembered(&self) -> bool {
        !self.counted() && self.unclaimed_at.is_none()
    }

    /// The text condition. `LIKE` decides on both engines (the trigram index finds a superset:
    /// every task holding the query's trigrams in order); on SQLite the FTS5 table narrows the
    /// tasks it checks, on PostgreSQL the planner reads the GIN index for `search_text LIKE`,
    /// and the walk hides the column behind an expression so it cannot.
    fn push_text<'a, DB>(&'a self, q: &mut QueryBuilder<'a, DB>, search: Search)
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        let Some(pattern) = &self.pattern else {
            return;
        };
        if let (Search::Indexed, Some(phrase)) = (search, &self.phrase) {
            q.push(" AND rowid IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ")
                .push_bind(phrase.as_str())
                .push(")");
        }
        let column = match (search, self.postgres) {
            (Search::Walk, true) => "(search_text || '')",
            _ => "search_text",
        };
        q.push(" AND ").push(column).push(" LIKE ");
        // Backslash is PostgreSQL's default escape; naming it makes a prepared statement's
        // generic plan call `like_escape` on the pattern for every task it checks. On SQLite a
        // bare parameter right of `LIKE` marks the statement as planned for its value (the
        // LIKE prefix optimisation), so every new binding re-prepared it: about a third of a
        // text query's instructions. An expression of the parameter is not planned for.
        if self.postgres {
            q.push_bind(pattern.as_str());
        } else {
            q.push("(")
                .push_bind(pattern.as_str())
                .push(" || '') ESCAPE '\\'");
        }
    }

    /// The same filter without its text query: the tasks a walk passes on its way.
    fn without_text(&self) -> Filter {
        Filter {
            pattern: None,
            phrase: None,
            ..self.clone()
        }
    }
}

/// Every status but done, as SQL literals: `'todo', 'doing', 'review'`.
fn open_statuses() -> String {
    TaskStatus::ALL
        .iter()
        .filter(|s| **s != TaskStatus::Done.as_str())
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` folded and quoted as an FTS5 phrase, if it has the 3 characters a trigram needs.
fn trigram_phrase(text: &str) -> Option<String> {
    let folded = fold(text);
    (folded.chars().count() >= 3).then(|| format!("\"{}\"", folded.replace('"', "\"\"")))
}

/// Counts the claims whose lease ran out before the bound time, as a column of a page's rows.
const EXPIRED_CLAIMS: &str =
    "(SELECT COUNT(*) FROM tasks WHERE claimed_by IS NOT NULL AND lease_until < ";

/// Each listed task's blockers as a column of its row: `<id>+` (still open) or `<id>-`,
/// joined by commas, so a page needs no statement of its own for them.
fn blockers_column(postgres: bool) -> String {
    let join = match postgres {
        true => "string_agg",
        false => "group_concat",
    };
    format!(
        ", (SELECT {join}(CAST(d.blocker_id AS TEXT) || CASE WHEN b.status <> 'done' \
         AND b.archived = FALSE THEN '+' ELSE '-' END, ',') FROM task_dependencies d \
         JOIN tasks b ON b.id = d.blocker_id WHERE d.task_id = listed.id) AS blockers"
    )
}

/// `(blocked_by, open_blockers)` from [`blockers_column`]'s text, each in id order (the order
/// both engines sort ids in: PostgreSQL's `uuid` by bytes, SQLite's lowercase hyphenated
/// text alike).
fn parse_blockers(column: Option<&str>) -> Result<(Vec<Id>, Vec<Id>), uuid::Error> {
    let mut edges = Vec::new();
    for entry in column
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
    {
        let (id, open) = match entry.strip_suffix('+') {
            Some(id) => (id, true),
            None => (entry.strip_suffix('-').unwrap_or(entry), false),
        };
        edges.push((id.parse::<Id>()?, open));
    }
    edges.sort_by_key(|(id, _)| id.0);
    let open = edges
        .iter()
        .filter(|(_, open)| *open)
        .map(|(id, _)| *id)
        .collect();
    Ok((edges.into_iter().map(|(id, _)| id).collect(), open))
}

/// What a page's statement reads beside the page.
struct Beside<'a> {
    /// Filters the trigger-kept counts answer, counted as columns `total_0`, `total_1`….
    counted: &'a [&'a Filter],
    /// The claims whose lease ran out before this time, as column `expired`.
    expired_at: Option<DateTime<Utc>>,
    /// The board's version, as column `listed_version`, read with the rows.
    version: bool,
}

/// A statement of a listing, for either engine. What its binds need of the engine is said once,
/// on this impl, for every part of the counts' and the pages' statements.
struct Statement<'a, DB: Database>(QueryBuilder<'a, DB>);

impl<'a, DB> Statement<'a, DB>
where
    DB: Database,
    Id: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    DateTime<Utc>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    /// One statement counting the tasks of each filter: `SELECT (count), (count)…`, after the
    /// board's version when `versioned`.
    fn counts(filters: &[&'a Filter], versioned: bool) -> QueryBuilder<'a, DB> {
        let mut q = Statement(QueryBuilder::new("SELECT "));
        if versioned {
            q.0.push("(").push(VERSION).push(")");
        }
        for (i, filter) in filters.iter().enumerate() {
            if versioned || i > 0 {
                q.0.push(", ");
            }
            q.0.push("(");
            q.count(filter);
            q.0.push(")");
        }
        q.0
    }

    /// One page of `filter`'s tasks, each with its blockers (column `blockers`) and what
    /// `beside` asks for.
    fn page(
        filter: &'a Filter,
        search: Search,
        page: Page,
        beside: Beside<'a>,
    ) -> QueryBuilder<'a, DB> {
        let mut q = Statement(page_query("SELECT *"));
        for (i, count) in beside.counted.iter().enumerate() {
            q.0.push(", (");
            q.count(count);
            q.0.push(") AS total_").push(i);
        }
        if let Some(now) = beside.expired_at {
            q.0.push(", ")
                .push(EXPIRED_CLAIMS)
                .push_bind(now)
                .push(") AS expired");
        }
        if beside.version {
            q.0.push(", (").push(VERSION).push(") AS listed_version");
        }
        q.0.push(blockers_column(filter.postgres));
        q.0.push(" FROM tasks AS listed");
        q.filter(filter, true, search);
        q.0.push(" ORDER BY task_order DESC, created_at, id");
        push_limit(&mut q.0, page.limit(), page.offset());
        q.0
    }

    /// The `SELECT` that counts the tasks `filter` takes (a scalar subquery of [`Self::counts`]).
    fn count(&mut self, filter: &'a Filter) {
        let counted = filter.counted();
        self.0.push(match (counted, filter.project_id) {
            (true, Some(_)) => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_counts",
            (true, None) => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_totals",
            (false, _) => "SELECT COUNT(*) FROM tasks",
        });
        self.filter(filter, !counted, Search::Indexed);
    }

    /// `WHERE …` for `filter`; `live` adds the archived condition (the counts hold live tasks
    /// only).
    fn filter(&mut self, filter: &'a Filter, live: bool, search: Search) {
        let q = &mut self.0;
        q.push(" WHERE TRUE");
        if live {
            q.push(" AND archived = FALSE");
        }
        if let Some(project) = filter.project_id {
            q.push(" AND project_id = ").push_bind(project);
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status);
        }
        // The counts' few rows are rewritten by every task write, and the pages their old
        // versions filled stay (VACUUM rarely truncates them, and autovacuum may be off): a
        // sum narrowed by status alone scans all those pages with `<> 'done'`, and with the open
        // statuses listed reads their primary-key entries only.
        let status_only = !live && filter.project_id.is_none() && filter.assignee.is_none();
        match (filter.done, status_only) {
            (Done::Hidden, false) => q.push(" AND status <> 'done'"),
            (Done::Hidden, true) => q.push(" AND status IN (").push(open_statuses()).push(")"),
            (Done::Only, _) => q.push(" AND status = 'done'"),
            (Done::Included, _) => q,
        };
        if let Some(assignee) = &filter.assignee {
            q.push(" AND assignee_key = ").push_bind(assignee.as_str());
        }
        filter.push_text(q, search);
        if let Some(feature) = &filter.feature {
            q.push(" AND feature_key = ").push_bind(feature.as_str());
        }
        if let Some(now) = filter.unclaimed_at {
            q.push(" AND (claimed_by IS NULL OR lease_until < ")
                .push_bind(now)
                .push(")");
        }
    }
}

/// Whether walking the order index finds the page sooner than the text index: the walk reads
/// about `page_end × passed / matches` tasks (`passed`: the tasks the other filters take),
/// the index reads all `matches` and sorts them.
fn walk_is_cheaper(matches: i64, passed: i64, page_end: i64) -> bool {
    matches > 0 && matches.saturating_mul(matches) >= page_end.saturating_mul(passed)
}

impl Store {
    /// Live tasks matching `query`, by `task_order` (highest first), then age.
    pub async fn list_tasks(
        &self,
        query: &TaskQuery,
        page: Page,
    ) -> Result<Paged<Task>, sqlx::Error> {
        let listed = self.list_tasks_counting(query, page, false, None).await?;
        Ok(listed.paged)
    }

    /// [`Store::list_tasks`] and, unless `query` includes done tasks, how many done tasks
    /// matched apart from being done (the matches the listing hides), counted together. Claims
    /// whose lease ran out are ended (and recorded) first, as [`Store::end_expired_claims`]
    /// does, and returned as `(project_id, task_id)`; whether any ran out is asked in the
    /// page's own statement, so the common case (none) costs no statement of its own.
    pub async fn list_tasks_swept(
        &self,
        query: &TaskQuery,
        page: Page,
    ) -> Result<Swept, sqlx::Error> {
        let with_closed = !query.include_closed;
        let listed = self
            .list_tasks_counting(query, page, with_closed, Some(Utc::now()))
            .await?;
        let ended = match listed.expired {
            Some(0) => return Ok(Swept::of(listed, Vec::new())),
            // An empty page has no row to carry the answer (nor a claim to show): asked on
            // its own.
            None => return Ok(Swept::of(listed, self.end_expired_claims().await?)),
            Some(_) => self.sweep_expired_claims().await?,
        };
        // The page shows claims as they were before the sweep (this one's, or another
        // replica's that came first): read it again.
        let listed = self
            .list_tasks_counting(query, page, with_closed, None)
            .await?;
        Ok(Swept::of(listed, ended))
    }

    /// How many done tasks match `query` apart from being done: the matches a listing without
    /// `include_closed` hides.
    pub async fn closed_matches(&self, query: &TaskQuery) -> Result<i64, sqlx::Error> {
        let filter = Filter::new(self, query, Done::Only);
        on_pool!(self, pool => Ok(totals!(pool, &[&filter])[0]))
    }

    /// The listing; with `expired_at`, also the claims whose lease ran out before it (`None`
    /// in [`Listed::expired`] when the page is empty). One statement in the common cases: the
    /// trigger-kept counts answer the totals inside the page's statement, and the totals of a
    /// text query come from the memo at the version the page's statement read with the rows.
    async fn list_tasks_counting(
        &self,
        query: &TaskQuery,
        page: Page,
        with_closed: bool,
        expired_at: Option<DateTime<Utc>>,
    ) -> Result<Listed, sqlx::Error> {
        let done = match query.include_closed {
            true => Done::Included,
            false => Done::Hidden,
        };
        let filter = Filter::new(self, query, done);
        let closed = Filter {
            done: Done::Only,
            ..filter.clone()
        };
        let others = filter.without_text();
        let filters: &[&Filter] = match with_closed {
            true => &[&filter, &closed],
            false => &[&filter],
        };
        // A text query may walk the order index, chosen by its matches against the tasks the
        // other filters take; those are counted with the totals, as the last entry.
        let walkable = filter.pattern.is_some() && others.counted();
        let mut wanted = filters.to_vec();
        if walkable {
            wanted.push(&others);
        }
        let all_counted = filters.iter().all(|f| f.counted());
        let memo = !all_counted && filters.iter().all(|f| f.remembered());
        let page_end = page.offset() + page.limit();
        let (items, totals, expired) = on_pool!(self, pool => {
            // The totals, when they must be counted before the page, and the sizes the search
            // is chosen by: with the memo, the last counted ones at any version (a stale guess
            // only makes the read slower, never wrong); without it, counted now.
            let mut totals = None;
            let mut search = Search::Indexed;
            if !all_counted {
                let known = match memo {
                    true => wanted.iter().map(|f| last(pool, f)).collect::<Option<Vec<i64>>>(),
                    false => None,
                };
                let sizes = match known {
                    Some(sizes) => sizes,
                    None => {
                        let counted = count_now!(pool, &wanted, memo);
                        totals = Some(counted[..filters.len()].to_vec());
                        counted
                    }
                };
                // `others`' size follows the totals only when the query may walk.
                if let Some(&passed) = sizes.get(filters.len())
                    && walk_is_cheaper(sizes[0], passed, page_end)
                {
                    search = Search::Walk;
                }
            }
            let beside = Beside {
                counted: if all_counted { filters } else { &[] },
                expired_at,
                version: totals.is_none() && !all_counted,
            };
            let rows = Statement::page(&filter, search, page, beside).build().fetch_all(pool).await?;
            let first = rows.first();
            let expired = match (expired_at, first) {
                (Some(_), Some(row)) => Some(row.try_get::<i64, _>("expired")?),
                _ => None,
            };
            let totals = match (totals, first) {
                (Some(totals), _) => totals,
                (None, Some(row)) if all_counted => (0..filters.len())
                    .map(|i| row.try_get::<i64, _>(format!("total_{i}").as_str()))
                    .collect::<Result<Vec<i64>, _>>()?,
                (None, Some(row)) => {
                    let version: i64 = row.try_get("listed_version")?;
                    match filters.iter().map(|f| recall(pool, version, f)).collect::<Option<Vec<i64>>>() {
                        Some(totals) => totals,
                        None => count_now!(pool, &wanted, true)[..filters.len()].to_vec(),
                    }
                }
                (None, None) => totals!(pool, filters),
            };
            let items = listed_tasks(&rows)?;
            Ok::<_, sqlx::Error>((items, totals, expired))
        })?;
        let paged = Paged {
            items,
            total: totals[0],
        };
        Ok(Listed {
            paged,
            closed: totals.get(1).copied().unwrap_or(0),
            expired,
        })
    }
}

/// A page's rows as tasks with their blockers, each column found by name once per page.
fn listed_tasks<'r, R>(rows: &'r [R]) -> Result<Vec<Task>, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'static str: ColumnIndex<R>,
    Id: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<Id>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns = TaskColumns::of(first)?;
    let blockers = "blockers".index(first)?;
    rows.iter()
        .enumerate()
        .map(|(n, row)| {
            let mut task = columns.read(row, n == 0)?;
            let column: Option<String> = row.try_get(blockers)?;
            let (blocked_by, open) =
                parse_blockers(column.as_deref()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            task.blocked_by = blocked_by;
            task.open_blockers = open;
            Ok(task)
        })
        .collect()
}

/// A listing as [`Store::list_tasks_counting`] read it.
struct Listed {
    paged: Paged<Task>,
    closed: i64,
    expired: Option<i64>,
}

/// A listing read after ending the claims whose lease ran out (see
/// [`Store::list_tasks_swept`]).
pub struct Swept {
    pub found: Paged<Task>,
    /// Done tasks the listing hides (0 when it includes them).
    pub closed_matches: i64,
    /// `(project_id, task_id)` of each task whose claim was ended first.
    pub ended: Vec<(Id, Id)>,
}

impl Swept {
    fn of(listed: Listed, ended: Vec<(Id, Id)>) -> Swept {
        Swept {
            found: listed.paged,
            closed_matches: listed.closed,
            ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigram_phrase_needs_three_characters_and_quotes() {
        assert_eq!(trigram_phrase("ab"), None);
        assert_eq!(trigram_phrase("ÄÖ"), None);
        assert_eq!(trigram_phrase("CaChe"), Some("\"cache\"".into()));
        assert_eq!(trigram_phrase("a\"b"), Some("\"a\"\"b\"".into()));
    }

    #[test]
    fn open_statuses_are_every_status_but_done() {
        assert_eq!(open_statuses(), "'todo', 'doing', 'review'");
    }

    #[test]
    fn blockers_parse_in_id_order_with_the_open_ones() {
        let a = "00000000-0000-4000-8000-000000000001";
        let b = "00000000-0000-4000-8000-00000000000a";
        let c = "ffffffff-0000-4000-8000-000000000000";
        let id = |text: &str| text.parse::<Id>().unwrap();
        let column = format!("{c}+,{a}-,{b}+");
        let (all, open) = parse_blockers(Some(&column)).unwrap();
        assert_eq!(all, vec![id(a), id(b), id(c)]);
        assert_eq!(open, vec![id(b), id(c)]);
        assert_eq!(parse_blockers(None).unwrap(), (vec![], vec![]));
        assert!(parse_blockers(Some("not-an-id+")).is_err());
    }

    /// The page statement's text for a text query, page size `per_page` and page `page`.
    fn page_sql<DB>(postgres: bool, page: u32, per_page: u32) -> String
    where
        DB: Database,
        for<'a> Id: Encode<'a, DB> + Type<DB>,
        for<'a> &'a str: Encode<'a, DB> + Type<DB>,
        for<'a> DateTime<Utc>: Encode<'a, DB> + Type<DB>,
        for<'a> i64: Encode<'a, DB> + Type<DB>,
    {
        let filter = Filter {
            project_id: None,
            status: None,
            assignee: None,
            pattern: Some("%cache%".into()),
            phrase: (!postgres).then(|| "\"cache\"".into()),
            feature: None,
            done: Done::Hidden,
            unclaimed_at: None,
            postgres,
        };
        let beside = Beside {
            counted: &[],
            expired_at: Some(Utc::now()),
            version: true,
        };
        let page = Page { page, per_page };
        let q = Statement::<DB>::page(&filter, Search::Indexed, page, beside);
        q.sql().to_owned()
    }

    #[test]
    fn page_sizes_share_a_few_statements() {
        let texts = |pages: &[u32], postgres: bool| {
            let mut texts = std::collections::HashSet::new();
            for &page in pages {
                for per_page in 1..=100 {
                    texts.insert(match postgres {
                        false => page_sql::<sqlx::Sqlite>(postgres, page, per_page),
                        true => page_sql::<sqlx::Postgres>(postgres, page, per_page),
                    });
                }
            }
            texts.len()
        };
        assert_eq!(texts(&[1, 2, 7], false), 1);
        assert_eq!(texts(&[1], true), 5);
        let sql = page_sql::<sqlx::Postgres>(true, 1, 9);
        assert!(
            sql.ends_with(" LIMIT 16 OFFSET 0) AS page LIMIT $3"),
            "{sql}"
        );
        assert_eq!(sql, page_sql::<sqlx::Postgres>(true, 1, 16));
        assert_ne!(sql, page_sql::<sqlx::Postgres>(true, 1, 17));
        // PostgreSQL's offset stays exact: a later page is a statement of its own.
        assert!(page_sql::<sqlx::Postgres>(true, 3, 9).contains(" LIMIT 16 OFFSET 18) "));
    }

    #[test]
    fn a_common_term_walks_and_a_rare_one_reads_the_index() {
        // 7,500 matches of 75,000 open tasks: ten rows of the order index hold one match.
        assert!(walk_is_cheaper(7_500, 75_000, 10));
        assert!(!walk_is_cheaper(20, 75_000, 10));
        assert!(!walk_is_cheaper(0, 0, 10));
    }
}
