//! Observability export as Prometheus, an OpenTelemetry collector and a log pipeline see it:
//! `/metrics` after known traffic, OTLP/HTTP spans received by an in-process collector, and
//! `--log-format json` lines.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{TestDb, TestServer, backends, call, connect};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode as SpanStatus};
use prost::Message;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// /metrics

/// The value of the sample `name{labels}` whose labels are exactly `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            (metric == name && parse_labels(label_text) == want)
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// `a="x",b="y"` (label values here never contain quotes or commas).
fn parse_labels(text: &str) -> BTreeMap<&str, &str> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key, value.trim_matches('"')))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> anyhow::Result<String> {
    let response = reqwest::get(format!("{}/metrics", server.base_url)).await?;
    ensure!(response.status() == 200, "/metrics: {}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        content_type.starts_with("text/plain"),
        "/metrics content type: {content_type}"
    );
    Ok(response.text().await?)
}

/// Scrapes until `ready` holds for the text (the ledger records metrics moments after a call).
async fn scrape_until(server: &TestServer, ready: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = scrape(server).await?;
        if ready(&text) {
            return Ok(text);
        }
        ensure!(
            Instant::now() < deadline,
            "/metrics never showed the traffic:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_count_known_traffic_with_semantic_convention_names() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let client = connect(&server.mcp_url(), "metrics-client").await?;
        for _ in 0..3 {
            let (is_error, _) = call(&client, "find_projects", json!({})).await?;
            assert!(!is_error);
        }
        let missing =
            json!({"action": "get", "project_id": "00000000-0000-4000-8000-000000000000"});
        let (is_error, body) = call(&client, "manage_project", missing).await?;
        assert!(is_error, "{body}");
        // Made-up method names (refused, but recorded) count as `other`: a client cannot make
        // /metrics grow a series per name it invents.
        let http = crate::common::http_client();
        for i in 0..3 {
            let status = http
                .post(server.mcp_url())
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"evil/series-{i}"}}"#
                ))
                .send()
                .await?
                .status();
            assert!(status.is_client_error(), "{status}");
        }

        let ok = [
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "find_projects"),
            ("error_type", ""),
        ];
        let failed = [
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "manage_project"),
            ("error_type", "tool_error"),
        ];
        let histogram = "mcp_server_operation_duration_seconds";
        let other = [
            ("mcp_method_name", "other"),
            ("gen_ai_tool_name", ""),
            ("status", "error"),
        ];
        // Request series are recorded as rows are analysed, `written` once they are stored:
        // wait for every one of them (the last of the bad requests may be analysed last).
        let text = scrape_until(&server, |t| {
            sample(t, &format!("{histogram}_count"), &ok) == Some(3.0)
                && sample(t, &format!("{histogram}_count"), &failed) == Some(1.0)
                && sample(t, "steward_requests_total", &other).unwrap_or(0.0) >= 3.0
                && sample(t, "steward_ledger_written_rows_total", &[]).unwrap_or(0.0) >= 8.0
        })
        .await?;
        assert!(!text.contains("evil/series"), "{text}");
        assert_eq!(
            sample(&text, "steward_requests_total", &other),
            Some(3.0),
            "{text}"
        );

        // Counts per method, tool and true status.
        let requests = |tool: &str, status: &str| {
            sample(
                &text,
                "steward_requests_total",
                &[
                    ("mcp_method_name", "tools/call"),
                    ("gen_ai_tool_name", tool),
                    ("status", status),
                ],
            )
        };
        assert_eq!(requests("find_projects", "success"), Some(3.0), "{text}");
        assert_eq!(
            requests("manage_project", "tool_error"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(requests("manage_project", "success"), None, "{text}");
        let initialize = [
            ("mcp_method_name", "initialize"),
            ("gen_ai_tool_name", ""),
            ("status", "success"),
        ];
        assert_eq!(
            sample(&text, "steward_requests_total", &initialize),
            Some(1.0),
            "{text}"
        );

        // Histogram buckets: cumulative, in seconds, every call within 10 s, +Inf = count.
        let bucket = |le: &str| {
            let mut labels = ok.to_vec();
            labels.push(("le", le));
            sample(&text, &format!("{histogram}_bucket"), &labels)
        };
        let bounds = ["0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"];
        let counts: Vec<f64> = bounds
            .iter()
            .map(|le| bucket(le).with_context(|| format!("no bucket le={le}:\n{text}")))
            .collect::<anyhow::Result<_>>()?;
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "buckets are not cumulative: {counts:?}"
        );
        assert_eq!(counts[5..], [3.0, 3.0], "{text}");
        let sum = sample(&text, &format!("{histogram}_sum"), &ok).context("no _sum")?;
        assert!(sum > 0.0 && sum < 30.0, "sum of seconds: {sum}");

        // State gauges and counters.
        assert_eq!(
            sample(
                &text,
                "steward_sessions_live",
                &[("client_type", "unknown")]
            ),
            Some(1.0),
            "{text}"
        );
        let written = sample(&text, "steward_ledger_written_rows_total", &[]).unwrap_or(0.0);
        assert!(written >= 5.0, "ledger rows written: {written}\n{text}");
        assert_eq!(
            sample(&text, "steward_ledger_lost_rows_total", &[]),
            Some(0.0)
        );
        assert_eq!(sample(&text, "steward_ledger_degraded", &[]), Some(0.0));
        assert_eq!(sample(&text, "steward_database_up", &[]), Some(1.0));
        let rss = sample(&text, "process_resident_memory_bytes", &[]).unwrap_or(0.0);
        assert!(rss > 1_000_000.0, "resident memory: {rss}");

        // A session that ends is measured: mcp.server.session.duration.
        client.cancel().await?;
        let session_count = "mcp_server_session_duration_seconds_count";
        let ended = [("disconnect_reason", "client_delete")];
        let text = scrape_until(&server, |t| sample(t, session_count, &ended) == Some(1.0)).await?;
        assert_eq!(
            sample(
                &text,
                "steward_sessions_live",
                &[("client_type", "unknown")]
            ),
            Some(0.0),
            "an ended session is no longer counted live:\n{text}"
        );
        let mut inf = ended.to_vec();
        inf.push(("le", "+Inf"));
        assert_eq!(
            sample(&text, "mcp_server_session_duration_seconds_bucket", &inf),
            Some(1.0),
            "{text}"
        );
        server.stop().await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// OTLP traces

/// An OTLP/HTTP receiver (protobuf) on a free port, keeping every span it is sent.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> anyhow::Result<Self> {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, spans })
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("collector lock").clone()
    }
}

async fn receive(
    State(spans): State<Arc<Mutex<Vec<Span>>>>,
    body: Bytes,
) -> Result<Vec<u8>, (axum::http::StatusCode, String)> {
    let request = ExportTraceServiceRequest::decode(body).map_err(|e| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("not an OTLP trace export: {e}"),
        )
    })?;
    let received = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    spans.lock().expect("collector lock").extend(received);
    Ok(Vec::new())
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A stateless (2026-07-28) `tools/call` carrying a W3C trace context in `_meta`.
async fn traced_stateless_call(url: &str, tool: &str) -> anyhow::Result<Value> {
    let body = json!({
        "jsonrpc": "2.0", "id": "traced-1", "method": "tools/call",
        "params": {
            "name": tool, "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": "traced-client", "version": "1.0.0" },
                "traceparent": format!("00-{TRACE_ID}-{PARENT_SPAN}-01"),
            },
        },
    });
    let response = crate::common::http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
        .send()
        .await?;
    let text = response.text().await?;
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data: ").filter(|d| d.starts_with('{')))
        .unwrap_or(&text);
    serde_json::from_str(json_text).with_context(|| format!("reply: {text}"))
}

#[tokio::test]
async fn otlp_spans_follow_the_mcp_semantic_conventions() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start_with(&db, &["--otlp-endpoint", &collector.url]).await?;
    let client = connect(&server.mcp_url(), "traced-session").await?;
    let (is_error, _) = call(&client, "find_projects", json!({})).await?;
    assert!(!is_error);
    let missing = json!({"action": "get", "project_id": "00000000-0000-4000-8000-000000000000"});
    let (is_error, _) = call(&client, "manage_project", missing).await?;
    assert!(is_error);
    let reply = traced_stateless_call(&server.mcp_url(), "health_check").await?;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = traced_stateless_call(&server.mcp_url(), "no_such_tool").await?;
    let code = reply["error"]["code"].as_i64().context(reply.to_string())?;
    client.cancel().await?;
    // SIGTERM flushes the ledger, then every span, before exit.
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );

    let spans = collector.spans();
    let by_name = |name: &str| -> anyhow::Result<Span> {
        spans
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .with_context(|| {
                let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
                format!("no span {name:?}; got {names:?}")
            })
    };

    let ok = by_name("tools/call find_projects")?;
    assert_eq!(ok.kind, 2, "SERVER kind"); // SpanKind::Server
    assert_eq!(
        attribute(&ok, "mcp.method.name").as_deref(),
        Some("tools/call")
    );
    assert_eq!(
        attribute(&ok, "gen_ai.tool.name").as_deref(),
        Some("find_projects")
    );
    assert_eq!(
        attribute(&ok, "gen_ai.operation.name").as_deref(),
        Some("execute_tool")
    );
    assert_eq!(attribute(&ok, "error.type"), None);
    assert!(attribute(&ok, "jsonrpc.request.id").is_some());
    let session = attribute(&ok, "mcp.session.id").context("mcp.session.id")?;
    assert_eq!(session.len(), 64, "session id: {session}");
    assert!(attribute(&ok, "mcp.protocol.version").is_some_and(|v| v.starts_with("20")));
    assert!(ok.end_time_unix_nano >= ok.start_time_unix_nano);
    assert_ne!(
        ok.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );

    let tool_error = by_name("tools/call manage_project")?;
    assert_eq!(
        attribute(&tool_error, "error.type").as_deref(),
        Some("tool_error")
    );
    assert_eq!(
        tool_error.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );

    let traced = by_name("tools/call health_check")?;
    assert_eq!(
        hex(&traced.trace_id),
        TRACE_ID,
        "the client's trace continues"
    );
    assert_eq!(hex(&traced.parent_span_id), PARENT_SPAN);
    assert_eq!(
        attribute(&traced, "mcp.protocol.version").as_deref(),
        Some("2026-07-28")
    );
    assert_eq!(
        attribute(&traced, "jsonrpc.request.id").as_deref(),
        Some("traced-1")
    );

    let protocol_error = by_name("tools/call no_such_tool")?;
    assert_eq!(
        attribute(&protocol_error, "error.type"),
        Some(code.to_string()),
        "a JSON-RPC error is typed by its code"
    );
    assert_eq!(
        attribute(&protocol_error, "rpc.response.status_code"),
        Some(code.to_string())
    );
    assert_eq!(
        protocol_error.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
    assert!(by_name("initialize").is_ok());
    Ok(())
}

#[tokio::test]
async fn an_invalid_otlp_endpoint_is_a_configuration_error() -> anyhow::Result<()> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "collector:4318",
        ])
        .env_remove("STEWARD_CONFIG")
        .output()
        .await?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--otlp-endpoint") && stderr.contains("http://"),
        "{stderr}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Structured logs

#[tokio::test]
async fn json_logs_are_one_object_per_line() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start_with(&db, &["--log-format", "json"]).await?;
    let client = connect(&server.mcp_url(), "json-logs").await?;
    client.cancel().await?;
    let stderr = server.stderr_output();
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("stderr (last lines)"))
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let entry: Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON log line: {line}"))?;
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["timestamp"].is_string(), "{line}");
        assert!(entry["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Steward is serving MCP at /mcp")),
        "{stderr}"
    );
    Ok(())
}
