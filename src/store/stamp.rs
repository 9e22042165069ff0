//! [`Stamp`]: a ledger row's time as a bound value. PostgreSQL takes it as `timestamptz`;
//! SQLite keeps times as text, and this writes exactly the text sqlx's chrono encoding writes
//! (RFC 3339 with `+00:00`, fractional digits as chrono's `SecondsFormat::AutoSi` picks them),
//! so stored rows still compare with bound `DateTime` values, only without going through
//! `fmt` for every digit (every ledger row binds one). [`serialize`] does the same for the
//! JSON text of a board row's times.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};
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
    match Rfc3339::of(time, b"+00:00")
        .as_ref()
        .and_then(Rfc3339::as_str)
    {
        Some(text) => text.to_owned(),
        None => time.to_rfc3339_opts(SecondsFormat::AutoSi, false),
    }
}

/// `#[serde(serialize_with)]` for a row's time: the text chrono's `Serialize` writes
/// (RFC 3339, `Z`, fractional digits as `SecondsFormat::AutoSi` picks them), written digit by
/// digit. chrono writes it through `fmt`, a call per character, and every listed task
/// carries two to five times.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match Rfc3339::of(*time, b"Z").as_ref().and_then(Rfc3339::as_str) {
        Some(text) => serializer.serialize_str(text),
        None => time.serialize(serializer),
    }
}

/// [`serialize`] for an optional time.
pub fn serialize_opt<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Written<'a>(&'a DateTime<Utc>);
    impl Serialize for Written<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match time {
        Some(time) => serializer.serialize_some(&Written(time)),
        None => serializer.serialize_none(),
    }
}

/// A time's RFC 3339 text in a byte array, each field at its fixed width (no field has more
/// digits): a `String::push` per padding zero and an `itoa` buffer per field cost more than
/// the rest of binding a ledger row's time.
struct Rfc3339 {
    text: [u8; 35],
    len: usize,
}

impl Rfc3339 {
    /// `time` with `offset` after it; `None` for a year outside 0..=9999 or a leap second,
    /// which chrono writes in forms of its own.
    fn of(time: DateTime<Utc>, offset: &[u8]) -> Option<Rfc3339> {
        // Once: each accessor of a `DateTime` converts it to local (here UTC) time again.
        let time = time.naive_utc();
        let (year, nano) = (time.year(), time.nanosecond());
        if !(0..=9999).contains(&year) || nano >= 1_000_000_000 || offset.len() > 6 {
            return None;
        }
        let fraction = match nano {
            0 => None,
            n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
            n if n % 1_000 == 0 => Some((n / 1_000, 6)),
            n => Some((n, 9)),
        };
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
        text[at..at + offset.len()].copy_from_slice(offset);
        at += offset.len();
        Some(Rfc3339 { text, len: at })
    }

    /// The text; only ASCII digits and separators were written, so never `None` in practice
    /// (chrono's own text is the fallback).
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.text.get(..self.len)?).ok()
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
    #[test]
    fn serializes_what_chrono_serializes() {
        #[derive(Serialize)]
        struct Row {
            #[serde(serialize_with = "serialize")]
            at: DateTime<Utc>,
            #[serde(serialize_with = "serialize_opt")]
            until: Option<DateTime<Utc>>,
        }
        #[derive(Serialize)]
        struct ChronoRow {
            at: DateTime<Utc>,
            until: Option<DateTime<Utc>>,
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let mut times = vec![
            DateTime::from_timestamp(-62_135_596_800, 0).unwrap(), // 0001-01-01
            DateTime::from_timestamp(253_402_214_400, 0).unwrap(), // 9999-12-31
            DateTime::from_timestamp(253_402_300_800, 5).unwrap(), // year 10000: chrono's own
            DateTime::from_timestamp(-62_198_755_200, 0).unwrap(), // year -1: chrono's own
            leap,
            Utc::now(),
        ];
        let mut seconds: i64 = 1_764_000_000;
        for step in 0..500i64 {
            seconds = seconds.wrapping_add(step * 86_399 + 3_607);
            for nano in [0, 7, 1_000, 123_000, 5_000_000, 999_999_999, 100_000_001] {
                times.push(DateTime::from_timestamp(seconds, nano).unwrap());
            }
        }
        for t in times {
            for until in [None, Some(t)] {
                let ours = serde_json::to_string(&Row { at: t, until }).unwrap();
                let theirs = serde_json::to_string(&ChronoRow { at: t, until }).unwrap();
                assert_eq!(ours, theirs);
                let value = serde_json::to_value(Row { at: t, until }).unwrap();
                assert_eq!(
                    value,
                    serde_json::to_value(ChronoRow { at: t, until }).unwrap()
                );
            }
        }
    }
}
