//! A lean MCP-over-HTTP client: one hyper HTTP/1.1 connection per worker, session-era
//! requests (`initialize`, `notifications/initialized`, `tools/call`), and a validator for every
//! answer (HTTP status, the SSE `data:` JSON, JSON-RPC error, `isError`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;

/// The protocol revision the bench negotiates (session era).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The stateless revision: no session, every request says who it is in `_meta` and headers.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Time limit for one HTTP exchange; a request slower than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an MCP endpoint lives. Only loopback addresses are ever used.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    host: String,
}

impl Target {
    pub fn new(addr: SocketAddr, path: &str) -> Result<Target> {
        if !addr.ip().is_loopback() {
            bail!("refusing to load {addr}: the bench only targets 127.0.0.1");
        }
        Ok(Target {
            addr,
            path: path.to_string(),
            host: addr.to_string(),
        })
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct Conn {
    target: Target,
    sender: http1::SendRequest<Full<Bytes>>,
}

/// One HTTP answer, body fully read.
pub struct Answer {
    pub status: StatusCode,
    pub session_id: Option<String>,
    pub body: Bytes,
}

impl Conn {
    pub async fn connect(target: &Target) -> Result<Conn> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; a
            // broken connection shows up as an error on the next request.
            if let Err(error) = conn.await {
                drop(error);
            }
        });
        Ok(Conn {
            target: target.clone(),
            sender,
        })
    }

    /// POSTs a JSON-RPC message.
    pub async fn post(&mut self, session: Option<&str>, body: Bytes) -> Result<Answer> {
        match session {
            Some(id) => {
                let headers = [
                    ("mcp-session-id", id),
                    ("mcp-protocol-version", PROTOCOL_VERSION),
                ];
                self.post_with(&headers, body).await
            }
            None => self.post_with(&[], body).await,
        }
    }

    /// POSTs a stateless (2026-07-28) `tools/call` of `tool` (see [`stateless_call_body`]).
    pub async fn post_stateless(&mut self, tool: &str, body: Bytes) -> Result<Answer> {
        let headers = [
            ("mcp-protocol-version", STATELESS_VERSION),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ];
        self.post_with(&headers, body).await
    }

    async fn post_with(&mut self, headers: &[(&str, &str)], body: Bytes) -> Result<Answer> {
        let mut req = Request::post(self.target.path.as_str())
            .header("host", self.target.host.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.exchange(req.body(Full::new(body))?).await
    }

    /// A GET of `path` on this connection's server (e.g. `/api/stats`).
    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        let req = Request::get(path)
            .header("host", self.target.host.as_str())
            .body(Full::new(Bytes::new()))?;
        self.exchange(req).await
    }

    /// Sends one request and reads the whole answer, within [`REQUEST_TIMEOUT`].
    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Answer> {
        let exchange = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let session_id = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Answer {
                status,
                session_id,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
    }

    /// `initialize` + `notifications/initialized`; returns the session id.
    pub async fn open_session(&mut self, client_name: &str) -> Result<String> {
        let init = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": "1"}
            }
        });
        let answer = self.post(None, Bytes::from(init.to_string())).await?;
        if answer.status != StatusCode::OK {
            bail!(
                "initialize answered HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        json_rpc_result(&answer.body, Some(0)).context("initialize")?;
        let id = answer
            .session_id
            .ok_or_else(|| anyhow!("initialize answered without an Mcp-Session-Id header"))?;
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let answer = self
            .post(Some(&id), Bytes::from_static(note.as_bytes()))
            .await?;
        if !answer.status.is_success() {
            bail!("notifications/initialized answered HTTP {}", answer.status);
        }
        Ok(id)
    }

    /// A validated `tools/call`; returns the result's first text content, parsed as JSON when
    /// it is JSON.
    pub async fn call_tool(
        &mut self,
        session: Option<&str>,
        id: u64,
        tool: &str,
        args: &Value,
    ) -> Result<Value> {
        let body = tool_call_body(id, tool, &args.to_string());
        let answer = self.post(session, body).await?;
        let result = check_tool_answer(&answer, Some(id))?;
        let text = result
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(serde_json::from_str(text).unwrap_or(Value::String(text.to_string())))
    }
}

pub fn tool_call_body(id: u64, tool: &str, args_json: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args_json}}}}}"#
    ))
}

/// A stateless (2026-07-28) `tools/call`: the protocol revision, client capabilities and
/// client info travel in `params._meta` with every request.
pub fn stateless_call_body(id: u64, tool: &str, args_json: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args_json},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{STATELESS_VERSION}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"steward-bench","version":"1"}}}}}}}}"#
    ))
}

/// Checks one `tools/call` answer: HTTP 200, a JSON-RPC response (with this id when given), no
/// JSON-RPC error, `isError` not true.
pub fn check_tool_answer(answer: &Answer, id: Option<u64>) -> Result<Value> {
    if answer.status != StatusCode::OK {
        bail!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        );
    }
    let result = json_rpc_result(&answer.body, id)?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!(
            "tool error: {}",
            result.pointer("/content/0/text").unwrap_or(&Value::Null)
        );
    }
    Ok(result)
}

/// The cheap check used on the hot path: the same as [`check_tool_answer`] but it does not
/// build a `Value` tree for the result.
fn check_tool_answer_fast(answer: &Answer, id: Option<u64>) -> Result<()> {
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        id: Option<&'a serde_json::value::RawValue>,
        result: Option<ToolResult>,
        #[serde(borrow)]
        error: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    if answer.status != StatusCode::OK {
        bail!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        );
    }
    for data in sse_data(&answer.body)? {
        let Ok(resp) = serde_json::from_str::<Response>(&data) else {
            continue;
        };
        if resp.result.is_none() && resp.error.is_none() {
            continue; // a notification or request from the server
        }
        if let (Some(want), Some(got)) = (id, resp.id)
            && got.get() != want.to_string()
        {
            bail!("answer for id {} while waiting for {want}", got.get());
        }
        if let Some(error) = resp.error {
            bail!("JSON-RPC error: {}", error.get());
        }
        if resp.result.and_then(|r| r.is_error) == Some(true) {
            bail!("tool error (isError: true)");
        }
        return Ok(());
    }
    bail!("no JSON-RPC response in the body")
}

/// The `data:` payloads of an SSE body (or the whole body when it is plain JSON).
fn sse_data(body: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(body).context("body is not UTF-8")?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return Ok(vec![trimmed.to_string()]);
    }
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if let Some(data) = line.strip_prefix("data:") {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(data.strip_prefix(' ').unwrap_or(data));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The `result` of the JSON-RPC response in an SSE or JSON body, found as `steward check` and
/// the tests find it (off the hot path; [`check_tool_answer_fast`] is the hot path's check).
pub fn json_rpc_result(body: &[u8], id: Option<u64>) -> Result<Value> {
    let text = std::str::from_utf8(body).context("body is not UTF-8")?;
    let Some(mut msg) = steward::mcp::client::find_message(text) else {
        bail!(
            "no JSON-RPC response in the body: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    };
    if let Some(error) = msg.get("error") {
        bail!("JSON-RPC error: {error}");
    }
    if let Some(want) = id
        && msg.get("id").and_then(Value::as_u64) != Some(want)
    {
        bail!("answer for id {:?} while waiting for {want}", msg.get("id"));
    }
    Ok(msg["result"].take())
}

/// What a load run sends.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub target: Target,
    /// Sessions the requests rotate over (request i uses session i % len); empty = no session.
    pub sessions: Vec<String>,
    pub requests: usize,
    pub concurrency: usize,
    /// Stop starting new requests after this long.
    pub max_time: Duration,
    pub tool: String,
    pub args_json: String,
    /// Arguments made for each request from its JSON-RPC id, instead of `args_json`.
    pub varied_args: Option<fn(u64) -> String>,
    /// Check that the answer carries the request's JSON-RPC id (off for the pre-serialised limit).
    pub check_id: bool,
    /// JSON-RPC ids start here (so ids stay unique within a session across runs).
    pub first_id: u64,
    /// Stateless requests (2026-07-28, no session; `sessions` is ignored).
    pub stateless: bool,
}

/// What a load run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadOutcome {
    pub sent: usize,
    pub ok: usize,
    pub errors: usize,
    pub first_errors: Vec<String>,
    pub elapsed: Duration,
    /// Latency of every request (successful or not), microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadOutcome {
    pub fn throughput(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Percentile in milliseconds (nearest rank).
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }
    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(0.0, |v| f64::from(*v) / 1000.0)
    }
}

/// Sends `spec.requests` tool calls with `spec.concurrency` in flight, each worker on its own
/// connection, validating every answer.
pub async fn run_load(spec: &LoadSpec) -> LoadOutcome {
    let spec = Arc::new(spec.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..spec.concurrency.max(1) {
        let spec = spec.clone();
        let next = next.clone();
        workers.push(tokio::spawn(
            async move { worker(&spec, &next, start).await },
        ));
    }
    let mut out = LoadOutcome::default();
    for w in workers {
        match w.await {
            Ok(part) => {
                out.sent += part.sent;
                out.ok += part.ok;
                out.errors += part.errors;
                for e in part.first_errors {
                    if out.first_errors.len() < 5 {
                        out.first_errors.push(e);
                    }
                }
                out.latencies_us.extend(part.latencies_us);
            }
            Err(error) => {
                out.errors += 1;
                out.first_errors.push(format!("worker panicked: {error}"));
            }
        }
    }
    out.elapsed = start.elapsed();
    out.latencies_us.sort_unstable();
    out
}

async fn worker(spec: &LoadSpec, next: &AtomicUsize, start: Instant) -> LoadOutcome {
    let mut out = LoadOutcome::default();
    let mut conn: Option<Conn> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= spec.requests || start.elapsed() > spec.max_time {
            break;
        }
        let session = if spec.sessions.is_empty() || spec.stateless {
            None
        } else {
            Some(spec.sessions[i % spec.sessions.len()].as_str())
        };
        let id = spec.first_id + i as u64;
        let varied = spec.varied_args.map(|args_for| args_for(id));
        let args = varied.as_deref().unwrap_or(&spec.args_json);
        let body = if spec.stateless {
            stateless_call_body(id, &spec.tool, args)
        } else {
            tool_call_body(id, &spec.tool, args)
        };
        let t0 = Instant::now();
        let result = async {
            if conn.is_none() {
                conn = Some(Conn::connect(&spec.target).await?);
            }
            let c = conn.as_mut().ok_or_else(|| anyhow!("no connection"))?;
            let answer = if spec.stateless {
                c.post_stateless(&spec.tool, body).await
            } else {
                c.post(session, body).await
            };
            if answer.is_err() {
                conn = None; // reconnect on the next request
            }
            check_tool_answer_fast(&answer?, spec.check_id.then_some(id))
        }
        .await;
        let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        out.latencies_us.push(us);
        out.sent += 1;
        match result {
            Ok(()) => out.ok += 1,
            Err(error) => {
                out.errors += 1;
                if out.first_errors.len() < 5 {
                    out.first_errors.push(format!("{error:#}"));
                }
            }
        }
    }
    out
}

/// Opens `n` sessions with `concurrency` handshakes in flight; returns their ids in order.
pub async fn open_sessions(
    target: &Target,
    n: usize,
    concurrency: usize,
    client_name: &str,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let target = target.clone();
        let next = next.clone();
        let name = client_name.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&target).await?;
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                ids.push((i, conn.open_session(&name).await?));
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, id)| id).collect())
}
