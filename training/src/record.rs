//! `training record`: runs a workload on ext4 and records, from the kernel's tracepoints, the
//! mapping queries it causes and every change of its files' maps (`livefs::trace`), checks that
//! the changes rebuild FIEMAP's maps at every checkpoint, and writes the trace (Parquet).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use livefs::trace::{Recorder, Trace};

use imagekit::workloads::Workload;

#[derive(clap::Args, Debug)]
#[command(after_help = "Needs root (tracefs, loop devices). Examples:
  training record --workload vm-disk -o vm-disk.trace.parquet
  training record --mount /mnt/ext4 --command 'make -C /mnt/ext4/src' -o build.trace.parquet")]
pub struct Args {
    /// A built-in workload, run on a fresh ext4 image loop-mounted with `nodelalloc` in a
    /// temporary directory.
    #[arg(long, value_enum, required_unless_present = "command")]
    workload: Option<WorkloadArg>,
    /// Instead: a shell command (`sh -c`), run once on the ext4 file system mounted at --mount.
    /// Mount it with `nodelalloc`: delayed allocations cannot be traced.
    #[arg(long, requires = "mount", conflicts_with = "workload")]
    command: Option<String>,
    /// The mounted ext4 file system the command works on.
    #[arg(long, value_name = "DIR")]
    mount: Option<PathBuf>,
    /// Operations of the built-in workload (writes, punches, transactions, ...).
    #[arg(long, default_value_t = 2000)]
    scale: u32,
    /// Seed of the built-in workload's random choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Trace ring buffer per CPU, in KiB. A trace that overflows it is refused.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer_kib: u64,
    /// Where to write the trace (Parquet).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let trace = match (&args.workload, &args.command, &args.mount) {
        (Some(w), _, _) => {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            imagekit::workloads::record(dir.path(), w.0, args.scale, args.seed, args.buffer_kib)?
        }
        (None, Some(cmd), Some(dir)) => {
            let rec = Recorder::start(dir, cmd, args.buffer_kib)?;
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(dir)
                .status()
                .with_context(|| format!("running {cmd:?}"))?;
            if !status.success() {
                bail!("{cmd:?} failed ({status}); no trace written");
            }
            rec.finish()?
        }
        _ => bail!("give --workload, or --command with --mount"),
    };
    let checked = trace
        .check()
        .context("the recorded changes do not rebuild FIEMAP's maps; no trace written")?;
    tables::trace::write_trace(&args.output, &trace)?;
    summary(&trace, &checked);
    Ok(ExitCode::SUCCESS)
}

fn summary(trace: &Trace, c: &livefs::trace::Checked) {
    let largest = trace
        .initial
        .values()
        .chain(trace.events.iter().filter_map(|e| match e {
            livefs::trace::Event::Checkpoint { map, .. } => Some(map),
            _ => None,
        }));
    let extents = largest.map(Vec::len).max().unwrap_or(0);
    println!(
        "{}: {} queries, {} map changes, {} files; rebuilt exactly to FIEMAP at {} checkpoint maps ({} extents compared); largest map {} extents",
        trace.workload,
        c.queries,
        c.changes,
        trace.initial.len().max(files(trace)),
        c.checkpoints,
        c.extents,
        extents
    );
}

fn files(trace: &Trace) -> usize {
    let mut inos: Vec<u64> = trace.events.iter().map(livefs::trace::Event::ino).collect();
    inos.extend(trace.initial.keys());
    inos.sort_unstable();
    inos.dedup();
    inos.len()
}

/// `--workload`: one of imagekit's workloads, by name.
#[derive(Debug, Clone, Copy)]
struct WorkloadArg(Workload);

impl clap::ValueEnum for WorkloadArg {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [WorkloadArg; 5] = {
            let w = Workload::ALL;
            [
                WorkloadArg(w[0]),
                WorkloadArg(w[1]),
                WorkloadArg(w[2]),
                WorkloadArg(w[3]),
                WorkloadArg(w[4]),
            ]
        };
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()).help(self.0.summary()))
    }
}
