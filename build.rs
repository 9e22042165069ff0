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
    order_hot_functions();
    pack_relocations();
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
    std::fs::write(out.join("o200k_base.layout.rs"), layout()).expect("OUT_DIR is writable");
    std::fs::write(
        out.join("o200k_base.pattern"),
        tiktoken_rs::O200K_BASE_PAT_STR,
    )
    .expect("OUT_DIR is writable");
}

/// Links the functions a running server uses next to each other, at the start of `.text`, in
/// the order `link/steward.order` lists them. The kernel maps the code around every page touched
/// (fault-around, whole page-cache folios), so hot functions scattered over a 27 MB `.text` kept
/// ~19 MiB of it resident; placed together, ~6 MiB (BENCHMARKS.md, session 20). Only in release
/// builds linked by LLD, the linker that reads such a list: rustc's default on
/// x86_64-unknown-linux-gnu since 1.90.
fn order_hot_functions() {
    println!("cargo::rerun-if-changed=link/steward.order");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    if std::env::var("PROFILE").as_deref() != Ok("release") || !links_with_lld() {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!(
        "cargo::rustc-link-arg-bin=steward=-Wl,--symbol-ordering-file={dir}/link/steward.order"
    );
    // Names of another build (the list is older than the code) are skipped silently.
    println!("cargo::rustc-link-arg-bin=steward=-Wl,--no-warn-symbol-ordering");
}

/// Packs the binary's relative relocations (`-z pack-relative-relocs`, glibc's `DT_RELR`).
/// A position-independent executable carries one 24-byte record for each of its ~47,000
/// pointers in read-only data (vtables, string tables); the loader reads every record at start,
/// which left `.rela.dyn`'s 1.1 MiB of the file resident for the life of the process. Packed,
/// they are a bitmap of a few KiB (BENCHMARKS.md, branch `rss`). Only where the loader reads
/// that form: LLD, and the glibc of this machine 2.36 or later (the binary then names the
/// glibc version it needs, so an older loader refuses it instead of running it unrelocated).
fn pack_relocations() {
    if !links_with_lld() || !glibc_has_relr() {
        return;
    }
    println!("cargo::rustc-link-arg-bin=steward=-Wl,-z,pack-relative-relocs");
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.MINOR`) is 2.36 or
/// later, the first whose loader applies `DT_RELR`.
fn glibc_has_relr() -> bool {
    let Ok(output) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let minor = text
        .trim()
        .strip_prefix("glibc 2.")
        .and_then(|minor| minor.parse::<u32>().ok());
    minor.is_some_and(|minor| minor >= 36)
}

/// Whether rustc links with its own LLD: the target whose default it is, a rustc from 1.90 on,
/// and no linker or linker flavour chosen by the user.
fn links_with_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let chosen = std::env::var_os("RUSTC_LINKER").is_some()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|flag| flags.contains(flag));
    target == "x86_64-unknown-linux-gnu"
        && !chosen
        && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the rustc building Steward (`rustc -vV`'s `release: 1.MINOR.PATCH`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let output = std::process::Command::new(rustc).arg("-vV").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let release = text
        .lines()
        .find_map(|line| line.strip_prefix("release: "))?;
    release.split('.').nth(1)?.parse().ok()
}

/// The index's slots: 2^SLOT_BITS, picked by the low SLOT_BITS bits of a token's CRC-32.
const SLOT_BITS: u32 = 18;
/// An entry's rank bits, its low ones; the bits above hold the fingerprint, the CRC-32's bits
/// above SLOT_BITS (so no more rank bits than slot bits, or the fingerprint would not fit).
const RANK_BITS: u32 = 18;
const _: () = assert!(
    RANK_BITS <= SLOT_BITS,
    "the fingerprint fits above the rank"
);

/// `SLOT_BITS` and `RANK_BITS` as Rust, for `bpe.rs` to include: the layout is decided here.
fn layout() -> String {
    format!(
        "/// The index has 2^SLOT_BITS slots.\nconst SLOT_BITS: u32 = {SLOT_BITS};\n\
         /// An entry's low RANK_BITS bits are its rank.\nconst RANK_BITS: u32 = {RANK_BITS};\n"
    )
}

/// The ranks by their bytes, as `bpe.rs` reads them: 2^SLOT_BITS little-endian `u32` slots
/// (about three in four used), a token's entry in the first free slot from the one its bytes'
/// CRC-32 picks (a hash defined by its standard, so the same here and in the binary whatever the
/// build machine), free slots `u32::MAX`. An entry is the rank with the fingerprint above it,
/// so a lookup that meets another token's entry skips it without reading that token's bytes
/// unless the fingerprints match (1 in 2^14).
fn index(tokens: &[Vec<u8>]) -> Vec<u8> {
    const SLOTS: usize = 1 << SLOT_BITS;
    assert!(tokens.len() < SLOTS * 4 / 5, "the index keeps free slots");
    assert!(
        tokens.len() < (1 << RANK_BITS) - 1,
        "no rank has all its bits set, so no entry is u32::MAX, a free slot"
    );
    let mut slots = vec![u32::MAX; SLOTS];
    for (rank, token) in tokens.iter().enumerate() {
        let hash = crc32fast::hash(token);
        let mut slot = hash as usize % SLOTS;
        while slots[slot] != u32::MAX {
            slot = (slot + 1) % SLOTS;
        }
        let rank = u32::try_from(rank).expect("ranks fit in u32");
        slots[slot] = rank | ((hash >> SLOT_BITS) << RANK_BITS);
    }
    slots.iter().flat_map(|entry| entry.to_le_bytes()).collect()
}
