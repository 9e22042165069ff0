//! Listing tasks: one page, its total, and the done tasks a listing hides. The statements
//! carry a condition only for each filter given, so each read can use the index migration
//! 0017 made for it (a `($n IS NULL OR …)` condition makes the planner scan every task);
//! and a total that only project, status, assignee and done-ness narrow comes from the
//! `task_counts` table the triggers of that migration keep, not from a `COUNT(*)`.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::tasks::{Task, TaskQuery, fold};
use super::{Id, Page, Paged, Store, like_pattern, on_pool, push_search};

/// Which done tasks a count or page takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    Hidden,
    Included,
    Only,
}

/// The conditions of a task listing, folded and escaped as the columns hold them.
struct Filter {
    project_id: Option<Id>,
    status: Option<&'static str>,
    assignee: Option<String>,
    pattern: Option<String>,
    feature: Option<String>,
    done: Done,
    /// Only tasks no live claim holds at this time.
    unclaimed_at: Option<DateTime<Utc>>,
}

impl Filter {
    fn new(query: &TaskQuery, done: Done) -> Filter {
        Filter {
            project_id: query.project_id,
            status: query.status,
            assignee: query.assignee.as_deref().map(fold),
            pattern: query.text.as_deref().map(like_pattern),
            feature: query.feature.as_deref().map(fold),
            done,
            unclaimed_at: query.unclaimed.then(Utc::now),
        }
    }

    /// Whether `task_counts` can answer the total: nothing narrows it but its own keys.
    fn counted(&self) -> bool {
        self.pattern.is_none() && self.feature.is_none() && self.unclaimed_at.is_none()
    }

    /// `WHERE …` for the given filters; `live` adds the archived condition (`task_counts`
    /// holds live tasks only).
    fn push<'a, DB>(&'a self, q: &mut QueryBuilder<'a, DB>, live: bool)
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
        push_search(q, self.pattern.as_deref());
        if let Some(feature) = &self.feature {
            q.push(" AND feature_key = ").push_bind(feature.as_str());
        }
        if let Some(now) = self.unclaimed_at {
            q.push(" AND (claimed_by IS NULL OR lease_until < ")
                .push_bind(now)
                .push(")");
        }
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
        let mut q = QueryBuilder::new(match counted {
            true => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_counts",
            false => "SELECT COUNT(*) FROM tasks",
        });
        self.push(&mut q, !counted);
        q
    }
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
        let filter = Filter::new(query, done);
        let mut paged = on_pool!(self, pool => {
            let mut list = QueryBuilder::new("SELECT * FROM tasks");
            filter.push(&mut list, true);
            list.push(" ORDER BY task_order DESC, created_at, id LIMIT ")
                .push_bind(page.limit())
                .push(" OFFSET ")
                .push_bind(page.offset());
            let items = list.build_query_as::<Task>().fetch_all(pool).await?;
            let total: i64 = filter.count().build_query_scalar().fetch_one(pool).await?;
            Ok::<_, sqlx::Error>(Paged { items, total })
        })?;
        self.fill_blockers(&mut paged.items).await?;
        Ok(paged)
    }

    /// How many done tasks match `query` apart from being done: the matches a listing without
    /// `include_closed` hides.
    pub async fn closed_matches(&self, query: &TaskQuery) -> Result<i64, sqlx::Error> {
        let filter = Filter::new(query, Done::Only);
        on_pool!(self, pool => filter.count().build_query_scalar().fetch_one(pool).await)
    }
}
