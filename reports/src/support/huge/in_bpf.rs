//! The BPF tier of `reports huge`: the map's compact form loaded into the program's u32-indexed
//! array maps, or declined with the loader's reason, and a sample of queries answered through
//! the program and checked against the map.
//!
//! Two loads: first with the default [`Limits`] (16 Mi extents), as a server would load it,
//! then, if that declines the file, with limits sized for it. A file the maps cannot hold is
//! skipped with a [`bpf::Skip`] and its queries fall back (`no_model`); either way every answer
//! the program does give is compared with the map.

use std::time::Instant;

use bpf::abi::{BeginIn, CBucket, Piece};
use bpf::{BpfFile, BpfTier, Limits, Status};
use ext4::Extent;
use predictor::error::Chain;
use predictor::{LearnedIndex, LearnedLayout, Query, Request};

use super::reference;

/// The program's one file: its inode and block size.
const INO: u32 = 1;
const BLOCK_SIZE: u32 = 4096;

/// Most slots of one array map: u32-indexed, one slot kept back (the loader's `MAX_SLOTS`).
pub const MAX_SLOTS: u64 = u32::MAX as u64 - 1;

/// Most extents the loader takes in all, whatever the limits (its cap on `max_extents`).
pub const LOADER_MAX_EXTENTS: u64 = 1 << 30;

/// One array map the compact form needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ArrayNeed {
    /// The map's name in the program.
    pub array: String,
    /// Slots the file takes.
    pub slots: u64,
    /// Bytes of those slots.
    pub bytes: u64,
    /// Slots the u32 index allows ([`MAX_SLOTS`]).
    pub max_slots: u64,
    /// Extents of this map's density that would fill the array: `extents * max_slots / slots`.
    pub max_extents: u64,
}

/// What one load did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    /// `max_extents` of the limits.
    pub max_extents: u32,
    /// `loaded`, `declined` (the loader skipped the file) or `failed` (the load itself failed).
    pub outcome: String,
    /// Why it was declined or failed (empty when loaded).
    pub reason: String,
    /// Map bytes the load filled.
    pub map_bytes: u64,
    /// Seconds to load and fill.
    pub load_s: f64,
    /// Queries sent through the program.
    pub queries: u64,
    /// Of those, answered (status handled) and checked against the map.
    pub answered: u64,
    /// Of those, answers that differ from the map's.
    pub wrong: u64,
    /// Queries the program gave back to the userspace tiers (no_model, missed, ...).
    pub fell_back: u64,
}

/// The BPF tier at this size.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `served` (a load answered the sample), `declined` (every load declined with a reason),
    /// `unavailable` (no BPF here: not root, or the kernel refused the program).
    pub status: String,
    /// Why not served (empty when served).
    pub reason: String,
    /// The arrays the compact form needs, and what their u32 indices allow.
    pub arrays: Vec<ArrayNeed>,
    /// Most extents the loader takes in all, whatever the limits ([`LOADER_MAX_EXTENTS`]).
    pub loader_max_extents: u64,
    /// The loads tried, default limits first.
    pub attempts: Vec<Attempt>,
}

impl Outcome {
    /// Wrong answers over every load.
    pub fn wrong(&self) -> u64 {
        self.attempts.iter().map(|a| a.wrong).sum()
    }
}

/// The arrays `c`'s form takes in the program's compact layout (what the loader's `entry_of`
/// counts), against what their u32 indices allow.
pub fn needs(c: &LearnedIndex, extents: u64) -> Vec<ArrayNeed> {
    let mut out = Vec::new();
    let mut push = |array: &str, slots: usize, elem: usize| {
        let slots = slots as u64;
        out.push(ArrayNeed {
            array: array.to_string(),
            slots,
            bytes: slots * elem as u64,
            max_slots: MAX_SLOTS,
            max_extents: (u128::from(extents) * u128::from(MAX_SLOTS) / u128::from(slots.max(1)))
                .min(u128::from(u64::MAX)) as u64,
        });
    };
    match c.layout() {
        LearnedLayout::Empty => {}
        LearnedLayout::Plain(e) => push(
            "WORDS",
            (e.len() * std::mem::size_of::<bpf::abi::Extent>()).div_ceil(8),
            8,
        ),
        LearnedLayout::Packed(p) => {
            push("PIECES", p.pieces.len(), std::mem::size_of::<Piece>());
            push("CBUCKETS", p.buckets.len(), std::mem::size_of::<CBucket>());
            push("WORDS", p.bytes.len().div_ceil(8), 8);
        }
    }
    out
}

/// Loads `c` (the compact form of `exts`) into the program and asks it `queries`.
pub fn run(c: &LearnedIndex, exts: &[Extent], queries: &[u32]) -> Outcome {
    let n = exts.len() as u64;
    let mut out = Outcome {
        arrays: needs(c, n),
        loader_max_extents: LOADER_MAX_EXTENTS,
        ..Outcome::default()
    };
    if !imagekit::kernel::is_root() {
        out.status = "unavailable".into();
        out.reason = "not root: the BPF tier needs CAP_BPF and CAP_PERFMON (run as root)".into();
        tracing::warn!("{}", out.reason);
        return out;
    }
    let default = Limits::default();
    let sized = Limits {
        max_extents: u32::try_from(n).unwrap_or(u32::MAX),
        max_files: 1,
        ..default
    };
    for limits in [default, sized] {
        match attempt(c, exts, queries, limits) {
            Ok(a) => {
                let loaded = a.outcome == "loaded";
                out.reason.clone_from(&a.reason);
                out.attempts.push(a);
                if loaded {
                    out.status = "served".into();
                    out.reason.clear();
                    return out;
                }
            }
            Err(e) => {
                out.status = "unavailable".into();
                out.reason = Chain(&e).to_string();
                return out;
            }
        }
    }
    out.status = "declined".into();
    out
}

/// One load with `limits`; `Err` only where the BPF tier cannot run at all (no permission).
fn attempt(
    c: &LearnedIndex,
    exts: &[Extent],
    queries: &[u32],
    limits: Limits,
) -> Result<Attempt, bpf::BpfError> {
    let file = BpfFile {
        ino: u64::from(INO),
        // Covers every addressable block, so a query past the last extent is a hole, not EOF.
        size: ext4::MAX_LBLK * u64::from(BLOCK_SIZE),
        block_size: BLOCK_SIZE,
        index: c,
    };
    let mut a = Attempt {
        max_extents: limits.max_extents,
        ..Attempt::default()
    };
    let start = Instant::now();
    let tier = match BpfTier::load(&[file], limits) {
        Ok(t) => t,
        Err(e @ bpf::BpfError::Permission { .. }) => return Err(e),
        // The kernel may refuse maps this large (memory, its own size caps): a decline with
        // the kernel's reason, measured, not worked around.
        Err(e) => {
            a.outcome = "failed".into();
            a.reason = Chain(&e).to_string();
            tracing::warn!(max_extents = limits.max_extents, reason = %a.reason, "BPF load failed");
            return Ok(a);
        }
    };
    a.load_s = start.elapsed().as_secs_f64();
    let report = tier.report();
    report.log();
    a.map_bytes = report.map_bytes;
    match report.skipped.first() {
        Some((_, why)) => {
            a.outcome = "declined".into();
            a.reason = why.to_string();
        }
        None => a.outcome = "loaded".into(),
    }
    // Asked either way: a declined file's queries must fall back, never be answered wrongly.
    ask(&tier, exts, queries, &mut a)?;
    Ok(a)
}

/// Sends `queries` (blocks) through the program and checks every handled answer.
fn ask(
    tier: &BpfTier,
    exts: &[Extent],
    queries: &[u32],
    a: &mut Attempt,
) -> Result<(), bpf::BpfError> {
    let size = ext4::MAX_LBLK * u64::from(BLOCK_SIZE);
    let bs = u64::from(BLOCK_SIZE);
    let asked: Vec<Query> = queries
        .iter()
        .map(|&b| Query::read(INO, u64::from(b) * bs, bs))
        .collect();
    let records: Vec<BeginIn> = asked.iter().map(|&q| BeginIn::of(q)).collect();
    let answers = tier.answer(&records, 0)?;
    a.queries = queries.len() as u64;
    for ((&q, &b), ans) in asked.iter().zip(queries).zip(&answers) {
        if ans.status() != Status::Handled {
            a.fell_back += 1;
            continue;
        }
        a.answered += 1;
        let want = Request::new(q, size, BLOCK_SIZE)
            .ok()
            .and_then(|r| r.mapping(reference(exts, b)).ok());
        a.wrong += u64::from(ans.mapping() != want);
    }
    // Queries the program never reached are neither answered nor fallen back: count them.
    a.fell_back += (queries.len() - answers.len().min(queries.len())) as u64;
    Ok(())
}

/// The BPF tier's part of the Markdown: the arrays the form needs, then each load.
pub fn markdown(o: &Outcome) -> String {
    let mut s = format!(
        "\nBPF tier: arrays the compact form needs (u32-indexed; the loader takes at most {} \
         extents in all)\n\n| array | slots | bytes | slots the u32 index allows | extents at this density |\n|---|---:|---:|---:|---:|\n",
        o.loader_max_extents
    );
    for a in &o.arrays {
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            a.array, a.slots, a.bytes, a.max_slots, a.max_extents
        );
    }
    s += &format!("\nBPF tier: {}", o.status);
    if !o.reason.is_empty() {
        s += &format!(" ({})", o.reason);
    }
    s += "\n";
    for a in &o.attempts {
        s += &format!(
            "- max_extents {}: {}{}; map bytes {}, load {:.2} s; {} queries: {} answered, {} wrong, {} fell back\n",
            a.max_extents,
            a.outcome,
            if a.reason.is_empty() { String::new() } else { format!(" ({})", a.reason) },
            a.map_bytes,
            a.load_s,
            a.queries,
            a.answered,
            a.wrong,
            a.fell_back
        );
    }
    s
}
