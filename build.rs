//! Writes `o200k_base`'s ordinary tokens into `$OUT_DIR` as tables the ledger's token counter
//! includes in the binary's read-only data (see `src/ledger/bpe.rs`): each token's length (one
//! byte) then its bytes, in rank order; a perfect-hash index of where each token's entry
//! starts, by its bytes, and its buckets' pilots (laid out as `src/ledger/rank_hash.rs` says);
//! and the pre-tokenizer pattern. The ranks come from tiktoken-rs, which is then needed
//! only here and by the test that compares counts.

use std::io::Write;

// The index's hash and layout, the very code the binary looks pieces up with.
#[path = "src/ledger/rank_hash.rs"]
mod rank_hash;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/ledger/rank_hash.rs");
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
    let mut tokens = Vec::new();
    let mut rank = 0;
    while let Ok(bytes) = bpe.decode_bytes(&[rank]) {
        if special.contains(&rank) {
            break;
        }
        let len = u8::try_from(bytes.len()).expect("o200k_base tokens are shorter than 256 bytes");
        let place = u32::try_from(table.len()).expect("the table is smaller than 4 GiB");
        table.push(len);
        table.extend_from_slice(&bytes);
        tokens.push((place, bytes));
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
    let (slots, pilots) = index(&tokens);
    std::fs::write(out.join("o200k_base.index"), slots).expect("OUT_DIR is writable");
    std::fs::write(out.join("o200k_base.pilots"), pilots).expect("OUT_DIR is writable");
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

/// The index's slots and the buckets' pilots, as `bpe.rs` reads them (the layout is
/// `rank_hash.rs`'s): 2^SLOT_BITS little-endian `u32` slots, free ones `u32::MAX`, a token's
/// entry the place its entry starts in the table with its hash's fingerprint above it; then
/// one little-endian `u16` pilot per bucket. Buckets are given pilots largest first (PTHash's
/// order: a big bucket needs many free slots at once, easiest to find while the index is
/// emptiest), each the first pilot that sends all its tokens to free slots, apart.
fn index(tokens: &[(u32, Vec<u8>)]) -> (Vec<u8>, Vec<u8>) {
    const SLOTS: usize = 1 << rank_hash::SLOT_BITS;
    assert!(tokens.len() < SLOTS * 4 / 5, "the index keeps free slots");
    assert!(
        tokens
            .iter()
            .all(|&(place, _)| place < (1 << rank_hash::PLACE_BITS) - 1),
        "every place fits its bits and none has them all set, so no entry is u32::MAX, a free slot"
    );
    let buckets = rank_hash::BUCKETS;
    let mut members: Vec<Vec<(u32, u64)>> = vec![Vec::new(); buckets];
    for (place, token) in tokens {
        let hash = rank_hash::hash_words(rank_hash::words(token), token.len());
        members[rank_hash::bucket(hash)].push((*place, hash));
    }
    let mut order: Vec<usize> = (0..buckets).collect();
    order.sort_by_key(|&bucket| std::cmp::Reverse(members[bucket].len()));
    let mut slots = vec![u32::MAX; SLOTS];
    let mut pilots = vec![0u16; buckets];
    let mut chosen = Vec::new();
    for bucket in order {
        let tokens = &members[bucket];
        if tokens.is_empty() {
            break;
        }
        let pilot = (0..=u16::MAX)
            .find(|&pilot| {
                chosen.clear();
                for &(_, hash) in tokens {
                    let slot = rank_hash::slot(hash, pilot);
                    if slots[slot] != u32::MAX || chosen.contains(&slot) {
                        return false;
                    }
                    chosen.push(slot);
                }
                true
            })
            .unwrap_or_else(|| {
                panic!("no pilot places bucket {bucket}'s tokens (place, hash): {tokens:x?}")
            });
        pilots[bucket] = pilot;
        for (&(place, hash), &slot) in tokens.iter().zip(&chosen) {
            slots[slot] = place | (rank_hash::fingerprint(hash) << rank_hash::PLACE_BITS);
        }
    }
    (
        slots.iter().flat_map(|entry| entry.to_le_bytes()).collect(),
        pilots
            .iter()
            .flat_map(|pilot| pilot.to_le_bytes())
            .collect(),
    )
}
