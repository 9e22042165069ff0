//! Hostile clients, second round (issue 27, item 6): generated hostile JSON-RPC batches through
//! the real server. A seeded generator (the same inputs every run) makes a few thousand
//! batches — valid and unknown tools with arguments of every wrong type, huge and odd strings,
//! notifications, client responses, malformed items, duplicate and invalid ids, oversized
//! batches, `initialize` inside a batch, bytes flipped or cut — and POSTs them in a session
//! that may batch (2025-03-26), in one that may not, and with no session. Whatever comes back,
//! no request may get a 5xx, the server must not panic and must keep serving, and every
//! message it answered must have its ledger row. On SQLite and (with
//! `STEWARD_TEST_POSTGRES_URL`) PostgreSQL. `fuzz/` mutates the same kind of batch without a
//! server, for as long as it is run.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward::store::requests::RequestFilter;

use common::raw::{Client as Raw, open_session, open_session_at, still_serves};
use common::{TestDb, TestServer, test_on_each_backend};

/// The generator's seed: change it to explore, keep it fixed to reproduce.
const SEED: u64 = 20_270_027;
/// POSTs per run.
const BATCHES: usize = 2_000;

const TOOLS: &[&str] = &[
    "find_projects",
    "manage_project",
    "get_project_features",
    "find_tasks",
    "manage_task",
    "get_task_history",
    "get_completion_stats",
    "find_documents",
    "manage_document",
    "find_versions",
    "manage_version",
    "claim_task",
    "renew_claim",
    "release_task",
    "next_task",
    "health_check",
    "session_info",
];

const METHODS: &[&str] = &[
    "tools/list",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "completion/complete",
    "logging/setLevel",
    "ping",
    "server/discover",
    "sampling/createMessage",
    "",
];

/// Strings a hostile client likes: control characters, NUL (which PostgreSQL cannot store),
/// surrogate look-alikes, bidi overrides, quotes, SQL and markup.
const ODD: &[&str] = &[
    "\u{0}",
    "\u{202e}gnp.exe",
    "é𝄞\u{feff}",
    "\"\\",
    "' OR 1=1 --",
    "%_\\%",
    "<script>alert(1)</script>",
    "\r\n\r\n",
    "../../etc/passwd",
    "\u{7f}\u{1b}[31m",
];

/// Deterministic hostile input.
struct Generator {
    rng: StdRng,
    next_id: u64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            next_id: 0,
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn text(&mut self) -> String {
        match self.rng.random_range(0..6) {
            0 => String::new(),
            1 => self.pick(ODD).to_string(),
            2 if self.rng.random_bool(0.1) => "x".repeat(5_000),
            2 => "x".repeat(self.rng.random_range(200..1_000)),
            3 => format!("{:032x}", self.rng.random::<u128>()),
            4 => self.pick(TOOLS).to_string(),
            _ => (0..self.rng.random_range(1..40))
                .map(|_| char::from_u32(self.rng.random_range(1..0x2_FFFF)).unwrap_or('?'))
                .collect(),
        }
    }

    /// Any JSON value, nested up to `depth` more levels.
    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth == 0 { 6 } else { 8 };
        match self.rng.random_range(0..kinds) {
            0 => Value::Null,
            1 => json!(self.rng.random_bool(0.5)),
            2 => json!([0i64, -1, i64::MAX, i64::MIN, 100, 101][self.rng.random_range(0..6)]),
            3 => json!([1e308, -0.0, 1.5, u64::MAX as f64][self.rng.random_range(0..4)]),
            4 | 5 => json!(self.text()),
            6 => Value::Array(
                (0..self.rng.random_range(0..4))
                    .map(|_| self.value(depth - 1))
                    .collect(),
            ),
            _ => {
                let keys = [
                    "action",
                    "project_id",
                    "task_id",
                    "title",
                    "status",
                    "query",
                    "page",
                    "per_page",
                    "filter_by",
                    "filter_value",
                    "content",
                    "x",
                ];
                let mut object = serde_json::Map::new();
                for _ in 0..self.rng.random_range(0..5) {
                    let key = self.pick(&keys).to_string();
                    object.insert(key, self.value(depth - 1));
                }
                Value::Object(object)
            }
        }
    }

    /// A request id: mostly fresh and unique, sometimes one used before.
    fn id(&mut self) -> Value {
        self.next_id += 1;
        match self.rng.random_range(0..20) {
            0 => json!(7),
            1 => json!("same"),
            2..=9 => json!(self.next_id),
            _ => json!(format!("g{}", self.next_id)),
        }
    }

    fn call(&mut self) -> Value {
        let name = if self.rng.random_bool(0.85) {
            self.pick(TOOLS).to_string()
        } else {
            self.text()
        };
        let mut arguments = serde_json::Map::new();
        if self.rng.random_bool(0.5) {
            let action = self.pick(&["create", "update", "delete", "get", "list"]);
            arguments.insert("action".into(), json!(action));
            arguments.insert("title".into(), json!(self.text()));
        }
        if let Value::Object(more) = self.value(3) {
            arguments.extend(more);
        }
        json!({"jsonrpc":"2.0","id":self.id(),"method":"tools/call","params":{"name":name,"arguments":arguments}})
    }

    /// A message of the right JSON-RPC shape, with hostile content where the shape allows it.
    fn shaped(&mut self) -> Value {
        match self.rng.random_range(0..20) {
            0..=9 => self.call(),
            10..=12 => {
                let method = self.pick(&[
                    "tools/list",
                    "prompts/list",
                    "resources/list",
                    "resources/templates/list",
                    "ping",
                ]);
                json!({"jsonrpc":"2.0","id":self.id(),"method":method})
            }
            13..=14 => {
                let params = json!({ "x": self.value(2) });
                json!({"jsonrpc":"2.0","id":self.id(),"method":self.text(),"params":params})
            }
            15..=16 => {
                let method = self.pick(&[
                    "notifications/initialized",
                    "notifications/roots/list_changed",
                    "notifications/whatever",
                ]);
                json!({"jsonrpc":"2.0","method":method})
            }
            17..=18 => json!({"jsonrpc":"2.0","id":self.id(),"result":{"x":self.value(2)}}),
            _ => json!({"jsonrpc":"2.0","id":self.id(),"error":{"code":-1,"message":self.text()}}),
        }
    }

    /// A message the gate refuses, and with it its whole batch.
    fn malformed(&mut self) -> Value {
        match self.rng.random_range(0..8) {
            0 => {
                let method = self.pick(METHODS);
                json!({"jsonrpc":"2.0","id":self.id(),"method":method,"params":self.value(2)})
            }
            1 => json!({"jsonrpc":"1.0","id":self.id(),"method":"ping"}),
            2 => json!({"id":self.id(),"method":"ping"}),
            3 => json!({"jsonrpc":"2.0","id":self.value(1),"method":"ping"}),
            4 => {
                json!({"jsonrpc":"2.0","id":self.id(),"method":"tools/call","params":{"name":self.value(1),"arguments":self.value(2)}})
            }
            5 => {
                json!({"jsonrpc":"2.0","id":self.id(),"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":self.text(),"version":"1"}}})
            }
            _ => self.value(1),
        }
    }

    /// A batch's body, and whether its bytes were damaged.
    fn batch(&mut self) -> (Vec<u8>, bool) {
        let size = match self.rng.random_range(0..50) {
            0 => 0,
            1 => self.rng.random_range(95..=110),
            _ => self.rng.random_range(1..=8),
        };
        let spoiled = self.rng.random_bool(0.25);
        let items: Vec<Value> = (0..size)
            .map(|_| match spoiled && self.rng.random_bool(0.3) {
                true => self.malformed(),
                false => self.shaped(),
            })
            .collect();
        let mut body = Value::Array(items).to_string().into_bytes();
        if !self.rng.random_bool(0.1) {
            return (body, false);
        }
        for _ in 0..self.rng.random_range(1..4) {
            let at = self.rng.random_range(0..=body.len());
            match self.rng.random_range(0..4) {
                0 => body.truncate(at),
                1 => body.insert(at, b"{}[]\",:\\\0"[self.rng.random_range(0..9)]),
                2 if at < body.len() => body[at] ^= 1 << self.rng.random_range(0..8),
                _ => body
                    .splice(at..at, b"[[[[[[[[".iter().copied())
                    .for_each(drop),
            }
        }
        (body, true)
    }
}

/// Where a generated batch is sent.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// The 2025-03-26 session, which may batch.
    Batching,
    /// A 2025-11-25 session, which may not.
    Modern,
    /// No session.
    None,
}

/// What came back for the batching session: the ids answered in batch replies (with how
/// often each was), and the POSTs answered as a whole (one error, or one message's reply).
#[derive(Default)]
struct Answers {
    ids: HashMap<String, usize>,
    whole: usize,
    posts: usize,
}

/// An id as the ledger keeps it (a string as itself, a number as its digits), compared by
/// its first 200 characters: the ledger cuts longer ones.
fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::String(text) => Some(prefix(text)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn prefix(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Checks one reply and records what it answered.
fn judge(status: StatusCode, body: &str, answers: &mut Answers) -> anyhow::Result<()> {
    ensure!(!status.is_server_error(), "{status}: {body}");
    if status == StatusCode::ACCEPTED {
        return Ok(());
    }
    match steward::mcp::client::find_message(body) {
        Some(Value::Array(replies)) => {
            ensure!(!replies.is_empty(), "an empty batch reply: {body}");
            for reply in &replies {
                ensure!(
                    reply["jsonrpc"] == "2.0"
                        && (reply.get("result").is_some() != reply.get("error").is_some()),
                    "a batch reply that is not one JSON-RPC response: {reply}"
                );
                let not_run = reply["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Invalid Request: not run"));
                if let Some(key) = id_key(&reply["id"]).filter(|_| !not_run) {
                    *answers.ids.entry(key).or_default() += 1;
                }
            }
        }
        Some(reply) if reply.get("error").is_some() || reply.get("result").is_some() => {
            answers.whole += 1;
        }
        other => bail!("{status}: neither a reply nor a batch of replies: {other:?} in {body:?}"),
    }
    Ok(())
}

async fn generated_batches_never_break_the_server_or_the_ledger(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start_with(&db, &["--rate-limit", "0"]).await?;
    let raw = Raw::new(&server.mcp_url());
    let batching = open_session_at(&raw, "2025-03-26").await?;
    let modern = open_session(&raw).await?;
    let mut generator = Generator::new(SEED);
    let mut answers = Answers::default();
    let started = std::time::Instant::now();
    for n in 0..BATCHES {
        let (body, damaged) = generator.batch();
        let target = match generator.rng.random_range(0..20) {
            0 => Target::Modern,
            1 => Target::None,
            _ => Target::Batching,
        };
        let (session, revision) = match target {
            Target::Batching => (Some(batching.as_str()), "2025-03-26"),
            Target::Modern => (Some(modern.as_str()), "2025-11-25"),
            Target::None => (None, "2025-03-26"),
        };
        let mut request = raw
            .http()
            .post(raw.mcp_url())
            .header("accept", common::raw::ACCEPT)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", revision)
            .timeout(Duration::from_secs(60))
            .body(body.clone());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "batch {n} went unanswered: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        let status = response.status();
        let text = response.text().await?;
        let mut scratch = Answers::default();
        let into = if target == Target::Batching {
            answers.posts += 1;
            &mut answers
        } else {
            &mut scratch
        };
        judge(status, &text, into).with_context(|| {
            format!(
                "batch {n} (damaged: {damaged}): {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(2_000)
                    .collect::<String>()
            )
        })?;
    }
    eprintln!(
        "{BATCHES} generated batches in {:?}: {} ids answered in batch replies, {} POSTs answered as a whole",
        started.elapsed(),
        answers.ids.values().sum::<usize>(),
        answers.whole
    );

    // Still up, still serving, nothing panicked, and no client string made a log line long.
    still_serves(&raw, &modern).await?;
    let stderr = server.stderr_output();
    let panics: Vec<&str> = stderr.lines().filter(|l| l.contains("panicked")).collect();
    ensure!(panics.is_empty(), "panics: {panics:?}");
    let longest = stderr.lines().map(str::len).max().unwrap_or(0);
    ensure!(longest < 2_048, "a log line of {longest} bytes");

    // Every answered message has its row (the ledger stores in batches: wait for it).
    let store = common::open_store(&db).await?;
    let filter = RequestFilter {
        session_id: Some(batching.clone()),
        ..Default::default()
    };
    let expected_rows = answers.ids.values().sum::<usize>() + answers.whole;
    let mut missing = Vec::new();
    for _ in 0..300 {
        let (rows, total) = store.list_requests(&filter, 1_000_000, 0).await?;
        let mut stored: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            if let Some(id) = &row.jsonrpc_id {
                *stored.entry(prefix(id)).or_default() += 1;
            }
        }
        missing = answers
            .ids
            .iter()
            .filter(|(id, n)| stored.get(*id).copied().unwrap_or(0) < **n)
            .map(|(id, n)| format!("{id} x{n}"))
            .collect();
        if missing.is_empty() && total as usize >= expected_rows {
            server.stop().await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    missing.truncate(20);
    for id in &mut missing {
        id.truncate(300);
    }
    bail!("answered messages without a ledger row (of {expected_rows} expected rows): {missing:?}")
}

test_on_each_backend!(generated_batches_never_break_the_server_or_the_ledger);
