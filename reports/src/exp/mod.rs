//! The experiments of docs/design.md section 7, one module each. Every experiment returns a
//! [`Section`] of the report: its text, its figures (already written) and its tables.
//! [`registry::EXPERIMENTS`] lists them in the report's order with the names of what each
//! writes; the pipeline orders the sections by it and refuses a name it does not list.

pub mod accuracy;
pub mod adversarial;
pub mod cache;
pub mod cdf;
pub mod compact;
pub mod endtoend;
pub mod headline;
pub mod latency;
pub mod memory;
pub mod population;
pub mod readpath;
pub mod registry;
pub mod report;
pub mod training;

use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;

use crate::support::images::LoadedImage;
use crate::support::live::LiveSet;
use crate::support::machine::Machine;
use crate::support::table::{Table, Val};
use crate::support::timing::Budget;

/// How much of everything to do: the full demo, or `--quick` (seconds, for the test).
#[derive(Debug, Clone)]
pub struct Scale {
    /// Extent counts of the synthetic maps.
    pub synthetic_sizes: Vec<usize>,
    /// Lookup timing (experiment 1).
    pub lookup: Budget,
    /// Distinct precomputed query batches each race cycles through.
    pub query_batches: usize,
    /// Timed groups per structure for the CDF (experiment 2).
    pub cdf_groups: usize,
    /// Lookups per CDF group.
    pub cdf_group: usize,
    /// Queries per tier-share run (experiment 3).
    pub tier_queries: usize,
    /// Reading time per system and pattern (experiment 6), split over `e2e_rounds` rounds.
    pub e2e_time: Duration,
    /// Round-robin rounds over all mounted systems.
    pub e2e_rounds: u32,
    /// FUSE worker threads of our mount.
    pub server_threads: u16,
    /// Image preads timed (experiment 5).
    pub preads: usize,
    /// Extent counts of the single-file synthetic training runs (experiment 7).
    pub train_sizes: Vec<usize>,
    /// Number of small synthetic files fitted as one "many files" training run.
    pub train_many_files: usize,
    /// The images of a demo run, in report order: the debugfs-built ones, then (root only)
    /// the kernel-punched file and the maps the kernel's allocator makes ("maps made by the
    /// kernel allocator" beside the regular punch).
    pub recipes: Vec<imagekit::Recipe>,
    /// Files timed per extent-count class in the population view.
    pub population_samples: usize,
    /// Lookup timing of each sampled file in the population view.
    pub population_lookup: Budget,
    /// The per-file structure race of figure 9 (`reports structures`).
    pub structures: crate::support::race::Effort,
    /// The adversarial search of the "adversarial maps" section (`reports adversarial`).
    pub adversarial: predictor::adversary::Budget,
    /// Workloads whose traces figure 10 records (root, demo), with their operations; without
    /// them it replays the committed traces.
    pub cache_workloads: Vec<(imagekit::workloads::Workload, u32)>,
}

impl Scale {
    /// The full demo: under 5 minutes on 2 cores in release mode.
    pub fn full() -> Self {
        Self {
            synthetic_sizes: vec![1, 10, 1_000, 100_000, 1_000_000, 10_000_000],
            lookup: Budget {
                batch: 4096,
                min_rounds: 15,
                max_rounds: 2000,
                time: Duration::from_millis(800),
            },
            query_batches: 16,
            cdf_groups: 50_000,
            cdf_group: 16,
            tier_queries: 200_000,
            e2e_time: Duration::from_secs(6),
            e2e_rounds: 3,
            server_threads: 2,
            preads: 20_000,
            train_sizes: vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000],
            train_many_files: 100_000,
            recipes: imagekit::Recipe::DEMO.to_vec(),
            population_samples: 8,
            population_lookup: Budget {
                batch: 1024,
                min_rounds: 5,
                max_rounds: 400,
                time: Duration::from_millis(25),
            },
            structures: crate::support::race::Effort::full(),
            adversarial: predictor::adversary::Budget::REPORT,
            cache_workloads: imagekit::workloads::DEMO_TRACES.to_vec(),
        }
    }

    /// `--quick`: every experiment, every table and figure, in seconds.
    pub fn quick() -> Self {
        Self {
            synthetic_sizes: vec![1, 10, 1_000, 100_000],
            lookup: Budget {
                batch: 1024,
                min_rounds: 3,
                max_rounds: 20,
                time: Duration::from_millis(5),
            },
            query_batches: 4,
            cdf_groups: 500,
            cdf_group: 16,
            tier_queries: 5_000,
            e2e_time: Duration::from_millis(250),
            e2e_rounds: 1,
            server_threads: 2,
            preads: 500,
            train_sizes: vec![1_000, 100_000],
            train_many_files: 2_000,
            recipes: imagekit::Recipe::DEMO
                .iter()
                .filter(|r| !r.needs_root())
                .copied()
                .collect(),
            population_samples: 2,
            population_lookup: Budget {
                batch: 256,
                min_rounds: 2,
                max_rounds: 5,
                time: Duration::from_millis(1),
            },
            structures: crate::support::race::Effort::quick(),
            adversarial: predictor::adversary::Budget::QUICK,
            cache_workloads: Vec::new(),
        }
    }
}

/// What every experiment may use.
pub struct Ctx<'a> {
    /// Machine, date, command.
    pub machine: &'a Machine,
    /// How much to do.
    pub scale: &'a Scale,
    /// The images, trained (none in a live run).
    pub images: &'a [LoadedImage],
    /// The live scan, trained (live runs only).
    pub live: Option<&'a LiveSet>,
    /// Where figures go.
    pub fig_dir: &'a Path,
    /// Scratch directory of the run (images, packs, modified copies); removed at the end.
    pub work_dir: &'a Path,
    /// Whether the images are the demo's own (experiments may copy and modify them; a user's
    /// image is never copied).
    pub demo: bool,
    /// The run's progress bar (experiments set its message).
    pub bar: &'a ProgressBar,
    /// Our `server` binary, if there is one.
    pub server: Option<&'a Path>,
    /// The `fuse2fs` binary, if there is one.
    pub fuse2fs: Option<&'a Path>,
    /// The `fio` binary, if there is one (experiment 6 reads with it).
    pub fio: Option<&'a Path>,
}

impl Ctx<'_> {
    /// Footer lines for a figure: the machine and the exact command.
    pub fn footer(&self) -> Vec<String> {
        vec![
            format!("Machine: {}", self.machine.caption()),
            format!("Command: {}", self.machine.command),
        ]
    }

    /// The machine columns every measurement table carries.
    pub fn machine_cols(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("cpu_model", self.machine.cpu_model.clone().into()),
            ("cores", self.machine.cores.into()),
            ("cpus_pinned", self.machine.pinned.into()),
        ]
    }

    /// The image holding the most fragmented file with written data, and that file: the file
    /// of the CDF, read-path and end-to-end experiments.
    pub fn fragmented(&self) -> Option<(&LoadedImage, &crate::support::images::FileInfo)> {
        self.images
            .iter()
            .filter(|i| i.readable)
            .flat_map(|i| i.files.iter().map(move |f| (i, f)))
            .filter(|(_, f)| f.extents > 0)
            .max_by_key(|(_, f)| (f.extents, std::cmp::Reverse(f.ino)))
    }
}

/// One section of the report.
#[derive(Debug, Default)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Markdown text (what was measured, how, and the numbers that matter).
    pub body: String,
    /// Figure stems (`NAME.png` and `NAME.svg` in the figure directory).
    pub figures: Vec<String>,
    /// Tables to write under the tables directory.
    pub tables: Vec<Table>,
    /// Things not measured, and why.
    pub skipped: Vec<(String, String)>,
    /// Headline bullets for the report's summary.
    pub summary: Vec<String>,
}

/// `a / b`, or 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}
