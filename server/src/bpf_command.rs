//! `server bpf check` and `server bpf latency`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use predictor::synth::Rng;

use bpf::check::{check, CheckOptions};
use bpf::latency::measure;
use bpf::{load_stack, Limits};

use crate::image;

/// Arguments of `server bpf`.
#[derive(clap::Args, Debug)]
pub struct BpfArgs {
    #[command(subcommand)]
    command: BpfCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BpfCommand {
    /// Run every query of every file through the BPF program and the userspace predictor and
    /// compare; prints a JSON report, exits 1 on any disagreement.
    Check(CheckArgs),
    /// Time lookups in the BPF program beside the userspace learned index and BTreeMap on the
    /// same files and queries; prints one JSON object per file.
    Latency(LatencyArgs),
}

/// The image and pack `check` loads.
#[derive(clap::Args, Debug)]
struct Common {
    /// The ext4 image, read-only.
    image: PathBuf,
    /// Model pack trained on this image (by `training fit`); not needed with --compact.
    #[arg(long, value_name = "PACK", required_unless_present = "compact")]
    models: Option<PathBuf>,
    /// Check the compact form instead: every file's compact learned index (fitted at load,
    /// no pack) in the program's compact maps, against the userspace compact index.
    #[arg(long)]
    compact: bool,
    /// Most extents loaded into the program's maps; files past it fall back.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_extents)]
    max_extents: u32,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs root (CAP_BPF): the program is loaded and run in the kernel with BPF_PROG_TEST_RUN.
Output: {\"files\":..,\"files_loaded\":..,\"queries\":..,\"handled\":..,\"fallbacks\":{reason:n},
         \"wrong\":0,\"unexpected_fallbacks\":0,\"unexpected_answers\":0,...}
Fallback reasons: no_model (no active model for the file, or the program did not take it),
bad_query (count 0, a read at or past EOF), window (over the program's bound), missed
(verification).

Examples:
  server bpf check disk.img --models disk.pack
  server bpf check disk.img --compact")]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// Files with at most this many blocks are checked at every block.
    #[arg(long, value_name = "N", default_value_t = CheckOptions::default().exhaustive_blocks)]
    exhaustive_blocks: u64,
    /// Random blocks checked in each larger file (besides every extent boundary).
    #[arg(long, value_name = "N", default_value_t = CheckOptions::default().samples)]
    samples: usize,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs root (CAP_BPF). Times are kernel-measured means of one-query program runs (repeat N),
median of --rounds; the noop run is the test-run harness's own cost per run; bpf_syscall_ns is
one BPF_PROG_TEST_RUN from user space answering one query. The userspace figures time the same
queries through the same learned index and a BTreeMap of the same extents. Pin to one CPU:
  taskset -c 1 server bpf latency disk.img --models disk.pack
  taskset -c 1 server bpf latency --synthetic 1000,100000,1000000")]
struct LatencyArgs {
    /// The ext4 image, read-only (or use --synthetic).
    #[arg(required_unless_present = "synthetic", requires = "models")]
    image: Option<PathBuf>,
    /// Model pack trained on this image (by `training fit`).
    #[arg(long, value_name = "PACK")]
    models: Option<PathBuf>,
    /// Time synthetic allocator-like extent maps of these sizes instead (the maps of the
    /// reports' figure 1, seed 42), each fitted with the default window.
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        conflicts_with = "image"
    )]
    synthetic: Vec<usize>,
    /// Files to time, by inode [default: the --files files with the most extents].
    #[arg(long, value_name = "N")]
    ino: Vec<u32>,
    /// How many of the largest files to time when no --ino is given.
    #[arg(long, value_name = "N", default_value_t = 3)]
    files: usize,
    /// Queries (uniform random blocks of the file) in the rotating set, at most 4096.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    queries: usize,
    /// Rounds; each figure is the median.
    #[arg(long, value_name = "N", default_value_t = 21)]
    rounds: usize,
    /// Program runs per round.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    repeat: u32,
}

/// Runs `server bpf ...`.
pub fn run(args: &BpfArgs) -> anyhow::Result<()> {
    match &args.command {
        BpfCommand::Check(a) => run_check(a),
        BpfCommand::Latency(a) => run_latency(a),
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let tier = if c.compact {
        predictor::Tier::Compact
    } else {
        predictor::Tier::Learned
    };
    let loaded = image::load(&c.image, c.models.as_deref(), tier, false)?;
    let bpf = load_stack(&loaded.stack, limits(c))?;
    bpf.report().log();
    let bar = ProgressBar::new(loaded.report.files as u64).with_style(
        ProgressStyle::with_template("checking {pos}/{len} files {wide_bar} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let opts = CheckOptions {
        exhaustive_blocks: args.exhaustive_blocks,
        samples: args.samples,
        ..CheckOptions::default()
    };
    let report = check(&loaded.stack, &bpf, &opts, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.agrees() {
        bail!(
            "the BPF program disagrees with the userspace predictor ({} wrong, {} unexpected \
             fallbacks, {} unexpected answers)",
            report.wrong,
            report.unexpected_fallbacks,
            report.unexpected_answers
        );
    }
    Ok(())
}

fn run_latency(args: &LatencyArgs) -> anyhow::Result<()> {
    let (Some(image), Some(models)) = (&args.image, &args.models) else {
        return run_latency_synthetic(args);
    };
    let loaded = image::load(image, Some(models), predictor::Tier::Learned, false)?;
    let stack = &loaded.stack;
    let bpf = load_stack(stack, Limits::default())?;
    bpf.report().log();
    let inodes: Vec<u32> = if args.ino.is_empty() {
        let mut by_size: Vec<(usize, u32)> = stack
            .inodes()
            .filter(|&i| stack.learned(i).is_some())
            .map(|i| (stack.extent_count(i).unwrap_or(0), i))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        by_size
            .into_iter()
            .take(args.files)
            .map(|(_, i)| i)
            .collect()
    } else {
        args.ino.clone()
    };
    let mut rng = Rng::new(7);
    for ino in inodes {
        let index = stack
            .learned(ino)
            .with_context(|| format!("inode {ino}: no active model in {}", models.display()))?;
        if bpf
            .report()
            .skipped
            .iter()
            .any(|(i, _)| *i == u64::from(ino))
        {
            bail!("inode {ino}: not loaded into the BPF program (see the log)");
        }
        let (first, last) = match (index.extents().next(), index.extents().last()) {
            (Some(f), Some(l)) => (u64::from(f.lblk), l.end()),
            _ => continue,
        };
        let lblks: Vec<u32> = (0..args.queries.min(4096))
            .map(|_| (first + rng.below(last - first)) as u32)
            .collect();
        let row = measure(
            &bpf,
            u64::from(ino),
            stack.block_size(),
            index,
            &lblks,
            args.rounds,
            args.repeat,
        )?;
        let mut json = serde_json::to_value(&row)?;
        json["ino"] = ino.into();
        println!("{json}");
    }
    Ok(())
}

/// `server bpf latency --synthetic`: allocator-like maps, one file each.
fn run_latency_synthetic(args: &LatencyArgs) -> anyhow::Result<()> {
    use bpf::latency::{single_file, SINGLE_BLOCK_SIZE, SINGLE_INO};
    for &n in &args.synthetic {
        let extents = predictor::synth::allocator_like(n, 42);
        let index = predictor::LearnedIndex::fit(&extents, &predictor::FitParams::default())
            .with_context(|| format!("fitting the synthetic map of {n} extents"))?;
        let bpf = single_file(bpf::BpfIndex::Learned(&index))?;
        if let Some((_, why)) = bpf.report().skipped.first() {
            bail!("synthetic map of {n} extents not loaded: {why}");
        }
        let lblks = predictor::synth::uniform_queries(&extents, args.queries.min(4096), 7);
        let row = measure(
            &bpf,
            SINGLE_INO,
            SINGLE_BLOCK_SIZE,
            &index,
            &lblks,
            args.rounds,
            args.repeat,
        )?;
        let mut json = serde_json::to_value(&row)?;
        json["dataset"] = format!("synthetic-{n}").into();
        println!("{json}");
    }
    Ok(())
}

fn limits(c: &Common) -> Limits {
    Limits {
        max_extents: c.max_extents,
        ..Limits::default()
    }
}
