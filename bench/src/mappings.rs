//! Where a server's resident memory is, by mapping: `/proc/PID/status` gives the total and its
//! high-water mark only, which cannot tell more code resident (a stale `link/steward.order`) from
//! a larger heap. A [`Sampler`] reads `/proc/PID/smaps` every [`EVERY`] while a measured run
//! lasts (`smaps_rollup` has no per-mapping split) and keeps the split of the sample whose
//! resident total was the highest.

use std::io::Read;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

/// How often a [`Sampler`] reads smaps: a read of a server with a few hundred mappings takes
/// ~1 ms of the bench's time in the kernel, so the run it watches loses well under 1 % of a core.
const EVERY: Duration = Duration::from_millis(250);

/// The columns of the report's table, in a line.
pub const COLUMNS: &str = "smaps every 250 ms; anon = anonymous (heap, stacks), code = the binary's \
    r-xp, rodata = its r--p, libs = shared libraries, other = the rest";

/// Resident KiB by kind of mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Anonymous mappings: the heap, the allocator's segments, thread stacks.
    pub anon: u64,
    /// The binary's executable mappings (`r-xp`).
    pub code: u64,
    /// The binary's read-only mappings (`r--p`: read-only data, relocated read-only data).
    pub rodata: u64,
    /// Shared libraries (files named `*.so` or `*.so.N`).
    pub libs: u64,
    /// The rest: the binary's writable data, other mapped files (SQLite's `-shm`), `[vdso]`.
    pub other: u64,
}

/// Which part of a [`Split`] a mapping counts in.
#[derive(Clone, Copy)]
enum Kind {
    Anon,
    Code,
    Rodata,
    Libs,
    Other,
}

impl Split {
    pub fn total(&self) -> u64 {
        self.anon + self.code + self.rodata + self.libs + self.other
    }

    /// Reads smaps text: each mapping's header line (`start-end perms offset dev inode
    /// [path]`) says where its `Rss:` line counts. `exe` is the process's binary as smaps
    /// names it (`/proc/PID/exe`'s target).
    pub fn parse(smaps: &str, exe: &str) -> Split {
        let mut split = Split::default();
        let mut kind = Kind::Other;
        for line in smaps.lines() {
            let Some(first) = line.split_ascii_whitespace().next() else {
                continue;
            };
            if let Some(field) = first.strip_suffix(':') {
                if field == "Rss" {
                    let kib = line
                        .split_ascii_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                    *split.part(kind) += kib;
                }
            } else {
                kind = mapping_kind(line, exe);
            }
        }
        split
    }

    fn part(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Anon => &mut self.anon,
            Kind::Code => &mut self.code,
            Kind::Rodata => &mut self.rodata,
            Kind::Libs => &mut self.libs,
            Kind::Other => &mut self.other,
        }
    }
}

/// The kind of the mapping a smaps header line describes.
fn mapping_kind(header: &str, exe: &str) -> Kind {
    let mut rest = header;
    let mut perms = "";
    // Five fields, then the path (which may hold spaces, e.g. " (deleted)"), or nothing.
    for n in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if n == 1 {
            perms = &rest[..end];
        }
        rest = &rest[end..];
    }
    let path = rest.trim();
    if path == exe {
        return match (perms.contains('x'), perms.contains('w')) {
            (true, _) => Kind::Code,
            (false, false) => Kind::Rodata,
            (false, true) => Kind::Other,
        };
    }
    if path.is_empty()
        || ["[heap]", "[stack", "[anon"]
            .iter()
            .any(|p| path.starts_with(p))
    {
        return Kind::Anon;
    }
    let file = path.trim_end_matches(" (deleted)");
    let name = file.rsplit('/').next().unwrap_or(file);
    if file.starts_with('/') && (name.ends_with(".so") || name.contains(".so.")) {
        return Kind::Libs;
    }
    Kind::Other
}

/// The resident memory of process `pid` by mapping, or None if it cannot be read (it ended).
fn read(pid: u32, exe: &str, text: &mut String) -> Option<Split> {
    text.clear();
    std::fs::File::open(format!("/proc/{pid}/smaps"))
        .and_then(|mut f| f.read_to_string(text))
        .ok()?;
    Some(Split::parse(text, exe))
}

/// The split at the highest of a run's samples, in MiB, as the report shows it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Peak {
    pub rss_mib: f64,
    pub anon_mib: f64,
    pub code_mib: f64,
    pub rodata_mib: f64,
    pub libs_mib: f64,
    pub other_mib: f64,
    /// Samples taken during the run.
    pub samples: usize,
}

impl Peak {
    fn of(split: Split, samples: usize) -> Peak {
        let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
        Peak {
            rss_mib: mib(split.total()),
            anon_mib: mib(split.anon),
            code_mib: mib(split.code),
            rodata_mib: mib(split.rodata),
            libs_mib: mib(split.libs),
            other_mib: mib(split.other),
            samples,
        }
    }
}

/// Samples a process's smaps on a thread of its own until [`Sampler::stop`].
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Option<Peak>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let exe = exe.to_string_lossy().into_owned();
            let mut text = String::new();
            let mut peak: Option<Split> = None;
            let mut samples = 0;
            let mut sample = || {
                if let Some(split) = read(pid, &exe, &mut text) {
                    samples += 1;
                    if peak.is_none_or(|p| split.total() > p.total()) {
                        peak = Some(split);
                    }
                }
            };
            sample();
            // Until the channel closes ([`Sampler::stop`]), then once more at the end.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                sample();
            }
            sample();
            peak.map(|p| Peak::of(p, samples))
        });
        Sampler { stop, thread }
    }

    /// Takes a last sample and returns the peak (None if no sample could be read).
    pub fn stop(self) -> Option<Peak> {
        // Closing the channel wakes the thread, which takes its last sample and ends.
        drop(self.stop);
        self.thread.join().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a release `steward serve`'s smaps (most of each mapping's fields left out):
    /// a mapping of each kind.
    const SMAPS: &str = "\
55d0c0000000-55d0c0500000 r--p 00000000 fe:00 1234                       /work/bin/steward
Size:               5120 kB
Rss:                3400 kB
VmFlags: rd mr mw me
55d0c0500000-55d0c1d00000 r-xp 00500000 fe:00 1234                       /work/bin/steward
Rss:                7000 kB
55d0c1d00000-55d0c1e00000 r--p 01d00000 fe:00 1234                       /work/bin/steward
Rss:                 900 kB
55d0c1e00000-55d0c1e10000 rw-p 01e00000 fe:00 1234                       /work/bin/steward
Rss:                  40 kB
55d0c1e10000-55d0c1e20000 rw-p 00000000 00:00 0 
Rss:                  24 kB
55d0c2000000-55d0c2400000 rw-p 00000000 00:00 0                          [heap]
Rss:                2048 kB
7f0000000000-7f0001000000 rw-p 00000000 00:00 0 
Size:              16384 kB
Rss:               12000 kB
7f0001000000-7f0001200000 rw-p 00000000 00:00 0                          [anon:mimalloc]
Rss:                 100 kB
7f0002000000-7f0002100000 r-xp 00028000 fe:00 777                        /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1200 kB
7f0002100000-7f0002110000 r--p 00000000 fe:00 778                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
Rss:                 150 kB
7f0003000000-7f0003008000 rw-s 00000000 fe:00 999                        /tmp/steward-bench-x/run.db-shm
Rss:                  32 kB
7f0004000000-7f0004001000 r-xp 00000000 fe:00 1235                       /usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so (deleted)
Rss:                   4 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                 132 kB
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
";

    #[test]
    fn resident_memory_is_split_by_mapping() {
        let split = Split::parse(SMAPS, "/work/bin/steward");
        assert_eq!(
            split,
            Split {
                anon: 24 + 2048 + 12000 + 100 + 132,
                code: 7000,
                rodata: 3400 + 900,
                libs: 1200 + 150 + 4,
                other: 40 + 32 + 8,
            }
        );
        assert_eq!(split.total(), 27_038);
        let peak = Peak::of(split, 3);
        assert_eq!(
            (peak.rss_mib, peak.code_mib, peak.anon_mib),
            (26.4, 6.8, 14.0)
        );
    }

    /// A binary replaced on disk while it runs is named `PATH (deleted)` in smaps and by
    /// `/proc/PID/exe` alike; another program's mappings of the same path are not its own.
    #[test]
    fn the_binary_is_matched_by_the_path_smaps_gives() {
        let deleted = SMAPS.replace("/work/bin/steward", "/work/bin/steward (deleted)");
        let split = Split::parse(&deleted, "/work/bin/steward (deleted)");
        assert_eq!((split.code, split.rodata), (7000, 4300));
        let other = Split::parse(SMAPS, "/usr/bin/python3.11");
        assert_eq!((other.code, other.rodata), (0, 0));
        assert_eq!(other.other, 3400 + 7000 + 900 + 40 + 32 + 8);
    }

    #[test]
    fn the_sampler_reads_this_process() {
        let sampler = Sampler::start(std::process::id());
        std::thread::sleep(Duration::from_millis(300));
        let peak = sampler.stop().expect("this process's smaps is readable");
        assert!(peak.samples >= 2, "{peak:?}");
        assert!(peak.code_mib > 0.0 && peak.anon_mib > 0.0, "{peak:?}");
        assert!(peak.rss_mib >= peak.code_mib + peak.anon_mib, "{peak:?}");
    }
}
