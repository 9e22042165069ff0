//! The CLI's read-and-administer commands. They open the same database as `serve`, so they
//! work whether or not a server is running.

pub mod board;
pub mod import;
pub mod keys;
pub mod pricing;
pub mod requests;
pub mod sessions;
pub mod stats;
pub mod table;

use crate::stdout::outln;
use crate::store::{IdKind, IdMatch, Store};

/// A command given something it cannot use (a bad `--since`, an ambiguous id prefix): exit
/// code 2, like clap's own usage errors, where a failure while running exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The full id a person typed in full or as a unique prefix. An ambiguous prefix is a
/// [`UsageError`] listing the candidates; an id nothing has is a plain (exit 1) error.
pub async fn resolve_id(store: &Store, kind: IdKind, typed: &str) -> anyhow::Result<String> {
    let noun = kind.noun();
    if typed.trim().is_empty() {
        return Err(UsageError(format!(
            "the {noun}'s id is empty: give its id or the start of one (see `steward {noun}s list`)"
        ))
        .into());
    }
    match store.resolve_id(kind, typed).await? {
        IdMatch::One(id) => Ok(id),
        IdMatch::None => anyhow::bail!(
            "no {noun} has an id starting with {typed:?} (see `steward {noun}s list`)"
        ),
        IdMatch::Ambiguous { ids, more } => Err(UsageError(format!(
            "{typed:?} is the start of several {noun} ids; type more of it:\n  {}{}",
            ids.join("\n  "),
            if more { "\n  …" } else { "" }
        ))
        .into()),
    }
}

/// What `--json` prints: `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Parses a `--since` value, a usage error when it is neither a duration nor a time.
pub fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, UsageError> {
    crate::api::parse_since(text).map_err(|reason| UsageError(format!("--{reason}")))
}

/// Printed once under every table with token or cost figures: what the starred numbers are.
pub const COST_NOTE: &str = "* estimated: tokens counted with o200k_base; cost = argument tokens × the model's output price \
+ result tokens × its input price (the model writes the arguments and reads the results; prices: `steward pricing list`)";
