//! Ids as people type them: in full or as a unique prefix (`steward tasks show 3f2a`).
//! One helper for every board table, so every command resolves prefixes the same way.

use super::{Id, Store, on_pool};

/// The tables whose ids can be given as a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTable {
    Projects,
    Tasks,
    Documents,
}

impl IdTable {
    fn table(self) -> &'static str {
        match self {
            IdTable::Projects => "projects",
            IdTable::Tasks => "tasks",
            IdTable::Documents => "documents",
        }
    }

    /// The singular noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            IdTable::Projects => "project",
            IdTable::Tasks => "task",
            IdTable::Documents => "document",
        }
    }
}

/// Most matches an ambiguous prefix lists.
const MAX_SHOWN: i64 = 10;

/// Why a prefix names no single row.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    #[error("{0:?} is not an id or an id prefix (ids are hexadecimal UUIDs with dashes)")]
    Malformed(String),
    #[error("no {noun} id starts with {prefix:?}")]
    NotFound { noun: &'static str, prefix: String },
    #[error("{prefix:?} matches several {noun}s: {}; give more characters", matches.join(", "))]
    Ambiguous {
        noun: &'static str,
        prefix: String,
        matches: Vec<String>,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Store {
    /// The one id in `table` equal to `text` or starting with it (case-insensitive).
    pub async fn resolve_id(&self, table: IdTable, text: &str) -> Result<Id, PrefixError> {
        let prefix = text.trim().to_ascii_lowercase();
        if let Ok(id) = prefix.parse::<Id>() {
            return Ok(id);
        }
        if prefix.is_empty()
            || prefix.len() > 36
            || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(PrefixError::Malformed(text.to_string()));
        }
        // Only hex digits and dashes reach the pattern, so nothing needs escaping.
        let sql = format!(
            "SELECT CAST(id AS TEXT) FROM {} WHERE CAST(id AS TEXT) LIKE $1 ORDER BY 1 LIMIT $2",
            table.table()
        );
        let pattern = format!("{prefix}%");
        let matches: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(&pattern)
            .bind(MAX_SHOWN)
            .fetch_all(pool)
            .await)?;
        match matches.as_slice() {
            [] => Err(PrefixError::NotFound {
                noun: table.noun(),
                prefix,
            }),
            [one] => one.parse().map_err(|_| PrefixError::Malformed(one.clone())),
            _ => Err(PrefixError::Ambiguous {
                noun: table.noun(),
                prefix,
                matches,
            }),
        }
    }
}
