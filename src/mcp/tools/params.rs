//! Tool arguments: typed, schema-published, and validated into errors the model can read.

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::ErrorData;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Marks an argument error raised by [`Parameters`], so `call_tool` can turn it into a tool
/// execution error (`isError: true`) the model can correct, as the 2025-11-25 revision asks,
/// instead of a JSON-RPC protocol error.
pub const ARGUMENT_ERROR_MARKER: &str = "steward_argument_error";

/// A tool's arguments, deserialised with the path of the offending field in the error
/// ("action: unknown variant `x`, expected one of `create`, `update`, `delete`").
///
/// Named `Parameters` on purpose: rmcp's `#[tool]` macro finds the argument type by that name
/// and publishes its JSON schema as the tool's `inputSchema`.
pub struct Parameters<T>(pub T);

impl<T: JsonSchema> JsonSchema for Parameters<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<S>) -> Result<Self, ErrorData> {
        let arguments = Value::Object(context.arguments.take().unwrap_or_default());
        serde_path_to_error::deserialize(arguments)
            .map(Parameters)
            .map_err(|error| {
                let inner = error.inner().to_string();
                let (field, message) = match error.path().to_string() {
                    // A missing field is reported at its parent; its name is in the message.
                    path if path == "." => (missing_field(&inner).unwrap_or(path), inner),
                    path => (path.clone(), format!("{path}: {inner}")),
                };
                ErrorData::invalid_params(
                    message,
                    Some(serde_json::json!({ ARGUMENT_ERROR_MARKER: true, "field": field })),
                )
            })
    }
}

/// The published schema of a free-form JSON argument (`#[schemars(schema_with = ...)]`): an
/// object. A schema without a type would be honest, but Gemini refuses any tool with an untyped
/// property, and the portable subset has no union; the argument still accepts any JSON value.
pub fn json_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "properties": {} })
}

/// The published schema of a free-form list argument: a list of objects.
pub fn json_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "array", "items": { "type": "object", "properties": {} } })
}

/// Declares a tool's argument struct: deserialised strictly (an unknown field is refused with
/// serde's "unknown field `x`, expected one of ..." naming the fields there are) and published
/// as the tool's JSON schema. `#[serde(flatten)]` cannot share fields here, as serde refuses
/// it together with `deny_unknown_fields`; so the list tools' `page` and `per_page` come from
/// the `paged` form, which adds them as the last fields and `asked_page()` to check them.
macro_rules! tool_args {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($fields)* }
    };
    ($(#[$meta:meta])* paged pub struct $name:ident { $($fields:tt)* }) => {
        $crate::mcp::tools::params::tool_args! {
            $(#[$meta])*
            pub struct $name {
                $($fields)*
                /// Page number, from 1.
                #[serde(default = "crate::mcp::tools::params::default_page")]
                pub page: u32,
                /// Results per page, 1 to 100.
                #[serde(default = "crate::mcp::tools::params::default_per_page")]
                pub per_page: u32,
            }
        }
        impl $name {
            /// The page asked for, checked: `page` ≥ 1 and `per_page` in 1..=100.
            fn asked_page(&self) -> Result<$crate::store::Page, $crate::rules::FieldError> {
                $crate::rules::validate::page(self.page, self.per_page)
            }
        }
    };
}
pub(crate) use tool_args;

/// A list's first page, when the caller names none.
pub fn default_page() -> u32 {
    1
}

/// A list's page size, when the caller names none.
pub fn default_per_page() -> u32 {
    10
}

/// The name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::missing_field;

    #[test]
    fn finds_the_missing_field_name() {
        assert_eq!(
            missing_field("missing field `project_id`").as_deref(),
            Some("project_id")
        );
        assert_eq!(missing_field("invalid type: string"), None);
    }
}
