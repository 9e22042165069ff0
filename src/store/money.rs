//! [`Money`]: an exact decimal amount of US dollars. Stored as `NUMERIC(20, 10)` on PostgreSQL
//! and as the decimal's canonical text on SQLite (which has no decimal type); serialised to
//! JSON as a string (`"0.000123"`). It never passes through a float.

use std::borrow::Cow;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::{Postgres, Sqlite};

/// An exact amount of US dollars.
///
/// Equality, ordering and hashing are by value (`0.10 == 0.1`). Text forms (`Display`, JSON,
/// SQLite) are normalised: no trailing zeros, so `0.0030000000` from PostgreSQL prints as
/// `0.003` on both engines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Money(pub Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Decimal places kept in the database: the scale of the PostgreSQL columns
    /// (`NUMERIC(20, 10)`). Both engines round a stored value to this many places, half away
    /// from zero (as PostgreSQL does), so the engines never disagree.
    pub const STORED_SCALE: u32 = 10;

    /// The value as it will be stored: rounded to [`Money::STORED_SCALE`] places, normalised.
    pub fn stored(self) -> Money {
        Money(
            self.0
                .round_dp_with_strategy(Self::STORED_SCALE, RoundingStrategy::MidpointAwayFromZero)
                .normalize(),
        )
    }
}

impl Money {
    /// The decimal as `Display` writes it (`-0.0025`, `12`), from its integer mantissa and
    /// scale: every ledger row stores one, and `Display` goes through `fmt` for it.
    pub(crate) fn plain_text(self) -> String {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(self.0.mantissa().unsigned_abs());
        let scale = self.0.scale() as usize;
        let mut text = String::with_capacity(digits.len() + scale + 3);
        if self.0.is_sign_negative() {
            text.push('-');
        }
        match digits.len().checked_sub(scale) {
            _ if scale == 0 => text.push_str(digits),
            Some(whole) if whole > 0 => {
                text.push_str(&digits[..whole]);
                text.push('.');
                text.push_str(&digits[whole..]);
            }
            _ => {
                text.push_str("0.");
                text.extend(std::iter::repeat_n('0', scale - digits.len()));
                text.push_str(digits);
            }
        }
        text
    }
}

impl From<Decimal> for Money {
    fn from(d: Decimal) -> Self {
        Money(d)
    }
}

impl From<Money> for Decimal {
    fn from(m: Money) -> Self {
        m.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

/// Parses plain decimal text (`"0.000123"`, `"-1"`, `"12"`). Input with more digits than a
/// `Decimal` holds is an error, never silently rounded.
impl FromStr for Money {
    type Err = rust_decimal::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::from_str_exact(s.trim()).map(Money)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a decimal string, or a JSON integer. A JSON float is refused: it may already have
/// lost the exact value.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;

        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount as a string, e.g. \"0.000123\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse()
                    .map_err(|e| E::custom(format_args!("invalid amount {v:?}: {e}")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }
        }

        deserializer.deserialize_any(MoneyVisitor)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
            "description": "An exact decimal amount of US dollars, as a string",
        })
    }
}

stored_as!(Money, Sqlite, String);
encoded_as!(Money, Sqlite, String, |money| money.stored().plain_text());
decoded_from!(Money, Sqlite, &str, |text| {
    text.parse::<Money>()
        .map_err(|e| format!("invalid stored amount {text:?}: {e}").into())
});

stored_as!(Money, Postgres, Decimal);
encoded_as!(Money, Postgres, Decimal, |money| money.stored().0);
decoded_from!(Money, Postgres, Decimal, |d| Ok(Money(d.normalize())));

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn json_is_a_normalised_string() {
        assert_eq!(
            serde_json::to_string(&m("0.000123")).unwrap(),
            "\"0.000123\""
        );
        assert_eq!(
            serde_json::to_string(&m("0.0030000000")).unwrap(),
            "\"0.003\""
        );
        assert_eq!(serde_json::to_string(&Money::ZERO).unwrap(), "\"0\"");
        let back: Money = serde_json::from_str("\"12345.6789012345\"").unwrap();
        assert_eq!(back, m("12345.6789012345"));
        let int: Money = serde_json::from_str("3").unwrap();
        assert_eq!(int, m("3"));
        assert!(serde_json::from_str::<Money>("0.1").is_err());
        assert!(serde_json::from_str::<Money>("\"abc\"").is_err());
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(m("0.10"), m("0.1"));
        assert_eq!(m("0.1").to_string(), "0.1");
        assert!(m("0.2") > m("0.19"));
        assert_eq!([m("0.1"), m("0.2")].iter().sum::<Money>(), m("0.3"));
    }

    #[test]
    fn plain_text_is_what_display_writes() {
        let mut values: Vec<Decimal> = [
            "0",
            "-0",
            "12",
            "-12",
            "0.003",
            "-0.0025",
            "1.5",
            "100.25",
            "0.0000000001",
            "79228162514643.264337593543950335",
            "-1e-10",
            "123456789.0123456789",
        ]
        .iter()
        .map(|s| Decimal::from_scientific(s).or_else(|_| s.parse()).unwrap())
        .collect();
        let rate = Decimal::from_str("0.00125").unwrap();
        values.extend(
            (0..2_000u32).map(|tokens| Decimal::from(tokens * 37) * rate / Decimal::ONE_THOUSAND),
        );
        for value in values {
            for money in [Money(value), Money(value).stored()] {
                assert_eq!(money.plain_text(), money.0.to_string(), "{value:?}");
            }
        }
    }

    #[test]
    fn stored_rounds_to_the_column_scale_like_postgres() {
        assert_eq!(m("0.00000000005").stored().to_string(), "0.0000000001");
        assert_eq!(m("0.00000000004").stored().to_string(), "0");
        assert_eq!(m("-0.00000000005").stored().to_string(), "-0.0000000001");
        assert_eq!(
            m("12345.6789012345").stored().to_string(),
            "12345.6789012345"
        );
    }

    #[test]
    fn parse_refuses_what_it_would_round() {
        assert!("0.12345678901234567890123456789".parse::<Money>().is_err());
        assert!("1e-3".parse::<Money>().is_err());
    }
}
