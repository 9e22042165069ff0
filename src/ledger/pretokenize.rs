//! `o200k_base`'s pre-tokenizer for ASCII text, written out by hand. The pattern (`build.rs`
//! writes it to `$OUT_DIR/o200k_base.pattern`) run by `fancy_regex` was ~3/4 of a count's
//! instructions on JSON answers; the messages the ledger counts are nearly all ASCII, where
//! every class the pattern uses is a simple byte test. Text with any non-ASCII byte still goes
//! to the regex (`bpe.rs`). Tests check that the pieces are the regex's.
//!
//! The pattern's alternatives, tried in order at each position (leftmost-first), in ASCII:
//! 1. `[^\r\n\p{L}\p{N}]?[\p{Lu}…]*[\p{Ll}…]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
//! 2. `[^\r\n\p{L}\p{N}]?[\p{Lu}…]+[\p{Ll}…]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
//! 3. `\p{N}{1,3}`
//! 4. ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
//! 5. `\s*[\r\n]+`
//! 6. `\s+(?!\S)`
//! 7. `\s+`
//!
//! Every byte starts a match of one of them and none matches empty, so the pieces tile the text.

use super::swar::{self, splat};

/// The pieces of `text` as the pattern cuts them, or `None` if `text` is not all ASCII (the
/// tests' way in; counting takes them from [`stretches`]).
#[cfg(test)]
pub fn ascii_pieces(text: &str) -> Option<AsciiPieces<'_>> {
    text.is_ascii().then_some(AsciiPieces {
        rest: text.as_bytes(),
    })
}

/// A stretch of text that the pattern cuts as it would the whole text: no piece crosses its
/// ends. An ASCII stretch comes as its pieces (its bytes were checked finding its end); the
/// others need the regex.
pub enum Stretch<'a> {
    Ascii(AsciiPieces<'a>),
    Other(&'a str),
}

/// `text` in stretches: the ASCII ones as long as they can be, the others from the last safe
/// cut before a non-ASCII character to the first one after it.
pub fn stretches(text: &str) -> impl Iterator<Item = Stretch<'_>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at;
        let rest = bytes.get(start..).filter(|rest| !rest.is_empty())?;
        // Nearly every text is all ASCII: checked a word at a time before a byte at a time.
        let wide = (!rest.is_ascii()).then(|| rest.iter().position(|b| !b.is_ascii()));
        let Some(offset) = wide.flatten() else {
            at = bytes.len();
            return text.get(start..).map(Stretch::ascii);
        };
        let wide = start + offset;
        match (start + 1..wide).rev().find(|&cut| is_safe_cut(bytes, cut)) {
            Some(cut) => {
                at = cut;
                text.get(start..cut).map(Stretch::ascii)
            }
            None => {
                at = other_end(bytes, wide);
                text.get(start..at).map(Stretch::Other)
            }
        }
    })
}

impl<'a> Stretch<'a> {
    /// A stretch `stretches` found all ASCII.
    fn ascii(text: &'a str) -> Self {
        Stretch::Ascii(AsciiPieces {
            rest: text.as_bytes(),
        })
    }
}

/// ASCII shorter than this between non-ASCII characters stays in their stretch: each stretch
/// the regex cuts costs it a search's setup, which text dense in non-ASCII characters paid
/// more often than the hand pre-tokenizer saved (BENCHMARKS.md, session 25).
const SHORTEST_ASCII_BETWEEN: usize = 32;

/// Where a stretch for the regex that holds the non-ASCII byte at `wide` ends: at the first
/// safe cut after it that is followed by enough ASCII, or at the end of the text.
fn other_end(bytes: &[u8], wide: usize) -> usize {
    let mut from = wide;
    loop {
        let Some(cut) = (from + 1..bytes.len()).find(|&cut| is_safe_cut(bytes, cut)) else {
            return bytes.len();
        };
        let rest = bytes.get(cut..).unwrap_or_default();
        match rest.iter().position(|b| !b.is_ascii()) {
            Some(ascii) if ascii < SHORTEST_ASCII_BETWEEN => from = cut + ascii,
            _ => return cut,
        }
    }
}

/// Whether every piece ends or starts at byte `cut`, whatever the text around: after an ASCII
/// letter or digit, before an ASCII byte that can continue no piece holding one (any but a
/// letter, a digit or the `'` of a contraction). Letters and digits are no part of an
/// alternative 4 piece, so the piece before `cut` is a word or a number, and it stops there;
/// the matches after start afresh at `cut`. Both bytes are ASCII, so `cut` is a character
/// boundary, and no look-ahead of the pattern reads across it (only a whitespace run's does).
fn is_safe_cut(bytes: &[u8], cut: usize) -> bool {
    let (Some(&before), Some(&after)) = (
        cut.checked_sub(1).and_then(|i| bytes.get(i)),
        bytes.get(cut),
    ) else {
        return false;
    };
    before.is_ascii_alphanumeric()
        && after.is_ascii()
        && !after.is_ascii_alphanumeric()
        && after != b'\''
}

/// The pieces of an ASCII stretch, as bytes (what counting reads; slicing the text as `str`
/// would check character boundaries that ASCII always has).
pub struct AsciiPieces<'a> {
    /// The stretch's bytes not yet cut, all ASCII.
    rest: &'a [u8],
}

impl<'a> Iterator for AsciiPieces<'a> {
    type Item = &'a [u8];

    /// Inlined into the count's loop: a piece costs its bytes' tests, not a call per piece.
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&first, after) = self.rest.split_first()?;
        // A piece is its first byte and what of the bytes after it joins it: at least one
        // byte, so the walk always moves on, and never past the end (`split_at_checked`).
        let (piece, rest) = self.rest.split_at_checked(1 + piece_tail(first, after))?;
        self.rest = rest;
        Some(piece)
    }
}

/// The classes of an ASCII byte the pattern tells apart, as bits of [`CLASSES`]: each ASCII
/// byte is exactly one of a letter (upper or lower case), a digit, whitespace or other.
const UPPER: u8 = 1;
const LOWER: u8 = 2;
const DIGIT: u8 = 4;
/// `\s` in ASCII: Unicode's White_Space, which is these six (not the other control bytes).
const SPACE: u8 = 8;
/// `[^\s\p{L}\p{N}]`: punctuation, symbols and the other control bytes.
const OTHER: u8 = 16;
/// `[\r\n]`, whitespace that also ends a run of whitespace and cannot lead a word.
const NEWLINE: u8 = 32;
/// `[\r\n/]`: what may follow a run of punctuation in its piece.
const PUNCTUATION_TAIL: u8 = 64;
const LETTER: u8 = UPPER | LOWER;

/// Each byte's classes, one lookup per byte instead of a chain of range tests; a byte that is
/// not ASCII has none (no ASCII stretch holds one).
static CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        classes[b] = match byte {
            b'A'..=b'Z' => UPPER,
            b'a'..=b'z' => LOWER,
            b'0'..=b'9' => DIGIT,
            b'\r' | b'\n' => SPACE | NEWLINE | PUNCTUATION_TAIL,
            b' ' | b'\t' | 0x0b | 0x0c => SPACE,
            b'/' => OTHER | PUNCTUATION_TAIL,
            _ => OTHER,
        };
        b += 1;
    }
    classes
};

fn class_of(byte: u8) -> u8 {
    CLASSES[usize::from(byte)]
}

/// How many bytes of `after` join the piece that starts with `first`: the alternative is
/// picked by the first byte's class (and, for one that may lead a word or a run of
/// punctuation, the second's).
#[inline(always)]
fn piece_tail(first: u8, after: &[u8]) -> usize {
    let class = class_of(first);
    if class & LOWER != 0 {
        // Alternatives 1 and 2 from a lower case letter: the rest of its lower case run.
        return lower_case_tail(after);
    }
    if class & UPPER != 0 {
        return word_len(after);
    }
    if class & DIGIT != 0 {
        // Alternative 3: `\p{N}{1,3}`.
        return match after {
            [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => 2,
            [a, ..] if a.is_ascii_digit() => 1,
            _ => 0,
        };
    }
    let second = after.first().map_or(0, |&b| class_of(b));
    // `[^\r\n\p{L}\p{N}]` before letters: a word led by it (alternatives 1 and 2).
    if class & NEWLINE == 0 && second & LETTER != 0 {
        return word_len(after);
    }
    // Alternative 4: an optional space, a run of punctuation, then any `\r`, `\n` and `/`.
    // After a space, the run starts at `after`'s first byte; after punctuation, it goes on
    // there: the piece's tail is the same run either way.
    if class & OTHER != 0 || (first == b' ' && second & OTHER != 0) {
        let run = run_len(after, OTHER);
        let rest = after.get(run..).unwrap_or_default();
        return run + run_len(rest, PUNCTUATION_TAIL);
    }
    space_tail(class, after)
}

/// The length of the run of bytes at the start of `bytes` whose classes meet `classes`.
#[inline(always)]
fn run_len(bytes: &[u8], classes: u8) -> usize {
    bytes
        .iter()
        .position(|&b| class_of(b) & classes == 0)
        .unwrap_or(bytes.len())
}

/// Alternatives 1 and 2 from the first letter at the start of `bytes`: upper case letters then
/// lower case ones (ASCII has no letters of the other categories, and upper and lower are
/// disjoint, so backtracking never changes where the letters end), then a contraction if one
/// follows.
#[inline(always)]
fn word_len(bytes: &[u8]) -> usize {
    let upper = run_len(bytes, UPPER);
    upper + lower_case_tail(bytes.get(upper..).unwrap_or_default())
}

/// A word's lower case letters at the start of `bytes` and the contraction after them.
#[inline(always)]
fn lower_case_tail(bytes: &[u8]) -> usize {
    let lower = lower_case_run(bytes);
    lower + contraction_len(bytes.get(lower..).unwrap_or_default())
}

/// The length of the run of `a`–`z` at the start of `bytes`, read eight bytes at a time where
/// eight are left: a word's letters are most of a message's bytes.
#[inline(always)]
fn lower_case_run(bytes: &[u8]) -> usize {
    swar::run(bytes, not_lower_case, |tail| run_len(tail, LOWER))
}

/// The top bit of each byte of `word` that is not `a`–`z`, the others clear. For a byte
/// below 0x80, adding 0x80 − `a` sets its top bit if it is at least `a`, adding 0x7f − `z`
/// if it is above `z`, and neither sum carries into the next byte. A byte of 0x80 or more is
/// flagged by its own top bit; the carry it may make reaches only bytes after it, which the
/// caller does not read.
#[inline(always)]
fn not_lower_case(word: u64) -> u64 {
    let from_a = word.wrapping_add(splat(0x80 - b'a'));
    let above_z = word.wrapping_add(splat(0x7f - b'z'));
    !(from_a & !above_z & !word) & splat(0x80)
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at the start of `bytes`: no two alternatives share a first
/// letter, so at most one can match.
#[inline(always)]
fn contraction_len(bytes: &[u8]) -> usize {
    let [b'\'', after @ ..] = bytes else {
        return 0;
    };
    let lower = |i: usize| after.get(i).map(u8::to_ascii_lowercase);
    match (lower(0), lower(1)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => 2,
        (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 3,
        _ => 0,
    }
}

/// Alternatives 5 to 7, for a piece that starts with whitespace of class `first`, `after`
/// being the bytes after it. In the run of whitespace: up to its last line break if it has one
/// (`\s*` gives back until `[\r\n]+` can match); else all of it at the end of the text; else
/// all but its last byte, which goes with what follows (`(?!\S)`), unless that would leave
/// nothing; then the one byte (`\s+`).
fn space_tail(first: u8, after: &[u8]) -> usize {
    let run = after.get(..run_len(after, SPACE)).unwrap_or_default();
    if let Some(last_break) = run.iter().rposition(|&b| class_of(b) & NEWLINE != 0) {
        return last_break + 1;
    }
    if first & NEWLINE != 0 {
        return 0;
    }
    if run.len() == after.len() || run.is_empty() {
        return run.len();
    }
    run.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-byte test flags exactly the bytes that are not `a`–`z`, at every position,
    /// for every byte value (those of 0x80 and more included, which no ASCII stretch holds),
    /// and the run it finds is the byte-at-a-time one whatever follows the flagged byte.
    #[test]
    fn the_word_at_a_time_test_flags_what_is_not_lower_case() {
        for byte in 0..=u8::MAX {
            for at in 0..8 {
                for filler in [b'a', b'z', b'`', b'{', 0xff] {
                    let mut bytes = [b'm'; 8];
                    bytes[at] = byte;
                    if let Some(after) = bytes.get_mut(at + 1..) {
                        after.fill(filler);
                    }
                    let flagged = not_lower_case(u64::from_le_bytes(bytes));
                    let first = (flagged != 0).then(|| swar::first_flagged(flagged));
                    let expected = bytes.iter().position(|b| !b.is_ascii_lowercase());
                    assert_eq!(first, expected, "{bytes:?}");
                    let mut long = bytes.to_vec();
                    long.extend_from_slice(&[b'q'; 13]);
                    assert_eq!(
                        lower_case_run(&long),
                        expected.unwrap_or(8 + 13),
                        "{long:?}"
                    );
                }
            }
        }
    }
}
