//! The store contract ("store story"): the same behaviour, asserted on real returned values,
//! on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL, through
//! `steward::store::Store` directly.

use crate::common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use steward::board::{Actor, DocumentType, TaskStatus, VersionField};
use steward::store::answer_memo::{AnswerKey, Answers, Recalled};
use steward::store::documents::{Document, DocumentChanges, DocumentQuery, NewDocument};
use steward::store::projects::{NewProject, Project, ProjectChanges, ProjectJson};
use steward::store::tasks::{NewTask, Task, TaskChanges, TaskCount, TaskQuery};
use steward::store::versions::NewVersion;
use steward::store::{Commits, Id, Page, Store};

use common::{Backend, TestDb, open_store};

/// Runs `story` on a migrated store of a fresh database of every configured engine.
async fn on_each_backend<F, Fut>(story: F) -> anyhow::Result<()>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    common::on_each_backend(async |db| with_store(db, &story).await).await
}

/// Runs `story` on `backend` only (when it is configured).
async fn on_backend<F, Fut>(backend: Backend, story: F) -> anyhow::Result<()>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    common::on_backend(backend, async |db| with_store(db, &story).await).await
}

async fn with_store<F, Fut>(db: TestDb, story: &F) -> anyhow::Result<()>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let store = open_store(&db).await?;
    assert_eq!(store.engine(), db.backend.name());
    story(store.clone()).await?;
    store.close().await;
    Ok(())
}

fn page(page: u32, per_page: u32) -> Page {
    Page { page, per_page }
}

/// Large enough to hold everything a story creates.
fn all() -> Page {
    page(1, 100)
}

fn actor(session: &str, client: &str) -> Actor {
    Actor {
        session_id: Some(session.to_string()),
        client_name: Some(client.to_string()),
        principal: None,
    }
}

async fn project(store: &Store, title: &str, description: &str) -> anyhow::Result<Project> {
    let new = NewProject {
        title: title.to_string(),
        description: description.to_string(),
        github_repo: None,
    };
    Ok(store.create_project(&new).await?)
}

fn new_task(
    project_id: Id,
    title: &str,
    status: TaskStatus,
    assignee: &str,
    order: i32,
) -> NewTask {
    NewTask {
        project_id,
        title: title.to_string(),
        description: format!("description of {title}"),
        status: status.as_str(),
        assignee: assignee.to_string(),
        task_order: order,
        feature: None,
        blocked_by: Vec::new(),
        parent_task_id: None,
        sources: Value::Array(Vec::new()),
        code_examples: Value::Array(Vec::new()),
    }
}

fn new_document(project_id: Id, kind: DocumentType, title: &str, content: Value) -> NewDocument {
    NewDocument {
        project_id,
        document_type: kind.as_str(),
        title: title.to_string(),
        content,
        tags: vec!["tag".to_string()],
        author: "tester".to_string(),
    }
}

fn new_version(project_id: Id, field: VersionField, content: Value) -> NewVersion {
    NewVersion {
        project_id,
        field_name: field.as_str(),
        content,
        change_summary: "snapshot".to_string(),
        change_type: "create",
        document_id: None,
        created_by: "tester".to_string(),
    }
}

fn titles_of_projects(items: &[Project]) -> Vec<&str> {
    items.iter().map(|p| p.title.as_str()).collect()
}

fn titles_of_tasks(items: &[Task]) -> Vec<&str> {
    items.iter().map(|t| t.title.as_str()).collect()
}

fn titles_of_documents(items: &[Document]) -> Vec<&str> {
    items.iter().map(|d| d.title.as_str()).collect()
}

fn counts(rows: &[TaskCount]) -> BTreeMap<&str, i64> {
    rows.iter().map(|c| (c.key.as_str(), c.count)).collect()
}

async fn search_projects(store: &Store, query: &str) -> anyhow::Result<Vec<String>> {
    let found = store.list_projects(Some(query), all()).await?;
    assert_eq!(
        found.total,
        found.items.len() as i64,
        "total of search {query:?}"
    );
    let mut titles: Vec<String> = found.items.into_iter().map(|p| p.title).collect();
    titles.sort();
    Ok(titles)
}

#[tokio::test]
async fn projects_create_get_and_defaults() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let created = store
            .create_project(&NewProject {
                title: "Steward".to_string(),
                description: "The board".to_string(),
                github_repo: Some("https://github.com/example/steward".to_string()),
            })
            .await?;
        assert_eq!(created.title, "Steward");
        assert_eq!(created.description, "The board");
        assert_eq!(
            created.github_repo.as_deref(),
            Some("https://github.com/example/steward")
        );
        assert_eq!(created.features.0, json!([]));
        assert_eq!(created.data.0, json!([]));
        assert_eq!(created.prd.0, json!({}));
        assert_eq!(created.created_at, created.updated_at);

        let fetched = store
            .get_project(created.id)
            .await?
            .context("project not found")?;
        assert_eq!(fetched.id, created.id);
        assert_eq!(fetched.title, "Steward");
        assert_eq!(fetched.created_at, created.created_at);
        assert!(store.get_project(Id::new()).await?.is_none());

        let features = json!([{"name": "ledger", "done": false}, {"name": "board", "n": 1.5}]);
        assert!(
            store
                .set_project_json(created.id, ProjectJson::Features, &features)
                .await?
        );
        assert!(
            store
                .set_project_json(created.id, ProjectJson::Prd, &json!({"goal": "ship"}))
                .await?
        );
        assert!(
            !store
                .set_project_json(Id::new(), ProjectJson::Data, &json!([]))
                .await?
        );
        let fetched = store
            .get_project(created.id)
            .await?
            .context("project not found")?;
        assert_eq!(fetched.features.0, features);
        assert_eq!(fetched.prd.0, json!({"goal": "ship"}));
        assert_eq!(fetched.data.0, json!([]));
        assert!(fetched.updated_at >= created.updated_at);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn projects_search_is_case_insensitive_and_literal() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        project(&store, "Alpha Project", "first one").await?;
        project(&store, "Beta", "100% done").await?;
        project(&store, "gamma_underscore", "has an underscore").await?;
        project(&store, "Delta", "back\\slash").await?;
        project(&store, "Epsilon", "plain").await?;

        assert_eq!(search_projects(&store, "alpha").await?, ["Alpha Project"]);
        assert_eq!(
            search_projects(&store, "ALPHA pro").await?,
            ["Alpha Project"]
        );
        // Matches in the description count too.
        assert_eq!(search_projects(&store, "FIRST").await?, ["Alpha Project"]);
        // `%` and `_` are literal characters, not wildcards.
        assert_eq!(search_projects(&store, "%").await?, ["Beta"]);
        assert_eq!(search_projects(&store, "100%").await?, ["Beta"]);
        assert_eq!(search_projects(&store, "_").await?, ["gamma_underscore"]);
        assert_eq!(search_projects(&store, "a_u").await?, ["gamma_underscore"]);
        assert!(search_projects(&store, "a%t").await?.is_empty());
        assert!(search_projects(&store, "Al_ha").await?.is_empty());
        // So is the escape character.
        assert_eq!(search_projects(&store, "\\").await?, ["Delta"]);
        assert_eq!(search_projects(&store, "k\\s").await?, ["Delta"]);
        assert!(search_projects(&store, "no such project").await?.is_empty());

        let everything = store.list_projects(None, all()).await?;
        assert_eq!(everything.total, 5);
        // An empty query matches everything.
        assert_eq!(search_projects(&store, "").await?.len(), 5);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn projects_page_newest_first() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        for n in 1..=5 {
            project(&store, &format!("project {n}"), "").await?;
        }
        let first = store.list_projects(None, page(1, 2)).await?;
        let second = store.list_projects(None, page(2, 2)).await?;
        let third = store.list_projects(None, page(3, 2)).await?;
        let beyond = store.list_projects(None, page(4, 2)).await?;
        assert_eq!(titles_of_projects(&first.items), ["project 5", "project 4"]);
        assert_eq!(
            titles_of_projects(&second.items),
            ["project 3", "project 2"]
        );
        assert_eq!(titles_of_projects(&third.items), ["project 1"]);
        assert!(beyond.items.is_empty());
        for paged in [&first, &second, &third, &beyond] {
            assert_eq!(paged.total, 5, "total counts every match, not the page");
        }
        // Paging applies after the search filter; the total counts matches only.
        project(&store, "other", "").await?;
        let filtered = store.list_projects(Some("PROJECT"), page(2, 3)).await?;
        assert_eq!(filtered.total, 5);
        assert_eq!(
            titles_of_projects(&filtered.items),
            ["project 2", "project 1"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn projects_update_changes_only_given_fields() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let created = project(&store, "Old title", "Old description").await?;

        let changes = ProjectChanges {
            title: Some("New title".to_string()),
            ..Default::default()
        };
        let updated = store
            .update_project(created.id, &changes)
            .await?
            .context("project not found")?;
        assert_eq!(updated.title, "New title");
        assert_eq!(updated.description, "Old description");
        assert_eq!(updated.github_repo, None);
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at >= created.updated_at);

        let changes = ProjectChanges {
            description: Some("New description".to_string()),
            github_repo: Some("https://github.com/example/x".to_string()),
            ..Default::default()
        };
        let updated = store
            .update_project(created.id, &changes)
            .await?
            .context("project not found")?;
        assert_eq!(updated.title, "New title");
        assert_eq!(updated.description, "New description");
        assert_eq!(
            updated.github_repo.as_deref(),
            Some("https://github.com/example/x")
        );

        // No changes at all leaves every field alone.
        let same = store
            .update_project(created.id, &ProjectChanges::default())
            .await?
            .context("project not found")?;
        assert_eq!(same.title, "New title");
        assert_eq!(same.description, "New description");
        assert_eq!(
            same.github_repo.as_deref(),
            Some("https://github.com/example/x")
        );

        let fetched = store
            .get_project(created.id)
            .await?
            .context("project not found")?;
        assert_eq!(fetched.title, "New title");
        assert_eq!(fetched.description, "New description");

        assert!(store.update_project(Id::new(), &changes).await?.is_none());
        Ok(())
    })
    .await
}

/// Projects A and B with four tasks: A has "Write docs" (todo, Alice, 10), "Fix bug" (doing,
/// Bob, 50) and "Ship it" (done, Alice, 0); B has "Review PR" (review, AI IDE Agent, 20).
async fn seed_tasks(store: &Store) -> anyhow::Result<(Project, Project, Vec<Task>)> {
    let a = project(store, "A", "").await?;
    let b = project(store, "B", "").await?;
    let who = actor("session-seed", "seeder");
    let specs = [
        (a.id, "Write docs", TaskStatus::Todo, "Alice", 10),
        (a.id, "Fix bug", TaskStatus::Doing, "Bob", 50),
        (a.id, "Ship it", TaskStatus::Done, "Alice", 0),
        (b.id, "Review PR", TaskStatus::Review, "AI IDE Agent", 20),
    ];
    let mut tasks = Vec::new();
    for (project_id, title, status, assignee, order) in specs {
        tasks.push(
            store
                .create_task(&new_task(project_id, title, status, assignee, order), &who)
                .await??,
        );
    }
    Ok((a, b, tasks))
}

async fn task_titles(store: &Store, query: TaskQuery) -> anyhow::Result<Vec<String>> {
    let found = store.list_tasks(&query, all()).await?;
    assert_eq!(found.total, found.items.len() as i64, "total of {query:?}");
    Ok(found.items.into_iter().map(|t| t.title).collect())
}

#[tokio::test]
async fn tasks_create_and_list_with_each_filter() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (a, b, tasks) = seed_tasks(&store).await?;
        let write_docs = &tasks[0];
        assert_eq!(write_docs.project_id, a.id);
        assert_eq!(write_docs.title, "Write docs");
        assert_eq!(write_docs.description, "description of Write docs");
        assert_eq!(write_docs.status, "todo");
        assert_eq!(write_docs.assignee, "Alice");
        assert_eq!(write_docs.task_order, 10);
        assert_eq!(write_docs.feature, None);
        assert!(!write_docs.archived);
        assert_eq!(write_docs.archived_at, None);
        assert_eq!(write_docs.archived_by, None);
        let fetched = store
            .get_task(write_docs.id)
            .await?
            .context("task not found")?;
        assert_eq!(fetched.title, "Write docs");
        assert!(store.get_task(Id::new()).await?.is_none());

        // No filter: live, open tasks of every project, highest task_order first.
        assert_eq!(
            task_titles(&store, TaskQuery::default()).await?,
            ["Fix bug", "Review PR", "Write docs"]
        );
        let with_closed = TaskQuery {
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(
            task_titles(&store, with_closed).await?,
            ["Fix bug", "Review PR", "Write docs", "Ship it"]
        );

        let in_a = TaskQuery {
            project_id: Some(a.id),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, in_a).await?, ["Fix bug", "Write docs"]);
        let in_a_all = TaskQuery {
            project_id: Some(a.id),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(
            task_titles(&store, in_a_all).await?,
            ["Fix bug", "Write docs", "Ship it"]
        );
        let in_b = TaskQuery {
            project_id: Some(b.id),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, in_b).await?, ["Review PR"]);
        let in_nothing = TaskQuery {
            project_id: Some(Id::new()),
            include_closed: true,
            ..Default::default()
        };
        assert!(task_titles(&store, in_nothing).await?.is_empty());

        let doing = TaskQuery {
            status: Some(TaskStatus::Doing.as_str()),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, doing).await?, ["Fix bug"]);
        // `done` is closed: hidden unless closed tasks are included.
        let done = TaskQuery {
            status: Some(TaskStatus::Done.as_str()),
            ..Default::default()
        };
        assert!(task_titles(&store, done).await?.is_empty());
        let done_all = TaskQuery {
            status: Some(TaskStatus::Done.as_str()),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(task_titles(&store, done_all).await?, ["Ship it"]);

        let alice = TaskQuery {
            assignee: Some("Alice".to_string()),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, alice).await?, ["Write docs"]);
        let alice_all = TaskQuery {
            assignee: Some("Alice".to_string()),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(
            task_titles(&store, alice_all).await?,
            ["Write docs", "Ship it"]
        );
        // Assignee folds case, like text search.
        let lower_alice = TaskQuery {
            assignee: Some("ALICE".to_string()),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(
            task_titles(&store, lower_alice).await?,
            ["Write docs", "Ship it"]
        );

        // Text matches title or description, case-insensitively.
        let fix = TaskQuery {
            text: Some("FIX".to_string()),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, fix).await?, ["Fix bug"]);
        let by_description = TaskQuery {
            text: Some("description of review".to_string()),
            ..Default::default()
        };
        assert_eq!(task_titles(&store, by_description).await?, ["Review PR"]);
        let wildcard = TaskQuery {
            text: Some("%".to_string()),
            include_closed: true,
            ..Default::default()
        };
        assert!(task_titles(&store, wildcard).await?.is_empty());

        // Filters combine.
        let combined = TaskQuery {
            project_id: Some(a.id),
            status: Some(TaskStatus::Done.as_str()),
            assignee: Some("Alice".to_string()),
            text: Some("ship".to_string()),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(task_titles(&store, combined).await?, ["Ship it"]);
        let mismatch = TaskQuery {
            project_id: Some(b.id),
            assignee: Some("Alice".to_string()),
            ..Default::default()
        };
        assert!(task_titles(&store, mismatch).await?.is_empty());

        // Paging: total counts all matches.
        let query = TaskQuery {
            include_closed: true,
            ..Default::default()
        };
        let first = store.list_tasks(&query, page(1, 3)).await?;
        let second = store.list_tasks(&query, page(2, 3)).await?;
        assert_eq!((first.total, second.total), (4, 4));
        assert_eq!(
            titles_of_tasks(&first.items),
            ["Fix bug", "Review PR", "Write docs"]
        );
        assert_eq!(titles_of_tasks(&second.items), ["Ship it"]);
        Ok(())
    })
    .await
}

/// Statements the one connection of `store` (a [`Store::dedicated`] pool of one) has prepared
/// and keeps in sqlx's cache.
async fn cached_statements(store: &Store) -> anyhow::Result<usize> {
    use sqlx::Connection;
    Ok(match store {
        Store::Sqlite(pool) => pool.acquire().await?.cached_statements_size(),
        Store::Postgres(pool) => pool.acquire().await?.cached_statements_size(),
    })
}

/// Pages of 1 to 8 tasks share their statements: once each listing has been read, reading it
/// with another page size prepares nothing new, and each page is the first tasks of the whole
/// listing, in its order.
#[tokio::test]
async fn task_pages_of_other_sizes_prepare_nothing_new() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (a, _, _) = seed_tasks(&store).await?;
        let one = store.dedicated(1, Commits::AsShared);
        let queries = [
            TaskQuery::default(),
            TaskQuery {
                project_id: Some(a.id),
                ..Default::default()
            },
            TaskQuery {
                text: Some("description".into()),
                include_closed: true,
                ..Default::default()
            },
        ];
        let mut listings = Vec::new();
        for query in &queries {
            // Twice: a text query's second read takes its totals from the memo. 1 and 8: a
            // text query's small pages walk the order index, its larger ones read the text
            // index.
            for per_page in [1, 1, 8, 8] {
                one.list_tasks_swept(query, page(1, per_page)).await?;
            }
            listings.push(titles_of_tasks(&one.list_tasks(query, all()).await?.items).join(", "));
        }
        let prepared = cached_statements(&one).await?;
        for per_page in 2..=8 {
            for (query, listing) in queries.iter().zip(&listings) {
                let swept = one.list_tasks_swept(query, page(1, per_page)).await?;
                let titles = titles_of_tasks(&swept.found.items);
                let want: Vec<&str> = listing.split(", ").take(per_page as usize).collect();
                assert_eq!(titles, want, "{query:?}, {per_page} a page");
            }
            assert_eq!(
                cached_statements(&one).await?,
                prepared,
                "statements prepared for pages of {per_page}"
            );
        }
        one.close().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tasks_update_records_one_history_row_per_changed_field() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (_, _, tasks) = seed_tasks(&store).await?;
        let task = &tasks[0];

        let created = store.task_history(task.id, 100).await?;
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].change.field, "created");
        assert_eq!(created[0].change.old_value, None);
        assert_eq!(created[0].change.new_value.as_deref(), Some("Write docs"));
        assert_eq!(created[0].session_id.as_deref(), Some("session-seed"));
        assert_eq!(created[0].client_name.as_deref(), Some("seeder"));

        let changes = TaskChanges {
            title: Some("Write the docs".to_string()),
            // Same value as before: not a change, so no history row.
            description: Some("description of Write docs".to_string()),
            status: Some(TaskStatus::Doing.as_str()),
            assignee: Some("Carol".to_string()),
            task_order: Some(99),
            feature: Some("docs".to_string()),
            ..TaskChanges::default()
        };
        let who = actor("session-1", "claude-code");
        let updated = store
            .update_task(task.id, &changes, None, &who)
            .await??
            .task;
        assert_eq!(updated.title, "Write the docs");
        assert_eq!(updated.description, "description of Write docs");
        assert_eq!(updated.status, "doing");
        assert_eq!(updated.assignee, "Carol");
        assert_eq!(updated.task_order, 99);
        assert_eq!(updated.feature.as_deref(), Some("docs"));
        assert_eq!(updated.created_at, task.created_at);
        assert!(updated.updated_at >= task.updated_at);

        let history = store.task_history(task.id, 100).await?;
        let rows: Vec<(&str, Option<&str>, Option<&str>)> = history[1..]
            .iter()
            .map(|h| {
                (
                    h.change.field.as_str(),
                    h.change.old_value.as_deref(),
                    h.change.new_value.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("title", Some("Write docs"), Some("Write the docs")),
                ("status", Some("todo"), Some("doing")),
                ("assignee", Some("Alice"), Some("Carol")),
                ("task_order", Some("10"), Some("99")),
                ("feature", None, Some("docs")),
            ]
        );
        for row in &history[1..] {
            assert_eq!(row.session_id.as_deref(), Some("session-1"));
            assert_eq!(row.client_name.as_deref(), Some("claude-code"));
        }
        assert_eq!(
            store.task_history(task.id, 2).await?.len(),
            2,
            "limit applies"
        );

        // A partial update touches only its field.
        let just_status = TaskChanges {
            status: Some(TaskStatus::Review.as_str()),
            ..Default::default()
        };
        let anonymous = Actor::default();
        let updated = store
            .update_task(task.id, &just_status, None, &anonymous)
            .await??
            .task;
        assert_eq!(
            (updated.title.as_str(), updated.status.as_str()),
            ("Write the docs", "review")
        );
        let history = store.task_history(task.id, 100).await?;
        assert_eq!(history.len(), 7);
        let last = &history[6];
        assert_eq!(
            (
                last.change.field.as_str(),
                last.change.old_value.as_deref(),
                last.change.new_value.as_deref()
            ),
            ("status", Some("doing"), Some("review"))
        );
        assert_eq!(
            (last.session_id.as_deref(), last.client_name.as_deref()),
            (None, None)
        );

        // Re-applying the same values records nothing.
        store
            .update_task(task.id, &just_status, None, &who)
            .await??;
        assert_eq!(store.task_history(task.id, 100).await?.len(), 7);

        // Other tasks' history is separate.
        assert_eq!(store.task_history(tasks[1].id, 100).await?.len(), 1);
        assert!(
            store
                .update_task(Id::new(), &just_status, None, &who)
                .await?
                .is_err()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tasks_archive_hides_and_records_history() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (a, _, tasks) = seed_tasks(&store).await?;
        let fix_bug = &tasks[1];
        let who = actor("session-2", "cursor");

        let archived = store.archive_task(fix_bug.id, None, &who).await??.task;
        assert!(archived.archived);
        assert!(archived.archived_at.is_some());
        assert_eq!(archived.archived_by.as_deref(), Some("cursor"));

        let in_a = TaskQuery {
            project_id: Some(a.id),
            include_closed: true,
            ..Default::default()
        };
        assert_eq!(task_titles(&store, in_a).await?, ["Write docs", "Ship it"]);
        let by_text = TaskQuery {
            text: Some("fix".to_string()),
            include_closed: true,
            ..Default::default()
        };
        assert!(task_titles(&store, by_text).await?.is_empty());

        // Still readable by id.
        let fetched = store
            .get_task(fix_bug.id)
            .await?
            .context("archived task not found")?;
        assert!(fetched.archived);
        assert_eq!(fetched.archived_by.as_deref(), Some("cursor"));

        let history = store.task_history(fix_bug.id, 100).await?;
        let last = history.last().context("no history")?;
        assert_eq!(history.len(), 2);
        assert_eq!(
            (
                last.change.field.as_str(),
                last.change.old_value.as_deref(),
                last.change.new_value.as_deref()
            ),
            ("archived", Some("false"), Some("true"))
        );
        assert_eq!(
            (last.session_id.as_deref(), last.client_name.as_deref()),
            (Some("session-2"), Some("cursor"))
        );

        // An archived task can be neither archived again nor updated.
        assert!(store.archive_task(fix_bug.id, None, &who).await?.is_err());
        let changes = TaskChanges {
            title: Some("zombie".to_string()),
            ..Default::default()
        };
        assert!(
            store
                .update_task(fix_bug.id, &changes, None, &who)
                .await?
                .is_err()
        );
        assert_eq!(store.task_history(fix_bug.id, 100).await?.len(), 2);
        assert!(store.archive_task(Id::new(), None, &who).await?.is_err());

        // Without a client name, the archiver is "unknown".
        let archived = store
            .archive_task(tasks[0].id, None, &Actor::default())
            .await??
            .task;
        assert_eq!(archived.archived_by.as_deref(), Some("unknown"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tasks_count_by_status_and_assignee() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (a, b, tasks) = seed_tasks(&store).await?;
        let extra = new_task(a.id, "Another", TaskStatus::Todo, "Bob", 5);
        store.create_task(&extra, &Actor::default()).await??;

        let by_status = store.count_tasks_by(Some(a.id), false).await?;
        assert_eq!(
            counts(&by_status),
            BTreeMap::from([("doing", 1), ("done", 1), ("todo", 2)])
        );
        // Sorted by key.
        let keys: Vec<&str> = by_status.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["doing", "done", "todo"]);
        let by_assignee = store.count_tasks_by(Some(a.id), true).await?;
        assert_eq!(
            counts(&by_assignee),
            BTreeMap::from([("Alice", 2), ("Bob", 2)])
        );
        let all_status = store.count_tasks_by(None, false).await?;
        assert_eq!(
            counts(&all_status),
            BTreeMap::from([("doing", 1), ("done", 1), ("review", 1), ("todo", 2)])
        );
        let in_b = store.count_tasks_by(Some(b.id), true).await?;
        assert_eq!(counts(&in_b), BTreeMap::from([("AI IDE Agent", 1)]));
        assert!(
            store
                .count_tasks_by(Some(Id::new()), false)
                .await?
                .is_empty()
        );

        // Archived tasks are not counted.
        store
            .archive_task(tasks[1].id, None, &Actor::default())
            .await??;
        let by_status = store.count_tasks_by(Some(a.id), false).await?;
        assert_eq!(
            counts(&by_status),
            BTreeMap::from([("done", 1), ("todo", 2)])
        );
        let by_assignee = store.count_tasks_by(Some(a.id), true).await?;
        assert_eq!(
            counts(&by_assignee),
            BTreeMap::from([("Alice", 2), ("Bob", 1)])
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn documents_crud_and_type_filter() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let p = project(&store, "Docs", "").await?;
        let other = project(&store, "Other", "").await?;
        let spec_content =
            json!({"sections": [{"title": "Scope", "body": "All of it"}], "version": 1});
        let spec = store
            .create_document(&new_document(
                p.id,
                DocumentType::Spec,
                "The Spec",
                spec_content.clone(),
            ))
            .await?;
        let note1 = store
            .create_document(&new_document(
                p.id,
                DocumentType::Note,
                "First note",
                json!({"text": "one"}),
            ))
            .await?;
        let note2 = store
            .create_document(&new_document(
                p.id,
                DocumentType::Note,
                "Second note",
                json!("plain string"),
            ))
            .await?;
        store
            .create_document(&new_document(
                other.id,
                DocumentType::Note,
                "Elsewhere",
                json!({}),
            ))
            .await?;

        assert_eq!(spec.project_id, p.id);
        assert_eq!(spec.document_type, "spec");
        assert_eq!(spec.title, "The Spec");
        assert_eq!(spec.content.0, spec_content);
        assert_eq!(spec.tags.0, ["tag"]);
        assert_eq!(spec.author, "tester");

        let fetched = store
            .get_document(p.id, note1.id)
            .await?
            .context("document not found")?;
        assert_eq!(fetched.title, "First note");
        assert_eq!(fetched.content.0, json!({"text": "one"}));
        assert_eq!(
            store
                .get_document(p.id, note2.id)
                .await?
                .context("document not found")?
                .content
                .0,
            json!("plain string")
        );
        // A document is only found under its own project.
        assert!(store.get_document(other.id, note1.id).await?.is_none());
        assert!(store.get_document(p.id, Id::new()).await?.is_none());

        let query = |document_type: Option<DocumentType>, text: Option<&str>| DocumentQuery {
            project_id: p.id,
            document_type: document_type.map(DocumentType::as_str),
            text: text.map(str::to_string),
        };
        let everything = store.list_documents(&query(None, None), all()).await?;
        assert_eq!(everything.total, 3);
        assert_eq!(
            titles_of_documents(&everything.items),
            ["Second note", "First note", "The Spec"]
        );
        let notes = store
            .list_documents(&query(Some(DocumentType::Note), None), all())
            .await?;
        assert_eq!(notes.total, 2);
        assert_eq!(
            titles_of_documents(&notes.items),
            ["Second note", "First note"]
        );
        let specs = store
            .list_documents(&query(Some(DocumentType::Spec), None), all())
            .await?;
        assert_eq!(titles_of_documents(&specs.items), ["The Spec"]);
        let designs = store
            .list_documents(&query(Some(DocumentType::Design), None), all())
            .await?;
        assert_eq!((designs.total, designs.items.len()), (0, 0));
        let by_title = store
            .list_documents(&query(None, Some("FIRST")), all())
            .await?;
        assert_eq!(titles_of_documents(&by_title.items), ["First note"]);
        let paged = store.list_documents(&query(None, None), page(2, 2)).await?;
        assert_eq!(paged.total, 3);
        assert_eq!(titles_of_documents(&paged.items), ["The Spec"]);

        // Partial update.
        let changes = DocumentChanges {
            title: Some("First note, revised".to_string()),
            ..Default::default()
        };
        let updated = store
            .update_document(p.id, note1.id, &changes)
            .await?
            .context("document not found")?;
        assert_eq!(updated.title, "First note, revised");
        assert_eq!(updated.content.0, json!({"text": "one"}));
        assert_eq!(updated.tags.0, ["tag"]);
        assert_eq!(updated.document_type, "note");
        assert_eq!(updated.author, "tester");
        let changes = DocumentChanges {
            document_type: Some(DocumentType::Design.as_str()),
            content: Some(json!({"text": "two", "list": [1, 2, 3]})),
            tags: Some(vec!["a".to_string(), "b".to_string()]),
            author: Some("someone else".to_string()),
            ..Default::default()
        };
        let updated = store
            .update_document(p.id, note1.id, &changes)
            .await?
            .context("document not found")?;
        assert_eq!(updated.title, "First note, revised");
        assert_eq!(updated.document_type, "design");
        assert_eq!(updated.content.0, json!({"text": "two", "list": [1, 2, 3]}));
        assert_eq!(updated.tags.0, ["a", "b"]);
        assert_eq!(updated.author, "someone else");
        let fetched = store
            .get_document(p.id, note1.id)
            .await?
            .context("document not found")?;
        assert_eq!(fetched.content.0, json!({"text": "two", "list": [1, 2, 3]}));
        assert!(
            store
                .update_document(other.id, note1.id, &changes)
                .await?
                .is_none()
        );

        assert!(store.delete_document(p.id, note2.id).await?);
        assert!(!store.delete_document(p.id, note2.id).await?);
        assert!(!store.delete_document(other.id, spec.id).await?);
        assert!(store.get_document(p.id, note2.id).await?.is_none());
        let remaining = store.list_documents(&query(None, None), all()).await?;
        assert_eq!(remaining.total, 2);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn documents_replace_all_atomically() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let p = project(&store, "Docs", "").await?;
        let other = project(&store, "Other", "").await?;
        let first = store
            .create_document(&new_document(
                p.id,
                DocumentType::Spec,
                "Spec v1",
                json!({"v": 1}),
            ))
            .await?;
        let second = store
            .create_document(&new_document(
                p.id,
                DocumentType::Guide,
                "Guide v1",
                json!({"v": 1}),
            ))
            .await?;
        let untouched = store
            .create_document(&new_document(
                other.id,
                DocumentType::Note,
                "Untouched",
                json!({}),
            ))
            .await?;

        // A snapshot taken now, as a version would record it.
        let snapshot = store.all_documents(p.id).await?;
        assert_eq!(
            titles_of_documents(&snapshot),
            ["Spec v1", "Guide v1"],
            "oldest first"
        );

        // Then the documents change: one edited, one deleted, one added.
        let edit = DocumentChanges {
            title: Some("Spec v2".to_string()),
            ..Default::default()
        };
        store
            .update_document(p.id, first.id, &edit)
            .await?
            .context("document not found")?;
        store.delete_document(p.id, second.id).await?;
        store
            .create_document(&new_document(p.id, DocumentType::Api, "API", json!([])))
            .await?;

        // Restoring the snapshot brings back exactly its documents, ids and timestamps.
        store.replace_documents(p.id, &snapshot).await?;
        let restored = store.all_documents(p.id).await?;
        assert_eq!(titles_of_documents(&restored), ["Spec v1", "Guide v1"]);
        for (before, after) in snapshot.iter().zip(&restored) {
            assert_eq!(after.id, before.id);
            assert_eq!(after.document_type, before.document_type);
            assert_eq!(after.content.0, before.content.0);
            assert_eq!(after.tags.0, before.tags.0);
            assert_eq!(after.author, before.author);
            assert_eq!(after.created_at, before.created_at);
            assert_eq!(after.updated_at, before.updated_at);
        }

        // Replacing with nothing empties the project; other projects are untouched.
        store.replace_documents(p.id, &[]).await?;
        assert!(store.all_documents(p.id).await?.is_empty());
        let others = store.all_documents(other.id).await?;
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].id, untouched.id);

        // A failing replacement (a duplicate id) changes nothing.
        store.replace_documents(p.id, &snapshot).await?;
        let duplicated = [snapshot[0].clone(), snapshot[0].clone()];
        assert!(store.replace_documents(p.id, &duplicated).await.is_err());
        assert_eq!(
            titles_of_documents(&store.all_documents(p.id).await?),
            ["Spec v1", "Guide v1"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn versions_number_per_field_independently() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let p = project(&store, "Versions", "").await?;
        let other = project(&store, "Other", "").await?;
        let mut numbers = Vec::new();
        for (field, n) in [
            (VersionField::Docs, 1),
            (VersionField::Docs, 2),
            (VersionField::Features, 1),
            (VersionField::Docs, 3),
            (VersionField::Features, 2),
            (VersionField::Prd, 1),
        ] {
            let version = store
                .create_version(&new_version(
                    p.id,
                    field,
                    json!({"field": field.as_str(), "n": n}),
                ))
                .await?;
            numbers.push((version.field_name.clone(), version.version_number));
            assert_eq!(version.version_number, n, "{field:?}");
            assert_eq!(version.project_id, p.id);
            assert_eq!(version.content.0, json!({"field": field.as_str(), "n": n}));
            assert_eq!(version.change_summary, "snapshot");
            assert_eq!(version.change_type, "create");
            assert_eq!(version.created_by, "tester");
            assert_eq!(version.document_id, None);
        }
        // Numbering is per project too.
        let first_elsewhere = store
            .create_version(&new_version(other.id, VersionField::Docs, json!([])))
            .await?;
        assert_eq!(first_elsewhere.version_number, 1);

        let document_id = Id::new();
        let restore = NewVersion {
            change_type: "restore",
            document_id: Some(document_id),
            ..new_version(p.id, VersionField::Data, json!({"restored": true}))
        };
        let restored = store.create_version(&restore).await?;
        assert_eq!(
            (restored.version_number, restored.change_type.as_str()),
            (1, "restore")
        );
        assert_eq!(restored.document_id, Some(document_id));

        let second_docs = store
            .get_version(p.id, "docs", 2)
            .await?
            .context("version not found")?;
        assert_eq!(second_docs.content.0, json!({"field": "docs", "n": 2}));
        assert_eq!(second_docs.field_name, "docs");
        assert!(store.get_version(p.id, "docs", 4).await?.is_none());
        assert!(store.get_version(p.id, "data", 2).await?.is_none());
        assert!(store.get_version(other.id, "docs", 2).await?.is_none());

        let every = store.list_versions(p.id, None, all()).await?;
        assert_eq!(every.total, 7);
        let listed: Vec<(&str, i32)> = every
            .items
            .iter()
            .map(|v| (v.field_name.as_str(), v.version_number))
            .collect();
        assert_eq!(
            listed,
            [
                ("data", 1),
                ("prd", 1),
                ("features", 2),
                ("docs", 3),
                ("features", 1),
                ("docs", 2),
                ("docs", 1)
            ],
            "newest first"
        );
        let docs = store.list_versions(p.id, Some("docs"), all()).await?;
        assert_eq!(docs.total, 3);
        let docs_numbers: Vec<i32> = docs.items.iter().map(|v| v.version_number).collect();
        assert_eq!(docs_numbers, [3, 2, 1]);
        let paged = store.list_versions(p.id, Some("docs"), page(2, 2)).await?;
        assert_eq!(paged.total, 3);
        assert_eq!(
            paged
                .items
                .iter()
                .map(|v| v.version_number)
                .collect::<Vec<_>>(),
            [1]
        );
        let none = store
            .list_versions(p.id, Some("features"), page(2, 5))
            .await?;
        assert_eq!((none.total, none.items.len()), (2, 0));
        Ok(())
    })
    .await
}

/// Text that trips up encodings, normalisation and byte-length assumptions.
const UNICODE_SAMPLES: &[&str] = &[
    "🦀 crab 🎉 party",
    "日本語のタスク、中文任务、한국어 작업",
    "עברית: שלום עולם — العربية: مرحبا بالعالم",
    "e\u{301}te\u{301} cafe\u{301} (combining acute, not precomposed)",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕏 𐍈 𠜎 (4-byte code points)",
    "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 skin tone",
    "zero\u{200B}width\u{200D}joiner and \u{FEFF}BOM",
    "quotes ' \" ` and \\ backslash; -- not SQL",
];

#[tokio::test]
async fn unicode_round_trips_on_every_field() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        for (i, text) in UNICODE_SAMPLES.iter().copied().enumerate() {
            let created = store
                .create_project(&NewProject {
                    title: text.to_string(),
                    description: format!("{text} / description"),
                    github_repo: Some(format!("https://example.com/{text}")),
                })
                .await?;
            let fetched = store
                .get_project(created.id)
                .await?
                .context("project not found")?;
            assert_eq!(fetched.title, text);
            assert_eq!(fetched.description, format!("{text} / description"));
            assert_eq!(
                fetched.github_repo,
                Some(format!("https://example.com/{text}"))
            );
            let json_value = json!({"text": text, "list": [text], text: i});
            store
                .set_project_json(created.id, ProjectJson::Data, &json_value)
                .await?;
            assert_eq!(
                store
                    .get_project(created.id)
                    .await?
                    .context("project not found")?
                    .data
                    .0,
                json_value
            );

            let who = actor(text, text);
            let mut new = new_task(created.id, text, TaskStatus::Todo, text, 1);
            new.description = text.repeat(3);
            new.feature = Some(text.to_string());
            let task = store.create_task(&new, &who).await??;
            let fetched = store.get_task(task.id).await?.context("task not found")?;
            assert_eq!(
                (fetched.title.as_str(), fetched.assignee.as_str()),
                (text, text)
            );
            assert_eq!(fetched.description, text.repeat(3));
            assert_eq!(fetched.feature.as_deref(), Some(text));
            let changes = TaskChanges {
                title: Some(format!("{text}!")),
                ..Default::default()
            };
            store.update_task(task.id, &changes, None, &who).await??;
            let history = store.task_history(task.id, 10).await?;
            assert_eq!(history[1].change.old_value.as_deref(), Some(text));
            assert_eq!(history[1].change.new_value, Some(format!("{text}!")));
            assert_eq!(
                (
                    history[1].session_id.as_deref(),
                    history[1].client_name.as_deref()
                ),
                (Some(text), Some(text))
            );
            let by_assignee = TaskQuery {
                assignee: Some(text.to_string()),
                ..Default::default()
            };
            assert_eq!(
                task_titles(&store, by_assignee).await?,
                [format!("{text}!")]
            );

            let mut doc = new_document(
                created.id,
                DocumentType::Note,
                text,
                json!({"body": text, text: [text]}),
            );
            doc.tags = vec![text.to_string(), "ascii".to_string()];
            doc.author = text.to_string();
            let document = store.create_document(&doc).await?;
            let fetched = store
                .get_document(created.id, document.id)
                .await?
                .context("document not found")?;
            assert_eq!(fetched.title, text);
            assert_eq!(fetched.content.0, json!({"body": text, text: [text]}));
            assert_eq!(fetched.tags.0, [text, "ascii"]);
            assert_eq!(fetched.author, text);

            let version = store
                .create_version(&new_version(created.id, VersionField::Docs, json!([text])))
                .await?;
            let fetched = store
                .get_version(created.id, "docs", version.version_number)
                .await?
                .context("version not found")?;
            assert_eq!(fetched.content.0, json!([text]));
        }

        // Searching for non-ASCII text finds it exactly.
        assert_eq!(
            search_projects(&store, "日本語").await?,
            [UNICODE_SAMPLES[1]]
        );
        assert_eq!(search_projects(&store, "🦀").await?, [UNICODE_SAMPLES[0]]);
        assert_eq!(search_projects(&store, "שלום").await?, [UNICODE_SAMPLES[2]]);
        assert_eq!(search_projects(&store, "𠜎").await?, [UNICODE_SAMPLES[4]]);
        // Combining sequences are not normalised: "é" (precomposed) does not match "e\u{301}".
        assert!(search_projects(&store, "caf\u{e9}").await?.is_empty());
        assert_eq!(
            search_projects(&store, "cafe\u{301}").await?,
            [UNICODE_SAMPLES[3]]
        );
        let text = TaskQuery {
            text: Some("👩‍👩‍👧‍👦".to_string()),
            ..Default::default()
        };
        assert_eq!(
            task_titles(&store, text).await?,
            [format!("{}!", UNICODE_SAMPLES[5])]
        );
        Ok(())
    })
    .await
}

/// Searches for non-ASCII text, in its own case and in another.
async fn non_ascii_search_story(store: Store) -> anyhow::Result<()> {
    project(&store, "Ärger über Öl", "").await?;
    project(&store, "ΣΟΦΙΑ", "").await?;
    // Even the exact spelling must match (the pattern is lower-cased before the query).
    assert_eq!(search_projects(&store, "Ärger").await?, ["Ärger über Öl"]);
    assert_eq!(search_projects(&store, "ärger").await?, ["Ärger über Öl"]);
    assert_eq!(search_projects(&store, "ÜBER").await?, ["Ärger über Öl"]);
    assert_eq!(search_projects(&store, "ΣΟΦΙΑ").await?, ["ΣΟΦΙΑ"]);
    assert_eq!(search_projects(&store, "σοφια").await?, ["ΣΟΦΙΑ"]);
    Ok(())
}

/// The search contract says "case-insensitive"; beyond ASCII that holds only where the
/// engine's `LOWER` agrees with Rust's `to_lowercase` (used to build the pattern).
#[tokio::test]
async fn search_is_case_insensitive_beyond_ascii_on_postgres() -> anyhow::Result<()> {
    on_backend(Backend::Postgres, non_ascii_search_story).await
}

#[tokio::test]
async fn search_is_case_insensitive_beyond_ascii_on_sqlite() -> anyhow::Result<()> {
    on_backend(Backend::Sqlite, non_ascii_search_story).await
}

#[tokio::test]
async fn deleting_a_project_cascades() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (a, b, tasks) = seed_tasks(&store).await?;
        let doc = store
            .create_document(&new_document(a.id, DocumentType::Spec, "Spec", json!({})))
            .await?;
        let kept_doc = store
            .create_document(&new_document(b.id, DocumentType::Spec, "Kept", json!({})))
            .await?;
        store
            .create_version(&new_version(a.id, VersionField::Docs, json!([])))
            .await?;
        store
            .create_version(&new_version(b.id, VersionField::Docs, json!([])))
            .await?;
        let changes = TaskChanges {
            status: Some(TaskStatus::Review.as_str()),
            ..Default::default()
        };
        store
            .update_task(tasks[0].id, &changes, None, &Actor::default())
            .await??;
        store
            .archive_task(tasks[1].id, None, &Actor::default())
            .await??;

        assert!(store.delete_project(a.id).await?);
        assert!(store.get_project(a.id).await?.is_none());
        for task in &tasks[..3] {
            assert!(
                store.get_task(task.id).await?.is_none(),
                "task {} survived",
                task.title
            );
            assert!(
                store.task_history(task.id, 100).await?.is_empty(),
                "history of {} survived",
                task.title
            );
        }
        assert!(store.get_document(a.id, doc.id).await?.is_none());
        assert!(store.all_documents(a.id).await?.is_empty());
        assert_eq!(store.list_versions(a.id, None, all()).await?.total, 0);
        assert!(store.count_tasks_by(Some(a.id), false).await?.is_empty());
        let in_a = TaskQuery {
            project_id: Some(a.id),
            include_closed: true,
            ..Default::default()
        };
        assert!(task_titles(&store, in_a).await?.is_empty());

        // The other project keeps everything.
        assert!(store.get_project(b.id).await?.is_some());
        assert_eq!(
            store
                .get_task(tasks[3].id)
                .await?
                .context("task not found")?
                .title,
            "Review PR"
        );
        assert_eq!(store.task_history(tasks[3].id, 100).await?.len(), 1);
        assert!(store.get_document(b.id, kept_doc.id).await?.is_some());
        assert_eq!(store.list_versions(b.id, None, all()).await?.total, 1);
        assert_eq!(store.list_projects(None, all()).await?.total, 1);

        assert!(!store.delete_project(a.id).await?);
        Ok(())
    })
    .await
}

/// Snapshots of the same field taken at the same time still get distinct, gapless numbers.
async fn concurrent_versions_story(store: Store) -> anyhow::Result<()> {
    let project_id = project(&store, "Busy", "").await?.id;
    let mut handles = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .create_version(&new_version(
                    project_id,
                    VersionField::Docs,
                    json!({"n": n}),
                ))
                .await
        }));
    }
    let mut numbers = Vec::new();
    for handle in handles {
        numbers.push(
            handle
                .await?
                .context("concurrent create_version failed")?
                .version_number,
        );
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<i32>>());
    Ok(())
}

#[tokio::test]
async fn concurrent_versions_get_distinct_numbers_on_sqlite() -> anyhow::Result<()> {
    on_backend(Backend::Sqlite, concurrent_versions_story).await
}

#[tokio::test]
async fn concurrent_versions_get_distinct_numbers_on_postgres() -> anyhow::Result<()> {
    on_backend(Backend::Postgres, concurrent_versions_story).await
}

/// Concurrent updates of one task each record exactly their own change.
#[tokio::test]
async fn concurrent_task_updates_keep_history_consistent() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let (_, _, tasks) = seed_tasks(&store).await?;
        let id = tasks[0].id;
        let mut handles = Vec::new();
        for n in 1..=8 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let changes = TaskChanges {
                    task_order: Some(n * 10 + 1),
                    ..Default::default()
                };
                store
                    .update_task(id, &changes, None, &actor(&format!("s{n}"), "racer"))
                    .await
            }));
        }
        for handle in handles {
            handle
                .await?
                .context("concurrent update_task failed")?
                .context("task not found")?;
        }
        let history = store.task_history(id, 100).await?;
        let orders: Vec<(Option<&str>, Option<&str>)> = history[1..]
            .iter()
            .map(|h| (h.change.old_value.as_deref(), h.change.new_value.as_deref()))
            .collect();
        assert_eq!(orders.len(), 8, "one row per update: {orders:?}");
        // Serialised updates form a chain: each row's old value is the previous row's new value.
        assert_eq!(orders[0].0, Some("10"));
        for pair in orders.windows(2) {
            assert_eq!(pair[1].0, pair[0].1, "history chain broken: {orders:?}");
        }
        let last = store.get_task(id).await?.context("task not found")?;
        assert_eq!(Some(last.task_order.to_string().as_str()), orders[7].1);
        Ok(())
    })
    .await
}

/// The ledger stores the subject a request concerned with its row, through the bulk path
/// (PostgreSQL's COPY) and the INSERT path alike, and a task's activity sums its rows.
#[tokio::test]
async fn ledger_rows_carry_their_task_and_the_task_s_activity_sums_them() -> anyhow::Result<()> {
    use steward::store::requests::RequestFilter;
    on_each_backend(async |store: Store| {
        let now = chrono::Utc::now();
        let task = Id::new();
        let about = |session: &str, minutes: i64, status| steward::ledger::LedgerRow {
            subject: Some(task.0),
            status,
            ..common::ledger_row(
                session,
                "manage_task",
                now - chrono::Duration::minutes(minutes),
            )
        };
        use steward::ledger::Status::{Success, ToolError};
        // Fresh rows (COPY on PostgreSQL), then a replayed batch through INSERT.
        let fresh = [about("a", 5, Success), about("a", 4, ToolError)];
        assert_eq!(store.insert_new_requests(&fresh).await?, 2);
        let unrelated = common::ledger_row("a", "find_tasks", now);
        let replayed = [fresh[0].clone(), about("b", 3, Success), unrelated];
        assert_eq!(
            store.insert_requests(&replayed).await?,
            2,
            "the replayed row is skipped"
        );

        let (rows, total) = store
            .list_requests(&RequestFilter::default(), 10, 0)
            .await?;
        assert_eq!(total, 4);
        let subjects: Vec<Option<Id>> = rows.iter().map(|r| r.subject.map(Id)).collect();
        assert_eq!(
            subjects.iter().filter(|s| **s == Some(task)).count(),
            3,
            "{subjects:?}"
        );
        assert_eq!(subjects.iter().filter(|s| s.is_none()).count(), 1);

        let activity = store.task_activity(task, "todo").await?;
        assert_eq!(
            (
                activity.totals.calls,
                activity.totals.errors,
                activity.totals.tool_errors
            ),
            (3, 1, 1)
        );
        // ledger_row: 8 tokens and $0.001 a row.
        assert_eq!(activity.totals.estimated_tokens, 24);
        assert_eq!(activity.estimated_cost_usd.to_string(), "0.003");
        assert_eq!(activity.session_count, 2);
        let calls: Vec<(Option<&str>, i64)> = activity
            .sessions
            .iter()
            .map(|s| (s.session_id.as_deref(), s.sums.calls))
            .collect();
        assert_eq!(calls, [(Some("a"), 2), (Some("b"), 1)]);
        assert_eq!(
            store.task_activity(Id::new(), "todo").await?.totals.calls,
            0
        );
        Ok(())
    })
    .await
}

/// A listing or export filtered by session finds exactly that session's rows, with the time
/// range asked, however they were stored and after retention prunes its oldest: neither engine
/// indexes the ledger by session, so these read the time index over the session's span (its
/// totals' first and last request), which must never leave a row of the session out.
#[tokio::test]
async fn a_session_s_listing_finds_all_its_rows_and_only_them() -> anyhow::Result<()> {
    use steward::store::requests::{Cursor, RequestFilter};
    on_each_backend(async |store: Store| {
        let now = chrono::Utc::now();
        let at = |minutes: i64| now - chrono::Duration::minutes(minutes);
        let row =
            |session: &str, minutes: i64| common::ledger_row(session, "find_tasks", at(minutes));
        // `now` keeps its nanoseconds: the session's last row is at the very end of its span.
        let fresh = [row("a", 10), row("b", 7), row("a", 5)];
        assert_eq!(store.insert_new_requests(&fresh).await?, 3);
        let replayed = [fresh[0].clone(), row("a", 0), row("b", -1)];
        assert_eq!(store.insert_requests(&replayed).await?, 2);

        let of = |session: &str| RequestFilter {
            session_id: Some(session.into()),
            ..RequestFilter::default()
        };
        // Minutes ago, to the nearest (PostgreSQL keeps microseconds of `now`'s nanoseconds).
        let ago = |t: chrono::DateTime<chrono::Utc>| {
            ((now - t).num_milliseconds() as f64 / 60_000.0).round() as i64
        };
        let listed = async |filter: RequestFilter| -> anyhow::Result<(Vec<i64>, i64)> {
            let (rows, total) = store.list_requests(&filter, 10, 0).await?;
            let minutes = rows.iter().map(|r| ago(r.timestamp)).collect();
            Ok((minutes, total))
        };
        assert_eq!(listed(of("a")).await?, (vec![0, 5, 10], 3));
        assert_eq!(listed(of("b")).await?, (vec![-1, 7], 2));
        assert_eq!(listed(of("nobody")).await?, (vec![], 0));
        let before = RequestFilter {
            until: Some(at(5)),
            ..of("a")
        };
        assert_eq!(
            listed(before).await?,
            (vec![10], 1),
            "until excludes its instant"
        );
        let since = RequestFilter {
            since: Some(at(5)),
            ..of("a")
        };
        assert_eq!(listed(since).await?, (vec![0, 5], 2));
        let later = RequestFilter {
            since: Some(now + chrono::Duration::minutes(2)),
            ..of("a")
        };
        assert_eq!(listed(later).await?, (vec![], 0));

        // An export in pages of two, by keyset, sends each of the session's rows once.
        let mut exported = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = store.export_requests_page(&of("a"), after, 2).await?;
            let Some(last) = page.last() else { break };
            after = Some(Cursor {
                timestamp: last.timestamp,
                request_id: Id(last.request_id),
            });
            exported.extend(page.iter().map(|r| ago(r.timestamp)));
        }
        assert_eq!(exported, [0, 5, 10]);

        // Retention takes the session's oldest row; its span starts at the next one.
        assert_eq!(store.prune_requests(at(8), 100).await?, 1);
        assert_eq!(listed(of("a")).await?, (vec![0, 5], 2));
        assert_eq!(listed(of("b")).await?, (vec![-1, 7], 2));
        Ok(())
    })
    .await
}

/// PostgreSQL's ledger keeps the indexes its writes must pay for and its reads use: the primary
/// key, the time and the (partial) subject index; not the session index (migration 0025).
#[tokio::test]
async fn postgres_ledger_has_no_session_index() -> anyhow::Result<()> {
    use sqlx::Connection;
    common::on_backend(common::Backend::Postgres, async |db| {
        let store = open_store(&db).await?;
        store.close().await;
        let mut conn = sqlx::PgConnection::connect(&db.url).await?;
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'mcp_requests' ORDER BY indexname",
        )
        .fetch_all(&mut conn)
        .await?;
        assert_eq!(
            indexes,
            ["mcp_requests_by_subject", "mcp_requests_by_time", "mcp_requests_pkey"]
        );
        conn.close().await?;
        Ok(())
    })
    .await
}

/// Each board remembers its own answers: two boards on one database in one process (two
/// replicas) never answer from each other's memory, and each reads the version itself.
#[tokio::test]
async fn two_boards_on_one_store_remember_their_own_answers() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let key = AnswerKey::new("two_boards_test", &store.engine());
        let (a, b) = (Answers::new(store.clone()), Answers::new(store.clone()));
        let Recalled::Make(stamp) = a.recall(&key).await? else {
            anyhow::bail!("board a remembered an answer it never made");
        };
        a.remember(key.clone(), stamp, Arc::from("made by a"));
        match a.recall(&key).await? {
            Recalled::Answer(text, held) => {
                assert_eq!(&*text, "made by a");
                assert_eq!(held, stamp);
            }
            Recalled::Make(_) => anyhow::bail!("board a forgot its own answer"),
        }
        assert!(
            matches!(b.recall(&key).await?, Recalled::Make(_)),
            "board b answered from board a's memory"
        );
        Ok(())
    })
    .await
}

/// One read of the board's answer version is shared by the calls that arrive while the
/// previous one runs, and none of them is answered by a read that started before it arrived:
/// with reads always in flight (16 callers in a loop), a writer's first call after each of its
/// writes, and every other call started after the write answered, gets no answer remembered
/// before the write, while the calls before it do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_version_reads_see_every_write_answered_before_the_call() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        let key = AnswerKey::new("shared_version_reads_test", &store.engine());
        let answers = Arc::new(Answers::new(store.clone()));
        // The number of writes the writer has had answered.
        let written = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let (answers, key) = (answers.clone(), key.clone());
                let (written, running) = (written.clone(), running.clone());
                tokio::spawn(async move {
                    // Per call: the writes answered when it started, and the write the
                    // remembered answer it got was made before (if it got one).
                    let mut calls = Vec::new();
                    while running.load(Ordering::SeqCst) {
                        let answered = written.load(Ordering::SeqCst);
                        let recalled = match answers.recall(&key).await? {
                            Recalled::Answer(text, _) => Some(text.parse::<usize>()?),
                            Recalled::Make(_) => None,
                        };
                        calls.push((answered, recalled));
                    }
                    anyhow::Ok(calls)
                })
            })
            .collect();
        let writes = 30;
        let mut stale_for_the_writer = 0;
        for write in 0..writes {
            match answers.recall(&key).await? {
                Recalled::Make(stamp) => {
                    answers.remember(key.clone(), stamp, Arc::from(write.to_string()))
                }
                Recalled::Answer(..) => stale_for_the_writer += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            project(&store, &format!("Write {write} between the reads"), "").await?;
            written.store(write + 1, Ordering::SeqCst);
        }
        if matches!(answers.recall(&key).await?, Recalled::Answer(..)) {
            stale_for_the_writer += 1;
        }
        running.store(false, Ordering::SeqCst);
        let mut calls = Vec::new();
        for reader in readers {
            calls.extend(reader.await??);
        }
        assert_eq!(
            stale_for_the_writer, 0,
            "the writer's own calls after its writes"
        );
        // An answer remembered before write `n` is stale for a call that started after
        // `n + 1` writes had answered.
        let stale = calls
            .iter()
            .filter(|(answered, recalled)| recalled.is_some_and(|n| *answered > n))
            .count();
        let remembered = calls.iter().filter(|(_, recalled)| recalled.is_some());
        assert_eq!(
            stale,
            0,
            "{stale} of {} calls got a stale answer",
            calls.len()
        );
        assert!(
            remembered.count() > 100,
            "too few remembered answers to tell"
        );
        Ok(())
    })
    .await
}

/// PostgreSQL's version reads run on one connection of their own, whichever callers share
/// them, and a read whose connection the server ended is made again on a fresh one (the
/// caller sees no error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reads_hold_one_connection_and_outlive_its_end() -> anyhow::Result<()> {
    on_backend(Backend::Postgres, |store| async move {
        let Store::Postgres(pool) = &store else {
            anyhow::bail!("not a PostgreSQL store");
        };
        // The backends whose last statement was the version read (the probe's own is excluded).
        let readers = || async {
            sqlx::query_scalar::<_, i32>(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND query = 'SELECT version FROM board_answers' AND pid <> pg_backend_pid()",
            )
            .fetch_all(pool)
            .await
        };
        let answers = Arc::new(Answers::new(store.clone()));
        for _ in 0..20 {
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let answers = answers.clone();
                    tokio::spawn(async move { answers.version().await })
                })
                .collect();
            for call in calls {
                call.await??;
            }
        }
        let before = readers().await?;
        assert_eq!(
            before.len(),
            1,
            "backends that read the version: {before:?}"
        );
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(before[0])
            .execute(pool)
            .await?;
        // Termination is asynchronous: wait until the backend is gone.
        for _ in 0..100 {
            if readers().await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answers
            .version()
            .await
            .context("a read after its connection ended")?;
        let after = readers().await?;
        assert_eq!(after.len(), 1, "backends that read the version: {after:?}");
        assert_ne!(after, before, "the ended backend still reads");
        Ok(())
    })
    .await
}

/// How the one connection of a [`Store::dedicated`] pool commits: SQLite's `synchronous`
/// (1 = NORMAL, 2 = FULL) or PostgreSQL's `synchronous_commit`.
async fn commit_setting(store: &Store) -> anyhow::Result<String> {
    Ok(match store {
        Store::Sqlite(pool) => {
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await?;
            level.to_string()
        }
        Store::Postgres(pool) => {
            sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(pool)
                .await?
        }
    })
}

/// `--ledger-durability sync` promises that a row survives a power loss once its request is
/// answered: the writer's own connection syncs every commit (SQLite's WAL at `FULL`;
/// PostgreSQL's `synchronous_commit` on even where the database's default turns it off),
/// while every other connection keeps the cheaper default.
#[tokio::test]
async fn a_durable_writer_syncs_every_commit() -> anyhow::Result<()> {
    on_each_backend(|store| async move {
        if let Store::Postgres(pool) = &store {
            let database: String = sqlx::query_scalar("SELECT current_database()")
                .fetch_one(pool)
                .await?;
            sqlx::query(&format!(
                "ALTER DATABASE \"{database}\" SET synchronous_commit = off"
            ))
            .execute(pool)
            .await?;
        }
        let (shared, durable) = match &store {
            Store::Sqlite(_) => ("1", "2"),
            Store::Postgres(_) => ("off", "on"),
        };
        let plain = store.dedicated(1, Commits::AsShared);
        assert_eq!(commit_setting(&plain).await?, shared);
        let writer = store.dedicated(1, Commits::Durable);
        assert_eq!(commit_setting(&writer).await?, durable);
        plain.close().await;
        writer.close().await;
        Ok(())
    })
    .await
}
