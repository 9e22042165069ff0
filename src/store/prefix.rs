//! Ids typed by people: the full id or any unique prefix of it (tables show shortened ids).
//! One query for every kind of id, so the session, project and task commands resolve alike.

use super::{Store, on_pool};

/// A table whose rows people name by id on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Session,
    Project,
    Task,
}

impl IdKind {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            IdKind::Session => ("mcp_sessions", "session_id"),
            IdKind::Project => ("projects", "id"),
            IdKind::Task => ("tasks", "id"),
        }
    }

    /// What the rows are called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Session => "session",
            IdKind::Project => "project",
            IdKind::Task => "task",
        }
    }
}

/// Most ids an ambiguous prefix lists.
pub const MAX_MATCHES: usize = 10;

/// What an id or prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMatch {
    /// Exactly one row: its full id. An exact id wins even when it prefixes longer ids.
    One(String),
    None,
    /// Several rows start with the prefix: up to [`MAX_MATCHES`] of them, sorted, and whether
    /// there are more.
    Ambiguous {
        ids: Vec<String>,
        more: bool,
    },
}

impl Store {
    /// Resolves a full id or a unique prefix of one.
    pub async fn resolve_id(&self, kind: IdKind, typed: &str) -> Result<IdMatch, sqlx::Error> {
        if typed.is_empty() {
            return Ok(IdMatch::None);
        }
        let (table, column) = kind.table_and_column();
        // `substr` rather than LIKE: ids may contain `_`, and no escaping is needed. Compared
        // as text: board ids are `uuid` on PostgreSQL, which has no `uuid = text`.
        let sql = format!(
            "SELECT CAST({column} AS TEXT) AS id FROM {table} WHERE CAST({column} AS TEXT) = $1 \
             OR substr(CAST({column} AS TEXT), 1, CAST($2 AS INTEGER)) = $1 ORDER BY 1 LIMIT $3"
        );
        let length = i64::try_from(typed.chars().count()).unwrap_or(i64::MAX);
        let limit = i64::try_from(MAX_MATCHES + 1).unwrap_or(i64::MAX);
        let ids: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(typed)
            .bind(length)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(classify(typed, ids))
    }
}

fn classify(typed: &str, mut ids: Vec<String>) -> IdMatch {
    if ids.iter().any(|id| id == typed) {
        return IdMatch::One(typed.to_string());
    }
    match ids.len() {
        0 => IdMatch::None,
        1 => IdMatch::One(ids.remove(0)),
        n => {
            ids.truncate(MAX_MATCHES);
            IdMatch::Ambiguous {
                ids,
                more: n > MAX_MATCHES,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_id_wins_over_longer_ones() {
        let ids = vec!["ab".to_string(), "abc".to_string()];
        assert_eq!(classify("ab", ids), IdMatch::One("ab".into()));
        let ids = vec!["abc".to_string(), "abd".to_string()];
        assert!(
            matches!(classify("ab", ids), IdMatch::Ambiguous { ids, more: false } if ids.len() == 2)
        );
        assert_eq!(classify("x", vec![]), IdMatch::None);
    }
}
