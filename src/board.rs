//! The task board's vocabulary: the closed sets of values its tools accept, and who made a
//! change. Shared by the tools (which publish them in input schemas) and the store.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares a string enum with its wire names, `as_str` and the list of allowed values.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
    };
}

string_enum!(
    /// Where a task is in its life.
    TaskStatus { Todo => "todo", Doing => "doing", Review => "review", Done => "done" }
);

string_enum!(
    /// Kind of a project document.
    DocumentType {
        Spec => "spec", Design => "design", Note => "note", Prp => "prp", Api => "api", Guide => "guide",
    }
);

string_enum!(
    /// A versioned field of a project.
    VersionField { Docs => "docs", Features => "features", Data => "data", Prd => "prd" }
);

string_enum!(
    /// What `manage_project`, `manage_task` and `manage_document` do.
    Action { Create => "create", Update => "update", Delete => "delete" }
);

string_enum!(
    /// What `manage_version` does.
    VersionAction { Create => "create", Restore => "restore" }
);

string_enum!(
    /// Which field `find_tasks` filters on.
    TaskFilter {
        Status => "status", Project => "project", Assignee => "assignee", Feature => "feature",
    }
);

/// Who made a change: recorded in task history. A claim is held by the actor's session.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub session_id: Option<String>,
    pub client_name: Option<String>,
    /// The authenticated principal (API key name), when the request was authenticated.
    pub principal: Option<String>,
}

/// Why a claim ended (besides its session ending, recorded as `session_<disconnect_reason>`);
/// as the `reason` of the task's history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimEnd {
    Released,
    Done,
    Archived,
    LeaseExpired,
    /// The holder claimed the task again: the old claim (and its token) ends.
    Reclaimed,
}

impl ClaimEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimEnd::Released => "released",
            ClaimEnd::Done => "done",
            ClaimEnd::Archived => "archived",
            ClaimEnd::LeaseExpired => "lease_expired",
            ClaimEnd::Reclaimed => "reclaimed",
        }
    }
}
