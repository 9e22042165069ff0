//! JSON-RPC batches through the request pipeline without a server: the gate's parse into an
//! envelope, the batch's refusal or acceptance for each revision (`mcp::batch::refusal`), and
//! the split into one envelope per message (`Envelope::item`), each of which must read back
//! as the message it came from and pass the gate on its own.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use steward::mcp::batch::{self, MAX_ITEMS};
use steward::protocol::BATCH_REVISION;
use steward::security::gate;

/// Batches to start from: mixed requests, notifications and client responses, duplicate ids,
/// `initialize` inside, one message over the cap.
pub fn seeds(messages: &[Value]) -> Vec<Vec<u8>> {
    let requests: Vec<&Value> = messages
        .iter()
        .filter(|m| m.is_object() && m["method"] != "initialize")
        .collect();
    let mut batches: Vec<Value> = requests
        .windows(4)
        .map(|w| Value::Array(w.iter().map(|m| (*m).clone()).collect()))
        .collect();
    let ping = |id: usize| json!({"jsonrpc":"2.0","id":id,"method":"ping"});
    batches.push(Value::Array((0..=MAX_ITEMS).map(ping).collect()));
    batches.push(json!([ping(1), ping(1), {"jsonrpc":"2.0","id":1,"result":{}}]));
    batches.push(json!([ping(1), messages[0].clone()]));
    batches.push(json!([{"jsonrpc":"2.0","method":"notifications/initialized"}]));
    batches.iter().map(|b| b.to_string().into_bytes()).collect()
}

/// `data` and up to a few other corpus entries as one batch (the corpus fills with single
/// messages the gate accepts; this keeps batches coming).
pub fn wrap(rng: &mut StdRng, data: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = b"[".to_vec();
    batch.extend_from_slice(data);
    for _ in 0..rng.random_range(0..4) {
        batch.push(b',');
        batch.extend_from_slice(&corpus[rng.random_range(0..corpus.len())]);
    }
    batch.push(b']');
    batch
}

/// Drives `input` if the gate accepts it as a batch (and says whether it did). Panics (caught
/// by the caller) are the bugs.
pub fn run(input: &[u8], max_depth: usize) -> bool {
    let Ok(envelope) = gate::inspect(
        bytes::Bytes::copy_from_slice(input),
        max_depth,
        Some(BATCH_REVISION.to_string()),
        false,
    ) else {
        return false;
    };
    if !envelope.is_batch() {
        return false;
    }
    let messages = envelope.messages();
    assert!(!messages.is_empty(), "the gate accepted an empty batch");
    let refused = batch::refusal(&envelope, Some(BATCH_REVISION));
    let runnable = messages.len() <= MAX_ITEMS
        && !messages
            .iter()
            .any(|m| m.method.as_deref() == Some("initialize"));
    assert_eq!(refused.is_none(), runnable, "batch refusal: {refused:?}");
    assert!(
        batch::refusal(&envelope, None).is_some(),
        "a batch without a session ran"
    );
    assert!(
        batch::refusal(&envelope, Some("2025-11-25")).is_some(),
        "a batch ran in a revision without batches"
    );
    for message in messages {
        let item = envelope.item(message);
        let alone = gate::inspect(item.body().clone(), max_depth, None, false)
            .unwrap_or_else(|r| panic!("a batch item the gate refuses alone: {}", r.message));
        let read_back = alone.single().expect("an item is one message");
        assert_eq!(read_back.method, message.method, "an item's method");
        assert_eq!(read_back.id, message.id, "an item's id");
        assert_eq!(
            alone.params(read_back),
            envelope.params(message),
            "an item's params"
        );
    }
    true
}
