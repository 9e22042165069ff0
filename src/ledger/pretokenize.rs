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

/// The pieces of `text` as the pattern cuts them, or `None` if `text` is not all ASCII (the
/// tests' way in; counting takes them from [`stretches`]).
#[cfg(test)]
pub fn ascii_pieces(text: &str) -> Option<AsciiPieces<'_>> {
    text.is_ascii().then_some(AsciiPieces {
        text: text.as_bytes(),
        at: 0,
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
            text: text.as_bytes(),
            at: 0,
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
    text: &'a [u8],
    at: usize,
}

impl<'a> Iterator for AsciiPieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        if start >= self.text.len() {
            return None;
        }
        // A piece is at least one byte, so the walk always moves on.
        self.at = piece_end(self.text, start).max(start + 1);
        self.text.get(start..self.at)
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

/// The classes of the byte at `at` (none past the end).
fn class_at(bytes: &[u8], at: usize) -> u8 {
    bytes.get(at).map_or(0, |&b| CLASSES[usize::from(b)])
}

/// Where the run of bytes from `from` of a class in `classes` ends, at `limit` at most.
fn run_end(bytes: &[u8], from: usize, classes: u8, limit: usize) -> usize {
    let run = bytes.get(from..limit).unwrap_or_default();
    let len = run
        .iter()
        .position(|&b| CLASSES[usize::from(b)] & classes == 0)
        .unwrap_or(run.len());
    from + len
}

/// Where the piece starting at `start` (< `bytes.len()`) ends: the alternative is picked by
/// the first byte's class (and, for one that may lead a word or a run of punctuation, the
/// second's).
fn piece_end(bytes: &[u8], start: usize) -> usize {
    let len = bytes.len();
    let first = class_at(bytes, start);
    if first & LETTER != 0 {
        return word_end(bytes, start);
    }
    if first & DIGIT != 0 {
        // Alternative 3: `\p{N}{1,3}`.
        return run_end(bytes, start, DIGIT, len.min(start + 3));
    }
    let second = class_at(bytes, start + 1);
    // `[^\r\n\p{L}\p{N}]` before letters: a word led by it (alternatives 1 and 2).
    if first & NEWLINE == 0 && second & LETTER != 0 {
        return word_end(bytes, start + 1);
    }
    // Alternative 4: an optional space, a run of punctuation, then any `\r`, `\n` and `/`.
    let punctuation = if first & OTHER != 0 {
        Some(start)
    } else if bytes.get(start) == Some(&b' ') && second & OTHER != 0 {
        Some(start + 1)
    } else {
        None
    };
    if let Some(from) = punctuation {
        let end = run_end(bytes, from, OTHER, len);
        return run_end(bytes, end, PUNCTUATION_TAIL, len);
    }
    space_end(bytes, start)
}

/// Alternatives 1 and 2 from the first letter at `letters`: upper case letters then lower
/// case ones (ASCII has no letters of the other categories, and upper and lower are disjoint,
/// so backtracking never changes where the letters end), then a contraction if one follows.
fn word_end(bytes: &[u8], letters: usize) -> usize {
    let len = bytes.len();
    let upper_end = run_end(bytes, letters, UPPER, len);
    contraction_end(bytes, run_end(bytes, upper_end, LOWER, len))
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `at`: no two alternatives share a first letter, so at
/// most one can match.
fn contraction_end(bytes: &[u8], at: usize) -> usize {
    if bytes.get(at) != Some(&b'\'') {
        return at;
    }
    let lower = |i: usize| bytes.get(at + i).map(u8::to_ascii_lowercase);
    match (lower(1), lower(2)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => at + 2,
        (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => at + 3,
        _ => at,
    }
}

/// Alternatives 5 to 7, for a piece that starts with whitespace. In the run of whitespace from
/// `start`: up to its last line break if it has one (`\s*` gives back until `[\r\n]+` can
/// match); else all of it at the end of the text; else all but its last byte, which goes
/// with what follows (`(?!\S)`), unless that would leave nothing; then the one byte (`\s+`).
fn space_end(bytes: &[u8], start: usize) -> usize {
    let end = run_end(bytes, start, SPACE, bytes.len());
    let run = bytes.get(start..end).unwrap_or_default();
    if let Some(last_break) = run.iter().rposition(|&b| b == b'\r' || b == b'\n') {
        return start + last_break + 1;
    }
    if end == bytes.len() || run.len() < 2 {
        return end;
    }
    end - 1
}
