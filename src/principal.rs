//! Who sent a request: the one answer every layer of the request path reads. The security
//! guard puts a [`Principal`] in the request's extensions once the request is authenticated
//! (the session layer records it on new sessions) and on the response (the ledger, outside the
//! guard, reads it there). A request refused before authentication carries none.
//!
//! (`board::Actor` is something else: the session and client named in a task's history.)
//!
//! A foundation module: it imports nothing from the crate.

use std::fmt;

/// An authenticated sender.
#[derive(Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (`--auth none`): whoever can reach the server.
    Anonymous,
    /// The holder of the API key called `name`.
    Key { name: String, admin: bool },
}

/// How rate limits and messages name [`Principal::Anonymous`].
pub const ANONYMOUS: &str = "(anonymous)";

impl Principal {
    /// The key's name, recorded on sessions; None when authentication is off.
    pub fn name(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::Key { name, .. } => Some(name),
        }
    }

    /// The name, or [`ANONYMOUS`].
    pub fn label(&self) -> &str {
        self.name().unwrap_or(ANONYMOUS)
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Key { admin: true, .. })
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admin = if self.is_admin() { ", admin" } else { "" };
        write!(f, "Principal({}{admin})", self.label())
    }
}
