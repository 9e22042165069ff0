//! The official MCP conformance suite's fixtures (`steward serve --conformance-fixtures`):
//! the `test_*` tools and prompts and the `test://` resources its scenarios call. They exist
//! only in that mode, so normal users never see them; the board itself never depends on them.

mod catalog;
mod client_requests;
mod content;
mod input_required;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock,
    ErrorData, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Prompt, PromptMessage,
    Resource, ResourceContents, ResourceTemplate, Role, Tool,
};
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use crate::mcp::logging::ClientLog;
use input_required::{Rounds, Step};

/// The fixture set of one Steward process.
#[derive(Default)]
pub struct Fixtures {
    rounds: Rounds,
}

impl std::fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixtures")
    }
}

impl Fixtures {
    pub fn tools(&self) -> Vec<Tool> {
        catalog::tools()
    }

    pub fn tool(&self, name: &str) -> Option<Tool> {
        catalog::tools().into_iter().find(|t| t.name == name)
    }

    pub fn prompts(&self) -> Vec<Prompt> {
        catalog::prompts()
    }

    pub fn has_prompt(&self, name: &str) -> bool {
        catalog::prompts().iter().any(|p| p.name == name)
    }

    pub fn resources(&self) -> Vec<Resource> {
        catalog::resources()
    }

    pub fn templates(&self) -> Vec<ResourceTemplate> {
        catalog::templates()
    }

    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        request: &RequestContext<RoleServer>,
        log: &ClientLog,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = params.name.as_ref();
        let arguments = params.arguments.clone().unwrap_or_default();
        let capabilities = request.client_capabilities();
        let declared = |capability: &str| declares(capabilities.as_ref(), capability);
        match name {
            "test_missing_capability" if !declared("sampling") => {
                return Err(missing("sampling"));
            }
            "test_missing_capability" => {
                return Ok(CallToolResult::success(vec![ContentBlock::text(
                    "sampling is declared",
                )])
                .into());
            }
            "test_streaming_elicitation" if !declared("elicitation") => {
                return Err(missing("elicitation"));
            }
            _ => {}
        }
        if input_required::is_multi_round(name) {
            return Ok(
                match self.rounds.step(
                    name,
                    capabilities.as_ref(),
                    params.request_state.as_deref(),
                    params.input_responses.as_ref(),
                )? {
                    Step::Ask(more) => more.into(),
                    Step::Done(answers) => input_required::tool_result(name, &answers).into(),
                },
            );
        }
        if let Some(result) = content::call(name, &arguments, request, log).await {
            return Ok(result.into());
        }
        if let Some(result) = client_requests::call(name, &arguments, request).await {
            return Ok(result.into());
        }
        Err(ErrorData::invalid_params(
            format!("tool not found: {name}"),
            None,
        ))
    }

    pub fn get_prompt(
        &self,
        params: &GetPromptRequestParams,
        request: &RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let argument = |key: &str| {
            params
                .arguments
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let text = |t: String| PromptMessage::new_text(Role::User, t);
        let messages = match params.name.as_str() {
            "test_simple_prompt" => vec![text("This is a simple prompt for testing.".into())],
            "test_prompt_with_arguments" => vec![text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                argument("arg1"),
                argument("arg2")
            ))],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(ResourceContents::text(
                        "Embedded resource content for testing.",
                        argument("resourceUri"),
                    )),
                ),
                text("Please process the embedded resource above.".into()),
            ],
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(catalog::PNG, "image/png")),
                text("Please analyze the image above.".into()),
            ],
            "test_input_required_result_prompt" => {
                let capabilities = request.client_capabilities();
                return Ok(
                    match self.rounds.step(
                        &params.name,
                        capabilities.as_ref(),
                        params.request_state.as_deref(),
                        params.input_responses.as_ref(),
                    )? {
                        Step::Ask(more) => more.into(),
                        Step::Done(answers) => input_required::prompt_result(&answers).into(),
                    },
                );
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("prompt not found: {other}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    /// The contents of a `test://` resource, or `None` when there is no such fixture.
    pub fn read_resource(&self, uri: &str) -> Option<ResourceContents> {
        Some(match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
            }
            "test://static-binary" => {
                ResourceContents::blob(catalog::PNG, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => ResourceContents::text("Watched resource content", uri),
            _ => {
                let id = uri
                    .strip_prefix("test://template/")?
                    .strip_suffix("/data")
                    .filter(|id| !id.is_empty() && !id.contains('/'))?;
                ResourceContents::text(
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                        .to_string(),
                    uri,
                )
                .with_mime_type("application/json")
            }
        })
    }
}

fn declares(capabilities: Option<&ClientCapabilities>, capability: &str) -> bool {
    capabilities
        .and_then(|c| serde_json::to_value(c).ok())
        .is_some_and(|c| c.get(capability).is_some_and(|v| !v.is_null()))
}

/// `-32021`: this call needs a capability the client did not declare.
fn missing(capability: &str) -> ErrorData {
    let required: ClientCapabilities =
        serde_json::from_value(json!({ capability: {} })).unwrap_or_default();
    ErrorData::missing_required_client_capability(required)
}
