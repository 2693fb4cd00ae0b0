//! The tier stack: one image's files, each with the structures of the chosen tier, answering
//! `iomap_begin`-style queries fastest tier first and counting who answered.

mod counters;
mod front;
mod load;

use ext4::{BlockMap, Inode};
use std::collections::HashMap;

pub use counters::{StackStats, TierStats};
pub use front::{FrontAnswer, FrontTier};
pub use load::{BuildReport, ModelStatus, Models};

use crate::error::QueryError;
use crate::index::choose::{ChosenIndex, Structure};
use crate::index::{
    BTreeIndex, ExtentIndex, FuseIextIndex, LearnedIndex, Lookup, RangeMapIndex, SortedIndex,
};
use crate::mapping::{Mapping, Query, Request};
use crate::ondisk::OnDisk;
use counters::Counters;

/// Which tiers a stack runs (each falls back to `ondisk` for files it could not load): the
/// `--tier` of every command, named by [`Tier::name`] (one table, [`Tier::VOCABULARY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Learned index, then B-tree, then on-disk.
    Learned,
    /// B-tree (`BTreeMap`), then on-disk.
    Btree,
    /// Binary search over the sorted extent array (experiments).
    Sorted,
    /// `rangemap::RangeMap` (experiments).
    RangeMap,
    /// On-disk walk only.
    Ondisk,
    /// The kernel-style in-core extent tree with the fuse-iomap mapping cache's 32-byte
    /// `fuse_iomap_io` records ([`FuseIextIndex`]), then on-disk: what the kernel's own cache
    /// would answer from.
    Iext,
    /// The compact learned index ([`LearnedIndex`]: bit-packed extents, arithmetic runs, lines
    /// fitted at build time), then on-disk. It holds the whole map exactly, so it needs no
    /// B-tree behind it; audit mode checks its answers against the on-disk walk.
    Compact,
    /// Per file, the structure the per-file rule chooses ([`crate::index::choose`]: the
    /// compact index, the learned index or the iext tree with 16-byte records, never more
    /// bytes than that tree), then on-disk. Answers are counted under the chosen structure's
    /// kind (`compact`, `learned`, `iext`); the files per choice are in the build report.
    Chosen,
}

impl Tier {
    /// Every tier, with its name (the `--tier` value, stats and logs) and what it runs.
    pub const VOCABULARY: [(Tier, &'static str, &'static str); 8] = [
        (
            Self::Learned,
            Structure::Learned.name(),
            "learned model per file, verified; falls back to the B-tree, then the on-disk walk",
        ),
        (
            Self::Btree,
            Structure::Btree.name(),
            "in-memory B-tree (BTreeMap) of each file's extents, then the on-disk walk",
        ),
        (
            Self::Ondisk,
            Structure::Ondisk.name(),
            "walk the image's extent tree for every lookup (what fuse2fs does)",
        ),
        (
            Self::Sorted,
            Structure::Sorted.name(),
            "binary search over each file's sorted extent array (for experiments)",
        ),
        (
            Self::RangeMap,
            Structure::RangeMap.name(),
            "rangemap::RangeMap per file (for experiments)",
        ),
        (
            Self::Iext,
            Structure::Iext32.name(),
            "kernel-style in-core extent tree with fuse-iomap's 32-byte records (what the \
             kernel's own mapping cache would answer from), then the on-disk walk",
        ),
        (
            Self::Compact,
            Structure::Compact.name(),
            "compact learned index per file (packed extents addressed by fitted lines, \
             arithmetic runs; a few bytes per extent), fitted at start-up; then the on-disk walk",
        ),
        (
            Self::Chosen,
            "chosen",
            "per file, the structure a cost rule chooses (compact, learned or the kernel-style \
             iext tree: the fewest bytes among those within 10% of the cheapest counted \
             lookup, never more bytes than the iext tree), then the on-disk walk",
        ),
    ];

    /// Every tier, in [`Tier::VOCABULARY`] order (taken from it).
    pub const ALL: [Tier; 8] = {
        let mut all = [Self::Learned; 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::VOCABULARY[i].0;
            i += 1;
        }
        all
    };

    /// Earlier names, still accepted by [`Tier::from_name`].
    pub const ALIASES: [(&'static str, Tier); 2] =
        [("predictor", Self::Learned), ("iext", Self::Iext)];

    fn entry(self) -> (Tier, &'static str, &'static str) {
        Self::VOCABULARY
            .iter()
            .copied()
            .find(|(t, _, _)| *t == self)
            .unwrap_or((self, "unknown", ""))
    }

    /// Its name everywhere: `--tier` values, stats, reports, logs.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// One line on what it runs (the `--tier` help).
    pub fn help(self) -> &'static str {
        self.entry().2
    }

    /// The tier named `name` (or one of [`Tier::ALIASES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        if let Some((_, t)) = Self::ALIASES.iter().find(|(a, _)| *a == name) {
            return Some(*t);
        }
        Self::VOCABULARY
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(t, _, _)| *t)
    }

    /// Whether the stack runs the learned index (a front tier may evaluate it too).
    pub fn learned(self) -> bool {
        self == Self::Learned
    }

    /// Whether the stack holds the compact index (a front tier may evaluate it too).
    pub fn compact(self) -> bool {
        self == Self::Compact
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
            format!("unknown tier {s:?} (one of {})", names.join(", "))
        })
    }
}

/// The structure that produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TierKind {
    /// The learned index.
    Learned = 0,
    /// `BTreeMap`.
    Btree = 1,
    /// Sorted array.
    Sorted = 2,
    /// `RangeMap`.
    RangeMap = 3,
    /// On-disk extent-tree walk.
    Ondisk = 4,
    /// The kernel-style extent tree with fuse-iomap records ([`FuseIextIndex`]). Numbered
    /// after `Ondisk` so the earlier kinds keep their counter slots and wire codes.
    Iext = 5,
    /// A tier in front of the stack ([`FrontTier`], given to [`TierStack::resolve`]); the
    /// stack counts its outcomes here.
    Front = 6,
    /// The compact learned index ([`LearnedIndex`]).
    Compact = 7,
}

impl TierKind {
    /// Every kind, in counter order: the order of [`TierKind::VOCABULARY`], which lists the
    /// kinds by discriminant (a test holds it to that).
    pub const ALL: [TierKind; 8] = {
        let mut all = [Self::Learned; 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::VOCABULARY[i].0;
            i += 1;
        }
        all
    };

    /// Every kind's name (in JSON, stats, tables, logs) and wire code (the socket protocol's
    /// `tier` field; 0 means none), written once. Codes are part of the protocol: never reuse
    /// or renumber one.
    const VOCABULARY: [(TierKind, &'static str, u16); 8] = [
        (Self::Learned, Structure::Learned.name(), 1),
        (Self::Btree, Structure::Btree.name(), 2),
        (Self::Sorted, Structure::Sorted.name(), 3),
        (Self::RangeMap, Structure::RangeMap.name(), 4),
        (Self::Ondisk, Structure::Ondisk.name(), 5),
        (Self::Iext, "iext", 6),
        (Self::Front, "front", 7),
        (Self::Compact, Structure::Compact.name(), 8),
    ];

    fn entry(self) -> (TierKind, &'static str, u16) {
        Self::VOCABULARY
            .iter()
            .copied()
            .find(|(k, _, _)| *k == self)
            .unwrap_or((self, "unknown", 0))
    }

    /// Its name everywhere: JSON answers, stats, report tables, logs.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// Its code on the wire.
    pub fn code(self) -> u16 {
        self.entry().2
    }

    /// The kind with wire code `code` (`None` for 0, "no tier", and unknown codes).
    pub fn from_code(code: u16) -> Option<Self> {
        Self::VOCABULARY
            .iter()
            .find(|(_, _, c)| *c == code)
            .map(|(k, _, _)| *k)
    }
}

/// What one tier did with one query (see [`TierStats`] for the meaning of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Answered,
    /// It could not try (no model for the file, a query it does not take).
    Declined,
    /// It tried and could not verify its candidate.
    Missed,
}

/// Build options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackOptions {
    /// Re-compute every learned answer with the B-tree and count mismatches (returning the
    /// B-tree's answer when they differ).
    pub audit: bool,
}

/// The in-memory structure behind the learned index (or alone), by tier choice.
#[derive(Debug)]
enum MemIndex {
    Btree(BTreeIndex),
    Sorted(SortedIndex),
    RangeMap(RangeMapIndex),
    Iext(FuseIextIndex),
    Compact(LearnedIndex),
    Chosen(ChosenIndex),
}

impl MemIndex {
    /// Whether audit mode checks this structure's answers against the on-disk walk (no
    /// second in-memory copy stands behind it).
    fn audited_on_disk(&self) -> bool {
        matches!(self, MemIndex::Compact(_) | MemIndex::Chosen(_))
    }

    fn get(&self) -> (&dyn ExtentIndex, TierKind) {
        match self {
            MemIndex::Chosen(i) => (
                i,
                match i.structure() {
                    Structure::Compact => TierKind::Compact,
                    Structure::Learned => TierKind::Learned,
                    Structure::Iext16 | Structure::Iext32 => TierKind::Iext,
                    // Never chosen (the rule's candidates are the three above).
                    Structure::Btree => TierKind::Btree,
                    Structure::RangeMap => TierKind::RangeMap,
                    Structure::Sorted => TierKind::Sorted,
                    Structure::Ondisk => TierKind::Ondisk,
                },
            ),
            MemIndex::Compact(i) => (i, TierKind::Compact),
            MemIndex::Btree(i) => (i, TierKind::Btree),
            MemIndex::Sorted(i) => (i, TierKind::Sorted),
            MemIndex::RangeMap(i) => (i, TierKind::RangeMap),
            MemIndex::Iext(i) => (i, TierKind::Iext),
        }
    }
}

/// What the stack holds for one regular file.
#[derive(Debug)]
struct FileEntry {
    inode: Inode,
    extents: usize,
    learned: Option<LearnedIndex>,
    mem: Option<MemIndex>,
    /// Heap bytes of `mem`, counted by the allocator while it was built (0 when the counting
    /// allocator is not installed).
    mem_bytes: usize,
    model: ModelStatus,
    /// Why the extents could not be loaded; queries then go on disk.
    load_error: Option<String>,
}

/// Heap bytes held by a stack's structures, summed over files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryReport {
    /// Extents loaded.
    pub extents: u64,
    /// The learned tier's models alone (directory and pieces).
    pub model_bytes: u64,
    /// The learned tier's stored extents (records, or the plain arrays of small files).
    pub record_bytes: u64,
    /// The in-memory fallback (or only) structure: B-tree, sorted array, range map, iext tree
    /// or compact index.
    pub index_bytes: u64,
    /// Whether `index_bytes` was counted by the allocator (`predictor::alloc::Counting`
    /// installed in this process); if not, it is the structures' own account, an estimate for
    /// `BTreeMap` and `RangeMap`. The learned tier's two figures are always exact (array
    /// lengths).
    pub counted: bool,
}

impl MemoryReport {
    /// `bytes / extents` (0 with no extents).
    pub fn per_extent(&self, bytes: u64) -> f64 {
        if self.extents == 0 {
            0.0
        } else {
            bytes as f64 / self.extents as f64
        }
    }
}

/// An image's files behind a stack of tiers. `Send + Sync`: queries take `&self`.
#[derive(Debug)]
pub struct TierStack {
    tier: Tier,
    /// Whether structure bytes were counted by the allocator at build.
    counted: bool,
    block_size: u32,
    audit: bool,
    ondisk: OnDisk,
    files: HashMap<u32, FileEntry>,
    counters: Counters,
}

impl TierStack {
    /// The tier choice.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The image's block size.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Inode numbers of the regular files the stack knows, in no particular order.
    pub fn inodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.files.keys().copied()
    }

    /// The cached inode of a known file.
    pub fn inode(&self, ino: u32) -> Option<&Inode> {
        self.files.get(&ino).map(|f| &f.inode)
    }

    /// Extents loaded for a known file (0 for the on-disk tier, which loads none).
    pub fn extent_count(&self, ino: u32) -> Option<usize> {
        self.files.get(&ino).map(|f| f.extents)
    }

    /// The learned index of a file whose model is active: what another evaluator of the same
    /// model (a front tier) loads.
    pub fn learned(&self, ino: u32) -> Option<&LearnedIndex> {
        self.files.get(&ino).and_then(|f| f.learned.as_ref())
    }

    /// The compact index of a file (compact stacks): what another evaluator of it (a front
    /// tier) loads.
    pub fn compact(&self, ino: u32) -> Option<&LearnedIndex> {
        match self.files.get(&ino).and_then(|f| f.mem.as_ref()) {
            Some(MemIndex::Compact(c)) => Some(c),
            _ => None,
        }
    }

    /// The state of a file's model.
    pub fn model_status(&self, ino: u32) -> Option<&ModelStatus> {
        self.files.get(&ino).map(|f| &f.model)
    }

    /// The mapping `query` asks for, and the tier that found it.
    pub fn query(&self, query: Query) -> Result<(Mapping, TierKind), QueryError> {
        let ino = query.ino;
        let f = self
            .files
            .get(&ino)
            .ok_or(QueryError::UnknownInode { ino })?;
        if f.inode.has_inline_data() {
            return Err(QueryError::InlineData { ino });
        }
        let req = Request::new(query, f.inode.size, self.block_size)?;
        let (bm, kind) = self.find(f, req.lblk())?;
        Ok((req.mapping(bm)?, kind))
    }

    /// What block `lblk` of `f` maps to, fastest tier first.
    fn find(&self, f: &FileEntry, q: u32) -> Result<(BlockMap, TierKind), QueryError> {
        let mem = f.mem.as_ref().map(MemIndex::get);
        let audit_on_disk = self.audit && f.mem.as_ref().is_some_and(MemIndex::audited_on_disk);
        if self.tier.learned() {
            match f.learned.as_ref().map(|l| l.probe(q)) {
                Some(Lookup::Found(bm)) => return Ok(self.audited(bm, q, mem)),
                Some(Lookup::Missed) => self.counters.missed(TierKind::Learned),
                Some(Lookup::Declined) | None => self.counters.declined(TierKind::Learned),
            }
        }
        if let Some((index, kind)) = mem {
            match index.find(q) {
                Lookup::Found(bm) if audit_on_disk => {
                    // Its own oracle: the on-disk walk (there is no second in-memory copy).
                    self.counters.answered(kind);
                    let disk = self.ondisk.find(&f.inode, q)?;
                    self.counters.audited(disk != bm);
                    return Ok((disk, kind));
                }
                Lookup::Found(bm) => {
                    self.counters.answered(kind);
                    return Ok((bm, kind));
                }
                // The library structures always answer; keep the fall-through honest anyway.
                Lookup::Missed => self.counters.missed(kind),
                Lookup::Declined => self.counters.declined(kind),
            }
        }
        let bm = self.ondisk.find(&f.inode, q)?;
        self.counters.answered(TierKind::Ondisk);
        Ok((bm, TierKind::Ondisk))
    }

    /// Counts a learned answer and, in audit mode, checks it against the B-tree.
    fn audited(
        &self,
        bm: BlockMap,
        q: u32,
        mem: Option<(&dyn ExtentIndex, TierKind)>,
    ) -> (BlockMap, TierKind) {
        self.counters.answered(TierKind::Learned);
        if let Some((index, kind)) = mem.filter(|_| self.audit) {
            let check = index.find(q);
            let mismatch = check != Lookup::Found(bm);
            self.counters.audited(mismatch);
            if let (true, Lookup::Found(other)) = (mismatch, check) {
                return (other, kind);
            }
        }
        (bm, TierKind::Learned)
    }

    /// [`Self::resolve`] for one query.
    pub fn resolve_one(
        &self,
        front: Option<&dyn FrontTier>,
        query: Query,
    ) -> Result<(Mapping, TierKind), QueryError> {
        match front {
            None => self.query(query),
            Some(_) => self
                .resolve(front, &[query])
                .pop()
                .unwrap_or(Err(QueryError::UnknownInode { ino: query.ino })),
        }
    }

    /// The query path: `front` first (if given), then the stack for every query it does not
    /// answer. The front tier's outcomes are counted under [`TierKind::Front`], and in audit
    /// mode its answers are re-computed by the file's in-memory structure like the learned
    /// index's (the structure's answer is returned if they differ).
    pub fn resolve(
        &self,
        front: Option<&dyn FrontTier>,
        queries: &[Query],
    ) -> Vec<Result<(Mapping, TierKind), QueryError>> {
        let Some(front) = front else {
            return queries.iter().map(|&q| self.query(q)).collect();
        };
        let answers = front.answer(queries);
        queries
            .iter()
            .enumerate()
            .map(|(i, &q)| match answers.get(i) {
                Some(FrontAnswer::Answered(m)) => {
                    self.counters.answered(TierKind::Front);
                    Ok((self.audit_front(q, *m), TierKind::Front))
                }
                Some(FrontAnswer::Missed) => {
                    self.counters.missed(TierKind::Front);
                    self.query(q)
                }
                Some(FrontAnswer::Declined) | None => {
                    self.counters.declined(TierKind::Front);
                    self.query(q)
                }
            })
            .collect()
    }

    /// In audit mode, re-computes a front tier's mapping `m` for `query` with the file's
    /// in-memory structure; returns the structure's mapping if the two differ. Outside audit
    /// mode, or where the structure cannot answer, returns `m` unchecked.
    fn audit_front(&self, query: Query, m: Mapping) -> Mapping {
        if !self.audit {
            return m;
        }
        let Some(f) = self.files.get(&query.ino) else {
            return m;
        };
        let Some((index, _)) = f.mem.as_ref().map(MemIndex::get) else {
            return m;
        };
        let Ok(req) = Request::new(query, f.inode.size, self.block_size) else {
            return m;
        };
        let Some(want) = index
            .find(req.lblk())
            .found()
            .and_then(|bm| req.mapping(bm).ok())
        else {
            return m;
        };
        self.counters.audited(want != m);
        want
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StackStats {
        self.counters.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.counters.reset();
    }

    /// Heap bytes of the loaded structures.
    pub fn memory(&self) -> MemoryReport {
        let mut m = MemoryReport {
            counted: self.counted,
            ..MemoryReport::default()
        };
        for f in self.files.values() {
            m.extents += f.extents as u64;
            if let Some(l) = &f.learned {
                m.model_bytes += l.model_bytes() as u64;
                m.record_bytes += (l.heap_bytes() - l.model_bytes()) as u64;
            }
            if let Some(i) = &f.mem {
                m.index_bytes += if self.counted {
                    f.mem_bytes
                } else {
                    i.get().0.heap_bytes()
                } as u64;
            }
        }
        m
    }

    /// Why a file's extents could not be loaded, if they could not.
    pub fn load_error(&self, ino: u32) -> Option<&str> {
        self.files.get(&ino).and_then(|f| f.load_error.as_deref())
    }

    /// The on-disk tier, for comparisons.
    pub fn ondisk(&self) -> &OnDisk {
        &self.ondisk
    }
}

// The FUSE server shares one stack between its worker threads.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<TierStack>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_and_one_fixed_wire_code() {
        // The socket protocol: these codes never change.
        let codes: Vec<(&str, u16)> = TierKind::ALL.iter().map(|k| (k.name(), k.code())).collect();
        assert_eq!(
            codes,
            [
                ("learned", 1),
                ("btree", 2),
                ("sorted", 3),
                ("rangemap", 4),
                ("ondisk", 5),
                ("iext", 6),
                ("front", 7),
                ("compact", 8)
            ]
        );
        for (slot, k) in TierKind::ALL.into_iter().enumerate() {
            assert_eq!(TierKind::from_code(k.code()), Some(k));
            assert_eq!(k as usize, slot, "{k:?}: counter slot");
        }
        assert_eq!(TierKind::from_code(0), None);
        assert_eq!(TierKind::from_code(9), None);
    }

    #[test]
    fn every_tier_has_one_name() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
            assert_eq!(t.name().parse::<Tier>(), Ok(t));
            assert!(!t.help().is_empty());
        }
        let names: Vec<&str> = Tier::VOCABULARY.iter().map(|(_, n, _)| *n).collect();
        assert_eq!(names.len(), Tier::ALL.len());
        assert_eq!("predictor".parse::<Tier>(), Ok(Tier::Learned));
        assert_eq!("iext".parse::<Tier>(), Ok(Tier::Iext));
        assert_eq!(Tier::Iext.name(), Structure::Iext32.name());
        assert!("nope".parse::<Tier>().is_err());
        // A tier of one structure shares its name with the TierKind that answers for it.
        assert_eq!(Tier::Learned.name(), TierKind::Learned.name());
        assert_eq!(Tier::Compact.name(), TierKind::Compact.name());
    }
}
