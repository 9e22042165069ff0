//! A mutation fuzzer for what a hostile client controls: the POSTed body (Steward's JSON-RPC
//! gate, `steward::security::gate::inspect`), the ledger's analysis of that body and a reply
//! (`steward::ledger::analyze`), tool arguments (`steward::mcp::tools::parse_arguments`), and
//! JSON-RPC batches: their refusal or acceptance per revision and their split into one message
//! each ([`batches`]).
//!
//! Stable Rust only (cargo-fuzz needs nightly): seeds are valid MCP messages; each round mutates
//! one (byte flips, JSON-token insertions, splices, structured value swaps) and checks that
//! nothing panics and the gate's verdict is consistent with serde_json. A panicking input is
//! written to `fuzz/crashes/` and the run exits 1.
//!
//! `cargo run --release -- [--minutes N] [--seed S]` (in `fuzz/`); `-- --replay crashes/NAME`
//! runs one saved crash again with its panic message.

mod batches;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use steward::ledger::analyze::analyze;
use steward::ledger::{Ending, Micros, Observation};
use steward::security::gate;

const MAX_DEPTH: usize = 64;

/// Tokens that tend to break JSON parsers and hand-written scanners.
const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\\\"",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e999",
    "-1e-999",
    "18446744073709551616",
    "-9223372036854775809",
    "1.5",
    "\u{0}",
    "\u{feff}",
    "\"jsonrpc\":\"2.0\"",
    "\"id\":",
    "\"method\":",
    "\"params\":",
    "\"tools/call\"",
    "\"initialize\"",
    "\"arguments\":",
    "\"_meta\":",
    "data: ",
    "\n\n",
];

fn seeds() -> Vec<Vec<u8>> {
    let call = |name: &str, arguments: Value| json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":arguments}});
    let pid = "2f1e7c1a-58c4-4d37-9a40-4c7d0d8d3a11";
    let messages = vec![
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"claude-code","version":"2.0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"cursor":"x"}}),
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}),
        json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{}}]),
        call("find_projects", json!({"query":"x","page":1,"per_page":10})),
        call(
            "manage_project",
            json!({"action":"create","title":"t","description":"d","github_repo":"https://github.com/a/b"}),
        ),
        call("get_project_features", json!({"project_id":pid})),
        call(
            "find_tasks",
            json!({"filter_by":"status","filter_value":"todo","include_closed":true}),
        ),
        call(
            "manage_task",
            json!({"action":"update","task_id":pid,"project_id":pid,"title":"t","status":"doing","task_order":50,"feature":"f"}),
        ),
        call("get_task_history", json!({"task_id":pid})),
        call("get_completion_stats", json!({"project_id":pid})),
        call(
            "find_documents",
            json!({"project_id":pid,"document_type":"spec"}),
        ),
        call(
            "manage_document",
            json!({"action":"create","project_id":pid,"title":"d","document_type":"note","content":{"a":[1,2]},"tags":["x"]}),
        ),
        call(
            "find_versions",
            json!({"project_id":pid,"field_name":"docs"}),
        ),
        call(
            "manage_version",
            json!({"action":"restore","project_id":pid,"field_name":"features","version_number":2}),
        ),
        json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"find_tasks","arguments":{"query":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}),
    ];
    let mut seeds: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| m.to_string().into_bytes())
        .collect();
    seeds.extend(batches::seeds(&messages));
    seeds
}

fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = data.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                data.insert(i, rng.random());
            }
            2 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 16));
                data.drain(start..end);
            }
            3 => {
                let token = DICTIONARY[rng.random_range(0..DICTIONARY.len())].as_bytes();
                let i = rng.random_range(0..=len);
                data.splice(i..i, token.iter().copied());
            }
            4 if len > 0 => {
                // Repeat a slice: deep nesting, long strings.
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 8));
                let piece = data[start..end].to_vec();
                for _ in 0..rng.random_range(1..200) {
                    data.splice(start..start, piece.iter().copied());
                }
            }
            5 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let cut = rng.random_range(0..=data.len());
                let from = rng.random_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 => data = structured(rng, &data).unwrap_or(data),
            7 => data = batches::wrap(rng, &data, corpus),
            _ => {
                let i = rng.random_range(0..=len);
                data.insert(i, b"\0\xff\xc3\x28\"\\{["[rng.random_range(0..8)]);
            }
        }
    }
    data
}

/// Replaces one value inside a valid message with a value of another type.
fn structured(rng: &mut StdRng, data: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(data).ok()?;
    let replacement = match rng.random_range(0..7) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!(rng.random::<f64>() * 1e300),
        3 => json!("x".repeat(rng.random_range(0..5000))),
        4 => json!([]),
        5 => json!({"nested": {"deeper": [1, "two", null]}}),
        _ => json!(true),
    };
    // Choose a path with shared borrows, then replace the value it points at.
    let mut pointer = String::new();
    let mut at = &value;
    for _ in 0..rng.random_range(1..5) {
        let (step, next) = match at {
            Value::Object(map) if !map.is_empty() => {
                let (key, next) = map.iter().nth(rng.random_range(0..map.len()))?;
                (key.replace('~', "~0").replace('/', "~1"), next)
            }
            Value::Array(items) if !items.is_empty() => {
                let i = rng.random_range(0..items.len());
                (i.to_string(), &items[i])
            }
            _ => break,
        };
        pointer.push('/');
        pointer.push_str(&step);
        at = next;
    }
    *value.pointer_mut(&pointer)? = replacement;
    Some(value.to_string().into_bytes())
}

/// One input through every path; whether it was a batch the gate accepted. Panics (caught by
/// the caller) are the bugs.
fn run_one(input: &[u8], reply: &[u8]) -> bool {
    let verdict = gate::inspect(bytes::Bytes::copy_from_slice(input), MAX_DEPTH, None, false);
    if let Ok(envelope) = &verdict {
        // The gate accepted it: it must be JSON that serde agrees with, and within the depth.
        assert!(
            serde_json::from_slice::<Value>(input).is_ok(),
            "gate accepted invalid JSON"
        );
        assert!(
            steward::protocol::scan(input, MAX_DEPTH).too_deep.is_none(),
            "gate accepted a too-deep body"
        );
        if let Some(message) = envelope.single()
            && message.method.as_deref() == Some("tools/call")
        {
            let message: Value = serde_json::from_slice(input).unwrap_or_default();
            let params = &message["params"];
            if let Some(name) = params["name"].as_str() {
                let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
                if let Some(Err(message)) = steward::mcp::tools::parse_arguments(name, arguments) {
                    assert!(!message.is_empty(), "an argument error without a message");
                }
            }
        }
    }
    let batch = batches::run(input, MAX_DEPTH);
    if let Err(rejection) = &verdict {
        assert!(!rejection.message.is_empty());
        let _status = rejection.http_status();
        assert!(rejection.to_json()["error"]["code"].is_i64());
    }
    let row = analyze(Observation {
        request_id: uuid::Uuid::new_v4(),
        session_id: None,
        timestamp: chrono::Utc::now(),
        duration: Micros::from_micros(1),
        request: bytes::Bytes::copy_from_slice(input),
        http_status: Some(200),
        response: bytes::Bytes::copy_from_slice(reply),
        response_len: reply.len() as u64,
        ending: Ending::Complete,
        protocol_version: None,
        stream_get: None,
        subject: None,
        upstream: None,
    });
    // (A method may be empty: `{"method":""}` is valid JSON-RPC shape; rmcp answers -32601.)
    assert_eq!(
        row.request_bytes,
        input.len() as i64,
        "request bytes miscounted"
    );
    batch
}

/// Runs one saved crash (`crashes/NAME`, with `NAME.reply` beside it) with the panic message
/// shown.
fn replay(path: &str) {
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let reply = std::fs::read(format!("{path}.reply")).unwrap_or_default();
    let batch = run_one(&input, &reply);
    println!("{path}: no panic (a batch the gate accepted: {batch})");
}

fn main() {
    let mut minutes = 1.0f64;
    let mut seed: u64 = rand::random();
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--minutes" => minutes = pair[1].parse().unwrap_or(minutes),
            "--seed" => seed = pair[1].parse().unwrap_or(seed),
            "--replay" => return replay(&pair[1]),
            _ => {}
        }
    }
    println!("steward-fuzz: seed {seed}, {minutes} minutes");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut corpus = seeds();
    let replies: Vec<Vec<u8>> = corpus
        .iter()
        .map(|c| {
            let mut r = b"data: ".to_vec();
            r.extend_from_slice(c);
            r.extend_from_slice(b"\n\n");
            r
        })
        .collect();
    // Panics are reported by us, with the input; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let (mut execs, mut accepted, mut batches) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let input = mutate(&mut rng, &corpus);
            let reply = if rng.random_bool(0.5) {
                mutate(&mut rng, &replies)
            } else {
                replies[rng.random_range(0..replies.len())].clone()
            };
            let Ok(batch) = catch_unwind(AssertUnwindSafe(|| run_one(&input, &reply))) else {
                let dir = std::path::Path::new("crashes");
                let name = format!("crash-{seed}-{execs}");
                let saved = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(dir.join(&name), &input))
                    .and_then(|()| std::fs::write(dir.join(format!("{name}.reply")), &reply));
                eprintln!(
                    "PANIC on input {:?} (saved: {saved:?})",
                    String::from_utf8_lossy(&input)
                );
                std::process::exit(1);
            };
            execs += 1;
            batches += u64::from(batch);
            // Inputs the gate accepts become seeds: they reach deeper paths.
            if gate::inspect(
                bytes::Bytes::copy_from_slice(&input),
                MAX_DEPTH,
                None,
                false,
            )
            .is_ok()
                && input.len() < 64 * 1024
            {
                accepted += 1;
                if corpus.len() < 5000 {
                    corpus.push(input);
                } else {
                    let i = rng.random_range(0..corpus.len());
                    corpus[i] = input;
                }
            }
        }
        if execs % 500_000 == 0 {
            println!(
                "{execs} execs, {accepted} accepted, {batches} batches split, corpus {}, {:.0}s",
                corpus.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "done: {execs} execs in {:.0}s, {accepted} accepted by the gate ({batches} batches refused or run and split), no panics",
        started.elapsed().as_secs_f64()
    );
}
