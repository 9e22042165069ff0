//! `steward check` passes against a healthy server and fails the matching phase when a promise
//! is broken on purpose.

use crate::common;

use std::process::Output;

use common::{Backend, TestDb, backends, open_store};
use steward::store::Store;

/// Runs `steward check --spawn` on the test database (plus extra `serve` arguments).
async fn check(db: &TestDb, serve_args: &[&str]) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(["check", "--spawn", "--database", &db.url])
        .env_remove("STEWARD_CONFIG");
    if !serve_args.is_empty() {
        command.arg("--").args(serve_args);
    }
    Ok(command.output().await?)
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn check_passes_against_a_healthy_server() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let output = check(&db, &[]).await?;
        let out = text(&output);
        assert!(output.status.success(), "{backend:?}: check failed:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "{backend:?}:\n{out}");
        for phase in 0..=8 {
            assert!(
                out.contains(&format!("✓ [{phase}]")),
                "{backend:?}: phase {phase} did not run:\n{out}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn check_fails_phase_2_when_the_ledger_is_off() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let output = check(&db, &["--ledger-durability", "off"]).await?;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("✗ [2] ledger rows for this session"), "{out}");
    assert!(
        out.contains(" failed") && !out.contains(" 0 failed"),
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn check_fails_phases_1_and_6_when_sessions_are_forgotten() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        // A database that forgets every session as soon as it is written.
        let store = open_store(&db).await?;
        let forget: &[&str] = match backend {
            Backend::Sqlite => &["CREATE TRIGGER forget AFTER INSERT ON mcp_sessions BEGIN \
                                  DELETE FROM mcp_sessions WHERE session_id = NEW.session_id; END"],
            Backend::Postgres => &[
                "CREATE FUNCTION forget() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 DELETE FROM mcp_sessions WHERE session_id = NEW.session_id; RETURN NULL; END $$",
                "CREATE TRIGGER forget AFTER INSERT ON mcp_sessions FOR EACH ROW EXECUTE FUNCTION forget()",
            ],
        };
        for sql in forget {
            match &store {
                Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ())?,
                Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ())?,
            }
        }
        store.close().await;
        let output = check(&db, &[]).await?;
        let out = text(&output);
        assert_eq!(output.status.code(), Some(1), "{backend:?}: {out}");
        assert!(
            out.contains("✗ [1] session row records the client's name"),
            "{backend:?}: {out}"
        );
        assert!(
            out.contains("✗ [6]"),
            "{backend:?}: restart recovery must fail:\n{out}"
        );
    }
    Ok(())
}
