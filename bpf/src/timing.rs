//! Timing the BPF program: the primitives the experiments of `reports` (`reports bpf-latency`,
//! experiment 1's BPF rows) are built from; the experiments themselves, which set these times
//! beside the userspace structures, live there.
//!
//! BPF times are the kernel's own (`BPF_PROG_TEST_RUN` with `repeat`: mean ns per run, one query
//! per run, the run rotating through the query set as a struct_ops hook would be called once per
//! `iomap_begin`). A run with [`crate::abi::RUN_NOOP`] (read the query, answer nothing) is the
//! test-run harness's own cost per run; [`syscall_samples`] is the wall time of one test run
//! answering one query from user space, what the server pays per query without struct_ops.

use std::hint::black_box;
use std::time::Instant;

use crate::abi::BeginIn;
use crate::tier::rotation_len;
use crate::{BpfError, BpfTier};

/// One block-sized query at each block of `lblks` of file `ino` (at most
/// [`crate::tier::REGION_SLOTS`], the most one run rotates through).
pub fn block_queries(ino: u64, block_size: u32, lblks: &[u32]) -> Vec<BeginIn> {
    lblks
        .iter()
        .take(crate::tier::REGION_SLOTS)
        .map(|&b| BeginIn {
            ino,
            pos: u64::from(b) * u64::from(block_size),
            count: u64::from(block_size),
            ..BeginIn::default()
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
    queries: &[BeginIn],
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
pub fn single_file(index: &predictor::LearnedIndex) -> Result<BpfTier, BpfError> {
    single_file_in(None, index)
}

/// [`single_file`] in another build of the program (`None`: the embedded one), to time a
/// variant against it (see [`BpfTier::load_object`]).
pub fn single_file_in(
    object: Option<&[u8]>,
    index: &predictor::LearnedIndex,
) -> Result<BpfTier, BpfError> {
    let file = crate::BpfFile {
        ino: SINGLE_INO,
        size: ext4::MAX_LBLK * u64::from(SINGLE_BLOCK_SIZE),
        block_size: SINGLE_BLOCK_SIZE,
        index,
    };
    match object {
        Some(o) => BpfTier::load_object(o, &[file], crate::Limits::default()),
        None => BpfTier::load(&[file], crate::Limits::default()),
    }
}
