//! Who may connect and what hostile input gets: browser-origin checks ([`allow`]), API keys
//! and admin access ([`auth`], [`admin`]), limits ([`limits`]) and the JSON-RPC gate that
//! answers malformed messages with the right error before rmcp sees them ([`gate`]), and
//! the accept loop's connection cap and timeouts ([`connections`]).
//! [`layers`] wires them as axum middleware around `/mcp`, `/api/` and the dashboard.
//!
//! Like the session and ledger layers, nothing here knows about the board's tools.

pub mod admin;
pub mod allow;
pub mod auth;
pub mod connections;
pub mod gate;
pub mod layers;
pub mod limits;

use std::time::Duration;

pub use allow::AllowList;
pub use auth::{AuthMode, Principal};
pub use connections::ConnectionLimits;

/// Default request body limit (the MCP SDKs' common 4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default JSON nesting limit. MCP messages nest a handful of levels; tool arguments a few more.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
/// Default requests per second per principal (the token bucket's refill rate).
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// Default burst (the token bucket's size).
pub const DEFAULT_RATE_BURST: u32 = 200;
/// Default live sessions per principal.
pub const DEFAULT_MAX_SESSIONS: u32 = 1000;
/// Default bound on one tool call.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything `steward serve` needs to know to defend itself.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub auth: AuthMode,
    /// Hosts the `Host` header may name (DNS-rebinding defence).
    pub allowed_hosts: AllowList,
    /// Browser origins that may call Steward (a request without `Origin` is not a browser's).
    pub allowed_origins: AllowList,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    /// Requests per second per principal; 0 turns rate limiting off.
    pub rate_limit: u32,
    pub rate_burst: u32,
    /// Live sessions per principal; 0 means no limit.
    pub max_sessions: u32,
    pub tool_timeout: Duration,
    pub connections: ConnectionLimits,
}

impl SecuritySettings {
    /// The defaults for a server listening on `listen`: no auth, loopback allow-lists.
    pub fn loopback_defaults(listen: std::net::SocketAddr) -> Self {
        SecuritySettings {
            auth: AuthMode::None,
            allowed_hosts: AllowList::loopback_and(listen),
            allowed_origins: AllowList::loopback_and(listen),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_burst: DEFAULT_RATE_BURST,
            max_sessions: DEFAULT_MAX_SESSIONS,
            tool_timeout: DEFAULT_TOOL_TIMEOUT,
            connections: ConnectionLimits::default(),
        }
    }
}
