//! A lease sweep that fails is not only logged (issue 22): it is counted
//! (`steward_claim_sweep_failures_total`), `/health` answers 503 with a `lease sweep` problem
//! while the last sweep failed, and the problem goes once a sweep succeeds again. The sweep is
//! made to fail on a real database by renaming the column it reads, as a botched manual
//! migration would. Both engines.

use crate::common;

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::Value;

use common::{TestDb, TestServer, backends, execute_sql};

/// Generous bound for a sweep that runs every 200 ms to have run.
const PATIENCE: Duration = Duration::from_secs(15);

/// Polls `/health` until `pred` holds for (status, body).
async fn health_until(
    base_url: &str,
    what: &str,
    pred: impl Fn(StatusCode, &Value) -> bool,
) -> anyhow::Result<(StatusCode, Value)> {
    let http = crate::common::http_client();
    let started = std::time::Instant::now();
    loop {
        let response = http.get(format!("{base_url}/health")).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if pred(status, &body) {
            return Ok((status, body));
        }
        if started.elapsed() > PATIENCE {
            bail!("{what}: /health still answers {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sweep_problem(body: &Value) -> Option<String> {
    body["problems"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|p| p.starts_with("lease sweep"))
        .map(str::to_string)
}

async fn failures_metric(base_url: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("steward_claim_sweep_failures_total "))
        .context("no steward_claim_sweep_failures_total in /metrics")?
        .trim()
        .parse()
        .context("not a number")
}

#[tokio::test]
async fn a_failing_lease_sweep_is_counted_and_shown_until_one_succeeds() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(&db, &["--revocation-poll", "200ms"]).await?;
        let url = &server.base_url;
        health_until(url, "a sweep ran", |status, body| {
            status == StatusCode::OK && body["lease_sweep"]["last_run"].is_string()
        })
        .await?;

        execute_sql(
            &db,
            "ALTER TABLE tasks RENAME COLUMN lease_until TO lease_until_moved",
        )
        .await?;
        let (status, body) = health_until(url, "the failed sweep shows", |_, body| {
            sweep_problem(body).is_some()
        })
        .await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["status"], "degraded", "{body}");
        let problem = sweep_problem(&body).unwrap_or_default();
        assert!(problem.contains("last run failed"), "{problem}");
        assert!(
            body["lease_sweep"]["failures"].as_u64() >= Some(1),
            "{body}"
        );
        assert!(body["lease_sweep"]["last_error"].is_string(), "{body}");
        assert!(failures_metric(url).await? >= 1.0);

        execute_sql(
            &db,
            "ALTER TABLE tasks RENAME COLUMN lease_until_moved TO lease_until",
        )
        .await?;
        let (_, body) = health_until(url, "the sweep recovers", |_, body| {
            sweep_problem(body).is_none() && body["lease_sweep"]["last_error"].is_null()
        })
        .await?;
        assert!(
            body["lease_sweep"]["failures"].as_u64() >= Some(1),
            "the failures stay counted: {body}"
        );
        eprintln!(
            "lease sweep failure shown and cleared on {}",
            backend.name()
        );
        server.stop().await;
    }
    Ok(())
}
