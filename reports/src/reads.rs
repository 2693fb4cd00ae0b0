//! Timed 4 KiB reads of one file, the way `fio --rw=randread|read --bs=4k --direct=1
//! --ioengine=psync --numjobs=1` does them: O_DIRECT so every read reaches the file system
//! (and, for FUSE, the server) instead of the page cache; one job.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use predictor::synth::Rng;

/// Bytes per read.
pub const READ_SIZE: usize = 4096;

/// Access pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Uniformly random 4 KiB-aligned offsets inside the file's data (see [`DataSpans`]).
    Random,
    /// Consecutive 4 KiB blocks from a random start, wrapping at the end.
    Sequential,
}

impl Pattern {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Random => "random",
            Pattern::Sequential => "sequential",
        }
    }
}

/// What one timed run did.
#[derive(Debug, Clone)]
pub struct ReadRun {
    /// Reads completed.
    pub reads: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the file could be opened with O_DIRECT (else buffered, page cache dropped
    /// for the file before the run; repeated blocks may then hit the cache).
    pub direct: bool,
    /// Latency of every read, in ns.
    pub latencies: Vec<f64>,
}

impl ReadRun {
    /// MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Reads per second.
    pub fn iops(&self) -> f64 {
        self.reads as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Two runs of the same system and pattern as one.
    pub fn merge(mut self, other: ReadRun) -> ReadRun {
        self.reads += other.reads;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.direct &= other.direct;
        self.latencies.extend(other.latencies);
        self
    }
}

/// A 4 KiB buffer aligned to 4 KiB, as O_DIRECT requires.
struct Aligned {
    buf: Vec<u8>,
    off: usize,
}

impl Aligned {
    fn new() -> Self {
        let buf = vec![0u8; 2 * READ_SIZE];
        let off = buf.as_ptr().align_offset(READ_SIZE).min(READ_SIZE);
        Self { buf, off }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + READ_SIZE]
    }
}

/// The byte ranges of a file that hold written data. Random reads land only there: in a
/// punched file most blocks can be holes, which read as zeros without any I/O in the kernel,
/// and a random read of a hole measures little but the system call.
#[derive(Debug, Clone, Default)]
pub struct DataSpans {
    /// `(byte offset, length)` of each written extent.
    spans: Vec<(u64, u64)>,
    /// Bytes before each span (prefix sums), for picking a byte uniformly.
    before: Vec<u64>,
    total: u64,
}

impl DataSpans {
    /// The written extents of a file on a file system of `block_size`-byte blocks.
    pub fn new(extents: &[ext4::Extent], block_size: u32) -> Self {
        let bs = u64::from(block_size);
        let mut out = Self::default();
        for e in extents.iter().filter(|e| !e.unwritten) {
            out.before.push(out.total);
            out.spans
                .push((u64::from(e.lblk) * bs, u64::from(e.len) * bs));
            out.total += u64::from(e.len) * bs;
        }
        out
    }

    /// Bytes of written data.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// A uniformly chosen data byte's 4 KiB-aligned offset; `None` without data.
    fn pick(&self, rng: &mut Rng) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let b = rng.below(self.total);
        let i = self.before.partition_point(|&x| x <= b).saturating_sub(1);
        let (start, _) = *self.spans.get(i)?;
        let off = start + (b - self.before.get(i)?);
        Some(off / READ_SIZE as u64 * READ_SIZE as u64)
    }
}

/// Reads 4 KiB blocks of `path` in `pattern` for about `time` (at least 50 reads). Random reads
/// go to `data` (the whole file when it is empty); sequential ones run through the whole file,
/// holes included, as a reader of the file would.
pub fn run(
    path: &Path,
    pattern: Pattern,
    data: &DataSpans,
    time: Duration,
    seed: u64,
) -> Result<ReadRun> {
    let (file, direct) = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => (f, true),
        Err(e) => {
            tracing::info!(path = %path.display(), error = %e, "O_DIRECT refused; reading buffered");
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            drop_cache(&f);
            (f, false)
        }
    };
    let size = file
        .metadata()
        .with_context(|| format!("stat {}", path.display()))?
        .len();
    let blocks = (size / READ_SIZE as u64).max(1);
    let mut rng = Rng::new(seed);
    let mut next = rng.below(blocks);
    let mut buf = Aligned::new();
    let mut latencies = Vec::new();
    let mut bytes = 0u64;
    let start = Instant::now();
    while latencies.len() < 50 || start.elapsed() < time {
        let off = match pattern {
            Pattern::Random => data
                .pick(&mut rng)
                .unwrap_or_else(|| rng.below(blocks) * READ_SIZE as u64),
            Pattern::Sequential => {
                let b = next;
                next = (next + 1) % blocks;
                b * READ_SIZE as u64
            }
        };
        let t = Instant::now();
        let n = file
            .read_at(buf.get(), off)
            .with_context(|| format!("reading {} at byte {off}", path.display()))?;
        latencies.push(t.elapsed().as_nanos() as f64);
        bytes += n as u64;
    }
    Ok(ReadRun {
        reads: latencies.len() as u64,
        bytes,
        elapsed: start.elapsed(),
        direct,
        latencies,
    })
}

/// Asks the kernel to drop the file's cached pages (best effort).
fn drop_cache(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; advice has no memory effects.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_data() {
        let exts = [
            ext4::Extent {
                lblk: 10,
                pblk: 100,
                len: 2,
                unwritten: false,
            },
            ext4::Extent {
                lblk: 50,
                pblk: 200,
                len: 1,
                unwritten: true,
            },
            ext4::Extent {
                lblk: 90,
                pblk: 300,
                len: 3,
                unwritten: false,
            },
        ];
        let d = DataSpans::new(&exts, 4096);
        assert_eq!(d.bytes(), 5 * 4096);
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let b = d.pick(&mut rng).unwrap() / 4096;
            assert!((10..12).contains(&b) || (90..93).contains(&b), "block {b}");
        }
        assert!(DataSpans::default().pick(&mut rng).is_none());
    }
}
