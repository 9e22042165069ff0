//! Protocol rules rmcp leaves to the server. The security guard (`security::layers::guard_mcp`)
//! applies them: it has already parsed each POSTed message, so nothing parses a body twice.
//! (JSON-RPC batches are answered or refused per revision by `security::batch`.)
//! - `server/discover` exists from 2026-07-28 on: a client that negotiated an older revision
//!   gets "method not found" for it, not a complaint about missing `_meta` fields.

/// The method this module rules on.
pub const DISCOVER: &str = "server/discover";
/// The first revision with `server/discover`.
const DISCOVER_FROM: &str = "2026-07-28";
/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i32 = -32601;

/// Why `server/discover` is refused to a request speaking `revision`, or None when it is allowed.
pub fn discover_refusal(revision: &str) -> Option<String> {
    (revision < DISCOVER_FROM).then(|| {
        format!(
            "server/discover is not part of MCP {revision} (it exists from {DISCOVER_FROM}); use initialize, or send MCP-Protocol-Version: {DISCOVER_FROM} without a session"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_is_refused_before_its_revision_only() {
        for old in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            let message = discover_refusal(old).expect("refused");
            assert!(message.contains(old) && message.contains(DISCOVER_FROM));
        }
        assert_eq!(discover_refusal("2026-07-28"), None);
    }
}
