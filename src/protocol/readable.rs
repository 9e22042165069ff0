//! Whether serde_json can read every value of a body, not only its shape. The envelope keeps
//! values as raw JSON, and serde_json skips over raw values without reading them, so a string
//! with half a surrogate pair (`"\udfff"`) or a number past `f64` (`1e999`) passes; rmcp reads
//! them, refuses the body and answers 415. Reading each value once, without building a tree,
//! makes the gate refuse them as the parse errors they are. The gate's one walk over the body
//! before any parse ([`scan`]) tells whether a body can hold such a value at all; most cannot,
//! and are not read a second time.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Nesting from which serde_json's recursion limit (128) could refuse what skipping accepts.
const DEEP: usize = 100;
/// Digits in a row from which a number could exceed `f64` (its largest has 309 before the
/// point); serde_json reads a shorter one without error.
const LONG_NUMBER: usize = 300;

/// What one walk over a body's bytes found, before any parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The depth at which the body first nests deeper than the limit, if it does.
    pub too_deep: Option<usize>,
    /// Whether [`check`] could refuse the body once its shape has parsed. Skipping a value
    /// (serde_json's `RawValue` and `IgnoredAny`) checks all of JSON but three things: a
    /// `\u` escape (a lone surrogate), a number's range (an exponent, or very many digits)
    /// and serde_json's recursion limit. A body with none of them reads as its shape does.
    pub values_need_reading: bool,
}

/// Walks `body` once: how deep it nests (counting `[` and `{` outside strings; a hostile body
/// cannot exhaust the stack of a recursive parser here) and whether its values need reading
/// (see [`Scan::values_need_reading`]). It stops at the first level past `max_depth`.
pub fn scan(body: &[u8], max_depth: usize) -> Scan {
    let mut depth = 0usize;
    let mut needed = false;
    let mut digits = 0usize;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => {
                let (end, escaped_unicode) = string_end(body, at);
                at = end;
                needed |= escaped_unicode;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Scan {
                        too_deep: Some(depth),
                        values_need_reading: true,
                    };
                }
                needed |= depth >= DEEP;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'0'..=b'9' => {
                digits += 1;
                needed |= digits >= LONG_NUMBER;
                continue;
            }
            // An exponent follows a digit; the `e`s of `true` and `false` do not.
            b'e' | b'E' => needed |= digits > 0,
            _ => {}
        }
        digits = 0;
    }
    Scan {
        too_deep: None,
        values_need_reading: needed,
    }
}

/// Where the string whose text starts at `at` ends (past its closing quote, or the body's
/// end when it has none), and whether it holds a `\u` escape. The byte after a backslash
/// never ends it.
fn string_end(body: &[u8], mut at: usize) -> (usize, bool) {
    let mut escaped_unicode = false;
    loop {
        let rest = body.get(at..).unwrap_or_default();
        let Some(found) = memchr::memchr2(b'"', b'\\', rest) else {
            return (body.len(), escaped_unicode);
        };
        at += found;
        if body[at] == b'"' {
            return (at + 1, escaped_unicode);
        }
        escaped_unicode |= body.get(at + 1) == Some(&b'u');
        at += 2;
    }
}

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

    /// The depth a byte at a time, as the gate counted it before the scan skipped strings.
    fn depth_byte_by_byte(body: &[u8], max: usize) -> Option<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &byte in body {
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > max {
                        return Some(depth);
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        None
    }

    /// Bodies made of pieces that break parsers and scanners, from a fixed seed.
    fn corpus() -> Vec<String> {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\",
            "\\\"",
            ":",
            ",",
            "\"a\"",
            "\"[{\"",
            "\\u0041",
            "\\ud800",
            "\\udfff",
            "\\ud83d\\ude00",
            "\\n",
            "\\x",
            "\u{1}",
            "\u{e9}",
            "0",
            "-0",
            "12",
            "1.5",
            "1e5",
            "1E+2",
            "-1e-999",
            "1e999",
            "1.",
            "01",
            "true",
            "false",
            "null",
            "tru",
            " ",
            "\n",
            "18446744073709551616",
            "\"e\"",
            "e",
            "E",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let mut bodies: Vec<String> = (0..20_000)
            .map(|_| {
                let pieces = 1 + next(12);
                (0..pieces).map(|_| PIECES[next(PIECES.len())]).collect()
            })
            .collect();
        // Well-formed ones too, each value in an object and an array.
        for piece in PIECES {
            bodies.push(format!(r#"{{"k":{piece},"l":[{piece}]}}"#));
            bodies.push(format!(r#"{{"k":"{piece}"}}"#));
        }
        bodies.push(format!("[{}]", "9".repeat(LONG_NUMBER - 1)));
        bodies.push(format!("[{}]", "9".repeat(309)));
        bodies.push(format!("[1.{}]", "9".repeat(400)));
        bodies.push(format!("{}{}", "[".repeat(130), "]".repeat(130)));
        bodies.push(format!("{}{}", "[".repeat(DEEP - 1), "]".repeat(DEEP - 1)));
        bodies.push("\"\\".into());
        bodies
    }

    #[test]
    fn the_scan_counts_depth_as_a_byte_walk_does() {
        for body in corpus() {
            for max in [0, 1, 2, 3, 64, 200] {
                let scan = scan(body.as_bytes(), max);
                let expected = depth_byte_by_byte(body.as_bytes(), max);
                assert_eq!(scan.too_deep, expected, "{body:?} at {max}");
            }
        }
        assert_eq!(scan(b"[[[]]]", 3).too_deep, None);
        assert_eq!(scan(b"[[[[]]]]", 3).too_deep, Some(4));
        assert_eq!(scan(br#"{"a":"[[[[[[\"[[["}"#, 2).too_deep, None);
        assert_eq!(scan(br#"["\"#, 0).too_deep, Some(1));
    }

    /// A body whose shape parses (as the envelope parses it: every value skipped) and that the
    /// scan passes is read without error by `Value`; the scan flags every body `check` refuses.
    #[test]
    fn a_body_the_scan_passes_reads_as_its_shape_does() {
        let mut passed = 0;
        let mut flagged = 0;
        for body in corpus() {
            let shape = serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok();
            if !shape {
                continue;
            }
            let read = check(&body).is_ok();
            assert_eq!(
                read,
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{body:?}"
            );
            let scan = scan(body.as_bytes(), 1_000);
            if scan.values_need_reading {
                flagged += 1;
            } else {
                passed += 1;
                assert!(read, "the scan passed a body that does not read: {body:?}");
            }
        }
        assert!(
            passed > 100 && flagged > 100,
            "{passed} passed, {flagged} flagged"
        );
        for refused in [
            r#"{"a":"\udfff"}"#,
            r#"{"\ud800":1}"#,
            "[1e999]",
            "[-1E400]",
            &format!("[{}]", "9".repeat(309)),
            &format!("{}{}", "[".repeat(130), "]".repeat(130)),
        ] {
            assert!(check(refused).is_err(), "{refused}");
            assert!(
                scan(refused.as_bytes(), 1_000).values_need_reading,
                "{refused}"
            );
        }
        for plain in [
            r#"{"a":[true,false,null,-0,1.5,"e\"\\\n"],"e":{}}"#,
            &format!("[{}]", "9".repeat(LONG_NUMBER - 1)),
        ] {
            assert!(
                !scan(plain.as_bytes(), 1_000).values_need_reading,
                "{plain}"
            );
        }
    }
}
