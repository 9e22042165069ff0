//! Hostile clients, second round (issue 27, finding 3): connection-level limits. Half-sent
//! headers, idle keep-alive connections and stalled bodies are closed after their timeouts,
//! a connection over the cap is refused while the others work, and a server-sent event stream
//! is not idle however long it waits. Raw TCP clients, with short timeouts configured; the
//! bounds asserted are generous (several times the timeout). Connection handling reads and
//! writes no storage, so these run on SQLite only.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::raw::{Client as Raw, open_session};
use common::{Backend, InProcess, TestDb, TestServer};

/// Longest a closed connection may take to be seen closed, for a 1 s timeout.
const CLOSED_WITHIN: Duration = Duration::from_secs(8);

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

pub(crate) async fn connect(base_url: &str) -> anyhow::Result<TcpStream> {
    let addr = base_url.trim_start_matches("http://");
    Ok(TcpStream::connect(addr).await?)
}

/// A new connection on which one `GET /health` has been answered 200 (a keep-alive connection
/// that has served a request).
async fn served_connection(base_url: &str) -> anyhow::Result<TcpStream> {
    let mut stream = connect(base_url).await?;
    stream.write_all(HEALTH).await?;
    ensure!(
        read_response(&mut stream).await? == 200,
        "GET /health on a new connection"
    );
    Ok(stream)
}

/// Reads until a response's head is complete: the bytes read so far and where the head ends.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((received, end + 4));
        }
        let n = tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut chunk))
            .await
            .context("no response")??;
        ensure!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one HTTP/1.1 response (head and a `content-length` body): its status code.
pub(crate) async fn read_response(stream: &mut TcpStream) -> anyhow::Result<u16> {
    let (received, head_end) = read_head(stream).await?;
    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no content-length")?;
    let mut chunk = [0u8; 4096];
    let mut body = received.len() - head_end;
    while body < length {
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "closed mid-body");
        body += n;
    }
    Ok(status)
}

/// Waits until the server closes `stream` (end of file or reset): how long that took.
/// Whatever it sends first is returned too.
async fn closed(stream: &mut TcpStream) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut chunk)).await {
            Err(_) => bail!(
                "still open after {CLOSED_WITHIN:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ok((started.elapsed(), String::from_utf8_lossy(&received).into()));
            }
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_closed_after_the_header_timeout() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start_with(
        &db,
        &[
            "--header-read-timeout",
            "1s",
            "--connection-idle-timeout",
            "60s",
        ],
    )
    .await?;
    // Headers that never end: the deadline runs from the first byte, not the last.
    let mut dripping = connect(&server.base_url).await?;
    dripping.write_all(b"GET /health HTTP/1.1\r\n").await?;
    let (mut reader, mut writer) = dripping.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"x-drip: 1\r\n").await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let outcome = tokio::time::timeout(CLOSED_WITHIN, reader.read(&mut byte)).await;
    drip.abort();
    ensure!(
        matches!(outcome, Ok(Ok(0)) | Ok(Err(_))),
        "a connection dripping header lines was not closed: {outcome:?} after {:?}",
        started.elapsed()
    );
    // A silent new connection gets the same deadline.
    let mut silent = connect(&server.base_url).await?;
    closed(&mut silent).await.context("a silent connection")?;
    // Well-formed requests are unaffected.
    served_connection(&server.base_url).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    // The header deadline is long: only the idle one can close the connection in time.
    let server = InProcess::start_with(
        &db,
        &[
            "--header-read-timeout",
            "60s",
            "--connection-idle-timeout",
            "1s",
        ],
    )
    .await?;
    let mut stream = served_connection(&server.base_url).await?;
    // A second request within the idle timeout is served on the same connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(HEALTH).await?;
    ensure!(read_response(&mut stream).await? == 200);
    let (after, sent) = closed(&mut stream).await.context("an idle connection")?;
    ensure!(sent.is_empty(), "sent on an idle connection: {sent:?}");
    eprintln!("idle connection closed after {after:?}");

    // A request begun after an idle pause gets the header deadline from its first byte, not
    // the idle deadline's remainder: sent in two parts, it is served.
    let mut stream = served_connection(&server.base_url).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(&HEALTH[..10]).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(&HEALTH[10..]).await?;
    ensure!(read_response(&mut stream).await? == 200);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_refused_and_its_connection_closed() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start_with(&db, &["--body-stall-timeout", "1s"]).await?;
    let after = refused_stalled_body(&server.base_url).await?;
    eprintln!("stalled body answered and closed after {after:?}");
    server.stop().await;
    Ok(())
}

/// A stalled body's start: a request head promising more body than is ever sent.
const STALLED_BODY: &str = "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
    accept: application/json, text/event-stream\r\ncontent-length: 100000\r\n\r\n{\"jsonrpc\":\"2.0\",";

/// Sends [`STALLED_BODY`] on a new connection and checks what its client sees: a 408 that says
/// the body stopped arriving, then the connection closed. How long that took.
async fn refused_stalled_body(base_url: &str) -> anyhow::Result<Duration> {
    let mut stream = connect(base_url).await?;
    stream.write_all(STALLED_BODY.as_bytes()).await?;
    let (after, sent) = closed(&mut stream).await.context("a stalled body")?;
    ensure!(
        sent.starts_with("HTTP/1.1 408"),
        "a stalled body's answer: {sent:?}"
    );
    ensure!(sent.contains("stopped arriving"), "{sent:?}");
    Ok(after)
}

/// Reads a response's head: its status line (the body, e.g. an event stream, is left unread).
async fn status_line(stream: &mut TcpStream) -> anyhow::Result<String> {
    let (received, head_end) = read_head(stream).await?;
    let head = String::from_utf8_lossy(&received[..head_end]);
    Ok(head.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_body_stall_does_not_close_an_idle_keep_alive_connection() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start_with(
        &db,
        &[
            "--header-read-timeout",
            "60s",
            "--connection-idle-timeout",
            "60s",
            "--body-stall-timeout",
            "1s",
        ],
    )
    .await?;
    let mut idle = served_connection(&server.base_url).await?;
    let idle_since = Instant::now();
    // Meanwhile a stalled body is cut after the body-stall timeout...
    let after = refused_stalled_body(&server.base_url).await?;
    eprintln!("stalled body closed after {after:?}");
    // ...while the keep-alive connection, idle for three times as long, still serves.
    tokio::time::sleep_until((idle_since + Duration::from_secs(3)).into()).await;
    idle.write_all(HEALTH).await?;
    ensure!(
        read_response(&mut idle).await? == 200,
        "the idle keep-alive connection"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_idle_timeout_does_not_cut_a_pausing_body() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = InProcess::start_with(
        &db,
        &[
            "--header-read-timeout",
            "60s",
            "--connection-idle-timeout",
            "1s",
            "--body-stall-timeout",
            "60s",
        ],
    )
    .await?;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"keepalive","version":"1"}}}"#;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
        accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut pausing = connect(&server.base_url).await?;
    pausing.write_all(head.as_bytes()).await?;
    pausing.write_all(&body.as_bytes()[..20]).await?;
    let paused_since = Instant::now();
    // Meanwhile an idle keep-alive connection is closed after the idle timeout...
    let mut idle = served_connection(&server.base_url).await?;
    let (after, sent) = closed(&mut idle).await.context("an idle connection")?;
    ensure!(sent.is_empty(), "sent on an idle connection: {sent:?}");
    eprintln!("idle connection closed after {after:?}");
    // ...while the body, paused for three times as long, is still taken and answered.
    tokio::time::sleep_until((paused_since + Duration::from_secs(3)).into()).await;
    pausing.write_all(&body.as_bytes()[20..]).await?;
    let status = status_line(&mut pausing).await.context("the paused body")?;
    ensure!(
        status.starts_with("HTTP/1.1 200"),
        "the paused body's answer: {status:?}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_while_the_others_work() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    // The real binary: /metrics has one recorder per process.
    let server = TestServer::start_with(&db, &["--max-connections", "3"]).await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = served_connection(&server.base_url).await?;
        held.push(stream);
    }
    let mut over = connect(&server.base_url).await?;
    // The refusal may come before the request is written (then the write may fail).
    if let Err(error) = over.write_all(HEALTH).await {
        eprintln!("writing on the refused connection: {error}");
    }
    let (_, sent) = closed(&mut over).await.context("the 4th connection")?;
    ensure!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 503"),
        "the 4th connection was answered: {sent:?}"
    );
    for stream in &mut held {
        stream.write_all(HEALTH).await?;
        ensure!(read_response(stream).await? == 200, "a held connection");
    }
    // A closed connection frees its slot.
    held.pop();
    let metrics = wait_for_a_slot(&server.base_url).await?;
    let refused = metric(&metrics, "steward_http_connections_refused_total")?;
    ensure!(refused >= 1.0, "refused connections counted: {refused}");
    let open = metric(&metrics, "steward_http_connections_open")?;
    ensure!((1.0..=3.0).contains(&open), "open connections: {open}");
    drop(held);
    server.stop().await;
    Ok(())
}

/// `/metrics`, read as soon as a connection slot is free again.
async fn wait_for_a_slot(base_url: &str) -> anyhow::Result<String> {
    let http = steward::tls::client_builder()
        .pool_max_idle_per_host(0)
        .build()?;
    for _ in 0..50 {
        if let Ok(response) = http.get(format!("{base_url}/metrics")).send().await
            && response.status() == StatusCode::OK
        {
            return Ok(response.text().await?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no connection slot came free")
}

/// The value of an unlabelled series in Prometheus text.
fn metric(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("{name} in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_idle_and_header_timeouts() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = TestServer::start_with(
        &db,
        &[
            "--header-read-timeout",
            "1s",
            "--connection-idle-timeout",
            "1s",
        ],
    )
    .await?;
    // No pooled connections: the server closes idle ones after a second.
    let http = steward::tls::client_builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let raw = Raw::with_http(&server.mcp_url(), http.clone());
    let session = open_session(&raw).await?;
    let mut stream = http
        .get(server.mcp_url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await?;
    ensure!(stream.status() == StatusCode::OK, "GET /mcp: {stream:?}");
    // Meanwhile the same deadlines close a connection that says nothing.
    let mut silent = connect(&server.base_url).await?;
    closed(&mut silent).await.context("a silent connection")?;
    let until = Instant::now() + Duration::from_secs(3);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, stream.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(_event))) => {}
            Ok(Ok(None)) => bail!("the event stream ended"),
            Ok(Err(error)) => bail!("the event stream failed: {error}"),
        }
    }
    // Still served: its connection is open (with this one) in /metrics, and it has not ended.
    let metrics = wait_for_a_slot(&server.base_url).await?;
    let open = metric(&metrics, "steward_http_connections_open")?;
    ensure!(open >= 2.0, "the stream's connection and this one: {open}");
    let header_timeouts = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"steward_http_connection_timeouts_total{timeout="header"} "#)
        })
        .and_then(|v| v.trim().parse::<f64>().ok());
    ensure!(
        header_timeouts >= Some(1.0),
        "the silent connection counted: {header_timeouts:?}"
    );
    ensure!(
        tokio::time::timeout(Duration::from_millis(500), stream.chunk())
            .await
            .is_err(),
        "the event stream ended"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connection_limits_are_refused_at_start() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    for args in [
        ["--max-connections", "0"],
        ["--header-read-timeout", "0s"],
        ["--connection-idle-timeout", "0s"],
        ["--body-stall-timeout", "0s"],
    ] {
        let Err(error) = InProcess::start_with(&db, &args).await else {
            bail!("{args:?} was accepted");
        };
        let message = format!("{error:#}");
        ensure!(
            message.contains("out of range") || message.contains("longer than zero"),
            "{args:?}: {message}"
        );
    }
    Ok(())
}
