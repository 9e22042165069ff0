//! Writes `o200k_base`'s ordinary tokens into `$OUT_DIR` as tables the ledger's token counter
//! includes in the binary's read-only data (see `src/ledger/bpe.rs`): each token's length (one
//! byte) then its bytes, in rank order; where each rank's entry starts; an open-addressing hash
//! index of the ranks by their bytes; and the pre-tokenizer pattern. The ranks come from
//! tiktoken-rs, which is then needed only here and by the test that compares counts.

use std::io::Write;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds migrations/ at compile time but cannot tell cargo to watch it:
    // without this line a new migration file alone would leave a binary without it.
    println!("cargo::rerun-if-changed=migrations");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpe = tiktoken_rs::o200k_base().expect("tiktoken-rs's o200k_base loads");
    let special: Vec<u32> = bpe
        .special_tokens()
        .into_iter()
        .flat_map(|text| bpe.encode_with_special_tokens(text))
        .collect();
    let mut table = Vec::new();
    let mut starts = Vec::new();
    let mut tokens = Vec::new();
    let mut rank = 0;
    while let Ok(bytes) = bpe.decode_bytes(&[rank]) {
        if special.contains(&rank) {
            break;
        }
        let len = u8::try_from(bytes.len()).expect("o200k_base tokens are shorter than 256 bytes");
        let start = u32::try_from(table.len()).expect("the table is smaller than 4 GiB");
        starts.extend_from_slice(&start.to_le_bytes());
        table.push(len);
        table.extend_from_slice(&bytes);
        tokens.push(bytes);
        rank += 1;
    }
    assert!(rank > 199_000, "only {rank} ordinary ranks read");
    assert!(
        special.iter().all(|&s| s >= rank),
        "ordinary ranks are dense, below every special token"
    );
    std::fs::File::create(out.join("o200k_base.ranks"))
        .and_then(|mut f| f.write_all(&table))
        .expect("OUT_DIR is writable");
    std::fs::write(out.join("o200k_base.starts"), &starts).expect("OUT_DIR is writable");
    std::fs::write(out.join("o200k_base.index"), index(&tokens)).expect("OUT_DIR is writable");
    std::fs::write(
        out.join("o200k_base.pattern"),
        tiktoken_rs::O200K_BASE_PAT_STR,
    )
    .expect("OUT_DIR is writable");
}

/// The ranks by their bytes, as `bpe.rs` reads them: 2^18 little-endian `u32` slots (about three
/// in four used), a token's rank in the first free slot from its bytes' CRC-32 (a hash defined
/// by its standard, so the same here and in the binary whatever the build machine), free slots
/// `u32::MAX`.
fn index(tokens: &[Vec<u8>]) -> Vec<u8> {
    const SLOTS: usize = 1 << 18;
    assert!(tokens.len() < SLOTS * 4 / 5, "the index keeps free slots");
    let mut slots = vec![u32::MAX; SLOTS];
    for (rank, token) in tokens.iter().enumerate() {
        let mut slot = crc32fast::hash(token) as usize % SLOTS;
        while slots[slot] != u32::MAX {
            slot = (slot + 1) % SLOTS;
        }
        slots[slot] = u32::try_from(rank).expect("ranks fit in u32");
    }
    slots.iter().flat_map(|rank| rank.to_le_bytes()).collect()
}
