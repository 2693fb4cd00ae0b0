//! A trace replayed through the BPF tier in the kernel: the file's compact form is loaded into
//! the program's maps, and after the map changes (before the next query) the server's rebuilt
//! form replaces it ([`bpf::BpfTier::replace`]: written aside, published in one update, the old
//! slots freed after a grace period). Every query is answered by the program and its whole
//! mapping checked against the map at that moment.

use anyhow::{Context, Result};
use bpf::abi::BeginIn;
use bpf::{BpfFile, BpfTier, Limits, Replaced, Spare, Status};
use livefs::trace::{Event, FileMap, Trace};
use predictor::index::extents_of;
use predictor::{LearnedIndex, Query, Request};

use super::truth_answer;

/// What the BPF tier did on one traced file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BpfReplay {
    pub trace: String,
    pub file: u64,
    /// Queries the program answered.
    pub answered: u64,
    /// Queries it handed back (no form loaded, or a query it does not serve).
    pub fell_back: u64,
    /// Answers that were not the map's at that moment (must be 0).
    pub wrong: u64,
    /// Forms replaced after changes (consecutive changes replace once, before the next query).
    pub replacements: u64,
    /// Replacements that could not load the new form (its queries then fall back).
    pub skipped: u64,
}

/// Room kept beside the loaded form for its replacements: a file that grows during the trace
/// needs its new form written beside its old one.
const SPARE: Spare = Spare {
    percent: 400,
    slots: 1 << 16,
    files: 0,
};

/// Replays every file of `trace` with at least `min_queries` queries through the BPF tier.
pub fn replay_all(name: &str, trace: &Trace, min_queries: usize) -> Result<Vec<BpfReplay>> {
    super::files(trace, min_queries)
        .into_iter()
        .map(|ino| replay(name, trace, ino))
        .collect()
}

/// Replays inode `ino` of `trace` through the BPF tier.
pub fn replay(name: &str, trace: &Trace, ino: u64) -> Result<BpfReplay> {
    let ino32 = u32::try_from(ino).with_context(|| format!("inode {ino} is past 2^32"))?;
    let bs = trace.block_size;
    let mut truth = FileMap::from_extents(trace.initial.get(&ino).map_or(&[][..], |v| v));
    let form = form_of(&truth).with_context(|| format!("inode {ino}: its compact form"))?;
    let limits = Limits {
        spare: SPARE,
        ..Limits::default()
    };
    let tier =
        BpfTier::load(&[file(ino, bs, &form, &truth)], limits).context("loading the BPF tier")?;
    let mut out = BpfReplay {
        trace: name.to_string(),
        file: ino,
        ..BpfReplay::default()
    };
    let mut changed = false;
    for e in trace.events.iter().filter(|e| e.ino() == ino) {
        match e {
            Event::Change { change, .. } => {
                if truth.would_change(change) {
                    truth
                        .apply(change)
                        .map_err(|r| anyhow::anyhow!("inode {ino}: {r}"))?;
                    changed = true;
                }
            }
            Event::Query { lblk, .. } => {
                if changed {
                    let form = form_of(&truth)
                        .with_context(|| format!("inode {ino}: rebuilding its compact form"))?;
                    out.replacements += 1;
                    if let Replaced::Skipped(_) = tier.replace(file(ino, bs, &form, &truth))? {
                        out.skipped += 1;
                    }
                    changed = false;
                }
                let q = Query::report(ino32, u64::from(*lblk) * u64::from(bs), u64::from(bs));
                let a = tier.answer(&[BeginIn::of(q)], 0)?;
                let Some(a) = a.first() else {
                    anyhow::bail!("the BPF tier gave no answer to {q:?}");
                };
                if a.status() != Status::Handled {
                    out.fell_back += 1;
                    continue;
                }
                out.answered += 1;
                let want = Request::new(q, truth.end() * u64::from(bs), bs)
                    .ok()
                    .and_then(|r| r.mapping(truth_answer(&truth, u64::from(*lblk))).ok());
                out.wrong += u64::from(a.mapping() != want);
            }
            Event::Checkpoint { .. } => {}
        }
    }
    Ok(out)
}

/// The file as the tier loads it. The traced file's size is not in the trace: its mapped end
/// (queries are reports, which are answered past EOF).
fn file<'a>(ino: u64, bs: u32, form: &'a LearnedIndex, map: &FileMap) -> BpfFile<'a> {
    BpfFile {
        ino,
        size: map.end() * u64::from(bs),
        block_size: bs,
        index: form,
    }
}

fn form_of(map: &FileMap) -> Result<LearnedIndex> {
    Ok(LearnedIndex::new(&extents_of(map))?)
}
