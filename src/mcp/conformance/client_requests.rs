//! Session-era fixture tools that ask the client something mid-call: sampling and
//! elicitation requests sent over the session (2026-07-28 uses InputRequiredResult instead,
//! see [`super::input_required`]).
// Sampling is deprecated in rmcp (SEP-2577) but part of every session-era revision.
#![allow(deprecated)]

use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, JsonObject,
};
use rmcp::service::RequestContext;
use serde_json::{Value, json};

/// The answer of a tool that asks the client first, or `None` if `name` is not one.
pub async fn call(
    name: &str,
    arguments: &JsonObject,
    request: &RequestContext<RoleServer>,
) -> Option<CallToolResult> {
    let argument = |key: &str, default: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let outcome = match name {
        "test_sampling" => sample(request, &argument("prompt", "Hello")).await,
        "test_elicitation" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "username": { "type": "string", "description": "User's response" },
                    "email": { "type": "string", "description": "User's email address" }
                },
                "required": ["username", "email"]
            });
            elicit(
                request,
                &argument("message", "Please provide your information"),
                schema,
            )
            .await
        }
        "test_elicitation_sep1034_defaults" => {
            elicit(
                request,
                "Please review and update the form fields with defaults",
                defaults_schema(),
            )
            .await
        }
        "test_elicitation_sep1330_enums" => {
            elicit(
                request,
                "Please select options from the enum fields",
                enums_schema(),
            )
            .await
        }
        _ => return None,
    };
    Some(match outcome {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(error) => CallToolResult::error(vec![ContentBlock::text(error)]),
    })
}

async fn sample(request: &RequestContext<RoleServer>, prompt: &str) -> Result<String, String> {
    let params: CreateMessageRequestParams = built(
        "sampling",
        json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": 100
        }),
    )?;
    let reply = request.peer.create_message(params).await;
    let reply = reply.map_err(|e| format!("Sampling error: {e}"))?;
    let answer = serde_json::to_value(&reply.message.content)
        .ok()
        .and_then(|c| first_text(&c))
        .unwrap_or_else(|| "No text response".to_string());
    Ok(format!("LLM response: {answer}"))
}

/// The parameters of a `what` request to the client, from their JSON form.
fn built<P: serde::de::DeserializeOwned>(what: &str, params: Value) -> Result<P, String> {
    serde_json::from_value(params).map_err(|e| format!("cannot build the {what} request: {e}"))
}

/// The text of a sampling reply's content (one block or a list of blocks).
fn first_text(content: &Value) -> Option<String> {
    let block = content
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or(content);
    block
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn elicit(
    request: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
) -> Result<String, String> {
    let params: ElicitRequestParams = built(
        "elicitation",
        json!({ "mode": "form", "message": message, "requestedSchema": schema }),
    )?;
    let reply = request.peer.create_elicitation(params).await;
    let reply = reply.map_err(|e| format!("Elicitation error: {e}"))?;
    let reply = serde_json::to_value(&reply).unwrap_or(Value::Null);
    Ok(format!(
        "User response: action={}, content={}",
        reply["action"].as_str().unwrap_or("unknown"),
        reply.get("content").cloned().unwrap_or_else(|| json!({}))
    ))
}

fn defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string", "description": "User status",
                "enum": ["active", "inactive", "pending"], "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        },
        "required": []
    })
}

fn enums_schema() -> Value {
    let titled = |prefix: &str, word: &str| {
        json!([
            { "const": format!("{prefix}1"), "title": format!("First {word}") },
            { "const": format!("{prefix}2"), "title": format!("Second {word}") },
            { "const": format!("{prefix}3"), "title": format!("Third {word}") }
        ])
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string", "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string", "description": "Select one option with titles",
                "oneOf": titled("value", "Option")
            },
            "legacyEnum": {
                "type": "string", "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                "items": { "anyOf": titled("value", "Choice") }
            }
        },
        "required": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_schemas_are_valid_elicitation_requests() {
        for schema in [defaults_schema(), enums_schema()] {
            let params: Result<ElicitRequestParams, _> = serde_json::from_value(json!({
                "mode": "form", "message": "m", "requestedSchema": schema.clone(),
            }));
            let params = params.expect("schema parses");
            // Nothing the suite checks may be lost on the way out.
            let out = serde_json::to_value(&params).expect("serialises");
            assert_eq!(out["requestedSchema"]["properties"], schema["properties"]);
        }
    }
}
