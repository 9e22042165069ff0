//! The cursor of a merged list (tools, resources, templates, prompts). Source 0 is the board (one page), source `i` the
//! `i`-th upstream; a page ends where an upstream's page ends, and the cursor then names the
//! upstream and carries its own cursor: `steward:1:UPSTREAM_CURSOR`.

use rmcp::ErrorData;

const PREFIX: &str = "steward:";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub source: usize,
    pub inner: Option<String>,
}

impl Position {
    pub fn parse(cursor: Option<&str>) -> Result<Self, ErrorData> {
        let Some(cursor) = cursor else {
            return Ok(Position::default());
        };
        let invalid = || {
            ErrorData::invalid_params(
                format!(
                    "invalid cursor {cursor:?}: pass back the nextCursor of the previous page of the same list, or none for the first"
                ),
                None,
            )
        };
        let (source, inner) = cursor
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(invalid)?;
        let source = source.parse().map_err(|_| invalid())?;
        Ok(Position {
            source,
            inner: Some(inner.to_string()).filter(|i| !i.is_empty()),
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}:{}",
            self.source,
            self.inner.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let at = Position {
            source: 2,
            inner: Some("abc:def".into()),
        };
        assert_eq!(Position::parse(Some(&at.encode())).unwrap(), at);
        assert_eq!(Position::parse(None).unwrap(), Position::default());
        for bad in ["", "abc", "steward:x:1", "steward:1"] {
            assert!(Position::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
