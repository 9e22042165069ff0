//! Token counts for the ledger: an ESTIMATE of what a model would be charged for, with
//! OpenAI's `o200k_base` encoding standing in for every model's own tokenizer.
//!
//! Counting is CPU work (about as much as serving the call): the request path counts only
//! within a small [`Budget`] and leaves the rest to the ledger writer. The encoding's tables are
//! read-only data in the binary; its pre-tokenizer (a compiled regex, ~1 MiB with its first
//! search cache) is built on the first count that may wait for it: a server that has counted
//! nothing holds none of it, and the request path, which may not wait, counts only once the
//! writer's analysis has built it. With it comes a cache of the counts of pieces that take
//! merging (up to 128 KiB, allocated as it fills).
//!
//! A tool's text is counted from its raw JSON by parts ([`count_escaped`]): the objects a board
//! answer is made of recur from answer to answer, and a part seen before is found instead of
//! being decoded and counted: a part of 16 bytes or more by comparing its bytes with kept ones
//! (at most 128 KiB), a shorter one by a hash of its bytes (a memo of at most 4,096 parts). An
//! object's kept inside is found from the object's start and jumped over, unsearched.
//!
//! Text is encoded as ordinary text: special-token strings such as `<|endoftext|>` count as
//! the plain text they are, and never fail. Long text is encoded in pieces cut only where the
//! encoding's own pre-tokenizer would cut, so the count is the same as encoding it whole; only a
//! run longer than [`MAX_CHUNK`] bytes with no such place (e.g. a megabyte of one letter) is cut
//! anywhere, which may shift its count by a token per cut but bounds the regex backtracking and
//! the quadratic merging that would otherwise stall or panic on such input.

use std::sync::{LazyLock, OnceLock};

use super::bpe::Encoding;
use super::json_text;
use super::memo::{Held, Memo, Sampled, SampledHeld, TextKey};

/// The encoding every count uses; recorded in each ledger row's `tokenizer` column.
pub const TOKENIZER: &str = "o200k_base";

/// Longest piece of text encoded at once, in bytes.
const MAX_CHUNK: usize = 1024;

/// The encoding, once a count that may wait for it has built it (see [`Budget::may_build`]).
static BPE: OnceLock<Encoding> = OnceLock::new();

fn load() -> Encoding {
    // The ranks are compiled into the binary; loading them cannot fail short of a broken build.
    Encoding::o200k_base().expect("the o200k_base ranks built into the binary load")
}

/// The estimated number of tokens in `text` (saturating at `u32::MAX`).
pub fn count(text: &str) -> u32 {
    count_within(text, &mut Budget::unlimited())
}

/// [`count`] within `budget` (see [`Budget`]).
pub fn count_within(text: &str, budget: &mut Budget) -> u32 {
    count_keyed(&TextKey::of(text), || text.into(), budget)
}

/// The estimated number of tokens of the text `key` stands for; `text` builds it only when
/// the count is not remembered (counting is far dearer than hashing). A count not remembered
/// takes the text's length from `budget`; past it nothing is counted (0 is returned, and the
/// budget says it was exceeded).
pub fn count_keyed<'t>(
    key: &TextKey,
    text: impl FnOnce() -> std::borrow::Cow<'t, str>,
    budget: &mut Budget,
) -> u32 {
    count_with(&BPE, key, text, budget)
}

/// [`count_within`] of JSON text (a call's arguments), by parts cut before each key that
/// follows a comma (`,"k`, [`piece_always_ends_after_punctuation`]): a tool's arguments vary
/// from call to call (another word, another page size) but their fields recur, and a field
/// seen before is hashed, not counted. Any text counts exactly so; only JSON is cut often.
pub fn count_fields_within(text: &str, budget: &mut Budget) -> u32 {
    static FIELDS: LazyLock<Memo<u32>> = LazyLock::new(|| Memo::new(FIELD_MEMO));
    count_fields_with(&BPE, &FIELDS, text, budget)
}

/// Fields whose counts [`count_fields_within`] remembers (~50 KiB when full).
const FIELD_MEMO: usize = 1024;

/// [`count_fields_within`] with the encoding in `encoding` and the fields' counts in `memo`.
fn count_fields_with(
    encoding: &OnceLock<Encoding>,
    memo: &Memo<u32>,
    text: &str,
    budget: &mut Budget,
) -> u32 {
    let bytes = text.as_bytes();
    let key_cuts = memchr::memchr_iter(b',', bytes).filter_map(|comma| {
        let cut = bytes.get(comma + 1..comma + 3).is_some_and(|key| {
            key[0] == b'"' && piece_always_ends_after_punctuation(',', '"', char::from(key[1]))
        });
        cut.then_some(comma + 2)
    });
    let mut total = 0u32;
    let mut start = 0;
    for end in key_cuts.chain([text.len()]) {
        // After an ASCII quote: a char boundary.
        let Some(part) = text.get(start..end) else {
            continue;
        };
        let key = TextKey::of(part);
        let count = match memo.get(&key) {
            Some(count) => count,
            None => {
                let text = || Some(part.into());
                count_new(encoding, key.text_len(), text, budget, |count| {
                    memo.insert(&key, count)
                })
                .unwrap_or(0)
            }
        };
        if budget.exceeded() {
            return 0;
        }
        total = total.saturating_add(count);
        start = end;
    }
    total
}

/// [`count_keyed`] with the encoding in `encoding` (built there if `budget` may build it).
fn count_with<'t>(
    encoding: &OnceLock<Encoding>,
    key: &TextKey,
    text: impl FnOnce() -> std::borrow::Cow<'t, str>,
    budget: &mut Budget,
) -> u32 {
    static COUNTS: LazyLock<Memo<u32>> = LazyLock::new(|| Memo::new(4096));
    // `text` always gives a text, so a count is always made (0 when refused).
    COUNTS.get(key).unwrap_or_else(|| {
        let remember = |count| COUNTS.insert(key, count);
        count_new(encoding, key.text_len(), || Some(text()), budget, remember).unwrap_or(0)
    })
}

/// The count of the `len` bytes of text `text` builds (not remembered yet), handed to
/// `remember`: 0 (the budget then says it was exceeded, and nothing is remembered) when
/// `budget` refuses `len`; None, with nothing remembered, when `text` gives none.
fn count_new<'t>(
    encoding: &OnceLock<Encoding>,
    len: usize,
    text: impl FnOnce() -> Option<std::borrow::Cow<'t, str>>,
    budget: &mut Budget,
    remember: impl FnOnce(u32),
) -> Option<u32> {
    if len == 0 {
        return Some(0);
    }
    let Some(bpe) = encoding_within(encoding, len, budget) else {
        return Some(0);
    };
    let count = u32::try_from(count_in_chunks(bpe, &text()?, MAX_CHUNK)).unwrap_or(u32::MAX);
    remember(count);
    Some(count)
}

/// The encoding to count `bytes` of new text with, taken from `budget`; None (the budget then
/// says it was exceeded) past the budget, or when the encoding is not built and `budget` may
/// not build it.
fn encoding_within<'e>(
    encoding: &'e OnceLock<Encoding>,
    bytes: usize,
    budget: &mut Budget,
) -> Option<&'e Encoding> {
    let bpe = match encoding.get() {
        Some(bpe) => bpe,
        None if budget.may_build => encoding.get_or_init(load),
        // Building it takes milliseconds the request path cannot wait: the writer counts.
        None => {
            budget.exceeded = true;
            return None;
        }
    };
    budget.take(bytes).then_some(bpe)
}

/// Chunks of JSON text whose counts [`count_escaped`] remembers: about 48 bytes each when full
/// (key, count and the map's own byte), ~200 KiB, allocated as it fills.
const CHUNK_MEMO: usize = 4096;

/// Bytes of parts [`count_escaped`] keeps to find them again by comparing them (parts of
/// 16 bytes to 8 KiB): at most 128 KiB, and ~50 bytes an entry besides.
const KEPT_BYTES: usize = 128 * 1024;

/// The estimated number of tokens in the text of a JSON string whose raw inside (escapes and
/// all) is `raw`; None if it is not one serde_json reads as a string whose text is UTF-8 and
/// escapes no surrogate (nothing is then remembered). Within `budget` as [`count_keyed`]: a
/// count refused is 0, and the budget says so.
///
/// A tool's text is mostly JSON whose objects recur from answer to answer (the same board's
/// tasks in every search, in another order, with other neighbours): the raw text is cut at
/// [`escaped_cuts`], places that depend only on the bytes around them and where the
/// pre-tokenizer always ends a piece, so the sum of the parts' counts is the text's count, and
/// a part seen before is found again: a long one by comparing its bytes with kept ones of the
/// same length and sampled words (an object's inside, from where it starts, without searching
/// for its end: [`count_escaped_jumping`]), a short one by a hash of its bytes; it is not
/// decoded, checked or counted again. Only parts not remembered are decoded (which checks them) and
/// counted.
pub fn count_escaped(raw: &[u8], budget: &mut Budget) -> Option<u32> {
    static CHUNKS: LazyLock<Memo<u32>> = LazyLock::new(|| Memo::new(CHUNK_MEMO));
    static KEPT: LazyLock<Sampled<u32>> = LazyLock::new(|| Sampled::new(KEPT_BYTES));
    count_escaped_with(&BPE, &CHUNKS, &KEPT, raw, budget)
}

/// [`count_escaped`] with the encoding in `encoding`, the counts of the parts `kept` keeps
/// ([`Sampled::keeps`]: from 16 bytes to 8 KiB) there with their bytes, and those of
/// the others in `memo`.
fn count_escaped_with(
    encoding: &OnceLock<Encoding>,
    memo: &Memo<u32>,
    kept: &Sampled<u32>,
    raw: &[u8],
    budget: &mut Budget,
) -> Option<u32> {
    let parts = Parts {
        encoding,
        memo,
        kept,
    };
    count_escaped_jumping(&parts, raw, budget, Jumps::Over)
}

/// Whether [`count_escaped_jumping`] jumps over the kept insides of objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Jumps {
    Over,
    /// Every part found by the cut search alone (the tests' reference).
    #[cfg_attr(not(test), allow(dead_code))]
    Never,
}

/// [`count_escaped_with`], jumping over the kept insides of objects or not.
///
/// An object's inside (a part from a `{\"k` cut to a cut before the object's end, [`Cut`]) is
/// kept to be found from its start ([`Sampled::insert_start`]). At each `{\"k` cut, a kept
/// inside that the text goes on with, and that a cut before an object's end follows
/// ([`closes_kept_inside`]), is added and jumped over: its bytes are
/// neither searched for cuts nor hashed. It is the part the search would have found: the
/// search cuts it nowhere inside, since a brace cut there depends only on its bytes and the
/// `{\"` before them (a cut's brace, and the backslashes that forbid it, lie within 6 bytes
/// before it and 3 after, and neither `}` nor `\"}` can start in the part's last two bytes,
/// the last a letter or digit), which are those of a text where it was a whole part; keys are
/// not cut in a span that a cut before an object's end closes; and the cut after it is that
/// one.
fn count_escaped_jumping(
    parts: &Parts<'_>,
    raw: &[u8],
    budget: &mut Budget,
    jumps: Jumps,
) -> Option<u32> {
    let Parts { memo, kept, .. } = *parts;
    let mut total = 0u32;
    let mut start = 0;
    // Whether the part at `start` begins an object's inside (after a `{\"k` cut).
    let mut opens = false;
    // Held from one part to the next while they are remembered.
    let mut held = None;
    // The last part found by its hash, and its count: the `\"},{\"` between a list's objects
    // recurs within a text, and comparing its bytes costs less than hashing them.
    let mut last: Option<(&[u8], u32)> = None;
    // The part up to the cut `end`; the place read up to (past `end` after a jump), or None to
    // stop (a part serde would not read, or the budget exceeded).
    let mut part = |end: usize, cut: Cut| -> Option<usize> {
        let chunk = raw.get(start..end)?;
        let inside =
            std::mem::replace(&mut opens, cut == Cut::ObjectStart) && cut == Cut::ObjectEnd;
        start = end;
        if !chunk.is_empty() {
            let count = match last {
                Some((bytes, count)) if bytes == chunk => count,
                _ => {
                    let count = parts.count(&mut held, chunk, inside, budget)?;
                    if !kept.keeps(chunk.len()) {
                        last = Some((chunk, count));
                    }
                    count
                }
            };
            total = total.saturating_add(count);
            if budget.exceeded() {
                return None;
            }
        }
        if opens && jumps == Jumps::Over {
            let (_, kept_held) = held.get_or_insert_with(|| (memo.hold(), kept.hold()));
            let rest = raw.get(end..)?;
            if let Some((len, count)) =
                kept_held.starting(rest, |len| closes_kept_inside(raw, end + len))
            {
                total = total.saturating_add(count);
                start = end + len;
                opens = false;
                return Some(start);
            }
        }
        Some(end)
    };
    let read = escaped_cuts(raw, &mut part).and_then(|()| part(raw.len(), Cut::Key));
    match read {
        Some(_) => Some(total),
        None if budget.exceeded() => Some(0),
        None => None,
    }
}

/// Where [`count_escaped_jumping`] remembers the counts of parts, and what it counts them with.
struct Parts<'m> {
    encoding: &'m OnceLock<Encoding>,
    memo: &'m Memo<u32>,
    kept: &'m Sampled<u32>,
}

/// The memos locked while parts are found in them (see [`Memo::hold`]).
type Holds<'m> = Option<(Held<'m, u32>, SampledHeld<'m, u32>)>;

impl<'m> Parts<'m> {
    /// The count of the part `chunk` (an object's inside if `inside`): remembered, or counted
    /// within `budget` (with `held` unlocked) and remembered; None if it does not decode.
    fn count(
        &self,
        held: &mut Holds<'m>,
        chunk: &[u8],
        inside: bool,
        budget: &mut Budget,
    ) -> Option<u32> {
        let (memo_held, kept_held) =
            held.get_or_insert_with(|| (self.memo.hold(), self.kept.hold()));
        // Long parts are found by comparing their bytes (an object's inside from its start),
        // short ones (and those too long to keep) by a hash of them.
        let place = match (self.kept.keeps(chunk.len()), inside) {
            (false, _) => {
                let mut key = TextKey::default();
                key.add(chunk);
                Place::Hashed(key)
            }
            (true, false) => Place::Sampled,
            (true, true) => Place::Start,
        };
        let remembered = match &place {
            Place::Hashed(key) => memo_held.get(key),
            Place::Sampled => kept_held.get(chunk),
            Place::Start => {
                let whole = kept_held.starting(chunk, |len| len == chunk.len());
                whole.map(|(_, count)| count)
            }
        };
        if remembered.is_some() {
            return remembered;
        }
        // A part not remembered is decoded (which checks it) and counted, unlocked.
        *held = None;
        let text = || json_text::decode_fragment(chunk).map(std::borrow::Cow::Owned);
        count_new(
            self.encoding,
            chunk.len(),
            text,
            budget,
            |count| match &place {
                Place::Hashed(key) => self.memo.insert(key, count),
                Place::Sampled => self.kept.insert(chunk, count),
                Place::Start => self.kept.insert_start(chunk, count),
            },
        )
    }
}

/// Where [`count_escaped_jumping`] looks a part up.
enum Place {
    /// In the memo of hashed parts, by this key.
    Hashed(TextKey),
    /// Among the kept parts, by its bytes.
    Sampled,
    /// Among the kept insides of objects, by its bytes from its start.
    Start,
}

/// Which rule of [`escaped_cuts`] made a cut.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// Before a key after a comma (or the text's end).
    Key,
    /// Before an object's first key: an object's inside starts here.
    ObjectStart,
    /// Before an object's end.
    ObjectEnd,
}

/// Where the raw inside of a JSON string may be cut, in order: places found from the bytes
/// around them alone, where no escape is open (each part decodes alone), and where the decoded
/// text's pre-tokenizer always ends a piece (the parts' counts add up to the whole's):
/// - before the key of an object that starts with one: `{"` and an ASCII letter (escaped,
///   `{\"k`), cut before the letter ([`piece_always_ends_after_punctuation`]);
/// - before the end of an object whose last value ends in an ASCII letter or digit written as
///   it is, `…9}` or `…z"}` (escaped, `…z\"}`), cut before the brace or the quote
///   ([`piece_always_ends_between`]);
/// - outside an object's inside (a part that the first rule, or the text's end, ends): before
///   each key that follows a comma, `,"k` (escaped, `,\"k`), cut before the letter.
///
/// The same JSON object is so cut the same way wherever it stands, and kept whole (its fields
/// recur together); the text around objects (a page's head, whose counts and flags change from
/// page to page) is cut field by field, so its fields are remembered apart.
///
/// `cut` is called with each, in order, and its rule (a loop rather than an iterator of
/// iterators, which costs more per part than the search itself); None from it stops the
/// search and is returned. It returns the place the text is read up to: the cut, or, after a
/// cut before an object's first key, a cut before an object's end further on
/// ([`closes_kept_inside`]), where the search goes on as if it had found it (without calling
/// `cut` there).
fn escaped_cuts(raw: &[u8], mut cut: impl FnMut(usize, Cut) -> Option<usize>) -> Option<()> {
    let mut from = 0;
    let mut search = 0;
    while let Some(at) = next_brace(raw, search) {
        search = at + 1;
        let Some(brace) = cut_at_brace(raw, at) else {
            continue;
        };
        let rule = if brace.ends_object {
            Cut::ObjectEnd
        } else {
            key_cuts(raw, from, brace.at).try_for_each(|key| cut(key, Cut::Key).map(drop))?;
            Cut::ObjectStart
        };
        from = brace.at;
        let read = cut(brace.at, rule)?;
        if read > brace.at {
            // A cut before an object's end, made by the `}` at it or after its `\"`: the
            // search goes on after that brace, as if it had found it.
            from = read;
            search = read + if raw.get(read) == Some(&b'}') { 1 } else { 3 };
        }
    }
    key_cuts(raw, from, raw.len()).try_for_each(|key| cut(key, Cut::Key).map(drop))
}

/// The first `{` or `}` of `raw` from `from` on: the `{` of `,{` there (the next of a list of
/// objects) without a search.
fn next_brace(raw: &[u8], from: usize) -> Option<usize> {
    if let Some([b',', b'{']) = raw.get(from..from + 2) {
        return Some(from + 1);
    }
    memchr::memchr2(b'{', b'}', raw.get(from..)?).map(|found| from + found)
}

/// [`escaped_cuts`]'s cuts in order, none read past.
#[cfg(test)]
fn each_escaped_cut(raw: &[u8], mut cut: impl FnMut(usize) -> Option<()>) -> Option<()> {
    escaped_cuts(raw, |at, _| cut(at).map(|()| at))
}

/// Whether [`escaped_cuts`] cuts at `at` before an object's end, where the bytes before `at`
/// are those of an object's kept inside: a `}` at `at`, or `\"}`. The rest of that rule
/// ([`cut_at_brace`]: a letter or digit before it, no backslash in the 5 bytes before that)
/// holds of the inside's own last bytes, which it held of where they were kept.
fn closes_kept_inside(raw: &[u8], at: usize) -> bool {
    matches!(raw.get(at..), Some([b'}', ..] | [b'\\', b'"', b'}', ..]))
}

/// The shortest text around objects that [`escaped_cuts`] cuts before its keys: a page's head
/// is longer (~100 bytes), the `"},{"` between two objects shorter.
const KEYED_SPAN: usize = 32;

/// A cut [`cut_at_brace`] found, and whether it is before an object's end (the part before it
/// is an object's inside) rather than before an object's first key.
#[derive(Clone, Copy)]
struct BraceCut {
    at: usize,
    ends_object: bool,
}

/// [`escaped_cuts`]'s cut at the brace `raw[at]`, if it makes one.
fn cut_at_brace(raw: &[u8], at: usize) -> Option<BraceCut> {
    if raw.get(at) == Some(&b'{') {
        // A `{` is never part of an escape, so the backslash after it opens one.
        let key = raw.get(at + 1..at + 4)?;
        let cut = key.starts_with(b"\\\"")
            && piece_always_ends_after_punctuation('{', '"', char::from(key[2]));
        return cut.then_some(BraceCut {
            at: at + 3,
            ends_object: false,
        });
    }
    let before = raw.get(..at)?;
    let (end, next) = match before.strip_suffix(b"\\\"") {
        Some(value) => (value.len(), '"'),
        None => (at, '}'),
    };
    let last = end.checked_sub(1)?;
    let cut = json_text::written_as_is(raw, last)
        && piece_always_ends_between(char::from(*raw.get(last)?), next);
    cut.then_some(BraceCut {
        at: end,
        ends_object: true,
    })
}

/// [`escaped_cuts`]'s cuts before a key after a comma, `,\"k`, strictly between `from`
/// and `to` (none in a span shorter than [`KEYED_SPAN`]): a comma is never part of an escape,
/// so the backslash after it opens one, and the letter or digit after that escaped quote is
/// written as it is ([`piece_always_ends_after_punctuation`]).
fn key_cuts(raw: &[u8], from: usize, to: usize) -> impl Iterator<Item = usize> + '_ {
    // Short spans (the `"},{"` between two objects) are not worth a search.
    let span = raw
        .get(from..to)
        .filter(|span| span.len() >= KEYED_SPAN)
        .unwrap_or_default();
    memchr::memchr_iter(b',', span).filter_map(move |comma| {
        let at = from + comma;
        let key = raw.get(at + 1..at + 4)?;
        let cut = at + 3 < to
            && key.starts_with(b"\\\"")
            && piece_always_ends_after_punctuation(',', '"', char::from(key[2]));
        cut.then_some(at + 3)
    })
}

/// How many bytes of text not counted before one analysis may count. Counting runs at about
/// 10 µs per 100 bytes (an 8 KB reply takes about a millisecond), which the request path
/// cannot wait for; counts remembered from earlier texts cost nothing.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    exceeded: bool,
    /// Whether a count may wait for the encoding to be built (off the request path only).
    may_build: bool,
}

impl Budget {
    /// Counts everything, building the encoding first if it is not built yet (off the
    /// request path).
    pub fn unlimited() -> Self {
        Budget {
            may_build: true,
            ..Budget::of(usize::MAX)
        }
    }

    /// Counts at most `bytes` of new text, and none before the encoding is built.
    pub fn of(bytes: usize) -> Self {
        Budget {
            left: bytes,
            exceeded: false,
            may_build: false,
        }
    }

    /// Whether a count was refused: the analysis that used this budget is incomplete.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Whether `bytes` of new text fit in what is left (nothing is taken or marked).
    pub fn covers(&self, bytes: usize) -> bool {
        !self.exceeded && bytes <= self.left
    }

    /// Marks the budget exceeded: the analysis gave up on what it could not count.
    pub fn give_up(&mut self) {
        self.exceeded = true;
    }

    /// Takes `bytes` from what is left; false (and marked exceeded) if there is not enough.
    fn take(&mut self, bytes: usize) -> bool {
        match self.left.checked_sub(bytes) {
            Some(left) if !self.exceeded => {
                self.left = left;
                true
            }
            _ => {
                self.exceeded = true;
                false
            }
        }
    }
}

/// Builds the encoding now rather than on the first count that may wait for it.
#[cfg(test)]
pub(crate) fn warm_up() {
    BPE.get_or_init(load);
}

fn count_in_chunks(bpe: &Encoding, text: &str, max_chunk: usize) -> usize {
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (cut, _) = chunk_end(rest, max_chunk);
        let (chunk, tail) = rest.split_at(cut);
        total += bpe.count(chunk);
        rest = tail;
    }
    total
}

/// Where the first chunk of `text` ends, and whether that is exact (the end of the text, or a
/// place within `max` bytes where the pre-tokenizer always ends a piece) rather than a forced
/// cut at the last char boundary within `max` bytes.
fn chunk_end(text: &str, max: usize) -> (usize, bool) {
    if text.len() <= max {
        return (text.len(), true);
    }
    let mut limit = max;
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    let window = &text[..limit];
    let mut next = text[limit..].chars().next();
    for (at, prev) in window.char_indices().rev() {
        if let Some(next) = next
            && piece_always_ends_between(prev, next)
        {
            return (at + prev.len_utf8(), true);
        }
        next = Some(prev);
    }
    // No safe place: cut at the limit (at least one char, so the loop always advances).
    let cut = if limit == 0 {
        text.chars().next().map_or(text.len(), char::len_utf8)
    } else {
        limit
    };
    (cut, false)
}

/// Whether `o200k_base`'s pre-tokenizer ends a piece between `b` and `c` when `a`, `b`, `c`
/// follow each other, whatever surrounds them: `a` and `b` ASCII punctuation, `c` an ASCII
/// letter or digit. The piece that holds `a` holds `b` too and ends there: a punctuation run's
/// piece takes every punctuation character that follows and stops before a letter or digit; a
/// word's piece may begin with one punctuation character but then takes only letters (and an
/// `'s`-style suffix, which ends in a letter), so it cannot hold `a` unless `b` is a letter;
/// no other alternative matches punctuation.
fn piece_always_ends_after_punctuation(a: char, b: char, c: char) -> bool {
    a.is_ascii_punctuation() && b.is_ascii_punctuation() && c.is_ascii_alphanumeric()
}

/// Whether `o200k_base`'s pre-tokenizer regex ends a piece between `prev` and `next`, whatever
/// surrounds them. Its alternatives are: words (an optional leading non-letter, non-digit,
/// non-newline char, letters, an optional `'s`-style suffix), 1–3 digits, punctuation runs
/// (optionally led by one space, followed by newlines or `/`), newline runs and whitespace
/// runs; only `\s+(?!\S)` looks ahead, and it only matches whitespace. So a piece never spans:
/// - an ASCII letter or digit followed by a space or by ASCII punctuation other than `'`;
/// - a newline followed by a char that is neither whitespace nor `/`.
///
/// (Only ASCII letters and digits: a few chars Rust calls alphabetic, such as `Ⓐ`, are
/// symbols to the regex and would join the punctuation after them.)
fn piece_always_ends_between(prev: char, next: char) -> bool {
    if prev.is_ascii_alphanumeric() {
        next == ' ' || (next.is_ascii_punctuation() && next != '\'')
    } else if prev == '\n' {
        !next.is_whitespace() && next != '/'
    } else {
        false
    }
}

/// Seeded JSON answers whose objects recur, for the tests that compare counts by parts with
/// whole counts (here and in `analyze`).
#[cfg(test)]
pub(crate) mod answers {
    use serde_json::{Value, json};

    /// A seeded random source (splitmix64).
    pub(crate) struct Seeded(pub u64);

    impl Seeded {
        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            usize::try_from((z ^ (z >> 31)) % n as u64).expect("below n")
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// Pieces of string values chosen against the cuts: escapes and `\u` escapes, non-ASCII
    /// letters and marks, `'s` suffixes, digit runs, spaces and line ends, braces and quotes,
    /// endings in punctuation.
    const FRAGMENTS: &[&str] = &[
        "a",
        "Z",
        "9",
        "123456",
        "2026-12-06T16:04:13.123456Z",
        "it's",
        "x'S",
        "'s",
        "'",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "é",
        "東京",
        "🚀",
        "—",
        ".",
        "?!",
        "\"",
        "\\",
        "/",
        "\u{1}",
        "\u{7f}",
        "{",
        "}",
        "},{",
        "\"},{\"",
        "{\"a\":1}",
        "[",
        "]",
        ":",
        ",",
        "ü",
        "Ⓐ",
        "e\u{301}",
        "end.",
        " x",
        "y ",
        "\\u0041",
        "cache ledger",
        "Claude Code",
        "todo",
    ];
    const KEYS: &[&str] = &[
        "assignee",
        "id",
        "title",
        "status",
        "_x",
        "1st",
        "k's",
        "é",
        "a b",
        "\"q",
        "x{",
        "Z",
        "task_order",
        "updated_at",
    ];

    fn string(random: &mut Seeded) -> String {
        let parts = random.below(5);
        (0..parts).map(|_| random.pick(FRAGMENTS)).collect()
    }

    fn value(random: &mut Seeded, depth: usize) -> Value {
        match random.below(if depth > 1 { 6 } else { 8 }) {
            0..=2 => Value::String(string(random)),
            3 => json!(random.below(100_000)),
            4 => json!(-(random.below(1000) as f64) / 8.0),
            5 => [json!(true), json!(false), Value::Null][random.below(3)].clone(),
            6 => object(random, depth + 1),
            _ => Value::Array(
                (0..random.below(3))
                    .map(|_| object(random, depth + 1))
                    .collect(),
            ),
        }
    }

    fn object(random: &mut Seeded, depth: usize) -> Value {
        let fields = 1 + random.below(6);
        Value::Object(
            (0..fields)
                .map(|_| (random.pick(KEYS).to_string(), value(random, depth)))
                .collect(),
        )
    }

    /// `text` as the inside of a JSON string, each character escaped one of the ways JSON
    /// allows, chosen at random: short escapes, `\u` escapes (surrogate pairs beyond the BMP,
    /// ASCII letters and digits too), `\/`, or as it is where it may be.
    pub(crate) fn escaped(text: &str, random: &mut Seeded) -> String {
        let mut out = String::new();
        for c in text.chars() {
            let spelled = random.below(8) == 0;
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' if !spelled => out.push_str("\\n"),
                '\t' if !spelled => out.push_str("\\t"),
                '/' if spelled => out.push_str("\\/"),
                c if (c as u32) < 0x20 || spelled => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    /// `count` answers `(text, raw)`: JSON (compact, or now and then pretty) of pages of
    /// objects drawn from a pool of `pool`, so each object recurs in other answers at other
    /// places, and the text's raw inside of a JSON string (see [`escaped`]).
    pub(crate) fn seeded(seed: u64, pool: usize, count: usize) -> Vec<(String, String)> {
        let mut random = Seeded(seed);
        let objects: Vec<Value> = (0..pool).map(|_| object(&mut random, 0)).collect();
        (0..count)
            .map(|_| {
                let page: Vec<Value> = (0..random.below(12))
                    .map(|_| objects[random.below(pool)].clone())
                    .collect();
                let answer = match random.below(3) {
                    0 => Value::Array(page),
                    _ => json!({ "count": page.len(), "tasks": page, "total": random.below(300) }),
                };
                let text = match random.below(6) {
                    0 => serde_json::to_string_pretty(&answer),
                    _ => serde_json::to_string(&answer),
                }
                .expect("JSON");
                let raw = escaped(&text, &mut random);
                (text, raw)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> usize {
        BPE.get_or_init(load).count(text)
    }

    fn count_in_chunks(text: &str, max_chunk: usize) -> usize {
        super::count_in_chunks(BPE.get_or_init(load), text, max_chunk)
    }

    fn sample_json(pretty: bool) -> String {
        let items: Vec<serde_json::Value> = (0..16)
            .map(|i| {
                serde_json::json!({
                    "id": format!("3f2c9a1e-8b7d-4c2a-9e1f-{i:012}"),
                    "title": format!("Task {i}: wire the ledger's writer to the store"),
                    "status": if i % 3 == 0 { "done" } else { "todo" },
                    "assignee": "Claude Code",
                    "task_order": i * 10,
                    "feature": "ledger/pricing",
                })
            })
            .collect();
        let value = serde_json::json!({ "success": true, "tasks": items, "count": 16 });
        if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        }
    }

    /// Only a count that may wait builds the encoding: before that, the request path's
    /// budget counts no new text and says the analysis is incomplete (the writer then counts
    /// it); once built, the request path counts within its budget, the same counts.
    #[test]
    fn only_a_count_that_may_wait_builds_the_encoding() {
        let encoding = OnceLock::new();
        let first = "words only this test counts, before the encoding is built";
        let key = TextKey::of(first);
        let request_path = &mut Budget::of(1024);
        assert_eq!(
            count_with(&encoding, &key, || first.into(), request_path),
            0
        );
        assert!(request_path.exceeded());
        assert!(encoding.get().is_none(), "the request path built it");
        let writer = &mut Budget::unlimited();
        let counted = count_with(&encoding, &key, || first.into(), writer) as usize;
        assert!(encoding.get().is_some());
        assert_eq!(counted, whole(first));
        assert!(counted > 5, "{counted}");
        let second = "and words only this test counts, once the encoding is built";
        let request_path = &mut Budget::of(1024);
        let counted = count_with(
            &encoding,
            &TextKey::of(second),
            || second.into(),
            request_path,
        );
        assert_eq!(counted as usize, whole(second));
        assert!(!request_path.exceeded());
        // Empty text needs no encoding.
        let empty = &mut Budget::of(0);
        assert_eq!(
            count_with(&OnceLock::new(), &TextKey::of(""), || "".into(), empty),
            0
        );
        assert!(!empty.exceeded());
    }

    #[test]
    fn known_counts() {
        assert_eq!(TOKENIZER, "o200k_base");
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn special_token_text_is_ordinary_text() {
        let n = count("before <|endoftext|> after <|fim_prefix|>");
        assert!(n > 4, "{n}");
    }

    #[test]
    fn a_3kb_json_result_gets_a_plausible_count() {
        let json = sample_json(false);
        assert!((2500..=4000).contains(&json.len()), "{}", json.len());
        let n = count(&json) as usize;
        // JSON runs about 3–4 bytes per token.
        assert!(
            json.len() / 6 < n && n < json.len() / 2,
            "{n} tokens for {} bytes",
            json.len()
        );
    }

    /// Counts `text` chunk by chunk like [`count_in_chunks`]; also says whether any cut was forced.
    fn count_reporting_forced_cuts(text: &str, max: usize) -> (usize, bool) {
        let (mut total, mut forced, mut rest) = (0, false, text);
        while !rest.is_empty() {
            let (cut, exact) = chunk_end(rest, max);
            forced |= !exact;
            total += whole(&rest[..cut]);
            rest = &rest[cut..];
        }
        (total, forced)
    }

    #[test]
    fn chunking_gives_the_same_count_as_encoding_whole() {
        let prose = "The ledger records every request. It's an estimate, isn't it?\n\
                     Yes: tokens are counted with o200k_base — naïve café 東京 🚀 — and priced.\n\n\
                     /path/to/file.rs:12 {\"a\": [1, 22, 333, 4444]}\r\n    indented line\n\
                     Ⓐ, don't stop; x'y \"quoted\" 12,345.67 (paren) [brackets]\n//comment\n"
            .repeat(20);
        let texts = [sample_json(false), sample_json(true), prose];
        let mut exact_runs = 0;
        for text in &texts {
            let expected = whole(text);
            assert_eq!(count_in_chunks(text, MAX_CHUNK), expected);
            for max in [8, 16, 23, 37, 64, 200, 1024] {
                let (counted, forced) = count_reporting_forced_cuts(text, max);
                assert_eq!(counted, count_in_chunks(text, max));
                if !forced {
                    exact_runs += 1;
                    assert_eq!(counted, expected, "max {max} on {:?}…", &text[..40]);
                } else {
                    assert!(max < 64, "a forced cut at max {max}");
                }
            }
        }
        // Most of the sizes above cut only at exact places.
        assert!(exact_runs >= 12, "{exact_runs}");
    }

    #[test]
    fn pathological_runs_are_bounded_and_do_not_panic() {
        let letters = "a".repeat(200_000);
        let n = count(&letters) as usize;
        assert!(n > 0 && n < letters.len(), "{n}");
        let spaces = " ".repeat(200_000);
        assert!(count(&spaces) > 0);
        let wide = "東".repeat(5_000);
        assert!(count(&wide) > 0);
    }

    /// The cut after two punctuation characters before a letter or digit: counting the text on
    /// either side of it apart gives tiktoken's count of the whole, in seeded contexts chosen
    /// against it (contractions, marks, spaces, line ends, digits, non-ASCII punctuation).
    #[test]
    fn a_piece_ends_after_two_punctuation_characters_before_a_letter_or_digit() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let count = |text: &str| full.encode_ordinary(text).len();
        let punctuation: Vec<char> = (0u8..=127)
            .map(char::from)
            .filter(char::is_ascii_punctuation)
            .collect();
        let before = [
            "", "x", "Z", " ", "'", "\n", "é", "9", "it", " \"", "—", "a's", "e\u{301}", "🚀",
            "  ", "\"},", "12345",
        ];
        let after = [
            "", "s", "'s", "bc", "1234", " x", "\n", "é", "t's", "\u{301}", "A", "ll", "/", "'",
        ];
        let letters = ['a', 's', 't', 'Z', 'S', 'T', 'l', 'm', 'd', '7', '0'];
        let mut random = answers::Seeded(3);
        for _ in 0..20_000 {
            let a = punctuation[random.below(punctuation.len())];
            let b = punctuation[random.below(punctuation.len())];
            let c = letters[random.below(letters.len())];
            assert!(piece_always_ends_after_punctuation(a, b, c));
            let head = format!("{}{a}{b}", before[random.below(before.len())]);
            let tail = format!("{c}{}", after[random.below(after.len())]);
            let whole = format!("{head}{tail}");
            assert_eq!(count(&whole), count(&head) + count(&tail), "{whole:?}");
        }
        assert!(!piece_always_ends_after_punctuation('a', '"', 'b'));
        assert!(!piece_always_ends_after_punctuation('"', ' ', 'b'));
        assert!(!piece_always_ends_after_punctuation('{', '"', 'é'));
    }

    /// JSON answers of recurring objects, counted from their raw escaped text by parts: the
    /// whole text's count (and tiktoken's), cold and again warm, when the parts' counts are
    /// all remembered and nothing new may be counted; the parts decode to the text.
    #[test]
    fn escaped_json_counts_by_parts_as_it_counts_whole() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let encoding = OnceLock::from(load());
        let memo = Memo::new(1 << 16);
        // Large enough for every part of every answer (randomly escaped, so seldom alike).
        let kept = Sampled::new(1 << 24);
        let corpus = answers::seeded(7, 60, 600);
        let (mut parts, mut remembered_cold) = (0, 0);
        for (i, (text, raw)) in corpus.iter().enumerate() {
            let serde = serde_json::from_str::<String>(&format!("\"{raw}\""));
            assert_eq!(serde.as_deref().ok(), Some(text.as_str()), "{raw}");
            let expected = whole(text);
            if i % 8 == 0 {
                assert_eq!(full.encode_ordinary(text).len(), expected, "{text}");
            }
            let mut decoded = String::new();
            let mut start = 0;
            let mut cuts = Vec::new();
            each_escaped_cut(raw.as_bytes(), |cut| {
                cuts.push(cut);
                Some(())
            });
            for end in cuts.into_iter().chain([raw.len()]) {
                if end > start {
                    decoded += &json_text::decode_fragment(&raw.as_bytes()[start..end])
                        .unwrap_or_else(|| panic!("{raw}"));
                    parts += 1;
                    start = end;
                }
            }
            assert_eq!(decoded, *text);
            let budget = &mut Budget::of(raw.len());
            let cold = count_escaped_with(&encoding, &memo, &kept, raw.as_bytes(), budget);
            assert_eq!(cold, Some(expected as u32), "{raw}");
            remembered_cold += usize::from(budget.left > 0);
        }
        // Cut often, and objects seen in earlier answers found again.
        assert!(parts > 6 * corpus.len(), "{parts}");
        assert!(remembered_cold > corpus.len() / 2, "{remembered_cold}");
        for (text, raw) in &corpus {
            let none = &mut Budget::of(0);
            let warm = count_escaped_with(&encoding, &memo, &kept, raw.as_bytes(), none);
            assert_eq!(warm, Some(whole(text) as u32), "{raw}");
            assert!(!none.exceeded(), "{raw}");
        }
    }

    /// A page's head is cut before each key, outside the objects of its list (which stay
    /// whole): a page of known tasks whose counts and flags differ from every page seen before
    /// counts only the fields it has not seen, not the whole head; the count is tiktoken's.
    #[test]
    fn a_page_head_is_remembered_field_by_field() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let encoding = OnceLock::from(load());
        let memo = Memo::new(1024);
        let kept = Sampled::new(KEPT_BYTES);
        let task = |n: usize| {
            format!(
                r#"{{"assignee":"Claude Code","id":"3f2c9a1e-{n:04}","status":"todo","title":"Task {n}, with a comma","updated_at":"2026-12-06T18:0{n}:00Z"}}"#
            )
        };
        let page = |closed: usize, per_page: usize, tasks: &[usize], total: usize| {
            let tasks: Vec<String> = tasks.iter().map(|n| task(*n)).collect();
            format!(
                r#"{{"closed_matches":{closed},"count":{},"has_more":{},"page":1,"per_page":{per_page},"success":true,"tasks":[{}],"total":{total}}}"#,
                tasks.len(),
                total > tasks.len(),
                tasks.join(",")
            )
        };
        let raw = |text: &str| text.replace('"', "\\\"");
        let counted = |text: &str, budget: &mut Budget| {
            count_escaped_with(&encoding, &memo, &kept, raw(text).as_bytes(), budget)
        };
        let first = page(0, 3, &[1, 2], 9);
        let cold = counted(&first, &mut Budget::unlimited());
        assert_eq!(cold, Some(full.encode_ordinary(&first).len() as u32));
        // The same tasks in another order, under a head seen only in parts: `per_page` 2 is new
        // (`per_page\":2,\"`, 15 bytes), the rest of the head and the tail are not.
        let second = page(0, 2, &[2, 1], 9);
        let mut budget = Budget::of(16);
        let warm = counted(&second, &mut budget);
        assert!(!budget.exceeded(), "{second}");
        assert_eq!(warm, Some(full.encode_ordinary(&second).len() as u32));
        // The tasks' fields are not cut apart: a task not seen before is one new part, its
        // inside (less `{\"` and `\"}`), even where most of its fields were seen before.
        let third = page(0, 2, &[1, 4], 9);
        let mut budget = Budget::of(raw(&task(4)).len() - 7);
        assert_eq!(counted(&third, &mut budget), Some(0));
        assert!(budget.exceeded());
    }

    /// JSON text (a call's arguments) counted by fields: the whole text's count (and
    /// tiktoken's), cold and again warm, when every field is remembered and nothing new may be
    /// counted; arguments made of fields seen before count nothing new.
    #[test]
    fn arguments_count_by_fields_as_they_count_whole() {
        let corpus = answers::seeded(11, 40, 300);
        let (encoding, memo) = (OnceLock::from(load()), Memo::new(1 << 16));
        let full = tiktoken_rs::o200k_base().expect("tables load");
        for (i, (text, _)) in corpus.iter().enumerate() {
            let counted = count_fields_with(&encoding, &memo, text, &mut Budget::unlimited());
            assert_eq!(counted as usize, whole(text), "{text}");
            if i % 8 == 0 {
                assert_eq!(full.encode_ordinary(text).len(), whole(text), "{text}");
            }
        }
        for (text, _) in &corpus {
            let none = &mut Budget::of(0);
            let warm = count_fields_with(&encoding, &memo, text, none);
            assert_eq!(warm as usize, whole(text), "{text}");
            assert!(!none.exceeded(), "{text}");
        }
        let args =
            |word: &str, per_page: usize| format!(r#"{{"query":"{word}","per_page":{per_page}}}"#);
        for (word, per_page) in [("cache", 3), ("ledger", 7)] {
            count_fields_with(
                &encoding,
                &memo,
                &args(word, per_page),
                &mut Budget::unlimited(),
            );
        }
        let new = args("ledger", 3);
        let none = &mut Budget::of(0);
        let counted = count_fields_with(&encoding, &memo, &new, none);
        assert_eq!(counted as usize, full.encode_ordinary(&new).len());
        assert!(!none.exceeded());
        // Something new within no budget: nothing counted, and the budget says so.
        let none = &mut Budget::of(0);
        assert_eq!(
            count_fields_with(&encoding, &memo, &args("wiki", 3), none),
            0
        );
        assert!(none.exceeded());
    }

    /// Raw text that is not one JSON string's inside, as serde reads one, is not counted (the
    /// full reading decides), and its bad part is not remembered as counted.
    #[test]
    fn escaped_text_serde_would_not_read_is_not_counted() {
        let encoding = OnceLock::from(load());
        let memo = Memo::new(64);
        let kept = Sampled::new(KEPT_BYTES);
        let bad: [&[u8]; 9] = [
            br#"{\"a\":\"b\"},{\"c\":"d"}"#,
            b"{\\\"a\\\":1},{\\\"b\\\":\"\x01\"}",
            br#"{\"a\":\"\q\"}"#,
            br#"{\"a\":1},{\"b\":2}\"#,
            br#"x\u12"#,
            br#"{\"a\":\"\ud83d\"}"#,
            br#"{\"a\":\"\ude80\ud83d\"}"#,
            b"{\\\"a\\\":\"\xff\"}",
            br#"\ud83d\u0041"#,
        ];
        for raw in bad {
            for _ in 0..2 {
                let counted =
                    count_escaped_with(&encoding, &memo, &kept, raw, &mut Budget::unlimited());
                assert_eq!(counted, None, "{}", String::from_utf8_lossy(raw));
            }
        }
        // A pair of surrogates is one character.
        let pair = br#"{\"a\":\"\ud83d\ude80 \uD83D\uDE80\"}"#;
        let counted = count_escaped_with(&encoding, &memo, &kept, pair, &mut Budget::unlimited());
        assert_eq!(counted, Some(whole(r#"{"a":"🚀 🚀"}"#) as u32));
    }

    /// The parts' memo holds at most its capacity, however many parts are counted; counts
    /// stay exact when it starts over.
    #[test]
    fn the_memo_of_parts_is_bounded() {
        let encoding = OnceLock::from(load());
        let memo = Memo::new(32);
        let kept = Sampled::new(1024);
        for (text, raw) in answers::seeded(9, 200, 150) {
            let counted = count_escaped_with(
                &encoding,
                &memo,
                &kept,
                raw.as_bytes(),
                &mut Budget::unlimited(),
            );
            assert_eq!(counted, Some(whole(&text) as u32));
            assert!(memo.held() <= 32, "{}", memo.held());
            assert!(kept.kept_bytes() <= 1024, "{}", kept.kept_bytes());
        }
        assert!(memo.held() > 0);
        assert!(kept.kept_bytes() > 0);
        assert_eq!(CHUNK_MEMO, 4096);
        assert_eq!(KEPT_BYTES, 128 * 1024);
    }

    /// Answers of recurring objects whose long parts are found by their bytes: with the
    /// hashed memo new each time (it holds only short parts), most bytes of answers whose
    /// objects were seen before are not counted again; every count is tiktoken's, cold and
    /// warm; a part differing from a kept one only between its sampled words is counted anew.
    #[test]
    fn long_parts_are_found_by_their_bytes() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let encoding = OnceLock::from(load());
        let kept = Sampled::new(KEPT_BYTES);
        let inside = |text: &str| {
            let raw = serde_json::to_string(text).expect("a string");
            raw[1..raw.len() - 1].to_string()
        };
        // Escaped the one way serde_json escapes (`answers` varies it from answer to answer).
        let corpus: Vec<(String, String)> = answers::seeded(17, 30, 300)
            .into_iter()
            .map(|(text, _)| {
                let raw = inside(&text);
                (text, raw)
            })
            .collect();
        for warm in [false, true] {
            let (mut found, mut total) = (0, 0);
            for (i, (text, raw)) in corpus.iter().enumerate() {
                let expected = whole(text) as u32;
                if i % 8 == 0 {
                    assert_eq!(full.encode_ordinary(text).len() as u32, expected, "{text}");
                }
                let memo = Memo::new(1 << 16);
                let budget = &mut Budget::of(raw.len());
                let counted = count_escaped_with(&encoding, &memo, &kept, raw.as_bytes(), budget);
                assert_eq!(counted, Some(expected), "{raw}");
                found += budget.left;
                total += raw.len();
            }
            assert!(found * 2 > total, "warm {warm}: {found} of {total}");
        }
        // Same length, same first, middle and last words, other bytes between: counted.
        let memo = Memo::new(64);
        let object = |word: &str| {
            format!(r#"{{"title":"{word} and the words around it, long enough to sample"}}"#)
        };
        for word in ["cache", "cachf", "cachg"] {
            let text = object(word);
            let budget = &mut Budget::of(0);
            let counted =
                count_escaped_with(&encoding, &memo, &kept, inside(&text).as_bytes(), budget);
            if word == "cache" {
                // Not seen yet: refused within no budget.
                assert!(budget.exceeded());
                let counted = count_escaped_with(
                    &encoding,
                    &memo,
                    &kept,
                    inside(&text).as_bytes(),
                    &mut Budget::unlimited(),
                );
                assert_eq!(counted, Some(full.encode_ordinary(&text).len() as u32));
            } else {
                assert_eq!(counted, Some(0), "{text}");
                assert!(budget.exceeded(), "{text}");
            }
        }
        let text = object("cache");
        let none = &mut Budget::of(0);
        let counted = count_escaped_with(&encoding, &memo, &kept, inside(&text).as_bytes(), none);
        assert_eq!(counted, Some(full.encode_ordinary(&text).len() as u32));
        assert!(!none.exceeded());
        // A part too long to keep (a long plain text) is found again by its hash.
        let long = "a plain text without braces, ".repeat(400);
        assert!(!kept.keeps(long.len()));
        let count = |budget: &mut Budget| {
            count_escaped_with(&encoding, &memo, &kept, long.as_bytes(), budget)
        };
        assert_eq!(count(&mut Budget::unlimited()), Some(whole(&long) as u32));
        let none = &mut Budget::of(0);
        assert_eq!(count(none), Some(whole(&long) as u32));
        assert!(!none.exceeded());
    }

    /// The raw inside of `text` as a JSON string, escaped the one way serde_json escapes (so
    /// an object recurs byte for byte; `answers` varies its escapes from answer to answer).
    fn serde_inside(text: &str) -> String {
        let raw = serde_json::to_string(text).expect("a string");
        raw[1..raw.len() - 1].to_string()
    }

    /// A jump over a kept inside passes exactly a part the search finds and lands on the cut
    /// after it: on seeded answers whose objects recur (nested ones, keys and values chosen
    /// against the cuts), the places read with jumps over every object's inside seen in
    /// earlier answers are the search's cuts, and most insides are jumped over.
    #[test]
    fn a_jump_passes_a_part_the_search_finds() {
        let kept = Sampled::new(1 << 24);
        let (mut jumped, mut insides) = (0, 0);
        for (text, _) in answers::seeded(17, 30, 300) {
            let raw = serde_inside(&text);
            let raw = raw.as_bytes();
            let mut searched = Vec::new();
            escaped_cuts(raw, |at, rule| {
                searched.push((at, rule));
                Some(at)
            });
            let mut read = Vec::new();
            let held = kept.hold();
            escaped_cuts(raw, |at, rule| {
                read.push(at);
                let jump = (rule == Cut::ObjectStart)
                    .then(|| held.starting(&raw[at..], |len| closes_kept_inside(raw, at + len)))
                    .flatten();
                let Some((len, ())) = jump else {
                    return Some(at);
                };
                jumped += 1;
                // The cut after it, which the search passes on without calling back.
                read.push(at + len);
                Some(at + len)
            });
            drop(held);
            let cuts: Vec<usize> = searched.iter().map(|(at, _)| *at).collect();
            assert_eq!(read, cuts, "{}", String::from_utf8_lossy(raw));
            for pair in searched.windows(2) {
                if let [(start, Cut::ObjectStart), (end, Cut::ObjectEnd)] = pair
                    && kept.keeps(end - start)
                {
                    kept.insert_start(&raw[*start..*end], ());
                    insides += 1;
                }
            }
        }
        assert!(
            jumped * 2 > insides && insides > 300,
            "{jumped} of {insides}"
        );
    }

    /// The same counts with and without jumps, cold and warm, and tiktoken's: on answers
    /// escaped at random (objects seldom alike) and as serde_json escapes (objects recurring
    /// byte for byte), each way with memos of its own.
    #[test]
    fn counts_with_and_without_jumps_are_equal() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let encoding = OnceLock::from(load());
        let random = answers::seeded(23, 40, 300);
        let serde: Vec<(String, String)> = random
            .iter()
            .map(|(text, _)| (text.clone(), serde_inside(text)))
            .collect();
        for corpus in [random, serde] {
            let memos = [Jumps::Over, Jumps::Never]
                .map(|jumps| (jumps, Memo::new(1 << 16), Sampled::new(KEPT_BYTES)));
            for warm in [false, true] {
                for (i, (text, raw)) in corpus.iter().enumerate() {
                    let expected = whole(text) as u32;
                    if i % 16 == 0 {
                        assert_eq!(full.encode_ordinary(text).len() as u32, expected, "{text}");
                    }
                    for (jumps, memo, kept) in &memos {
                        let budget = &mut Budget::unlimited();
                        let parts = Parts {
                            encoding: &encoding,
                            memo,
                            kept,
                        };
                        let counted = count_escaped_jumping(&parts, raw.as_bytes(), budget, *jumps);
                        assert_eq!(counted, Some(expected), "warm {warm}: {raw}");
                    }
                }
            }
        }
    }

    /// A kept inside is jumped over only where the search would pass it whole: tasks that
    /// share a long head are found (a page of known tasks counts nothing new); one that
    /// differs from a kept one after the shared head, and the kept bytes followed by more of
    /// the value, are counted anew as a whole part (their whole inside taken from the
    /// budget), and every count is tiktoken's.
    #[test]
    fn a_kept_inside_is_jumped_over_only_where_the_search_passes_it_whole() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let encoding = OnceLock::from(load());
        let tiktoken = |text: &str| Some(full.encode_ordinary(text).len() as u32);
        let head = r#""archived":false,"archived_at":null,"assignee":"Claude Code","blocked_by":[],"code_examples":[],"created_at":"2026-12-06T21:00:00Z""#;
        let task = |title: &str| format!(r#"{{{head},"title":"{title}"}}"#);
        let page = |tasks: &[String]| format!("[{}]", tasks.join(","));
        let known = [task("Wire the ledger 1"), task("Wire the ledger 2")];
        let (memo, kept) = (Memo::new(1024), Sampled::new(KEPT_BYTES));
        for text in &known {
            let counted = count_escaped_with(
                &encoding,
                &memo,
                &kept,
                serde_inside(text).as_bytes(),
                &mut Budget::unlimited(),
            );
            assert_eq!(counted, tiktoken(text));
        }
        // Known tasks in a page, with the hashed memo new: its `[{\"` and `\"},{\"` are
        // new, the tasks' insides are not.
        let text = page(&[known[1].clone(), known[0].clone(), known[1].clone()]);
        let raw = serde_inside(&text);
        let inside = serde_inside(&known[0]).len() - 6;
        let budget = &mut Budget::of(raw.len() - 3 * inside);
        let counted = count_escaped_with(&encoding, &Memo::new(64), &kept, raw.as_bytes(), budget);
        assert_eq!(counted, tiktoken(&text));
        assert!(!budget.exceeded(), "{text}");
        // Near misses: another title after the shared head; the kept title followed by more
        // of it (letters, `'s`, a digit, a space and a word, an escape, a mark).
        let others = [
            "Wire the ledger 3",
            "Wire the ledger 1def",
            "Wire the ledger 1's",
            "Wire the ledger 19",
            "Wire the ledger 1 x",
            "Wire the ledger 1\n",
            "Wire the ledger 1\u{301}",
            "Wire the ledger 1\"",
            "Wire the ledger 2 and 1",
        ];
        for title in others {
            let text = task(title);
            let raw = serde_inside(&text);
            // Known so far: the two tasks alone.
            let (memo, kept) = (Memo::new(1024), Sampled::new(KEPT_BYTES));
            for text in &known {
                count_escaped_with(
                    &encoding,
                    &memo,
                    &kept,
                    serde_inside(text).as_bytes(),
                    &mut Budget::unlimited(),
                );
            }
            let budget = &mut Budget::unlimited();
            let counted = count_escaped_with(&encoding, &memo, &kept, raw.as_bytes(), budget);
            assert_eq!(counted, tiktoken(&text), "{text}");
            // The whole inside counted anew, not the kept one and what follows it.
            let new = usize::MAX - budget.left;
            assert!(new > head.len(), "{new} bytes counted anew in {raw}");
        }
    }

    #[test]
    fn chunk_ends_are_char_boundaries() {
        let text = "é".repeat(100);
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let (cut, _) = chunk_end(rest, 7);
            assert!(cut > 0 && rest.is_char_boundary(cut));
            rest = &rest[cut..];
        }
    }
}
