//! Bytes read eight at a time in one `u64` (SIMD within a register): the pre-tokenizer's
//! letter runs and the JSON reader's plain string runs are most of the bytes the ledger reads.
//! A caller supplies the word test, which sets the top bit of (at least) the first byte that
//! ends the run, and of none before it; bits it sets after that byte are never read.

/// `byte` in each of a word's eight bytes.
pub const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The length of the run at the start of `bytes` that `flags` does not end: eight bytes at a
/// time while eight are left, then `tail` for the last few.
#[inline(always)]
pub fn run(bytes: &[u8], flags: impl Fn(u64) -> u64, tail: impl FnOnce(&[u8]) -> usize) -> usize {
    let mut rest = bytes;
    while let Some((word, after)) = rest.split_first_chunk::<8>() {
        let flagged = flags(u64::from_le_bytes(*word));
        if flagged != 0 {
            return bytes.len() - rest.len() + first_flagged(flagged);
        }
        rest = after;
    }
    bytes.len() - rest.len() + tail(rest)
}

/// The index of the first flagged byte of a word that has one: the lowest, as the word was
/// read little-endian.
#[inline(always)]
pub fn first_flagged(flagged: u64) -> usize {
    (flagged.trailing_zeros() / 8) as usize
}
