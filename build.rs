//! Writes `o200k_base`'s ordinary tokens into `$OUT_DIR` as a table the ledger's token counter
//! includes in the binary's read-only data (see `src/ledger/bpe.rs`): each token's length (one
//! byte) then its bytes, in rank order, and the pre-tokenizer pattern beside it. The ranks come
//! from tiktoken-rs, which is then needed only here and by the test that compares counts.

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
    let mut rank = 0;
    while let Ok(bytes) = bpe.decode_bytes(&[rank]) {
        if special.contains(&rank) {
            break;
        }
        let len = u8::try_from(bytes.len()).expect("o200k_base tokens are shorter than 256 bytes");
        table.push(len);
        table.extend_from_slice(&bytes);
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
    std::fs::write(
        out.join("o200k_base.pattern"),
        tiktoken_rs::O200K_BASE_PAT_STR,
    )
    .expect("OUT_DIR is writable");
}
