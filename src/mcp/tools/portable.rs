//! Tool schemas every model provider accepts.
//!
//! An MCP client hands each tool's `inputSchema` to its model provider, and the strictest of
//! them refuse a whole request over one construct JSON Schema allows: Gemini over a type
//! array (`["string","null"]`) or a `$ref`, Anthropic over a combinator at the top level. One
//! bad tool breaks every prompt, so the schemas schemars generates are rewritten, once, into a
//! portable subset when the tools are registered ([`portable_router`]):
//!
//! - `type` is a single string; an optional field is one left out of `required`, never a null
//!   type (`Option<T>` still accepts `null` when a client sends it: only the schema changes);
//! - enums are inlined: no `$ref`, no `$defs`;
//! - no `anyOf`/`oneOf` for optional values (the null branch goes, the other one stays);
//! - every object has `properties`; no boolean schemas except `additionalProperties: false`;
//! - `format` only where strict consumers accept it (`date-time`, `enum`);
//! - no `$schema` (2020-12 is MCP's default dialect anyway); descriptions are kept.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;
use schemars::Schema;
use schemars::transform::{ReplaceBoolSchemas, RestrictFormats, Transform, transform_subschemas};
use serde_json::{Map, Value};

/// The `format` values strict consumers (Gemini's function declarations) accept.
pub const PORTABLE_FORMATS: [&str; 2] = ["date-time", "enum"];

/// Rewrites the input and output schema of every tool of `router` into the portable subset.
/// Applied to the whole board router, so a tool added later is covered without a word.
pub fn portable_router<S>(mut router: ToolRouter<S>) -> ToolRouter<S> {
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        tool.input_schema = Arc::new(portable(&tool.input_schema));
        if let Some(output) = &tool.output_schema {
            tool.output_schema = Some(Arc::new(portable(output)));
        }
    }
    router
}

/// `schema` in the portable subset (see the module documentation).
pub fn portable(schema: &JsonObject) -> JsonObject {
    let mut schema = Schema::from(schema.clone());
    schema.remove("$schema");
    let defs = match schema.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    Portable {
        defs,
        inlining: Vec::new(),
    }
    .transform(&mut schema);
    let mut booleans = ReplaceBoolSchemas::default();
    booleans.skip_additional_properties = true;
    booleans.transform(&mut schema);
    let mut formats = RestrictFormats::default();
    formats.infer_from_meta_schema = false;
    formats.allowed_formats = PORTABLE_FORMATS
        .into_iter()
        .map(Cow::Borrowed)
        .collect::<BTreeSet<_>>();
    formats.transform(&mut schema);
    match schema.to_value() {
        Value::Object(object) => object,
        // A boolean root cannot come out of ReplaceBoolSchemas; an empty object says the same.
        _ => JsonObject::new(),
    }
}

/// Inlines `$ref`s into `defs` and drops the null half of optional values, recursively.
struct Portable {
    defs: Map<String, Value>,
    /// The definitions being inlined, outermost first: a recursive type cannot be inlined, so
    /// its inner `$ref` is left (and the subset test names it).
    inlining: Vec<String>,
}

impl Transform for Portable {
    fn transform(&mut self, schema: &mut Schema) {
        collapse_nullable_union(schema);
        let inlined = self.inline_ref(schema);
        // The definition may itself be an optional union.
        collapse_nullable_union(schema);
        drop_null_type(schema);
        if let Some(object) = schema.as_object_mut()
            && object.get("type").and_then(Value::as_str) == Some("object")
        {
            object
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
        }
        transform_subschemas(self, schema);
        if inlined {
            self.inlining.pop();
        }
    }
}

impl Portable {
    /// Replaces `{"$ref": "#/$defs/Name", ...siblings}` by the definition, the siblings
    /// (a field's own description) winning. True when a definition was inlined.
    fn inline_ref(&mut self, schema: &mut Schema) -> bool {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .map(str::to_string)
        else {
            return false;
        };
        if self.inlining.contains(&name) {
            return false;
        }
        let Some(Value::Object(definition)) = self.defs.get(&name) else {
            return false;
        };
        let mut merged = definition.clone();
        if let Some(object) = schema.as_object_mut() {
            object.remove("$ref");
            merged.extend(std::mem::take(object));
        }
        *schema = Schema::from(merged);
        self.inlining.push(name);
        true
    }
}

/// `{"anyOf": [X, {"type": "null"}], ...}` becomes X merged with the other keywords (which
/// win); unions with more than one non-null branch only lose their null branches.
fn collapse_nullable_union(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = object.get_mut(key) else {
            continue;
        };
        let before = branches.len();
        branches.retain(|branch| !is_null_schema(branch));
        if branches.len() == before {
            continue;
        }
        if let [Value::Object(_)] = branches.as_slice()
            && let Some(Value::Array(mut only)) = object.remove(key)
            && let Some(Value::Object(mut branch)) = only.pop()
        {
            branch.extend(std::mem::take(object));
            *object = branch;
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("const").is_some_and(Value::is_null)
}

/// `"type": ["string", "null"]` becomes `"type": "string"`; `null` leaves `enum` too.
fn drop_null_type(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t.as_str() != Some("null"));
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::portable;

    fn rewrite(schema: serde_json::Value) -> serde_json::Value {
        let serde_json::Value::Object(schema) = schema else {
            panic!("a schema object");
        };
        serde_json::Value::Object(portable(&schema))
    }

    #[test]
    fn optional_fields_lose_their_null_type() {
        let out = rewrite(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "title": { "type": ["string", "null"], "description": "Required for create." },
                "limit": { "type": ["integer", "null"], "format": "uint32", "minimum": 0 },
                "at": { "type": ["string", "null"], "format": "date-time" },
            },
        }));
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "title": { "type": "string", "description": "Required for create." },
                    "limit": { "type": "integer", "minimum": 0 },
                    "at": { "type": "string", "format": "date-time" },
                },
            })
        );
    }

    #[test]
    fn enums_are_inlined_and_the_field_description_wins() {
        let out = rewrite(json!({
            "type": "object",
            "$defs": {
                "Status": { "type": "string", "enum": ["todo", "done"], "description": "A status." },
            },
            "properties": {
                "status": {
                    "anyOf": [{ "$ref": "#/$defs/Status" }, { "type": "null" }],
                    "description": "todo (default) or done.",
                },
                "first": { "$ref": "#/$defs/Status" },
            },
            "required": ["first"],
        }));
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "status": { "type": "string", "enum": ["todo", "done"], "description": "todo (default) or done." },
                    "first": { "type": "string", "enum": ["todo", "done"], "description": "A status." },
                },
                "required": ["first"],
            })
        );
    }

    #[test]
    fn objects_get_properties_and_boolean_schemas_become_objects() {
        let out = rewrite(json!({
            "type": "object",
            "properties": {
                "anything": true,
                "map": { "type": "object", "additionalProperties": { "type": "string" } },
            },
            "additionalProperties": false,
        }));
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "anything": {},
                    "map": { "type": "object", "properties": {}, "additionalProperties": { "type": "string" } },
                },
                "additionalProperties": false,
            })
        );
    }

    #[test]
    fn a_recursive_definition_keeps_its_inner_ref() {
        let out = rewrite(json!({
            "type": "object",
            "$defs": { "Node": { "type": "object", "properties": { "next": { "$ref": "#/$defs/Node" } } } },
            "properties": { "head": { "$ref": "#/$defs/Node" } },
        }));
        assert_eq!(
            out["properties"]["head"]["properties"]["next"],
            json!({ "$ref": "#/$defs/Node" })
        );
    }
}
