//! Binary search over the sorted extent array: the reference answer for every other structure.

use ext4::Extent;

use super::{resolve, ExtentIndex, Lookup};

/// The extent array, searched with `partition_point`.
#[derive(Debug, Clone, Default)]
pub struct SortedIndex {
    exts: Vec<Extent>,
}

impl SortedIndex {
    /// Wraps a sorted, non-overlapping extent map (see [`super::check_extents`]).
    pub fn new(exts: Vec<Extent>) -> Self {
        Self { exts }
    }

    /// The extents.
    pub fn extents(&self) -> &[Extent] {
        &self.exts
    }
}

impl ExtentIndex for SortedIndex {
    fn find(&self, lblk: u32) -> Lookup {
        // Number of extents starting at or before lblk; the last of them is the candidate.
        let n = self.exts.partition_point(|e| e.lblk <= lblk);
        let at = n.checked_sub(1).and_then(|j| self.exts.get(j)).copied();
        Lookup::Found(resolve(lblk, at, self.exts.get(n).map(|e| e.lblk)))
    }

    fn heap_bytes(&self) -> usize {
        self.exts.capacity() * std::mem::size_of::<Extent>()
    }
}
