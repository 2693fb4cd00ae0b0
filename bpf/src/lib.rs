//! The BPF tier: each file's learned index evaluated in the kernel.
//!
//! The program (`bpf/program/iomap_begin.bpf.c`) is the `iomap_begin` of fuse-iomap's proposed
//! `fuse_iomap_bpf_ops`: look up the inode's header, find the piece holding the block through
//! the directory, evaluate the piece's fixed-point line, search the window of its extents
//! (a key column beside 12-byte records, or packed blocks), verify, and fill the mapping, or return FALLBACK.
//! Mainline kernels have no such struct_ops, so the program is an XDP program driven by
//! `BPF_PROG_TEST_RUN`: real in-kernel execution, verified and JIT-compiled, with one syscall
//! per batch of queries.
//!
//! One map set holds every file, in either storage of the one [`predictor::LearnedIndex`]: the
//! records storage (`--tier bpf`, the learned stack) and the packed one (`--tier bpf-compact`).
//!
//! - [`abi`]: the maps' element layouts, mirrored from `bpf/program/iomap_begin.h`.
//! - [`tier`] loads ([`BpfTier::load`] fills the maps from the same [`predictor::LearnedIndex`]
//!   the userspace predictor uses) and runs ([`BpfTier::answer`], timing); [`BpfTier::replace`] puts a file's new form in the maps while lookups run, each
//!   lookup seeing the old form or the new one whole (`update`: free slots, one hash-map
//!   update, an RCU grace period before anything is reused).
//! - [`check`]: every query of every file through both evaluators, compared.
//! - [`timing`]: timing the program in the kernel (`BPF_PROG_TEST_RUN`), for the experiments
//!   of `reports`.
//!
//! Limits: maps are u32-indexed arrays, bounded by [`Limits`] (16 Mi extents by default);
//! windows over [`abi::COMPACT_WINDOW`] extents are not loaded; files past the limits, with a
//! block size outside 1-64 KiB or with physical addresses past 2^63 bytes are skipped and fall
//! back. The verifier sees bounded loops only (33 halvings at most) and the batch loop is
//! `bpf_loop`, so its work does not grow with the batch size.

pub mod abi;
pub mod check;
mod choice;
pub mod form;
mod grace;
mod mmap;
mod slots;
pub mod tier;
pub mod timing;
mod update;

use std::io;

pub use choice::TierChoice;
pub use form::{BpfFile, Skip};
pub use tier::{BpfTier, Limits, LoadReport, Spare, Status, VerifierStats, VERIFIER_LIMIT};
pub use update::Replaced;

use predictor::error::Chain;
use predictor::{FrontAnswer, FrontTier, LearnedIndex, Query, TierKind, TierStack};

/// Why the BPF tier is not available.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The process may not use bpf(2).
    #[error(
        "{what} was refused (the BPF tier needs CAP_BPF and CAP_PERFMON: run as root; the \
         userspace tiers still work)"
    )]
    Permission {
        /// The step that was refused.
        what: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// The kernel's verifier refused the program (the message carries the verifier log).
    #[error("the kernel refused the BPF program: {0}")]
    Verifier(String),
    /// The embedded object is not what the loader expects.
    #[error("BPF object: {0}")]
    Object(String),
    /// Mapping a map's memory failed.
    #[error("mmap of BPF map {name}")]
    Mmap {
        /// The map.
        name: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// A test run failed.
    #[error("BPF_PROG_TEST_RUN: {0}")]
    Run(String),
    /// Changing the maps after load failed (a bpf(2) call refused).
    #[error("updating the BPF maps: {0}")]
    Update(String),
}

impl BpfError {
    /// The error of loading the object (creating maps, relocating).
    fn from_load(e: aya::EbpfError) -> Self {
        match permission_denied(&e) {
            Some(source) => Self::Permission {
                what: "creating the BPF maps",
                source,
            },
            None => Self::Object(e.to_string()),
        }
    }

    /// The error of loading the program (verification).
    fn from_program(e: aya::programs::ProgramError) -> Self {
        match permission_denied(&e) {
            Some(source) => Self::Permission {
                what: "loading the BPF program",
                source,
            },
            None => Self::Verifier(e.to_string()),
        }
    }
}

/// The `EPERM` somewhere in an error's source chain, if any: what bpf(2) says to a process
/// without CAP_BPF. (Not `EACCES`: that is what the verifier answers for most programs it
/// refuses, with its log.)
fn permission_denied(e: &(dyn std::error::Error + 'static)) -> Option<io::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.raw_os_error() == Some(libc::EPERM) {
                return Some(io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        cur = err.source();
    }
    None
}

/// Loads every file of `stack` the program can evaluate: every file's learned index in the
/// records storage on the learned stack, in the packed storage on a compact stack (`--tier
/// compact` / `bpf-compact`); see [`LoadReport::log`] to say what was loaded.
pub fn load_stack(stack: &TierStack, limits: Limits) -> Result<BpfTier, BpfError> {
    load_stack_in(None, stack, limits)
}

/// [`load_stack`] into another build of the program (`None`: the embedded one; see
/// [`BpfTier::load_object`]).
pub fn load_stack_in(
    object: Option<&[u8]>,
    stack: &TierStack,
    limits: Limits,
) -> Result<BpfTier, BpfError> {
    let mut inodes: Vec<u32> = stack.inodes().collect();
    inodes.sort_unstable();
    let files: Vec<BpfFile<'_>> = inodes
        .iter()
        .filter_map(|&ino| {
            Some(BpfFile {
                ino: u64::from(ino),
                size: stack.inode(ino)?.size,
                block_size: stack.block_size(),
                index: index_of(stack, ino)?,
            })
        })
        .collect();
    match object {
        Some(o) => BpfTier::load_object(o, &files, limits),
        None => BpfTier::load(&files, limits),
    }
}

/// The userspace tier the program evaluates on `stack`, and must agree with: the compact tier
/// (packed storage) on a compact stack, else the learned tier (records storage).
pub fn evaluated_kind(stack: &TierStack) -> TierKind {
    if stack.tier().compact() {
        TierKind::Compact
    } else {
        TierKind::Learned
    }
}

/// The index of `ino` the program is loaded from (that of [`evaluated_kind`]): one type, in
/// either storage, loaded through the same code.
pub fn index_of(stack: &TierStack, ino: u32) -> Option<&LearnedIndex> {
    match evaluated_kind(stack) {
        TierKind::Compact => stack.compact(ino),
        _ => stack.learned(ino),
    }
}

/// The BPF tier in front of the stack ([`TierStack::resolve`]): one test run per
/// [`tier::REGION_SLOTS`] queries. If a test run itself fails, the tier declines every query
/// (logged once) and the stack answers.
impl FrontTier for BpfTier {
    fn answer(&self, queries: &[Query]) -> Vec<FrontAnswer> {
        let input: Vec<abi::BeginIn> = queries.iter().map(|&q| abi::BeginIn::of(q)).collect();
        let answers = match BpfTier::answer(self, &input, 0) {
            Ok(a) => a,
            Err(e) => {
                static LOGGED: std::sync::Once = std::sync::Once::new();
                LOGGED.call_once(|| {
                    tracing::error!(error = %Chain(&e), "BPF tier failed; the userspace tiers answer")
                });
                return vec![FrontAnswer::Declined; queries.len()];
            }
        };
        answers
            .iter()
            .map(|a| match (a.mapping(), a.status()) {
                (Some(m), _) => FrontAnswer::Answered(m),
                (None, Status::Missed) => FrontAnswer::Missed,
                (None, _) => FrontAnswer::Declined,
            })
            .collect()
    }
}
