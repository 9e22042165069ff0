//! `--auth api-key`: keys from the CLI, 401 without a valid key, sessions bound to the
//! principal that made them, admin-only API and dashboard (bearer or login cookie, CSRF), and
//! the refusal to serve a reachable address without auth. On SQLite and PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::Value;

use common::raw::{Client, initialize, open_session, still_serves, tools_list};
use common::{InProcess, TestDb, backends, steward_cli};

async fn keys(db: &TestDb, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--database", &db.url]);
    let output = steward_cli(db, &all).await?;
    ensure!(
        output.status.success(),
        "steward {all:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

#[tokio::test]
async fn keys_guard_mcp_sessions_and_the_admin_api() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- auth on {}", backend.name());
        let db = TestDb::new(backend).await?;
        // CLI: create (printed once), list (never the key), duplicate names refused.
        let alice = keys(&db, &["create", "alice"]).await?;
        let bob = keys(&db, &["create", "bob"]).await?;
        let created: Value =
            serde_json::from_str(&keys(&db, &["create", "root", "--admin", "--json"]).await?)?;
        let root = created["key"]
            .as_str()
            .context("no key in --json")?
            .to_string();
        ensure!(alice.starts_with("stw_") && alice.len() == 68, "{alice}");
        ensure!(created["admin"] == true, "{created}");
        let listed: Value = serde_json::from_str(&keys(&db, &["list", "--json"]).await?)?;
        let names: Vec<&str> = listed["keys"]
            .as_array()
            .context("keys")?
            .iter()
            .filter_map(|k| k["name"].as_str())
            .collect();
        ensure!(names == ["alice", "bob", "root"], "{listed}");
        let table = keys(&db, &["list"]).await?;
        ensure!(
            table.contains("alice")
                && !table.contains(&alice)
                && !listed.to_string().contains(&alice),
            "keys leak: {table}"
        );
        let again = steward_cli(&db, &["keys", "create", "alice", "--database", &db.url]).await?;
        ensure!(
            !again.status.success()
                && String::from_utf8_lossy(&again.stderr).contains("already exists")
        );

        let server =
            InProcess::start_with(&db, &["--auth", "api-key", "--revocation-poll", "200ms"])
                .await?;
        let anonymous = Client::new(&server.mcp_url());
        let (as_alice, as_bob, as_root) = (
            anonymous.with_key(&alice),
            anonymous.with_key(&bob),
            anonymous.with_key(&root),
        );

        // No key, a wrong key, a malformed key: 401 with a challenge.
        let wrong = format!("stw_{}", "0".repeat(64));
        for (what, raw) in [
            ("no key", anonymous.clone()),
            ("wrong key", anonymous.with_key(&wrong)),
            (
                "garbage",
                anonymous.with_key("not a key; DROP TABLE api_keys"),
            ),
        ] {
            let reply = raw.post(&initialize(), None).await?;
            ensure!(
                reply.status == StatusCode::UNAUTHORIZED,
                "{what}: {reply:?}"
            );
            ensure!(
                reply
                    .headers
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")),
                "{what}: no challenge"
            );
            ensure!(
                reply.error_code() == Some(-32600)
                    && reply.error_message().contains("steward keys create"),
                "{what}: {reply:?}"
            );
        }

        // A session belongs to its principal; another key sees it as unknown.
        let session = open_session(&as_alice).await?;
        still_serves(&as_alice, &session).await?;
        let stolen = tools_list(&as_bob, &session).await?;
        ensure!(
            stolen.status == StatusCode::NOT_FOUND,
            "bob used alice's session: {stolen:?}"
        );
        let deleted = as_bob.delete(&session).await?;
        ensure!(
            deleted.status == StatusCode::NOT_FOUND,
            "bob deleted alice's session: {deleted:?}"
        );
        still_serves(&as_alice, &session).await?;
        let shown: Value = as_root
            .get(&format!("/api/sessions/{session}"))
            .await?
            .json()
            .await?;
        ensure!(shown["session"]["principal"] == "alice", "{shown}");

        // Admin-only API: no key 401, a non-admin key 403, an admin key 200.
        ensure!(anonymous.get("/api/sessions").await?.status() == StatusCode::UNAUTHORIZED);
        ensure!(as_alice.get("/api/sessions").await?.status() == StatusCode::FORBIDDEN);
        ensure!(as_root.get("/api/sessions").await?.status() == StatusCode::OK);
        ensure!(as_root.get("/health").await?.status() == StatusCode::OK);

        // The browser: dashboard → login form → cookie → API; CSRF header for state changes.
        let browser = steward::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let page = browser.get(format!("{}/", server.base_url)).send().await?;
        ensure!(
            page.status() == StatusCode::SEE_OTHER && page.headers()["location"] == "login",
            "{page:?}"
        );
        let refused = browser
            .post(format!("{}/login", server.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("key={alice}"))
            .send()
            .await?;
        ensure!(
            refused.status() == StatusCode::UNAUTHORIZED
                && refused.headers().get("set-cookie").is_none()
        );
        let login = browser
            .post(format!("{}/login", server.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("key={root}"))
            .send()
            .await?;
        ensure!(login.status() == StatusCode::SEE_OTHER, "{login:?}");
        let cookie = login
            .headers()
            .get("set-cookie")
            .context("no cookie")?
            .to_str()?
            .to_string();
        ensure!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && !cookie.contains(&root),
            "{cookie}"
        );
        let pair = cookie.split(';').next().context("cookie")?.to_string();
        let with_cookie = browser
            .get(format!("{}/api/sessions", server.base_url))
            .header("cookie", &pair)
            .send()
            .await?;
        ensure!(
            with_cookie.status() == StatusCode::OK,
            "{}",
            with_cookie.status()
        );
        let dashboard = browser
            .get(format!("{}/", server.base_url))
            .header("cookie", &pair)
            .send()
            .await?;
        ensure!(dashboard.status() == StatusCode::OK);
        let forged = browser
            .post(format!("{}/api/sessions", server.base_url))
            .header("cookie", &pair)
            .send()
            .await?;
        ensure!(
            forged.status() == StatusCode::FORBIDDEN,
            "a cookie-only POST passed: {}",
            forged.status()
        );
        let evil = browser
            .get(format!("{}/api/sessions", server.base_url))
            .header("cookie", &pair)
            .header("origin", "https://evil.example")
            .send()
            .await?;
        ensure!(
            evil.status() == StatusCode::FORBIDDEN,
            "a cross-site read passed: {}",
            evil.status()
        );

        // Secrets never reach the ledger.
        let requests = as_root
            .get("/api/requests?per_page=1000")
            .await?
            .text()
            .await?;
        for secret in [&alice, &bob, &root] {
            ensure!(
                !requests.contains(secret.as_str()),
                "a key is in the ledger"
            );
        }

        // Revoked: refused within the revocation poll, and its session with it.
        keys(&db, &["revoke", "alice"]).await?;
        let mut status = StatusCode::OK;
        for _ in 0..50 {
            status = tools_list(&as_alice, &session).await?.status;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(
            status == StatusCode::UNAUTHORIZED,
            "a revoked key still works: {status}"
        );
        let listed: Value = serde_json::from_str(&keys(&db, &["list", "--json"]).await?)?;
        ensure!(listed["keys"][0]["revoked_at"].is_string(), "{listed}");
        let twice = steward_cli(&db, &["keys", "revoke", "alice", "--database", &db.url]).await?;
        ensure!(!twice.status.success());
        // Bob is unaffected.
        let bobs = open_session(&as_bob).await?;
        still_serves(&as_bob, &bobs).await?;
        drop(server);
    }
    Ok(())
}

#[tokio::test]
async fn a_reachable_address_without_auth_is_refused_with_exit_2() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let output = steward_cli(
        &db,
        &["serve", "--listen", "0.0.0.0:0", "--database", &db.url],
    )
    .await?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--auth api-key") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    let bad = steward_cli(
        &db,
        &["serve", "--allowed-hosts", "a b", "--database", &db.url],
    )
    .await?;
    assert_eq!(bad.status.code(), Some(2));
    Ok(())
}
