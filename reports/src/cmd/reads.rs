//! `reports reads`: one file of an image read by fio ([`crate::support::fio`]) through the
//! kernel's ext4, fuse2fs and our mount with each tier; one JSON row per run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::support::fio::{DataSpans, Fio, Pattern};
use crate::support::mounts::{find_tool, Systems};
use crate::support::rows::ReadRow;

/// CPU pinning of `reports reads`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Nothing pinned.
    None,
    /// fio and the FUSE server (fuse2fs, ours) on CPU 0.
    Same,
    /// The FUSE server on CPU 0, fio on CPU 1.
    Split,
}

impl Pin {
    fn name(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }

    /// (server CPU, fio CPU).
    fn cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Pin::None => (None, None),
            Pin::Same => (Some(0), Some(0)),
            Pin::Split => (Some(0), Some(1)),
        }
    }
}

/// Arguments of `reports reads`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Mounts IMAGE read-only through the kernel's ext4 (loop), fuse2fs and `server mount` with each
--tiers tier, and reads --path with fio: random 4 KiB reads inside the file's written data and
sequential reads through the whole file, O_DIRECT, for each --jobs count. The image file is read
into the host page cache first, so every path reads warm bytes and the differences are the
mapping and FUSE paths. Prints one JSON object per run (path, rw, jobs, pin, seconds, iops,
mb_per_s, p50_us, p99_us), the lines `reports results --reads` takes. Needs root, fio and
fuse2fs; the `server` binary next to this one (cargo build --release -p server -p reports).

Example:
  reports reads demo.img --path /punched-100k --models demo.pack --seconds 5 --jobs 1,4")]
pub struct Args {
    /// The ext4 image, mounted read-only.
    image: PathBuf,
    /// The file to read, as a path inside the image.
    #[arg(long, value_name = "P")]
    path: String,
    /// Model pack trained on this image (by `training fit`), for our mounts.
    #[arg(long, value_name = "PACK")]
    models: PathBuf,
    /// Our mount's tiers, one mount each.
    #[arg(long, value_name = "T,T,...", value_delimiter = ',',
          default_values_t = ["ondisk", "btree", "learned", "compact", "bpf"].map(String::from))]
    tiers: Vec<String>,
    /// Seconds per run.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    seconds: f64,
    /// fio job counts to run, each a run of its own.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_values_t = [1u32])]
    jobs: Vec<u32>,
    /// Pin the FUSE servers and fio to CPUs.
    #[arg(long, value_enum, default_value_t = Pin::None)]
    pin: Pin,
    /// FUSE worker threads of our server.
    #[arg(long, value_name = "N", default_value_t = 4)]
    threads: u16,
    /// The `server` binary (default: next to this binary, or on PATH).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
}

/// Runs `reports reads`.
pub fn run(args: &Args) -> Result<()> {
    let fio = find_tool("fio", None).context("fio not found (Debian package fio)")?;
    let fs = ext4::Fs::open_path(&args.image)
        .with_context(|| format!("opening {}", args.image.display()))?;
    let inode = fs
        .lookup_path(&args.path)
        .with_context(|| args.image.display().to_string())?;
    let extents = fs
        .extents(&inode)
        .with_context(|| format!("{}: extents of {}", args.image.display(), args.path))?;
    let data = DataSpans::new(&extents, fs.block_size(), inode.size);
    // Warm the host page cache with the image: every path then reads the same warm bytes.
    let mut image = std::fs::File::open(&args.image)
        .with_context(|| format!("opening {}", args.image.display()))?;
    std::io::copy(&mut image, &mut std::io::sink())
        .with_context(|| format!("reading {}", args.image.display()))?;

    let (server_cpu, fio_cpu) = args.pin.cpus();
    let server = find_tool("server", args.server.as_deref());
    let fuse2fs = find_tool("fuse2fs", None);
    let systems = Systems {
        image: &args.image,
        pack: &args.models,
        kernel_mountable: true,
        tiers: &args.tiers,
        server: server.as_deref(),
        fuse2fs: fuse2fs.as_deref(),
        threads: args.threads,
        cpu: server_cpu,
    };
    let (mounted, skipped) = systems.mount();
    if let Some((name, why)) = skipped.first() {
        bail!("{name} could not be mounted: {why}");
    }
    let time = Duration::from_secs_f64(args.seconds.max(0.05));
    for (k, s) in mounted.iter().enumerate() {
        let file = s.mounted.host_path(&args.path);
        let fio = |jobs, time, seed| Fio {
            fio: &fio,
            file: &file,
            size: inode.size,
            data: &data,
            time,
            jobs,
            cpu: fio_cpu,
            seed,
        };
        // Mount-time lazy work (lookups, the kernel reading the extent tree) stays out.
        fio(1, time / 5, 99)
            .run(Pattern::Random)
            .with_context(|| format!("warming up {}", s.name))?;
        for pattern in [Pattern::Random, Pattern::Sequential] {
            for &jobs in &args.jobs {
                let r = fio(jobs, time, k as u64 + 1)
                    .run(pattern)
                    .with_context(|| {
                        format!(
                            "reading through {} (its log: {})",
                            s.name,
                            s.mounted.log_tail()
                        )
                    })?;
                let sum = r.latencies.summary();
                let (p50, p99) = sum.map_or((0.0, 0.0), |s| (s.median / 1e3, s.p99 / 1e3));
                eprintln!(
                    "{:22} {:9} jobs={jobs}  {:9.0} IOPS  {:7.1} MB/s  p50 {p50:6.1} us  p99 {p99:6.1} us",
                    s.name,
                    pattern.fio_rw(),
                    r.iops(),
                    r.mb_per_s()
                );
                let json = ReadRow {
                    path: s.name.clone(),
                    rw: pattern.fio_rw().to_string(),
                    jobs,
                    pin: args.pin.name().to_string(),
                    seconds: time.as_secs_f64(),
                    iops: r.iops(),
                    mb_per_s: r.mb_per_s(),
                    p50_us: p50,
                    p99_us: p99,
                };
                println!("{}", serde_json::to_string(&json)?);
            }
        }
    }
    Ok(())
}
