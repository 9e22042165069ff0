//! The fixture catalogue the conformance suite expects: tool definitions, prompts, resources
//! and templates, exactly as its scenarios name them.

use rmcp::model::{Prompt, PromptArgument, Resource, ResourceTemplate, Tool};
use serde_json::{Value, json};

/// A 1x1 PNG.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A silent WAV.
pub const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn empty() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn one_string(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name],
    })
}

/// `(name, description, inputSchema)` of every fixture tool.
fn definitions() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("test_simple_text", "Returns simple text content", empty()),
        ("test_image_content", "Returns a PNG image", empty()),
        ("test_audio_content", "Returns a WAV clip", empty()),
        (
            "test_embedded_resource",
            "Returns an embedded text resource",
            empty(),
        ),
        (
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            empty(),
        ),
        (
            "test_tool_with_logging",
            "Sends three log messages while it runs",
            empty(),
        ),
        (
            "test_tool_with_progress",
            "Reports progress 0, 50, 100 of 100",
            empty(),
        ),
        ("test_error_handling", "Always fails with isError", empty()),
        (
            "test_reconnection",
            "Answers after a short pause (SSE reconnection)",
            empty(),
        ),
        (
            "test_sampling",
            "Asks the client's model a question",
            one_string("prompt", "The prompt to send"),
        ),
        (
            "test_elicitation",
            "Asks the user for input",
            one_string("message", "The message to show"),
        ),
        (
            "test_elicitation_sep1034_defaults",
            "Elicitation with defaults (SEP-1034)",
            empty(),
        ),
        (
            "test_elicitation_sep1330_enums",
            "Elicitation with enum variants (SEP-1330)",
            empty(),
        ),
        (
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features (SEP-1613)",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "addressDef",
                        "type": "object",
                        "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
                    }
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" },
                    "contactMethod": { "type": "string", "enum": ["phone", "email"] },
                    "phone": { "type": "string" },
                    "email": { "type": "string" }
                },
                "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
                "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
                "then": { "required": ["phone"] },
                "else": { "required": ["email"] },
                "additionalProperties": false
            }),
        ),
        (
            "test_custom_headers",
            "Mirrors `region` into the Mcp-Param-Region header (SEP-2243)",
            json!({
                "type": "object",
                "properties": {
                    "region": { "type": "string", "description": "A region name", "x-mcp-header": "Region" }
                },
                "required": ["region"]
            }),
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability",
            empty(),
        ),
        (
            "test_streaming_elicitation",
            "Asks for input with an InputRequiredResult",
            empty(),
        ),
        (
            "test_logging_tool",
            "Logs only when the request sets a log level",
            empty(),
        ),
        (
            "test_input_required_result_elicitation",
            "MRTR: one elicitation",
            empty(),
        ),
        (
            "test_input_required_result_sampling",
            "MRTR: one sampling request",
            empty(),
        ),
        (
            "test_input_required_result_list_roots",
            "MRTR: one roots/list request",
            empty(),
        ),
        (
            "test_input_required_result_request_state",
            "MRTR: requestState round trip",
            empty(),
        ),
        (
            "test_input_required_result_multiple_inputs",
            "MRTR: three input requests at once",
            empty(),
        ),
        (
            "test_input_required_result_multi_round",
            "MRTR: two rounds of input",
            empty(),
        ),
        (
            "test_input_required_result_tampered_state",
            "MRTR: signed requestState",
            empty(),
        ),
        (
            "test_input_required_result_capabilities",
            "MRTR: only what the client declared",
            empty(),
        ),
    ]
}

pub fn tools() -> Vec<Tool> {
    definitions()
        .into_iter()
        .filter_map(|(name, description, schema)| match schema {
            Value::Object(schema) => Some(Tool::new(name, description, schema)),
            _ => None,
        })
        .collect()
}

pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![
                arg("arg1", "First test argument"),
                arg("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that includes an embedded resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt that includes an image"),
            None,
        ),
        Prompt::new(
            "test_input_required_result_prompt",
            Some("MRTR: asks for context before answering"),
            None,
        ),
    ]
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text")
            .with_description("A static text resource")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary")
            .with_description("A static binary resource (PNG)")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "watched-resource")
            .with_description("A resource clients can subscribe to")
            .with_mime_type("text/plain"),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_becomes_a_tool() {
        assert_eq!(tools().len(), definitions().len());
    }
}
