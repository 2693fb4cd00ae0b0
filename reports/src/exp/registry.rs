//! The experiments of the report, in the report's order, with the figures and tables each
//! one writes: the one list the pipeline orders its sections by, the tests check the written
//! files against, and `notebooks-data/README.md` documents (a test holds every table here to
//! its columns there).
//!
//! Every figure and table name is a constant here and nowhere else. A figure and the table
//! behind it share their name (`NAME.png`, `NAME.svg`, `NAME.csv`), so one constant serves
//! both.
//!
//! This file uses nothing from the crate: the integration tests include it as it is.

/// Figure 1 and its table: ns per lookup, every structure on every dataset.
pub const FIG1_LOOKUP_LATENCY: &str = "fig1_lookup_latency";
/// Figure 2 and its table: the latency CDF on the most fragmented file.
pub const FIG2_LATENCY_CDF: &str = "fig2_latency_cdf";
/// Figure 3: tier shares and error windows.
pub const FIG3_ACCURACY: &str = "fig3_accuracy";
/// Figure 3's error-window table.
pub const FIG3_ERROR_WINDOWS: &str = "fig3_error_windows";
/// Figure 3's tier-share table.
pub const FIG3_TIER_SHARES: &str = "fig3_tier_shares";
/// Figure 4 and its table: bytes per extent.
pub const FIG4_BYTES_PER_EXTENT: &str = "fig4_bytes_per_extent";
/// Figure 4's table of the whole stack's memory.
pub const FIG4_STACK_MEMORY: &str = "fig4_stack_memory";
/// Figure 5 and its table: the read path's steps.
pub const FIG5_READ_PATH: &str = "fig5_read_path";
/// Figure 6 and its table: end-to-end read throughput.
pub const FIG6_END_TO_END: &str = "fig6_end_to_end";
/// Figure 7 and its table: training cost.
pub const FIG7_TRAINING: &str = "fig7_training";
/// Figure 8 and its table: the population's extent-count classes.
pub const FIG8_POPULATION: &str = "fig8_population";
/// Figure 8's per-class lookup cost table.
pub const FIG8_POPULATION_COST: &str = "fig8_population_cost";
/// Figure 8's expected-cost table.
pub const FIG8_EXPECTED_COST: &str = "fig8_expected_cost";
/// The compact learned mapping against the kernel's structure (a table, no figure).
pub const FIG9_COMPACT: &str = "fig9_compact";
/// Figure 10 and its table: upcalls under the kernel's cache budget.
pub const FIG10_CACHE: &str = "fig10_cache";
/// The adversarial maps and the per-file choice.
pub const ADVERSARIAL_MAPS: &str = "adversarial_maps";
/// The headline numbers.
pub const HEADLINE: &str = "headline";
/// What the run skipped, and why (written by the pipeline, not an experiment).
pub const SKIPPED: &str = "skipped";
/// The run's facts: command, commit, machine (written by the pipeline).
pub const RUN: &str = "run";

/// One experiment: its module's name and what it writes.
#[derive(Debug)]
pub struct Experiment {
    /// The module under `exp/` that runs it.
    pub id: &'static str,
    /// Figure stems it saves (PNG and SVG).
    pub figures: &'static [&'static str],
    /// Tables it writes.
    pub tables: &'static [&'static str],
}

/// Every experiment, in the report's order. Upcalls under the kernel's cache budget first:
/// what decides fuse-iomap's I/O cost. Then the population: the question for every file,
/// before the most fragmented ones. Then the compact learned mapping against the kernel's
/// structure, per group of maps. The order they are measured in differs (some use
/// another's measurement; see `pipeline::experiments`).
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        id: "cache",
        figures: &[FIG10_CACHE],
        tables: &[FIG10_CACHE],
    },
    Experiment {
        id: "population",
        figures: &[FIG8_POPULATION],
        tables: &[FIG8_POPULATION, FIG8_POPULATION_COST, FIG8_EXPECTED_COST],
    },
    Experiment {
        id: "compact",
        figures: &[],
        tables: &[FIG9_COMPACT],
    },
    Experiment {
        id: "adversarial",
        figures: &[],
        tables: &[ADVERSARIAL_MAPS],
    },
    Experiment {
        id: "headline",
        figures: &[],
        tables: &[HEADLINE],
    },
    Experiment {
        id: "latency",
        figures: &[FIG1_LOOKUP_LATENCY],
        tables: &[FIG1_LOOKUP_LATENCY],
    },
    Experiment {
        id: "cdf",
        figures: &[FIG2_LATENCY_CDF],
        tables: &[FIG2_LATENCY_CDF],
    },
    Experiment {
        id: "accuracy",
        figures: &[FIG3_ACCURACY],
        tables: &[FIG3_ERROR_WINDOWS, FIG3_TIER_SHARES],
    },
    Experiment {
        id: "memory",
        figures: &[FIG4_BYTES_PER_EXTENT],
        tables: &[FIG4_BYTES_PER_EXTENT, FIG4_STACK_MEMORY],
    },
    Experiment {
        id: "readpath",
        figures: &[FIG5_READ_PATH],
        tables: &[FIG5_READ_PATH],
    },
    Experiment {
        id: "endtoend",
        figures: &[FIG6_END_TO_END],
        tables: &[FIG6_END_TO_END],
    },
    Experiment {
        id: "training",
        figures: &[FIG7_TRAINING],
        tables: &[FIG7_TRAINING],
    },
];

/// The experiment called `id`, and its place in the report.
pub fn find(id: &str) -> Option<(usize, &'static Experiment)> {
    EXPERIMENTS.iter().enumerate().find(|(_, e)| e.id == id)
}
