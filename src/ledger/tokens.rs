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
//! Text is encoded as ordinary text: special-token strings such as `<|endoftext|>` count as
//! the plain text they are, and never fail. Long text is encoded in pieces cut only where the
//! encoding's own pre-tokenizer would cut, so the count is the same as encoding it whole; only a
//! run longer than [`MAX_CHUNK`] bytes with no such place (e.g. a megabyte of one letter) is cut
//! anywhere, which may shift its count by a token per cut but bounds the regex backtracking and
//! the quadratic merging that would otherwise stall or panic on such input.

use std::sync::{LazyLock, OnceLock};

use super::bpe::Encoding;
use super::memo::{Memo, TextKey};

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

/// [`count_keyed`] with the encoding in `encoding` (built there if `budget` may build it).
fn count_with<'t>(
    encoding: &OnceLock<Encoding>,
    key: &TextKey,
    text: impl FnOnce() -> std::borrow::Cow<'t, str>,
    budget: &mut Budget,
) -> u32 {
    static COUNTS: LazyLock<Memo<u32>> = LazyLock::new(|| Memo::new(4096));
    if let Some(count) = COUNTS.get(key) {
        return count;
    }
    if key.text_len() == 0 {
        return 0;
    }
    let bpe = match encoding.get() {
        Some(bpe) => bpe,
        None if budget.may_build => encoding.get_or_init(load),
        // Building it takes milliseconds the request path cannot wait: the writer counts.
        None => {
            budget.exceeded = true;
            return 0;
        }
    };
    if !budget.take(key.text_len()) {
        return 0;
    }
    let count = u32::try_from(count_in_chunks(bpe, &text(), MAX_CHUNK)).unwrap_or(u32::MAX);
    COUNTS.insert(key, count);
    count
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

    /// Whether `bytes` of new text are more than what is left, and so could not be counted:
    /// then the budget is marked exceeded, before anything is read or counted.
    pub fn refuses(&mut self, bytes: usize) -> bool {
        if bytes > self.left {
            self.exceeded = true;
        }
        self.exceeded
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
