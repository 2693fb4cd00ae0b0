//! The BPF tier in experiment 1: a dataset's learned index (the same one the userspace rows
//! use) loaded into the kernel program of `server::bpf`, and timed by the kernel itself:
//! `BPF_PROG_TEST_RUN` with `repeat`, one query per run, each run taking the next query of the
//! batch, as a struct_ops `iomap_begin` hook would be called once per mapping request. One
//! sample is one pass over a batch (every query once), so the caches see what they see in the
//! userspace race, not a batch replayed until it is warm.
//!
//! Three rows: the program with the model, the same program binary-searching all the file's
//! extents (what the model saves in the kernel), and the harness alone (a run that reads the
//! query and answers nothing), which is part of every other BPF number.

use std::time::Instant;

use predictor::error::Chain;
use predictor::LearnedIndex;
use server::bpf::abi::{RUN_FULL_SEARCH, RUN_NOOP};
use server::bpf::latency::{one_pass, single_file, SINGLE_BLOCK_SIZE, SINGLE_INO};
use server::bpf::BpfTier;

use crate::datasets::Dataset;
use crate::exp::latency::Cell;
use crate::structures::learned_index;
use crate::timing::Summary;

/// Structure id of the program with the model.
pub const MODEL: &str = "bpf";
/// Structure id of the program searching without the model.
pub const FULL_SEARCH: &str = "bpf-full";
/// Structure id of the harness alone.
pub const NOOP: &str = "bpf-noop";

/// A dataset loaded into the program.
pub struct Loaded {
    tier: BpfTier,
    index: LearnedIndex,
    build_ms: f64,
}

/// Whether a dataset could be loaded into the program.
pub enum Load {
    /// Loaded.
    Loaded(Box<Loaded>),
    /// This dataset cannot be (no model, or the program does not take it): why.
    Skipped(String),
    /// The BPF tier cannot run here at all (no CAP_BPF, a kernel that refuses it): why.
    Unavailable(String),
}

/// Loads dataset `d` into the program.
pub fn load(d: &Dataset) -> Load {
    let Some(index) = learned_index(d) else {
        return Load::Skipped("no learned index".into());
    };
    let start = Instant::now();
    let tier = match single_file(&index) {
        Ok(t) => t,
        Err(e) => return Load::Unavailable(Chain(&e).to_string()),
    };
    if let Some((_, why)) = tier.report().skipped.first() {
        return Load::Skipped(why.to_string());
    }
    Load::Loaded(Box::new(Loaded {
        tier,
        index,
        build_ms: start.elapsed().as_secs_f64() * 1e3,
    }))
}

/// The three BPF cells of `d` under `stream`, one timed round per query batch.
pub fn cells(l: &Loaded, d: &Dataset, stream: &'static str, batches: &[Vec<u32>]) -> Vec<Cell> {
    let r = l.tier.report();
    let rows = [(MODEL, 0), (FULL_SEARCH, RUN_FULL_SEARCH), (NOOP, RUN_NOOP)];
    rows.iter()
        .filter_map(|&(structure, flags)| {
            let mut ns = Vec::with_capacity(batches.len());
            for b in batches {
                match one_pass(&l.tier, SINGLE_INO, SINGLE_BLOCK_SIZE, b, flags) {
                    Ok(v) => ns.push(v),
                    Err(e) => {
                        tracing::warn!(dataset = %d.name, error = %Chain(&e), "BPF test run failed");
                        return None;
                    }
                }
            }
            let ns = Summary::of(&mut ns)?;
            let model = structure == MODEL;
            Some(Cell {
                dataset: d.name.clone(),
                source: d.source,
                extents: d.extents.len(),
                structure,
                stream,
                ns,
                heap_bytes: usize::try_from(r.map_bytes).unwrap_or(usize::MAX),
                segments: if model { l.index.segment_count() } else { 0 },
                max_window: if model { l.index.max_window() } else { 0 },
                model_bytes: if model {
                    l.index.segment_count() * std::mem::size_of::<server::bpf::abi::Seg>()
                } else {
                    0
                },
                build_ms: l.build_ms,
            })
        })
        .collect()
}
