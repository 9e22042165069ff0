//! `find_tasks`' indexed reads (issue #23) give exactly what a plain scan gives: the text index
//! (SQLite's FTS5 trigram table, PostgreSQL's `pg_trgm`), the walk along the order index, and
//! the trigger-kept totals, compared with the board filtered in Rust, for every filter
//! combination, short queries, `%`/`_`, case and non-ASCII text, after writes.

use crate::common::{TestDb, execute_sql, open_store, test_on_each_backend};

use serde_json::Value;
use steward::board::{Actor, TaskStatus};
use steward::store::projects::NewProject;
use steward::store::tasks::{NewTask, Task, TaskChanges, TaskQuery};
use steward::store::{Id, Page, Store};

test_on_each_backend!(
    indexed_reads_equal_a_plain_scan,
    remembered_totals_follow_writes_on_another_replica,
    two_stores_keep_their_own_remembered_totals
);

const TEXTS: [&str; 14] = [
    "Cache warmup",
    "CACHE layer for the ledger",
    "cachexyz",
    "100% done",
    "under_score name",
    "Ünïcödé Straße",
    "ΣΊΣΥΦΟΣ",
    "日本語テキスト",
    "a",
    "ab test",
    "🚀 launch the cache",
    "nothing here",
    "back\\slash \"quoted\"",
    "percent%sign and under_line",
];

const QUERIES: [&str; 24] = [
    "cache",
    "CACHE",
    "ca",
    "c",
    "%",
    "_",
    "100%",
    "r_s",
    "under_score",
    "straße",
    "STRASSE",
    "ÜNÏ",
    "σίσ",
    "ΦΟΣ",
    "日本",
    "本語テ",
    "🚀",
    "🚀 l",
    "\\",
    "\"quoted\"",
    "e%s",
    "zz",
    "the ledger",
    "a",
];

fn actor() -> Actor {
    Actor {
        session_id: Some("search".into()),
        client_name: Some("search-test".into()),
        principal: None,
    }
}

/// Seeds two projects with tasks of every text, status and assignee; some archived, some with
/// their text changed afterwards (the index must follow). Returns the project ids.
async fn seed(store: &Store) -> anyhow::Result<[Id; 2]> {
    let mut projects = Vec::new();
    for title in ["Search A", "Search B"] {
        let new = NewProject {
            title: title.into(),
            description: String::new(),
            github_repo: None,
        };
        projects.push(store.create_project(&new).await?.id);
    }
    let statuses = [
        TaskStatus::Todo,
        TaskStatus::Doing,
        TaskStatus::Review,
        TaskStatus::Done,
    ];
    let mut n = 0;
    for round in 0..3 {
        for (i, text) in TEXTS.iter().enumerate() {
            n += 1;
            let new = NewTask {
                project_id: projects[n % 2],
                title: text.to_string(),
                description: format!("round {round} of {}", TEXTS[(i + 5) % TEXTS.len()]),
                status: statuses[n % 4].as_str(),
                assignee: ["Alice", "ALICE", "Bob"][n % 3].into(),
                task_order: ((n * 7) % 5) as i32,
                feature: None,
                blocked_by: Vec::new(),
                parent_task_id: None,
                sources: Value::Array(Vec::new()),
                code_examples: Value::Array(Vec::new()),
            };
            let task = store.create_task(&new, &actor()).await?.expect("created");
            if n % 7 == 0 {
                store
                    .archive_task(task.id, None, &actor())
                    .await?
                    .expect("archived");
            } else if n % 5 == 0 {
                let changes = TaskChanges {
                    title: Some(format!("renamed {n}: caché")),
                    ..TaskChanges::default()
                };
                store
                    .update_task(task.id, &changes, None, &actor())
                    .await?
                    .expect("updated");
            }
        }
    }
    Ok([projects[0], projects[1]])
}

/// Every live task, in the listing's order, read without any index-specific condition.
async fn board(store: &Store) -> anyhow::Result<Vec<Task>> {
    let query = TaskQuery {
        include_closed: true,
        ..TaskQuery::default()
    };
    let all = store
        .list_tasks(
            &query,
            Page {
                page: 1,
                per_page: 100,
            },
        )
        .await?;
    assert!(all.items.len() < 100, "the board fits one page");
    Ok(all.items)
}

fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// What a scan of `tasks` takes for `query`, ignoring done-ness.
fn scanned<'a>(tasks: &'a [Task], query: &TaskQuery) -> Vec<&'a Task> {
    tasks
        .iter()
        .filter(|t| query.project_id.is_none_or(|p| t.project_id == p))
        .filter(|t| query.status.is_none_or(|s| t.status == s))
        .filter(|t| {
            query
                .assignee
                .as_deref()
                .is_none_or(|a| fold(&t.assignee) == fold(a))
        })
        .filter(|t| {
            query
                .text
                .as_deref()
                .is_none_or(|q| fold(&format!("{}\n{}", t.title, t.description)).contains(&fold(q)))
        })
        .collect()
}

async fn check(store: &Store, tasks: &[Task], query: &TaskQuery) -> anyhow::Result<()> {
    let matching = scanned(tasks, query);
    let expected: Vec<Id> = matching
        .iter()
        .filter(|t| query.include_closed || t.status != "done")
        .map(|t| t.id)
        .collect();
    let closed = matching.iter().filter(|t| t.status == "done").count() as i64;
    // Small pages take the walk along the order index for common terms, large ones the index.
    for per_page in [3, 100] {
        let mut listed = Vec::new();
        for page in 1.. {
            let found = store.list_tasks(query, Page { page, per_page }).await?;
            assert_eq!(found.total, expected.len() as i64, "total of {query:?}");
            if found.items.is_empty() {
                break;
            }
            listed.extend(found.items.iter().map(|t| t.id));
        }
        assert_eq!(listed, expected, "{query:?}, {per_page} per page");
    }
    if !query.include_closed {
        assert_eq!(
            store.closed_matches(query).await?,
            closed,
            "closed of {query:?}"
        );
    }
    // What find_tasks reads: the first page with both counts in one go.
    let first = Page {
        page: 1,
        per_page: 3,
    };
    let swept = store.list_tasks_swept(query, first).await?;
    let (found, found_closed) = (swept.found, swept.closed_matches);
    assert_eq!(found.total, expected.len() as i64, "total of {query:?}");
    let closed = if query.include_closed { 0 } else { closed };
    assert_eq!(found_closed, closed, "closed of {query:?}");
    Ok(())
}

async fn indexed_reads_equal_a_plain_scan(db: TestDb) -> anyhow::Result<()> {
    let store = open_store(&db).await?;
    let [a, _] = seed(&store).await?;
    let tasks = board(&store).await?;
    let mut checked = 0;
    for text in QUERIES.iter().map(|q| Some(q.to_string())).chain([None]) {
        for project_id in [None, Some(a)] {
            for status in [None, Some("doing"), Some("done")] {
                for assignee in [None, Some("alice".to_string())] {
                    for include_closed in [false, true] {
                        let query = TaskQuery {
                            project_id,
                            status,
                            assignee: assignee.clone(),
                            text: text.clone(),
                            include_closed,
                            ..TaskQuery::default()
                        };
                        check(&store, &tasks, &query).await?;
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 25 * 2 * 3 * 2 * 2);
    // The test can fail: the common and the rare terms both match something.
    let cache = TaskQuery {
        text: Some("cache".into()),
        include_closed: true,
        ..TaskQuery::default()
    };
    assert!(scanned(&tasks, &cache).len() > 10);
    let renamed = TaskQuery {
        text: Some("CACHÉ".into()),
        include_closed: true,
        ..TaskQuery::default()
    };
    assert!(!scanned(&tasks, &renamed).is_empty());
    store.close().await;
    Ok(())
}

/// A text query's totals are remembered per board version (migration 0019): every write that
/// changes what they count, made through another store (a second replica), shows in the next
/// read, as a scan of the board shows it.
async fn remembered_totals_follow_writes_on_another_replica(db: TestDb) -> anyhow::Result<()> {
    let reader = open_store(&db).await?;
    let writer = open_store(&db).await?;
    let [a, _] = seed(&writer).await?;
    let queries: Vec<TaskQuery> = [false, true]
        .into_iter()
        .map(|include_closed| TaskQuery {
            text: Some("cache".into()),
            include_closed,
            ..TaskQuery::default()
        })
        .collect();
    let check_all = async |step: &str| -> anyhow::Result<()> {
        let tasks = board(&writer).await?;
        for query in &queries {
            check(&reader, &tasks, query)
                .await
                .map_err(|e| e.context(step.to_string()))?;
        }
        Ok(())
    };
    check_all("before any write").await?;
    let new = NewTask {
        project_id: a,
        title: "One more cache".into(),
        description: String::new(),
        status: "todo",
        assignee: "Bob".into(),
        task_order: 3,
        feature: None,
        blocked_by: Vec::new(),
        parent_task_id: None,
        sources: Value::Array(Vec::new()),
        code_examples: Value::Array(Vec::new()),
    };
    let task = writer.create_task(&new, &actor()).await?.expect("created");
    check_all("after a create").await?;
    for changes in [
        TaskChanges {
            status: Some("done"),
            ..TaskChanges::default()
        },
        TaskChanges {
            status: Some("todo"),
            description: Some("and the cache again".into()),
            ..TaskChanges::default()
        },
        TaskChanges {
            title: Some("no longer matching".into()),
            ..TaskChanges::default()
        },
        TaskChanges {
            description: Some("".into()),
            ..TaskChanges::default()
        },
    ] {
        writer
            .update_task(task.id, &changes, None, &actor())
            .await?
            .expect("updated");
        check_all(&format!("after {changes:?}")).await?;
    }
    let cached = board(&writer)
        .await?
        .into_iter()
        .find(|t| t.title.to_lowercase().contains("cache"))
        .expect("a task matching cache");
    writer
        .archive_task(cached.id, None, &actor())
        .await?
        .expect("archived");
    check_all("after an archive").await?;
    reader.close().await;
    writer.close().await;
    Ok(())
}

/// A project of `count` tasks that match "cache".
async fn cache_tasks(store: &Store, count: i32) -> anyhow::Result<()> {
    let project = NewProject {
        title: "Caches".into(),
        description: String::new(),
        github_repo: None,
    };
    let project_id = store.create_project(&project).await?.id;
    for n in 0..count {
        let new = NewTask {
            project_id,
            title: format!("cache {n}"),
            description: String::new(),
            status: "todo",
            assignee: "Bob".into(),
            task_order: n,
            feature: None,
            blocked_by: Vec::new(),
            parent_task_id: None,
            sources: Value::Array(Vec::new()),
            code_examples: Value::Array(Vec::new()),
        };
        store.create_task(&new, &actor()).await?.expect("created");
    }
    Ok(())
}

/// The total and the page length of the text query "cache".
async fn cache_listing(store: &Store) -> anyhow::Result<(i64, usize)> {
    let query = TaskQuery {
        text: Some("cache".into()),
        ..TaskQuery::default()
    };
    let page = Page {
        page: 1,
        per_page: 10,
    };
    let found = store.list_tasks(&query, page).await?;
    Ok((found.total, found.items.len()))
}

/// Two stores in one process (two databases, as two in-process servers in tests have) each
/// remember their own totals: a total counted on one never answers on the other, even when
/// both boards stand at the same version (as a restored copy and its original do).
async fn two_stores_keep_their_own_remembered_totals(db: TestDb) -> anyhow::Result<()> {
    let other_db = TestDb::new(db.backend).await?;
    let (one, other) = (open_store(&db).await?, open_store(&other_db).await?);
    cache_tasks(&one, 3).await?;
    cache_tasks(&other, 1).await?;
    assert_eq!(
        cache_listing(&one).await?,
        (3, 3),
        "counted on the first store"
    );
    const VERSION: &str = "SELECT version FROM board_version";
    let version: i64 = match &one {
        Store::Sqlite(pool) => sqlx::query_scalar(VERSION).fetch_one(pool).await?,
        Store::Postgres(pool) => sqlx::query_scalar(VERSION).fetch_one(pool).await?,
    };
    execute_sql(
        &other_db,
        &format!("UPDATE board_version SET version = {version}"),
    )
    .await?;
    assert_eq!(
        cache_listing(&other).await?,
        (1, 1),
        "the other store at the first one's version"
    );
    assert_eq!(cache_listing(&one).await?, (3, 3), "the first store again");
    assert_eq!(
        cache_listing(&other).await?,
        (1, 1),
        "the other store again"
    );
    one.close().await;
    other.close().await;
    Ok(())
}
