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

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use crate::store::Money;
use crate::store::request_columns::{COLUMN_COUNT, Column, column_list};
use crate::store::request_row::LedgerRow;

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
/// and bytes (length -1 for NULL), in [`LedgerRow::columns`]'s order; each value the bytes
/// sqlx's `Encode` binds it as in an `INSERT` (the tests hold the two to each other).
fn copy_binary(rows: &[LedgerRow]) -> Result<Vec<u8>, BoxDynError> {
    // Room for an ordinary row (~280 bytes), so the data is not regrown and copied as it fills.
    let mut out = CopyBinary(Vec::with_capacity(
        HEADER.len() + rows.len() * 320 + TRAILER.len(),
    ));
    out.0.extend_from_slice(HEADER);
    for row in rows {
        out.row(row)?;
    }
    out.0.extend_from_slice(&TRAILER);
    Ok(out.0)
}

/// `COPY` binary data being written. Each value is written as its own bytes after its length,
/// not through sqlx's `Encode` into its argument buffer: that way wrote a placeholder length
/// and patched it, checked a `Result` per field and built a cost's digits in a `Vec`, ~2.8 k
/// instructions a row (BENCHMARKS.md, branch `row38`).
struct CopyBinary(Vec<u8>);

impl CopyBinary {
    /// One row: [`LedgerRow::columns`]' values in its order, so the column order has one
    /// definition.
    fn row(&mut self, row: &LedgerRow) -> Result<(), BoxDynError> {
        self.0.extend_from_slice(&FIELDS);
        for (_, value) in row.columns() {
            match value {
                Column::Id(v) => self.field(v.as_ref().map(Uuid::as_bytes)),
                Column::Text(v) => self.field(v),
                Column::Int(v) => self.field(v.map(i32::to_be_bytes)),
                Column::BigInt(v) => self.field(v.map(i64::to_be_bytes)),
                Column::Money(None) => self.field(None::<&[u8]>),
                Column::Money(Some(v)) => self.numeric(v),
                Column::Flag(v) => self.field(Some([u8::from(v)])),
                Column::Time(v) => self.field(Some(pg_micros(v)?.to_be_bytes())),
            }?;
        }
        Ok(())
    }

    /// One field: its length, then its bytes; `None` is the length -1 alone.
    fn field(&mut self, value: Option<impl AsRef<[u8]>>) -> Result<(), BoxDynError> {
        let Some(value) = value else {
            self.0.extend_from_slice(&NULL);
            return Ok(());
        };
        let value = value.as_ref();
        self.0
            .extend_from_slice(&i32::try_from(value.len())?.to_be_bytes());
        self.0.extend_from_slice(value);
        Ok(())
    }

    /// A cost as sqlx binds a `NUMERIC` (its `Decimal` as a `PgNumeric`): the stored value's
    /// digits in base 10,000, most significant first, trailing zero digits left out, after
    /// their count, the weight of the first, the sign and the decimal scale.
    fn numeric(&mut self, money: Money) -> Result<(), BoxDynError> {
        let value = money.stored().0;
        // A decimal's mantissa has at most 29 decimal digits: 8 base-10,000 digits, with
        // the scale made a multiple of 4.
        let mut digits = [0i16; 8];
        let mut count = 0;
        let (mut weight, mut scale, mut sign) = (0i16, 0u16, 0u16);
        if !value.is_zero() {
            scale = value.scale() as u16;
            let mut mantissa = value.mantissa().unsigned_abs();
            if scale % 4 > 0 {
                mantissa *= 10u128.pow(4 - u32::from(scale % 4));
            }
            count = base_10000(mantissa, &mut digits)?;
            weight = count as i16 - scale.div_ceil(4) as i16 - 1;
            while count > 0 && digits[count - 1] == 0 {
                count -= 1;
            }
            sign = if value.is_sign_negative() { 0x4000 } else { 0 };
        }
        let length = 8 + 2 * count as i32;
        self.0.extend_from_slice(&length.to_be_bytes());
        for word in [count as i16, weight, sign as i16, scale as i16] {
            self.0.extend_from_slice(&word.to_be_bytes());
        }
        for digit in &digits[..count] {
            self.0.extend_from_slice(&digit.to_be_bytes());
        }
        Ok(())
    }
}

/// `mantissa`'s digits in base 10,000 into `digits`, most significant first; how many. A
/// cost's mantissa nearly always fits 64 bits, where dividing by 10,000 is a multiplication.
fn base_10000(mantissa: u128, digits: &mut [i16; 8]) -> Result<usize, BoxDynError> {
    let mut reversed = [0i16; 8];
    let mut count = 0;
    let mut push = |digit: u64| -> Result<(), BoxDynError> {
        let slot = reversed
            .get_mut(count)
            .ok_or("a NUMERIC of over 32 digits")?;
        *slot = digit as i16;
        count += 1;
        Ok(())
    };
    let mut wide = mantissa;
    while wide > u128::from(u64::MAX) {
        push((wide % 10_000) as u64)?;
        wide /= 10_000;
    }
    let mut narrow = wide as u64;
    while narrow != 0 {
        push(narrow % 10_000)?;
        narrow /= 10_000;
    }
    for (slot, digit) in digits.iter_mut().zip(reversed[..count].iter().rev()) {
        *slot = *digit;
    }
    Ok(count)
}

/// A time as sqlx binds a `timestamptz`: microseconds since 2000-01-01 UTC, cut toward
/// zero. A time after 2000 and not in a leap second (every `Utc::now`) is worked out from its
/// seconds and nanoseconds; any other goes through chrono's subtraction, as sqlx does it.
fn pg_micros(time: DateTime<Utc>) -> Result<i64, BoxDynError> {
    const SINCE_1970: i64 = 946_684_800;
    let (seconds, nanos) = (time.timestamp(), time.timestamp_subsec_nanos());
    let fast = (seconds >= SINCE_1970 && nanos < 1_000_000_000)
        .then(|| (seconds - SINCE_1970).checked_mul(1_000_000))
        .flatten()
        .and_then(|micros| micros.checked_add(i64::from(nanos / 1000)));
    if let Some(micros) = fast {
        return Ok(micros);
    }
    let epoch = DateTime::<Utc>::from_timestamp(SINCE_1970, 0).ok_or("the year 2000")?;
    let micros = time.naive_utc().signed_duration_since(epoch.naive_utc());
    Ok(micros
        .num_microseconds()
        .ok_or_else(|| format!("a time out of PostgreSQL's range: {time:?}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Id;
    use crate::store::request_row::{Micros, Status, UpstreamHop};
    use crate::store::stamp::Stamp;
    use sqlx::encode::{Encode, IsNull};
    use sqlx::postgres::PgArgumentBuffer;

    /// `COPY` data written through sqlx's own `Encode` into its argument buffer: the bytes an
    /// `INSERT` binds, which [`CopyBinary`] must write.
    struct Bound(PgArgumentBuffer);

    impl Bound {
        /// One field: its length, then the value as sqlx encodes it; `None` (or a value that
        /// encodes as NULL) is the length -1 alone.
        fn value<'q, T: Encode<'q, Postgres>>(
            &mut self,
            value: Option<T>,
        ) -> Result<(), BoxDynError> {
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

    /// The data of `rows` written from each row's fields one by one, in the table's column
    /// order, apart from [`LedgerRow::columns`], each value through sqlx's `Encode`: a column
    /// that list left out, put in another place or gave another field's value, or a value
    /// written otherwise than sqlx binds it, shows as other bytes.
    fn data_of_fields(rows: &[LedgerRow]) -> Vec<u8> {
        let mut out = Bound(PgArgumentBuffer::default());
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
            "-0.0000",
            "1",
            "10000",
            "100000000.0001",
            "0.0001",
            "-123.45",
            "12345.6789012345",
            "18446744073709551615.5",
            "184467440737095516.155",
        ];
        let times = [
            at(1_764_979_200, 0),
            at(1_764_979_201, 7),
            at(1_765_065_599, 123_456_789),
            at(946_684_800, 0),
            at(946_684_800, 999),
            at(946_684_799, 999_999_999),
            at(946_684_799, 999_999_500),
            at(-1, 999_999_000),
            at(-1, 999_999_500),
            at(-62_135_596_800, 0),
            at(8_210_266_876_799, 999_999_999),
        ];
        for (n, cost) in costs.into_iter().enumerate() {
            rows.push(LedgerRow {
                request_id: uuid::Uuid::new_v4(),
                estimated_cost_usd: Some(cost.parse().unwrap()),
                timestamp: times[n % times.len()],
                ..full.clone()
            });
        }
        for time in times {
            rows.push(LedgerRow {
                request_id: uuid::Uuid::new_v4(),
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
