//! `GET /api/requests/export`: the request ledger as CSV or JSON lines, streamed page by page
//! (keyset paging), so an export of millions of rows never sits in memory.

use std::borrow::Cow;

use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::requests::{Cursor, RequestFilter, RequestRecord};
use crate::store::{Id, Store};

/// Rows per database page: big enough to amortise a query, small enough to stream steadily.
pub const PAGE_ROWS: i64 = 1000;

/// The export's columns, in order (the CSV header; JSON lines use the same names).
pub const COLUMNS: [&str; 23] = [
    "request_id",
    "timestamp",
    "session_id",
    "jsonrpc_id",
    "method",
    "tool_name",
    "status",
    "error_code",
    "error_message",
    "duration_ms",
    "duration_us",
    "request_bytes",
    "response_bytes",
    "args_tokens",
    "result_tokens",
    "total_tokens",
    "estimated_cost_usd",
    "pricing_model",
    "tokenizer",
    "sanitized",
    "upstream",
    "upstream_tool",
    "upstream_us",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// `csv` or `jsonl` (`ndjson` too); anything else is an error that says what to send.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            other => Err(format!(
                "format {other:?} is not supported: use csv or jsonl"
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    /// `attachment; filename="steward-requests-20250101T120000Z.csv"`.
    pub fn content_disposition(self, at: DateTime<Utc>) -> String {
        let extension = match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        };
        format!(
            "attachment; filename=\"steward-requests-{}.{extension}\"",
            at.format("%Y%m%dT%H%M%SZ")
        )
    }
}

/// Where the stream is between pages.
struct Export {
    store: Store,
    filter: RequestFilter,
    format: Format,
    /// The next page to send, already read (the first one is read before the response starts,
    /// so a database failure is still a clean 500).
    page: Vec<RequestRecord>,
    header_sent: bool,
}

/// The response body: `first` page, then every following page until the filter is exhausted.
/// A database failure mid-way ends the body with an error (the client sees a broken transfer,
/// never a silently short file).
pub fn body(
    store: Store,
    filter: RequestFilter,
    format: Format,
    first: Vec<RequestRecord>,
) -> Body {
    let state = Export {
        store,
        filter,
        format,
        page: first,
        header_sent: false,
    };
    let stream = futures::stream::try_unfold(Some(state), |state| async move {
        let Some(mut state) = state else {
            return Ok(None);
        };
        let page = std::mem::take(&mut state.page);
        let chunk = render(state.format, &page, !state.header_sent)?;
        state.header_sent = true;
        let full = page.len() as i64 == PAGE_ROWS;
        let next = match page.last() {
            Some(last) if full => {
                let after = Cursor {
                    timestamp: last.timestamp,
                    request_id: Id(last.request_id),
                };
                state.page = state
                    .store
                    .export_requests_page(&state.filter, Some(after), PAGE_ROWS)
                    .await
                    .inspect_err(|error| tracing::error!(%error, "request export failed mid-way"))
                    .map_err(std::io::Error::other)?;
                (!state.page.is_empty()).then_some(state)
            }
            _ => None,
        };
        Ok::<_, std::io::Error>(Some((chunk, next)))
    });
    Body::from_stream(stream)
}

/// One page as bytes: CSV rows (after the header, on the first page) or one JSON object a line.
fn render(format: Format, rows: &[RequestRecord], header: bool) -> Result<Bytes, std::io::Error> {
    match format {
        Format::Csv => csv_rows(rows, header),
        Format::Jsonl => {
            let mut out = Vec::with_capacity(rows.len() * 512);
            for row in rows {
                serde_json::to_writer(&mut out, row)?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

fn csv_rows(rows: &[RequestRecord], header: bool) -> Result<Bytes, std::io::Error> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(rows.len() * 256));
    if header {
        writer.write_record(COLUMNS)?;
    }
    for row in rows {
        writer.write_record(csv_record(row).iter().map(|cell| cell.as_bytes()))?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A row's cells in [`COLUMNS`] order. Money is its exact decimal text; empty means null.
fn csv_record(r: &RequestRecord) -> [Cow<'_, str>; 23] {
    fn text(v: Option<&str>) -> Cow<'_, str> {
        v.map_or(Cow::Borrowed(""), spreadsheet_safe)
    }
    let hop = r.upstream.as_ref();
    let number = |v: Option<i64>| Cow::Owned(v.map_or(String::new(), |n| n.to_string()));
    [
        Cow::Owned(r.request_id.to_string()),
        Cow::Owned(r.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true)),
        text(r.session_id.as_deref()),
        text(r.jsonrpc_id.as_deref()),
        spreadsheet_safe(&r.method),
        text(r.tool_name.as_deref()),
        Cow::Borrowed(r.status.as_str()),
        number(r.error_code.map(i64::from)),
        text(r.error_message.as_deref()),
        number(Some(r.duration.millis())),
        number(Some(r.duration.micros())),
        number(Some(r.request_bytes)),
        number(Some(r.response_bytes)),
        number(r.args_tokens.map(i64::from)),
        number(r.result_tokens.map(i64::from)),
        number(r.total_tokens.map(i64::from)),
        Cow::Owned(
            r.estimated_cost_usd
                .map_or(String::new(), |m| m.to_string()),
        ),
        text(r.pricing_model.as_deref()),
        text(r.tokenizer.as_deref()),
        Cow::Borrowed(if r.sanitized { "true" } else { "false" }),
        text(hop.map(|h| h.upstream.as_str())),
        text(hop.and_then(|h| h.tool.as_deref())),
        number(hop.map(|h| h.duration.micros())),
    ]
}

/// Text from clients may start like a spreadsheet formula (`=HYPERLINK(...)`); a leading `'`
/// keeps spreadsheets from evaluating it when someone opens the export (OWASP's advice for
/// CSV injection). Quoting of commas, quotes and newlines is the CSV writer's job.
fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_their_files() {
        assert_eq!(Format::parse("CSV"), Ok(Format::Csv));
        assert_eq!(Format::parse("jsonl"), Ok(Format::Jsonl));
        assert!(Format::parse("xml").unwrap_err().contains("csv or jsonl"));
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Format::Jsonl.content_disposition(at),
            "attachment; filename=\"steward-requests-20250102T030405Z.jsonl\""
        );
    }

    #[test]
    fn formulas_are_defused_and_plain_text_is_untouched() {
        assert_eq!(spreadsheet_safe("=1+1"), "'=1+1");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("a,\"b\"\nc"), "a,\"b\"\nc");
    }
}
