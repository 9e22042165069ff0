//! `steward sessions list|show|revoke`.

use anyhow::{Context, bail};
use serde_json::json;

use super::{print_json, table};
use crate::cli::SessionsAction;
use crate::stdout::{out, outln};
use crate::store::session_totals::SessionWithTotals;
use crate::store::sessions::SessionFilter;
use crate::store::{IdKind, Store};

pub async fn run(store: &Store, action: SessionsAction) -> anyhow::Result<()> {
    match action {
        SessionsAction::List {
            status,
            client_type,
            kind,
            limit,
            output,
        } => {
            let filter = SessionFilter {
                status,
                client_type,
                kind,
            };
            let (rows, total) = store.list_sessions(&filter, i64::from(limit), 0).await?;
            let rows = store.with_totals(rows).await?;
            if output.json {
                print_json(&json!({ "sessions": rows, "total": total }))?;
            } else {
                out!("{}", list_table(&rows))?;
                outln!("{} of {total} sessions", rows.len())?;
            }
        }
        SessionsAction::Show { id, output } => {
            let id = super::resolve_id(store, IdKind::Session, &id).await?;
            let row = store
                .get_session(&id)
                .await?
                .with_context(|| format!("no session has id {id}"))?;
            let row = store
                .with_totals(vec![row])
                .await?
                .pop()
                .context("the session's totals came back empty")?;
            if output.json {
                print_json(&row)?;
            } else {
                out!("{}", show_text(&row))?;
            }
        }
        SessionsAction::Revoke { id } => {
            let id = super::resolve_id(store, IdKind::Session, &id).await?;
            if store
                .end_session(&id, "revoked", "revoked")
                .await?
                .is_none()
            {
                bail!("no live session has id {id} (it may be unknown, already ended or revoked)");
            }
            outln!(
                "revoked {id}; running servers drop it within their revocation poll (default 2s)"
            )?;
        }
    }
    Ok(())
}

fn list_table(rows: &[SessionWithTotals]) -> String {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    table::columns(
        rows,
        40,
        &[
            ("SESSION", &|r| short_id(&r.session.session_id)),
            ("TYPE", &|r| r.session.client_type.clone()),
            ("CLIENT", &|r| {
                format!(
                    "{} {}",
                    r.session.client_name.as_deref().unwrap_or("-"),
                    r.session.client_version.as_deref().unwrap_or("")
                )
            }),
            ("PROTOCOL", &|r| {
                r.session.protocol_version.clone().unwrap_or_default()
            }),
            ("STATUS", &|r| r.session.status.clone()),
            ("CONNECTED (UTC)", &|r| time(&r.session.connected_at)),
            ("LAST ACTIVITY (UTC)", &|r| time(&r.session.last_activity)),
            ("REQUESTS", &|r| r.totals.requests.to_string()),
            ("ERRORS", &|r| r.totals.errors.to_string()),
            ("TOKENS", &|r| r.totals.estimated_tokens.to_string()),
            ("COST (USD)", &|r| r.totals.estimated_cost_usd.to_string()),
        ],
    )
}

/// Enough of an id to tell sessions apart in a table; every command that takes a session id
/// accepts this prefix.
fn short_id(id: &str) -> String {
    id.chars().take(16).collect()
}

fn show_text(SessionWithTotals { session: r, totals }: &SessionWithTotals) -> String {
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".into(), |t| t.to_rfc3339());
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let fields = [
        ("session_id", r.session_id.clone()),
        ("kind", r.kind.clone()),
        ("status", r.status.clone()),
        (
            "client",
            format!("{} {}", opt(&r.client_name), opt(&r.client_version)),
        ),
        ("client_type", r.client_type.clone()),
        ("protocol_version", opt(&r.protocol_version)),
        ("principal", opt(&r.principal)),
        ("connected_at", r.connected_at.to_rfc3339()),
        ("last_activity", r.last_activity.to_rfc3339()),
        (
            "disconnected_at",
            r.disconnected_at.map_or("-".into(), |t| t.to_rfc3339()),
        ),
        ("disconnect_reason", opt(&r.disconnect_reason)),
        ("requests", totals.requests.to_string()),
        ("errors", totals.errors.to_string()),
        ("estimated_tokens", totals.estimated_tokens.to_string()),
        ("estimated_cost_usd", totals.estimated_cost_usd.to_string()),
        ("first_request_at", when(totals.first_request_at)),
        ("last_request_at", when(totals.last_request_at)),
    ];
    let cells: Vec<Vec<String>> = fields
        .iter()
        .map(|(k, v)| vec![k.to_string(), v.clone()])
        .collect();
    table::render(&["FIELD", "VALUE"], &cells, 80)
}
