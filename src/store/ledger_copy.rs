//! PostgreSQL's `COPY ... FROM STDIN` for fresh ledger rows: the ledger's hottest write, and
//! the form PostgreSQL loads rows with least work (one command, no per-row parameters to
//! bind, rows inserted in bulk). SQLite has no `COPY`; it keeps multi-row `INSERT`s.
//!
//! `COPY` cannot skip a row whose id is already stored, so it serves only rows never offered to
//! the database before. A duplicate all the same fails the whole command (and its transaction)
//! as a unique violation, which the writer treats like any row it cannot store in a batch: it
//! stores the rows one at a time with `INSERT ... ON CONFLICT DO NOTHING`, so the duplicate is
//! skipped and the rest land once.

use chrono::{DateTime, Datelike, Utc};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::store::Money;
use crate::store::request_columns::column_list;
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
        if let Err(error) = copy.send(copy_text(rows)).await {
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
/// null, in [`LedgerRow::columns`]'s order. Values are written as PostgreSQL reads them into
/// the columns' types, and as sqlx would bind them: timestamps to the microsecond (cut, not
/// rounded, like the binary protocol), money as its exact decimal at the column scale.
fn copy_text(rows: &[LedgerRow]) -> Vec<u8> {
    // Room for an ordinary row (~300 bytes), so the text is not regrown and copied as it fills.
    // Bytes, not a `String`: what is written is UTF-8 (text fields whole, the rest ASCII), and
    // a `String` would have each formatted field checked for it again.
    let mut text = CopyText {
        out: Vec::with_capacity(rows.len() * 384),
        day: None,
    };
    rows.iter().for_each(|row| text.row(row));
    text.out
}

/// A `COPY` text being written, with the date of the last row's day kept: a batch's rows
/// mostly share one.
struct CopyText {
    out: Vec<u8>,
    /// The day (since 1970) of the last time written, and its date as text (`2026-12-06T`).
    day: Option<(i64, [u8; 11])>,
}

impl CopyText {
    /// One row's line. The fields are written straight from the row, not through
    /// [`LedgerRow::columns`]'s array of every column (a test holds the two to the same text).
    fn row(&mut self, row: &LedgerRow) {
        let hop = row.upstream.as_ref();
        self.id(Some(row.request_id));
        self.text(row.session_id.as_deref());
        self.text(row.jsonrpc_id.as_deref());
        self.text(Some(&row.method));
        self.text(row.tool_name.as_deref());
        self.raw(row.status.as_str());
        self.int(row.error_code);
        self.text(row.error_message.as_deref());
        self.int(Some(row.duration.millis()));
        self.int(Some(row.duration.micros()));
        self.int(Some(row.request_bytes));
        self.int(Some(row.response_bytes));
        self.int(row.args_tokens);
        self.int(row.result_tokens);
        self.int(row.total_tokens);
        self.cost(row.estimated_cost_usd);
        self.text(row.pricing_model.as_deref());
        self.text(row.tokenizer.as_deref());
        self.raw(if row.sanitized { "t" } else { "f" });
        self.time(row.timestamp);
        self.text(hop.map(|h| h.upstream.as_str()));
        self.text(hop.and_then(|h| h.tool.as_deref()));
        self.int(hop.map(|h| h.duration.micros()));
        self.id(row.subject);
        // The last field's tab is the line's end.
        self.out.pop();
        self.out.push(b'\n');
    }

    /// Text that needs no escaping (a status, `t`/`f`, digits), then the field's tab.
    fn raw(&mut self, value: &str) {
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'\t');
    }

    fn null(&mut self) {
        self.out.extend_from_slice(b"\\N\t");
    }

    /// Text, escaped.
    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                escape_into(&mut self.out, text);
                self.out.push(b'\t');
            }
            None => self.null(),
        }
    }

    fn int(&mut self, value: Option<impl itoa::Integer>) {
        match value {
            Some(n) => self.raw(itoa::Buffer::new().format(n)),
            None => self.null(),
        }
    }

    /// A UUID in its hyphenated lower-case form, a byte's two digits at a time.
    fn id(&mut self, value: Option<uuid::Uuid>) {
        let Some(id) = value else {
            return self.null();
        };
        let mut text = [b'-'; 37];
        text[36] = b'\t';
        // Where each byte's digits go: after 4, 6, 8 and 10 bytes a hyphen.
        const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        for (byte, at) in id.as_bytes().iter().zip(AT) {
            text[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
        }
        self.out.extend_from_slice(&text);
    }

    /// `money`'s text as stored: its exact decimal at the column's scale, as `Display` writes
    /// it (`-0.0025`, `12`), from the integer mantissa and the scale.
    fn cost(&mut self, value: Option<Money>) {
        let Some(money) = value else {
            return self.null();
        };
        // An estimate has at most the stored places: nothing to round, only zeros to drop.
        let stored = match money.0.scale() <= Money::STORED_SCALE {
            true => money.0.normalize(),
            false => money.stored().0,
        };
        if stored.is_sign_negative() && !stored.is_zero() {
            self.out.push(b'-');
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(stored.mantissa().unsigned_abs()).as_bytes();
        let scale = stored.scale() as usize;
        match digits.len().checked_sub(scale) {
            _ if scale == 0 => self.out.extend_from_slice(digits),
            Some(whole) if whole > 0 => {
                self.out.extend_from_slice(&digits[..whole]);
                self.out.push(b'.');
                self.out.extend_from_slice(&digits[whole..]);
            }
            _ => {
                self.out.extend_from_slice(b"0.");
                let zeros = scale - digits.len();
                self.out.extend(std::iter::repeat_n(b'0', zeros));
                self.out.extend_from_slice(digits);
            }
        }
        self.out.push(b'\t');
    }

    /// A time as [`push_postgres_text`] writes it (cut to the microsecond, RFC 3339,
    /// `+00:00`), the date's text kept from the last time of the same day.
    fn time(&mut self, time: DateTime<Utc>) {
        let (seconds, micros) = (time.timestamp(), time.timestamp_subsec_micros());
        let day = seconds.div_euclid(SECONDS_A_DAY);
        let date = match self.day {
            Some((last, date)) if last == day => Some(date),
            _ => date_text(time),
        };
        // A leap second (micros past a second), or a year RFC 3339 cannot write in four
        // digits: left to chrono.
        let Some(date) = date.filter(|_| micros < 1_000_000) else {
            let mut text = String::new();
            push_postgres_text(&mut text, time);
            return self.raw(&text);
        };
        self.day = Some((day, date));
        let second = seconds.rem_euclid(SECONDS_A_DAY) as u32;
        let mut clock = *b"00:00:00.000000+00:00";
        two_digits(&mut clock[0..2], second / 3600);
        two_digits(&mut clock[3..5], second / 60 % 60);
        two_digits(&mut clock[6..8], second % 60);
        // The fraction as chrono writes it: none, milliseconds or microseconds.
        let fraction = match micros {
            0 => 0,
            m if m % 1_000 == 0 => 3,
            _ => 6,
        };
        let mut value = if fraction == 3 {
            micros / 1_000
        } else {
            micros
        };
        for digit in clock[9..9 + fraction].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        let kept = if fraction == 0 { 8 } else { 9 + fraction };
        self.out.extend_from_slice(&date);
        self.out.extend_from_slice(&clock[..kept]);
        self.out.extend_from_slice(&clock[15..]);
        self.out.push(b'\t');
    }
}

const SECONDS_A_DAY: i64 = 86_400;

/// The two lower-case hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [digits[byte >> 4], digits[byte & 15]];
        byte += 1;
    }
    pairs
};

/// `time`'s date and the `T` after it (`2026-12-06T`); `None` for a year outside 0..=9999.
fn date_text(time: DateTime<Utc>) -> Option<[u8; 11]> {
    let date = time.date_naive();
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let mut text = *b"0000-00-00T";
    two_digits(&mut text[0..2], year / 100);
    two_digits(&mut text[2..4], year % 100);
    two_digits(&mut text[5..7], date.month());
    two_digits(&mut text[8..10], date.day());
    Some(text)
}

/// `value` (below 100) as two decimal digits.
fn two_digits(out: &mut [u8], value: u32) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

/// `COPY` text escaping: backslash, and the characters that would end a field or a row. (A
/// NUL cannot be stored in PostgreSQL text at all: it is refused like in an `INSERT`, and the
/// writer's per-row path replaces it.)
fn escape_into(out: &mut Vec<u8>, text: &str) {
    let special = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    let mut rest = text.as_bytes();
    // Nearly every text (ids, names, methods) holds none: told by one pass without an early
    // exit, which compiles to vector code, before any search byte by byte.
    if !rest.iter().fold(false, |any, b| any | special(b)) {
        out.extend_from_slice(rest);
        return;
    }
    while let Some(at) = rest.iter().position(special) {
        out.extend_from_slice(&rest[..at]);
        let escaped = match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        };
        out.extend_from_slice(escaped);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::request_row::{Micros, Status, UpstreamHop};

    #[test]
    fn text_is_escaped_for_copy() {
        let mut out = Vec::new();
        escape_into(&mut out, "a\\b\tc\nd\re \u{e9} \\N");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re \u{e9} \\\\N".as_bytes());
        let mut plain = Vec::new();
        escape_into(&mut plain, "tools/call");
        assert_eq!(plain, b"tools/call");
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
        let text = String::from_utf8(copy_text(&rows)).unwrap();
        let field = |line: &str, at: usize| line.split('\t').nth(at).map(str::to_string);
        let costs: Vec<_> = text.lines().filter_map(|l| field(l, 15)).collect();
        assert_eq!(costs, ["0.0000186", "0.0000186", "1.5", "0", "0.0000186"]);
        let times: Vec<_> = text.lines().filter_map(|l| field(l, 19)).collect();
        assert_eq!(times, vec!["2025-11-24T16:00:00.123456+00:00"; 5]);
    }

    /// The line of a row as [`LedgerRow::columns`] lists its values, each written the plain
    /// way (chrono's, uuid's and the decimal's own text).
    fn line_of_columns(row: &LedgerRow) -> String {
        use crate::store::request_columns::Column;
        let null = || "\\N".to_string();
        let fields: Vec<String> = row
            .columns()
            .into_iter()
            .map(|(_, value)| match value {
                Column::Id(id) => id.map_or_else(null, |id| id.hyphenated().to_string()),
                Column::Text(text) => text.map_or_else(null, |text| {
                    let mut escaped = Vec::new();
                    escape_into(&mut escaped, text);
                    String::from_utf8(escaped).unwrap()
                }),
                Column::Int(n) => n.map_or_else(null, |n| n.to_string()),
                Column::BigInt(n) => n.map_or_else(null, |n| n.to_string()),
                Column::Money(m) => m.map_or_else(null, |m| m.stored().to_string()),
                Column::Flag(flag) => (if flag { "t" } else { "f" }).to_string(),
                Column::Time(t) => {
                    let mut text = String::new();
                    push_postgres_text(&mut text, t);
                    text
                }
            })
            .collect();
        fields.join("\t") + "\n"
    }

    /// Every column in its place, each kind of value at its edges: NULLs, text that must be
    /// escaped, the largest and negative numbers, costs to 28 places, times across days,
    /// before 1970, at the ends of four-digit years and in a leap second.
    #[test]
    fn every_row_s_line_is_its_columns() {
        let at = |seconds: i64, nanos: u32| DateTime::from_timestamp(seconds, nanos).unwrap();
        let full = LedgerRow {
            request_id: uuid::Uuid::now_v7(),
            session_id: Some("s\tess\nion\\1\r".into()),
            jsonrpc_id: Some("\\N".into()),
            method: "tools/call".into(),
            tool_name: Some("find_tasks \u{e9}\u{1F600}".into()),
            status: Status::ToolError,
            error_code: Some(i32::MIN),
            error_message: Some("line one\nline two\twith a tab".into()),
            duration: Micros::from_micros(u64::MAX),
            request_bytes: i64::MAX,
            response_bytes: i64::MIN,
            args_tokens: Some(i32::MAX),
            result_tokens: Some(-1),
            total_tokens: Some(0),
            estimated_cost_usd: Some("-7.9228162514264337593543950335".parse().unwrap()),
            pricing_model: Some("model\twith tab".into()),
            tokenizer: Some("o200k_base".into()),
            sanitized: true,
            timestamp: at(1_764_979_199, 999_999_999),
            upstream: Some(UpstreamHop {
                upstream: "git\\hub".into(),
                tool: Some("log".into()),
                duration: Micros::from_micros(7),
            }),
            subject: Some(uuid::Uuid::max()),
            trace: Default::default(),
        };
        let mut rows = vec![LedgerRow::default(), full.clone()];
        let costs = [
            "0.0000000000000000000000000001",
            "0.00000000005",
            "-0.00000000005",
            "79228162514264337593543950335",
            "0.0000186",
            "0.00001860",
            "0",
        ];
        let times = [
            at(1_764_979_200, 0),
            at(1_764_979_200, 1_000_000),
            at(1_764_979_201, 120_000_000),
            at(1_764_979_201, 7),
            at(1_764_979_201, 999),
            at(1_765_065_599, 123_456_789),
            at(-1, 999_999_000),
            at(-86_401, 5_000),
            at(-62_135_596_800, 0),
            at(253_402_300_799, 999_999_999),
            at(253_402_300_800, 0),
            at(-62_135_596_801, 0),
        ];
        for (n, time) in times.into_iter().enumerate() {
            rows.push(LedgerRow {
                request_id: uuid::Uuid::new_v4(),
                estimated_cost_usd: Some(costs[n % costs.len()].parse().unwrap()),
                timestamp: time,
                ..full.clone()
            });
        }
        // A leap second, which chrono keeps as nanoseconds past the second.
        if let Some(leap) = DateTime::from_timestamp(1_483_228_799, 1_500_000_000) {
            rows.push(LedgerRow {
                timestamp: leap,
                ..LedgerRow::default()
            });
        }
        let text = |rows: &[LedgerRow]| String::from_utf8(copy_text(rows)).unwrap();
        let expected: String = rows.iter().map(line_of_columns).collect();
        assert_eq!(text(&rows), expected);
        // One row at a time, so no date is kept from a row before.
        for row in &rows {
            assert_eq!(text(std::slice::from_ref(row)), line_of_columns(row));
        }
        let line = text(std::slice::from_ref(&full));
        assert_eq!(line.matches('\t').count(), 23, "{line}");
        assert!(line.starts_with(&full.request_id.hyphenated().to_string()));
        assert!(line.contains("\ts\\tess\\nion\\\\1\\r\t\\\\N\t"), "{line}");
        assert!(
            line.ends_with("\tffffffff-ffff-ffff-ffff-ffffffffffff\n"),
            "{line}"
        );
    }
}
