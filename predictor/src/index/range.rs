//! `rangemap::RangeMap` over logical block ranges: the second library baseline.

use std::ops::Range;

use ext4::{BlockMap, Extent};
use rangemap::RangeMap;

use super::btree::{btree_heap_estimate, APPEND_FILL};
use super::{ExtentIndex, Lookup};

/// Extents in a `RangeMap<u64, Extent>` keyed by `lblk..end` (u64, like [`Extent::end`]).
///
/// `RangeMap` merges touching ranges whose values are equal; storing the whole extent (whose
/// `lblk` differs between any two extents) as the value keeps every extent its own range.
#[derive(Debug, Clone, Default)]
pub struct RangeMapIndex {
    map: RangeMap<u64, Extent>,
}

impl RangeMapIndex {
    /// Builds the map from a sorted extent map.
    pub fn new(exts: &[Extent]) -> Self {
        let mut map = RangeMap::new();
        for e in exts {
            map.insert(u64::from(e.lblk)..e.end(), *e);
        }
        Self { map }
    }
}

impl ExtentIndex for RangeMapIndex {
    fn find(&self, lblk: u32) -> Lookup {
        let q = u64::from(lblk);
        if let Some(e) = self.map.get(&q) {
            return Lookup::Found(BlockMap::Mapped(*e));
        }
        // In a hole: the first range overlapping [q, MAX_LBLK) starts where the hole ends
        // (every extent starts below MAX_LBLK).
        let next = self
            .map
            .overlapping(q..ext4::MAX_LBLK)
            .next()
            .map(|(_, e)| e.lblk);
        Lookup::Found(BlockMap::Hole { next })
    }

    /// An estimate: `RangeMap` is a `BTreeMap` from a range wrapper to the value, built here
    /// by inserting in order, so its nodes are about half full (78 bytes per extent).
    fn heap_bytes(&self) -> usize {
        btree_heap_estimate::<Range<u64>, Extent>(self.map.len(), APPEND_FILL)
    }
}
