//! Whether serde_json can read every value of a body, not only its shape. The envelope keeps
//! values as raw JSON, and serde_json skips over raw values without reading them, so a string
//! with half a surrogate pair (`"\udfff"`) or a number past `f64` (`1e999`) passes; rmcp reads
//! them, refuses the body and answers 415. Reading each value once, without building a tree,
//! makes the gate refuse them as the parse errors they are.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Reads every value of `json` as rmcp's `serde_json::Value` would, keeping none of them.
pub fn check(json: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Readable>(json).map(|_| ())
}

struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Readable, A::Error> {
        while items.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Readable, A::Error> {
        while members.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_serde_json_values_do() {
        for json in [
            r#"{"a":"\ud83d\ude00","b":[1,-2,1.5e300,18446744073709551616],"c":null}"#,
            r#"{"a":"\u00e9\\udfff","\"":true}"#,
            r#"{"a":"x\udfff"}"#,
            r#"{"a":"\ud83d"}"#,
            r#"{"a":"\ud83d\u0041"}"#,
            r#"{"\udc00":1}"#,
            r#"{"a":[1e999]}"#,
            r#"[{"a":-1e400}]"#,
        ] {
            let value = serde_json::from_str::<serde_json::Value>(json).map(|_| ());
            assert_eq!(check(json).is_ok(), value.is_ok(), "{json}");
        }
        let error = check(r#"{"a":"x\udfff"}"#).unwrap_err().to_string();
        assert!(error.contains("surrogate"), "{error}");
    }
}
