//! The BPF tier against the userspace predictor: every query of every file through both, the
//! answers compared. The userspace stack is the reference (its contract tests hold it equal to
//! the on-disk extent tree); the program must give exactly its mapping wherever the index it
//! was loaded from (the learned index, or on a compact stack the compact one) answers, and fall
//! back everywhere else.

use std::collections::{BTreeMap, HashSet};

use predictor::error::Chain;
use predictor::synth::Rng;
use predictor::{Mapping, Query, QueryError, TierKind, TierStack};
use serde::Serialize;

use crate::{abi, evaluated_kind, index_of, BpfTier, Status};

/// How many queries per file.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Files of at most this many blocks get every block; larger ones get their extents'
    /// boundaries and [`CheckOptions::samples`] random blocks.
    pub exhaustive_blocks: u64,
    /// Random blocks per large file.
    pub samples: usize,
    /// Seed of the random blocks and in-block offsets.
    pub seed: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            exhaustive_blocks: 1 << 17,
            samples: 1 << 17,
            seed: 1,
        }
    }
}

/// What the comparison found. `wrong`, `unexpected_fallbacks` and `unexpected_answers` must be 0.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Regular files of the image.
    pub files: usize,
    /// Files loaded into the program's maps.
    pub files_loaded: usize,
    /// Files with an active userspace model that the program did not take (window, limits).
    pub files_skipped: usize,
    /// Queries run through both.
    pub queries: u64,
    /// Queries the program answered with the userspace predictor's mapping.
    pub handled: u64,
    /// Queries the program fell back on, by reason.
    pub fallbacks: BTreeMap<&'static str, u64>,
    /// Answers that differ from the userspace predictor's mapping.
    pub wrong: u64,
    /// Fallbacks on a loaded file where the userspace index the program evaluates answered.
    pub unexpected_fallbacks: u64,
    /// Answers where that userspace index did not answer (an error or another tier).
    pub unexpected_answers: u64,
    /// The first disagreements, described.
    pub examples: Vec<String>,
    /// What verifying the program cost the kernel.
    pub verifier: VerifierReport,
}

/// [`crate::VerifierStats`] as the check's JSON has it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifierReport {
    /// The verifier's own statistics line (`processed N insns (limit 1000000)`, and the time).
    pub line: String,
    /// Instructions processed (`None`: the kernel does not say).
    pub processed: Option<u32>,
    /// The verifier's limit.
    pub limit: u32,
    /// Time of the load (verification and JIT compilation), ms.
    pub ms: f64,
}

impl From<crate::VerifierStats> for VerifierReport {
    fn from(v: crate::VerifierStats) -> Self {
        Self {
            line: v.to_string(),
            processed: v.processed,
            limit: crate::VERIFIER_LIMIT,
            ms: v.time.as_secs_f64() * 1e3,
        }
    }
}

impl CheckReport {
    /// Whether the two evaluators agreed everywhere.
    pub fn agrees(&self) -> bool {
        self.wrong == 0 && self.unexpected_fallbacks == 0 && self.unexpected_answers == 0
    }

    fn disagree(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// Runs the queries of every file of `stack` through `bpf` and the stack, and compares.
/// `progress` is called with the number of files done.
pub fn check(
    stack: &TierStack,
    bpf: &BpfTier,
    opts: &CheckOptions,
    progress: &dyn Fn(u64),
) -> Result<CheckReport, crate::BpfError> {
    let mut report = CheckReport::default();
    // Loaded: files with an index the program evaluates that it did not skip.
    let skipped: HashSet<u64> = bpf.report().skipped.iter().map(|(ino, _)| *ino).collect();
    let loaded = |ino: u32| index_of(stack, ino).is_some() && !skipped.contains(&u64::from(ino));
    let reference = evaluated_kind(stack);
    report.files_loaded = bpf.report().files;
    report.verifier = bpf.report().verifier.into();
    report.files_skipped = bpf.report().skipped.len();
    let mut inodes: Vec<u32> = stack.inodes().collect();
    inodes.sort_unstable();
    report.files = inodes.len();
    let mut rng = Rng::new(opts.seed);
    for (done, &ino) in inodes.iter().enumerate() {
        let queries = queries_for(stack, ino, opts, &mut rng);
        let input: Vec<abi::BeginIn> = queries.iter().map(|&q| abi::BeginIn::of(q)).collect();
        let answers = bpf.answer(&input, 0)?;
        for (&q, a) in queries.iter().zip(&answers) {
            let user = stack.query(q);
            let outcome = (a.status(), a.mapping());
            compare(&mut report, q, outcome, &user, reference, loaded(ino));
        }
        report.queries += queries.len() as u64;
        progress(done as u64 + 1);
    }
    Ok(report)
}

/// Records one query's outcome: the program's, and the stack's, which `reference` (the kind
/// the program was loaded from) should have answered.
fn compare(
    report: &mut CheckReport,
    q: Query,
    (status, bpf): (Status, Option<Mapping>),
    user: &Result<(Mapping, TierKind), QueryError>,
    reference: TierKind,
    loaded: bool,
) {
    let at = format!("inode {} pos {} count {} {:?}", q.ino, q.pos, q.count, q.op);
    match (bpf, user) {
        (Some(b), Ok((u, kind))) => {
            if b != *u {
                report.wrong += 1;
                report.disagree(format!("{at}: bpf {b:?}, userspace {u:?} ({kind:?})"));
            } else if *kind != reference {
                report.unexpected_answers += 1;
                report.disagree(format!(
                    "{at}: bpf answered, userspace {} did not",
                    reference.name()
                ));
            } else {
                report.handled += 1;
            }
        }
        (Some(b), Err(e)) => {
            report.unexpected_answers += 1;
            report.disagree(format!("{at}: bpf {b:?}, userspace error: {}", Chain(e)));
        }
        (None, user) => {
            *report.fallbacks.entry(status.name()).or_default() += 1;
            let answered = matches!(user, Ok((_, k)) if *k == reference);
            if answered && loaded {
                report.unexpected_fallbacks += 1;
                report.disagree(format!(
                    "{at}: bpf fell back ({}), userspace {} answered",
                    status.name(),
                    reference.name()
                ));
            }
        }
    }
}

/// The queries of one file: every block of small files, boundaries and random blocks of large
/// ones, with varying in-block offsets and counts, reads and reports alternating (reports
/// reach the blocks preallocated past EOF), plus the edge cases (EOF, count 0).
fn queries_for(stack: &TierStack, ino: u32, opts: &CheckOptions, rng: &mut Rng) -> Vec<Query> {
    let Some(inode) = stack.inode(ino) else {
        return Vec::new();
    };
    let bs = u64::from(stack.block_size());
    let size = inode.size;
    let extents: Vec<_> = index_of(stack, ino)
        .map(|ix| ix.extents())
        .unwrap_or_default();
    // To EOF or the end of the last extent, whichever is later.
    let mapped_end = extents.last().map_or(0, |e| e.end());
    let blocks = size.div_ceil(bs).max(mapped_end);
    let mut lblks: Vec<u64> = if blocks <= opts.exhaustive_blocks {
        (0..blocks).collect()
    } else {
        let mut v: Vec<u64> = (0..opts.samples).map(|_| rng.below(blocks)).collect();
        for e in extents.iter().take(opts.samples) {
            let (s, end) = (u64::from(e.lblk), e.end());
            v.extend([s.saturating_sub(1), s, end - 1, end]);
        }
        v.retain(|&b| b < blocks);
        v
    };
    lblks.sort_unstable();
    lblks.dedup();
    let counts = [1, bs, 1 << 20, u64::MAX];
    let mut out: Vec<Query> = lblks
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let pos = b * bs + rng.below(bs);
            let count = counts[i % counts.len()];
            if i % 2 == 1 || pos >= size {
                Query::report(ino, pos, count)
            } else {
                Query::read(ino, pos, count)
            }
        })
        .collect();
    // At EOF: a read must be refused by both, a report answered. A zero count: refused.
    out.extend([
        Query::read(ino, size, 1),
        Query::report(ino, size, 1),
        Query::read(ino, 0, 0),
        Query::report(ino, 0, 0),
    ]);
    out
}
