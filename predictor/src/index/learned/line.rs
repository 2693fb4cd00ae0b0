//! A line piece: its blocks' layout, the window search a lookup makes in them, and the decoding
//! of the record it finds.

use super::*;

/// A line piece's fitted line and window as its lookup holds them, in either storage: the
/// line predicts the window's first slot directly (its error bound is folded into the
/// intercept), so a lookup computes the window with one multiply and an add.
///
/// Packed to 2-byte alignment: at 8 it would take 24 bytes with its padding, and [`Line`] would
/// grow from 48 to 56, its directory bucket past one cache line (fields are read by value, which
/// on x86-64 costs nothing unaligned; and a bucket, aligned to 64, keeps them aligned anyway).
#[derive(Debug, Clone, Copy)]
#[repr(Rust, packed(2))]
pub(super) struct Window {
    /// Slots per block of `q - first_key`, scaled by 2^32 ([`FixedLine::slope`]).
    pub(super) slope: u64,
    /// [`FixedLine::intercept`] less `e_lo + 1` slots (scaled): the line then predicts the
    /// window's first slot, `p - e_lo - 1`, exactly (the subtraction commutes with the floor).
    pub(super) lo_intercept: i64,
    /// Piece-local index of the last extent.
    pub(super) last: u32,
    /// The line's bounds: the window is `[p - e_lo - 1, p - e_lo - 1 + width]`, with
    /// `width = e_lo + e_hi + 1` (below [`WINDOW`]).
    pub(super) e_lo: u8,
    pub(super) width: u8,
}

const _: () = assert!(std::mem::size_of::<Window>() == 22);

impl Window {
    /// The window of `line` over a piece of `count` extents (`None` for no extents, or bounds
    /// past [`WINDOW`]: lines are fitted with at most that window).
    pub(super) fn new(line: FixedLine, count: u32) -> Option<Self> {
        let e_lo = u8::try_from(line.e_lo).ok()?;
        let e_hi = u8::try_from(line.e_hi).ok()?;
        Some(Self {
            slope: line.slope,
            lo_intercept: line
                .intercept
                .wrapping_sub((i64::from(e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            last: count.checked_sub(1)?,
            e_lo,
            width: e_lo.checked_add(e_hi)?.checked_add(1)?,
        })
    }

    /// The line as fitted (for other evaluators of the layout, and the model).
    pub(super) fn fixed(&self) -> FixedLine {
        let (e_lo, width) = (self.e_lo, self.width);
        FixedLine {
            slope: self.slope,
            intercept: self
                .lo_intercept
                .wrapping_add((i64::from(e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            e_lo: u32::from(e_lo),
            e_hi: u32::from(width - e_lo - 1),
        }
    }

    /// Extents in the piece.
    pub(super) fn count(&self) -> u32 {
        self.last + 1
    }

    /// The window's first slot as predicted for `d = q - first_key`, not clamped.
    #[inline(always)]
    pub(super) fn first_slot(&self, d: u32) -> i64 {
        predict(self.slope, self.lo_intercept, d)
    }
}

impl Line {
    pub(super) fn new(
        line: FixedLine,
        count: u32,
        off: u32,
        kw: KeyWidth,
        [wl, wd]: [u8; 2],
        unw: u8,
        phys: Phys,
    ) -> Option<Self> {
        let wr = wl + wd + u8::from(unw == 2);
        let recs = kw.recs();
        Some(Self {
            win: Window::new(line, count)?,
            md: mask(u32::from(wd)),
            off,
            // OK to narrow: wl <= 32 (a length excess is below 2^32).
            ml: mask(u32::from(wl)) as u32,
            block: u16::try_from(recs + BLOCK / 8 * usize::from(wr)).ok()?,
            wl,
            wf: wl + wd,
            wr,
            fm: u8::from(unw == 2),
            all_unwritten: unw == 1,
            kw,
            phys,
        })
    }

    /// The line as fitted (for other evaluators of the layout).
    pub(super) fn fixed(&self) -> FixedLine {
        self.win.fixed()
    }

    /// Extents in the piece.
    pub(super) fn count(&self) -> u32 {
        self.win.count()
    }

    /// Bits of the physical excess.
    pub(super) fn wd(&self) -> u8 {
        self.wf - self.wl
    }

    /// The unwritten flag as [`LineLayout::unw`] has it.
    pub(super) fn unw(&self) -> u8 {
        if self.fm == 1 {
            2
        } else {
            u8::from(self.all_unwritten)
        }
    }

    /// Byte offset of the record column within a block.
    #[inline(always)]
    pub(super) fn recs(&self) -> usize {
        self.kw.recs()
    }

    /// Byte offset of the block holding piece-local extent `j`.
    #[inline(always)]
    pub(super) fn block_at(&self, j: usize) -> usize {
        self.off as usize + j / BLOCK * usize::from(self.block)
    }

    /// The logical start of piece-local extent `j`.
    pub(super) fn key(&self, bytes: &[u8], j: usize) -> u32 {
        let at = self.block_at(j);
        let key0 = word(bytes, at) as u32;
        // A real start: key0 plus an offset below 2^32 - key0.
        key0.wrapping_add(self.kw.get(bytes, at + HEAD, j % BLOCK))
    }

    /// The last window key at or below `q` (`d = q - first_key`), its extent's length and
    /// where it sits: the rest of its record ([`Self::extent_at`]) and the start of the
    /// extent after it ([`Self::next_start`]) are read only by the queries that need them (a
    /// query inside the extent, a query past it). `None` if no window key is at or below `q`
    /// (a wrong model).
    ///
    /// The window (at most [`WINDOW`] slots) spans at most two blocks: one header read picks
    /// the block, then the block's key offsets in [`WINDOW`] slots covering the window are
    /// compared with `q` all at once (a few vector instructions, no branch on the data), and
    /// their count is the answer's slot.
    #[inline(always)]
    pub(super) fn find(&self, bytes: &[u8], q: u32, d: u32) -> Option<(Hit, Slot)> {
        // Two-byte keys (every kernel-allocator map measured) inline, with their widths as
        // constants; four-byte keys out of line, so that their path takes no registers from
        // the common one.
        match self.kw {
            KeyWidth::U16 => self.find_as(KeyWidth::U16, bytes, q, d),
            KeyWidth::U32 => self.find_wide_keys(bytes, q, d),
        }
    }

    #[inline(never)]
    pub(super) fn find_wide_keys(&self, bytes: &[u8], q: u32, d: u32) -> Option<(Hit, Slot)> {
        self.find_as(KeyWidth::U32, bytes, q, d)
    }

    /// [`Self::find`] for a piece whose keys are `kw` wide.
    #[inline(always)]
    pub(super) fn find_as(
        &self,
        kw: KeyWidth,
        bytes: &[u8],
        q: u32,
        d: u32,
    ) -> Option<(Hit, Slot)> {
        let lo_raw = self.win.first_slot(d);
        let last = self.win.last;
        // The window's first slot, clamped to the piece: only windows at a piece's ends are,
        // so these branches are predicted.
        let lo = if lo_raw < 0 {
            keep_branch();
            0
        } else if lo_raw > i64::from(last) {
            keep_branch();
            last as usize
        } else {
            // OK to narrow: 0 <= lo_raw <= last.
            lo_raw as usize
        };
        // From the clamped first slot: a window moved up where the line predicts below the
        // piece (still at most WINDOW slots, and still holding the answer).
        let hi = (lo + usize::from(self.win.width)).min(last as usize);
        let mut base = lo / BLOCK * BLOCK;
        let mut at = self.block_at(lo);
        // The slots counted: WINDOW of them from the window's first slot in its block (or
        // the block's start), moved back to end at the block's end. They cover the window's
        // part in this block (the window has at most WINDOW slots), and keys are sorted, so
        // the count of keys <= q among them is the answer's slot + 1 when the answer is in
        // the window (and a miss, caught below or by the caller's check, when it is not).
        let mut s = (lo % BLOCK).min(BLOCK - WINDOW);
        if hi / BLOCK != lo / BLOCK {
            // Blocks are consecutive; the window's second block starts at a multiple of 64.
            let next_at = self.block_at(hi);
            if word(bytes, next_at) as u32 <= q {
                (base, at, s) = (hi / BLOCK * BLOCK, next_at, 0);
                // A sequential reader asks the same block many times over, so this branch
                // is predicted and the rest of the lookup need not wait for this header (as
                // a conditional move, the load and compare were on every lookup's chain:
                // about 7% of a sequential lookup on the sparse disk; uniform lookups, which
                // mispredict it at times, did not slow down).
                keep_branch();
            }
        }
        // The answer's record is read only once the count is known; its line is asked for
        // now, with the window's records' lines, so that a cold lookup's record miss overlaps
        // its key column's miss instead of following it.
        self.prefetch_records(bytes, at, s);
        // Every read below is within the block's header and key column (or 8 bytes past
        // them), except the record's, checked on its own.
        let recs = kw.recs();
        let keys = bytes.get(at..at.checked_add(recs + 8)?)?;
        // Header: key0 and len0 in one word, then d0.
        let head = word(keys, 0);
        let key0 = head as u32;
        let qd = q.checked_sub(key0)?;
        let below = kw.count_at_most(keys, HEAD, s, qd);
        // 0: every counted key is above q, so the answer lies before the window: a wrong line
        // (s > 0, since slot 0's offset is 0), a miss. The slot before the counted ones is not
        // the answer: its start was never compared with q. Else slot r's start is at most q.
        // r < BLOCK: s <= BLOCK - WINDOW and below <= WINDOW.
        let r = s + below.checked_sub(1)?;
        let (off, next_off) = kw.pair(keys, HEAD, r);
        let rec = self.record_word(bytes, at, r);
        let hit = Hit {
            key: key0.wrapping_add(off),
            len: self.len_of(head, rec),
            d0: word(keys, 8),
            at,
            r,
            rec,
        };
        Some((
            hit,
            Slot {
                j: base + r,
                key0,
                next_off,
            },
        ))
    }

    /// The start of the extent after the one [`Self::find`] found at `s`; past the piece's
    /// last extent, `piece_end` (the next piece's first key, if any).
    #[inline(always)]
    pub(super) fn next_start(&self, bytes: &[u8], s: Slot, piece_end: Option<u32>) -> Option<u32> {
        let more = s.j < self.win.last as usize;
        if more && s.j % BLOCK + 1 < BLOCK {
            // The offset read with the found one's: no load.
            Some(s.key0.wrapping_add(s.next_off))
        } else if more {
            Some(self.key(bytes, s.j + 1))
        } else {
            piece_end
        }
    }

    /// Asks for the cache lines of the records of slots `s..s + WINDOW` of the block at byte
    /// `at` (a hint: no wait, no fault, no effect on the answer). Three lines from the first
    /// record's and the last record's, which cover records of up to 48 bits; a wider record
    /// line the hint misses is read as before.
    #[inline(always)]
    pub(super) fn prefetch_records(&self, bytes: &[u8], at: usize, s: usize) {
        let bit = self.record_bit(at, s);
        let last = bit + (WINDOW - 1) * usize::from(self.wr);
        let line = |bit: usize| bytes.as_ptr().wrapping_add(bit / 8);
        prefetch(line(bit));
        prefetch(line(bit + 64 * 8));
        prefetch(line(last));
    }

    /// The bit where the record of slot `r` of the block at byte `at` starts.
    #[inline(always)]
    pub(super) fn record_bit(&self, at: usize, r: usize) -> usize {
        (at + self.recs()) * 8 + r * usize::from(self.wr)
    }

    /// The 64 bits from the start of the record of slot `r` of the block at byte `at`: the
    /// whole record when it is at most [`MAX_FIELD_BITS`] wide, and always its first field,
    /// the length excess (below 2^32).
    #[inline(always)]
    pub(super) fn record_word(&self, bytes: &[u8], at: usize, r: usize) -> u64 {
        let bit = self.record_bit(at, r);
        word(bytes, bit / 8) >> (bit % 8)
    }

    /// The length of an extent from its block's first header word `head` (key0, len0) and
    /// its [`Self::record_word`].
    #[inline(always)]
    pub(super) fn len_of(&self, head: u64, rec: u64) -> u32 {
        ((head >> 32) as u32).wrapping_add(rec as u32 & self.ml)
    }

    /// The extent [`Self::find`] found: its physical field and flag decoded.
    #[inline(always)]
    pub(super) fn extent_at(&self, bytes: &[u8], hit: &Hit) -> Extent {
        let Hit {
            key,
            len,
            d0,
            at,
            r,
            rec,
        } = *hit;
        let (d, flag) = if self.wr <= MAX_FIELD_BITS as u8 {
            // The whole record in one load, cut by the masks.
            ((rec >> self.wl) & self.md, (rec >> self.wf) as u8 & self.fm)
        } else {
            self.wide_record(bytes, self.record_bit(at, r))
        };
        let d = d0.wrapping_add(d);
        Extent {
            lblk: key,
            pblk: match self.phys {
                Phys::FromLogical => u64::from(key).wrapping_add(d),
                Phys::Absolute => d,
            },
            len,
            unwritten: self.all_unwritten | (flag != 0),
        }
    }

    /// The physical field and flag of a record wider than one load's [`MAX_FIELD_BITS`],
    /// field by field.
    #[cold]
    #[inline(never)]
    pub(super) fn wide_record(&self, bytes: &[u8], bit: usize) -> (u64, u8) {
        (
            field(bytes, bit + usize::from(self.wl), self.wd()),
            field(bytes, bit + usize::from(self.wf), 1) as u8 & self.fm,
        )
    }

    /// Piece-local extent `j` (for decoding the whole map).
    pub(super) fn extent(&self, bytes: &[u8], j: usize) -> Extent {
        let (at, r) = (self.block_at(j), j % BLOCK);
        let rec = self.record_word(bytes, at, r);
        let hit = Hit {
            key: self.key(bytes, j),
            len: self.len_of(word(bytes, at), rec),
            d0: word(bytes, at + 8),
            at,
            r,
            rec,
        };
        self.extent_at(bytes, &hit)
    }
}

/// Keeps the `if` arm it is called in a branch: the optimiser may not turn the `if` into a
/// conditional move (a barrier it cannot see through, no instruction). On a lookup's path a
/// conditional move puts the inputs of both arms on the dependency chain, which is what a
/// lookup costs when its cache lines are warm; a branch that is rarely taken, or taken the
/// same way lookup after lookup as a sequential reader's are, is predicted and costs nothing
/// there (measured: `docs/design.md`, section 4).
#[inline(always)]
pub(super) fn keep_branch() {
    std::hint::black_box(());
}

/// Asks the CPU for the cache line holding `*p` without waiting for it; a hint, so a `p`
/// past the end of anything is harmless (nothing is read, nothing faults). A no-op off
/// x86-64.
#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the
        // address; SSE, which it asks for, is in the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The fixed-point line `(slope, intercept)` at `d` ([`FixedLine::predict`] with the
/// coefficients apart).
#[inline(always)]
pub(super) fn predict(slope: u64, intercept: i64, d: u32) -> i64 {
    FixedLine {
        slope,
        intercept,
        e_lo: 0,
        e_hi: 0,
    }
    .predict(d)
}

/// An extent as [`Line::find`] finds it: its start and length, and where the rest of its
/// record is (slot `r` of the block at byte `at`, whose [`Line::record_word`] is `rec`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) key: u32,
    pub(super) len: u32,
    /// The block header's smallest physical field.
    pub(super) d0: u64,
    pub(super) at: usize,
    pub(super) r: usize,
    pub(super) rec: u64,
}

/// Where [`Line::find`] found an extent, for the start of the next one: its piece-local
/// index `j` and its block's first key `key0`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) j: usize,
    pub(super) key0: u32,
    /// The key offset in the slot after the extent's (read with the extent's; meaningless
    /// for a block's last slot).
    pub(super) next_off: u32,
}
