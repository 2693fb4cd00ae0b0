//! The BPF tier in experiment 1: a dataset's learned index (the same one the userspace rows
//! use, in the records storage) loaded into the kernel program of the `bpf` crate, and timed by
//! the kernel itself:
//! `BPF_PROG_TEST_RUN` with `repeat`, one query per run, each run taking the next query of the
//! batch, as a struct_ops `iomap_begin` hook would be called once per mapping request. One
//! sample is one pass over a batch (every query once), so the caches see what they see in the
//! userspace race, not a batch replayed until it is warm.
//!
//! Three rows: the program evaluating the learned index (records storage), the same program
//! evaluating the dataset's compact learned index (packed storage, the same maps), and the
//! harness alone (a run that reads the query and answers nothing), which is part of every other
//! BPF number.

use std::time::Instant;

use bpf::abi::RUN_NOOP;
use bpf::timing::{one_pass, single_file, SINGLE_BLOCK_SIZE, SINGLE_INO};
use bpf::BpfTier;
use predictor::error::Chain;
use predictor::LearnedIndex;

use crate::support::datasets::Dataset;
use crate::support::structures::{
    learned_index, Cell, BPF_COMPACT as COMPACT, BPF_MODEL as MODEL, BPF_NOOP as NOOP,
};
use crate::support::timing::Summary;

/// A dataset loaded into the program.
pub struct InKernel {
    tier: BpfTier,
    index: LearnedIndex,
    build_ms: f64,
    /// The dataset's compact index (packed storage) in the program's maps, if it loads.
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
    let tier = match single_file(&index) {
        Ok(t) => t,
        Err(e) => return Placement::Unavailable(Chain(&e).to_string()),
    };
    if let Some((_, why)) = tier.report().skipped.first() {
        return Placement::Skipped(why.to_string());
    }
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let compact = match LearnedIndex::new(&d.extents) {
        Ok(c) => match single_file(&c) {
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
    let mut rows = vec![(MODEL, &l.tier, 0), (NOOP, &l.tier, RUN_NOOP)];
    if let Some((t, _)) = &l.compact {
        rows.push((COMPACT, t, 0));
    }
    // The model as the program's maps hold it: its pieces and directory.
    let map_model = |r: &bpf::LoadReport| {
        r.pieces as usize * std::mem::size_of::<bpf::abi::Piece>()
            + r.buckets as usize * std::mem::size_of::<bpf::abi::CBucket>()
    };
    let widest = |ix: &LearnedIndex| ix.model().map_or(0, |m| m.max_window());
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
            // The model each row evaluates: segments (lines; for the compact row lines and
            // runs), widest window, bytes of its pieces and directory in the maps.
            let (segments, max_window, model_bytes) = match structure {
                MODEL => (l.index.segment_count(), widest(&l.index), map_model(r)),
                COMPACT => match &l.compact {
                    Some((_, c)) => {
                        let shape = c.shape();
                        (shape.lines + shape.runs, widest(c), map_model(r))
                    }
                    None => (0, 0, 0),
                },
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
