//! Gateway mode merges the upstreams' resources, resource templates and prompts with the
//! board's, as it does their tools: the Python SDK upstream (tests/gateway/upstream.py) over
//! HTTP and over stdio behind Steward, each item named for its upstream and read or got
//! through it, with a ledger row naming the upstream.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, upstream_script};

use anyhow::{Context, ensure};
use common::raw::{self, Client, PROTOCOL};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(upstream_resources_templates_and_prompts_are_merged,);

/// A request in `session`, and its result.
async fn ask(
    client: &Client,
    session: &str,
    id: u64,
    method: &str,
    params: Value,
) -> anyhow::Result<Value> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    let reply = client.post(&body, Some(session)).await?;
    reply
        .result()
        .cloned()
        .with_context(|| format!("{method}: {}", reply.text))
}

/// The `field` of every item in `list`.
fn all(result: &Value, list: &str, field: &str) -> Vec<String> {
    result[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[field].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn upstream_resources_templates_and_prompts_are_merged(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let http = format!("py={}", upstream.url());
    let stdio = format!("pys=stdio:{} {} stdio", python.display(), upstream_script());
    let server = TestServer::start_with(&db, &["--upstream", &http, "--upstream", &stdio]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-lists").await?;

    let resources = ask(&client, &session, 1, "resources/list", json!({})).await?;
    let uris = all(&resources, "resources", "uri");
    for expected in [
        "upstream://py/notes://readme",
        "upstream://pys/notes://readme",
    ] {
        ensure!(
            uris.iter().any(|u| u == expected),
            "{expected} missing from {uris:?}"
        );
    }
    ensure!(
        uris.iter().any(|u| u.starts_with("steward://")),
        "no board resource in {uris:?}"
    );
    ensure!(
        all(&resources, "resources", "name").contains(&"py__readme".to_string()),
        "{resources}"
    );
    let templates = ask(&client, &session, 2, "resources/templates/list", json!({})).await?;
    let shapes = all(&templates, "resourceTemplates", "uriTemplate");
    ensure!(
        shapes
            .iter()
            .any(|t| t == "upstream://py/greeting://{name}"),
        "{shapes:?}"
    );
    ensure!(
        shapes.iter().any(|t| t.starts_with("steward://")),
        "{shapes:?}"
    );
    let prompts = ask(&client, &session, 3, "prompts/list", json!({})).await?;
    let names = all(&prompts, "prompts", "name");
    for expected in ["py__review", "pys__review", "standup"] {
        ensure!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // Read and got through the upstream that offers them, over HTTP and over stdio.
    for (id, uri, text) in [
        (4, "upstream://py/greeting://Ada", "Hello, Ada!"),
        (5, "upstream://pys/notes://readme", "The upstream's readme."),
    ] {
        let read = ask(
            &client,
            &session,
            id,
            "resources/read",
            json!({ "uri": uri }),
        )
        .await?;
        let contents = &read["contents"][0];
        ensure!(contents["text"] == text && contents["uri"] == uri, "{read}");
    }
    let got = ask(
        &client,
        &session,
        6,
        "prompts/get",
        json!({"name": "py__review", "arguments": {"code": "x = 1"}}),
    )
    .await?;
    let message = got["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default();
    ensure!(message == "Please review this code: x = 1", "{got}");

    // A resource of an upstream that has none by that name: the upstream's error, naming it.
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": { "uri": "upstream://py/notes://missing" } });
    let missing = client.post(&body, Some(&session)).await?;
    ensure!(
        missing.error_message().starts_with("upstream py: "),
        "{}",
        missing.text
    );

    let api = Client::new(&server.base_url);
    let row = raw::ledger_row(&api, "method=resources/read", |r| r["jsonrpc_id"] == "4").await?;
    ensure!(
        row["upstream"] == "py" && row["status"] == "success",
        "{row}"
    );
    let row = raw::ledger_row(&api, "method=prompts/get", |r| r["jsonrpc_id"] == "6").await?;
    ensure!(row["upstream"] == "py", "{row}");
    server.stop().await;
    drop(upstream);
    Ok(())
}
