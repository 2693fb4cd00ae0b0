//! Lookup latency of the BPF tier beside the userspace structures, on the same extents, model
//! and query stream.
//!
//! BPF times are the kernel's own (`BPF_PROG_TEST_RUN` with `repeat`: mean ns per run, one query
//! per run, the run rotating through the query set as a struct_ops hook would be called once per
//! `iomap_begin`). Each figure is the median of `rounds` such means. The noop run (read the
//! query, answer nothing) is the test-run harness's own cost per run; the syscall figure is the
//! wall time of one test run answering one query from user space, what the server pays per
//! query without struct_ops.

use std::hint::black_box;
use std::time::Instant;

use ext4::Extent;
use predictor::{BTreeIndex, ExtentIndex, LearnedIndex, XfsIextIndex};
use serde::Serialize;

use crate::abi::{self, Query};
use crate::tier::rotation_len;
use crate::{BpfError, BpfTier};

/// One file's numbers, in nanoseconds per lookup.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// Extents of the file.
    pub extents: usize,
    /// Model segments.
    pub segments: usize,
    /// Largest model window, in extents.
    pub max_window: u64,
    /// Queries in the rotating set.
    pub queries: usize,
    /// BPF program run that reads the query and answers nothing (harness overhead).
    pub bpf_noop_ns: f64,
    /// BPF program: model, window search, verification, mapping.
    pub bpf_model_ns: f64,
    /// BPF program ignoring the model: binary search over all the file's extents.
    pub bpf_full_search_ns: f64,
    /// Wall time of one test-run syscall answering one query, from user space (median of
    /// 2000).
    pub bpf_syscall_ns: f64,
    /// Mean probes (extent and segment reads) per BPF lookup with the model.
    pub bpf_probes: f64,
    /// The userspace learned index (`LearnedIndex::probe`) on the same queries.
    pub user_learned_ns: f64,
    /// `BTreeMap` (the `btree` tier) on the same queries.
    pub user_btree_ns: f64,
    /// The kernel's in-core extent tree design with XFS's 16-byte records (`iext16`), the
    /// structure fuse-iomap caches mappings in, on the same queries.
    pub user_iext16_ns: f64,
}

/// Measures file `ino` (loaded in `bpf`, with userspace index `index`) on the blocks `lblks`
/// (at most [`crate::tier::REGION_SLOTS`] are used), each figure the median of `rounds`
/// rounds of `repeat` runs.
pub fn measure(
    bpf: &BpfTier,
    ino: u64,
    block_size: u32,
    index: &LearnedIndex,
    lblks: &[u32],
    rounds: usize,
    repeat: u32,
) -> Result<LatencyRow, BpfError> {
    let lblks = &lblks[..lblks.len().min(crate::tier::REGION_SLOTS)];
    let queries = block_queries(ino, block_size, lblks);
    let bpf_median = |flags: u32| -> Result<f64, BpfError> {
        Ok(median(&mut samples(
            bpf, ino, block_size, lblks, flags, rounds, repeat,
        )?))
    };
    let bpf_noop_ns = bpf_median(abi::RUN_NOOP)?;
    let bpf_model_ns = bpf_median(0)?;
    let bpf_full_search_ns = bpf_median(abi::RUN_FULL_SEARCH)?;

    // One syscall per query, as `serve --bpf` and `mount --tier bpf` pay it.
    let bpf_syscall_ns = median(&mut syscall_samples(bpf, &queries, 2000)?);
    let answers = bpf.answer(&queries, 0)?;
    let bpf_probes =
        answers.iter().map(|a| f64::from(a.probes)).sum::<f64>() / answers.len().max(1) as f64;

    let extents: Vec<Extent> = index.extents().collect();
    let btree = BTreeIndex::new(&extents);
    let user_learned_ns = time_user(lblks, rounds, |q| index.probe(q));
    let user_btree_ns = time_user(lblks, rounds, |q| btree.find(q));
    let user_iext16_ns = match XfsIextIndex::new(&extents) {
        Ok(iext) => time_user(lblks, rounds, |q| iext.find(q)),
        // A map the 16-byte records cannot hold (lengths or addresses over their fields).
        Err(_) => f64::NAN,
    };
    Ok(LatencyRow {
        extents: index.len(),
        segments: index.segment_count(),
        max_window: index.max_window(),
        queries: queries.len(),
        bpf_noop_ns,
        bpf_model_ns,
        bpf_full_search_ns,
        bpf_syscall_ns,
        bpf_probes,
        user_learned_ns,
        user_btree_ns,
        user_iext16_ns,
    })
}

/// One block-sized query at each block of `lblks` of file `ino` (at most
/// [`crate::tier::REGION_SLOTS`], the most one run rotates through).
pub fn block_queries(ino: u64, block_size: u32, lblks: &[u32]) -> Vec<Query> {
    lblks
        .iter()
        .take(crate::tier::REGION_SLOTS)
        .map(|&b| Query {
            ino,
            pos: u64::from(b) * u64::from(block_size),
            count: u64::from(block_size),
            ..Query::default()
        })
        .collect()
}

/// Kernel-measured ns per program run, one sample per round: each round is `repeat` runs,
/// one query per run, rotating over the blocks `lblks` of file `ino` (the first
/// [`rotation_len`] of them). `flags`: `abi::RUN_*`.
pub fn samples(
    bpf: &BpfTier,
    ino: u64,
    block_size: u32,
    lblks: &[u32],
    flags: u32,
    rounds: usize,
    repeat: u32,
) -> Result<Vec<f64>, BpfError> {
    let queries = block_queries(ino, block_size, lblks);
    (0..rounds.max(1))
        .map(|_| bpf.time_one_per_run(&queries, flags, repeat))
        .collect()
}

/// Kernel-measured ns per program run over one pass through `lblks` (each of the first
/// [`rotation_len`] blocks queried once): what the caches see when every query is new, as
/// in a userspace race over the same batch.
pub fn one_pass(
    bpf: &BpfTier,
    ino: u64,
    block_size: u32,
    lblks: &[u32],
    flags: u32,
) -> Result<f64, BpfError> {
    let runs = u32::try_from(rotation_len(lblks.len())).unwrap_or(u32::MAX);
    let queries = block_queries(ino, block_size, lblks);
    bpf.time_one_per_run(&queries, flags, runs)
}

/// Wall ns of `calls` one-query test runs from user space, one sample each (after 100 warm-up
/// calls), cycling through `queries`: the syscall the server pays per lookup without
/// struct_ops.
pub fn syscall_samples(
    bpf: &BpfTier,
    queries: &[Query],
    calls: usize,
) -> Result<Vec<f64>, BpfError> {
    let mut out = Vec::with_capacity(calls);
    for (i, q) in queries.iter().cycle().take(calls + 100).enumerate() {
        let start = Instant::now();
        black_box(bpf.answer(std::slice::from_ref(q), 0)?);
        if i >= 100 {
            out.push(start.elapsed().as_nanos() as f64);
        }
    }
    Ok(out)
}

/// Inode number of the file [`single_file`] loads.
pub const SINGLE_INO: u64 = 1;
/// Block size of the file [`single_file`] loads.
pub const SINGLE_BLOCK_SIZE: u32 = 4096;

/// A BPF tier holding one file, [`SINGLE_INO`], with `index`'s extents and model and a size
/// covering every addressable block: for experiments on extent maps that are not in an image.
pub fn single_file(index: crate::BpfIndex<'_>) -> Result<BpfTier, BpfError> {
    let file = crate::BpfFile {
        ino: SINGLE_INO,
        size: ext4::MAX_LBLK * u64::from(SINGLE_BLOCK_SIZE),
        block_size: SINGLE_BLOCK_SIZE,
        index,
    };
    BpfTier::load(&[file], crate::Limits::default())
}

/// Median over `rounds` of the mean ns per lookup of `f` over `lblks` (looped to ~1 ms).
fn time_user<R>(lblks: &[u32], rounds: usize, f: impl Fn(u32) -> R) -> f64 {
    if lblks.is_empty() {
        return 0.0;
    }
    let loops = (250_000 / lblks.len()).max(1);
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..loops {
                for &q in lblks {
                    black_box(f(black_box(q)));
                }
            }
            start.elapsed().as_nanos() as f64 / (loops * lblks.len()) as f64
        })
        .collect();
    median(&mut v)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
