//! Recorded traces (`training record`) replayed through fuse-iomap's mapping
//! cache and the learned tier, per file and per cache budget: how many `iomap_begin` calls
//! become upcalls to the server, what each structure holds, what a map change costs it, and
//! whether any answer was stale (every answer is compared with the map at that moment).
//!
//! The structures (the names of the rows):
//! - `fuse-cache`: fuse-iomap's read tree under `cache_maxbytes`, filled as fuse4fs fills it:
//!   on a miss the server answers the whole extent (or hole) and upserts it
//!   (`predictor::cache`); map changes invalidate their range as the kernel does after writes,
//!   punches and shifts;
//! - `fuse-cache-bulk`: the same, but on a miss the server also pushes the extents after the
//!   one asked for, up to the first one cached, while the tree holds at most half its budget:
//!   the cache's density measured apart from fuse4fs's one-mapping-per-miss filling;
//! - `learned-cache`: the compact learned map of the file as the cache itself, under the same
//!   budget, kept exact as the map changes (`predictor::index::ChangingIndex`); a file whose
//!   learned map is over the budget is served by a `fuse-cache` instead;
//! - `learned+fuse-cache`: the learned tier in front of a `fuse-cache` (the BPF tier's own
//!   maps, outside the cache's budget; bytes are both);
//! - `fuse-cache-unlimited`: the read tree without a cap, the ceiling of caching.
//!
//! A query that is a write into a hole (the next change maps the block asked) goes to the server
//! whatever is cached, since the server allocates: it counts as an upcall for every structure.
//!
//! Times: each in-kernel answer alone (a cache lookup, or the learned map's), each change's
//! update (an invalidation; the learned delta's logging of the map's extents over the changed
//! blocks, which the server sends with the change, its rebuild built aside and its swap), the
//! clock's own cost taken off. With `--round-trip-us`, the mapping cost per query adds the
//! upcalls at that price. With `--bpf` (root) every file is also replayed through the BPF tier
//! in the kernel ([`bpf`]).
//!
//! What the trace cannot show: writes that change no block (overwrites of written blocks)
//! invalidate the kernel's cache at I/O completion but leave no map change in an ext4 trace,
//! so the replayed caches see fewer invalidations than fuse-iomap would: the baseline is
//! flattered, never the learned tier.

mod bpf;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context, Result};
use ext4::BlockMap;
use livefs::trace::{Change, Event, FileMap, Trace};
use predictor::cache::{server_answer, CachedKind, CachedMapping, MappingCache, RECORD_BYTES};
use predictor::index::{ChangedPieces, ChangingIndex, Lookup, Rebuilt};

/// The structures, in the order of the tables.
pub const STRUCTURES: [&str; 5] = [
    "fuse-cache",
    "fuse-cache-bulk",
    "learned-cache",
    "learned+fuse-cache",
    "fuse-cache-unlimited",
];

pub use bpf::{replay_all as replay_bpf, BpfReplay};

/// One replayed structure on one file at one budget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub trace: String,
    pub file: u64,
    pub extents: usize,
    pub budget: u64,
    pub structure: &'static str,
    pub queries: u64,
    pub upcalls: u64,
    pub upcalls_per_million: f64,
    pub stale: u64,
    pub changes: u64,
    pub peak_bytes: u64,
    pub mean_bytes: f64,
    pub destroys: u64,
    pub rebuilds: u64,
    /// An in-kernel answer (the cache's lookup or the learned map's), median, ns (every time in
    /// a row has the clock's own cost taken off).
    pub lookup_ns_p50: u64,
    /// Per mapping query: the median lookup plus the upcall share times the FUSE round trip
    /// (when one is given).
    pub mapping_ns_per_query: Option<f64>,
    pub update_ns_p50: u64,
    pub update_ns_p99: u64,
    pub update_ns_max: u64,
    /// Every change's cost, rebuilds included, over the changes.
    pub update_ns_mean: f64,
    /// The longest rebuild of the learned map, built aside (0: none, or not a learned
    /// structure).
    pub rebuild_ns_max: u64,
    /// The longest swap of a rebuilt learned map: the longest a lookup waits for a change.
    pub install_ns_max: u64,
}

/// Replays every file of `trace` with at least `min_queries` queries at every budget.
/// `round_trip_ns`: the price of an upcall, for the mapping cost per query.
pub fn replay(
    name: &str,
    trace: &Trace,
    budgets: &[u64],
    min_queries: usize,
    round_trip_ns: Option<f64>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for ino in files(trace, min_queries) {
        rows.extend(replay_file(name, trace, ino, budgets, round_trip_ns)?);
    }
    Ok(rows)
}

/// The regular files of `trace` (those FIEMAP mapped, at the start or at a checkpoint) with at
/// least `min_queries` queries.
fn files(trace: &Trace, min_queries: usize) -> Vec<u64> {
    let mut queries: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &trace.events {
        if let Event::Query { ino, .. } = e {
            *queries.entry(*ino).or_default() += 1;
        }
    }
    let mut files: BTreeSet<u64> = trace.initial.keys().copied().collect();
    files.extend(trace.events.iter().filter_map(|e| match e {
        Event::Checkpoint { ino, .. } => Some(*ino),
        _ => None,
    }));
    files
        .into_iter()
        .filter(|ino| queries.get(ino).copied().unwrap_or(0) >= min_queries.max(1))
        .collect()
}

/// One structure replaying one file at one budget.
struct Replayed {
    structure: &'static str,
    budget: u64,
    /// fuse-iomap's read tree (behind the learned tier, or the learned cache's fallback).
    cache: MappingCache,
    /// On a miss the server pushes the file's map, not just the mapping asked for.
    bulk: bool,
    /// The learned map answers first: always (a tier with its own maps), or while it fits the
    /// budget (the learned map as the cache), or never.
    learned: Learned,
    queries: u64,
    upcalls: u64,
    stale: u64,
    peak: u64,
    bytes_sum: f64,
    lookup_ns: Vec<u64>,
    update_ns: Vec<u64>,
}

/// What answered in the kernel.
enum Hit {
    Learned(Lookup),
    Cached(Option<CachedMapping>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Learned {
    Never,
    AsCache,
    InFront,
}

impl Replayed {
    fn new(structure: &'static str, budget: u64, learned: Learned) -> Self {
        let cache = if structure == "fuse-cache-unlimited" {
            MappingCache::unlimited()
        } else {
            MappingCache::new(budget)
        };
        Self {
            structure,
            budget,
            cache,
            bulk: structure == "fuse-cache-bulk",
            learned,
            queries: 0,
            upcalls: 0,
            stale: 0,
            peak: 0,
            bytes_sum: 0.0,
            lookup_ns: Vec::new(),
            update_ns: Vec::new(),
        }
    }

    /// One `iomap_begin` for block q. `allocating`: a write into a hole, which the server must
    /// answer whatever is cached (it allocates). Only the in-kernel answer is timed.
    fn query(
        &mut self,
        ix: &ChangingIndex,
        truth: &FileMap,
        q: u64,
        allocating: bool,
        clock: Clock,
    ) -> Result<()> {
        let learned_bytes = ix.bytes() as u64;
        let use_learned = match self.learned {
            Learned::Never => false,
            Learned::AsCache => learned_bytes <= self.budget,
            Learned::InFront => true,
        };
        // The in-kernel answer, timed alone (its check against the map and the upcall are not).
        let (hit, ns) = clock.time(|| {
            if use_learned {
                Hit::Learned(ix.find(q as u32))
            } else {
                Hit::Cached(self.cache.lookup(q))
            }
        });
        self.lookup_ns.push(ns);
        let (right, upcall) = match hit {
            _ if allocating => (true, true),
            Hit::Learned(l) => (learned_right(l, truth, q), false),
            Hit::Cached(Some(m)) => (holds(&m, truth), false),
            Hit::Cached(None) => {
                let m = server_answer(truth_answer(truth, q), q, truth.end().max(q + 1));
                self.cache
                    .upsert(m)
                    .map_err(|e| anyhow::anyhow!("upsert at block {q}: {e}"))?;
                if self.bulk {
                    self.push_map(truth, m.end());
                }
                (holds(&m, truth), true)
            }
        };
        let bytes = match self.learned {
            Learned::Never => self.cache.bytes(),
            Learned::AsCache if use_learned => learned_bytes,
            Learned::AsCache => self.cache.bytes(),
            Learned::InFront => learned_bytes + self.cache.bytes(),
        };
        self.queries += 1;
        self.upcalls += u64::from(upcall);
        self.stale += u64::from(!right);
        self.peak = self.peak.max(bytes);
        self.bytes_sum += bytes as f64;
        Ok(())
    }

    /// Upserts the file's extents from block `from` on, as a server pushing mappings ahead of
    /// the reader would: up to the first one already cached, and while the tree holds at most
    /// half its budget (a tree pushed full would be destroyed by the next miss's upsert).
    fn push_map(&mut self, truth: &FileMap, from: u64) {
        for (s, len, pblk, unw) in truth.extents_from(from) {
            if self.cache.bytes() + RECORD_BYTES > self.cache.max_bytes() / 2
                || self.cache.lookup(s).is_some()
            {
                break;
            }
            let kind = if unw {
                CachedKind::Unwritten { pblk }
            } else {
                CachedKind::Mapped { pblk }
            };
            // An extent of the map the server holds: it passes validation.
            let _ = self.cache.upsert(CachedMapping { lblk: s, len, kind });
        }
    }

    /// Invalidates what `change` touches, as fuse-iomap does after the operation behind it.
    fn change(&mut self, change: &Change, clock: Clock) {
        let ((), ns) = clock.time(|| match *change {
            Change::Map(e) => self.cache.invalidate(e.lblk.into(), Some(e.len.into())),
            Change::Unmap { lblk, len } => self.cache.invalidate(lblk, Some(len)),
            Change::Collapse { lblk, .. } | Change::Insert { lblk, .. } => {
                self.cache.invalidate(lblk, None)
            }
        });
        self.update_ns.push(ns);
    }
}

/// The learned map's cost of the changes: logging each in the delta, the rebuilds (built aside
/// from a snapshot while the delta answers) and their swaps (the only wait a lookup sees).
struct LearnedUpdates {
    clock: Clock,
    pieces: ChangedPieces,
    apply_ns: Vec<u64>,
    rebuild_ns: Vec<u64>,
    install_ns: Vec<u64>,
}

impl LearnedUpdates {
    /// Logs `change` in `ix` and rebuilds when the cost rule says so; `now` is the map after it.
    fn apply(&mut self, ix: &mut ChangingIndex, change: &Change, now: &FileMap) -> Result<()> {
        // The server's extents over the changed blocks, which it sends with the change (as
        // with an upsert's mapping, its own lookup is not the tier's cost).
        self.pieces.read(change, now);
        let (full, ns) = self.clock.time(|| ix.apply(change, &self.pieces));
        self.apply_ns.push(ns);
        if full {
            let (rebuilt, ns) = self.clock.time(|| Rebuilt::of(now));
            self.rebuild_ns.push(ns);
            let rebuilt = rebuilt?;
            let ((), ns) = self.clock.time(|| ix.install(rebuilt, &[], now));
            self.install_ns.push(ns);
        }
        Ok(())
    }
}

fn replay_file(
    name: &str,
    trace: &Trace,
    ino: u64,
    budgets: &[u64],
    round_trip_ns: Option<f64>,
) -> Result<Vec<Row>> {
    let clock = Clock::new();
    let initial = trace.initial.get(&ino).cloned().unwrap_or_default();
    let mut truth = FileMap::from_extents(&initial);
    let mut ix = ChangingIndex::new(&truth)
        .with_context(|| format!("inode {ino}: building its learned map"))?;
    let mut updates = LearnedUpdates {
        clock,
        pieces: ChangedPieces::default(),
        apply_ns: Vec::new(),
        rebuild_ns: Vec::new(),
        install_ns: Vec::new(),
    };
    let mut runs: Vec<Replayed> = Vec::new();
    for &b in budgets {
        runs.push(Replayed::new(STRUCTURES[0], b, Learned::Never));
        runs.push(Replayed::new(STRUCTURES[1], b, Learned::Never));
        runs.push(Replayed::new(STRUCTURES[2], b, Learned::AsCache));
        runs.push(Replayed::new(STRUCTURES[3], b, Learned::InFront));
        runs.push(Replayed::new(STRUCTURES[4], b, Learned::Never));
    }
    let events: Vec<&Event> = trace.events.iter().filter(|e| e.ino() == ino).collect();
    let mut changes = 0u64;
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Query { lblk, .. } => {
                let q = u64::from(*lblk);
                let allocating = truth.find(q).is_none()
                    && matches!(events.get(i + 1), Some(Event::Change { change: Change::Map(m), .. }) if m.lblk <= *lblk && q < u64::from(m.lblk) + u64::from(m.len));
                for r in &mut runs {
                    r.query(&ix, &truth, q, allocating, clock)?;
                }
            }
            Event::Change { change, .. } => {
                if !truth.would_change(change) {
                    continue;
                }
                changes += 1;
                truth
                    .apply(change)
                    .map_err(|r| anyhow::anyhow!("inode {ino}: {r}"))?;
                updates
                    .apply(&mut ix, change, &truth)
                    .with_context(|| format!("inode {ino}: rebuilding its learned map"))?;
                for r in &mut runs {
                    r.change(change, clock);
                }
            }
            Event::Checkpoint { .. } => {}
        }
    }
    let extents = truth.extents().len();
    Ok(runs
        .iter()
        .map(|r| Row {
            mapping_ns_per_query: round_trip_ns.map(|rt| {
                let upcall_share = r.upcalls as f64 / r.queries.max(1) as f64;
                percentiles(&r.lookup_ns).0 as f64 + upcall_share * rt
            }),
            ..row(name, ino, extents, changes, r, &ix, &updates)
        })
        .collect())
}

fn row(
    name: &str,
    ino: u64,
    extents: usize,
    changes: u64,
    r: &Replayed,
    ix: &ChangingIndex,
    u: &LearnedUpdates,
) -> Row {
    let learned = r.learned != Learned::Never;
    let (apply, rebuild, install): (&[u64], &[u64], &[u64]) = if learned {
        (&u.apply_ns, &u.rebuild_ns, &u.install_ns)
    } else {
        (&r.update_ns, &[], &[])
    };
    let (p50, p99, max) = percentiles(apply);
    let total: u64 = apply.iter().chain(rebuild).chain(install).sum();
    let per = |x: f64| {
        if r.queries == 0 {
            0.0
        } else {
            x / r.queries as f64
        }
    };
    Row {
        trace: name.to_string(),
        file: ino,
        extents,
        budget: r.budget,
        structure: r.structure,
        queries: r.queries,
        upcalls: r.upcalls,
        upcalls_per_million: per(r.upcalls as f64 * 1e6),
        stale: r.stale,
        changes,
        peak_bytes: r.peak,
        mean_bytes: per(r.bytes_sum),
        destroys: r.cache.destroys(),
        rebuilds: if learned { ix.rebuilds() } else { 0 },
        lookup_ns_p50: percentiles(&r.lookup_ns).0,
        mapping_ns_per_query: None,
        update_ns_p50: p50,
        update_ns_p99: p99,
        update_ns_max: max,
        update_ns_mean: if changes == 0 {
            0.0
        } else {
            total as f64 / changes as f64
        },
        rebuild_ns_max: rebuild.iter().copied().max().unwrap_or(0),
        install_ns_max: install.iter().copied().max().unwrap_or(0),
    }
}

/// Whether the learned map's answer for block q holds in the map now.
fn learned_right(answer: Lookup, truth: &FileMap, q: u64) -> bool {
    let m = match answer {
        Lookup::Found(BlockMap::Mapped(e)) => CachedMapping {
            lblk: e.lblk.into(),
            len: e.len.into(),
            kind: if e.unwritten {
                CachedKind::Unwritten { pblk: e.pblk }
            } else {
                CachedKind::Mapped { pblk: e.pblk }
            },
        },
        Lookup::Found(BlockMap::Hole { next }) => CachedMapping {
            lblk: q,
            len: next
                .map_or(livefs::trace::MAX_BLOCKS, u64::from)
                .saturating_sub(q)
                .max(1),
            kind: CachedKind::Hole,
        },
        Lookup::Declined | Lookup::Missed => return false,
    };
    m.contains(q) && holds(&m, truth)
}

/// What the map says of block q.
fn truth_answer(truth: &FileMap, q: u64) -> BlockMap {
    match truth.find(q) {
        Some((s, len, pblk, unwritten)) => BlockMap::Mapped(ext4::Extent {
            lblk: s as u32,
            pblk,
            len: len as u32,
            unwritten,
        }),
        None => BlockMap::Hole {
            next: truth.next_start(q).map(|n| n as u32),
        },
    }
}

/// Whether the whole of mapping `m` is true of the map now: every block it names maps where
/// it says (or is a hole, for a hole). iomap uses the whole mapping, not one block of it, so a
/// mapping that is right at the block asked but wrong further on is stale.
fn holds(m: &CachedMapping, truth: &FileMap) -> bool {
    match m.kind {
        CachedKind::Hole => {
            truth.find(m.lblk).is_none() && truth.next_start(m.lblk).is_none_or(|n| n >= m.end())
        }
        CachedKind::Mapped { pblk } | CachedKind::Unwritten { pblk } => {
            let unwritten = matches!(m.kind, CachedKind::Unwritten { .. });
            truth.find(m.lblk).is_some_and(|(s, len, p, unw)| {
                m.end() <= s + len && p + (m.lblk - s) == pblk && unw == unwritten
            })
        }
    }
}

/// Times what the replay measures, the clock's own cost (reading it twice, median of a
/// thousand) taken off.
#[derive(Debug, Clone, Copy)]
struct Clock {
    overhead: u64,
}

impl Clock {
    fn new() -> Self {
        let mut v: Vec<u64> = (0..1001)
            .map(|_| {
                let t = Instant::now();
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        Self {
            overhead: v[v.len() / 2],
        }
    }

    fn time<T>(self, f: impl FnOnce() -> T) -> (T, u64) {
        let t = Instant::now();
        let v = f();
        let ns = t.elapsed().as_nanos() as u64;
        (v, ns.saturating_sub(self.overhead))
    }
}

fn percentiles(v: &[u64]) -> (u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let at = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), s[s.len() - 1])
}
