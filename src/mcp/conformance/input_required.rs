//! 2026-07-28 multi round-trip requests (SEP-2322): fixture tools and a prompt that answer
//! `InputRequiredResult` until the client has supplied what they asked for. The round a
//! request is in travels in `requestState`, sealed with an HMAC so a client cannot forge it.

use rmcp::model::{
    CallToolResult, ClientCapabilities, ContentBlock, ErrorData, GetPromptResult, InputRequests,
    InputRequiredResult, InputResponses, JsonObject, PromptMessage, RequestStateCodec, Role,
    SealOptions,
};
use serde_json::{Value, json};

/// What a multi-round fixture asks in each round.
struct Flow {
    rounds: Vec<Value>,
}

/// Where a request stands after reading its `requestState` and `inputResponses`.
pub enum Step {
    /// Ask this (again).
    Ask(InputRequiredResult),
    /// Every round answered: these are all the answers, by key.
    Done(JsonObject),
}

fn elicit(message: &str, field: &str, kind: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { field: { "type": kind } },
                "required": [field]
            }
        }
    })
}

fn sample(text: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
            "maxTokens": max_tokens
        }
    })
}

fn roots() -> Value {
    json!({ "method": "roots/list", "params": {} })
}

/// The rounds of a fixture, given what the client declared it can do; `None` if `name` is
/// not a multi-round fixture.
fn flow(name: &str, capabilities: Option<&ClientCapabilities>) -> Option<Flow> {
    let name_question = || elicit("What is your name?", "name", "string");
    let confirm = || elicit("Please confirm", "ok", "boolean");
    let rounds = match name {
        "test_input_required_result_elicitation" => vec![json!({ "user_name": name_question() })],
        "test_input_required_result_sampling" => {
            vec![json!({ "capital_question": sample("What is the capital of France?", 100) })]
        }
        "test_input_required_result_list_roots" => vec![json!({ "client_roots": roots() })],
        "test_input_required_result_request_state"
        | "test_input_required_result_tampered_state" => {
            vec![json!({ "confirm": confirm() })]
        }
        "test_input_required_result_multiple_inputs" => vec![json!({
            "user_name": name_question(),
            "greeting": sample("Generate a greeting", 50),
            "client_roots": roots(),
        })],
        "test_input_required_result_multi_round" => vec![
            json!({ "step1": elicit("Step 1: What is your name?", "name", "string") }),
            json!({ "step2": elicit("Step 2: What is your favorite color?", "color", "string") }),
        ],
        "test_streaming_elicitation" => vec![json!({ "input": name_question() })],
        "test_input_required_result_prompt" => vec![json!({
            "user_context": elicit("What context should the prompt use?", "context", "string")
        })],
        "test_input_required_result_capabilities" => {
            let caps = serde_json::to_value(capabilities).unwrap_or(Value::Null);
            let mut asks = serde_json::Map::new();
            if caps.get("sampling").is_some() {
                asks.insert("sampling".into(), sample("Say something", 20));
            }
            if caps.get("elicitation").is_some() {
                asks.insert("elicitation".into(), name_question());
            }
            if caps.get("roots").is_some() {
                asks.insert("roots".into(), roots());
            }
            if asks.is_empty() {
                vec![]
            } else {
                vec![Value::Object(asks)]
            }
        }
        _ => return None,
    };
    Some(Flow { rounds })
}

pub fn is_multi_round(name: &str) -> bool {
    flow(name, None).is_some()
}

/// Holds the per-process key that seals `requestState`.
pub struct Rounds {
    codec: RequestStateCodec,
}

impl Default for Rounds {
    fn default() -> Self {
        Rounds {
            // A fresh 32-byte key per process: MIN_KEY_LENGTH exactly, so no check is needed.
            codec: RequestStateCodec::new_unchecked(
                rand::random::<[u8; RequestStateCodec::MIN_KEY_LENGTH]>().to_vec(),
            ),
        }
    }
}

impl Rounds {
    /// Works out whether `name` still needs input, checking the echoed state and answers.
    pub fn step(
        &self,
        name: &str,
        capabilities: Option<&ClientCapabilities>,
        state: Option<&str>,
        responses: Option<&InputResponses>,
    ) -> Result<Step, ErrorData> {
        let Some(flow) = flow(name, capabilities) else {
            return Err(ErrorData::invalid_params(
                format!("{name} is not a multi-round fixture"),
                None,
            ));
        };
        let mut round = match state {
            Some(sealed) => self.open(name, sealed)?,
            None => 0,
        };
        let mut answers = JsonObject::new();
        if let (Some(asked), Some(responses)) = (flow.rounds.get(round), responses) {
            let keys: Vec<&String> = asked
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            for key in &keys {
                match responses.get(*key) {
                    Some(Value::Object(answer)) => {
                        answers.insert((*key).clone(), Value::Object(answer.clone()));
                    }
                    Some(other) => {
                        return Err(ErrorData::invalid_params(
                            format!(
                                "inputResponses.{key} must be the client's result object, got {other}"
                            ),
                            None,
                        ));
                    }
                    None => {}
                }
            }
            // Extra keys are ignored; a missing one means asking again.
            if answers.len() == keys.len() {
                round += 1;
            }
        }
        match flow.rounds.get(round) {
            None => Ok(Step::Done(answers)),
            Some(asked) => {
                let requests: InputRequests =
                    serde_json::from_value(asked.clone()).map_err(|e| {
                        ErrorData::internal_error(
                            format!("fixture input request is malformed: {e}"),
                            None,
                        )
                    })?;
                let sealed = self.codec.seal_with(
                    &[u8::try_from(round).unwrap_or(u8::MAX)],
                    &SealOptions::new().associated_data(name.as_bytes()),
                );
                Ok(Step::Ask(InputRequiredResult::new(
                    Some(requests),
                    Some(sealed),
                )))
            }
        }
    }

    fn open(&self, name: &str, sealed: &str) -> Result<usize, ErrorData> {
        let payload = self.codec.open_with(sealed, name.as_bytes()).map_err(|e| {
            ErrorData::invalid_params(
                format!("requestState failed its integrity check ({e}); send it back exactly as received"),
                None,
            )
        })?;
        Ok(payload.first().copied().map_or(0, usize::from))
    }
}

/// The final answer of a tool once every round is answered.
pub fn tool_result(name: &str, answers: &JsonObject) -> CallToolResult {
    let content = |key: &str, field: &str| {
        answers
            .get(key)
            .and_then(|a| a.get("content"))
            .and_then(|c| c.get(field))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let text = match name {
        "test_input_required_result_elicitation" => {
            format!(
                "Hello, {}!",
                content("user_name", "name").as_str().unwrap_or("stranger")
            )
        }
        "test_input_required_result_request_state" => "state-ok: confirmation received".to_string(),
        "test_input_required_result_list_roots" => format!(
            "Client roots: {}",
            answers
                .get("client_roots")
                .and_then(|r| r.get("roots"))
                .cloned()
                .unwrap_or(Value::Null)
        ),
        _ => format!("Completed with input: {}", Value::Object(answers.clone())),
    };
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// The final answer of the multi-round prompt.
pub fn prompt_result(answers: &JsonObject) -> GetPromptResult {
    let context = answers
        .get("user_context")
        .and_then(|a| a.get("content"))
        .and_then(|c| c.get("context"))
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        format!("Answer with this context in mind: {context}"),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(step: Step) -> InputRequiredResult {
        match step {
            Step::Ask(result) => result,
            Step::Done(_) => panic!("expected another round"),
        }
    }

    #[test]
    fn two_rounds_then_done_and_tampering_is_refused() {
        let rounds = Rounds::default();
        let name = "test_input_required_result_multi_round";
        let first = ask(rounds.step(name, None, None, None).expect("round 1"));
        let state = first.request_state.clone().expect("state");
        let answer = |key: &str| {
            let mut r = InputResponses::new();
            r.insert(
                key.to_string(),
                json!({ "action": "accept", "content": { "name": "A" } }),
            );
            r
        };
        let second = ask(rounds
            .step(name, None, Some(&state), Some(&answer("step1")))
            .expect("round 2"));
        let state2 = second.request_state.clone().expect("state");
        assert_ne!(state, state2);
        assert!(matches!(
            rounds.step(name, None, Some(&state2), Some(&answer("step2"))),
            Ok(Step::Done(_))
        ));
        let tampered = format!("{state}-TAMPERED");
        assert!(
            rounds
                .step(name, None, Some(&tampered), Some(&answer("step1")))
                .is_err()
        );
    }

    #[test]
    fn every_fixture_round_is_a_valid_input_request() {
        for name in [
            "test_input_required_result_elicitation",
            "test_input_required_result_sampling",
            "test_input_required_result_list_roots",
            "test_input_required_result_multiple_inputs",
            "test_input_required_result_prompt",
        ] {
            assert!(
                matches!(
                    Rounds::default().step(name, None, None, None),
                    Ok(Step::Ask(_))
                ),
                "{name}"
            );
        }
    }
}
