//! `o200k_base` in a compact form, for counting only. tiktoken-rs keeps its ranks in three maps
//! of 200,000 separately allocated byte strings (encoder, decoder and a sorted copy) and a
//! regex per thread, about 50 MiB resident. Counting needs only "is this a token, and which
//! comes first in rank order": here the tokens, in rank order, and a hash index of where each
//! is in that table are tables in the binary's read-only data (written by `build.rs`), shared
//! between processes and paged in only where a lookup reads them; nothing is built at start
//! but the pre-tokenizer's regex. The counts of recent pieces that take merging are kept in a
//! bounded cache ([`super::pieces`], at most 128 KiB). Tests check that counts are identical
//! to tiktoken-rs's on a corpus of real text, with the cache cold and warm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fancy_regex::Regex;

use super::pieces::PieceCache;
use super::pretokenize::{AsciiPieces, Stretch, stretches};
use super::rank_hash::{self, PLACE_BITS, SLOT_BITS};

/// A token's place: where its entry starts in [`TABLE`]. The table is in rank order, so
/// places order tokens as their ranks do, which is all the merge asks of a rank; the index
/// holds places, not ranks, so no table of where each rank starts is needed.
type Place = u32;

/// Each ordinary token in rank order: its length in one byte, then its bytes.
static TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ranks"));
/// The tokens' places by their bytes: 2^[`SLOT_BITS`] little-endian `u32` slots, each [`FREE`]
/// or an entry: a place in the low [`PLACE_BITS`] bits, above them the fingerprint of the
/// token's bytes (their hash's low bits, which do not pick the bucket). A token's entry is in
/// the one slot its hash and its bucket's pilot in [`PILOTS`] pick ([`rank_hash`], a perfect
/// hash that `build.rs` lays out); a lookup reads a token's bytes only where the fingerprint
/// matches: a hit reads its own token's, a miss about once in 2^11.
static INDEX: &[u8; 4 << SLOT_BITS] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.index"));
/// Each bucket's pilot, a little-endian `u16` ([`rank_hash::BUCKETS`] of them). Both tables
/// have their lengths in their types (a build that wrote others does not compile), so the
/// compiler knows a bucket's or a slot's offset is within them and checks no bounds.
static PILOTS: &[u8; 2 * rank_hash::BUCKETS] =
    include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.pilots"));
/// An index slot without an entry (no entry has all its place bits set: `build.rs` checks).
const FREE: u32 = u32::MAX;
/// The pre-tokenizer's pattern, as tiktoken-rs has it.
static PATTERN: &str = include_str!(concat!(env!("OUT_DIR"), "/o200k_base.pattern"));

/// Pieces up to this long are merged in arrays on the stack, by tiktoken's simple loop (a
/// scan of the parts per merge, n² for n bytes); longer ones by [`Encoding::merged_parts`].
const SHORT: usize = 32;

pub struct Encoding {
    /// The pre-tokenizer: text is cut into pieces, and pieces are merged into tokens.
    pieces: Regex,
    /// The counts of recent pieces that are more than one token.
    merged: PieceCache,
}

impl Encoding {
    /// `o200k_base`, from the tables built into the binary.
    pub fn o200k_base() -> Result<Self, String> {
        let pieces = Regex::new(PATTERN).map_err(|e| e.to_string())?;
        Ok(Encoding {
            pieces,
            merged: PieceCache::new(),
        })
    }

    fn place(&self, piece: &[u8]) -> Option<Place> {
        let words = rank_hash::words(piece);
        place_of(piece, words, rank_hash::hash_words(words, piece.len()))
    }

    /// How many tokens `text` is, encoded as ordinary text (special-token strings are text).
    /// ASCII text is cut by the hand-written pre-tokenizer, which costs a fraction of the
    /// regex (BENCHMARKS.md, session 25); stretches around non-ASCII characters by the regex.
    pub fn count(&self, text: &str) -> usize {
        stretches(text)
            .map(|stretch| match stretch {
                Stretch::Ascii(pieces) => self.count_ascii(pieces),
                Stretch::Other(other) => self.count_by_regex(other),
            })
            .sum()
    }

    /// The tokens of an ASCII stretch's pieces, in one loop with the pre-tokenizer inlined. A
    /// piece of one byte is a token (every byte is), and so is one a digit leads: the
    /// pre-tokenizer cuts numbers into pieces of one to three digits, each a token (a test
    /// checks all 1,110); both are counted here without a lookup.
    fn count_ascii(&self, pieces: AsciiPieces<'_>) -> usize {
        let mut total = 0;
        for piece in pieces {
            total += match piece {
                [_] | [b'0'..=b'9', ..] => 1,
                _ => self.count_piece(piece),
            };
        }
        total
    }

    fn count_by_regex(&self, text: &str) -> usize {
        self.regex_pieces(text)
            .map(|piece| self.count_piece(piece.as_bytes()))
            .sum()
    }

    /// The pieces the pattern cuts `text` into (a match that fails, which the pattern's one
    /// look-ahead cannot make happen, is skipped).
    fn regex_pieces<'t>(&self, text: &'t str) -> impl Iterator<Item = &'t str> {
        self.pieces
            .find_iter(text)
            .filter_map(Result::ok)
            .map(|piece| piece.as_str())
    }

    /// A piece's count: 1 if it is a token, else the tokens its merge leaves.
    #[inline]
    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() == 1 {
            return 1;
        }
        let words = rank_hash::words(piece);
        let hash = rank_hash::hash_words(words, piece.len());
        if place_of(piece, words, hash).is_some() {
            return 1;
        }
        self.count_merged(piece, hash)
    }

    /// The count of a piece that is not one token, kept in the cache (found by the high half
    /// of the hash its lookup computed anyway). Out of line: few pieces come here (~1 in
    /// 12 on the `instructions` bench), and inlined, its lock and its merge's arrays on the
    /// stack made every piece's count save and restore registers.
    #[inline(never)]
    fn count_merged(&self, piece: &[u8], hash: u64) -> usize {
        let cache_hash = (hash >> 32) as u32;
        if let Some(count) = self.merged.get(cache_hash, piece) {
            return count;
        }
        let count = self.merged_short(piece);
        self.merged.insert(cache_hash, piece, count);
        count
    }

    /// The tokens a piece that is not one token merges into, without the cache. A piece of at
    /// most [`SHORT`] bytes is merged as tiktoken merges: the parts' starts and the places of
    /// each part joined with the next in arrays on the stack, the lowest (the leftmost of
    /// equals; places order as ranks) merged until no joined pair is a token; no allocation.
    /// A longer one goes to [`Self::merged_parts`].
    fn merged_short(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        if n > SHORT {
            return self.merged_parts(piece);
        }
        // Part i is piece[start[i]..start[i + 1]] (the last part's end is n); place[i] is the
        // place of parts i and i + 1 joined, Place::MAX if they are no token or i + 1 is no part.
        let mut start = [0usize; SHORT + 1];
        let mut place = [Place::MAX; SHORT];
        for (i, at) in start.iter_mut().enumerate().take(n + 1) {
            *at = i;
        }
        let mut parts = n;
        let joined = |start: &[usize; SHORT + 1], parts: usize, i: usize| -> Place {
            if i + 1 >= parts {
                return Place::MAX;
            }
            piece
                .get(start[i]..start[i + 2])
                .and_then(|bytes| self.place(bytes))
                .unwrap_or(Place::MAX)
        };
        for (i, pair) in place.iter_mut().enumerate().take(n.saturating_sub(1)) {
            *pair = joined(&start, parts, i);
        }
        while parts > 1 {
            let Some((i, &lowest)) = place[..parts - 1]
                .iter()
                .enumerate()
                .min_by_key(|&(i, &pair)| (pair, i))
            else {
                break;
            };
            if lowest == Place::MAX {
                break;
            }
            // Part i + 1 joins part i.
            start.copy_within(i + 2..=parts, i + 1);
            place.copy_within(i + 2..parts, i + 1);
            parts -= 1;
            place[parts - 1] = Place::MAX;
            place[i] = joined(&start, parts, i);
            if i > 0 {
                place[i - 1] = joined(&start, parts, i - 1);
            }
        }
        parts
    }

    /// The byte-pair merge of tiktoken: repeatedly join the adjacent pair whose joined bytes
    /// have the lowest rank (the lowest place; the leftmost of equals), until no adjacent pair
    /// is a token.
    /// Returns the number of tokens left. The parts are a linked list and the candidate pairs
    /// a heap (entries made stale by a merge are skipped), so a long piece costs n log n, not
    /// n² (tiktoken does the same for pieces of 100 bytes or more).
    fn merged_parts(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        // Part i covers piece[i..next[i]]; prev/next link the parts still standing.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        // The place of part i joined with the part after it, as last computed.
        let mut pair: Vec<Place> = vec![Place::MAX; n];
        let mut heap = BinaryHeap::with_capacity(n);
        let place_at = |next: &[usize], i: usize| -> Place {
            let end = next[i];
            if end >= n {
                return Place::MAX;
            }
            self.place(&piece[i..next[end]]).unwrap_or(Place::MAX)
        };
        for (i, place) in pair.iter_mut().enumerate() {
            *place = place_at(&next, i);
            if *place != Place::MAX {
                heap.push(Reverse((*place, i)));
            }
        }
        let mut parts = n;
        while let Some(Reverse((place, i))) = heap.pop() {
            // Stale: part i was merged away (its `prev` link cut) or its pair changed since.
            if pair[i] != place || (i > 0 && prev[i] == usize::MAX) {
                continue;
            }
            let gone = next[i];
            next[i] = next[gone];
            if next[i] < n {
                prev[next[i]] = i;
            }
            prev[gone] = usize::MAX;
            pair[gone] = Place::MAX;
            parts -= 1;
            for part in [Some(i), (i > 0).then(|| prev[i])].into_iter().flatten() {
                pair[part] = place_at(&next, part);
                if pair[part] != Place::MAX {
                    heap.push(Reverse((pair[part], part)));
                }
            }
        }
        parts
    }
}

/// The place of `piece`, whose [`rank_hash::words`] are `words` and whose hash is `hash`, if
/// it is a token: its bucket's pilot and the hash pick the one slot it can be in, and the
/// token there, if it has the piece's fingerprint, is compared with it. Inlined into each
/// caller, which has the words and the hash at hand.
#[inline(always)]
fn place_of(piece: &[u8], words: (u64, u64), hash: u64) -> Option<Place> {
    let entry = entry_of(hash)?;
    if entry == FREE || entry >> PLACE_BITS != rank_hash::fingerprint(hash) {
        return None;
    }
    let place = entry & ((1 << PLACE_BITS) - 1);
    let token = token_at(place);
    let same = token.len() == piece.len()
        && if piece.len() <= 16 {
            // Equal lengths up to 16 bytes: equal words are equal bytes, compared inline where
            // a call to `bcmp` costs more than the compare.
            rank_hash::words(token) == words
        } else {
            token == piece
        };
    same.then_some(place)
}

/// The entry in the slot a piece with this hash can be in (never `None`: the bucket and the
/// slot are within the tables, whose lengths are in their types).
#[inline]
fn entry_of(hash: u64) -> Option<u32> {
    let at = rank_hash::bucket(hash) * 2;
    let pilot = u16::from_le_bytes(*PILOTS.get(at..)?.first_chunk()?);
    let at = rank_hash::slot(hash, pilot) * 4;
    INDEX
        .get(at..)?
        .first_chunk()
        .map(|entry| u32::from_le_bytes(*entry))
}

/// The bytes of the token whose entry starts at `place` in [`TABLE`] (empty past its end).
#[inline]
fn token_at(place: Place) -> &'static [u8] {
    let start = place as usize;
    let len = TABLE.get(start).copied().map_or(0, usize::from);
    TABLE.get(start + 1..start + 1 + len).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::pieces::{CAPACITY, ENTRY_BYTES};
    use super::super::pretokenize::ascii_pieces;
    use super::*;

    /// At least 1,000 texts of the kinds the ledger counts: JSON-RPC requests and tool results
    /// shaped like Steward's, and the repository's own prose, code and JSON in pieces of the
    /// sizes messages have.
    fn corpus() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for file in [
            "README.md",
            "docs/tools.md",
            "docs/operations.md",
            "docs/security.md",
            "BENCHMARKS.md",
            "docs/openapi.yaml",
            "dashboard/app.js",
            "src/mcp/tools/tasks.rs",
        ] {
            let text = std::fs::read_to_string(root.join(file)).expect("repository file");
            let chars: Vec<char> = text.chars().collect();
            for (i, piece) in chars.chunks(700).enumerate() {
                let cut = [40, 180, 700][i % 3].min(piece.len());
                texts.push(piece[..cut].iter().collect());
            }
        }
        const STATUSES: [&str; 4] = ["todo", "doing", "review", "done"];
        for i in 0..400 {
            let title = [
                "Fix the ledger",
                "naïve café 東京 🚀",
                "it's \"quoted\"\n\ttabbed",
            ][i % 3];
            texts.push(
                serde_json::json!({
                    "jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "manage_task", "arguments": {
                        "action": "create", "project_id": format!("{i:08x}-1f2e-4c3b-9a8d-7e6f5a4b3c2d"),
                        "title": format!("{title} #{i}"), "task_order": i % 101,
                        "description": "x".repeat(i % 37), "assignee": "Claude Code"}}
                })
                .to_string(),
            );
            texts.push(
                serde_json::json!({"success": true, "tasks": (0..i % 12).map(|n| serde_json::json!({
                    "id": format!("{n:08}-aaaa-bbbb-cccc-dddddddddddd"), "title": format!("{title} {n}"),
                    "status": STATUSES[n % 4], "task_order": n * 7,
                    "created_at": "2026-12-03T05:20:49.123456Z"})).collect::<Vec<_>>(),
                    "count": i % 12, "has_more": i % 2 == 0})
                .to_string(),
            );
        }
        texts.push("<|endoftext|> before <|fim_prefix|> \u{0} \r\n\r\n   trailing   ".into());
        texts
    }

    /// A seeded splitmix64: the generated texts are the same on every run.
    struct Seeded(u64);

    impl Seeded {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            usize::try_from((z ^ (z >> 31)) % n as u64).expect("below n")
        }
    }

    /// `count` seeded texts of 0 to `longest` characters drawn from `alphabet`.
    fn generated(alphabet: &str, seed: u64, longest: usize, count: usize) -> Vec<String> {
        let alphabet: Vec<char> = alphabet.chars().collect();
        let mut random = Seeded(seed);
        (0..count)
            .map(|_| {
                let len = random.below(longest + 1);
                (0..len)
                    .map(|_| alphabet[random.below(alphabet.len())])
                    .collect()
            })
            .collect()
    }

    fn assert_same_pieces(compact: &Encoding, text: &str) {
        let by_hand: Vec<&str> = ascii_pieces(text)
            .expect("ASCII text")
            .map(|piece| std::str::from_utf8(piece).expect("ASCII"))
            .collect();
        let by_regex: Vec<&str> = compact.regex_pieces(text).collect();
        assert_eq!(by_hand, by_regex, "{text:?}");
    }

    #[test]
    fn ascii_pieces_are_the_regexs_on_the_corpus() {
        let compact = Encoding::o200k_base().expect("tables load");
        let texts = corpus();
        let ascii: Vec<&String> = texts.iter().filter(|text| text.is_ascii()).collect();
        assert!(ascii.len() >= 1000, "{} ASCII texts", ascii.len());
        for text in ascii {
            assert_same_pieces(&compact, text);
        }
    }

    /// Short texts over an alphabet weighted toward where the pattern's alternatives meet:
    /// contractions in both cases, runs of digits, spaces before words, punctuation and line
    /// breaks, whitespace runs before non-space, control bytes.
    #[test]
    fn ascii_pieces_are_the_regexs_on_generated_text() {
        let compact = Encoding::o200k_base().expect("tables load");
        let alphabet = "aAzZqQ sStTrReEvVmMlLdD''''    \t\t\r\n\r\n//0123456789.,:;-_!?\"\"\\\\{}[]()<>#@$%&*+=|~`\u{0}\u{b}\u{c}\u{1f}\u{7f}";
        for text in generated(alphabet, 25, 64, 100_000) {
            assert_same_pieces(&compact, &text);
        }
    }

    /// Long words read eight bytes at a time: runs of lower case letters of every length up to
    /// 40 at every offset, ended by the bytes just outside `a`–`z` (`` ` `` and `{`), an upper
    /// case letter, a contraction, a digit, a space or the end of the text.
    #[test]
    fn ascii_pieces_are_the_regexs_on_long_words() {
        let compact = Encoding::o200k_base().expect("tables load");
        let alphabet = "abcdefghijklmnopqrstuvwxyz".repeat(4) + "`{AZ'@[ \n0";
        for text in generated(&alphabet, 28, 80, 20_000) {
            assert_same_pieces(&compact, &text);
        }
        for len in 0..=40 {
            let word = "q".repeat(len);
            for (before, after) in [("", ""), ("`", "{"), (" ", "'ll"), ("X", "Ye"), ("\"", "7")] {
                assert_same_pieces(&compact, &format!("{before}{word}{after}"));
            }
        }
    }

    /// Whitespace runs where the alternatives meet: a run led by a line break and followed by
    /// spaces, breaks last and first, runs at the end of the text and before punctuation, a
    /// lone space before a word, a digit or a slash.
    #[test]
    fn ascii_pieces_are_the_regexs_on_whitespace_runs() {
        let texts = [
            "\n   x",
            "\n",
            "\r\n",
            " \n",
            "\n ",
            "x  ",
            "x \t",
            "\t\n\t x",
            "a\n\n  b",
            "\n  /x",
            "  \"",
            " 1",
            "  1",
            "\t.",
            " \n/",
            "\r \r x",
            "x\u{b}\u{c}y",
        ];
        let compact = Encoding::o200k_base().expect("tables load");
        for text in texts {
            assert_same_pieces(&compact, text);
        }
    }

    /// What `count_ascii` counts without a lookup: every number of one to three ASCII digits
    /// (leading zeros too) is one token, and the pre-tokenizer cuts no longer piece that a
    /// digit leads.
    #[test]
    fn numbers_of_up_to_three_digits_are_one_token() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let numbers: Vec<String> = (1..=3)
            .flat_map(|digits| {
                (0..10usize.pow(digits))
                    .map(move |n| format!("{n:0digits$}", digits = digits as usize))
            })
            .collect();
        assert_eq!(numbers.len(), 1_110);
        for number in &numbers {
            assert_eq!(full.encode_ordinary(number).len(), 1, "{number}");
            assert!(compact.place(number.as_bytes()).is_some(), "{number}");
        }
        let digits = "01234567890123456789".repeat(3);
        let pieces: Vec<&[u8]> = ascii_pieces(&digits).expect("ASCII").collect();
        assert!(pieces.iter().all(|piece| piece.len() == 3), "{pieces:?}");
        assert_eq!(compact.count(&digits), digits.len() / 3);
    }

    /// Random bytes made valid UTF-8, mostly ASCII: no panic, the pieces tile the text, and
    /// counts (by either path) are tiktoken's.
    #[test]
    fn random_text_counts_like_tiktoken() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let mut random = Seeded(5);
        for round in 0..20_000 {
            let len = random.below(96);
            let top = if round % 4 == 0 { 256 } else { 128 };
            let bytes: Vec<u8> = (0..len)
                .map(|_| u8::try_from(random.below(top)).expect("a byte"))
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            if let Some(pieces) = ascii_pieces(&text) {
                assert_eq!(pieces.collect::<Vec<_>>().concat(), text.as_bytes());
            }
            let expected = full.encode_ordinary(&text).len();
            assert_eq!(compact.count(&text), expected, "{text:?}");
        }
    }

    /// Board answers as the ledger counts them: JSON of tasks with random UUIDs and times,
    /// whose hex and digit pieces are new on almost every text, counted through one encoding
    /// so its piece cache fills, evicts and answers again as on a server.
    #[test]
    fn board_answers_with_random_ids_count_like_tiktoken() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let mut random = Seeded(11);
        let uuid = |random: &mut Seeded| {
            let hex: String = (0..32)
                .map(|_| char::from(b"0123456789abcdef"[random.below(16)]))
                .collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        };
        let words = [
            "cache", "ledger", "Refactor", "session", "the", "board", "écrire",
        ];
        for _ in 0..3_000 {
            let tasks: Vec<String> = (0..1 + random.below(10))
                .map(|_| {
                    let title: Vec<&str> = (0..4).map(|_| words[random.below(words.len())]).collect();
                    format!(
                        r#"{{"id":"{}","project_id":"{}","title":"{}","status":"todo","task_order":{},"created_at":"2026-12-0{}T{:02}:{:02}:{:02}.{:06}Z"}}"#,
                        uuid(&mut random),
                        uuid(&mut random),
                        title.join(" "),
                        random.below(1000),
                        1 + random.below(9),
                        random.below(24),
                        random.below(60),
                        random.below(60),
                        random.below(1_000_000)
                    )
                })
                .collect();
            let text = format!(r#"{{"success":true,"tasks":[{}]}}"#, tasks.join(","));
            assert_eq!(
                compact.count(&text),
                full.encode_ordinary(&text).len(),
                "{text}"
            );
        }
    }

    /// The pieces `count` counts: its stretches' pieces, by hand or by the regex.
    fn stretch_pieces<'t>(compact: &Encoding, text: &'t str) -> Vec<&'t str> {
        stretches(text)
            .flat_map(|stretch| -> Vec<&'t str> {
                match stretch {
                    Stretch::Ascii(pieces) => pieces
                        .map(|piece| std::str::from_utf8(piece).expect("ASCII"))
                        .collect(),
                    Stretch::Other(other) => compact.regex_pieces(other).collect(),
                }
            })
            .collect()
    }

    /// Mixed texts: the ASCII alphabet above with accents, CJK, emoji, combining marks, a
    /// no-break space (`\s`), a title-case letter, the long s and the Kelvin sign (which `(?i)`
    /// folds to `s` and `k`) and a non-ASCII digit, next to letters, digits and apostrophes.
    #[test]
    fn stretch_pieces_are_the_regexs_on_mixed_text() {
        let compact = Encoding::o200k_base().expect("tables load");
        let alphabet = "aAzZsStTrReEvVmMlLdD'''  \t\r\n/019.,-\"\\{}é東🚀\u{301}\u{300}\u{a0}\u{1c5}\u{17f}\u{212a}\u{663}\u{2028}";
        // Mixed, ASCII of up to twice the stretches' shortest ASCII between, mixed: stretches
        // of both kinds and their cuts in one text.
        let ascii = "aAsStT'' \t\n/09.,\"{}";
        let texts = generated(alphabet, 2026, 24, 100_000)
            .into_iter()
            .zip(generated(ascii, 2027, 64, 100_000))
            .zip(generated(alphabet, 2028, 24, 100_000))
            .map(|((before, between), after)| before + &between + &after);
        for text in texts.chain(corpus()) {
            let whole: Vec<&str> = compact.regex_pieces(&text).collect();
            assert_eq!(stretch_pieces(&compact, &text), whole, "{text:?}");
        }
    }

    /// Accents, CJK, emoji and combining marks next to ASCII letters and apostrophes count as
    /// tiktoken counts them.
    #[test]
    fn mixed_text_counts_like_tiktoken() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        for text in [
            "it's café's 'S naïve",
            "e\u{301}'ll A\u{300}BC'RE x",
            "東京's 🚀rocket  \u{a0}word",
            "{\"title\": \"Ünïcödé\\n 東京 #1\"}",
        ] {
            assert!(ascii_pieces(text).is_none());
            assert_eq!(
                compact.count(text),
                full.encode_ordinary(text).len(),
                "{text:?}"
            );
        }
    }

    /// Not a check but a measurement: under callgrind, `PRETOK_ROUNDS` rounds of counting the
    /// corpus (its ASCII texts only with `PRETOK_ASCII` set), by `count`, or by the regex
    /// alone with `PRETOK_REGEX` set; the difference of two round counts is the counting
    /// alone (BENCHMARKS.md, session 25).
    #[test]
    #[ignore]
    fn counting_the_corpus() {
        let compact = Encoding::o200k_base().expect("tables load");
        let ascii_only = std::env::var_os("PRETOK_ASCII").is_some();
        // With `PRETOK_DENSE`, texts where non-ASCII characters are so dense that nearly every
        // stretch goes to the regex, a short one at a time: the worst case of the stretches.
        let texts: Vec<String> = if std::env::var_os("PRETOK_DENSE").is_some() {
            ["é1 ", "東a.", "naïve café's ", "\u{a0}x, "]
                .iter()
                .flat_map(|unit| (1..=40).map(|n| unit.repeat(n * 5)))
                .collect()
        } else {
            corpus()
                .into_iter()
                .filter(|text| !ascii_only || text.is_ascii())
                .collect()
        };
        let rounds: usize =
            std::env::var("PRETOK_ROUNDS").map_or(1, |n| n.parse().expect("a number"));
        let by_regex = std::env::var_os("PRETOK_REGEX").is_some();
        // With `BPE_BEFORE`, pieces are merged as before the piece cache (branch `bpecache`).
        let before = std::env::var_os("BPE_BEFORE").is_some();
        let mut tokens = 0;
        for _ in 0..rounds {
            for text in &texts {
                let text = std::hint::black_box(text);
                tokens += if by_regex {
                    compact.count_by_regex(text)
                } else if before {
                    count_as_before(&compact, text)
                } else {
                    compact.count(text)
                };
            }
        }
        let bytes: usize = texts.iter().map(String::len).sum();
        println!(
            "{} texts, {bytes} bytes, {tokens} tokens in {rounds} rounds",
            texts.len()
        );
    }

    /// `count` as it was before the piece cache: every piece that is not a token merged with
    /// the heap, nothing kept.
    fn count_as_before(compact: &Encoding, text: &str) -> usize {
        let piece_before = |piece: &[u8]| {
            if piece.len() == 1 || compact.place(piece).is_some() {
                1
            } else {
                compact.merged_parts(piece)
            }
        };
        stretches(text)
            .map(|stretch| match stretch {
                Stretch::Ascii(pieces) => pieces.map(piece_before).sum::<usize>(),
                Stretch::Other(other) => compact
                    .regex_pieces(other)
                    .map(|piece| piece_before(piece.as_bytes()))
                    .sum(),
            })
            .sum()
    }

    /// Where each token's entry starts in [`TABLE`], in the table's order.
    fn places() -> Vec<Place> {
        let mut places = Vec::new();
        let mut at = 0;
        while let Some(&len) = TABLE.get(at) {
            places.push(Place::try_from(at).expect("places fit in u32"));
            at += 1 + usize::from(len);
        }
        places
    }

    /// The table holds tiktoken's ordinary tokens in rank order, so that places, which the
    /// merge compares, order tokens as their ranks do.
    #[test]
    fn the_table_holds_every_token_in_rank_order() {
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let places = places();
        assert!(places.len() > 199_000, "{} tokens", places.len());
        for (rank, &place) in places.iter().enumerate() {
            let rank = u32::try_from(rank).expect("ranks fit in u32");
            let token = full.decode_bytes(&[rank]).expect("an ordinary rank");
            assert_eq!(token_at(place), token.as_slice(), "rank {rank}");
        }
        let next = u32::try_from(places.len()).expect("ranks fit in u32");
        assert!(
            full.special_tokens()
                .iter()
                .flat_map(|text| full.encode_with_special_tokens(text))
                .all(|special| special >= next),
            "every rank after the table's is a special token"
        );
    }

    #[test]
    fn every_token_is_found_by_its_bytes() {
        let compact = Encoding::o200k_base().expect("tables load");
        for place in places() {
            assert_eq!(compact.place(token_at(place)), Some(place));
        }
        assert_eq!(compact.place(b"not one token at all"), None);
    }

    /// The index is a perfect hash: each token's entry, with its fingerprint, is in the one
    /// slot its lookup reads, the index holds no other entry, and its read-only data stays
    /// within the bound issue #23 set (the linear-probing index's 1 MiB and 0.5 MiB more).
    #[test]
    fn every_token_is_in_the_one_slot_its_lookup_reads() {
        let places = places();
        for &place in &places {
            let hash = piece_hash(token_at(place));
            let entry = entry_of(hash).expect("the index has the slot");
            assert_eq!(entry & ((1 << PLACE_BITS) - 1), place);
            assert_eq!(entry >> PLACE_BITS, rank_hash::fingerprint(hash));
        }
        let entries = INDEX
            .chunks_exact(4)
            .filter(|slot| *slot != FREE.to_le_bytes())
            .count();
        assert_eq!(entries, places.len());
        assert!(INDEX.len() + PILOTS.len() <= (1 << 20) + (1 << 19));
    }

    /// Seeded byte strings that are no token (checked against the table itself, not the
    /// index) are not found; those whose slot holds an entry with their fingerprint are not
    /// found either, because the bytes are compared; and such matches are as rare as a
    /// fingerprint independent of the slot makes them (about 0.76 × 2^-11 of misses), so a
    /// miss seldom reads a token's bytes.
    #[test]
    fn seeded_non_tokens_are_not_found() {
        let compact = Encoding::o200k_base().expect("tables load");
        let tokens: std::collections::HashSet<&[u8]> = places().into_iter().map(token_at).collect();
        let alphabet =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,:;\"{}[]()/'\n";
        let mut misses = 0;
        let mut matched = 0;
        for text in generated(alphabet, 2812, 24, 1_000_000) {
            let bytes = text.as_bytes();
            if bytes.is_empty() || tokens.contains(bytes) {
                continue;
            }
            misses += 1;
            let hash = piece_hash(bytes);
            let entry = entry_of(hash).expect("the index has the slot");
            if entry != FREE && entry >> PLACE_BITS == rank_hash::fingerprint(hash) {
                matched += 1;
            }
            assert_eq!(compact.place(bytes), None, "{text:?}");
        }
        assert!(misses > 900_000, "{misses} non-tokens");
        // ~340 expected; a fingerprint that followed the slot would match far more often.
        assert!(
            (120..=1_200).contains(&matched),
            "{matched} fingerprints matched"
        );
    }

    fn piece_hash(bytes: &[u8]) -> u64 {
        rank_hash::hash_words(rank_hash::words(bytes), bytes.len())
    }

    /// A lookup compares a piece of up to 16 bytes with a token of its length by their
    /// words: at each such length, changing any one byte changes the words.
    #[test]
    fn equal_words_are_equal_bytes() {
        let mut random = Seeded(33);
        for len in (0..=16).flat_map(|len| [len; 20]) {
            let bytes: Vec<u8> = (0..len)
                .map(|_| u8::try_from(random.below(256)).expect("a byte"))
                .collect();
            let words = rank_hash::words(&bytes);
            for at in 0..len {
                let mut changed = bytes.clone();
                changed[at] ^= 1 << random.below(8);
                assert_ne!(rank_hash::words(&changed), words, "{len} bytes, byte {at}");
            }
        }
    }

    /// The hash reads every byte of a piece, at every length it reads differently (one to
    /// three bytes, one or two words, the folded long path): changing any one byte changes it.
    #[test]
    fn the_hash_reads_every_byte() {
        let mut random = Seeded(32);
        for len in 1..=80 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| u8::try_from(random.below(256)).expect("a byte"))
                .collect();
            let hash = piece_hash(&bytes);
            for at in 0..len {
                let mut changed = bytes.clone();
                changed[at] ^= 1 << random.below(8);
                assert_ne!(piece_hash(&changed), hash, "{len} bytes, byte {at}");
            }
            assert_ne!(
                piece_hash(&bytes[..len - 1]),
                hash,
                "{len} bytes, shortened"
            );
        }
    }

    #[test]
    fn long_pieces_merge_like_tiktoken() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        for text in [
            "a".repeat(5000),
            "ab".repeat(3000),
            "東京".repeat(700),
            "x".repeat(99) + &"yz".repeat(400),
        ] {
            assert_eq!(compact.count(&text), full.encode_ordinary(&text).len());
        }
    }

    /// The cache only ever answers with the count the merge gives: each corpus text counted
    /// cold (by a new encoding, its cache empty) and again warm (its pieces now kept) is
    /// tiktoken's count both times, and the short merge on the stack merges as the heap one.
    #[test]
    fn the_piece_cache_never_changes_a_count() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let texts = corpus();
        let expected: Vec<usize> = texts
            .iter()
            .map(|text| full.encode_ordinary(text).len())
            .collect();
        for pass in ["cold", "warm"] {
            for (text, &expected) in texts.iter().zip(&expected) {
                assert_eq!(compact.count(text), expected, "{pass}: {text:?}");
            }
            let (kept, _) = compact.merged.held();
            assert!(kept > 1000, "{pass}: {kept} pieces kept");
        }
        let mut merged = 0;
        for text in texts.iter().filter(|text| text.is_ascii()) {
            for piece in ascii_pieces(text).expect("ASCII") {
                if piece.len() > 1 && piece.len() <= SHORT && compact.place(piece).is_none() {
                    assert_eq!(
                        compact.merged_short(piece),
                        compact.merged_parts(piece),
                        "{piece:?}"
                    );
                    merged += 1;
                }
            }
        }
        assert!(merged > 10_000, "{merged} pieces merged");
    }

    /// However many different pieces are counted, the cache holds at most its capacity, in
    /// entries allocated once.
    #[test]
    fn the_piece_cache_stays_within_its_bound() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        // Made-up words, nearly all more than one token and nearly all different.
        let texts = generated("bcdfghjklmnpqrstvwxz", 23, 12, 50_000);
        for text in &texts {
            compact.count(text);
        }
        let (kept, bytes) = compact.merged.held();
        assert!(kept <= CAPACITY, "{kept} pieces kept");
        assert!(kept > CAPACITY * 3 / 4, "{kept} pieces kept");
        assert_eq!(bytes, CAPACITY * ENTRY_BYTES);
        assert!(bytes <= 128 * 1024, "{bytes} bytes");
        // The pieces pushed out and those kept still count as tiktoken counts them.
        for text in texts.iter().step_by(50) {
            assert_eq!(
                compact.count(text),
                full.encode_ordinary(text).len(),
                "{text:?}"
            );
        }
    }

    /// Threads counting at once through one encoding (the writer's analysis and the request
    /// path's workers): a shard another thread holds is skipped, never waited for or torn, and
    /// every count is still tiktoken's.
    #[test]
    fn counts_from_several_threads_at_once_are_tiktokens() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let texts: Vec<String> = corpus().into_iter().step_by(3).collect();
        let expected: Vec<usize> = texts
            .iter()
            .map(|text| full.encode_ordinary(text).len())
            .collect();
        std::thread::scope(|scope| {
            for offset in 0..4 {
                let (compact, texts, expected) = (&compact, &texts, &expected);
                scope.spawn(move || {
                    for round in 0..3 {
                        for (i, (text, &expected)) in texts.iter().zip(expected).enumerate() {
                            if (i + offset + round) % 2 == 0 {
                                assert_eq!(compact.count(text), expected, "{text:?}");
                            }
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn counts_are_identical_to_tiktoken() {
        let compact = Encoding::o200k_base().expect("tables load");
        let full = tiktoken_rs::o200k_base().expect("tables load");
        let texts = corpus();
        assert!(texts.len() >= 1000, "{} texts", texts.len());
        let mut total = 0;
        for text in &texts {
            let expected = full.encode_ordinary(text).len();
            assert_eq!(compact.count(text), expected, "{text:?}");
            total += expected;
        }
        assert!(total > 100_000, "{total} tokens");
    }
}
