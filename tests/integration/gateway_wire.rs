//! Gateway mode's calls to an `http://` upstream over its own HTTP/1 client
//! (`src/gateway/http/wire.rs`), against an upstream in the test that answers each tool the
//! way a broken or unwell server does: a 4xx/5xx with a text body, a JSON-RPC error with a 500,
//! an answer or an event past the 16 MiB bound, a forgotten session, 401/403, 429, and a
//! connection closed mid-answer. The client of Steward gets a JSON-RPC error naming the
//! upstream and the cause (never a hang), the ledger records the true status, and the next
//! call still works. With a proxy in Steward's environment the calls go through it (reqwest).

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, ensure};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use common::raw::{self, Client, PROTOCOL, Reply};
use common::{TestDb, TestServer, test_on_each_backend};
use futures::StreamExt;
use serde_json::{Value, json};

test_on_each_backend!(
    every_failure_of_an_upstream_is_a_clear_error_and_a_ledger_row,
    a_proxy_in_the_environment_carries_the_calls,
);

/// Past rmcp's (and the wire's) 16 MiB bound on an answer and on one event.
const OVERSIZED: usize = 16 * 1024 * 1024 + 1024;

/// The tools the fake upstream lists; each answers `tools/call` as its name says.
const TOOLS: [&str; 13] = [
    "echo",
    "plain_500",
    "plain_400",
    "json_500",
    "huge_json",
    "huge_event",
    "forget",
    "always_404",
    "unauthorized",
    "forbidden",
    "busy",
    "cut_json",
    "cut_event",
];

/// What the fake upstream saw.
#[derive(Default)]
struct Fake {
    sessions: Mutex<HashSet<String>>,
    initialized: AtomicUsize,
    forgot: AtomicBool,
    /// Tools whose call the upstream ran to a successful answer.
    ran: Mutex<Vec<String>>,
    /// Each POST's method and the authority of its request target (a proxy's absolute form).
    posts: Mutex<Vec<(String, Option<String>)>>,
}

/// Serves `fake` on a free local port: its address.
async fn serve(fake: Arc<Fake>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().fallback(handle).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

fn respond(status: StatusCode, kind: &str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    if let Ok(kind) = HeaderValue::from_str(kind) {
        response.headers_mut().insert(header::CONTENT_TYPE, kind);
    }
    response
}

fn json_response(status: StatusCode, message: &Value) -> Response {
    respond(status, "application/json", message.to_string())
}

/// A body that sends `first` and then fails, so the server drops the connection mid-answer
/// (the failure waits a moment, so the head and `first` are sent before it).
fn cut_after(first: &'static str) -> Body {
    let first = futures::stream::once(async move { Ok(Bytes::from_static(first.as_bytes())) });
    let cut = futures::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Err(std::io::Error::other("the upstream died mid-answer"))
    });
    Body::from_stream(first.chain(cut))
}

fn text_result(id: &Value, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only");
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "not JSON");
    };
    let name = message["method"].as_str().unwrap_or_default().to_string();
    let authority = uri.authority().map(ToString::to_string);
    fake.posts
        .lock()
        .expect("posts")
        .push((name.clone(), authority));
    let id = &message["id"];
    if name == "initialize" {
        let n = fake.initialized.fetch_add(1, Ordering::SeqCst) + 1;
        let session = format!("fake-session-{n}");
        fake.sessions
            .lock()
            .expect("sessions")
            .insert(session.clone());
        let result = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "fake", "version": "1.0"}}});
        let mut response = json_response(StatusCode::OK, &result);
        if let Ok(session) = HeaderValue::from_str(&session) {
            response.headers_mut().insert("mcp-session-id", session);
        }
        return response;
    }
    if id.is_null() {
        return respond(StatusCode::ACCEPTED, "text/plain", "");
    }
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !fake.sessions.lock().expect("sessions").contains(session) {
        return respond(StatusCode::NOT_FOUND, "text/plain", "no such session");
    }
    match name.as_str() {
        "tools/list" => {
            let tools: Vec<Value> = TOOLS
                .iter()
                .map(|tool| json!({"name": tool, "inputSchema": {"type": "object"}}))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}}),
            )
        }
        "tools/call" => call(&fake, id, message["params"]["name"].as_str().unwrap_or("")),
        _ => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("no method {name}")}}),
        ),
    }
}

fn call(fake: &Fake, id: &Value, tool: &str) -> Response {
    let ran = |text: &str| {
        fake.ran.lock().expect("ran").push(tool.to_string());
        json_response(StatusCode::OK, &text_result(id, text))
    };
    match tool {
        "echo" => ran("ok"),
        "plain_500" => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "database on fire",
        ),
        "plain_400" => respond(
            StatusCode::BAD_REQUEST,
            "text/html",
            "<h1>no such thing</h1>",
        ),
        "json_500" => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32099, "message": "the upstream broke politely"}}),
        ),
        "huge_json" => {
            let answer = text_result(id, &"x".repeat(OVERSIZED));
            json_response(StatusCode::OK, &answer)
        }
        "huge_event" => {
            let answer = text_result(id, &"x".repeat(OVERSIZED));
            respond(
                StatusCode::OK,
                "text/event-stream",
                format!("data: {answer}\n\n"),
            )
        }
        // As a restarted upstream: every session is forgotten, the call is not run.
        "forget" if !fake.forgot.swap(true, Ordering::SeqCst) => {
            fake.sessions.lock().expect("sessions").clear();
            respond(StatusCode::NOT_FOUND, "text/plain", "no such session")
        }
        "forget" => ran("ran once, after the new session"),
        "always_404" => respond(StatusCode::NOT_FOUND, "text/plain", "no such session"),
        "unauthorized" => {
            let mut response = respond(StatusCode::UNAUTHORIZED, "text/plain", "who are you");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fake\""),
            );
            response
        }
        "forbidden" => respond(StatusCode::FORBIDDEN, "text/plain", "not yours"),
        "busy" => {
            let mut response = respond(StatusCode::TOO_MANY_REQUESTS, "text/plain", "slow down");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            response
        }
        "cut_json" => {
            let mut response = respond(
                StatusCode::OK,
                "application/json",
                cut_after("{\"jsonrpc\":"),
            );
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response
        }
        "cut_event" => respond(
            StatusCode::OK,
            "text/event-stream",
            cut_after(": still working\n\n"),
        ),
        _ => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32602, "message": format!("no tool {tool}")}}),
        ),
    }
}

/// `fake__tool` in `session`: the reply.
async fn call_fake(client: &Client, session: &str, id: u64, tool: &str) -> anyhow::Result<Reply> {
    client
        .call(Some(session), id, &format!("fake__{tool}"), json!({}))
        .await
        .with_context(|| format!("fake__{tool}"))
}

/// The start of a reply's text (an oversized answer passed on would flood the test's output).
fn shown(reply: &Reply) -> String {
    reply.text.chars().take(2_000).collect()
}

/// A JSON-RPC error naming the upstream, with `code` and every one of `says` in its message.
fn ensure_error(reply: &Reply, code: i64, says: &[&str]) -> anyhow::Result<()> {
    let message = reply.error_message();
    ensure!(reply.error_code() == Some(code), "{}", shown(reply));
    ensure!(message.contains("upstream fake"), "{}", shown(reply));
    ensure!(
        reply.message["error"]["data"]["upstream"] == "fake",
        "{}",
        shown(reply)
    );
    for said in says {
        ensure!(message.contains(said), "no {said:?} in {}", shown(reply));
    }
    Ok(())
}

fn ensure_ok(reply: &Reply, text: &str) -> anyhow::Result<()> {
    let result = reply
        .result()
        .with_context(|| format!("no result in {}", shown(reply)))?;
    ensure!(
        result["content"][0]["text"] == text && result["isError"] != true,
        "{}",
        shown(reply)
    );
    Ok(())
}

async fn every_failure_of_an_upstream_is_a_clear_error_and_a_ledger_row(
    db: TestDb,
) -> anyhow::Result<()> {
    let fake = Arc::new(Fake::default());
    let address = serve(fake.clone()).await?;
    let upstream = format!("fake=http://{address}/mcp");
    // Failures in a row would open the breaker; each case here must reach the upstream.
    let flags = [
        "--upstream",
        &upstream,
        "--upstream-breaker-failures",
        "1000",
    ];
    let server = TestServer::start_with(&db, &flags).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
    let session = client.open_session(PROTOCOL, "wire-test").await?;
    ensure_ok(&call_fake(&client, &session, 1, "echo").await?, "ok")?;

    // (tool, JSON-RPC code, what the message says, the ledger's error_code)
    let unavailable = -32010;
    let cases: [(&str, i64, &[&str]); 11] = [
        ("plain_500", unavailable, &["HTTP 500"]),
        ("plain_400", unavailable, &["HTTP 400", "no such thing"]),
        ("json_500", -32099, &["the upstream broke politely"]),
        ("huge_json", unavailable, &["cannot read its answer"]),
        ("huge_event", unavailable, &["event stream", "larger than"]),
        ("always_404", unavailable, &["forgot the session again"]),
        ("unauthorized", unavailable, &["HTTP 401/403"]),
        ("forbidden", unavailable, &["HTTP 403", "not yours"]),
        ("busy", unavailable, &["HTTP 429"]),
        ("cut_json", unavailable, &["cannot read its answer"]),
        ("cut_event", unavailable, &["event stream"]),
    ];
    let mut id = 10;
    for (tool, code, says) in cases {
        id += 1;
        let reply = call_fake(&client, &session, id, tool).await?;
        ensure_error(&reply, code, says).with_context(|| tool.to_string())?;
        // The upstream's connection or session is not left broken for the next call.
        id += 1;
        ensure_ok(&call_fake(&client, &session, id, "echo").await?, "ok")
            .with_context(|| format!("echo after {tool}"))?;
        let jsonrpc_id = (id - 1).to_string();
        raw::ledger_row(&api, &format!("tool=fake__{tool}"), |r| {
            r["jsonrpc_id"] == jsonrpc_id.as_str()
                && r["status"] == "error"
                && r["error_code"] == code
                && r["upstream"] == "fake"
        })
        .await
        .with_context(|| format!("the ledger row of {tool}"))?;
    }
    // The same as a session's first call, which Steward answers through rmcp (a session's
    // later calls are answered in front of it, `gateway::raw`): the same error.
    for (tool, code, says) in cases {
        let fresh = client.open_session(PROTOCOL, "wire-test-first").await?;
        let reply = call_fake(&client, &fresh, 500, tool).await?;
        ensure_error(&reply, code, says).with_context(|| format!("{tool} first"))?;
    }

    // A forgotten session: initialized again and the call retried once, run once.
    let before = fake.initialized.load(Ordering::SeqCst);
    id += 1;
    let reply = call_fake(&client, &session, id, "forget").await?;
    ensure_ok(&reply, "ran once, after the new session")?;
    ensure!(
        fake.initialized.load(Ordering::SeqCst) == before + 1,
        "one new upstream session"
    );
    let runs = fake
        .ran
        .lock()
        .expect("ran")
        .iter()
        .filter(|t| *t == "forget")
        .count();
    ensure!(runs == 1, "the call ran {runs} times");
    let jsonrpc_id = id.to_string();
    raw::ledger_row(&api, "tool=fake__forget", |r| {
        r["jsonrpc_id"] == jsonrpc_id.as_str() && r["status"] == "success"
    })
    .await?;
    ensure_ok(&call_fake(&client, &session, id + 1, "echo").await?, "ok")?;
    let (_, health) = api.get_json("/health").await?;
    let entry = health["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == "fake"))
        .with_context(|| format!("no upstream fake in {health}"))?;
    ensure!(entry["state"] == "up", "{entry}");
    server.stop().await;
    Ok(())
}

async fn a_proxy_in_the_environment_carries_the_calls(db: TestDb) -> anyhow::Result<()> {
    let fake = Arc::new(Fake::default());
    let address = serve(fake.clone()).await?;
    // A host that does not resolve: only a proxy can reach it.
    let upstream = "fake=http://fake-upstream.invalid:9/mcp";
    let proxy = format!("http://{address}");
    for variable in ["http_proxy", "all_proxy"] {
        fake.posts.lock().expect("posts").clear();
        let env = [(variable, proxy.as_str())];
        let server = TestServer::start_with_env(&db, &["--upstream", upstream], &env).await?;
        let client = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = client.open_session(PROTOCOL, "proxy-test").await?;
        for id in 1..=2 {
            ensure_ok(&call_fake(&client, &session, id, "echo").await?, "ok")
                .with_context(|| variable.to_string())?;
        }
        let posts = fake.posts.lock().expect("posts").clone();
        let calls: Vec<_> = posts.iter().filter(|(m, _)| m == "tools/call").collect();
        ensure!(
            calls.len() == 2
                && calls
                    .iter()
                    .all(|(_, to)| to.as_deref() == Some("fake-upstream.invalid:9")),
            "{variable}: the calls did not go through the proxy: {posts:?}"
        );
        server.stop().await;
    }
    Ok(())
}
