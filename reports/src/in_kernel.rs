//! The BPF tier in experiment 1: a dataset's learned index (the same one the userspace rows
//! use) loaded into the kernel program of the `bpf` crate, and timed by the kernel itself:
//! `BPF_PROG_TEST_RUN` with `repeat`, one query per run, each run taking the next query of the
//! batch, as a struct_ops `iomap_begin` hook would be called once per mapping request. One
//! sample is one pass over a batch (every query once), so the caches see what they see in the
//! userspace race, not a batch replayed until it is warm.
//!
//! Four rows: the program with the model, the same program binary-searching all the file's
//! extents (what the model saves in the kernel), the program evaluating the dataset's compact
//! learned index from its compact maps, and the harness alone (a run that reads the query and
//! answers nothing), which is part of every other BPF number.

use std::time::Instant;

use bpf::abi::{RUN_FULL_SEARCH, RUN_NOOP};
use bpf::timing::{one_pass, single_file, SINGLE_BLOCK_SIZE, SINGLE_INO};
use bpf::{BpfIndex, BpfTier};
use predictor::error::Chain;
use predictor::{LearnedIndex};

use crate::datasets::Dataset;
use crate::structures::{
    learned_index, Cell, BPF_COMPACT as COMPACT, BPF_FULL_SEARCH as FULL_SEARCH,
    BPF_MODEL as MODEL, BPF_NOOP as NOOP,
};
use crate::timing::Summary;

/// A dataset loaded into the program.
pub struct InKernel {
    tier: BpfTier,
    index: LearnedIndex,
    build_ms: f64,
    /// The dataset's compact index in the program's compact maps, if it loads.
    compact: Option<(BpfTier, LearnedIndex)>,
}

/// Whether a dataset could be loaded into the program.
pub enum Placement {
    /// In the kernel, with its figures' inputs.
    InKernel(Box<InKernel>),
    /// This dataset cannot be (no model, or the program does not take it): why.
    Skipped(String),
    /// The BPF tier cannot run here at all (no CAP_BPF, a kernel that refuses it): why.
    Unavailable(String),
}

/// Loads dataset `d` into the program.
pub fn into_kernel(d: &Dataset) -> Placement {
    let Some(index) = learned_index(d) else {
        return Placement::Skipped("no learned index".into());
    };
    let start = Instant::now();
    let tier = match single_file(BpfIndex::Learned(&index)) {
        Ok(t) => t,
        Err(e) => return Placement::Unavailable(Chain(&e).to_string()),
    };
    if let Some((_, why)) = tier.report().skipped.first() {
        return Placement::Skipped(why.to_string());
    }
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let compact = match LearnedIndex::new(&d.extents) {
        Ok(c) => match single_file(BpfIndex::Compact(&c)) {
            Ok(t) if t.report().skipped.is_empty() => Some((t, c)),
            Ok(t) => {
                let why = t.report().skipped.first().map(|(_, w)| w.to_string());
                tracing::warn!(dataset = %d.name, ?why, "compact form not loaded into BPF");
                None
            }
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %Chain(&e), "compact form not loaded into BPF");
                None
            }
        },
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "no compact index");
            None
        }
    };
    Placement::InKernel(Box::new(InKernel {
        tier,
        index,
        build_ms,
        compact,
    }))
}

impl InKernel {
    /// The verifier's statistics of each form of the program loaded for this dataset.
    pub fn verifier(&self) -> Vec<(&'static str, bpf::VerifierStats)> {
        let mut out = vec![("learned", self.tier.report().verifier)];
        if let Some((t, _)) = &self.compact {
            out.push(("compact", t.report().verifier));
        }
        out
    }
}

/// The BPF cells of `d` under `stream`, one timed round per query batch.
pub fn cells(l: &InKernel, d: &Dataset, stream: &'static str, batches: &[Vec<u32>]) -> Vec<Cell> {
    let mut rows = vec![
        (MODEL, &l.tier, 0),
        (FULL_SEARCH, &l.tier, RUN_FULL_SEARCH),
        (NOOP, &l.tier, RUN_NOOP),
    ];
    if let Some((t, _)) = &l.compact {
        rows.push((COMPACT, t, 0));
    }
    rows.iter()
        .filter_map(|&(structure, tier, flags)| {
            let r = tier.report();
            let mut ns = Vec::with_capacity(batches.len());
            for b in batches {
                match one_pass(tier, SINGLE_INO, SINGLE_BLOCK_SIZE, b, flags) {
                    Ok(v) => ns.push(v),
                    Err(e) => {
                        tracing::warn!(dataset = %d.name, error = %Chain(&e), "BPF test run failed");
                        return None;
                    }
                }
            }
            let ns = Summary::of(&mut ns)?;
            // The model each row evaluates: segments (or pieces), widest window, bytes.
            let (segments, max_window, model_bytes) = match structure {
                MODEL => (
                    l.index.segment_count(),
                    l.index.max_window(),
                    l.index.segment_count() * std::mem::size_of::<bpf::abi::Seg>(),
                ),
                // The compact form's lines and runs, and its directory.
                COMPACT => {
                    let shape = l.compact.as_ref().map(|(_, c)| c.shape()).unwrap_or_default();
                    let bytes = r.pieces as usize * std::mem::size_of::<bpf::abi::Piece>()
                        + r.compact_buckets as usize * std::mem::size_of::<bpf::abi::CBucket>();
                    (shape.lines + shape.runs, 0, bytes)
                }
                _ => (0, 0, 0),
            };
            Some(Cell {
                dataset: d.name.clone(),
                source: d.source,
                extents: d.extents.len(),
                structure,
                stream,
                ns,
                heap_bytes: usize::try_from(r.map_bytes).unwrap_or(usize::MAX),
                segments,
                max_window,
                model_bytes,
                build_ms: l.build_ms,
            })
        })
        .collect()
}
