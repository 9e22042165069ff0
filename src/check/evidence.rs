//! Where the check reads what the server recorded: the database itself (`--database`, or the
//! spawned server's), or the server's JSON API.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::mcp::client::Client;
use crate::store::Store;
use crate::store::requests::RequestFilter;

pub enum Evidence {
    Database(Store),
    Api(Client),
}

impl Evidence {
    pub fn describe(&self) -> &'static str {
        match self {
            Evidence::Database(_) => "SQL on the database",
            Evidence::Api(_) => "the /api endpoints",
        }
    }

    /// The session row, as JSON.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<Value>> {
        match self {
            Evidence::Database(store) => Ok(store
                .get_session(id)
                .await?
                .map(serde_json::to_value)
                .transpose()?),
            Evidence::Api(client) => {
                let (status, body) = client.get_json(&format!("/api/sessions/{id}")).await?;
                Ok(status.is_success().then(|| body["session"].clone()))
            }
        }
    }

    /// The session's ledger rows, as JSON, newest first.
    pub async fn requests(&self, session_id: &str) -> anyhow::Result<Vec<Value>> {
        match self {
            Evidence::Database(store) => {
                let filter = RequestFilter {
                    session_id: Some(session_id.to_string()),
                    ..RequestFilter::default()
                };
                let (rows, _) = store.list_requests(&filter, 1000, 0).await?;
                Ok(rows
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?)
            }
            Evidence::Api(client) => {
                let (_, body) = client
                    .get_json(&format!(
                        "/api/requests?session_id={session_id}&per_page=1000"
                    ))
                    .await?;
                Ok(body["requests"].as_array().cloned().unwrap_or_default())
            }
        }
    }

    /// Session ids of ledger rows since `since` that name no known session.
    pub async fn orphans(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        match self {
            Evidence::Database(store) => Ok(store
                .orphan_requests_since(since)
                .await?
                .into_iter()
                .filter_map(|r| r.0.session_id)
                .collect()),
            Evidence::Api(client) => {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let (_, body) = client
                    .get_json(&format!("/api/requests?since={since}&per_page=1000"))
                    .await?;
                let mut ids: Vec<String> = body["requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["session_id"].as_str().map(str::to_string))
                    .collect();
                ids.sort();
                ids.dedup();
                let mut orphans = Vec::new();
                for id in ids {
                    if self.session(&id).await?.is_none() {
                        orphans.push(id);
                    }
                }
                Ok(orphans)
            }
        }
    }
}
