//! Resource subscriptions. Session era (up to 2025-11-25): `resources/subscribe` adds a URI
//! to the connection's set and `notifications/resources/updated` follows each change to it.
//! 2026-07-28: the same notifications flow on the `subscriptions/listen` stream ([`listen`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionContext};

use super::changes::BoardChanges;
use crate::sync::lock;

/// One connection's subscribed URIs.
#[derive(Debug, Default)]
pub struct Subscriptions {
    uris: Mutex<HashSet<String>>,
    /// Whether the forwarding task runs (one per connection, started on the first subscribe).
    forwarding: Mutex<bool>,
}

impl Subscriptions {
    pub fn subscribe(
        self: &Arc<Self>,
        uri: String,
        changes: &BoardChanges,
        peer: Peer<RoleServer>,
    ) {
        lock(&self.uris).insert(uri);
        let mut forwarding = lock(&self.forwarding);
        if !*forwarding {
            *forwarding = true;
            tokio::spawn(forward(Arc::downgrade(self), changes.clone(), peer));
        }
    }

    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.uris).remove(uri);
    }

    fn wanted(&self, uris: Option<Vec<String>>) -> Vec<String> {
        let subscribed = lock(&self.uris);
        match uris {
            Some(uris) => uris
                .into_iter()
                .filter(|u| subscribed.contains(u))
                .collect(),
            None => subscribed.iter().cloned().collect(),
        }
    }
}

/// Sends `notifications/resources/updated` for subscribed URIs until the connection is gone
/// (its subscriptions dropped, or the peer no longer reachable).
async fn forward(
    subscriptions: Weak<Subscriptions>,
    changes: BoardChanges,
    peer: Peer<RoleServer>,
) {
    let mut listener = changes.listen();
    while let Some(changed) = listener.recv().await {
        let Some(subscriptions) = subscriptions.upgrade() else {
            return;
        };
        let changed = changed.map(|uris| uris.iter().map(ToString::to_string).collect());
        for uri in subscriptions.wanted(changed) {
            let notice = ResourceUpdatedNotificationParam::new(uri);
            if let Err(error) = peer.notify_resource_updated(notice).await {
                tracing::debug!(%error, "resource subscriber gone; stopping its notifications");
                return;
            }
        }
    }
}

/// Serves one 2026-07-28 `subscriptions/listen` request until the client cancels it.
pub async fn listen(changes: &BoardChanges, context: SubscriptionContext) {
    let accepted: HashSet<String> = context
        .accepted()
        .resource_subscriptions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut listener = changes.listen();
    loop {
        let changed = tokio::select! {
            _ = context.cancelled() => return,
            changed = listener.recv() => changed,
        };
        let Some(changed) = changed else { return };
        let uris: Vec<String> = match changed {
            Some(uris) => uris
                .iter()
                .map(ToString::to_string)
                .filter(|u| accepted.contains(u))
                .collect(),
            None => accepted.iter().cloned().collect(),
        };
        for uri in uris {
            if let Err(error) = context.sink().notify_resource_updated(uri).await {
                tracing::debug!(%error, "subscriptions/listen stream closed");
                return;
            }
        }
    }
}
