//! [`Stamp`]: a ledger row's time as a bound value. PostgreSQL takes it as `timestamptz`;
//! SQLite keeps times as text, and this writes exactly the text sqlx's chrono encoding writes
//! (RFC 3339 with `+00:00`, fractional digits as chrono's `SecondsFormat::AutoSi` picks them),
//! so stored rows still compare with bound `DateTime` values, only without going through
//! `fmt` for every digit (every ledger row binds one).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use sqlx::{Postgres, Sqlite};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp(pub DateTime<Utc>);

stored_as!(Stamp, Sqlite, DateTime<Utc>);
encoded_as!(Stamp, Sqlite, String, |stamp| sqlite_text(stamp.0));

stored_as!(Stamp, Postgres, DateTime<Utc>);
encoded_as!(Stamp, Postgres, DateTime<Utc>, |stamp| stamp.0);

/// `time` as sqlx stores a `DateTime<Utc>` in SQLite:
/// `to_rfc3339_opts(SecondsFormat::AutoSi, false)`, written digit by digit. Years outside
/// 0..=9999 and leap seconds (which `Utc::now` does not produce) are left to chrono.
pub fn sqlite_text(time: DateTime<Utc>) -> String {
    // Once: each accessor of a `DateTime` converts it to local (here UTC) time again.
    let time = time.naive_utc();
    let (year, nano) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return time.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, false);
    }
    let fraction = match nano {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    // Written into a byte array, each field at its fixed width (no field has more digits):
    // a `String::push` per padding zero and an `itoa` buffer per field cost more than the
    // rest of binding a ledger row's time.
    let mut text = [0u8; 35];
    let mut at = 0;
    let mut put = |separator: &[u8], value: u32, width: usize| {
        text[at..at + separator.len()].copy_from_slice(separator);
        at += separator.len();
        let mut value = value;
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        at += width;
    };
    put(b"", year as u32, 4);
    put(b"-", time.month(), 2);
    put(b"-", time.day(), 2);
    put(b"T", time.hour(), 2);
    put(b":", time.minute(), 2);
    put(b":", time.second(), 2);
    if let Some((value, width)) = fraction {
        put(b".", value, width);
    }
    text[at..at + 6].copy_from_slice(b"+00:00");
    at += 6;
    // Only ASCII was written; chrono's own text is the (unreachable) fallback.
    match std::str::from_utf8(&text[..at]) {
        Ok(written) => written.to_owned(),
        Err(_) => time.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_chrono_writes() {
        let chrono = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
        let mut seconds: i64 = 1_764_000_000;
        let nanos = [
            0,
            7,
            1_000,
            123_000,
            5_000_000,
            120_000_000,
            999_999_999,
            100_000_001,
        ];
        for step in 0..2_000i64 {
            // Across days, months, years and leap days.
            seconds = seconds.wrapping_add(step * 86_399 + 3_607);
            for nano in nanos {
                let t = DateTime::from_timestamp(seconds, nano).unwrap();
                assert_eq!(sqlite_text(t), chrono(t), "{seconds}.{nano}");
            }
        }
        for t in [
            DateTime::from_timestamp(-62_135_596_800, 0).unwrap(), // 0001-01-01
            DateTime::from_timestamp(253_402_214_400, 0).unwrap(), // 9999-12-31
            DateTime::from_timestamp(253_402_300_800, 5).unwrap(), // year 10000: chrono's own
            Utc::now(),
        ] {
            assert_eq!(sqlite_text(t), chrono(t));
        }
    }
}
