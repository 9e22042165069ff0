//! Tool schemas every model provider accepts (issue 28): `tools/list` keeps to the portable
//! subset on both protocol revisions, the example calls of docs/tools.md validate against the published
//! schemas, `null` is still accepted for optional arguments, and a declared `outputSchema` is
//! met by the result's `structuredContent`.

use crate::board;
use crate::common;

use std::collections::BTreeMap;

use anyhow::Context;
use board::{create_project, create_task, fails, ok};
use common::raw::{Client as Raw, open_session_at, tools_list};
use common::{TestDb, TestServer, backends, connect};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

/// Fixture tools the official conformance suite checks for what the subset leaves out: SEP-1613
/// asks `json_schema_2020_12_tool` to keep `$schema`, `$defs`, `allOf` and `if`/`then`/`else`.
/// They exist only with `--conformance-fixtures`.
const SUITE_NEEDS_FULL_JSON_SCHEMA: [&str; 1] = ["json_schema_2020_12_tool"];

const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];
const FORMATS: [&str; 2] = ["date-time", "enum"];
const FORBIDDEN: [&str; 12] = [
    "$ref",
    "$defs",
    "definitions",
    "$schema",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "nullable",
];

/// Where `schema` (at `path`) leaves the portable subset; empty when it keeps to it.
fn subset_violations(path: &str, schema: &Value) -> Vec<String> {
    let Value::Object(schema) = schema else {
        return vec![format!("{path}: a boolean schema ({schema})")];
    };
    let mut found: Vec<String> = FORBIDDEN
        .iter()
        .filter(|key| schema.contains_key(**key))
        .map(|key| format!("{path}: `{key}`"))
        .collect();
    let kind = match schema.get("type") {
        Some(Value::String(kind)) if TYPES.contains(&kind.as_str()) => kind.as_str(),
        other => {
            found.push(format!("{path}: type {other:?} is not one of {TYPES:?}"));
            ""
        }
    };
    if let Some(format) = schema.get("format")
        && !FORMATS.iter().any(|f| format == f)
    {
        found.push(format!("{path}: format {format}"));
    }
    if let Some(values) = schema.get("enum") {
        let strings = values
            .as_array()
            .is_some_and(|v| v.iter().all(Value::is_string));
        if kind != "string" || !strings {
            found.push(format!("{path}: enum {values} on type {kind:?}"));
        }
    }
    if let Some(description) = schema.get("description")
        && !description.is_string()
    {
        found.push(format!("{path}: description {description}"));
    }
    match kind {
        "object" => found.extend(object_violations(path, schema)),
        "array" => match schema.get("items") {
            Some(items) => found.extend(subset_violations(&format!("{path}.items"), items)),
            None => found.push(format!("{path}: an array without `items`")),
        },
        _ => {}
    }
    found
}

fn object_violations(path: &str, schema: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return vec![format!("{path}: an object without `properties`")];
    };
    let mut found: Vec<String> = properties
        .iter()
        .flat_map(|(name, property)| subset_violations(&format!("{path}.{name}"), property))
        .collect();
    if let Some(required) = schema.get("required") {
        let known = required.as_array().is_some_and(|names| {
            names
                .iter()
                .all(|n| n.as_str().is_some_and(|n| properties.contains_key(n)))
        });
        if !known {
            found.push(format!(
                "{path}: required {required} names unknown properties"
            ));
        }
    }
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(false)) => {}
        Some(extra @ Value::Object(_)) => found.extend(subset_violations(
            &format!("{path}.additionalProperties"),
            extra,
        )),
        Some(other) => found.push(format!("{path}: additionalProperties {other}")),
    }
    found
}

/// Where `value` (at `path`) does not match `schema`, a schema of the portable subset.
fn mismatches(path: &str, schema: &Value, value: &Value) -> Vec<String> {
    let kind = schema["type"].as_str().unwrap_or_default();
    let fits = match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !fits {
        return vec![format!("{path}: {value} is not of type {kind:?}")];
    }
    let mut found = Vec::new();
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        found.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < min
    {
        found.push(format!("{path}: {n} is below the minimum {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
        && n > max
    {
        found.push(format!("{path}: {n} is above the maximum {max}"));
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                found.extend(mismatches(&format!("{path}[{i}]"), &schema["items"], item));
            }
        }
        Value::Object(fields) => found.extend(object_mismatches(path, schema, fields)),
        _ => {}
    }
    found
}

fn object_mismatches(path: &str, schema: &Value, fields: &Map<String, Value>) -> Vec<String> {
    let mut found = Vec::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str()
            && !fields.contains_key(name)
        {
            found.push(format!("{path}: the required `{name}` is missing"));
        }
    }
    for (name, field) in fields {
        let at = format!("{path}.{name}");
        match schema["properties"].get(name) {
            Some(property) => found.extend(mismatches(&at, property, field)),
            None if schema["additionalProperties"] == false => {
                found.push(format!("{at}: not a property of the schema"))
            }
            None => {}
        }
    }
    found
}

/// tools/list on a 2025-11-25 session.
async fn tools_in_session(raw: &Raw) -> anyhow::Result<Vec<Value>> {
    let session = open_session_at(raw, "2025-11-25").await?;
    let reply = tools_list(raw, &session).await?;
    anyhow::ensure!(reply.status == StatusCode::OK, "tools/list: {reply:?}");
    tools_of(&reply.message)
}

/// tools/list as a stateless 2026-07-28 client: no session, the revision in `_meta`.
async fn tools_stateless(raw: &Raw) -> anyhow::Result<Vec<Value>> {
    let body = json!({
        "jsonrpc": "2.0", "id": "list", "method": "tools/list",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": "schema-test", "version": "1.0" },
            },
        },
    });
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let reply = raw.post_with(body.to_string(), None, &headers).await?;
    anyhow::ensure!(reply.status == StatusCode::OK, "tools/list: {reply:?}");
    tools_of(&reply.message)
}

fn tools_of(message: &Value) -> anyhow::Result<Vec<Value>> {
    message["result"]["tools"]
        .as_array()
        .cloned()
        .with_context(|| format!("no tools in {message}"))
}

/// The published input schema of each tool, by name.
fn input_schemas(tools: &[Value]) -> BTreeMap<String, Value> {
    tools
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["inputSchema"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tools_list_keeps_to_the_portable_subset_on_both_revisions() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        // With the fixtures, so the conformance suite's tools are checked too.
        let server = TestServer::start_with(&db, &["--conformance-fixtures"]).await?;
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        for (revision, tools) in [
            ("2025-11-25", tools_in_session(&raw).await?),
            ("2026-07-28", tools_stateless(&raw).await?),
        ] {
            let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
            for board_tool in board::TOOL_NAMES {
                assert!(
                    names.contains(&board_tool),
                    "{revision}: no {board_tool} in {names:?}"
                );
            }
            let mut found = Vec::new();
            for tool in &tools {
                let name = tool["name"].as_str().unwrap_or_default();
                if SUITE_NEEDS_FULL_JSON_SCHEMA.contains(&name) {
                    continue;
                }
                found.extend(subset_violations(
                    &format!("{name}.inputSchema"),
                    &tool["inputSchema"],
                ));
                if let Some(output) = tool.get("outputSchema") {
                    found.extend(subset_violations(&format!("{name}.outputSchema"), output));
                }
            }
            assert!(found.is_empty(), "{backend:?} {revision}: {found:#?}");
        }
    }
    Ok(())
}

#[test]
fn the_subset_check_catches_what_providers_refuse() {
    let cases = [
        json!({ "type": "object", "properties": { "a": { "type": ["string", "null"] } } }),
        json!({ "type": "object", "properties": { "a": { "$ref": "#/$defs/A" } }, "$defs": {} }),
        json!({ "type": "object", "properties": { "a": { "anyOf": [{ "type": "string" }] } } }),
        json!({ "type": "object", "properties": { "a": true } }),
        json!({ "type": "object", "properties": { "a": { "description": "untyped" } } }),
        json!({ "type": "object", "properties": { "a": { "type": "object" } } }),
        json!({ "type": "object", "properties": { "a": { "type": "integer", "format": "uint32" } } }),
        json!({ "type": "object", "properties": { "a": { "type": "array" } } }),
    ];
    for schema in cases {
        assert!(
            !subset_violations("t", &schema).is_empty(),
            "{schema} passed"
        );
    }
}

/// `{"name", "arguments"}` of every line of docs/tools.md's ```jsonl blocks.
fn readme_examples() -> anyhow::Result<Vec<(String, Value)>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tools.md"))?;
    let mut examples = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        match line.trim() {
            "```jsonl" => in_block = true,
            "```" => in_block = false,
            "" => {}
            call if in_block => {
                let call: Value = serde_json::from_str(call)
                    .with_context(|| format!("docs/tools.md example is not JSON: {call}"))?;
                let name = call["name"].as_str().context("an example without a name")?;
                examples.push((name.to_string(), call["arguments"].clone()));
            }
            _ => {}
        }
    }
    Ok(examples)
}

#[tokio::test]
async fn readme_examples_validate_against_the_published_schemas() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let schemas =
        input_schemas(&tools_in_session(&Raw::new(&format!("{}/mcp", server.base_url))).await?);
    let examples = readme_examples()?;
    assert!(
        examples.len() >= 10,
        "only {} docs/tools.md examples",
        examples.len()
    );
    for (name, arguments) in &examples {
        let schema = schemas
            .get(name)
            .with_context(|| format!("docs/tools.md calls {name}, which tools/list lacks"))?;
        let found = mismatches(name, schema, arguments);
        assert!(
            found.is_empty(),
            "docs/tools.md example {arguments}: {found:#?}"
        );
    }
    // The validator is not vacuous: a wrong enum, an unknown field, a missing action.
    let task = &schemas["manage_task"];
    for wrong in [
        json!({ "action": "archive" }),
        json!({ "action": "create", "owner": "me" }),
        json!({ "title": "x" }),
        json!({ "action": "create", "task_order": "high" }),
    ] {
        assert!(
            !mismatches("manage_task", task, &wrong).is_empty(),
            "{wrong} passed"
        );
    }
    Ok(())
}

#[tokio::test]
async fn null_is_still_accepted_for_optional_arguments() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let client = connect(&server.mcp_url(), "null-sender").await?;
        let project = create_project(&client, "Nulls").await?;
        let task = create_task(&client, &project, "Fixture", json!({})).await?;
        let calls = [
            (
                "manage_project",
                json!({ "action": "create", "title": "P", "project_id": null, "description": null, "github_repo": null }),
            ),
            (
                "find_projects",
                json!({ "project_id": null, "query": null }),
            ),
            (
                "manage_task",
                json!({ "action": "create", "project_id": project, "title": "T", "task_id": null, "description": null, "status": null, "assignee": null, "task_order": null, "feature": null }),
            ),
            (
                "find_tasks",
                json!({ "query": null, "task_id": null, "filter_by": null, "filter_value": null, "project_id": null }),
            ),
            (
                "get_task_history",
                json!({ "task_id": task, "limit": null }),
            ),
            ("get_completion_stats", json!({ "project_id": null })),
            (
                "manage_document",
                json!({ "action": "create", "project_id": project, "title": "D", "document_type": "note", "document_id": null, "content": null, "tags": null, "author": null }),
            ),
            (
                "find_documents",
                json!({ "project_id": project, "document_id": null, "document_type": null, "query": null }),
            ),
            (
                "manage_version",
                json!({ "action": "create", "project_id": project, "field_name": "data", "version_number": null, "content": null, "change_summary": null, "document_id": null, "created_by": null }),
            ),
            (
                "find_versions",
                json!({ "project_id": project, "field_name": null, "version_number": null }),
            ),
        ];
        for (tool, args) in calls {
            ok(&client, tool, args)
                .await
                .with_context(|| format!("{backend:?}"))?;
        }
        // A null beside a wrong value: the error still names the wrong field.
        let args = json!({ "action": "create", "project_id": project, "title": "T", "status": null, "task_order": "high" });
        let error = fails(&client, "manage_task", args, "validation_error").await?;
        assert_eq!(error["field"], "task_order", "{backend:?}: {error}");
        client.cancel().await?;
    }
    Ok(())
}

/// Each tool that declares an `outputSchema` is called with its example in docs/tools.md, and its
/// `structuredContent` must match (some clients refuse results without it). None declares one
/// today; a tool that starts to must bring an example.
#[tokio::test]
async fn declared_output_schemas_are_met_by_structured_content() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let tools = tools_in_session(&Raw::new(&format!("{}/mcp", server.base_url))).await?;
    let examples: BTreeMap<String, Value> = readme_examples()?.into_iter().collect();
    let client = connect(&server.mcp_url(), "output-schema-test").await?;
    for tool in tools.iter().filter(|t| t.get("outputSchema").is_some()) {
        let name = tool["name"].as_str().unwrap_or_default();
        let arguments = examples.get(name).with_context(|| {
            format!(
                "{name} declares an outputSchema: add an example call to docs/tools.md to test it"
            )
        })?;
        let mut params = rmcp::model::CallToolRequestParams::new(name.to_string());
        if let Value::Object(arguments) = arguments.clone() {
            params = params.with_arguments(arguments);
        }
        let result = client.call_tool(params).await?;
        assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
        let content = result.structured_content.with_context(|| {
            format!("{name} declares an outputSchema but its result has no structuredContent")
        })?;
        let found = mismatches(name, &tool["outputSchema"], &content);
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
    client.cancel().await?;
    Ok(())
}
