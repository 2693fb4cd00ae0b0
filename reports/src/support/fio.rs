//! Timed 4 KiB reads of one file by fio: `--bs=4k --direct=1 --ioengine=psync`, so every read
//! reaches the file system (and, for FUSE, the server) instead of the page cache. The one
//! end-to-end read path of the project: experiment 6 and `reports reads`
//! ([`crate::cmd::reads`], which `scripts/results.sh` runs for the README) both use it.
//!
//! Random reads go to written data only ([`DataSpans`]): fio replays a generated I/O log of
//! uniformly chosen 4 KiB-aligned offsets inside the written extents (fio's own random
//! generator would spread them over holes too). Sequential reads are fio's `--rw=read` through
//! the whole file, holes included, as a reader of the file would. Latencies are fio's
//! completion-latency histogram (`--output-format=json+`, bins of about 1/64 relative width),
//! so runs merge exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use predictor::synth::Rng;
use serde::Deserialize;

use crate::support::timing::Summary;

/// Bytes per read.
pub const READ_SIZE: u64 = 4096;

/// Random reads fio's log holds per job and second of run time: above what one psync job
/// reaches here (about 10^5 reads/s through the kernel), so the log outlasts the run; if it did
/// not, the run would only end early, and its rates stay right.
const LOG_READS_PER_SECOND: f64 = 150_000.0;

/// Access pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Uniformly random 4 KiB-aligned offsets inside the file's data (see [`DataSpans`]).
    Random,
    /// Consecutive 4 KiB blocks from the start of the file, wrapping at the end.
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

    /// fio's name for it (`--rw`).
    pub fn fio_rw(self) -> &'static str {
        match self {
            Pattern::Random => "randread",
            Pattern::Sequential => "read",
        }
    }
}

/// Completion latencies of a run: fio's histogram, count per bin value in ns.
#[derive(Debug, Clone, Default)]
pub struct Latencies(BTreeMap<u64, u64>);

impl Latencies {
    /// Median, p99, min and mean, in ns (nearest rank over the bins); `None` for no reads.
    pub fn summary(&self) -> Option<Summary> {
        let n: u64 = self.0.values().sum();
        if n == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for (&ns, &c) in &self.0 {
                seen += c;
                if seen >= rank {
                    return ns as f64;
                }
            }
            0.0
        };
        let sum: f64 = self.0.iter().map(|(&ns, &c)| ns as f64 * c as f64).sum();
        Some(Summary {
            median: at(0.5),
            p99: at(0.99),
            min: self.0.keys().next().map_or(0.0, |&v| v as f64),
            mean: sum / n as f64,
            samples: usize::try_from(n).unwrap_or(usize::MAX),
        })
    }

    fn merge(&mut self, other: &Latencies) {
        for (&ns, &c) in &other.0 {
            *self.0.entry(ns).or_default() += c;
        }
    }
}

/// What one fio run did.
#[derive(Debug, Clone)]
pub struct ReadRun {
    /// Reads completed (all jobs).
    pub reads: u64,
    /// Bytes read.
    pub bytes: u64,
    /// fio's run time.
    pub elapsed: Duration,
    /// Completion latency of the reads.
    pub latencies: Latencies,
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
        self.latencies.merge(&other.latencies);
        self
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
    /// The written extents of a file of `size` bytes on a file system of `block_size`-byte
    /// blocks, up to the last whole 4 KiB of the file: a read of the partial block at the end
    /// would come back short (fio counts that as an error), and blocks past `i_size` read as
    /// nothing.
    pub fn new(extents: &[ext4::Extent], block_size: u32, size: u64) -> Self {
        let bs = u64::from(block_size);
        let limit = size / READ_SIZE * READ_SIZE;
        let mut out = Self::default();
        for e in extents.iter().filter(|e| !e.unwritten) {
            let start = u64::from(e.lblk) * bs;
            let end = (start + u64::from(e.len) * bs).min(limit);
            if end <= start {
                continue;
            }
            out.before.push(out.total);
            out.spans.push((start, end - start));
            out.total += end - start;
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
        Some(off / READ_SIZE * READ_SIZE)
    }
}

/// One fio run over one file.
#[derive(Debug, Clone)]
pub struct Fio<'a> {
    /// The fio binary.
    pub fio: &'a Path,
    /// The file read (on a mounted file system).
    pub file: &'a Path,
    /// Its size in bytes.
    pub size: u64,
    /// Where random reads go (the whole file when it holds no data).
    pub data: &'a DataSpans,
    /// Run time.
    pub time: Duration,
    /// fio jobs (threads each reading synchronously), reported as one group.
    pub jobs: u32,
    /// Pin fio to this CPU.
    pub cpu: Option<usize>,
    /// Seed of the random offsets.
    pub seed: u64,
}

impl Fio<'_> {
    /// Runs fio with `pattern` and returns what it measured.
    pub fn run(&self, pattern: Pattern) -> Result<ReadRun> {
        let file = self
            .file
            .to_str()
            .with_context(|| format!("{}: fio needs a UTF-8 path", self.file.display()))?;
        if self.size < READ_SIZE {
            bail!("{file}: {} bytes, less than one 4 KiB read", self.size);
        }
        // fio splits --filename at ':' and its I/O log at whitespace.
        if file.contains(char::is_whitespace) || file.len() > 250 {
            bail!("{file}: fio cannot replay reads of a path with spaces or over 250 bytes");
        }
        let logs = tempfile::Builder::new()
            .prefix("reports-fio-")
            .tempdir()
            .context("creating a directory for fio's I/O logs")?;
        let ms = self.time.as_millis().max(1);
        let mut cmd = Command::new(self.fio);
        cmd.args([
            "--output-format=json+",
            "--group_reporting",
            "--bs=4k",
            "--direct=1",
            "--ioengine=psync",
            &format!("--runtime={ms}ms"),
        ]);
        if let Some(cpu) = self.cpu {
            cmd.arg(format!("--cpus_allowed={cpu}"));
        }
        match pattern {
            Pattern::Sequential => {
                cmd.args([
                    "--name=read".to_string(),
                    format!("--filename={}", file.replace(':', "\\:")),
                    "--rw=read".into(),
                    "--time_based".into(),
                    format!("--numjobs={}", self.jobs.max(1)),
                ]);
            }
            Pattern::Random => {
                let per_job = (self.time.as_secs_f64() * LOG_READS_PER_SECOND).ceil() as u64;
                for job in 0..self.jobs.max(1) {
                    let log = logs.path().join(format!("job{job}.iolog"));
                    let seed = self.seed.wrapping_mul(1000).wrapping_add(u64::from(job));
                    self.write_log(&log, file, per_job.max(1000), seed)?;
                    cmd.arg(format!("--name=randread{job}"))
                        .arg(format!("--read_iolog={}", log.display()));
                }
            }
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.fio.display()))?;
        if !out.status.success() {
            // fio prints a failed job's error on stdout (before its JSON), the rest on stderr.
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = stderr
                .lines()
                .chain(stdout.lines().filter(|l| l.starts_with("fio:")))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>();
            bail!(
                "fio {} of {file} failed ({}): {}",
                pattern.fio_rw(),
                out.status,
                said.join(" | ")
            );
        }
        parse(&out.stdout).with_context(|| format!("fio's output for {file}"))
    }

    /// Writes a version-2 fio I/O log of `reads` random 4 KiB reads of `file`.
    fn write_log(&self, log: &Path, file: &str, reads: u64, seed: u64) -> Result<()> {
        let blocks = self.size / READ_SIZE;
        let mut rng = Rng::new(seed);
        let mut text = format!("fio version 2 iolog\n{file} add\n{file} open\n");
        for _ in 0..reads {
            let off = self
                .data
                .pick(&mut rng)
                .unwrap_or_else(|| rng.below(blocks) * READ_SIZE);
            let _ = writeln!(text, "{file} read {off} {READ_SIZE}");
        }
        let _ = writeln!(text, "{file} close");
        std::fs::write(log, text).with_context(|| format!("writing {}", log.display()))
    }
}

/// The reads of fio's `json+` output (one group: `--group_reporting`).
fn parse(stdout: &[u8]) -> Result<ReadRun> {
    #[derive(Deserialize)]
    struct Output {
        jobs: Vec<Job>,
    }
    #[derive(Deserialize)]
    struct Job {
        error: i64,
        read: Read,
    }
    #[derive(Deserialize)]
    struct Read {
        io_bytes: u64,
        total_ios: u64,
        /// Milliseconds.
        runtime: u64,
        clat_ns: Clat,
    }
    #[derive(Deserialize)]
    struct Clat {
        #[serde(default)]
        bins: BTreeMap<String, u64>,
    }
    let out: Output = serde_json::from_slice(stdout).context("parsing fio's JSON")?;
    let Some(job) = out.jobs.into_iter().next() else {
        bail!("fio reported no job");
    };
    if job.error != 0 {
        bail!("fio's job failed with error {}", job.error);
    }
    let mut bins = BTreeMap::new();
    for (ns, count) in job.read.clat_ns.bins {
        let ns: u64 = ns
            .parse()
            .with_context(|| format!("fio latency bin {ns:?}"))?;
        *bins.entry(ns).or_default() += count;
    }
    Ok(ReadRun {
        reads: job.read.total_ios,
        bytes: job.read.io_bytes,
        elapsed: Duration::from_millis(job.read.runtime),
        latencies: Latencies(bins),
    })
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
        let d = DataSpans::new(&exts, 4096, 93 * 4096);
        assert_eq!(d.bytes(), 5 * 4096);
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let b = d.pick(&mut rng).unwrap() / 4096;
            assert!((10..12).contains(&b) || (90..93).contains(&b), "block {b}");
        }
        assert!(DataSpans::default().pick(&mut rng).is_none());
        // A file ending inside its last extent's second block: only whole blocks before the
        // end are read (a read of the partial one would come back short).
        let d = DataSpans::new(&exts, 4096, 91 * 4096 + 100);
        assert_eq!(d.bytes(), 3 * 4096);
        for _ in 0..1000 {
            let b = d.pick(&mut rng).unwrap() / 4096;
            assert!((10..12).contains(&b) || b == 90, "block {b}");
        }
    }

    #[test]
    fn latency_bins_summarise_and_merge() {
        let mut a = Latencies([(1000, 98), (5000, 1), (9000, 1)].into());
        let s = a.summary().unwrap();
        assert_eq!(
            (s.median, s.p99, s.min, s.samples),
            (1000.0, 5000.0, 1000.0, 100)
        );
        a.merge(&Latencies([(9000, 100)].into()));
        let s = a.summary().unwrap();
        assert_eq!((s.median, s.p99, s.samples), (9000.0, 9000.0, 200));
        assert!(Latencies::default().summary().is_none());
    }
}
