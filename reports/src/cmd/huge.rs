//! `reports huge`: the sizes of [`crate::support::huge`] measured in turn, one Markdown section
//! (or JSON row) each.

use anyhow::Result;

use crate::support::huge::{markdown, measure, Pattern, Plan, Source, STEPS};
use crate::support::race::{Effort, Evictor};
use crate::support::rows::print_row;

/// The command's arguments (`reports huge`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Extents in the file, one run per size (comma-separated). 10^8 needs about 7 GB of
    /// memory (the map, both structures and a second build of each for the cold regime).
    #[arg(long, value_delimiter = ',', default_value = "10000000,100000000")]
    pub extents: Vec<usize>,
    /// The allocation pattern whose kernel-made map the steps are drawn from (as root; without root the steps of
    /// predictor::synth::allocator_like, whose distributions are fixed by hand).
    #[arg(long, value_enum, default_value = "appenders")]
    pub pattern: Pattern,
    /// Operations of the pattern (default: the demo's scale, 5000 for the appenders; fewer
    /// make the source image faster and its steps fewer).
    #[arg(long)]
    pub scale: Option<u32>,
    /// Seed of the source image, the draw and the queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Uniform random blocks whose answers are checked against binary search over the map,
    /// for each structure.
    #[arg(long, default_value_t = 1_000_000)]
    pub check: usize,
    /// Of those, how many are asked through the BPF program (each answer checked).
    #[arg(long, default_value_t = 100_000)]
    pub bpf_check: usize,
    /// One JSON object per size instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Toy timing effort (a few rounds and cold samples; numbers are not meaningful).
    #[arg(long)]
    pub quick: bool,
}

/// `reports huge`.
pub fn run(args: &Args) -> Result<()> {
    let effort = if args.quick {
        Effort::quick()
    } else {
        Effort::full()
    };
    let evictor = Evictor::new()?;
    let plan = Plan {
        seed: args.seed,
        check: args.check,
        bpf_check: args.bpf_check,
    };
    let source = Source::new(args.pattern, args.scale, args.seed)?;
    tracing::info!(source = %source.name, mean_stride = source.mean_stride(), "steps to draw from");
    let bar = indicatif::ProgressBar::new((args.extents.len() * STEPS) as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for &n in &args.extents {
        let row = measure(n, &source, &plan, &effort, &evictor, &bar)?;
        bar.suspend(|| print_row(&row, args.json, markdown));
    }
    bar.finish_and_clear();
    Ok(())
}
