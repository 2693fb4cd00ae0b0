//! Per-file extent lookup structures: given a logical block, find the extent that holds it or
//! the hole it is in. All of them answer [`ExtentIndex::find`] with the same [`BlockMap`]
//! ([`SortedIndex`] is the reference the tests compare the others to). [`iext`] is the
//! kernel-style in-core extent tree, the B-tree the kernel itself would consult.

mod btree;
pub mod changing;
pub mod choose;
pub mod iext;
pub mod learned;
mod range;
mod sorted;
mod structure;

pub use btree::BTreeIndex;
pub use changing::{ChangedPieces, ChangingIndex, MapSource, Rebuilt};
pub use iext::{FuseIextIndex, FuseRec, IextError, IextIndex, IextRecord, XfsIextIndex, XfsRec};
pub use learned::{
    LearnedForm, LearnedIndex, LearnedLayout, LearnedShape, LineLayout, PackedLayout, PieceBody,
    PieceLayout, RecordsLayout, Storage, KEYED_RECORD_BYTES, RECORD_BYTES,
};
pub use range::RangeMapIndex;
pub use sorted::SortedIndex;
pub use structure::Structure;

use ext4::{BlockMap, Extent};
use livefs::trace::FileMap;
use livefs::BlockExtent;

/// An extent as FIEMAP and the traces give it, as the indexes take it.
pub fn extent(e: &BlockExtent) -> Extent {
    Extent {
        lblk: e.lblk,
        pblk: e.pblk,
        len: e.len,
        unwritten: e.unwritten,
    }
}

/// A traced map's extents, in order, as the indexes take them.
pub fn extents_of(map: &FileMap) -> Vec<Extent> {
    map.extents().iter().map(extent).collect()
}

/// What one structure says about one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The answer, verified against the extent map the structure was built from.
    Found(BlockMap),
    /// The structure has no usable model for this file: untrained, stale or invalid.
    Declined,
    /// The structure tried but could not verify its candidate; the next tier must answer.
    Missed,
}

impl Lookup {
    /// The answer, if there is one.
    pub fn found(self) -> Option<BlockMap> {
        match self {
            Lookup::Found(bm) => Some(bm),
            Lookup::Declined | Lookup::Missed => None,
        }
    }
}

/// A lookup structure over one file's sorted extent map.
pub trait ExtentIndex: Send + Sync {
    /// What block `lblk` maps to, or why this structure cannot say.
    fn find(&self, lblk: u32) -> Lookup;
    /// Bytes this structure holds on the heap (exact for arrays; see each type for trees).
    fn heap_bytes(&self) -> usize;
}

/// An extent without its logical start: what the in-memory structures store per extent when the
/// start is already their key. 16 bytes instead of [`Extent`]'s 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// First physical block.
    pub pblk: u64,
    /// Length in blocks.
    pub len: u32,
    /// Allocated but unwritten.
    pub unwritten: bool,
}

impl Record {
    /// The record of `e`.
    pub fn of(e: &Extent) -> Self {
        Self {
            pblk: e.pblk,
            len: e.len,
            unwritten: e.unwritten,
        }
    }

    /// The extent this record describes when it starts at `lblk`.
    pub fn extent(self, lblk: u32) -> Extent {
        Extent {
            lblk,
            pblk: self.pblk,
            len: self.len,
            unwritten: self.unwritten,
        }
    }
}

/// The rule every structure applies once it has found `at`, the last extent starting at or
/// before block `q`, and `next`, the start of the extent after it (or of the first extent when
/// `at` is `None`): `q` is in `at` if `at` reaches it, else in the hole that ends at `next`.
pub(crate) fn resolve(q: u32, at: Option<Extent>, next: Option<u32>) -> BlockMap {
    match at {
        Some(e) if e.contains(q) => BlockMap::Mapped(e),
        _ => BlockMap::Hole { next },
    }
}

/// Bytes of a cache line, the unit of the lookup-cost model ([`choose`]).
pub const CACHE_LINE: usize = 64;

/// Cache lines holding bytes `from..to` of an object that starts on a line (0 for none).
pub(crate) fn span_lines(from: usize, to: usize) -> u32 {
    if to <= from {
        return 0;
    }
    // OK to narrow: a lookup reads a few lines.
    ((to - 1) / CACHE_LINE - from / CACHE_LINE + 1) as u32
}

/// Lines a binary search over `n` sorted items of `size` bytes reads: one per probe, at most
/// every line of the array.
pub(crate) fn search_lines(n: usize, size: usize) -> u32 {
    let probes = usize::BITS - n.leading_zeros();
    probes.min(span_lines(0, n * size))
}

/// What every structure checks of its input (the model's fit checks it too, so it lives there).
pub use crate::model::check_extents;

#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod tests;
