//! `o200k_base` in a compact form, for counting only. tiktoken-rs keeps its ranks in three maps
//! of 200,000 separately allocated byte strings (encoder, decoder and a sorted copy) and a
//! regex per thread, about 50 MiB resident. Counting needs only "which rank, if any, do these
//! bytes have": here the tokens and a hash index of their ranks are tables in the binary's
//! read-only data (written by `build.rs`), shared between processes and paged in only where a
//! lookup reads them; nothing is built at start but the pre-tokenizer's regex. A test checks
//! that counts are identical to tiktoken-rs's on a corpus of real text.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fancy_regex::Regex;

/// A token's rank (its id).
type Rank = u32;

/// Each ordinary token in rank order: its length in one byte, then its bytes.
static TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ranks"));
/// Where each rank's entry starts in [`TABLE`]: one little-endian `u32` per rank.
static STARTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.starts"));
/// The ranks by their bytes: 2^[`SLOT_BITS`] little-endian `u32` slots, each [`FREE`] or an
/// entry: a rank in the low [`RANK_BITS`] bits, above them the fingerprint of the rank's bytes
/// (their CRC-32's bits that do not pick the slot). A token's entry is in the first slot from
/// the one its CRC-32's low bits pick that holds it (linear probing), and a free slot ends the
/// search (`build.rs` writes it). A lookup reads a token's bytes only where the fingerprint
/// matches: a hit reads its own token's, a miss almost never any, instead of those of every
/// token its lookup passes.
static INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.index"));
// `SLOT_BITS` and `RANK_BITS`, as `build.rs` laid the index out.
include!(concat!(env!("OUT_DIR"), "/o200k_base.layout.rs"));
/// An index slot without an entry (no entry has all its rank bits set: `build.rs` checks).
const FREE: u32 = u32::MAX;
/// The pre-tokenizer's pattern, as tiktoken-rs has it.
static PATTERN: &str = include_str!(concat!(env!("OUT_DIR"), "/o200k_base.pattern"));

pub struct Encoding {
    /// The pre-tokenizer: text is cut into pieces, and pieces are merged into tokens.
    pieces: Regex,
}

impl Encoding {
    /// `o200k_base`, from the tables built into the binary.
    pub fn o200k_base() -> Result<Self, String> {
        let pieces = Regex::new(PATTERN).map_err(|e| e.to_string())?;
        Ok(Encoding { pieces })
    }

    fn rank(&self, piece: &[u8]) -> Option<Rank> {
        let (home, fingerprint) = home_and_fingerprint(crc32fast::hash(piece));
        cluster(home)
            .find(|&(rank, print)| print == fingerprint && token_of(rank) == piece)
            .map(|(rank, _)| rank)
    }

    /// How many tokens `text` is, encoded as ordinary text (special-token strings are text).
    pub fn count(&self, text: &str) -> usize {
        self.pieces
            .find_iter(text)
            .filter_map(Result::ok)
            .map(|piece| self.count_piece(piece.as_str().as_bytes()))
            .sum()
    }

    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() == 1 || self.rank(piece).is_some() {
            return 1;
        }
        self.merged_parts(piece)
    }

    /// The byte-pair merge of tiktoken: repeatedly join the adjacent pair whose joined bytes
    /// have the lowest rank (the leftmost of equals), until no adjacent pair is a token.
    /// Returns the number of tokens left. The parts are a linked list and the candidate pairs
    /// a heap (entries made stale by a merge are skipped), so a long piece costs n log n, not
    /// n² (tiktoken does the same for pieces of 100 bytes or more).
    fn merged_parts(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        // Part i covers piece[i..next[i]]; prev/next link the parts still standing.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        // The rank of part i joined with the part after it, as last computed.
        let mut pair: Vec<Rank> = vec![Rank::MAX; n];
        let mut heap = BinaryHeap::with_capacity(n);
        let rank_at = |next: &[usize], i: usize| -> Rank {
            let end = next[i];
            if end >= n {
                return Rank::MAX;
            }
            self.rank(&piece[i..next[end]]).unwrap_or(Rank::MAX)
        };
        for (i, rank) in pair.iter_mut().enumerate() {
            *rank = rank_at(&next, i);
            if *rank != Rank::MAX {
                heap.push(Reverse((*rank, i)));
            }
        }
        let mut parts = n;
        while let Some(Reverse((rank, i))) = heap.pop() {
            // Stale: part i was merged away (its `prev` link cut) or its pair changed since.
            if pair[i] != rank || (i > 0 && prev[i] == usize::MAX) {
                continue;
            }
            let gone = next[i];
            next[i] = next[gone];
            if next[i] < n {
                prev[next[i]] = i;
            }
            prev[gone] = usize::MAX;
            pair[gone] = Rank::MAX;
            parts -= 1;
            for part in [Some(i), (i > 0).then(|| prev[i])].into_iter().flatten() {
                pair[part] = rank_at(&next, part);
                if pair[part] != Rank::MAX {
                    heap.push(Reverse((pair[part], part)));
                }
            }
        }
        parts
    }
}

/// The slot a lookup of bytes whose CRC-32 is `hash` starts at, and the fingerprint their
/// entry carries: the hash's bits above those that pick the slot.
fn home_and_fingerprint(hash: u32) -> (usize, u32) {
    let home = hash & ((1 << SLOT_BITS) - 1);
    (home as usize, hash >> SLOT_BITS)
}

/// The entries a lookup from slot `home` reads, as (rank, fingerprint), up to the first free
/// slot (bounded by the slot count, though the index always has free slots).
fn cluster(home: usize) -> impl Iterator<Item = (Rank, u32)> {
    let slots = 1usize << SLOT_BITS;
    (0..slots)
        .map_while(move |i| word(INDEX, (home + i) % slots).filter(|&entry| entry != FREE))
        .map(|entry| (entry & ((1 << RANK_BITS) - 1), entry >> RANK_BITS))
}

/// The `i`th little-endian `u32` of `table`, if it has one.
fn word(table: &[u8], i: usize) -> Option<u32> {
    let bytes = table.get(i * 4..i * 4 + 4)?;
    bytes.try_into().ok().map(u32::from_le_bytes)
}

/// Token `rank`'s bytes in [`TABLE`] (empty for a rank the table does not have).
fn token_of(rank: Rank) -> &'static [u8] {
    let Some(start) = word(STARTS, rank as usize) else {
        return &[];
    };
    let start = start as usize;
    let len = TABLE.get(start).copied().map_or(0, usize::from);
    TABLE.get(start + 1..start + 1 + len).unwrap_or_default()
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn every_token_is_found_by_its_bytes() {
        let compact = Encoding::o200k_base().expect("tables load");
        let ranks = STARTS.len() / 4;
        assert!(ranks > 199_000, "{ranks} ranks");
        for rank in 0..ranks {
            let rank = Rank::try_from(rank).expect("ranks fit in u32");
            assert_eq!(compact.rank(token_of(rank)), Some(rank));
        }
        assert_eq!(compact.rank(b"not one token at all"), None);
    }

    /// Tokens whose entry sits behind another's with the same fingerprint in their lookup's
    /// path: the lookup must compare bytes there and go on, not stop at the fingerprint.
    #[test]
    fn a_token_behind_one_with_its_fingerprint_is_found() {
        let compact = Encoding::o200k_base().expect("tables load");
        let ranks = Rank::try_from(STARTS.len() / 4).expect("ranks fit in u32");
        let mut shadowed = 0;
        for rank in 0..ranks {
            let token = token_of(rank);
            let (home, fingerprint) = home_and_fingerprint(crc32fast::hash(token));
            let before: Vec<(Rank, u32)> = cluster(home).take_while(|&(r, _)| r != rank).collect();
            if let Some(&(other, _)) = before.iter().find(|&&(_, print)| print == fingerprint) {
                assert_ne!(token_of(other), token);
                assert_eq!(compact.rank(token), Some(rank), "{token:?} behind {other}");
                shadowed += 1;
            }
        }
        assert!(
            shadowed > 0,
            "the index has tokens behind a fingerprint like theirs"
        );
    }

    /// Bytes that are no token, whose lookup meets an entry with their fingerprint: still no
    /// rank, because the bytes are compared.
    #[test]
    fn a_miss_that_matches_a_fingerprint_is_a_miss() {
        let compact = Encoding::o200k_base().expect("tables load");
        let matched: Vec<String> = (0..1_000_000)
            .map(|n| format!("not a token {n}"))
            .filter(|text| {
                let (home, fingerprint) = home_and_fingerprint(crc32fast::hash(text.as_bytes()));
                cluster(home).any(|(_, print)| print == fingerprint)
            })
            .take(20)
            .collect();
        assert_eq!(
            matched.len(),
            20,
            "texts whose lookup meets their fingerprint"
        );
        for text in matched {
            assert_eq!(compact.rank(text.as_bytes()), None, "{text:?}");
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
