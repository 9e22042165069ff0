#[cfg(not(steward_system_alloc))]
use std::alloc::GlobalAlloc;
use std::process::ExitCode;

use clap::Parser;
use steward::cli::{Cli, KeysAction, PricingAction};
use steward::commands::UsageError;
use steward::config::{self, Resolved};
use steward::server::{self, RunError};
use steward::stdout::error_line;
use steward::store::{OpenMode, Store};

/// mimalloc, not the system allocator: the ledger allocates on request threads and frees on its
/// writer thread, the pattern glibc's malloc handles worst (freed chunks land in another
/// thread's cache; the request threads fall through to the slow path). `no_thp` keeps the
/// resident set small (no transparent huge pages); `override` makes C code in the process (the
/// bundled SQLite) allocate through mimalloc too. BENCHMARKS.md has the measurements.
/// `--cfg steward_system_alloc` (e.g. `cargo rustc --release --bin steward -- --cfg
/// steward_system_alloc`) builds with the system allocator instead, for heap profilers (DHAT,
/// heaptrack) that see only malloc.
#[cfg(not(steward_system_alloc))]
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// mimalloc, asked as C code asks it when the alignment is one every block of it has.
/// `mimalloc::MiMalloc` asks `mi_malloc_aligned` for every allocation, and mimalloc 3 serves
/// one of more than 1 KiB whose size class is not a power of two by over-allocating and
/// realigning (`mi_theap_malloc_zero_aligned_at_overalloc`), even at an alignment of 8, which
/// its freeing then has to undo: ~19 of a gateway hop's allocations a message went that way
/// (BENCHMARKS.md, branch `hop7`). Larger alignments (tokio's 128-byte task cells) still go
/// through `MiMalloc`.
#[cfg(not(steward_system_alloc))]
struct Mimalloc;

/// Every mimalloc block is aligned to at least a word: its block sizes are multiples of one
/// and its pages start at least 16-byte aligned.
#[cfg(not(steward_system_alloc))]
const WORD: usize = std::mem::size_of::<usize>();

#[cfg(not(steward_system_alloc))]
#[allow(unsafe_code)]
// SAFETY: each method returns what mimalloc returns for the layout (null on failure), a block
// of at least `size` bytes aligned to `align`: `mi_malloc`'s blocks are aligned to a word,
// so it is asked only for alignments up to one; every block is freed by `mi_free`, which
// takes blocks of either entry point.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: as above; `layout.size()` is not zero (GlobalAlloc's contract).
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: as `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` is a block of this allocator (the caller's contract).
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: `ptr` is a block of this allocator; the new block keeps a word's
            // alignment, which is all `layout` asks.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's arguments, passed on.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// How long mimalloc keeps freed pages before it returns them to the OS, in milliseconds.
/// mimalloc 3's own default, a second, keeps the pages a burst of requests freed resident
/// long after the burst; an operator's `MIMALLOC_PURGE_DELAY` still wins.
#[cfg(not(steward_system_alloc))]
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (the Rust bindings do not name it).
#[cfg(not(steward_system_alloc))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless the environment sets it.
#[cfg(not(steward_system_alloc))]
#[allow(unsafe_code)]
fn set_purge_delay() {
    let operator_set = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !operator_set {
        // SAFETY: mi_option_set only stores the value in mimalloc's option table; it is called
        // before any thread but this one exists, so no allocation races with the store.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// Without mimalloc there is nothing to set (and calling it would link mimalloc's `malloc`).
#[cfg(steward_system_alloc)]
fn set_purge_delay() {}

fn main() -> ExitCode {
    set_purge_delay();
    // Before any HTTP client is built (upstreams, OTLP, `steward check`).
    steward::tls::install();
    let cli = Cli::parse();
    let resolved = match config::resolve(cli) {
        Ok((resolved, log_format)) => {
            steward::logs::init(log_format);
            resolved
        }
        Err(error) => return config_error(&error),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            error_line(format_args!(
                "steward: cannot start the async runtime: {error}"
            ));
            return ExitCode::from(1);
        }
    };
    if let Resolved::Check(options) = resolved {
        return match runtime.block_on(steward::check::run(options)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            // The reader of stdout stopped reading: no failure (see the commands' case below).
            Err(error) if steward::stdout::reader_left(&error) => ExitCode::SUCCESS,
            Err(error) => {
                error_line(format_args!("steward check: {error:#}"));
                ExitCode::from(1)
            }
        };
    }
    match &resolved {
        // `serve` names its database in its start-up text; log lines stay in the log format.
        Resolved::Serve(_) => {}
        Resolved::Stdio(config) => {
            tracing::info!(database = %config.database.redacted(), "steward stdio");
        }
        other => {
            if let Some(database) = other.database() {
                error_line(format_args!("steward: database {}", database.redacted()));
            }
        }
    }
    let outcome = runtime.block_on(async {
        match resolved {
            Resolved::Serve(config) => server::serve(config).await,
            Resolved::Stdio(config) => server::stdio(config).await,
            Resolved::Check(_) => Ok(()), // answered above
            command => match command.database().cloned() {
                Some(database) => {
                    let mode = open_mode(&command);
                    server::admin(&database, mode, |store| Box::pin(run_admin(store, command)))
                        .await
                }
                None => Ok(()),
            },
        }
    });
    // A blocking read of stdin (stdio transport) would hold the runtime open until the client
    // closes it: everything that matters has finished, so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Config(error)) => config_error(&error),
        // `steward … | head`: the reader stopped reading because it has what it wanted, as
        // when SIGPIPE ends a shell tool; that is no failure to report.
        Err(RunError::Runtime(error)) if steward::stdout::reader_left(&error) => ExitCode::SUCCESS,
        Err(RunError::Runtime(error)) if error.is::<UsageError>() => {
            error_line(format_args!("steward: {error:#}"));
            ExitCode::from(2)
        }
        Err(RunError::Runtime(error)) => {
            error_line(format_args!("steward: {error:#}"));
            ExitCode::from(1)
        }
    }
}

/// How a command that only works on the database opens it: read-only commands never create
/// one.
fn open_mode(command: &Resolved) -> OpenMode {
    let creates = match command {
        Resolved::Pricing(_, action) => !matches!(action, PricingAction::List { .. }),
        // A key may be created before the server first runs; listing or revoking one needs
        // the database the server uses.
        Resolved::Keys(_, action) => matches!(action, KeysAction::Create { .. }),
        // Even a dry run may start from a fresh database: it says what would be added.
        Resolved::Import(..) => true,
        _ => false,
    };
    if creates {
        OpenMode::Create
    } else {
        OpenMode::Existing
    }
}

/// Runs a command that only works on the database.
async fn run_admin(store: &Store, command: Resolved) -> anyhow::Result<()> {
    use steward::commands;
    match command {
        Resolved::Pricing(_, action) => commands::pricing::run(store, action).await,
        Resolved::Stats(_, since, json) => commands::stats::run(store, since, json).await,
        Resolved::Requests(_, action) => commands::requests::run(store, action).await,
        Resolved::Projects(_, action) => commands::board::projects(store, action).await,
        Resolved::Tasks(_, action) => commands::board::tasks(store, action).await,
        Resolved::Keys(_, action) => commands::keys::run(store, action).await,
        Resolved::Import(_, source) => commands::import::run(store, source).await,
        Resolved::Sessions(_, action) => commands::sessions::run(store, action).await,
        Resolved::Serve(_) | Resolved::Stdio(_) | Resolved::Check(_) => {
            anyhow::bail!("serve, stdio and check are not database commands")
        }
    }
}

fn config_error(error: &config::ConfigError) -> ExitCode {
    error_line(format_args!("steward: configuration error: {error}"));
    ExitCode::from(2)
}
