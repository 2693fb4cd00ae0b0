//! The compact learned index kept exact while its file's map changes.
//!
//! A change never touches the packed form in place. It goes to a delta over it, in the file's
//! blocks as they are now:
//! - an *overlay* of pieces, each a run of blocks as the map has them now (one extent, or a
//!   hole), covering every block a change touched. A mapping or unmapping replaces the overlay
//!   over its range (widened to the whole extents it meets, so an extent that the change joined
//!   or split is one piece) with the map's pieces there. A lookup inside the overlay answers
//!   from it, and one outside answers from the packed form, cut at the overlay's edges;
//! - a list of *shifts* for collapse and insert range, which move every block after them: from
//!   this block on, the packed form's blocks lie this many blocks away. A lookup asks the packed
//!   form at the shifted block and shifts the answer back. A shift's edges are overlay pieces.
//!
//! So every answer is the map's as it is after the last change, and the delta holds what a
//! kernel tier would hold: a 16-byte record per piece and per shift, counted in [`bytes`]. A
//! change reads the map only over the blocks it [`touched`]: a server sends those extents
//! with the change ([`ChangedPieces`]).
//!
//! When the delta holds more bytes than the packed form (at least [`MIN_DELTA`] records),
//! [`ChangingIndex::apply`] says so and the caller builds a new packed form aside
//! ([`Rebuilt::of`], from a snapshot of the map; lookups go on meanwhile), then swaps it in
//! with [`ChangingIndex::install`], which replays the changes made since the snapshot onto an
//! empty delta. A lookup waits only for the swap. The rule keeps the index within twice its
//! packed bytes; a rebuild of a form of `B` bytes comes after `B / 16` records, about one a
//! change, so spread over them it costs the build of `16 / b` extents per change (`b` bytes per
//! extent packed).
//!
//! [`bytes`]: ChangingIndex::bytes

mod shift_map;

use ext4::{BlockMap, Extent};
use livefs::trace::{Change, FileMap, MAX_BLOCKS};

use super::{extents_of, ExtentIndex, LearnedIndex, Lookup, Storage};
use crate::model::{FinalFit, FitParams, ModelError};
use shift_map::{Moves, ShiftMap};

/// Fewest delta records that call for a rebuild.
pub const MIN_DELTA: usize = 64;

/// Bytes of one delta record: a piece (first block, length, physical block and state) or a
/// shift (first block, offset).
pub const DELTA_RECORD_BYTES: usize = 16;

/// A run of blocks `[start, end)` of the overlay, as the map has them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    end: u64,
    blocks: Blocks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocks {
    Hole,
    /// Mapped from `pblk` (of the piece's first block) on.
    Mapped {
        pblk: u64,
        unwritten: bool,
    },
}

impl Moves for Piece {
    /// The end moves with the start. Wrapping: a chunk stores `moved(-offset)` and gives back
    /// `moved(offset)` of it, which must be the end again even where the first is out of range.
    fn moved(self, by: i64) -> Self {
        Self {
            end: self.end.wrapping_add_signed(by),
            ..self
        }
    }
}

/// A shift's offset: the packed form's block is today's plus this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offset(i64);

impl Moves for Offset {
    /// Today's blocks moved by `by` while the packed form's stay: the offset moves back.
    fn moved(self, by: i64) -> Self {
        Self(self.0.wrapping_sub(by))
    }
}

impl Piece {
    /// The part of the piece from block `at` (inside it) on, when the piece starts at `start`.
    fn from(self, start: u64, at: u64) -> Self {
        let blocks = match self.blocks {
            Blocks::Mapped { pblk, unwritten } => Blocks::Mapped {
                pblk: pblk + (at - start),
                unwritten,
            },
            other => other,
        };
        Self { blocks, ..self }
    }
}

/// A packed form built aside from a snapshot of the map, for [`ChangingIndex::install`].
pub struct Rebuilt {
    built: LearnedIndex,
    extents: usize,
}

impl Rebuilt {
    /// The packed form of `snapshot`. Lines are fitted in closed form (the least-squares line
    /// up to rounding, without the reference fit's allocations): a rebuild is on the update path.
    pub fn of(snapshot: &FileMap) -> Result<Self, ModelError> {
        let exts = extents_of(snapshot);
        let params = FitParams {
            final_fit: FinalFit::ClosedForm,
            ..FitParams::default()
        };
        Ok(Self {
            built: LearnedIndex::with_storage(&exts, &params, Storage::Packed)?,
            extents: exts.len(),
        })
    }
}

/// A compact index over a map that changes; see the module documentation.
pub struct ChangingIndex {
    built: LearnedIndex,
    built_extents: usize,
    /// The overlay: first block -> piece; disjoint, no two holes adjacent.
    overlay: ShiftMap<Piece>,
    /// From block `start` (today's) on, the packed form's block is today's plus the offset, up
    /// to the next entry's start. Empty: no shift.
    shifts: ShiftMap<Offset>,
    /// Ranges changed and not yet read from the map (between [`Self::log`] and [`Self::fill`]).
    pending: Vec<(u64, u64)>,
    /// The map's extents in a changed range, and the overlay's pieces there before and after
    /// (kept to reuse their allocations).
    meeting: Vec<(u64, u64, u64, bool)>,
    old: Vec<(u64, Piece)>,
    new: Vec<(u64, Piece)>,
    rebuilds: u64,
}

impl ChangingIndex {
    /// The index of `map`.
    pub fn new(map: &FileMap) -> Result<Self, ModelError> {
        let r = Rebuilt::of(map)?;
        Ok(Self {
            built: r.built,
            built_extents: r.extents,
            overlay: ShiftMap::default(),
            shifts: ShiftMap::default(),
            pending: Vec::new(),
            meeting: Vec::new(),
            old: Vec::new(),
            new: Vec::new(),
            rebuilds: 0,
        })
    }

    /// Logs one change of the file's map; `now` is the map after it, or just its extents over
    /// the blocks the change touched ([`ChangedPieces`], what a server sends with the change).
    /// Returns whether the delta passed the cost rule: time to build a [`Rebuilt`] and
    /// [`install`](Self::install) it.
    pub fn apply(&mut self, change: &Change, now: &impl MapSource) -> bool {
        self.log(change);
        self.fill(now);
        self.records() > MIN_DELTA.max(self.built.heap_bytes() / DELTA_RECORD_BYTES)
    }

    /// Swaps in `rebuilt`, built from the map as it was before the changes `since` (in order);
    /// `now` is the map after them.
    pub fn install(&mut self, rebuilt: Rebuilt, since: &[Change], now: &FileMap) {
        self.built = rebuilt.built;
        self.built_extents = rebuilt.extents;
        self.overlay.clear();
        self.shifts.clear();
        self.pending.clear();
        self.rebuilds += 1;
        // Ranges first, moved by the shifts that follow them; their pieces from `now` last.
        for c in since {
            self.log(c);
        }
        self.fill(now);
    }

    /// Records in the delta.
    pub fn records(&self) -> usize {
        self.overlay.len() + self.shifts.len()
    }

    /// Bytes held: the packed form and the delta's records.
    pub fn bytes(&self) -> usize {
        self.built.heap_bytes() + DELTA_RECORD_BYTES * self.records()
    }

    /// Rebuilds installed so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// What block `q` maps to in the map after every change logged so far.
    pub fn find(&self, q: u32) -> Lookup {
        let q = u64::from(q);
        if self.overlay.is_empty() && self.shifts.is_empty() {
            return self.built.find(q as u32);
        }
        let (before, after) = self.overlay.around(q);
        if let Some((s, p)) = before.filter(|(_, p)| p.end > q) {
            return match p.blocks {
                Blocks::Mapped { pblk, unwritten } => Lookup::Found(BlockMap::Mapped(Extent {
                    lblk: s as u32,
                    pblk,
                    len: (p.end - s) as u32,
                    unwritten,
                })),
                Blocks::Hole => self.hole_to(p.end),
            };
        }
        // Outside the overlay: the packed form, cut at the overlay's and the shift's edges
        // (the blocks beyond them changed or moved apart).
        let (lo, hi, off) = self.shift_at(q);
        let lo = lo.max(before.map_or(0, |(_, p)| p.end));
        let hi = hi.min(after.map_or(MAX_BLOCKS, |(s, _)| s));
        match self.built_at(q, off) {
            Lookup::Found(BlockMap::Mapped(e)) => {
                let (off, first) = (i128::from(off), i128::from(e.lblk));
                let s = (first - off).max(i128::from(lo));
                let end = (first + i128::from(e.len) - off).min(i128::from(hi));
                // s + off lies in the packed extent: these narrowings hold.
                let pblk = e.pblk + (s + off - first) as u64;
                Lookup::Found(BlockMap::Mapped(Extent {
                    lblk: s as u32,
                    pblk,
                    len: (end - s) as u32,
                    unwritten: e.unwritten,
                }))
            }
            Lookup::Found(BlockMap::Hole { .. }) => self.hole_to(q),
            other => other,
        }
    }

    /// The answer for a hole that reaches block `p`: its next extent's start.
    fn hole_to(&self, p: u64) -> Lookup {
        match self.next_mapped(p) {
            Ok(next) => Lookup::Found(BlockMap::Hole {
                next: next.map(|n| n as u32),
            }),
            Err(other) => other,
        }
    }

    /// The first mapped block at or after `p`, stepping over the overlay's holes and the
    /// packed form's (each step moves forward).
    fn next_mapped(&self, mut p: u64) -> Result<Option<u64>, Lookup> {
        while p < MAX_BLOCKS {
            if let Some((_, piece)) = self.piece_at(p) {
                match piece.blocks {
                    Blocks::Mapped { .. } => return Ok(Some(p)),
                    Blocks::Hole => p = piece.end,
                }
                continue;
            }
            let next_piece = self.overlay.at_or_above(p).map_or(MAX_BLOCKS, |(s, _)| s);
            let (_, hi, off) = self.shift_at(p);
            match self.built_at(p, off) {
                Lookup::Found(BlockMap::Mapped(_)) => return Ok(Some(p)),
                Lookup::Found(BlockMap::Hole { next }) => {
                    let next = next
                        .and_then(|n| u64::from(n).checked_add_signed(-off))
                        .unwrap_or(MAX_BLOCKS);
                    p = next.min(next_piece).min(hi);
                }
                other => return Err(other),
            }
        }
        Ok(None)
    }

    /// The packed form's answer for today's block `p` under shift `off`.
    fn built_at(&self, p: u64, off: i64) -> Lookup {
        match p
            .checked_add_signed(off)
            .and_then(|o| u32::try_from(o).ok())
        {
            Some(old) => self.built.find(old),
            None => Lookup::Found(BlockMap::Hole { next: None }),
        }
    }

    /// The overlay piece holding block `q`.
    fn piece_at(&self, q: u64) -> Option<(u64, Piece)> {
        self.overlay.at_or_below(q).filter(|(_, p)| p.end > q)
    }

    /// `[lo, hi)` of today's blocks sharing q's shift, and the shift.
    fn shift_at(&self, q: u64) -> (u64, u64, i64) {
        if self.shifts.is_empty() {
            return (0, MAX_BLOCKS, 0);
        }
        let (lo, off) = self.shifts.at_or_below(q).map_or((0, 0), |(s, o)| (s, o.0));
        let hi = self
            .shifts
            .at_or_above(q + 1)
            .map_or(MAX_BLOCKS, |(s, _)| s);
        (lo, hi, off)
    }

    /// Notes what `change` touched (read from the map by [`Self::fill`]) and moves the delta
    /// for a shift.
    fn log(&mut self, change: &Change) {
        match *change {
            Change::Collapse { lblk, len } => self.collapse(lblk, len),
            Change::Insert { lblk, len } => self.insert(lblk, len),
            Change::Map(_) | Change::Unmap { .. } => {}
        }
        let (lo, hi) = touched(change);
        self.pend(lo, hi);
    }

    fn pend(&mut self, lo: u64, hi: u64) {
        let hi = hi.min(MAX_BLOCKS);
        if lo < hi {
            self.pending.push((lo, hi));
        }
    }

    /// Reads the pending ranges' pieces from `now`.
    fn fill(&mut self, now: &impl MapSource) {
        // Taken and given back, so the list keeps its allocation from change to change.
        let mut pending = std::mem::take(&mut self.pending);
        for &(lo, hi) in &pending {
            self.refresh(lo, hi, now);
        }
        pending.clear();
        self.pending = pending;
    }

    /// Replaces the overlay over `[lo, hi)`, widened to the whole extents it meets, with the
    /// pieces of `now` there; a hole piece joins a hole it meets. The pieces it replaces or
    /// cuts (from the one reaching `lo` to the one at the range's end) are read once and
    /// written back in one splice.
    fn refresh(&mut self, lo: u64, hi: u64, now: &impl MapSource) {
        let mut meeting = std::mem::take(&mut self.meeting);
        meeting.clear();
        meeting.extend(now.meeting(lo, hi));
        let lo = meeting.first().map_or(lo, |e| e.0.min(lo));
        let hi = meeting.last().map_or(hi, |e| (e.0 + e.1).max(hi));
        // The old pieces: the one before `lo` if it reaches it, through the one at `hi`.
        let first = match self.overlay.below(lo) {
            Some((s, p)) if p.end >= lo => s,
            _ => lo,
        };
        let mut old = std::mem::take(&mut self.old);
        old.clear();
        self.overlay.range_into(first, hi, &mut old);
        let mut new = std::mem::take(&mut self.new);
        new.clear();
        if let Some(&(s, p)) = old.first().filter(|(s, _)| *s < lo) {
            push_piece(&mut new, s, Piece { end: lo, ..p });
        }
        let mut p = lo;
        for &(s, len, pblk, unwritten) in &meeting {
            push_piece(&mut new, p, hole(s));
            let blocks = Blocks::Mapped { pblk, unwritten };
            push_piece(
                &mut new,
                s,
                Piece {
                    end: s + len,
                    blocks,
                },
            );
            p = s + len;
        }
        push_piece(&mut new, p, hole(hi));
        // What reaches past `hi`: the part of a piece cut there, or the piece at `hi`.
        if let Some(&(s, q)) = old.iter().rev().find(|(_, q)| q.end > hi) {
            push_piece(&mut new, hi, q.from(s, hi.max(s)));
        }
        self.overlay.replace(first, hi, &new);
        (self.old, self.new, self.meeting) = (old, new, meeting);
    }

    /// Removes the overlay over `[lo, hi)`, keeping the parts of pieces outside it.
    fn cut_out(&mut self, lo: u64, hi: u64) {
        if let Some((s, p)) = self.overlay.below(lo) {
            if p.end > lo {
                self.overlay.insert(s, Piece { end: lo, ..p });
                if p.end > hi {
                    self.overlay.insert(hi, p.from(s, hi));
                }
            }
        }
        while let Some((s, p)) = self.overlay.at_or_above(lo).filter(|&(s, _)| s < hi) {
            self.overlay.remove(s);
            if p.end > hi {
                self.overlay.insert(hi, p.from(s, hi));
            }
        }
    }

    /// `[lblk, lblk + len)` removed, what follows moved down by `len`.
    fn collapse(&mut self, lblk: u64, len: u64) {
        let end = lblk.saturating_add(len);
        let (_, _, off_at_end) = self.shift_at(end);
        while let Some((s, _)) = self.shifts.at_or_above(lblk).filter(|&(s, _)| s <= end) {
            self.shifts.remove(s);
        }
        self.shifts.move_from(end + 1, -(len as i64));
        self.shifts.insert(lblk, Offset(off_at_end + len as i64));
        self.cut_out(lblk, end);
        self.overlay.move_from(end, -(len as i64));
        for r in std::mem::take(&mut self.pending) {
            self.pend(r.0, r.1.min(lblk));
            self.pend(r.0.max(end) - len, r.1.saturating_sub(len));
        }
    }

    /// `len` blocks of hole inserted at `lblk`, what follows moved up.
    fn insert(&mut self, lblk: u64, len: u64) {
        let (_, _, off_at) = self.shift_at(lblk);
        self.shifts.move_from(lblk, len as i64);
        if self.shifts.get(lblk + len).is_none() {
            self.shifts.insert(lblk + len, Offset(off_at - len as i64));
        }
        // Blocks before lblk keep their shift; [lblk, lblk + len) is a new hole.
        self.shifts.insert(lblk, Offset(off_at));
        if let Some((s, p)) = self.piece_at(lblk).filter(|&(s, _)| s < lblk) {
            self.overlay.insert(s, Piece { end: lblk, ..p });
            self.overlay.insert(lblk, p.from(s, lblk));
        }
        self.overlay.move_from(lblk, len as i64);
        for r in std::mem::take(&mut self.pending) {
            self.pend(r.0, r.1.min(lblk));
            self.pend(r.0.max(lblk) + len, r.1.saturating_add(len));
        }
    }
}

/// The blocks `[lo, hi)` of the map after `change` whose extents may differ from before it
/// (besides the blocks a shift moved): the range mapped or unmapped, or the blocks either side
/// of a collapse's cut or an insert's hole, whose extents may now join or have split.
pub fn touched(change: &Change) -> (u64, u64) {
    match *change {
        Change::Map(e) => {
            let lo = u64::from(e.lblk);
            (lo, lo + u64::from(e.len))
        }
        Change::Unmap { lblk, len } => (lblk, lblk.saturating_add(len)),
        Change::Collapse { lblk, .. } => (lblk.saturating_sub(1), lblk + 1),
        Change::Insert { lblk, len } => (lblk.saturating_sub(1), lblk + len + 1),
    }
}

/// Where the index reads the map's extents over a changed range.
pub trait MapSource {
    /// The extents with a block in `[lo, hi)`, in order: `(start, len, pblk, unwritten)`.
    fn meeting(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, u64, bool)>;
}

impl MapSource for FileMap {
    fn meeting(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, u64, bool)> {
        FileMap::meeting(self, lo, hi)
    }
}

/// The map's extents over the blocks one change touched ([`touched`]), read after it: what a
/// server holding the map sends with the change, as it sends the mapping of an upsert. Enough
/// for [`ChangingIndex::apply`] of that change; the replay reads them from its map before
/// timing the apply, so the apply's cost is the tier's alone.
#[derive(Debug, Clone, Default)]
pub struct ChangedPieces {
    range: (u64, u64),
    extents: Vec<(u64, u64, u64, bool)>,
}

impl ChangedPieces {
    /// Reads `change`'s pieces from `now`, the map after it (keeps the allocation).
    pub fn read(&mut self, change: &Change, now: &FileMap) {
        self.range = touched(change);
        self.extents.clear();
        self.extents.extend(now.meeting(self.range.0, self.range.1));
    }
}

impl MapSource for ChangedPieces {
    /// Only the range read: a wider ask is a caller's error, answered with nothing.
    fn meeting(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, u64, bool)> {
        let inside = lo >= self.range.0 && hi <= self.range.1;
        debug_assert!(
            inside,
            "[{lo}, {hi}) outside the range read, {:?}",
            self.range
        );
        self.extents
            .iter()
            .copied()
            .filter(move |&(s, len, ..)| inside && s < hi && s + len > lo)
    }
}

/// Appends the piece `[start, piece.end)` to `pieces` (in order, each starting where the
/// last ended or later): nothing if it is empty, joined to the last if both are holes.
fn push_piece(pieces: &mut Vec<(u64, Piece)>, start: u64, piece: Piece) {
    if piece.end <= start {
        return;
    }
    if let Some((_, last)) = pieces.last_mut() {
        if last.end == start && last.blocks == Blocks::Hole && piece.blocks == Blocks::Hole {
            last.end = piece.end;
            return;
        }
    }
    pieces.push((start, piece));
}

fn hole(end: u64) -> Piece {
    Piece {
        end,
        blocks: Blocks::Hole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SortedIndex;
    use livefs::BlockExtent;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        /// A random change of `now`: mappings (a third continuing the extent before them on
        /// disk, so they join it), unmappings, collapses and inserts.
        fn change(&mut self, now: &FileMap) -> Change {
            let lblk = self.below(20_000);
            let len = 1 + self.below(30);
            match self.below(10) {
                0 => Change::Collapse {
                    lblk,
                    len: 1 + self.below(3),
                },
                1 => Change::Insert {
                    lblk,
                    len: 1 + self.below(3),
                },
                2..=4 => Change::Unmap { lblk, len },
                k => {
                    let before = now.find(lblk.saturating_sub(1));
                    let pblk = match before {
                        Some((s, _, p, _)) if k < 8 => p + (lblk - 1 - s) + 1,
                        _ => 90_000 + self.below(10_000),
                    };
                    let unwritten = match before {
                        Some((.., u)) if k < 8 => u,
                        _ => self.below(2) == 0,
                    };
                    Change::Map(BlockExtent {
                        lblk: lblk as u32,
                        pblk,
                        len: len as u32,
                        unwritten,
                    })
                }
            }
        }
    }

    fn initial() -> FileMap {
        let exts: Vec<BlockExtent> = (0..2000)
            .map(|i| BlockExtent {
                lblk: i * 10,
                pblk: 5000 + u64::from(i) * 13,
                len: 6,
                unwritten: i % 3 == 0,
            })
            .collect();
        FileMap::from_extents(&exts)
    }

    /// Every `stride`-th block of 0..21,000 answered as a sorted index of `now` answers it;
    /// returns the answers checked.
    fn agree(ix: &ChangingIndex, now: &FileMap, stride: usize, what: &str) -> usize {
        let reference = SortedIndex::new(extents_of(now));
        let mut checked = 0;
        for q in (0..21_000u32).step_by(stride) {
            assert_eq!(ix.find(q), reference.find(q), "block {q} {what}");
            checked += 1;
        }
        checked
    }

    /// The overlay holds as few records as the map allows: pieces in order, none empty, none
    /// overlapping, no two holes side by side.
    fn assert_normal(ix: &ChangingIndex, what: &str) {
        let pieces: Vec<_> = ix.overlay.iter().collect();
        for w in pieces.windows(2) {
            let ((s, a), (t, b)) = (w[0], w[1]);
            assert!(s < a.end && a.end <= t, "{what}: pieces {w:?}");
            let both_holes = a.blocks == Blocks::Hole && b.blocks == Blocks::Hole;
            assert!(
                !(both_holes && a.end == t),
                "{what}: holes side by side {w:?}"
            );
        }
    }

    /// Random changes on a map: after each one, every block's answer equals that of a sorted
    /// index built from the map as it is then; rebuilt as the cost rule says.
    #[test]
    fn answers_equal_a_fresh_build_after_every_change() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut now = initial();
        let mut ix = ChangingIndex::new(&now).unwrap();
        let (mut checked, mut shifted, mut joined) = (0, 0, 0);
        let mut pieces = ChangedPieces::default();
        for step in 0..600 {
            let change = rng.change(&now);
            let extents = now.extents().len();
            now.apply(&change).unwrap();
            joined +=
                usize::from(matches!(change, Change::Map(_)) && now.extents().len() <= extents);
            // Half the changes read from the whole map, half from just the changed pieces.
            pieces.read(&change, &now);
            let full = if step % 2 == 0 {
                ix.apply(&change, &now)
            } else {
                ix.apply(&change, &pieces)
            };
            if full {
                ix.install(Rebuilt::of(&now).unwrap(), &[], &now);
            }
            assert_normal(&ix, &format!("after change {step}: {change:?}"));
            shifted += usize::from(!ix.shifts.is_empty());
            checked += agree(
                &ix,
                &now,
                1 + step % 7,
                &format!("after change {step}: {change:?}"),
            );
        }
        assert!(
            ix.rebuilds() > 0 && shifted > 100 && joined > 50 && checked > 1_000_000,
            "{} rebuilds, {shifted} steps with shifts, {joined} joins, {checked} answers",
            ix.rebuilds()
        );
    }

    /// A rebuild built aside from a snapshot while changes go on, installed with the changes
    /// made since: exact before, during and after.
    #[test]
    fn a_rebuild_built_aside_is_installed_with_the_changes_since() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut now = initial();
        let mut ix = ChangingIndex::new(&now).unwrap();
        let mut checked = 0;
        for round in 0..8 {
            let snapshot = now.clone();
            let mut since = Vec::new();
            for _ in 0..40 {
                let change = rng.change(&now);
                now.apply(&change).unwrap();
                ix.apply(&change, &now);
                since.push(change);
            }
            checked += agree(&ix, &now, 3, &format!("round {round}, before the swap"));
            ix.install(Rebuilt::of(&snapshot).unwrap(), &since, &now);
            checked += agree(&ix, &now, 3, &format!("round {round}, after the swap"));
        }
        assert_eq!(ix.rebuilds(), 8);
        assert!(checked > 100_000, "{checked} answers");
    }
}
