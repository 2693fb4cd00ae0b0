//! `server bpf check`: the BPF program against the userspace predictor on every query of an
//! image. (Timing the program is an experiment: `reports bpf-latency`.)

use std::path::PathBuf;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use bpf::check::{check, CheckOptions};
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
}

/// The image and pack `check` loads.
#[derive(clap::Args, Debug)]
struct Common {
    /// The ext4 image, read-only.
    image: PathBuf,
    /// Model pack trained on this image (by `training fit`); optional with --compact.
    #[arg(long, value_name = "PACK", required_unless_present = "compact")]
    models: Option<PathBuf>,
    /// Check the compact form instead: every file's compact learned index (its lines from
    /// --models, else fitted at load) in the program's compact maps, against the userspace
    /// compact index.
    #[arg(long)]
    compact: bool,
    /// Most extents loaded into the program's maps; files past it fall back.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_extents)]
    max_extents: u32,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs root (CAP_BPF): the program is loaded and run in the kernel with BPF_PROG_TEST_RUN.
Prints the verifier's statistics first (\"verifier: processed N insns (limit 1000000), ...\",
the kernel's count of instructions it checked), then the JSON report:
{\"files\":..,\"files_loaded\":..,\"queries\":..,\"handled\":..,\"fallbacks\":{reason:n},
 \"wrong\":0,\"unexpected_fallbacks\":0,\"unexpected_answers\":0,...,\"verifier\":{..}}
Fallback reasons: no_model (no active model for the file, or the program did not take it),
bad_query (count 0, a read at or past EOF), map_error (inconsistent maps), missed
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

/// Runs `server bpf ...`.
pub fn run(args: &BpfArgs) -> anyhow::Result<()> {
    match &args.command {
        BpfCommand::Check(a) => run_check(a),
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let tier = if c.compact {
        predictor::Tier::Compact
    } else {
        predictor::Tier::Learned
    };
    let loaded = image::open(&c.image, c.models.as_deref(), tier, false)?;
    let bpf = load_stack(&loaded.stack, limits(c))?;
    bpf.report().log();
    eprintln!("verifier: {}", bpf.report().verifier);
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

fn limits(c: &Common) -> Limits {
    Limits {
        max_extents: c.max_extents,
        ..Limits::default()
    }
}
