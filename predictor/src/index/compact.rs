//! The compact learned index (`learned-compact`): a file's exact extent map in a few bytes per
//! extent, addressed by a learned model, so the map a kernel cache would hold in 16-byte iext
//! records fits in a fraction of the memory and a lookup touches a handful of cache lines.
//!
//! # Forms (the per-file cost-benefit choice)
//! Every file gets the cheapest exact form that suits it ([`CompactForm`]):
//! - no extents: nothing; one extent: the extent itself, inline, no heap and no model;
//! - up to [`PLAIN_MAX`] extents: a plain array (a few cache lines; a model would cost more
//!   bytes than it saves, and a search over 8 records is as fast as any prediction);
//! - more: the **packed** form below, unless the plain array is smaller (a dozen extents or
//!   so) or a field does not pack (a physical delta wider than [`MAX_FIELD_BITS`], which no ext4
//!   map produces).
//!
//! # The packed form
//! The extents are cut into *pieces* in logical order:
//! - an **arithmetic run**: at least [`RUN_MIN`] consecutive extents with a constant logical
//!   step, length, physical step and flag (striped or interleaved layouts, punch-every-Nth).
//!   It is answered by arithmetic alone and stores nothing per extent;
//! - a **line**: one segment of the learned index's model ([`crate::model::fit`], window at
//!   most [`WINDOW`] slots) over the other extents, with the piece's extents packed right
//!   behind it.
//!
//! A line piece stores its extents in blocks of [`BLOCK`], frame-of-reference packed: each
//! block has a 16-byte header (first logical block, smallest length, smallest physical field)
//! followed by two columns. The key column holds the logical starts as offsets from the first,
//! byte-aligned ([`KeyWidth`]: two bytes on every kernel-allocator map measured), so a lookup
//! compares the [`WINDOW`] slots around the prediction with `q` in a few vector instructions
//! (one or two cache lines, no branch on the data). The record column holds, per extent, its
//! length and physical field above the block's smallest and its unwritten flag, bit-packed
//! (read once, for the answer). The widths are the piece's (the widest of its blocks), so every
//! block of a piece has the same size and block `k` is found by arithmetic, not through an
//! offset table; a piece's last block keeps only the records it has. The physical field is `pblk - lblk`
//! (near-constant while the allocator keeps logically adjacent blocks physically adjacent: a
//! punched or appended file) or `pblk` itself (dense placement of scattered writes, a sparse
//! disk image), whichever packs the piece tighter.
//!
//! The directory is a radix table over logical blocks (as in [`super::radix`]) whose buckets
//! hold a copy of the piece covering the bucket's first block, so the usual lookup reads one
//! bucket, one block header with its keys, and one record: three or four dependent cache
//! misses when cold, where the iext tree pays one per level. A query past its bucket's piece
//! finds its piece in the next bucket (the adjacent line), and the directory is made finer
//! where pieces crowd, so that the piece array is searched for almost no query.
//!
//! # Cost
//! `reports structures IMAGE` (and the report's compact section) measures bytes and time
//! against the iext tree on real maps. Where the iext tree is two or three nodes in L1 (maps of
//! a few thousand extents, warm), a lookup here is bounded by its one chain of dependent steps
//! (directory, line, block, window count, record decode; about 190 instructions, fewer than
//! the tree's), not by memory: the hot path is kept free of calls, spills and repeated checks,
//! and a lookup reads only what its answer needs (a query in a hole decodes a record's length,
//! not the rest). A sequential reader asks the same blocks over and over, so there the chain
//! is what a lookup costs (see `docs/design.md`, section 4).
//!
//! # Verification
//! As in [`super::LearnedIndex`]: the answer `j` of a window search must satisfy
//! `start[j] <= q < start[j + 1]` on the stored (exact) starts, or the lookup is a miss, so a
//! wrong model can cost time, never a wrong mapping.

use ext4::{BlockMap, Extent};

use super::{check_extents, resolve, ExtentIndex, Lookup};
use crate::model::{fit, FitParams, FixedLine, Model, ModelError, Segment, FIXED_INTERCEPT_SHIFT};

/// Extents per packed block (one header each).
pub const BLOCK: usize = 64;
/// Key slots a lookup compares with `q`: the widest model window a line may have (lines are
/// fitted with at most this window, whatever the caller's [`FitParams`]).
pub const WINDOW: usize = 32;
/// Files with at most this many extents keep a plain array.
pub const PLAIN_MAX: usize = 8;
/// Shortest arithmetic run stored as a run: shorter ones cost less packed than as a piece.
pub const RUN_MIN: usize = 16;
/// Widest packed field: one unaligned 8-byte read at any bit offset yields 57 bits.
pub const MAX_FIELD_BITS: u32 = 56;
/// Most directory buckets per piece: the directory starts at one bucket per piece (rounded up
/// to a power of two, as in the radix table) and doubles, up to this many, only where pieces
/// crowd part of the span (see [`directory`]).
const MAX_BUCKETS_PER_PIECE: usize = 8;
/// The directory doubles while more than this share of the span (1/64) lies outside both the
/// piece its bucket copies and the piece the next bucket copies: queries there search the piece
/// array, one dependent cache miss more when cold.
const FAR_SHARE_SHIFT: u32 = 6;
/// ... and while it stays within this share of the structure (1/8): a directory is a small part
/// of the bytes, whatever the speed it buys.
const DIRECTORY_SHARE_SHIFT: u32 = 3;
/// Bytes of a block header: first key (u32), smallest length (u32), smallest physical field
/// (u64, two's complement).
pub const BLOCK_HEADER_BYTES: usize = 16;
const HEAD: usize = BLOCK_HEADER_BYTES;
/// The `last_block` of the last piece: every block, since it holds every query past its start.
/// Unambiguous: no extent starts at 2^32 - 1 (extents end by 2^32 - 1), so no other piece
/// ends there.
const EVERY_BLOCK: u32 = u32::MAX;

/// Which exact form a file's map got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactForm {
    /// No extents.
    Empty,
    /// One extent, stored inline.
    One,
    /// A plain extent array.
    Plain,
    /// Pieces (arithmetic runs and lines) over bit-packed blocks.
    Packed,
}

impl CompactForm {
    /// Every form, in this order.
    pub const ALL: [CompactForm; 4] = [Self::Empty, Self::One, Self::Plain, Self::Packed];

    /// Name in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::One => "one-extent",
            Self::Plain => "plain-array",
            Self::Packed => "packed",
        }
    }
}

/// What a compact index is made of (for the reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactShape {
    /// Extents.
    pub extents: usize,
    /// Arithmetic-run pieces.
    pub runs: usize,
    /// Extents answered by runs (stored nowhere).
    pub run_extents: usize,
    /// Line pieces.
    pub lines: usize,
    /// Extents stored packed.
    pub packed_extents: usize,
}

/// A compact index as another evaluator of it (the BPF program) reads it: the lookup's own
/// pieces, directory and bytes ([`CompactIndex::layout`]).
#[derive(Debug, Clone)]
pub enum CompactLayout<'a> {
    /// No extents.
    Empty,
    /// A plain extent array (the one-extent and plain-array forms), searched whole.
    Plain(&'a [Extent]),
    /// The packed form.
    Packed(PackedLayout<'a>),
}

/// The packed form's parts (see the module documentation for their meaning).
#[derive(Debug, Clone)]
pub struct PackedLayout<'a> {
    /// Logical start of the first extent: buckets count from here.
    pub first_key: u32,
    /// Bits dropped from `q - first_key` to get a bucket.
    pub shift: u32,
    /// Per bucket, the piece holding the bucket's first block.
    pub buckets: Vec<u32>,
    /// Every piece, in logical order.
    pub pieces: Vec<PieceLayout>,
    /// The line pieces' blocks, ending with 8 zero bytes.
    pub bytes: &'a [u8],
}

/// One piece: it answers `first_key <= q < end_key` (`end_key` `None` for the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceLayout {
    /// Logical start of its first extent.
    pub first_key: u32,
    /// Logical start of the next piece's first extent.
    pub end_key: Option<u32>,
    /// A run or a line.
    pub body: PieceBody,
}

/// What a piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceBody {
    /// An arithmetic run, as the lookup holds it.
    Run(Run),
    /// Extents in packed blocks addressed by a fitted line.
    Line(LineLayout),
}

/// A line piece's line and block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLayout {
    /// Predicts the piece-local index of the last extent starting at or before `q`, from
    /// `q - first_key`; window at most [`WINDOW`].
    pub line: FixedLine,
    /// Extents.
    pub count: u32,
    /// Byte offset of its first block in the bytes.
    pub off: u32,
    /// Bytes of a (full) block.
    pub block: u32,
    /// Byte offset of the record column in a block.
    pub recs: u16,
    /// Bytes of a key offset: 2 or 4 (unused slots hold the all-ones value).
    pub key_bytes: u8,
    /// Bits of a record's length excess, physical excess, and the whole record.
    pub wl: u8,
    /// See `wl`.
    pub wd: u8,
    /// See `wl`.
    pub wr: u8,
    /// The unwritten flag: 0 none are, 1 all are, 2 one bit per record after the two fields.
    pub unw: u8,
    /// The physical field is `pblk` itself (`true`) or `pblk - lblk` (`false`).
    pub phys_absolute: bool,
}

/// A file's extent map in its compact form (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct CompactIndex {
    form: Form,
}

#[derive(Debug, Clone, Default)]
enum Form {
    #[default]
    Empty,
    One(Extent),
    Plain(Box<[Extent]>),
    // Inline, not boxed: one dependent load fewer per lookup, for 32 more bytes per file.
    Packed(Packed),
}

/// An arithmetic run: extent `i` (from 0) starts at `first_key + i * step`, is `len` blocks
/// long at `pblk + i * pstep` (wrapping, so a descending layout is a run too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Logical step (> 0).
    pub step: u32,
    /// Every extent's length.
    pub len: u32,
    /// Physical start of the first extent.
    pub pblk: u64,
    /// Physical step (wrapping).
    pub pstep: u64,
    /// Extents.
    pub count: u32,
    /// Every extent's flag.
    pub unwritten: bool,
}

/// A line piece's packed extents: `last + 1` of them in blocks of [`BLOCK`] from byte `off`.
///
/// Held the way the lookup uses it, so that a lookup does little besides its loads: the line
/// predicts the window's first slot directly (its error bound is folded into the intercept),
/// and a record's fields are cut out by masks rather than widths. With its keys, the piece
/// still fits a directory bucket's cache line.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// Slots per block of `q - first_key`, scaled by 2^32 ([`FixedLine::slope`]).
    slope: u64,
    /// [`FixedLine::intercept`] less `e_lo + 1` slots (scaled): the line then predicts the
    /// window's first slot, `p - e_lo - 1`, exactly (the subtraction commutes with the floor).
    lo_intercept: i64,
    /// Mask of a record's physical excess (after its length excess).
    md: u64,
    /// Piece-local index of the last extent.
    last: u32,
    /// Byte offset of the piece's first block.
    off: u32,
    /// Mask of a record's length excess (lengths are `u32`, so the excess fits).
    ml: u32,
    /// Bytes of one block: header, 64 keys, 64 records (at most 16 + 64 * 4 + 8 * 113).
    block: u16,
    /// The line's bounds: the window is `[p - e_lo - 1, p - e_lo - 1 + width]`, with
    /// `width = e_lo + e_hi + 1` (below [`WINDOW`]).
    e_lo: u8,
    width: u8,
    /// Bits of a length excess (where the physical excess starts), of both excesses (where
    /// the unwritten flag starts), and of a whole record.
    wl: u8,
    wf: u8,
    wr: u8,
    /// 1 where every record carries its unwritten flag, 0 where none does.
    fm: u8,
    /// Every extent of the piece is unwritten.
    all_unwritten: bool,
    /// Bytes of a key offset.
    kw: KeyWidth,
    /// What the physical field is stored against.
    phys: Phys,
}

impl Line {
    fn new(
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
        // Bounds below WINDOW (lines are fitted with at most that window).
        let e_lo = u8::try_from(line.e_lo).ok()?;
        let e_hi = u8::try_from(line.e_hi).ok()?;
        Some(Self {
            slope: line.slope,
            lo_intercept: line
                .intercept
                .wrapping_sub((i64::from(e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            md: mask(u32::from(wd)),
            last: count.checked_sub(1)?,
            off,
            // OK to narrow: wl <= 32 (a length excess is below 2^32).
            ml: mask(u32::from(wl)) as u32,
            block: u16::try_from(recs + BLOCK / 8 * usize::from(wr)).ok()?,
            e_lo,
            width: e_lo.checked_add(e_hi)?.checked_add(1)?,
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
    fn fixed(&self) -> FixedLine {
        FixedLine {
            slope: self.slope,
            intercept: self
                .lo_intercept
                .wrapping_add((i64::from(self.e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            e_lo: u32::from(self.e_lo),
            e_hi: u32::from(self.width - self.e_lo - 1),
        }
    }

    /// Extents in the piece.
    fn count(&self) -> u32 {
        self.last + 1
    }

    /// Bits of the physical excess.
    fn wd(&self) -> u8 {
        self.wf - self.wl
    }

    /// The unwritten flag as [`LineLayout::unw`] has it.
    fn unw(&self) -> u8 {
        if self.fm == 1 {
            2
        } else {
            u8::from(self.all_unwritten)
        }
    }

    /// Byte offset of the record column within a block.
    #[inline(always)]
    fn recs(&self) -> usize {
        self.kw.recs()
    }

    /// Byte offset of the block holding piece-local extent `j`.
    #[inline(always)]
    fn block_at(&self, j: usize) -> usize {
        self.off as usize + j / BLOCK * usize::from(self.block)
    }

    /// The logical start of piece-local extent `j`.
    fn key(&self, bytes: &[u8], j: usize) -> u32 {
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
    fn find(&self, bytes: &[u8], q: u32, d: u32) -> Option<(Hit, Slot)> {
        // Two-byte keys (every kernel-allocator map measured) inline, with their widths as
        // constants; four-byte keys out of line, so that their path takes no registers from
        // the common one.
        match self.kw {
            KeyWidth::U16 => self.find_as(KeyWidth::U16, bytes, q, d),
            KeyWidth::U32 => self.find_wide_keys(bytes, q, d),
        }
    }

    #[inline(never)]
    fn find_wide_keys(&self, bytes: &[u8], q: u32, d: u32) -> Option<(Hit, Slot)> {
        self.find_as(KeyWidth::U32, bytes, q, d)
    }

    /// [`Self::find`] for a piece whose keys are `kw` wide.
    #[inline(always)]
    fn find_as(&self, kw: KeyWidth, bytes: &[u8], q: u32, d: u32) -> Option<(Hit, Slot)> {
        let lo_raw = predict(self.slope, self.lo_intercept, d);
        // The window's first slot, clamped to the piece: only windows at a piece's ends are,
        // so these branches are predicted.
        let lo = if lo_raw < 0 {
            keep_branch();
            0
        } else if lo_raw > i64::from(self.last) {
            keep_branch();
            self.last as usize
        } else {
            // OK to narrow: 0 <= lo_raw <= last.
            lo_raw as usize
        };
        // From the clamped first slot: a window moved up where the line predicts below the
        // piece (still at most WINDOW slots, and still holding the answer).
        let hi = (lo + usize::from(self.width)).min(self.last as usize);
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
    fn next_start(&self, bytes: &[u8], s: Slot, piece_end: Option<u32>) -> Option<u32> {
        let more = s.j < self.last as usize;
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
    fn prefetch_records(&self, bytes: &[u8], at: usize, s: usize) {
        let bit = self.record_bit(at, s);
        let last = bit + (WINDOW - 1) * usize::from(self.wr);
        let line = |bit: usize| bytes.as_ptr().wrapping_add(bit / 8);
        prefetch(line(bit));
        prefetch(line(bit + 64 * 8));
        prefetch(line(last));
    }

    /// The bit where the record of slot `r` of the block at byte `at` starts.
    #[inline(always)]
    fn record_bit(&self, at: usize, r: usize) -> usize {
        (at + self.recs()) * 8 + r * usize::from(self.wr)
    }

    /// The 64 bits from the start of the record of slot `r` of the block at byte `at`: the
    /// whole record when it is at most [`MAX_FIELD_BITS`] wide, and always its first field,
    /// the length excess (below 2^32).
    #[inline(always)]
    fn record_word(&self, bytes: &[u8], at: usize, r: usize) -> u64 {
        let bit = self.record_bit(at, r);
        word(bytes, bit / 8) >> (bit % 8)
    }

    /// The length of an extent from its block's first header word `head` (key0, len0) and
    /// its [`Self::record_word`].
    #[inline(always)]
    fn len_of(&self, head: u64, rec: u64) -> u32 {
        ((head >> 32) as u32).wrapping_add(rec as u32 & self.ml)
    }

    /// The extent [`Self::find`] found: its physical field and flag decoded.
    #[inline(always)]
    fn extent_at(&self, bytes: &[u8], hit: &Hit) -> Extent {
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
    fn wide_record(&self, bytes: &[u8], bit: usize) -> (u64, u8) {
        (
            field(bytes, bit + usize::from(self.wl), self.wd()),
            field(bytes, bit + usize::from(self.wf), 1) as u8 & self.fm,
        )
    }

    /// Piece-local extent `j` (for decoding the whole map).
    fn extent(&self, bytes: &[u8], j: usize) -> Extent {
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
fn keep_branch() {
    std::hint::black_box(());
}

/// Asks the CPU for the cache line holding `*p` without waiting for it; a hint, so a `p`
/// past the end of anything is harmless (nothing is read, nothing faults). A no-op off
/// x86-64.
#[inline(always)]
fn prefetch<T>(p: *const T) {
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
fn predict(slope: u64, intercept: i64, d: u32) -> i64 {
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
struct Hit {
    key: u32,
    len: u32,
    /// The block header's smallest physical field.
    d0: u64,
    at: usize,
    r: usize,
    rec: u64,
}

/// Where [`Line::find`] found an extent, for the start of the next one: its piece-local
/// index `j` and its block's first key `key0`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    j: usize,
    key0: u32,
    /// The key offset in the slot after the extent's (read with the extent's; meaningless
    /// for a block's last slot).
    next_off: u32,
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Run(Run),
    Line(Line),
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Logical start of the piece's first extent.
    first_key: u32,
    /// The block before the next piece's first extent ([`EVERY_BLOCK`] for the last piece):
    /// the piece answers `first_key <= q <= last_block`, one comparison.
    last_block: u32,
    body: Body,
}

impl Piece {
    fn end(&self) -> Option<u32> {
        // The next piece's first key (above 0, so the subtraction below cannot wrap).
        (self.last_block != EVERY_BLOCK).then(|| self.last_block + 1)
    }
}

/// A directory bucket: the piece holding the bucket's first block, copied, and its index. One
/// cache line, aligned to one (a cold lookup's first miss fetches all of it).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Bucket {
    piece: Piece,
    index: u32,
}

#[derive(Debug, Clone, Default)]
struct Packed {
    first_key: u32,
    /// Bits dropped from `q - first_key` to get a bucket.
    shift: u32,
    buckets: Box<[Bucket]>,
    /// Every piece, for the queries past their bucket's piece.
    pieces: Box<[Piece]>,
    /// The line pieces' blocks, padded with 8 zero bytes so every field read is one 8-byte load.
    bytes: Box<[u8]>,
}

/// Bits needed to store values `0..=v`.
fn bits_for(v: u128) -> u32 {
    128 - v.leading_zeros()
}

/// The little-endian 8 bytes at byte `at` (0 past the end, which the padding makes unreachable
/// for a well-formed index).
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The low `w` bits set (`w <= 63`).
#[inline(always)]
fn mask(w: u32) -> u64 {
    (1u64 << w) - 1
}

/// Reads the `w`-bit field (`w <= MAX_FIELD_BITS`) at bit `bit`.
#[inline(always)]
fn field(bytes: &[u8], bit: usize, w: u8) -> u64 {
    // w <= 56, so the shift is in range; w == 0 masks everything.
    (word(bytes, bit / 8) >> (bit % 8)) & mask(u32::from(w))
}

/// How a line piece stores its key offsets (a key minus its block's first key): byte-aligned,
/// so a window of them is compared with `q` by vector instructions rather than a walk over
/// bit fields (which measured twice the instructions of the iext tree's lookup). Two bytes
/// where every block of the piece spans less than 2^16 - 1 blocks (every kernel-allocator map
/// measured: offsets of 9 to 12 bits), four otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyWidth {
    U16,
    U32,
}

impl KeyWidth {
    /// The narrowest width for a piece whose largest in-block key offset is `max`. The
    /// all-ones value of each width is kept for the padding of a last, partial block.
    fn for_offsets(max: u32) -> Self {
        if max < u32::from(u16::MAX) {
            Self::U16
        } else {
            Self::U32
        }
    }

    fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    /// Byte offset of the record column within a block whose keys are this wide: after the
    /// header and the [`BLOCK`] key slots.
    #[inline(always)]
    fn recs(self) -> usize {
        HEAD + BLOCK * self.bytes()
    }

    /// The padding of unused slots: above every offset, and above every `q` offset once
    /// clamped (see [`Self::count_at_most`]).
    fn padding(self) -> u32 {
        match self {
            Self::U16 => u32::from(u16::MAX),
            Self::U32 => u32::MAX,
        }
    }

    /// Offsets `r` and `r + 1` of the key column at byte `col`, in one load (the second is
    /// meaningless for `r = BLOCK - 1`).
    #[inline(always)]
    fn pair(self, bytes: &[u8], col: usize, r: usize) -> (u32, u32) {
        let w = word(bytes, col + r * self.bytes());
        match self {
            Self::U16 => (u32::from(w as u16), u32::from((w >> 16) as u16)),
            Self::U32 => (w as u32, (w >> 32) as u32),
        }
    }

    /// Offset `r` of the key column at byte `col`.
    #[inline(always)]
    fn get(self, bytes: &[u8], col: usize, r: usize) -> u32 {
        let w = word(bytes, col + r * self.bytes());
        match self {
            Self::U16 => w as u16 as u32,
            Self::U32 => w as u32,
        }
    }

    /// How many of the [`WINDOW`] offsets from slot `s` of the key column at byte `col` are at
    /// most `qd` (0 if the column is not there, which a well-formed index never asks).
    #[inline(always)]
    fn count_at_most(self, bytes: &[u8], col: usize, s: usize, qd: u32) -> usize {
        let from = col + s * self.bytes();
        // Clamped below the padding: every real offset is below it, so the count of real
        // offsets is unchanged and padding is never counted.
        let qd = qd.min(self.padding() - 1);
        match self {
            Self::U16 => match bytes.get(from..).and_then(<[u8]>::first_chunk) {
                Some(w) => count_u16(w, qd as u16),
                None => 0,
            },
            Self::U32 => match bytes.get(from..).and_then(<[u8]>::first_chunk) {
                Some(w) => count_u32(w, qd),
                None => 0,
            },
        }
    }
}

/// Little-endian `u16`s of `w` at most `qd`, for sorted `w`: they are a prefix, so the count is
/// the run of low ones in a mask with one bit per slot. On x86-64, SSE2 (part of the
/// architecture's baseline) compares eight slots at once and `movemask` gathers the bits: about
/// 15 instructions and a short dependency chain where the portable sum, which LLVM vectorises
/// but finishes with an emulated popcount, takes some 40.
#[inline(always)]
fn count_u16(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        count_u16_sse2(w, qd)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        count_u16_portable(w, qd)
    }
}

/// [`count_u16`] in SSE2, which the x86-64 baseline has: compiled in without a
/// `target_feature` attribute, so it inlines into the lookup (a call, with the spills around
/// it, cost some 20 instructions).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn count_u16_sse2(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
        _mm_set1_epi16, _mm_setzero_si128, _mm_subs_epu16,
    };
    const _: () = assert!(WINDOW == 32, "four compares of eight slots");
    // SAFETY: SSE2 is on in this build (the cfg above), which is all these intrinsics ask;
    // the loads are bytes 16k..16k + 16 of the 64-byte array (k < 4), unaligned.
    let (lo, hi) = unsafe {
        let q = _mm_set1_epi16(qd as i16);
        // Slots 8k..8k+8: all ones where the slot is at most q (saturating slot - q is zero).
        // One load per eight slots (building the vector from two 8-byte words took three).
        let at_most = |k: usize| -> __m128i {
            debug_assert!(k < 4);
            let v = _mm_loadu_si128(w.as_ptr().add(16 * k).cast());
            _mm_cmpeq_epi16(_mm_subs_epu16(v, q), _mm_setzero_si128())
        };
        // Sixteen slots a time, one byte each (signed saturation keeps 0 and -1), one bit each.
        (
            _mm_movemask_epi8(_mm_packs_epi16(at_most(0), at_most(1))) as u32,
            _mm_movemask_epi8(_mm_packs_epi16(at_most(2), at_most(3))) as u32,
        )
    };
    (lo | hi << 16).trailing_ones() as usize
}

/// [`count_u16`] without vector intrinsics (other architectures; and the x86-64 version's
/// reference in the tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn count_u16_portable(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    let mut n = 0u16;
    for c in w.chunks_exact(2) {
        n += u16::from(u16::from_le_bytes([c[0], c[1]]) <= qd);
    }
    usize::from(n)
}

/// Little-endian `u32`s of `w` at most `qd` (pieces whose blocks span 2^16 blocks or more:
/// rare, so the portable sum, out of the common path's way).
#[inline(never)]
fn count_u32(w: &[u8; 4 * WINDOW], qd: u32) -> usize {
    let mut n = 0u32;
    for c in w.chunks_exact(4) {
        n += u32::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) <= qd);
    }
    n as usize
}

/// ORs `v` (< 2^w, w <= 56) into the field at bit `bit` (zero there before).
fn put(bytes: &mut [u8], bit: usize, v: u64) {
    let at = bit / 8;
    if let Some(b) = bytes.get_mut(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        let word = u64::from_le_bytes(word) | (v << (bit % 8));
        b.copy_from_slice(&word.to_le_bytes());
    }
}

/// What a record's physical field is stored against (per line piece, whichever packs tighter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phys {
    /// `pblk - lblk`: constant while the allocator keeps logically adjacent blocks physically
    /// adjacent (punched, appended, preallocated files).
    FromLogical,
    /// `pblk` itself: dense physical placement of logically scattered extents (a sparse disk
    /// image written back in logical order), where `pblk - lblk` moves with every gap.
    Absolute,
}

impl Phys {
    /// The value stored (above the block's smallest) for `e`, as a signed number (ext4
    /// physical blocks are below 2^48; `u64` allows more).
    fn of(self, e: &Extent) -> i128 {
        match self {
            Phys::FromLogical => i128::from(e.pblk) - i128::from(e.lblk),
            Phys::Absolute => i128::from(e.pblk),
        }
    }
}

impl CompactIndex {
    /// The compact form of `exts` (a sorted, non-overlapping map; checked).
    pub fn new(exts: &[Extent]) -> Result<Self, ModelError> {
        Self::with_params(exts, &FitParams::default())
    }

    /// The compact form of `exts`, with lines fitted with `params`.
    pub fn with_params(exts: &[Extent], params: &FitParams) -> Result<Self, ModelError> {
        Self::build(exts, Lines::Fit(params))
    }

    /// The compact form of `exts` with the lines of `model` instead of fitted ones: what
    /// [`Self::model`] gave for the same map (a pack stores it). A model that does not
    /// describe the map's line extents is an error; a wrong line in one that does can only
    /// make lookups miss.
    pub fn with_model(exts: &[Extent], model: &Model) -> Result<Self, ModelError> {
        Self::build(exts, Lines::Model(model))
    }

    /// The packed form's lines, as a model over its *line extents* (the extents outside
    /// arithmetic runs, in order; runs are found again from the map): what a pack stores so
    /// [`Self::with_model`] need not fit. The compact form keeps only the fixed-point lines;
    /// each segment's float line is their value. `None` for the forms without lines to keep.
    pub fn model(&self) -> Option<Model> {
        match &self.form {
            Form::Packed(p) => Some(p.model()),
            Form::Empty | Form::One(_) | Form::Plain(_) => None,
        }
    }

    fn build(exts: &[Extent], lines: Lines<'_>) -> Result<Self, ModelError> {
        check_extents(exts)?;
        if u32::try_from(exts.len()).is_err() {
            return Err(ModelError::TooMany(exts.len()));
        }
        let form = match exts {
            [] => Form::Empty,
            [e] => Form::One(*e),
            _ if exts.len() <= PLAIN_MAX => Form::Plain(exts.into()),
            // Packed only where it is smaller than the plain array (from a dozen extents or so:
            // a bucket, a piece and a block header cost some 160 bytes).
            _ => match Packed::new(exts, lines)? {
                Some(p) if p.heap_bytes() < std::mem::size_of_val(exts) => Form::Packed(p),
                _ => Form::Plain(exts.into()),
            },
        };
        Ok(Self { form })
    }

    /// The form this file got.
    pub fn form(&self) -> CompactForm {
        match self.form {
            Form::Empty => CompactForm::Empty,
            Form::One(_) => CompactForm::One,
            Form::Plain(_) => CompactForm::Plain,
            Form::Packed(_) => CompactForm::Packed,
        }
    }

    /// What it is made of.
    pub fn shape(&self) -> CompactShape {
        let mut s = CompactShape::default();
        match &self.form {
            Form::Empty => {}
            Form::One(_) => s.extents = 1,
            Form::Plain(e) => s.extents = e.len(),
            Form::Packed(p) => {
                for piece in p.pieces.iter() {
                    match piece.body {
                        Body::Run(r) => {
                            s.runs += 1;
                            s.run_extents += r.count as usize;
                        }
                        Body::Line(l) => {
                            s.lines += 1;
                            s.packed_extents += l.count() as usize;
                        }
                    }
                }
                s.extents = s.packed_extents + s.run_extents;
            }
        }
        s
    }

    /// Every extent, in order (decoded).
    pub fn extents(&self) -> Vec<Extent> {
        match &self.form {
            Form::Empty => Vec::new(),
            Form::One(e) => vec![*e],
            Form::Plain(e) => e.to_vec(),
            Form::Packed(p) => p.extents(),
        }
    }

    /// Its parts, as the lookup reads them (for another evaluator: the BPF program).
    pub fn layout(&self) -> CompactLayout<'_> {
        match &self.form {
            Form::Empty => CompactLayout::Empty,
            Form::One(e) => CompactLayout::Plain(std::slice::from_ref(e)),
            Form::Plain(e) => CompactLayout::Plain(e),
            Form::Packed(p) => CompactLayout::Packed(p.layout()),
        }
    }

    /// Looks up block `q`.
    #[inline]
    pub fn probe(&self, q: u32) -> Lookup {
        // The packed form first: one test, where a jump over the four forms costs five
        // instructions of a lookup's two hundred.
        if let Form::Packed(p) = &self.form {
            return p.probe(q);
        }
        self.probe_small(q)
    }

    /// [`Self::probe`] for the forms without a model (out of the packed form's way).
    #[inline(never)]
    fn probe_small(&self, q: u32) -> Lookup {
        match &self.form {
            Form::Empty => Lookup::Found(BlockMap::Hole { next: None }),
            Form::One(e) if q < e.lblk => Lookup::Found(BlockMap::Hole { next: Some(e.lblk) }),
            Form::One(e) => Lookup::Found(resolve(q, Some(*e), None)),
            Form::Plain(exts) => {
                let n = exts.partition_point(|e| e.lblk <= q);
                let at = n.checked_sub(1).and_then(|j| exts.get(j)).copied();
                Lookup::Found(resolve(q, at, exts.get(n).map(|e| e.lblk)))
            }
            Form::Packed(p) => p.probe(q),
        }
    }
}

impl ExtentIndex for CompactIndex {
    fn find(&self, lblk: u32) -> Lookup {
        self.probe(lblk)
    }

    fn heap_bytes(&self) -> usize {
        match &self.form {
            Form::Empty | Form::One(_) => 0,
            Form::Plain(e) => std::mem::size_of_val::<[Extent]>(e),
            Form::Packed(p) => p.heap_bytes(),
        }
    }
}

/// Length of the arithmetic run starting at `exts[0]` (1 if `exts[1]` breaks it).
fn run_len(exts: &[Extent]) -> usize {
    let [a, b, ..] = exts else {
        return exts.len();
    };
    let step = b.lblk - a.lblk;
    let pstep = b.pblk.wrapping_sub(a.pblk);
    1 + exts
        .windows(2)
        .take_while(|w| {
            let (x, y) = (&w[0], &w[1]);
            y.lblk - x.lblk == step
                && y.pblk.wrapping_sub(x.pblk) == pstep
                && y.len == a.len
                && x.len == a.len
                && y.unwritten == a.unwritten
                && x.unwritten == a.unwritten
        })
        .count()
}

impl Packed {
    /// Heap bytes: the directory, the pieces and the packed blocks.
    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[Bucket]>(&self.buckets)
            + std::mem::size_of_val::<[Piece]>(&self.pieces)
            + self.bytes.len()
    }

    fn layout(&self) -> PackedLayout<'_> {
        let piece = |p: &Piece| PieceLayout {
            first_key: p.first_key,
            end_key: p.end(),
            body: match p.body {
                Body::Run(r) => PieceBody::Run(r),
                Body::Line(l) => PieceBody::Line(LineLayout {
                    line: l.fixed(),
                    count: l.count(),
                    off: l.off,
                    block: u32::from(l.block),
                    // OK to narrow: 16 + 64 * 4 at most.
                    recs: l.recs() as u16,
                    // OK to narrow: 2 or 4.
                    key_bytes: l.kw.bytes() as u8,
                    wl: l.wl,
                    wd: l.wd(),
                    wr: l.wr,
                    unw: l.unw(),
                    phys_absolute: l.phys == Phys::Absolute,
                }),
            },
        };
        PackedLayout {
            first_key: self.first_key,
            shift: self.shift,
            buckets: self.buckets.iter().map(|b| b.index).collect(),
            pieces: self.pieces.iter().map(piece).collect(),
            bytes: &self.bytes,
        }
    }

    /// `None` when a field does not pack (the caller keeps a plain array).
    fn new(exts: &[Extent], lines: Lines<'_>) -> Result<Option<Self>, ModelError> {
        let cuts = cut(exts);
        if let Lines::Model(model) = lines {
            // The model describes the line extents: every stretch's, in order.
            let keys: Vec<u32> = cuts
                .iter()
                .filter_map(|c| exts.get(c.stretch()?))
                .flatten()
                .map(|e| e.lblk)
                .collect();
            model.check_keys(&keys)?;
        }
        // Pieces: runs of RUN_MIN or more, and lines over the stretches between them.
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        // Line extents before the current stretch (where its segments start in a model).
        let mut offset = 0u32;
        for c in &cuts {
            let Some(part) = exts.get(c.range()) else {
                return Ok(None);
            };
            let Cut::Stretch(_) = c else {
                pieces.extend(run_piece(part));
                continue;
            };
            let segments = match lines {
                Lines::Fit(params) => {
                    let keys: Vec<u32> = part.iter().map(|e| e.lblk).collect();
                    // A lookup counts WINDOW key slots: no line may need more.
                    let params = FitParams {
                        max_window: params.max_window.min(WINDOW as u32),
                        ..*params
                    };
                    fit(&keys, &params)?.0.segments
                }
                Lines::Model(model) => stretch_segments(model, offset, part)?,
            };
            if !line_pieces(part, &segments, &mut pieces, &mut bytes)? {
                return Ok(None);
            }
            // Fewer than 2^32 extents in all (checked by the caller).
            offset += part.len() as u32;
        }
        for k in 1..pieces.len() {
            pieces[k - 1].last_block = pieces[k].first_key - 1;
        }
        bytes.extend_from_slice(&[0; 8]);
        let first_key = exts.first().map_or(0, |e| e.lblk);
        let last_key = exts.last().map_or(0, |e| e.lblk);
        let (shift, buckets) = directory(
            &pieces,
            first_key,
            last_key,
            bytes.len() + std::mem::size_of_val::<[Piece]>(&pieces),
        );
        Ok(Some(Self {
            first_key,
            shift,
            buckets,
            pieces: pieces.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        }))
    }

    /// The line pieces' lines as one model over the line extents (every stretch's, in order):
    /// each segment's index and intercept count from the first line extent.
    fn model(&self) -> Model {
        let mut segments = Vec::new();
        let mut first_idx = 0u32;
        for piece in self.pieces.iter() {
            let Body::Line(l) = piece.body else {
                continue;
            };
            let mut fixed = l.fixed();
            fixed.intercept = fixed
                .intercept
                .wrapping_add(i64::from(first_idx) << FIXED_INTERCEPT_SHIFT);
            segments.push(Segment {
                first_idx,
                first_key: piece.first_key,
                line: fixed.to_float(),
                fixed,
            });
            first_idx += l.count();
        }
        Model {
            extent_count: first_idx,
            segments,
        }
    }

    /// The piece holding `q` (`q >= first_key`).
    #[inline(always)]
    fn piece(&self, q: u32) -> Option<&Piece> {
        let last = self.buckets.len().checked_sub(1)?;
        let mut b = (u64::from(q - self.first_key) >> self.shift) as usize;
        if b > last {
            // Only past the last bucket's first block: predicted.
            keep_branch();
            b = last;
        }
        // The next bucket is where a query past this bucket's piece finds its piece (below);
        // asked for now, a cold lookup's two bucket lines arrive together.
        prefetch(self.buckets.as_ptr().wrapping_add(b + 1));
        let bucket = self.buckets.get(b)?;
        if q <= bucket.piece.last_block {
            return Some(&bucket.piece);
        }
        // q is past the bucket's first piece, in a piece starting inside the bucket. Where
        // only one starts there (the directory is sized so that holds for nearly all the
        // span), that piece holds the next bucket's first block: the next bucket, the
        // adjacent cache line, has a copy of it. Checked inline: a search call here cost a
        // sequential scan a third of its time on a map of 10^6 extents.
        if let Some(next) = self.buckets.get(b + 1) {
            if next.piece.first_key <= q && q <= next.piece.last_block {
                return Some(&next.piece);
            }
        }
        self.piece_after(q, b, bucket.index as usize + 1)
    }

    /// The piece holding `q`, which lies past bucket `b`'s piece (the pieces before `from`)
    /// and before the next bucket's (`q` is below the next bucket's first block, which that
    /// piece holds, and was not in it): a search among the pieces in between, out of line so
    /// that the common path does not keep registers for it.
    #[cold]
    #[inline(never)]
    fn piece_after(&self, q: u32, b: usize, from: usize) -> Option<&Piece> {
        let to = self
            .buckets
            .get(b + 1)
            .map_or(self.pieces.len(), |n| n.index as usize);
        let rest = self.pieces.get(from..to)?;
        let k = rest.partition_point(|p| p.first_key <= q).checked_sub(1)?;
        rest.get(k)
    }

    #[inline(always)]
    fn probe(&self, q: u32) -> Lookup {
        if q < self.first_key {
            return Lookup::Found(BlockMap::Hole {
                next: Some(self.first_key),
            });
        }
        let Some(piece) = self.piece(q) else {
            return Lookup::Missed;
        };
        let d = q - piece.first_key;
        match &piece.body {
            Body::Run(r) => {
                // step > 0: a run's extents do not overlap.
                let i = (d / r.step).min(r.count - 1);
                let lblk = piece.first_key + i * r.step;
                let e = Extent {
                    lblk,
                    pblk: r.pblk.wrapping_add(r.pstep.wrapping_mul(u64::from(i))),
                    len: r.len,
                    unwritten: r.unwritten,
                };
                let next = if i + 1 < r.count {
                    Some(lblk + r.step)
                } else {
                    piece.end()
                };
                Lookup::Found(resolve(q, Some(e), next))
            }
            Body::Line(l) => {
                let Some((hit, slot)) = l.find(&self.bytes, q, d) else {
                    return Lookup::Missed;
                };
                let Hit { key, len, .. } = hit;
                // Verify on the stored starts: start[j] <= q < start[j + 1]. Inside the
                // extent that holds (extents do not overlap, so the next one starts at or
                // after its end), and the next start is not even looked at. (`find` counted
                // the keys at or below `q`, so the extent starts at or before it: only the
                // end is compared.)
                debug_assert!(key <= q);
                if q.wrapping_sub(key) < len {
                    return Lookup::Found(BlockMap::Mapped(l.extent_at(&self.bytes, &hit)));
                }
                let next = l.next_start(&self.bytes, slot, piece.end());
                if next.is_some_and(|n| n <= q) {
                    return Lookup::Missed;
                }
                Lookup::Found(BlockMap::Hole { next })
            }
        }
    }

    fn extents(&self) -> Vec<Extent> {
        let mut out = Vec::new();
        for piece in self.pieces.iter() {
            match piece.body {
                Body::Run(r) => out.extend((0..r.count).map(|i| Extent {
                    lblk: piece.first_key + i * r.step,
                    pblk: r.pblk.wrapping_add(r.pstep.wrapping_mul(u64::from(i))),
                    len: r.len,
                    unwritten: r.unwritten,
                })),
                Body::Line(l) => {
                    out.extend((0..l.count() as usize).map(|j| l.extent(&self.bytes, j)))
                }
            }
        }
        out
    }
}

/// Appends one line piece per segment of `stretch` (extents between runs; segment indices and
/// lines count from its first extent), with its packed blocks in `bytes`. `false` if a field
/// does not pack.
fn line_pieces(
    stretch: &[Extent],
    segments: &[Segment],
    pieces: &mut Vec<Piece>,
    bytes: &mut Vec<u8>,
) -> Result<bool, ModelError> {
    let n = stretch.len();
    for (s, seg) in segments.iter().enumerate() {
        let end = segments.get(s + 1).map_or(n, |t| t.first_idx as usize);
        let Some(exts) = stretch.get(seg.first_idx as usize..end) else {
            return Ok(false);
        };
        // The line predicts an index into `stretch`; moving its intercept down by the
        // segment's first index makes it predict the piece-local index, exactly (the shift is
        // added before the floor), with the same bounds.
        let mut line = seg.fixed;
        line.intercept = line
            .intercept
            .wrapping_sub(i64::from(seg.first_idx) << FIXED_INTERCEPT_SHIFT);
        let Some(packed) = pack_line(exts, line, bytes) else {
            return Ok(false);
        };
        pieces.push(Piece {
            first_key: seg.first_key,
            last_block: EVERY_BLOCK,
            body: Body::Line(packed),
        });
    }
    Ok(true)
}

/// Where a packed form's lines come from.
#[derive(Debug, Clone, Copy)]
enum Lines<'a> {
    /// Fitted over each stretch, window at most [`WINDOW`].
    Fit(&'a FitParams),
    /// Given: a model over the line extents, as [`CompactIndex::model`] gives (from a pack).
    Model(&'a Model),
}

/// The segments of `model` over `stretch`, whose first extent is line extent `offset`,
/// counted from the stretch's start. A stretch must start a segment (lines never span a run),
/// and every window must fit the lookup's [`WINDOW`] slots.
fn stretch_segments(
    model: &Model,
    offset: u32,
    stretch: &[Extent],
) -> Result<Vec<Segment>, ModelError> {
    let (len, first_key) = (stretch.len(), stretch.first().map(|e| e.lblk));
    let from = model.segments.partition_point(|s| s.first_idx < offset);
    let to = model
        .segments
        .partition_point(|s| (s.first_idx as usize) < offset as usize + len);
    let bad = |segment, what| ModelError::BadSegment { segment, what };
    let segments = model.segments.get(from..to).unwrap_or(&[]);
    match segments.first() {
        Some(s) if s.first_idx == offset && Some(s.first_key) == first_key => {}
        _ => return Err(bad(from, "a stretch between runs does not start a segment")),
    }
    segments
        .iter()
        .enumerate()
        .map(|(k, s)| {
            if s.fixed.window() > WINDOW as u64 {
                return Err(bad(from + k, "window wider than the compact lookup's"));
            }
            let mut s = *s;
            s.first_idx -= offset;
            s.fixed.intercept = s
                .fixed
                .intercept
                .wrapping_sub(i64::from(offset) << FIXED_INTERCEPT_SHIFT);
            Ok(s)
        })
        .collect()
}

/// The piece of an arithmetic run (`None` for fewer than two extents, which no cut makes).
fn run_piece(run: &[Extent]) -> Option<Piece> {
    let (a, b) = (run.first()?, run.get(1)?);
    Some(Piece {
        first_key: a.lblk,
        last_block: EVERY_BLOCK,
        body: Body::Run(Run {
            step: b.lblk - a.lblk,
            len: a.len,
            pblk: a.pblk,
            pstep: b.pblk.wrapping_sub(a.pblk),
            // Fewer than 2^32 extents in all (checked by the caller).
            count: run.len() as u32,
            unwritten: a.unwritten,
        }),
    })
}

/// A stretch of a map: an arithmetic run (stored as one), or the extents between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cut {
    Run(std::ops::Range<usize>),
    Stretch(std::ops::Range<usize>),
}

impl Cut {
    fn range(&self) -> std::ops::Range<usize> {
        match self {
            Cut::Run(r) | Cut::Stretch(r) => r.clone(),
        }
    }

    /// The range, if this is a stretch (the extents a model's lines cover).
    fn stretch(&self) -> Option<std::ops::Range<usize>> {
        match self {
            Cut::Stretch(r) => Some(r.clone()),
            Cut::Run(_) => None,
        }
    }
}

/// `exts` cut into runs of at least [`RUN_MIN`] extents and the (non-empty) stretches between
/// them, in order.
fn cut(exts: &[Extent]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let (mut stretch_start, mut i) = (0, 0);
    while let Some(rest) = exts.get(i..).filter(|r| r.len() >= 2) {
        let len = run_len(rest);
        if len < RUN_MIN {
            i += 1;
            continue;
        }
        if stretch_start < i {
            cuts.push(Cut::Stretch(stretch_start..i));
        }
        cuts.push(Cut::Run(i..i + len));
        i += len;
        stretch_start = i;
    }
    if stretch_start < exts.len() {
        cuts.push(Cut::Stretch(stretch_start..exts.len()));
    }
    cuts
}

/// Packs `exts` (one line piece) into blocks appended to `bytes`; `None` if a field is wider
/// than [`MAX_FIELD_BITS`] or the bytes pass 4 GiB (offsets are `u32`).
fn pack_line(exts: &[Extent], line: FixedLine, bytes: &mut Vec<u8>) -> Option<Line> {
    // The piece's widths: the widest of its blocks, for each way of storing the physical
    // field; the narrower one is used.
    let (mut max_off, mut wl, mut wd) = (0u32, 0u32, [0u32; 2]);
    let modes = [Phys::FromLogical, Phys::Absolute];
    for chunk in exts.chunks(BLOCK) {
        let (first, last) = (chunk.first()?, chunk.last()?);
        let (l0, l1) = (
            chunk.iter().map(|e| e.len).min()?,
            chunk.iter().map(|e| e.len).max()?,
        );
        max_off = max_off.max(last.lblk - first.lblk);
        wl = wl.max(bits_for(u128::from(l1 - l0)));
        for (w, mode) in wd.iter_mut().zip(modes) {
            let d0 = chunk.iter().map(|e| mode.of(e)).min()?;
            let d1 = chunk.iter().map(|e| mode.of(e)).max()?;
            *w = (*w).max(bits_for(u128::try_from(d1 - d0).ok()?));
        }
    }
    let (wd, phys) = if wd[1] < wd[0] {
        (wd[1], Phys::Absolute)
    } else {
        (wd[0], Phys::FromLogical)
    };
    if wl.max(wd) > MAX_FIELD_BITS {
        return None;
    }
    let unwritten = exts.iter().filter(|e| e.unwritten).count();
    let unw = match unwritten {
        0 => 0,
        u if u == exts.len() => 1,
        _ => 2,
    };
    // OK to narrow: each width is at most MAX_FIELD_BITS.
    let l = Line::new(
        line,
        u32::try_from(exts.len()).ok()?,
        u32::try_from(bytes.len()).ok()?,
        KeyWidth::for_offsets(max_off),
        [wl as u8, wd as u8],
        unw,
        phys,
    )?;
    let (kw, rw) = (l.kw.bytes(), usize::from(l.wr));
    for chunk in exts.chunks(BLOCK) {
        let at = bytes.len();
        let first = chunk.first()?;
        let len0 = chunk.iter().map(|e| e.len).min()?;
        let d0 = chunk.iter().map(|e| phys.of(e)).min()?;
        // A full block plus write slack, trimmed below.
        bytes.resize(at + usize::from(l.block) + 8, 0);
        bytes[at..at + 4].copy_from_slice(&first.lblk.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&len0.to_le_bytes());
        // Two's complement: pblk = (lblk +) d0 + excess, wrapping, is exact.
        bytes[at + 8..at + 16].copy_from_slice(&(d0 as u64).to_le_bytes());
        let keys = at + HEAD;
        let recs = (at + l.recs()) * 8;
        // Unused slots of a last, partial block hold the padding, which no count includes.
        let offsets = chunk
            .iter()
            .map(|e| e.lblk - first.lblk)
            .chain(std::iter::repeat(l.kw.padding()));
        for (r, off) in offsets.take(BLOCK).enumerate() {
            put(bytes, (keys + r * kw) * 8, u64::from(off));
        }
        for (r, e) in chunk.iter().enumerate() {
            let bit = recs + r * rw;
            put(bytes, bit, u64::from(e.len - len0));
            put(
                bytes,
                bit + usize::from(l.wl),
                u64::try_from(phys.of(e) - d0).ok()?,
            );
            if l.fm == 1 {
                put(bytes, bit + usize::from(l.wf), u64::from(e.unwritten));
            }
        }
        // The last block keeps its whole key column (a count reads WINDOW slots from any
        // slot up to BLOCK - WINDOW) but only the records it has: nothing follows it within
        // the piece, and a record read past them is never asked for.
        let recs_len = (chunk.len() * rw).div_ceil(8);
        bytes.truncate(at + l.recs() + recs_len);
    }
    Some(l)
}

/// The directory: a shift and, per bucket, the piece holding the bucket's first block.
///
/// One bucket per piece (rounded up to a power of two), enough where the pieces spread evenly
/// over the span; doubled (to at most [`MAX_BUCKETS_PER_PIECE`] per piece) while more than
/// `span >> FAR_SHARE_SHIFT` blocks lie in pieces that neither their bucket nor the next one
/// copies ([`Packed::piece`] searches the piece array there), as long as the directory stays
/// within `>> DIRECTORY_SHARE_SHIFT` of itself plus `other_bytes`. Kernel maps are uneven: the
/// random-punched file of 10^6 extents has its 200-odd line pieces in the punched part of its
/// span, and at one bucket per piece a fifth of the span lay in such pieces.
fn directory(
    pieces: &[Piece],
    first_key: u32,
    last_key: u32,
    other_bytes: usize,
) -> (u32, Box<[Bucket]>) {
    let span = u64::from(last_key - first_key);
    let span_bits = 64 - span.leading_zeros();
    let build = |nb: usize| {
        let shift = span_bits.saturating_sub(nb.trailing_zeros());
        let buckets: Box<[Bucket]> = (0..nb)
            .filter_map(|b| {
                let start = bucket_start(first_key, b, shift);
                let n = pieces.partition_point(|p| u64::from(p.first_key) <= start);
                let index = n.saturating_sub(1);
                Some(Bucket {
                    piece: *pieces.get(index)?,
                    index: index as u32,
                })
            })
            .collect();
        (shift, buckets)
    };
    let fits = |nb: usize| {
        let bytes = nb * std::mem::size_of::<Bucket>();
        bytes <= (other_bytes + bytes) >> DIRECTORY_SHARE_SHIFT
    };
    let first = pieces.len().next_power_of_two();
    let mut best = build(first);
    let mut nb = first;
    while nb < first * MAX_BUCKETS_PER_PIECE
        && far_blocks(&best.1, best.0, first_key, last_key) > span >> FAR_SHARE_SHIFT
        && fits(nb * 2)
    {
        nb *= 2;
        best = build(nb);
    }
    best
}

/// The first block of bucket `b` (of a directory over blocks from `first_key`, `2^shift`
/// blocks a bucket), widened: the buckets past the map's last block start beyond `u32`.
fn bucket_start(first_key: u32, b: usize, shift: u32) -> u64 {
    u64::from(first_key) + ((b as u64) << shift)
}

/// Blocks of `first_key..=last_key` in no piece that their bucket or the next bucket copies.
fn far_blocks(buckets: &[Bucket], shift: u32, first_key: u32, last_key: u32) -> u64 {
    let end = u64::from(last_key) + 1;
    let mut far = 0;
    for (b, bucket) in buckets.iter().enumerate() {
        let start = bucket_start(first_key, b, shift);
        let stop = (start + (1u64 << shift)).min(end);
        if start >= stop {
            break;
        }
        // Blocks of [start, stop) inside piece p.
        let covered = |p: &Piece| {
            let lo = u64::from(p.first_key).max(start);
            let hi = (u64::from(p.last_block) + 1).min(stop);
            hi.saturating_sub(lo)
        };
        let mut near = covered(&bucket.piece);
        if let Some(next) = buckets.get(b + 1).filter(|n| n.index != bucket.index) {
            near += covered(&next.piece);
        }
        far += (stop - start) - near.min(stop - start);
    }
    far
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::probe_blocks;
    use crate::index::SortedIndex;
    use crate::synth::allocator_like;

    /// `n` extents of `len` blocks every `step` blocks from `lblk`, physically `pstep` apart.
    fn run(lblk: u32, n: u32, step: u32, len: u32, pblk: u64, pstep: u64) -> Vec<Extent> {
        (0..n)
            .map(|i| Extent {
                lblk: lblk + i * step,
                pblk: pblk.wrapping_add(pstep.wrapping_mul(u64::from(i))),
                len,
                unwritten: false,
            })
            .collect()
    }

    /// Runs and allocator-like stretches alternating, some runs shorter than [`RUN_MIN`].
    fn mixed() -> Vec<Extent> {
        let mut exts = Vec::new();
        let mut at = 0u32;
        for (i, n) in [40u32, 5, 300, 15, 16, 1000, 2].into_iter().enumerate() {
            let mut stretch = allocator_like(200 + i * 37, i as u64);
            for e in &mut stretch {
                e.lblk += at;
            }
            at = crate::synth::span(&stretch) as u32 + 3;
            exts.extend(stretch);
            // Descending physical layout for one of them.
            let pstep = if i == 2 { 0u64.wrapping_sub(9) } else { 9 };
            exts.extend(run(at, n, 7, 4, 1 << 30, pstep));
            at += n * 7 + 1;
        }
        exts
    }

    fn agree(exts: &[Extent], c: &CompactIndex) {
        assert_eq!(c.extents(), exts);
        let reference = SortedIndex::new(exts.to_vec());
        for q in probe_blocks(exts) {
            assert_eq!(c.find(q), reference.find(q), "block {q}");
        }
    }

    #[test]
    fn mixed_runs_and_lines_are_exact() {
        let exts = mixed();
        let c = CompactIndex::new(&exts).unwrap();
        assert_eq!(c.form(), CompactForm::Packed);
        let s = c.shape();
        // The runs of 40, 300, 16 and 1000 extents; 5, 15 and 2 are packed.
        assert_eq!((s.runs, s.run_extents), (4, 40 + 300 + 16 + 1000));
        assert_eq!(s.extents, exts.len());
        assert_eq!(s.packed_extents, exts.len() - s.run_extents);
        agree(&exts, &c);
    }

    #[test]
    fn forms_follow_the_cost_benefit_rule() {
        let exts = allocator_like(100, 1);
        let form = |n: usize| CompactIndex::new(&exts[..n]).unwrap().form();
        assert_eq!(form(0), CompactForm::Empty);
        assert_eq!(form(1), CompactForm::One);
        assert_eq!(form(PLAIN_MAX), CompactForm::Plain);
        assert_eq!(form(100), CompactForm::Packed);
        // Past PLAIN_MAX the packed form is taken only where it is the smaller.
        for n in PLAIN_MAX + 1..=100 {
            let c = CompactIndex::new(&exts[..n]).unwrap();
            assert!(
                c.heap_bytes() <= n * std::mem::size_of::<Extent>(),
                "{n} extents"
            );
        }
        assert_eq!(CompactIndex::new(&exts[..1]).unwrap().heap_bytes(), 0);
        // A whole-file run stores no extent at all.
        let r = run(10, 100_000, 3, 2, 77, 3);
        let c = CompactIndex::new(&r).unwrap();
        assert_eq!(c.shape().packed_extents, 0);
        assert!(c.heap_bytes() < 256, "{} bytes", c.heap_bytes());
        agree(&r, &c);
    }

    #[test]
    fn key_widths_follow_the_blocks_spans() {
        // Extents 2^12 blocks apart: a block of 64 spans 2^18 blocks, past u16 offsets. Then
        // 1,000 blocks apart: u16. Both with a partial last block (padding never counted).
        for (gap, width) in [(1u32 << 12, KeyWidth::U32), (1000, KeyWidth::U16)] {
            let exts: Vec<Extent> = allocator_like(1000 + 37, 3)
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e.lblk = i as u32 * gap;
                    e.len = e.len.min(gap - 1);
                    e
                })
                .collect();
            let c = CompactIndex::new(&exts).unwrap();
            assert!(c.shape().lines > 0, "gap {gap}: {:?}", c.shape());
            let Form::Packed(p) = &c.form else {
                panic!("gap {gap}: {:?}", c.form());
            };
            for piece in p.pieces.iter() {
                if let Body::Line(l) = piece.body {
                    assert_eq!(l.kw, width, "gap {gap}");
                }
            }
            agree(&exts, &c);
        }
    }

    #[test]
    fn windows_wider_than_the_count_are_narrowed() {
        // A caller's max_window above WINDOW: lines are fitted with WINDOW, lookups stay exact.
        let exts = allocator_like(20_000, 4);
        let params = FitParams {
            max_window: 4096,
            ..FitParams::default()
        };
        let c = CompactIndex::with_params(&exts, &params).unwrap();
        if let Form::Packed(p) = &c.form {
            for piece in p.pieces.iter() {
                if let Body::Line(l) = piece.body {
                    assert!(l.fixed().window() <= WINDOW as u64, "{:?}", l.fixed());
                }
            }
        }
        agree(&exts, &c);
    }

    #[test]
    fn window_counts_agree_with_the_portable_sum() {
        // Sorted slots (offsets, then padding), every query offset around each of them.
        let mut rng = crate::synth::Rng::new(5);
        for _ in 0..200 {
            let used = rng.below(WINDOW as u64 + 1) as usize;
            let mut offs: Vec<u16> = (0..used).map(|_| rng.below(0xFFFF) as u16).collect();
            offs.sort_unstable();
            offs.resize(WINDOW, u16::MAX);
            let mut w = [0u8; 2 * WINDOW];
            for (c, o) in w.chunks_exact_mut(2).zip(&offs) {
                c.copy_from_slice(&o.to_le_bytes());
            }
            for &o in &offs {
                for qd in [
                    o.saturating_sub(1),
                    o,
                    o.saturating_add(1).min(0xFFFE),
                    0,
                    0xFFFE,
                ] {
                    let want = offs.iter().filter(|&&x| x <= qd).count();
                    assert_eq!(count_u16_portable(&w, qd), want);
                    assert_eq!(count_u16(&w, qd), want, "{offs:?} {qd}");
                }
            }
        }
    }

    #[test]
    fn unpackable_fields_fall_back_to_the_plain_array() {
        let mut exts = allocator_like(100, 2);
        exts[50].pblk = u64::MAX - 5;
        exts[51].pblk = 3;
        let c = CompactIndex::new(&exts).unwrap();
        assert_eq!(c.form(), CompactForm::Plain);
        agree(&exts, &c);
    }

    /// A line moved by `slots` and narrowed to `width`, in its piece and its bucket copies.
    fn skew(c: &mut CompactIndex, slots: i64, width: u8) {
        let Form::Packed(p) = &mut c.form else {
            panic!("not packed");
        };
        let pieces = p.pieces.iter_mut();
        let copies = p.buckets.iter_mut().map(|b| &mut b.piece);
        for piece in pieces.chain(copies) {
            if let Body::Line(l) = &mut piece.body {
                l.lo_intercept += slots << FIXED_INTERCEPT_SHIFT;
                l.width = l.width.min(width);
            }
        }
    }

    #[test]
    fn wrong_lines_miss_and_never_answer_wrong() {
        let exts = mixed();
        let reference = SortedIndex::new(exts.clone());
        let blocks = probe_blocks(&exts);
        for slots in [-70, -40, -33, -9, -1, 1, 5, 31, 40, 70] {
            for width in [0, 3, 31] {
                let mut c = CompactIndex::new(&exts).unwrap();
                skew(&mut c, slots, width);
                let mut missed = 0;
                for &q in &blocks {
                    match c.find(q) {
                        Lookup::Missed => missed += 1,
                        got => assert_eq!(got, reference.find(q), "block {q}, {slots} slots"),
                    }
                }
                // Far enough off, the lines miss (and the runs still answer).
                if slots.abs() >= 40 {
                    assert!(missed > 0, "{slots} slots, width {width}: no miss");
                }
            }
        }
    }

    #[test]
    fn the_lines_of_a_model_rebuild_the_same_index() {
        for exts in [mixed(), allocator_like(5000, 4)] {
            let c = CompactIndex::new(&exts).unwrap();
            let model = c.model().unwrap();
            let s = c.shape();
            assert_eq!(model.extent_count as usize, s.packed_extents);
            assert_eq!(model.segments.len(), s.lines);
            let again = CompactIndex::with_model(&exts, &model).unwrap();
            assert_eq!(again.model(), Some(model));
            assert_eq!(again.heap_bytes(), c.heap_bytes());
            agree(&exts, &again);
        }
        // Forms without lines have no model to keep.
        assert_eq!(CompactIndex::new(&mixed()[..5]).unwrap().model(), None);
    }

    #[test]
    fn a_model_of_another_map_is_refused() {
        let exts = mixed();
        let model = CompactIndex::new(&exts).unwrap().model().unwrap();
        // Another map: a count or a first key differs.
        let mut moved = exts.clone();
        for e in &mut moved {
            e.lblk += 1;
        }
        assert!(CompactIndex::with_model(&moved, &model).is_err());
        assert!(CompactIndex::with_model(&exts[..exts.len() - 1], &model).is_err());
        // A segment spanning a run: the second stretch's segment dropped.
        let second = cut(&exts).iter().filter_map(Cut::stretch).nth(1).unwrap();
        let mut spanning = model.clone();
        spanning
            .segments
            .retain(|s| s.first_key != exts[second.start].lblk);
        assert!(CompactIndex::with_model(&exts, &spanning).is_err());
        // A window the lookup's WINDOW slots cannot cover.
        let mut wide = model.clone();
        wide.segments[0].fixed.e_hi = WINDOW as u32;
        assert!(CompactIndex::with_model(&exts, &wide).is_err());
    }

    /// Forty line pieces of `stretch` allocator-like extents, each followed by a run piece,
    /// crowded at the start of the span, then a run of `tail` extents 64 blocks apart: the
    /// shape of the kernel's random-punched file (punched part, then an unpunched tail).
    fn crowded(stretch: usize, tail: u32) -> Vec<Extent> {
        let mut exts = Vec::new();
        let mut at = 0u32;
        for i in 0..40 {
            let mut s = allocator_like(stretch, i);
            for e in &mut s {
                e.lblk += at;
            }
            at = crate::synth::span(&s) as u32 + 5;
            exts.extend(s);
            exts.extend(run(at, RUN_MIN as u32, 3, 2, 1 << 30, 3));
            at += RUN_MIN as u32 * 3 + 1;
        }
        exts.extend(run(at, tail, 64, 32, 1 << 31, 64));
        exts
    }

    fn directory_of(c: &CompactIndex) -> (usize, usize) {
        let Form::Packed(p) = &c.form else {
            panic!("{:?}", c.form());
        };
        (p.buckets.len(), p.pieces.len())
    }

    #[test]
    fn crowded_pieces_get_more_buckets() {
        // The punched part holds half the span and most pieces: one bucket per piece leaves
        // buckets holding several piece starts, so the directory doubles.
        let exts = crowded(400, 2_000);
        let c = CompactIndex::new(&exts).unwrap();
        let (buckets, pieces) = directory_of(&c);
        assert!(
            buckets > pieces.next_power_of_two(),
            "{buckets} buckets, {pieces} pieces"
        );
        assert!(
            buckets * std::mem::size_of::<Bucket>() <= c.heap_bytes() / 8,
            "{buckets} buckets in {} bytes",
            c.heap_bytes()
        );
        agree(&exts, &c);
    }

    #[test]
    fn buckets_of_many_pieces_stay_exact() {
        // A tail of 2^20 extents stored as one run: the pieces crowd the first 1% of the span,
        // a directory fine enough for them would outweigh the packed bytes, so it does not
        // grow and buckets hold dozens of piece starts (searched in the piece array).
        let exts = crowded(40, 1 << 20);
        let c = CompactIndex::new(&exts).unwrap();
        let (buckets, pieces) = directory_of(&c);
        assert_eq!(buckets, pieces.next_power_of_two());
        agree(&exts, &c);
    }

    #[test]
    fn allocator_maps_pack_to_a_few_bytes_per_extent() {
        let exts = allocator_like(100_000, 9);
        let c = CompactIndex::new(&exts).unwrap();
        agree(&exts, &c);
        // Random 2^40 physical jumps in 20% of the extents are the worst case for the delta
        // column; the kernel allocator's maps pack much tighter (see `reports structures`).
        let per = c.heap_bytes() as f64 / exts.len() as f64;
        assert!(per < 10.0, "{per} bytes per extent");
    }
}
