//! PostgreSQL's `COPY ... FROM STDIN` for fresh ledger rows: the ledger's hottest write, and
//! the form PostgreSQL loads rows with least work (one command, no per-row parameters to
//! bind, rows inserted in bulk). SQLite has no `COPY`; it keeps multi-row `INSERT`s.
//!
//! The rows go in `COPY`'s binary format, each value encoded exactly as sqlx binds it in an
//! `INSERT`: the backend then receives a time, an id or a cost as the integers it stores
//! instead of parsing their text (`timestamptz_in`, `uuid_in` and `numeric_in` were a fifth of
//! the backend's `COPY` time a row), and nothing needs escaping on either side.
//!
//! `COPY` cannot skip a row whose id is already stored, so it serves only rows never offered to
//! the database before. A duplicate all the same fails the whole command (and its transaction)
//! as a unique violation, which the writer treats like any row it cannot store in a batch: it
//! stores the rows one at a time with `INSERT ... ON CONFLICT DO NOTHING`, so the duplicate is
//! skipped and the rest land once.

use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArgumentBuffer;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::store::Id;
use crate::store::request_columns::{COLUMN_COUNT, Column, column_list};
use crate::store::request_row::LedgerRow;
use crate::store::stamp::Stamp;

/// The `COPY` statement; columns in the order [`copy_binary`] writes them.
fn copy_statement() -> String {
    format!(
        "COPY mcp_requests ({}) FROM STDIN (FORMAT binary)",
        column_list()
    )
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
        // Encoded before the command starts: a value sqlx cannot encode (a time past
        // PostgreSQL's range) fails the batch as the INSERT's binding would, with no COPY to end.
        let data = copy_binary(rows).map_err(sqlx::Error::Encode)?;
        let mut copy = self.copy_in_raw(&copy_statement()).await?;
        if let Err(error) = copy.send(data).await {
            // Ends the COPY (and with it this attempt) so the connection stays usable.
            if let Err(abort) = copy.abort(error.to_string()).await {
                tracing::debug!(%abort, "ending a failed ledger COPY");
            }
            return Err(error);
        }
        copy.finish().await.map(Some)
    }
}

/// The binary format's signature, flags (none) and header extension length (none).
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count that ends the data instead of starting a row.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();
/// A row's field count.
const FIELDS: [u8; 2] = (COLUMN_COUNT as i16).to_be_bytes();
/// A NULL field's length.
const NULL: [u8; 4] = (-1i32).to_be_bytes();

/// The rows in `COPY`'s binary format: per row the field count, then each column's length
/// and bytes (length -1 for NULL), in [`LedgerRow::columns`]'s order; each value encoded by
/// the same sqlx `Encode` an `INSERT` binds it with.
fn copy_binary(rows: &[LedgerRow]) -> Result<Vec<u8>, BoxDynError> {
    // Room for an ordinary row (~280 bytes), so the data is not regrown and copied as it fills.
    let mut out = CopyBinary(PgArgumentBuffer::default());
    out.0
        .reserve(HEADER.len() + rows.len() * 320 + TRAILER.len());
    out.0.extend_from_slice(HEADER);
    for row in rows {
        out.row(row)?;
    }
    out.0.extend_from_slice(&TRAILER);
    Ok(std::mem::take(&mut *out.0))
}

/// `COPY` binary data being written into sqlx's own argument buffer, so every value is
/// encoded by the `Encode` that binds it elsewhere.
struct CopyBinary(PgArgumentBuffer);

impl CopyBinary {
    /// One row: [`LedgerRow::columns`]' values in its order, each encoded as the `INSERT`
    /// binds it (`row_arguments!`'s match), so the column order has one definition.
    fn row(&mut self, row: &LedgerRow) -> Result<(), BoxDynError> {
        self.0.extend_from_slice(&FIELDS);
        for (_, value) in row.columns() {
            match value {
                Column::Id(v) => self.value(v.map(Id)),
                Column::Text(v) => self.value(v),
                Column::Int(v) => self.value(v),
                Column::BigInt(v) => self.value(v),
                Column::Money(v) => self.value(v),
                Column::Flag(v) => self.value(Some(v)),
                Column::Time(v) => self.value(Some(Stamp(v))),
            }?;
        }
        Ok(())
    }

    /// One field: its length, then the value as sqlx encodes it; `None` (or a value that
    /// encodes as NULL) is the length -1 alone.
    fn value<'q, T: Encode<'q, Postgres>>(&mut self, value: Option<T>) -> Result<(), BoxDynError> {
        let at = self.0.len();
        self.0.extend_from_slice(&NULL);
        let Some(value) = value else {
            return Ok(());
        };
        if let IsNull::No = value.encode_by_ref(&mut self.0)? {
            let length = i32::try_from(self.0.len() - at - NULL.len())?;
            self.0[at..at + NULL.len()].copy_from_slice(&length.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::request_row::{Micros, Status, UpstreamHop};
    use chrono::DateTime;

    /// The data of `rows` written from each row's fields one by one, in the table's column
    /// order, apart from [`LedgerRow::columns`]: a column that list left out, put in another
    /// place or gave another field's value shows as other bytes.
    fn data_of_fields(rows: &[LedgerRow]) -> Vec<u8> {
        let mut out = CopyBinary(PgArgumentBuffer::default());
        out.0.extend_from_slice(HEADER);
        for row in rows {
            let hop = row.upstream.as_ref();
            out.0.extend_from_slice(&FIELDS);
            let value = |result: Result<(), BoxDynError>| result.unwrap();
            value(out.value(Some(Id(row.request_id))));
            value(out.value(row.session_id.as_deref()));
            value(out.value(row.jsonrpc_id.as_deref()));
            value(out.value(Some(row.method.as_str())));
            value(out.value(row.tool_name.as_deref()));
            value(out.value(Some(row.status.as_str())));
            value(out.value(row.error_code));
            value(out.value(row.error_message.as_deref()));
            value(out.value(Some(row.duration.millis())));
            value(out.value(Some(row.duration.micros())));
            value(out.value(Some(row.request_bytes)));
            value(out.value(Some(row.response_bytes)));
            value(out.value(row.args_tokens));
            value(out.value(row.result_tokens));
            value(out.value(row.total_tokens));
            value(out.value(row.estimated_cost_usd));
            value(out.value(row.pricing_model.as_deref()));
            value(out.value(row.tokenizer.as_deref()));
            value(out.value(Some(row.sanitized)));
            value(out.value(Some(Stamp(row.timestamp))));
            value(out.value(hop.map(|h| h.upstream.as_str())));
            value(out.value(hop.and_then(|h| h.tool.as_deref())));
            value(out.value(hop.map(|h| h.duration.micros())));
            value(out.value(row.subject.map(Id)));
        }
        out.0.extend_from_slice(&TRAILER);
        std::mem::take(&mut *out.0)
    }

    /// Every column in its place, each kind of value at its edges: NULLs, text COPY's text
    /// format would escape, the largest and negative numbers, costs to 28 places, times
    /// across days, before 1970 and 2000, in a leap second.
    #[test]
    fn every_row_s_fields_are_its_columns_as_bound() {
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
            at(1_764_979_201, 7),
            at(1_765_065_599, 123_456_789),
            at(946_684_799, 999_999_999),
            at(-1, 999_999_000),
            at(-62_135_596_800, 0),
        ];
        for (n, time) in times.into_iter().enumerate() {
            rows.push(LedgerRow {
                request_id: uuid::Uuid::new_v4(),
                estimated_cost_usd: Some(costs[n % costs.len()].parse().unwrap()),
                timestamp: time,
                ..full.clone()
            });
        }
        if let Some(leap) = DateTime::from_timestamp(1_483_228_799, 1_500_000_000) {
            rows.push(LedgerRow {
                timestamp: leap,
                ..LedgerRow::default()
            });
        }
        assert_eq!(copy_binary(&rows).unwrap(), data_of_fields(&rows));
        for row in &rows {
            let one = std::slice::from_ref(row);
            assert_eq!(copy_binary(one).unwrap(), data_of_fields(one));
        }
    }

    /// The framing PostgreSQL reads: the signature, each row's field count and each field's
    /// length (-1 for NULL) before its bytes, the -1 that ends the data.
    #[test]
    fn rows_are_framed_as_copy_binary_reads_them() {
        let row = LedgerRow {
            request_id: uuid::Uuid::max(),
            method: "tools/call".into(),
            error_code: Some(-2),
            ..LedgerRow::default()
        };
        let data = copy_binary(&[row.clone(), row]).unwrap();
        assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(data.ends_with(&[0xff, 0xff]));
        let mut at = HEADER.len();
        let mut take = |n: usize| {
            at += n;
            &data[at - n..at]
        };
        let mut fields = Vec::new();
        for _ in 0..2 {
            assert_eq!(take(2), [0, 24]);
            let mut row = Vec::new();
            for _ in 0..COLUMN_COUNT {
                let length = i32::from_be_bytes(take(4).try_into().unwrap());
                row.push(usize::try_from(length).map(|n| take(n).to_vec()).ok());
            }
            fields.push(row);
        }
        assert_eq!(take(2), [0xff, 0xff]);
        assert_eq!(fields[0], fields[1]);
        let row = &fields[0];
        assert_eq!(row[0].as_deref(), Some(&[0xff; 16][..]));
        assert_eq!(row[1], None);
        assert_eq!(row[3].as_deref(), Some(&b"tools/call"[..]));
        assert_eq!(row[6].as_deref(), Some(&(-2i32).to_be_bytes()[..]));
        assert_eq!(row[9].as_deref(), Some(&0i64.to_be_bytes()[..]));
        assert_eq!(row[18].as_deref(), Some(&[0][..]));
        assert_eq!(row[23], None);
    }
}
