//! PostgreSQL's `COPY ... FROM STDIN` for fresh ledger rows: the ledger's hottest write, and
//! the form PostgreSQL loads rows with least work (one command, no per-row parameters to
//! bind, rows inserted in bulk). SQLite has no `COPY`; it keeps multi-row `INSERT`s.
//!
//! `COPY` cannot skip a row whose id is already stored, so it serves only rows never offered to
//! the database before. A duplicate all the same fails the whole command (and its transaction)
//! as a unique violation, which the writer treats like any row it cannot store in a batch: it
//! stores the rows one at a time with `INSERT ... ON CONFLICT DO NOTHING`, so the duplicate is
//! skipped and the rest land once.

use sqlx::{Postgres, Sqlite, Transaction};

use crate::store::Money;
use crate::store::request_columns::{Column, column_list};
use crate::store::request_row::LedgerRow;
use crate::store::stamp::push_postgres_text;

/// The `COPY` statement; columns in the order [`copy_text`] writes them.
fn copy_statement() -> String {
    format!("COPY mcp_requests ({}) FROM STDIN", column_list())
}

/// Loads fresh rows in bulk where the engine can.
pub(crate) trait BulkLoad {
    /// Stores `rows` (none of which was offered before) and returns how many were stored, or
    /// `None` when this engine has no bulk load (the caller inserts them).
    async fn bulk_load(&mut self, rows: &[LedgerRow]) -> Result<Option<u64>, sqlx::Error>;
}

impl BulkLoad for Transaction<'static, Sqlite> {
    async fn bulk_load(&mut self, _rows: &[LedgerRow]) -> Result<Option<u64>, sqlx::Error> {
        Ok(None)
    }
}

impl BulkLoad for Transaction<'static, Postgres> {
    async fn bulk_load(&mut self, rows: &[LedgerRow]) -> Result<Option<u64>, sqlx::Error> {
        let mut copy = self.copy_in_raw(&copy_statement()).await?;
        if let Err(error) = copy.send(copy_text(rows).into_bytes()).await {
            // Ends the COPY (and with it this attempt) so the connection stays usable.
            if let Err(abort) = copy.abort(error.to_string()).await {
                tracing::debug!(%abort, "ending a failed ledger COPY");
            }
            return Err(error);
        }
        copy.finish().await.map(Some)
    }
}

/// The rows in `COPY`'s text format: one line per row, columns separated by tabs, `\N` for
/// null. Values are written as PostgreSQL reads them into the columns' types, and as sqlx
/// would bind them: timestamps to the microsecond (cut, not rounded, like the binary
/// protocol), money as its exact decimal at the column scale.
fn copy_text(rows: &[LedgerRow]) -> String {
    // Room for an ordinary row (~300 bytes), so the text is not regrown and copied as it fills.
    let mut out = String::with_capacity(rows.len() * 384);
    let mut uuid = uuid::Uuid::encode_buffer();
    // A batch's rows mostly cost the same: the last cost's text is written again, not remade.
    let mut last_cost: Option<(Money, String)> = None;
    for row in rows {
        for (at, (_, value)) in row.columns().into_iter().enumerate() {
            if at > 0 {
                out.push('\t');
            }
            let mut field = Field { out: &mut out };
            match value {
                Column::Id(id) => field.raw(id.map(|id| &*id.hyphenated().encode_lower(&mut uuid))),
                Column::Text(text) => field.text(text),
                Column::Int(n) => field.int(n),
                Column::BigInt(n) => field.int(n),
                Column::Money(m) => field.raw(m.map(|m| cost_text(&mut last_cost, m))),
                Column::Flag(flag) => field.raw(Some(if flag { "t" } else { "f" })),
                Column::Time(t) => push_postgres_text(field.out, t),
            }
        }
        out.push('\n');
    }
    out
}

/// `money`'s text as stored (its exact decimal at the column's scale), kept in `last` for the
/// next row.
fn cost_text(last: &mut Option<(Money, String)>, money: Money) -> &str {
    if last.as_ref().is_none_or(|(kept, _)| *kept != money) {
        *last = Some((money, money.stored().plain_text()));
    }
    last.as_ref().map_or("", |(_, text)| text.as_str())
}

/// Writes one field of a `COPY` line.
struct Field<'o> {
    out: &'o mut String,
}

impl Field<'_> {
    /// Text, escaped.
    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => escape_into(self.out, text),
            None => self.out.push_str("\\N"),
        }
    }

    /// An integer.
    fn int(&mut self, value: Option<impl itoa::Integer>) {
        let mut buffer = itoa::Buffer::new();
        match value {
            Some(n) => self.raw(Some(buffer.format(n))),
            None => self.raw(None),
        }
    }

    /// Text that needs no escaping (numbers, `t`/`f`, timestamps).
    fn raw(&mut self, value: Option<&str>) {
        self.out.push_str(value.unwrap_or("\\N"));
    }
}

/// `COPY` text escaping: backslash, and the characters that would end a field or a row. (A
/// NUL cannot be stored in PostgreSQL text at all: it is refused like in an `INSERT`, and the
/// writer's per-row path replaces it.)
fn escape_into(out: &mut String, text: &str) {
    let special = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    // Nearly every text (ids, names, methods) holds none: told by one pass without an early
    // exit, which compiles to vector code, before any search byte by byte.
    if !text
        .as_bytes()
        .iter()
        .fold(false, |any, b| any | special(b))
    {
        out.push_str(text);
        return;
    }
    let mut rest = text;
    // Searched byte by byte: a `char` pattern decodes every character of every text.
    while let Some(at) = rest.as_bytes().iter().position(special) {
        out.push_str(&rest[..at]);
        let escaped = match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        };
        out.push_str(escaped);
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_copy() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\tc\nd\re \u{e9} \\N");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re \u{e9} \\\\N");
        let mut plain = String::new();
        escape_into(&mut plain, "tools/call");
        assert_eq!(plain, "tools/call");
    }

    #[test]
    fn costs_and_times_are_written_as_stored() {
        let at = chrono::DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap();
        let row = |cost: &str| LedgerRow {
            estimated_cost_usd: Some(cost.parse().unwrap()),
            timestamp: at,
            ..LedgerRow::default()
        };
        let rows = [
            row("0.0000186"),
            row("0.00001860"),
            row("1.5"),
            row("-0.00000000004"),
            row("0.0000186"),
        ];
        let text = copy_text(&rows);
        let field = |line: &str, at: usize| line.split('\t').nth(at).map(str::to_string);
        let costs: Vec<_> = text.lines().filter_map(|l| field(l, 15)).collect();
        assert_eq!(costs, ["0.0000186", "0.0000186", "1.5", "0", "0.0000186"]);
        let times: Vec<_> = text.lines().filter_map(|l| field(l, 19)).collect();
        assert_eq!(times, vec!["2025-11-24T16:00:00.123456+00:00"; 5]);
    }
}
