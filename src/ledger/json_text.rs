//! A tool result's text blocks found in the bytes rmcp writes, without serde, and a JSON
//! string's text decoded. A tool's text is often JSON itself, an escaped quote every few bytes,
//! and serde_json's read of a result (to find where each block's text ends) stops at every
//! escape; the request path reads each result too, only to find its text too long to count
//! there (BENCHMARKS.md, session 29). Here the bytes are read eight at a time, and only a result
//! laid out exactly as rmcp lays one out is read this way: any other is left to serde, so what
//! this reads is what serde would.

use super::swar::{self, splat};

/// What the ledger reads of a tool result: each text block's text as raw JSON (quotes and
/// escapes included), the result's `isError` and `resultType` as raw JSON, and its
/// `structuredContent` (never present in a result read here). `decoded`: the blocks' texts
/// decoded and joined by line ends, when they were decoded while being read (see
/// [`laid_out`]).
#[derive(Debug, Default, PartialEq)]
pub struct ToolText<'a> {
    pub texts: Vec<&'a str>,
    pub structured_content: Option<&'a str>,
    pub is_error: Option<&'a str>,
    pub result_type: Option<&'a str>,
    pub decoded: Option<String>,
}

/// The opening of a block of text as rmcp writes it (its text follows).
const TEXT_BLOCK: &[u8] = br#"{"type":"text","text":"#;

/// `result` read as rmcp writes a tool's result of text blocks:
/// `{["resultType":"complete",]"content":[{"type":"text","text":"…"},…][,"isError":BOOL]}`,
/// every string one serde_json reads (no control byte, only JSON's escapes, UTF-8). None for
/// any other layout or any doubt (serde then reads it). The texts are decoded as they are read
/// (the ledger counts their tokens: reading them a second time to decode them cost ~30,000
/// instructions for an 8 KB answer), unless one escapes a surrogate (see [`unescape`]).
pub fn laid_out(result: &[u8]) -> Option<ToolText<'_>> {
    let (result_type, rest) = match result.strip_prefix(br#"{"resultType":"complete","#) {
        Some(rest) => (Some(r#""complete""#), rest),
        None => (None, result.strip_prefix(b"{")?),
    };
    let mut rest = rest.strip_prefix(br#""content":["#)?;
    let mut texts = Vec::new();
    let mut decoded = None;
    if let Some(after) = rest.strip_prefix(b"]") {
        rest = after;
    } else {
        decoded = Some(Vec::with_capacity(result.len()));
        loop {
            let block = rest.strip_prefix(TEXT_BLOCK)?;
            let len = read_string(block, &mut decoded, !texts.is_empty())?;
            let (text, after) = block.split_at_checked(len)?;
            texts.push(std::str::from_utf8(text).ok()?);
            rest = match after {
                [b'}', b',', more @ ..] => more,
                [b'}', b']', more @ ..] => {
                    rest = more;
                    break;
                }
                _ => return None,
            };
        }
    }
    let is_error = match rest {
        b"}" => None,
        br#","isError":false}"# => Some("false"),
        br#","isError":true}"# => Some("true"),
        _ => return None,
    };
    Some(ToolText {
        texts,
        structured_content: None,
        is_error,
        result_type,
        // Valid UTF-8 as the raw texts are: escapes decode to whole characters.
        decoded: decoded.and_then(|bytes| String::from_utf8(bytes).ok()),
    })
}

/// A tool result of exactly one text block as rmcp lays it out, found by its opening and its
/// closing alone. `inner` is the raw JSON between the text's quotes, not read here: it is one
/// JSON string's inside (as serde reads one) only if [`decode_fragment`] reads it whole, or
/// reads each of its parts cut where no escape is open (the token count reads it so, and only
/// the parts it has not seen before).
#[derive(Debug, PartialEq)]
pub struct OneText<'a> {
    pub inner: &'a [u8],
    pub is_error: bool,
}

/// `result` as rmcp writes a tool's result of one text block:
/// `{["resultType":"complete",]"content":[{"type":"text","text":"…"}][,"isError":BOOL]}`
/// (see [`OneText`] for what is not checked). None for any other layout.
pub fn one_text(result: &[u8]) -> Option<OneText<'_>> {
    let rest = match result.strip_prefix(br#"{"resultType":"complete","#) {
        Some(rest) => rest,
        None => result.strip_prefix(b"{")?,
    };
    let rest = rest.strip_prefix(br#""content":[{"type":"text","text":""#)?;
    for (ending, is_error) in [
        (&br#""}]}"#[..], false),
        (br#""}],"isError":false}"#, false),
        (br#""}],"isError":true}"#, true),
    ] {
        if let Some(inner) = rest.strip_suffix(ending) {
            return Some(OneText { inner, is_error });
        }
    }
    None
}

/// The text of `raw`, a part of a JSON string's inside that starts and ends where no escape is
/// open, if serde_json would read it so: no quote or byte below 0x20 unescaped, only JSON's
/// escapes, none of a surrogate (see [`unescape`]) and none cut off at its end, UTF-8.
pub fn decode_fragment(raw: &[u8]) -> Option<String> {
    let mut text = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        at += copy_plain_run(raw.get(at..)?, &mut text);
        match raw.get(at..)? {
            [] => break,
            [b'\\', after @ ..] => {
                at += 1 + match decode_escape(after, &mut text) {
                    Some(len) => len,
                    None => decode_surrogate_pair(after, &mut text)?,
                }
            }
            _ => return None,
        }
    }
    String::from_utf8(text).ok()
}

/// Appends the character a surrogate pair escapes (`after` the first backslash:
/// `uD83D\uDE80`) to `out`, and returns how many bytes it takes; None for anything else (a
/// lone surrogate is no text to serde_json: the full reading decides).
fn decode_surrogate_pair(after: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let high = hex4(after.strip_prefix(b"u")?)?;
    let low = hex4(after.get(5..)?.strip_prefix(b"\\u")?)?;
    if !(0xd800..0xdc00).contains(&high) || !(0xdc00..0xe000).contains(&low) {
        return None;
    }
    let char = char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))?;
    out.extend_from_slice(char.encode_utf8(&mut [0; 4]).as_bytes());
    Some(11)
}

/// The number the first four bytes of `digits` write in hexadecimal, if they do.
#[inline(always)]
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.get(..4)?.iter().try_fold(0, |code, &digit| {
        Some(code * 16 + char::from(digit).to_digit(16)?)
    })
}

/// Whether the byte of `raw` (a JSON string's raw inside) at `at` is a character written as it
/// is, not part of an escape: no backslash in the five bytes before it (the longest escape,
/// `\uXXXX`, is six bytes). A byte after a backslash nearer than that is taken to be in an
/// escape even when it is not (e.g. after `\\`).
pub fn written_as_is(raw: &[u8], at: usize) -> bool {
    // A loop over at most five bytes: `contains` would call a byte search built for long ones.
    raw.get(at.saturating_sub(5)..at)
        .is_some_and(|before| before.iter().all(|&byte| byte != b'\\'))
}

/// [`string_len`] of the block's JSON string, whose text is decoded onto `decoded` (after a
/// line end when it follows another block's) while it is found; a string with an escaped
/// surrogate is only measured, and `decoded` dropped.
fn read_string(block: &[u8], decoded: &mut Option<Vec<u8>>, follows: bool) -> Option<usize> {
    if let Some(out) = decoded {
        if follows {
            out.push(b'\n');
        }
        if let Some(len) = decode_string(block, out) {
            return Some(len);
        }
        *decoded = None;
    }
    string_len(block)
}

/// The length of the JSON string `bytes` starts with (its quotes included), if serde_json
/// reads it as one: no byte below 0x20 in it, and every escape one of JSON's (`\u` with four
/// hexadecimal digits). Not checked for UTF-8 here.
pub fn string_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut at = 1;
    loop {
        at += plain_run(bytes.get(at..)?);
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 1 + escape_len(bytes.get(at + 1..)?)?,
            _ => return None,
        }
    }
}

/// [`string_len`] of the JSON string `bytes` starts with, its text appended to `out` while it
/// is found. None also for a string with an escaped surrogate (see [`unescape`]): `out` then
/// holds part of it.
fn decode_string(bytes: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut at = 1;
    loop {
        at += copy_plain_run(bytes.get(at..)?, out);
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 1 + decode_escape(bytes.get(at + 1..)?, out)?,
            _ => return None,
        }
    }
}

/// Appends the text of the escape after a backslash (`after`) to `out`, and returns how many
/// bytes it takes (see [`escape_len`]); None if it is no JSON escape, or escapes a surrogate.
/// Inlined, as is [`copy_plain_run`]: a call per escape (one every ~12 bytes of a board
/// answer) and per run cost ~15,000 instructions an answer (BENCHMARKS.md, branch `count10`).
#[inline(always)]
fn decode_escape(after: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let decoded = match *after.first()? {
        escaped @ (b'"' | b'\\' | b'/') => escaped,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let code = hex4(after.get(1..)?)?;
            // Not a surrogate (no char is one).
            let char = char::from_u32(code)?;
            out.extend_from_slice(char.encode_utf8(&mut [0; 4]).as_bytes());
            return Some(5);
        }
        _ => return None,
    };
    out.push(decoded);
    Some(1)
}

/// How many bytes after a backslash its escape takes (the escaped byte, or `u` and four
/// hexadecimal digits); None if they are no JSON escape.
fn escape_len(after: &[u8]) -> Option<usize> {
    match after.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' if after.get(1..5)?.iter().all(u8::is_ascii_hexdigit) => Some(5),
        _ => None,
    }
}

/// The length of the run at the start of `bytes` of bytes a string holds as they are: any but
/// `"`, `\\` and those below 0x20. Read eight bytes at a time where eight are left.
#[inline]
fn plain_run(bytes: &[u8]) -> usize {
    swar::run(bytes, not_plain, |tail| {
        tail.iter()
            .position(|&b| !is_plain(b))
            .unwrap_or(tail.len())
    })
}

/// The text of a JSON string from between its quotes (`inner`, valid JSON), decoded in one
/// pass: the plain bytes between escapes are copied eight at a time. None for an escaped
/// surrogate, left to serde_json: a pair is one character, and a lone one no text.
pub fn unescape(inner: &str) -> Option<String> {
    let bytes = inner.as_bytes();
    let mut text = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        at += copy_plain_run(bytes.get(at..)?, &mut text);
        let Some((&stop, after)) = bytes.get(at..).and_then(<[u8]>::split_first) else {
            break;
        };
        // Only a backslash stops the run in a valid string's inside; anything else is kept.
        if stop != b'\\' {
            text.push(stop);
            at += 1;
            continue;
        }
        at += 1 + decode_escape(after, &mut text)?;
    }
    String::from_utf8(text).ok()
}

/// Appends the run of plain bytes at the start of `bytes` (see [`plain_run`]) to `out`, and
/// returns its length. Each eight bytes are appended whole (one store, not a call to `memcpy`
/// per run) and the bytes past the run's end taken off again: `out` never outgrows what was
/// read, as a decoded string is never longer than its JSON.
#[inline(always)]
fn copy_plain_run(bytes: &[u8], out: &mut Vec<u8>) -> usize {
    let mut rest = bytes;
    while let Some((word, after)) = rest.split_first_chunk::<8>() {
        let flagged = not_plain(u64::from_le_bytes(*word));
        out.extend_from_slice(word);
        if flagged != 0 {
            let plain = swar::first_flagged(flagged);
            out.truncate(out.len() - (8 - plain));
            return bytes.len() - rest.len() + plain;
        }
        rest = after;
    }
    let plain = rest
        .iter()
        .position(|&b| !is_plain(b))
        .unwrap_or(rest.len());
    out.extend_from_slice(rest.get(..plain).unwrap_or_default());
    bytes.len() - rest.len() + plain
}

fn is_plain(byte: u8) -> bool {
    byte >= 0x20 && byte != b'"' && byte != b'\\'
}

/// The top bit of the first byte of `word` (in little-endian order) that is not plain (see
/// [`plain_run`]), and perhaps of bytes after it; none if all eight are plain. A byte is
/// flagged below 0x20 (subtracting 0x20 borrows into its top bit, which it does not have
/// itself) or equal to `"` or `\\` (XORed with it, it is zero, which the same test finds). A
/// borrow reaches only bytes after a flagged one, which the callers do not read.
#[inline]
fn not_plain(word: u64) -> u64 {
    let below = |w: u64, byte: u8| w.wrapping_sub(splat(byte)) & !w;
    let control = below(word, 0x20);
    let quote = below(word ^ splat(b'"'), 1);
    let backslash = below(word ^ splat(b'\\'), 1);
    (control | quote | backslash) & splat(0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position of the eight, with any byte after it: the first
    /// flagged byte is the first that is not plain, and a run read or copied stops there.
    #[test]
    fn the_word_at_a_time_test_finds_the_first_byte_that_is_not_plain() {
        for byte in 0..=u8::MAX {
            for at in 0..8 {
                for filler in [
                    b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5d, 0x7f, 0xff, 0x80,
                ] {
                    let mut bytes = [b'm'; 8];
                    bytes[at] = byte;
                    if let Some(after) = bytes.get_mut(at + 1..) {
                        after.fill(filler);
                    }
                    let expected = bytes.iter().position(|&b| !is_plain(b));
                    let flagged = not_plain(u64::from_le_bytes(bytes));
                    let first = (flagged != 0).then(|| swar::first_flagged(flagged));
                    assert_eq!(first, expected, "{bytes:?}");
                    let mut long = bytes.to_vec();
                    long.extend_from_slice(b"0123456789abc");
                    let run = expected.unwrap_or(long.len());
                    assert_eq!(plain_run(&long), run, "{long:?}");
                    let mut copied = Vec::with_capacity(long.len());
                    assert_eq!(copy_plain_run(&long, &mut copied), run, "{long:?}");
                    assert_eq!(copied, long[..run], "{long:?}");
                }
            }
        }
    }

    /// Seeded ASCII strings dense in quotes, backslashes, escapes and control bytes: a string
    /// ends where serde_json's does, and where serde_json reads none neither does this.
    #[test]
    fn strings_end_where_serde_json_ends_them() {
        let alphabet = b"ab\"\"\\\\\\unrtbf/0A9fFgG{}:, \x01\x1f\x7f";
        let mut state = 5u64;
        for _ in 0..50_000 {
            let mut string = vec![b'"'];
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let len = (state >> 58) as usize;
            for i in 0..len {
                let pick = (state >> (i % 40)).wrapping_add(i as u64 * 13);
                string.push(alphabet[pick as usize % alphabet.len()]);
            }
            let valid = |end: usize| {
                serde_json::from_slice::<&serde_json::value::RawValue>(&string[..end]).is_ok()
            };
            let first =
                (1..=string.len()).find(|&end| string[end - 1] == b'"' && end > 1 && valid(end));
            // Serde reads the first string to an unescaped quote; this, the same one.
            match string_len(&string) {
                Some(end) => assert_eq!(Some(end), first, "{:?}", String::from_utf8_lossy(&string)),
                None => assert_eq!(first, None, "{:?}", String::from_utf8_lossy(&string)),
            }
            // Decoded while it is read (the alphabet escapes no surrogate): the same end, and
            // serde's text.
            let mut decoded = Vec::new();
            let end = decode_string(&string, &mut decoded);
            assert_eq!(end, first, "{:?}", String::from_utf8_lossy(&string));
            if let Some(end) = end {
                let text = serde_json::from_slice::<String>(&string[..end]).ok();
                assert_eq!(String::from_utf8(decoded).ok(), text);
            }
        }
    }
}
