//! `steward import archon`: a real PostgreSQL database with Archon v1's tables (current and
//! older column sets) imported into Steward on each engine by the real binary.

use crate::common;

use std::process::Output;

use anyhow::Context;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use steward::store::tasks::TaskQuery;
use steward::store::{Id, Page};

use common::{Backend, TestDb, backends, open_store};

const PROJECT: &str = "11111111-1111-4111-8111-111111111111";
const TASK_OPEN: &str = "22222222-2222-4222-8222-222222222222";
const TASK_ARCHIVED: &str = "33333333-3333-4333-8333-333333333333";
const DOC: &str = "44444444-4444-4444-8444-444444444444";
const TASK_CHILD: &str = "55555555-5555-4555-8555-555555555555";

/// Archon v1's tables; `older` leaves out the columns early versions lack.
fn archon_schema(older: bool) -> String {
    let prd = if older {
        ""
    } else {
        "prd JSONB DEFAULT '{}'::jsonb,"
    };
    let task_extra = if older {
        ""
    } else {
        "parent_task_id UUID, archived_at TIMESTAMPTZ,"
    };
    format!(
        "CREATE TYPE task_status AS ENUM ('todo', 'doing', 'review', 'done');
         CREATE TABLE archon_projects (id UUID PRIMARY KEY, title TEXT NOT NULL, description TEXT DEFAULT '',
           docs JSONB DEFAULT '[]'::jsonb, features JSONB DEFAULT '[]'::jsonb, data JSONB DEFAULT '[]'::jsonb, {prd}
           github_repo TEXT, pinned BOOLEAN DEFAULT false,
           created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now());
         CREATE TABLE archon_tasks (id UUID PRIMARY KEY, project_id UUID REFERENCES archon_projects(id), {task_extra}
           title TEXT NOT NULL, description TEXT DEFAULT '', status task_status DEFAULT 'todo', assignee TEXT DEFAULT 'User',
           task_order INTEGER DEFAULT 0, feature TEXT, sources JSONB DEFAULT '[]'::jsonb, code_examples JSONB DEFAULT '[]'::jsonb,
           archived BOOLEAN DEFAULT false, archived_by TEXT,
           created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now());
         CREATE TABLE archon_document_versions (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), project_id UUID,
           task_id UUID, field_name TEXT NOT NULL, version_number INTEGER NOT NULL, content JSONB NOT NULL,
           change_summary TEXT, change_type TEXT DEFAULT 'update', document_id UUID, created_by TEXT DEFAULT 'system',
           created_at TIMESTAMPTZ DEFAULT now());"
    )
}

/// A sub-task written before its parent, with sources and code examples; `older` Archon has no
/// `parent_task_id`.
fn child_row(older: bool) -> String {
    let (column, value) = if older {
        ("", String::new())
    } else {
        ("parent_task_id, ", format!("'{TASK_OPEN}', "))
    };
    format!(
        "INSERT INTO archon_tasks (id, project_id, {column}title, status, sources, code_examples, created_at, updated_at)
           VALUES ('{TASK_CHILD}', '{PROJECT}', {value}'Login form', 'todo',
                   '[{{\"url\": \"https://example.com/oauth\", \"type\": \"docs\"}}]',
                   '[{{\"file\": \"src/login.ts\", \"purpose\": \"form\"}}]',
                   '2024-05-01T10:30:00Z', '2024-05-01T10:30:00Z');"
    )
}

fn archon_rows() -> String {
    let docs = json!([
        { "id": DOC, "document_type": "spec", "title": "Login spec", "content": { "body": "x" },
          "tags": ["auth"], "author": "Alice", "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-02T10:00:00Z" },
        { "title": "no id, skipped" }
    ]);
    format!(
        "INSERT INTO archon_projects (id, title, description, docs, features, pinned, created_at, updated_at)
           VALUES ('{PROJECT}', 'Archon board', 'from archon', '{docs}', '[{{\"name\": \"auth\"}}]', true,
                   '2024-05-01T09:00:00Z', '2024-05-03T09:00:00Z');
         INSERT INTO archon_tasks (id, project_id, title, status, assignee, task_order, feature, created_at, updated_at)
           VALUES ('{TASK_OPEN}', '{PROJECT}', 'Write login', 'doing', 'Archon', 250, 'auth',
                   '2024-05-01T11:00:00Z', '2024-05-01T12:00:00Z');
         INSERT INTO archon_tasks (id, project_id, title, status, archived, archived_by, created_at, updated_at)
           VALUES ('{TASK_ARCHIVED}', '{PROJECT}', 'Old idea', 'todo', true, 'Alice',
                   '2024-05-01T11:00:00Z', '2024-05-02T12:00:00Z');
         INSERT INTO archon_document_versions (project_id, field_name, version_number, content, change_summary, change_type, created_at)
           VALUES ('{PROJECT}', 'features', 1, '[{{\"name\": \"auth\"}}]', 'first', 'update', '2024-05-01T09:30:00Z');"
    )
}

/// A PostgreSQL database holding an Archon board.
async fn archon_db(older: bool) -> anyhow::Result<TestDb> {
    let db = TestDb::new(Backend::Postgres).await?;
    let mut conn = PgConnection::connect(&db.url).await?;
    conn.execute(archon_schema(older).as_str())
        .await
        .context("Archon schema")?;
    conn.execute(archon_rows().as_str())
        .await
        .context("Archon rows")?;
    conn.execute(child_row(older).as_str())
        .await
        .context("Archon sub-task")?;
    conn.close().await?;
    Ok(db)
}

/// Runs `steward import archon --from ARCHON --database TARGET [extra]`.
async fn import(archon: &TestDb, target: &TestDb, extra: &[&str]) -> anyhow::Result<Output> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "import",
            "archon",
            "--from",
            &archon.url,
            "--database",
            &target.url,
        ])
        .args(extra)
        .current_dir(target.dir())
        .env_remove("STEWARD_CONFIG")
        .output()
        .await?;
    eprintln!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn postgres_available() -> bool {
    backends().contains(&Backend::Postgres)
}

#[tokio::test]
async fn imports_an_archon_board_once_keeping_ids_and_times() -> anyhow::Result<()> {
    if !postgres_available() {
        return Ok(());
    }
    for older in [false, true] {
        let archon = archon_db(older).await?;
        for backend in backends() {
            eprintln!("--- import (older Archon: {older}) into {}", backend.name());
            let target = TestDb::new(backend).await?;
            let dry = import(&archon, &target, &["--dry-run"]).await?;
            assert!(dry.status.success());
            assert!(
                stdout(&dry).contains("would add: 1 projects, 1 documents, 3 tasks, 1 versions"),
                "{}",
                stdout(&dry)
            );

            let first = import(&archon, &target, &[]).await?;
            assert!(first.status.success());
            assert!(
                stdout(&first).contains("added: 1 projects, 1 documents, 3 tasks, 1 versions"),
                "{}",
                stdout(&first)
            );
            let again = import(&archon, &target, &[]).await?;
            assert!(again.status.success());
            assert!(stdout(&again).contains("added: 0 projects, 0 documents, 0 tasks, 0 versions"));
            assert!(stdout(&again).contains("nothing to add"));

            let store = open_store(&target).await?;
            let project = store
                .get_project(PROJECT.parse()?)
                .await?
                .context("project imported")?;
            assert_eq!(
                (project.title.as_str(), project.features.0.clone()),
                ("Archon board", json!([{ "name": "auth" }]))
            );
            assert_eq!(project.created_at.to_rfc3339(), "2024-05-01T09:00:00+00:00");
            assert!(project.pinned, "archon_projects.pinned is kept");
            let child = store
                .get_task(TASK_CHILD.parse()?)
                .await?
                .context("sub-task imported")?;
            let parent = (!older).then(|| TASK_OPEN.parse::<Id>()).transpose()?;
            assert_eq!(
                child.parent_task_id, parent,
                "older Archon has no parent_task_id"
            );
            assert_eq!(
                (child.sources.0.clone(), child.code_examples.0.clone()),
                (
                    json!([{ "url": "https://example.com/oauth", "type": "docs" }]),
                    json!([{ "file": "src/login.ts", "purpose": "form" }])
                )
            );
            let document = store
                .get_document(project.id, DOC.parse()?)
                .await?
                .context("document imported")?;
            assert_eq!(
                (document.title.as_str(), document.author.as_str()),
                ("Login spec", "Alice")
            );
            let open = store
                .get_task(TASK_OPEN.parse()?)
                .await?
                .context("task imported")?;
            assert_eq!(
                (
                    open.status.as_str(),
                    open.task_order,
                    open.assignee.as_str()
                ),
                ("doing", 100, "Archon")
            );
            let archived = store
                .get_task(TASK_ARCHIVED.parse::<Id>()?)
                .await?
                .context("archived task")?;
            assert!(archived.archived && archived.archived_at.is_some());
            // Imported tasks are found with the folded filters like any other.
            let query = TaskQuery {
                assignee: Some("ARCHON".into()),
                ..TaskQuery::default()
            };
            assert_eq!(
                store
                    .list_tasks(
                        &query,
                        Page {
                            page: 1,
                            per_page: 10
                        }
                    )
                    .await?
                    .total,
                1
            );
            assert!(
                !stdout(&first).contains("not imported"),
                "every Archon column is kept: {}",
                stdout(&first)
            );
            assert!(
                store
                    .get_version(project.id, "features", 1)
                    .await?
                    .is_some()
            );
            store.close().await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn refuses_an_archon_database_missing_what_it_needs() -> anyhow::Result<()> {
    if !postgres_available() {
        return Ok(());
    }
    let archon = archon_db(true).await?;
    let target = TestDb::new(Backend::Sqlite).await?;
    let mut conn = PgConnection::connect(&archon.url).await?;
    conn.execute("ALTER TABLE archon_tasks DROP COLUMN status")
        .await?;
    let refused = import(&archon, &target, &[]).await?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("archon_tasks has no column status"),
        "{stderr}"
    );

    conn.execute(
        "ALTER TABLE archon_tasks ADD COLUMN status TEXT; DROP TABLE archon_document_versions",
    )
    .await?;
    conn.close().await?;
    let refused = import(&archon, &target, &[]).await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("no table archon_document_versions"),
        "{stderr}"
    );

    let store = open_store(&target).await?;
    assert!(
        store.get_project(PROJECT.parse()?).await?.is_none(),
        "nothing written"
    );
    store.close().await;
    Ok(())
}

/// The titles listed under `key` in a board read's answer.
fn titles<'a>(found: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    common::listed(found, key, "title")
}

/// A server answering board reads from memory (each read below is made twice, so the second
/// is remembered) sees an import run beside it in its very next read of each kind.
#[tokio::test]
async fn an_import_beside_a_running_server_shows_in_its_next_reads() -> anyhow::Result<()> {
    if !postgres_available() {
        return Ok(());
    }
    let archon = archon_db(false).await?;
    for backend in backends() {
        eprintln!("--- import beside a running server on {}", backend.name());
        let target = TestDb::new(backend).await?;
        let server = common::TestServer::start(&target).await?;
        let client = common::connect(&server.mcp_url(), "import-reader").await?;
        let project = json!({ "project_id": PROJECT });
        let reads = [
            ("find_projects", json!({}), "projects"),
            ("find_tasks", project.clone(), "tasks"),
            ("find_documents", project.clone(), "documents"),
        ];
        for (tool, args, key) in &reads {
            for _ in 0..2 {
                let (failed, found) = common::call(&client, tool, args.clone()).await?;
                assert!(!failed && titles(&found, key).is_empty(), "{tool}: {found}");
            }
        }
        let output = import(&archon, &target, &[]).await?;
        assert!(output.status.success());
        let expected: [&[&str]; 3] = [
            &["Archon board"],
            &["Login form", "Write login"],
            &["Login spec"],
        ];
        for ((tool, args, key), expected) in reads.iter().zip(expected) {
            let (failed, found) = common::call(&client, tool, args.clone()).await?;
            let mut listed = titles(&found, key);
            listed.sort();
            assert!(
                !failed && listed == expected,
                "{tool} after the import: {found}"
            );
        }
        client.cancel().await?;
        server.stop().await;
    }
    Ok(())
}
