//! `steward requests list`.

use serde_json::json;

use super::{print_json, table};
use crate::cli::RequestsAction;
use crate::stdout::{out, outln};
use crate::store::requests::RequestFilter;
use crate::store::{IdKind, Store};

pub async fn run(store: &Store, action: RequestsAction) -> anyhow::Result<()> {
    let RequestsAction::List {
        session,
        tool,
        method,
        client,
        status,
        since,
        limit,
        output,
    } = action;
    let since = since.as_deref().map(super::parse_since).transpose()?;
    let session_id = match session {
        Some(typed) => Some(super::resolve_id(store, IdKind::Session, &typed).await?),
        None => None,
    };
    let filter = RequestFilter {
        session_id,
        tool_name: tool,
        method,
        status,
        since,
        client_name: client,
        ..RequestFilter::default()
    };
    let (rows, total) = store.list_requests(&filter, i64::from(limit), 0).await?;
    if output.json {
        return print_json(&json!({ "requests": rows, "total": total }));
    }
    out!(
        "{}",
        table::columns(
            &rows,
            40,
            &[
                ("TIME (UTC)", &|r| {
                    r.timestamp.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
                }),
                ("SESSION", &|r| {
                    r.session_id
                        .as_deref()
                        .unwrap_or("-")
                        .chars()
                        .take(16)
                        .collect()
                }),
                ("METHOD", &|r| r.method.clone()),
                ("TOOL", &|r| r.tool_name.clone().unwrap_or_default()),
                ("STATUS", &|r| r.status.as_str().to_string()),
                ("MS", &|r| {
                    format!("{}.{:03}", r.duration.millis(), r.duration.micros() % 1000)
                }),
                ("TOKENS*", &|r| {
                    r.total_tokens.map_or("-".into(), |t| t.to_string())
                }),
                ("COST* $", &|r| {
                    r.estimated_cost_usd.map_or("-".into(), |c| c.to_string())
                }),
                ("ERROR", &|r| r.error_message.clone().unwrap_or_default()),
            ],
        )
    )?;
    outln!("{} of {total} requests.", rows.len())?;
    outln!("{}", super::COST_NOTE)?;
    Ok(())
}
