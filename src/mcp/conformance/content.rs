//! Fixture tools that answer on their own: content types, errors, logging and progress.
// Logging is deprecated in rmcp (SEP-2577) but part of every revision the suite tests.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, ContentBlock, LoggingLevel, ProgressNotificationParam, ResourceContents,
};
use rmcp::service::RequestContext;
use serde_json::json;

use super::catalog::{PNG, WAV};
use crate::mcp::logging::ClientLog;

/// Pause between notifications, so clients see them arrive one by one.
const STEP: Duration = Duration::from_millis(50);

/// The answer of a tool that needs nothing from the client, or `None` if `name` is not one.
pub async fn call(
    name: &str,
    arguments: &rmcp::model::JsonObject,
    request: &RequestContext<RoleServer>,
    log: &ClientLog,
) -> Option<CallToolResult> {
    let text = |t: &str| CallToolResult::success(vec![ContentBlock::text(t)]);
    Some(match name {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_image_content" => {
            CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")])
        }
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")])
        }
        "test_embedded_resource" => {
            CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            ))])
        }
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]),
        "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]),
        "test_tool_with_logging" | "test_logging_tool" => {
            for message in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ] {
                log.log(request, LoggingLevel::Info, json!(message)).await;
                tokio::time::sleep(STEP).await;
            }
            text("Tool with logging executed successfully")
        }
        "test_tool_with_progress" => {
            progress(request).await;
            text("Progress test completed")
        }
        "test_reconnection" => {
            tokio::time::sleep(STEP * 2).await;
            text("Reconnection test completed successfully.")
        }
        "json_schema_2020_12_tool" => text(&format!(
            "JSON Schema 2020-12 tool called with: {}",
            json!(arguments)
        )),
        "test_custom_headers" => text(&format!(
            "Custom headers validated; region={}",
            arguments
                .get("region")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        )),
        _ => return None,
    })
}

async fn progress(request: &RequestContext<RoleServer>) {
    let Some(token) = request.meta.get_progress_token() else {
        return;
    };
    for step in [0.0, 50.0, 100.0] {
        let note = ProgressNotificationParam::new(token.clone(), step)
            .with_total(100.0)
            .with_message(format!("Completed step {step} of 100"));
        if let Err(error) = request.peer.notify_progress(note).await {
            tracing::debug!(%error, "progress notification not delivered");
            return;
        }
        tokio::time::sleep(STEP).await;
    }
}
