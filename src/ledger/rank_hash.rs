//! The token counter's rank index: its hash and its layout, in one file that both sides
//! compile, so they place a token alike: `build.rs` includes it by path to lay the index out,
//! `bpe.rs` uses it to look pieces up. Plain integer arithmetic only, so a build machine of
//! any kind lays out the index the binary reads.
//!
//! The index is a perfect hash of `o200k_base`'s ordinary tokens, by hash-and-displace as
//! PTHash does it (Pibiri and Trani, SIGIR 2021): a piece's hash picks one of [`BUCKETS`]
//! buckets; the bucket's pilot, chosen by `build.rs` so that the bucket's tokens land in slots
//! no other token holds, and the hash pick the piece's one slot. Every lookup, hit or miss,
//! reads one pilot and one slot. Linear probing read ~15 slots for a miss at its ~76 % load
//! (BENCHMARKS.md, branch `count8`); here a miss ends at a free slot or at a fingerprint that
//! differs, and reads a token's bytes about once in 2^11 misses.
//!
//! The hash needs only to spread the tokens well enough for every bucket to find a pilot and
//! for a miss's fingerprint to be independent of its slot (tests check both): it reads a short
//! piece as one or two little-endian words and folds one 64×64→128 multiply, as foldhash and
//! wyhash do for short inputs, where CRC-32 spent ~52 instructions a lookup.

/// The index has 2^`SLOT_BITS` slots (about three in four hold a token).
pub const SLOT_BITS: u32 = 18;
/// An entry's low `PLACE_BITS` bits are where its token's entry starts in the token table
/// (under 2 MiB); the bits above are its fingerprint.
pub const PLACE_BITS: u32 = 21;
/// There are 2^`BUCKET_BITS` buckets, one `u16` pilot each (128 KiB): about three tokens a
/// bucket, so `build.rs` finds each a pilot within the first few hundred it tries.
pub const BUCKET_BITS: u32 = 16;
pub const BUCKETS: usize = 1 << BUCKET_BITS;

/// The folded multiply's keys: the first hexadecimal digits of π's fraction (Blowfish's
/// first keys), constants without structure; any with bits spread over both halves do.
const KEY_A: u64 = 0x243f_6a88_85a3_08d3;
const KEY_B: u64 = 0x1319_8a2e_0370_7345;
/// Spreads the length over a whole word: XORed in as it is, a length would cancel a
/// difference in a word's low byte (" granted" and " grated" hashed alike).
const LEN_MIX: u64 = 0xc2b2_ae3d_27d4_eb4f;
/// Spreads a pilot's bits over the word it is XORed into (2^64 / φ, odd).
const PILOT_MIX: u64 = 0x9e37_79b9_7f4a_7c15;
/// Mixes the hash and the pilot so a slot depends on every bit of both (odd, so a bijection).
const SLOT_MIX: u64 = 0xff51_afd7_ed55_8ccd;

/// The hash of a piece of `len` bytes whose [`words`] are `(a, b)`: one folded multiply.
#[inline]
pub fn hash_words((a, b): (u64, u64), len: usize) -> u64 {
    let len = (len as u64).wrapping_mul(LEN_MIX);
    folded_multiply(a ^ KEY_A, b ^ KEY_B ^ len)
}

/// Two words that stand for `bytes`: up to 16 bytes read as two (overlapping) little-endian
/// words, or three bytes, that between them hold every byte, so two pieces of one length up to
/// 16 are equal exactly when their words are; longer ones folded 16 bytes at a time.
#[inline]
pub fn words(bytes: &[u8]) -> (u64, u64) {
    let len = bytes.len();
    if len >= 4 {
        if len <= 8 {
            let (first, last) = ends(bytes);
            let (first, last) = (u32::from_le_bytes(first), u32::from_le_bytes(last));
            (u64::from(first), u64::from(last))
        } else if len <= 16 {
            let (first, last) = ends(bytes);
            (u64::from_le_bytes(first), u64::from_le_bytes(last))
        } else {
            long_words(bytes)
        }
    } else if len > 0 {
        // One to three bytes: the first, the middle and the last are all of them.
        let (first, middle, last) = (byte(bytes, 0), byte(bytes, len / 2), byte(bytes, len - 1));
        ((first << 16) | (middle << 8) | last, 0)
    } else {
        (0, 0)
    }
}

/// The bucket of a piece with this hash: the hash's top bits (below [`BUCKETS`] already, so
/// the remainder costs nothing; it states the range).
#[inline]
pub fn bucket(hash: u64) -> usize {
    (hash >> (64 - BUCKET_BITS)) as usize % BUCKETS
}

/// The slot of a piece with this hash in a bucket with this pilot.
#[inline]
pub fn slot(hash: u64, pilot: u16) -> usize {
    let mixed = (hash ^ u64::from(pilot).wrapping_mul(PILOT_MIX)).wrapping_mul(SLOT_MIX);
    (mixed >> (64 - SLOT_BITS)) as usize
}

/// The fingerprint a piece with this hash has in its slot's entry: the hash's low bits, which
/// the bucket does not read.
#[inline]
pub fn fingerprint(hash: u64) -> u32 {
    (hash as u32) & ((1 << (32 - PLACE_BITS)) - 1)
}

/// The two words of a piece longer than 16 bytes: every 16 bytes but the last folded into a
/// running value, then the last 16 (which may overlap the folded ones).
#[cold]
fn long_words(bytes: &[u8]) -> (u64, u64) {
    let len = bytes.len();
    let mut folded = KEY_B;
    let mut at = 0;
    while at + 16 < len {
        folded = folded_multiply(word64(bytes, at) ^ KEY_A, word64(bytes, at + 8) ^ folded);
        at += 16;
    }
    (word64(bytes, len - 16) ^ folded, word64(bytes, len - 8))
}

/// The 128-bit product's halves XORed: every bit of the result depends on every input bit.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline]
fn byte(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at).copied().map_or(0, u64::from)
}

/// The first and the last `N` bytes of `bytes` (zeros where it is shorter: no caller's is).
#[inline]
fn ends<const N: usize>(bytes: &[u8]) -> ([u8; N], [u8; N]) {
    let first = bytes.first_chunk().copied().unwrap_or([0; N]);
    let last = bytes.last_chunk().copied().unwrap_or([0; N]);
    (first, last)
}

/// The little-endian `u64` at `at` (0 past the end, which no caller reads).
#[inline]
fn word64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |word| u64::from_le_bytes(*word))
}
