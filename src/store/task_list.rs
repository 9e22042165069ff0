//! Listing tasks: one page, its total, and the done tasks a listing hides. The statements
//! carry a condition only for each filter given, so each read can use the index migration
//! 0017 made for it (a `($n IS NULL OR …)` condition makes the planner scan every task); a
//! total that only project, status, assignee and done-ness narrow comes from the counts the
//! triggers of 0017 and 0018 keep (`task_counts` per project, `task_totals` for the whole
//! board), not from a `COUNT(*)`; and a text query reads the engine's text index (SQLite's
//! FTS5 trigram table of 0018, PostgreSQL's `pg_trgm` GIN index of 0017).

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::tasks::{Task, TaskQuery, fold};
use super::{Id, Page, Paged, Store, like_pattern, on_pool};

/// Which done tasks a count or page takes.
#[derive(Clone, Copy, PartialEq, Eq)]
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
#[derive(Clone)]
struct Filter {
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

    /// `WHERE …` for the given filters; `live` adds the archived condition (the counts hold
    /// live tasks only).
    fn push<'a, DB>(&'a self, q: &mut QueryBuilder<'a, DB>, live: bool, search: Search)
    where
        DB: Database,
        Id: Encode<'a, DB> + Type<DB>,
        &'a str: Encode<'a, DB> + Type<DB>,
        DateTime<Utc>: Encode<'a, DB> + Type<DB>,
    {
        q.push(" WHERE TRUE");
        if live {
            q.push(" AND archived = FALSE");
        }
        if let Some(project) = self.project_id {
            q.push(" AND project_id = ").push_bind(project);
        }
        if let Some(status) = self.status {
            q.push(" AND status = ").push_bind(status);
        }
        match self.done {
            Done::Hidden => q.push(" AND status <> 'done'"),
            Done::Only => q.push(" AND status = 'done'"),
            Done::Included => q,
        };
        if let Some(assignee) = &self.assignee {
            q.push(" AND assignee_key = ").push_bind(assignee.as_str());
        }
        self.push_text(q, search);
        if let Some(feature) = &self.feature {
            q.push(" AND feature_key = ").push_bind(feature.as_str());
        }
        if let Some(now) = self.unclaimed_at {
            q.push(" AND (claimed_by IS NULL OR lease_until < ")
                .push_bind(now)
                .push(")");
        }
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
        q.push(" AND ")
            .push(column)
            .push(" LIKE ")
            .push_bind(pattern.as_str())
            .push(" ESCAPE '\\'");
    }

    /// The statement that counts the tasks this filter takes.
    fn count<'a, DB>(&'a self) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        Id: Encode<'a, DB> + Type<DB>,
        &'a str: Encode<'a, DB> + Type<DB>,
        DateTime<Utc>: Encode<'a, DB> + Type<DB>,
    {
        let counted = self.counted();
        let mut q = QueryBuilder::new(match (counted, self.project_id) {
            (true, Some(_)) => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_counts",
            (true, None) => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_totals",
            (false, _) => "SELECT COUNT(*) FROM tasks",
        });
        self.push(&mut q, !counted, Search::Indexed);
        q
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

/// `text` folded and quoted as an FTS5 phrase, if it has the 3 characters a trigram needs.
fn trigram_phrase(text: &str) -> Option<String> {
    let folded = fold(text);
    (folded.chars().count() >= 3).then(|| format!("\"{}\"", folded.replace('"', "\"\"")))
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
        let done = match query.include_closed {
            true => Done::Included,
            false => Done::Hidden,
        };
        let filter = Filter::new(self, query, done);
        let others = filter.without_text();
        let mut paged = on_pool!(self, pool => {
            let total: i64 = filter.count().build_query_scalar().fetch_one(pool).await?;
            let mut search = Search::Indexed;
            if filter.pattern.is_some() && others.counted() {
                let passed: i64 = others.count().build_query_scalar().fetch_one(pool).await?;
                if walk_is_cheaper(total, passed, page.offset() + page.limit()) {
                    search = Search::Walk;
                }
            }
            let mut list = QueryBuilder::new("SELECT * FROM tasks");
            filter.push(&mut list, true, search);
            list.push(" ORDER BY task_order DESC, created_at, id LIMIT ")
                .push_bind(page.limit())
                .push(" OFFSET ")
                .push_bind(page.offset());
            let items = list.build_query_as::<Task>().fetch_all(pool).await?;
            Ok::<_, sqlx::Error>(Paged { items, total })
        })?;
        self.fill_blockers(&mut paged.items).await?;
        Ok(paged)
    }

    /// How many done tasks match `query` apart from being done: the matches a listing without
    /// `include_closed` hides.
    pub async fn closed_matches(&self, query: &TaskQuery) -> Result<i64, sqlx::Error> {
        let filter = Filter::new(self, query, Done::Only);
        on_pool!(self, pool => filter.count().build_query_scalar().fetch_one(pool).await)
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
    fn a_common_term_walks_and_a_rare_one_reads_the_index() {
        // 7,500 matches of 75,000 open tasks: ten rows of the order index hold one match.
        assert!(walk_is_cheaper(7_500, 75_000, 10));
        assert!(!walk_is_cheaper(20, 75_000, 10));
        assert!(!walk_is_cheaper(0, 0, 10));
    }
}
