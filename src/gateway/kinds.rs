//! What the gateway passes on, by kind: the four lists it merges (tools, resources, resource
//! templates, prompts) and the three requests it routes (`tools/call`, `resources/read`,
//! `prompts/get`). Each says how it is asked of a stdio upstream (rmcp's peer) and of an HTTP
//! one (its method), and how an upstream's items are named for the client:
//!
//! - tools and prompts: `UPSTREAM__name` ([`SEPARATOR`]);
//! - resources and templates: the URI behind [`URI_PREFIX`] and the upstream's name,
//!   `upstream://UPSTREAM/URI` (a valid URI whatever the upstream's scheme, and an RFC 6570
//!   template stays one), and the name prefixed like a tool's.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, InputRequiredResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    Prompt, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ResultType, Tool,
};
use rmcp::service::{Peer, RoleClient};
use rmcp::{ErrorData, ServiceError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::spec::{SEPARATOR, UpstreamSpec};

/// Before the upstream's name in the URI of its resources.
pub const URI_PREFIX: &str = "upstream://";

/// A list the gateway merges.
pub trait Listing: DeserializeOwned + Send + Sized {
    type Item: Send;
    const METHOD: &'static str;
    fn into_page(self) -> (Vec<Self::Item>, Option<String>);
    fn from_page(items: Vec<Self::Item>, next: Option<String>) -> Self;
    fn ask(
        peer: &Peer<RoleClient>,
        params: PaginatedRequestParams,
    ) -> impl Future<Output = Result<Self, ServiceError>> + Send;
    /// Names the upstream's item as the client sees it; false when the upstream's allow-list
    /// leaves it out.
    fn adopt(item: &mut Self::Item, upstream: &UpstreamSpec) -> bool;
    /// Keeps what a later request needs of the upstream's items, under their names there
    /// (a tool's input schema: see [`Tools`]); a `first` page replaces what was kept.
    fn remember(_items: &[Self::Item], _tools: &Tools, _first: bool) {}
}

/// The upstream's tools as its latest `tools/list` described them (a tool it no longer lists
/// is forgotten when the list is read again from its first page), by its own names: their
/// input schemas say which arguments travel as `Mcp-Param-*` headers (SEP-2243), which
/// Steward checks on the client's request as it checks its own tools'.
#[derive(Default)]
pub struct Tools(std::sync::Mutex<std::collections::HashMap<String, Tool>>);

impl Tools {
    pub fn get(&self, local: &str) -> Option<Tool> {
        crate::sync::lock(&self.0).get(local).cloned()
    }

    fn keep(&self, tools: &[Tool], first: bool) {
        let mut known = crate::sync::lock(&self.0);
        if first {
            known.clear();
        }
        for tool in tools {
            known.insert(tool.name.to_string(), tool.clone());
        }
    }
}

/// A request the gateway routes to one upstream.
pub trait Exchange: Serialize + Send + Sized {
    type Result: DeserializeOwned + Send;
    /// The result, or a 2026-07-28 `InputRequiredResult` passed on as the upstream sent it.
    type Response: From<Self::Result> + From<InputRequiredResult> + Send;
    const METHOD: &'static str;
    /// Routed by URI (resources), not by name (tools, prompts).
    const BY_URI: bool = false;
    /// The ledger's `upstream_tool` is its name at the upstream.
    const NAMES_TOOL: bool = false;
    /// The name or URI the client gave.
    fn target(&self) -> &str;
    /// Names it as the upstream knows it.
    fn retarget(&mut self, local: &str);
    /// Whether the upstream may be asked for `local` at all.
    fn check(_local: &str, _upstream: &UpstreamSpec) -> Result<(), ErrorData> {
        Ok(())
    }
    /// Names what the answer holds as the client knows it.
    fn adopt(_response: &mut Self::Response, _upstream: &UpstreamSpec) {}
    fn ask(
        self,
        peer: &Peer<RoleClient>,
    ) -> impl Future<Output = Result<Self::Response, ServiceError>> + Send;
}

/// The name the client sees for the upstream's `name` (its own, without a namespace).
fn prefixed(upstream: &UpstreamSpec, name: &str) -> String {
    match upstream.namespaced {
        true => format!("{}{SEPARATOR}{name}", upstream.name),
        false => name.to_string(),
    }
}

/// The URI the client sees for the upstream's `uri` (its own, without a namespace).
pub fn gateway_uri(upstream: &UpstreamSpec, uri: &str) -> String {
    match upstream.namespaced {
        true => format!("{URI_PREFIX}{}/{uri}", upstream.name),
        false => uri.to_string(),
    }
}

/// Names read contents with the URI the client knows.
fn adopt_contents(contents: &mut ResourceContents, upstream: &UpstreamSpec) {
    match contents {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => {
            *uri = gateway_uri(upstream, uri);
        }
        _ => {}
    }
}

/// Marks a result of a session-era upstream (which has no `resultType`) as complete, as a
/// 2026-07-28 client requires; rmcp removes it again for a session-era client.
fn complete(result_type: &mut Option<ResultType>) {
    result_type.get_or_insert(ResultType::COMPLETE);
}

/// The upstream's name and its own URI, from a URI of [`gateway_uri`]'s form.
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix(URI_PREFIX)?.split_once('/')
}

macro_rules! listing {
    ($list:ty, $item:ty, $field:ident, $method:literal, $ask:ident, |$it:ident, $up:ident| $adopt:block $(, $remember:expr)?) => {
        impl Listing for $list {
            type Item = $item;
            const METHOD: &'static str = $method;
            fn into_page(self) -> (Vec<$item>, Option<String>) {
                (self.$field, self.next_cursor)
            }
            fn from_page(items: Vec<$item>, next: Option<String>) -> Self {
                let mut list = <$list>::with_all_items(items);
                list.next_cursor = next;
                list
            }
            fn ask(
                peer: &Peer<RoleClient>,
                params: PaginatedRequestParams,
            ) -> impl Future<Output = Result<Self, ServiceError>> + Send {
                peer.$ask(Some(params))
            }
            fn adopt($it: &mut $item, $up: &UpstreamSpec) -> bool $adopt
            $(fn remember(items: &[$item], tools: &Tools, first: bool) {
                $remember(items, tools, first)
            })?
        }
    };
}

listing!(
    ListToolsResult,
    Tool,
    tools,
    "tools/list",
    list_tools,
    |tool, upstream| {
        let offered = upstream.offers(&tool.name);
        tool.name = prefixed(upstream, &tool.name).into();
        offered
    },
    |items: &[Tool], tools: &Tools, first| tools.keep(items, first)
);
listing!(
    ListPromptsResult,
    Prompt,
    prompts,
    "prompts/list",
    list_prompts,
    |prompt, upstream| {
        prompt.name = prefixed(upstream, &prompt.name);
        true
    }
);
listing!(
    ListResourcesResult,
    Resource,
    resources,
    "resources/list",
    list_resources,
    |resource, upstream| {
        resource.uri = gateway_uri(upstream, &resource.uri);
        resource.name = prefixed(upstream, &resource.name);
        true
    }
);
listing!(
    ListResourceTemplatesResult,
    ResourceTemplate,
    resource_templates,
    "resources/templates/list",
    list_resource_templates,
    |template, upstream| {
        template.uri_template = gateway_uri(upstream, &template.uri_template);
        template.name = prefixed(upstream, &template.name);
        true
    }
);

/// `ask` for each request: the peer's method of the same name.
macro_rules! ask {
    ($response:ty, $ask:ident) => {
        fn ask(
            self,
            peer: &Peer<RoleClient>,
        ) -> impl Future<Output = Result<$response, ServiceError>> + Send {
            peer.$ask(self)
        }
    };
}

impl Exchange for CallToolRequestParams {
    type Result = CallToolResult;
    type Response = CallToolResponse;
    const METHOD: &'static str = "tools/call";
    const NAMES_TOOL: bool = true;
    fn target(&self) -> &str {
        &self.name
    }
    fn retarget(&mut self, local: &str) {
        self.name = local.to_string().into();
    }
    fn adopt(response: &mut CallToolResponse, _upstream: &UpstreamSpec) {
        if let CallToolResponse::Complete(result) = response {
            complete(&mut result.result_type);
        }
    }
    fn check(tool: &str, upstream: &UpstreamSpec) -> Result<(), ErrorData> {
        let name = &upstream.name;
        match upstream.offers(tool) {
            true => Ok(()),
            false => Err(ErrorData::invalid_params(
                format!(
                    "tool {} is not offered: upstream {name}'s tool allow-list leaves it out; see tools/list",
                    prefixed(upstream, tool)
                ),
                None,
            )),
        }
    }
    ask!(CallToolResponse, call_tool_once);
}

impl Exchange for ReadResourceRequestParams {
    type Result = ReadResourceResult;
    type Response = ReadResourceResponse;
    const METHOD: &'static str = "resources/read";
    const BY_URI: bool = true;
    fn target(&self) -> &str {
        &self.uri
    }
    fn retarget(&mut self, local: &str) {
        self.uri = local.to_string();
    }
    fn adopt(response: &mut ReadResourceResponse, upstream: &UpstreamSpec) {
        if let ReadResourceResponse::Complete(result) = response {
            complete(&mut result.result_type);
            for contents in &mut result.contents {
                adopt_contents(contents, upstream);
            }
        }
    }
    ask!(ReadResourceResponse, read_resource_once);
}

impl Exchange for GetPromptRequestParams {
    type Result = GetPromptResult;
    type Response = GetPromptResponse;
    const METHOD: &'static str = "prompts/get";
    fn target(&self) -> &str {
        &self.name
    }
    fn retarget(&mut self, local: &str) {
        self.name = local.to_string();
    }
    fn adopt(response: &mut GetPromptResponse, _upstream: &UpstreamSpec) {
        if let GetPromptResponse::Complete(result) = response {
            complete(&mut result.result_type);
        }
    }
    ask!(GetPromptResponse, get_prompt_once);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::spec::UpstreamSpec;
    use std::time::Duration;

    #[test]
    fn resource_uris_round_trip_through_the_gateway_form() {
        let spec = UpstreamSpec::parse_flag("docs=http://h:1/mcp", Duration::from_secs(1)).unwrap();
        let uri = gateway_uri(&spec, "file:///srv/a b.txt");
        assert_eq!(uri, "upstream://docs/file:///srv/a b.txt");
        assert_eq!(split_uri(&uri), Some(("docs", "file:///srv/a b.txt")));
        assert_eq!(split_uri("steward://projects"), None);
    }

    #[test]
    fn a_tool_the_upstream_no_longer_lists_is_forgotten() {
        let tool = |name: &str| -> Tool {
            serde_json::from_value(
                serde_json::json!({ "name": name, "inputSchema": { "type": "object" } }),
            )
            .expect("a tool")
        };
        let tools = Tools::default();
        tools.keep(&[tool("a"), tool("b")], true);
        tools.keep(&[tool("c")], false);
        assert!(tools.get("a").is_some() && tools.get("c").is_some());
        // Listed again from the first page, without `a`.
        tools.keep(&[tool("b")], true);
        assert!(tools.get("a").is_none() && tools.get("c").is_none());
        assert!(tools.get("b").is_some());
    }

    #[test]
    fn an_unnamespaced_upstream_keeps_its_own_names() {
        let mut spec =
            UpstreamSpec::parse_flag("fx=http://h:1/mcp", Duration::from_secs(1)).unwrap();
        spec.namespaced = false;
        assert_eq!(prefixed(&spec, "test_simple_text"), "test_simple_text");
        assert_eq!(gateway_uri(&spec, "test://static"), "test://static");
    }
}
