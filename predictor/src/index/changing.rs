//! The compact learned index kept exact while its file's map changes.
//!
//! A change never touches the packed form in place. It is logged as a delta:
//! - a mapping or unmapping marks its block range changed (one 16-byte delta record: the
//!   changed extent or hole), and a lookup that meets a changed range is answered from the
//!   map as it is now (what the delta records hold), so no answer is ever stale;
//! - a collapse or insert range shifts every block after it: the index keeps a list of shifts
//!   (from this block on, the packed form's blocks lie this many blocks away), so a lookup
//!   after the shift asks the packed form at the shifted block and shifts the answer back. An
//!   answer that would straddle a shift's edge comes from the current map instead.
//!
//! When the delta grows past a cost rule (more records than a quarter of the built extents, at
//! least [`MIN_DELTA`]) the index is rebuilt from the current map and the delta emptied. A
//! rebuild costs about what building costs per extent, so a quarter bounds its amortized cost
//! at about four extents' build per change. A kernel tier would build the new form aside and
//! swap it in (one pointer), so lookups never wait for a rebuild; the delta answers meanwhile.
//!
//! The map as it is now ([`FileMap`]) is the server's own (it made the change): the index reads
//! it for changed ranges and rebuilds, and does not count it in its bytes.

use std::collections::BTreeMap;

use ext4::{BlockMap, Extent};
use livefs::trace::{Change, FileMap, MAX_BLOCKS};

use super::{CompactIndex, ExtentIndex, Lookup};
use crate::model::ModelError;

/// Fewest delta records that trigger a rebuild.
pub const MIN_DELTA: usize = 64;

/// Bytes of one delta record (a changed range or a shift: start and length or offset).
pub const DELTA_RECORD_BYTES: usize = 16;

/// A compact index over a map that changes; see the module documentation.
pub struct ChangingIndex {
    built: CompactIndex,
    built_extents: usize,
    /// Changed ranges since the last build, in today's blocks: start -> end, disjoint, merged.
    dirty: BTreeMap<u64, u64>,
    /// Shifts since the last build: from block `start` (today's) on, the packed form's block is
    /// today's plus `offset`, up to the next entry's start. Empty: no shift.
    shifts: BTreeMap<u64, i64>,
    /// Changes logged since the last build.
    delta: usize,
    rebuilds: u64,
}

impl ChangingIndex {
    /// The index of `map`.
    pub fn new(map: &FileMap) -> Result<Self, ModelError> {
        let exts = extents_of(map);
        Ok(Self {
            built: CompactIndex::new(&exts)?,
            built_extents: exts.len(),
            dirty: BTreeMap::new(),
            shifts: BTreeMap::new(),
            delta: 0,
            rebuilds: 0,
        })
    }

    /// Logs one change of the file's map; `now` is the map after it. Returns whether the index
    /// was rebuilt.
    pub fn apply(&mut self, change: &Change, now: &FileMap) -> Result<bool, ModelError> {
        match *change {
            Change::Map(e) => self.mark(u64::from(e.lblk), u64::from(e.lblk) + u64::from(e.len)),
            Change::Unmap { lblk, len } => self.mark(lblk, lblk.saturating_add(len)),
            Change::Collapse { lblk, len } => self.collapse(lblk, len),
            Change::Insert { lblk, len } => self.insert(lblk, len),
        }
        self.delta += 1;
        if self.delta + self.dirty.len() + self.shifts.len() > MIN_DELTA.max(self.built_extents / 4)
        {
            self.rebuild(now)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// What block `q` maps to in `now`, the map after every change applied so far.
    pub fn find(&self, q: u32, now: &FileMap) -> Lookup {
        let q = u64::from(q);
        if self.touches_dirty(q, q + 1) {
            return current_answer(now, q);
        }
        // The stretch of today's blocks sharing q's shift, and that shift.
        let (lo, hi, off) = self.piece(q);
        let Some(old) = q
            .checked_add_signed(off)
            .and_then(|o| u32::try_from(o).ok())
        else {
            return current_answer(now, q);
        };
        let back = |b: u64| b.checked_add_signed(-off);
        match self.built.find(old) {
            Lookup::Found(BlockMap::Mapped(e)) => {
                let (Some(s), Some(end)) = (back(u64::from(e.lblk)), back(e.end())) else {
                    return current_answer(now, q);
                };
                if s < lo || end > hi || self.touches_dirty(s, end) {
                    return current_answer(now, q);
                }
                Lookup::Found(BlockMap::Mapped(Extent {
                    lblk: s as u32,
                    ..e
                }))
            }
            Lookup::Found(BlockMap::Hole { next }) => {
                // Up to and including the next extent's first block: its start is the answer.
                let end = match next {
                    Some(n) => back(u64::from(n)).map(|n| n + 1),
                    None => Some(MAX_BLOCKS),
                };
                match end {
                    Some(end) if end <= hi && !self.touches_dirty(q, end) => {
                        Lookup::Found(BlockMap::Hole {
                            next: next.map(|_| (end - 1) as u32),
                        })
                    }
                    _ => current_answer(now, q),
                }
            }
            other => other,
        }
    }

    /// Bytes held: the packed form plus the delta (a record per change, for the extent or hole
    /// it made; one per changed range and one per shift, to find them).
    pub fn bytes(&self) -> usize {
        self.built.heap_bytes()
            + DELTA_RECORD_BYTES * (self.delta + self.dirty.len() + self.shifts.len())
    }

    /// Rebuilds so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    fn rebuild(&mut self, now: &FileMap) -> Result<(), ModelError> {
        let exts = extents_of(now);
        self.built = CompactIndex::new(&exts)?;
        self.built_extents = exts.len();
        self.dirty.clear();
        self.shifts.clear();
        self.delta = 0;
        self.rebuilds += 1;
        Ok(())
    }

    /// `[lo, hi)` of today's blocks sharing q's shift, and the shift.
    fn piece(&self, q: u64) -> (u64, u64, i64) {
        if self.shifts.is_empty() {
            return (0, MAX_BLOCKS, 0);
        }
        let (lo, off) = self
            .shifts
            .range(..=q)
            .next_back()
            .map_or((0, 0), |(&s, &o)| (s, o));
        let hi = self
            .shifts
            .range(q + 1..)
            .next()
            .map_or(MAX_BLOCKS, |(&s, _)| s);
        (lo, hi, off)
    }

    /// Whether a changed range meets `[lo, hi)`.
    fn touches_dirty(&self, lo: u64, hi: u64) -> bool {
        self.dirty
            .range(..hi)
            .next_back()
            .is_some_and(|(_, &end)| end > lo)
    }

    /// Adds `[lo, hi)` to the changed ranges, merging what it touches.
    fn mark(&mut self, mut lo: u64, mut hi: u64) {
        if lo >= hi {
            return;
        }
        if let Some((&s, &e)) = self.dirty.range(..=lo).next_back() {
            if e >= lo {
                lo = s;
                hi = hi.max(e);
            }
        }
        while let Some((&s, &e)) = self.dirty.range(lo..=hi).next() {
            self.dirty.remove(&s);
            hi = hi.max(e);
        }
        self.dirty.insert(lo, hi);
    }

    /// `[lblk, lblk + len)` removed, what follows moved down by `len`.
    fn collapse(&mut self, lblk: u64, len: u64) {
        let end = lblk.saturating_add(len);
        let (_, _, off_at_end) = self.piece(end);
        let moved: Vec<(u64, i64)> = self.shifts.split_off(&lblk).into_iter().collect();
        for (s, o) in moved.into_iter().filter(|&(s, _)| s > end) {
            self.shifts.insert(s - len, o + len as i64);
        }
        self.shifts.insert(lblk, off_at_end + len as i64);
        self.move_dirty(lblk, end, -(len as i64));
        // The extents on either side of the cut may now join: block lblk - 1 and lblk.
        self.mark(lblk.saturating_sub(1), lblk + 1);
    }

    /// `len` blocks of hole inserted at `lblk`, what follows moved up.
    fn insert(&mut self, lblk: u64, len: u64) {
        let (_, _, off_at) = self.piece(lblk);
        let moved: Vec<(u64, i64)> = self.shifts.split_off(&lblk).into_iter().collect();
        for (s, o) in moved {
            self.shifts.insert(s + len, o - len as i64);
        }
        self.shifts.entry(lblk + len).or_insert(off_at - len as i64);
        // Blocks before lblk keep their shift; [lblk, lblk + len) is a new hole.
        self.shifts.insert(lblk, off_at);
        self.move_dirty(lblk, lblk, len as i64);
        self.mark(lblk.saturating_sub(1), lblk + len + 1);
    }

    /// Changed ranges inside `[from, to)` are dropped, those from `to` on move by `by`; a range
    /// straddling `from` keeps its part before it.
    fn move_dirty(&mut self, from: u64, to: u64, by: i64) {
        let mut moved: Vec<(u64, u64)> = self.dirty.split_off(&from).into_iter().collect();
        if let Some((_, e)) = self.dirty.range_mut(..from).next_back() {
            if *e > from {
                moved.push((from, *e));
                *e = from;
            }
        }
        for (s, e) in moved {
            if e > to {
                self.put_dirty(s.max(to), e, by);
            }
        }
    }

    fn put_dirty(&mut self, s: u64, e: u64, by: i64) {
        let (Some(s), Some(e)) = (s.checked_add_signed(by), e.checked_add_signed(by)) else {
            return;
        };
        self.mark(s, e.min(MAX_BLOCKS));
    }
}

/// The answer from the map as it is now.
fn current_answer(now: &FileMap, q: u64) -> Lookup {
    Lookup::Found(match now.find(q) {
        Some((s, len, pblk, unwritten)) => BlockMap::Mapped(Extent {
            lblk: s as u32,
            pblk,
            len: len as u32,
            unwritten,
        }),
        None => BlockMap::Hole {
            next: now.next_start(q).map(|n| n as u32),
        },
    })
}

fn extents_of(map: &FileMap) -> Vec<Extent> {
    map.extents()
        .into_iter()
        .map(|e| Extent {
            lblk: e.lblk,
            pblk: e.pblk,
            len: e.len,
            unwritten: e.unwritten,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SortedIndex;
    use livefs::BlockExtent;

    /// Random changes on a random map: every block's answer equals a sorted index built from
    /// the map as it is after each change.
    #[test]
    fn answers_equal_a_fresh_build_after_every_change() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let initial: Vec<BlockExtent> = (0..2000)
            .map(|i| BlockExtent {
                lblk: i * 10,
                pblk: 5000 + u64::from(i) * 13,
                len: 6,
                unwritten: i % 3 == 0,
            })
            .collect();
        let mut now = FileMap::from_extents(&initial);
        let mut ix = ChangingIndex::new(&now).unwrap();
        let (mut checked, mut shifted) = (0, 0);
        for step in 0..600 {
            let lblk = next(20_000);
            let len = 1 + next(30);
            let change = match next(10) {
                0 => Change::Collapse {
                    lblk,
                    len: 1 + next(3),
                },
                1 => Change::Insert {
                    lblk,
                    len: 1 + next(3),
                },
                2..=4 => Change::Unmap { lblk, len },
                _ => Change::Map(BlockExtent {
                    lblk: lblk as u32,
                    pblk: 90_000 + next(10_000),
                    len: len as u32,
                    unwritten: next(2) == 0,
                }),
            };
            now.apply(&change).unwrap();
            ix.apply(&change, &now).unwrap();
            shifted += usize::from(!ix.shifts.is_empty());
            let reference = SortedIndex::new(extents_of(&now));
            for q in (0..21_000u32).step_by(1 + (step % 7)) {
                assert_eq!(
                    ix.find(q, &now),
                    reference.find(q),
                    "block {q} after change {step}: {change:?}"
                );
                checked += 1;
            }
        }
        assert!(
            ix.rebuilds() > 0 && shifted > 100 && checked > 1_000_000,
            "{} rebuilds, {shifted} steps with shifts, {checked} answers",
            ix.rebuilds()
        );
    }
}
