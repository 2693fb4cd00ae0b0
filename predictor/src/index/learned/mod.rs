//! The learned index: a file's exact extent map addressed by a learned model (lines over the
//! extents between arithmetic runs, behind a directory), in one of two storages
//! ([`Storage`]): bit-packed blocks, a few bytes per extent (the structure `compact`), so the
//! map a kernel cache would hold in 16-byte iext records fits in a fraction of the memory and
//! a lookup touches a handful of cache lines; or each extent's 16 bytes unpacked, a key column
//! of logical starts beside 12-byte records, read without decoding (the structure `learned`).
//!
//! # Forms (the per-file cost-benefit choice)
//! Every file gets the cheapest exact form that suits it ([`LearnedForm`]):
//! - no extents: nothing; one extent: the extent itself, inline, no heap and no model;
//! - up to [`PLAIN_MAX`] extents: a plain array of 16-byte records, the kernel's iext record
//!   size (a few cache lines; a model would cost more bytes than it saves, and a search over 8
//!   records is as fast as any prediction);
//! - more: the **packed** form below, unless the plain array is smaller (a dozen extents or
//!   so) or a field does not pack (a physical delta wider than [`MAX_FIELD_BITS`], which no ext4
//!   map produces).
//!
//! So a file's form never holds more bytes than the kernel's iext tree with 16-byte records
//! for the same map: the tree spends at least 16 bytes per extent (full 256-byte leaves of 15
//! records, inner nodes above them; a root leaf sized to its records), and the form is at
//! most the plain array's 16 (`props::compact_never_holds_more_than_the_kernel_tree`). Only
//! a map with a physical block at or past 2^63, which no iext record can hold either, keeps
//! 24-byte [`Extent`]s.
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
//! The directory is a radix table over logical blocks whose buckets
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
//! In either storage, the answer `j` of a window search must satisfy
//! `start[j] <= q < start[j + 1]` on the stored (exact) starts, or the lookup is a miss, so a
//! wrong model can cost time, never a wrong mapping.

use std::borrow::Cow;

use ext4::{BlockMap, Extent};

use super::{check_extents, resolve, ExtentIndex, Lookup};
use crate::model::{fit, FitParams, FixedLine, Model, ModelError, Segment, FIXED_INTERCEPT_SHIFT};

mod bits;
mod build;
mod layout;
mod line;
mod probe;
mod records;
#[cfg(test)]
mod tests;

use bits::*;
use build::*;
pub use layout::*;
use line::*;
use records::*;

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
pub enum LearnedForm {
    /// No extents.
    Empty,
    /// One extent, stored inline.
    One,
    /// A plain extent array.
    Plain,
    /// Pieces (arithmetic runs and lines) over bit-packed blocks.
    Packed,
    /// Pieces (arithmetic runs and lines) over key columns beside 12-byte records.
    Records,
}

impl LearnedForm {
    /// Every form, in this order.
    pub const ALL: [LearnedForm; 5] = [
        Self::Empty,
        Self::One,
        Self::Plain,
        Self::Packed,
        Self::Records,
    ];

    /// Name in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::One => "one-extent",
            Self::Plain => "plain-array",
            Self::Packed => "packed",
            Self::Records => "records",
        }
    }
}

/// How the line pieces of a file with a model store their extents: what distinguishes the two
/// learned structures, `compact` and `learned` ([`crate::index::Structure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Storage {
    /// Bit-packed blocks, taken only where smaller than a plain array (`compact`).
    #[default]
    Packed,
    /// 16 bytes an extent, the kernel's iext record size, read without decoding: a key column
    /// beside 12-byte records (`learned`).
    Records,
}

/// What a compact index is made of (for the reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LearnedShape {
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
    /// Extents stored as records by line pieces.
    pub record_extents: usize,
}

/// A file's extent map in its compact form (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct LearnedIndex {
    form: Form,
}

#[derive(Debug, Clone, Default)]
enum Form {
    #[default]
    Empty,
    One(Extent),
    Plain(Box<[PlainRec]>),
    /// A plain array of a map whose physical blocks do not fit a [`PlainRec`].
    Wide(Box<[Extent]>),
    /// The pieces, in the storage they name. Inline, not boxed: one dependent load fewer per
    /// lookup. One variant for both storages, so the form's tag lives in the storage's byte
    /// and a file's header stays one cache line (asserted below).
    Pieces(Packed),
}

/// An extent of a plain array in 16 bytes, as the kernel's iext record holds one: logical
/// start, length, and the physical start with the unwritten flag in its top bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct PlainRec {
    lblk: u32,
    len: u32,
    pblk_unwritten: u64,
}

const UNWRITTEN_BIT: u64 = 1 << 63;

impl PlainRec {
    /// `None` for a physical block at or past 2^63.
    fn of(e: &Extent) -> Option<Self> {
        (e.pblk < UNWRITTEN_BIT).then_some(Self {
            lblk: e.lblk,
            len: e.len,
            pblk_unwritten: e.pblk | if e.unwritten { UNWRITTEN_BIT } else { 0 },
        })
    }

    fn extent(self) -> Extent {
        Extent {
            lblk: self.lblk,
            pblk: self.pblk_unwritten & !UNWRITTEN_BIT,
            len: self.len,
            unwritten: self.pblk_unwritten & UNWRITTEN_BIT != 0,
        }
    }
}

/// The plain-array form of `exts`.
fn plain(exts: &[Extent]) -> Form {
    match exts.iter().map(PlainRec::of).collect::<Option<Box<[_]>>>() {
        Some(recs) => Form::Plain(recs),
        None => Form::Wide(exts.into()),
    }
}

/// Bytes of the plain-array form of `exts`.
fn plain_bytes(exts: &[Extent]) -> usize {
    if exts.iter().all(|e| e.pblk < UNWRITTEN_BIT) {
        std::mem::size_of_val(exts) / std::mem::size_of::<Extent>()
            * std::mem::size_of::<PlainRec>()
    } else {
        std::mem::size_of_val(exts)
    }
}

const _: () = assert!(std::mem::size_of::<PlainRec>() == 16);

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
    /// The line and its window.
    win: Window,
    /// Mask of a record's physical excess (after its length excess).
    md: u64,
    /// Byte offset of the piece's first block.
    off: u32,
    /// Mask of a record's length excess (lengths are `u32`, so the excess fits).
    ml: u32,
    /// Bytes of one block: header, 64 keys, 64 records (at most 16 + 64 * 4 + 8 * 113).
    block: u16,
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

/// What a piece holds: a run's arithmetic, or a line over extents kept in the index's storage.
#[derive(Debug, Clone, Copy)]
enum Body {
    Run(Run),
    Line(Stored),
}

/// How a line piece keeps its extents (one storage per index). Nested in [`Body::Line`], not
/// two more variants of [`Body`]: both tags are then values of one byte of a packed line (a
/// niche), each variant one compare away, where a body of three variants is decoded through a
/// ten-instruction chain on every lookup (callgrind: `docs/decisions.md`, "The tail hole").
#[derive(Debug, Clone, Copy)]
enum Stored {
    Packed(Line),
    Records(RecLine),
}

impl Body {
    /// A line piece's line and window, in either storage (`None` for a run).
    fn window(&self) -> Option<Window> {
        match self {
            Body::Line(Stored::Packed(l)) => Some(l.win),
            Body::Line(Stored::Records(r)) => Some(r.win),
            Body::Run(_) => None,
        }
    }
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

#[derive(Debug, Clone)]
struct Packed {
    /// How the line pieces keep their extents: which probe reads them.
    storage: Storage,
    first_key: u32,
    /// The last extent's last block: past it the file is a hole to its end, answered before
    /// any piece is read.
    last_block: u32,
    /// Bits dropped from `q - first_key` to get a bucket.
    shift: u32,
    buckets: Box<[Bucket]>,
    /// Every piece, for the queries past their bucket's piece.
    pieces: Box<[Piece]>,
    /// The line pieces' extents, padded with 8 zero bytes (so every field read of a packed
    /// block is one 8-byte load): packed blocks, or key columns beside records for
    /// [`Storage::Records`].
    bytes: Box<[u8]>,
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

impl LearnedIndex {
    /// The compact form of `exts` (a sorted, non-overlapping map; checked).
    pub fn new(exts: &[Extent]) -> Result<Self, ModelError> {
        Self::with_storage(exts, &FitParams::default(), Storage::Packed)
    }

    /// The form of `exts` whose line pieces store `storage`, with lines fitted with `params`.
    pub fn with_storage(
        exts: &[Extent],
        params: &FitParams,
        storage: Storage,
    ) -> Result<Self, ModelError> {
        Self::build(exts, Lines::Fit(params), storage)
    }

    /// The `learned` structure: lines fitted with the default parameters over unpacked extents
    /// (key columns beside 12-byte records).
    pub fn learned(exts: &[Extent]) -> Result<Self, ModelError> {
        Self::with_storage(exts, &FitParams::default(), Storage::Records)
    }

    /// The compact form of `exts` with the lines of `model` instead of fitted ones: what
    /// [`Self::model`] gave for the same map (a pack stores it). A model that does not
    /// describe the map's line extents is an error; a wrong line in one that does can only
    /// make lookups miss.
    pub fn with_model(
        exts: &[Extent],
        model: &Model,
        storage: Storage,
    ) -> Result<Self, ModelError> {
        Self::build(exts, Lines::Model(model), storage)
    }

    /// The lines a map's line pieces take, fitted with `params`, as one model over its line
    /// extents: what [`Self::model`] gives for the form built with the same `params` (in the
    /// records storage, which keeps every map of more than [`PLAIN_MAX`] extents), without
    /// storing a single extent (training's fit). A map small enough for a plain array has no
    /// lines: an empty model.
    pub fn fit_lines(exts: &[Extent], params: &FitParams) -> Result<Model, ModelError> {
        build::fit_lines(exts, params)
    }

    /// The packed form's lines, as a model over its *line extents* (the extents outside
    /// arithmetic runs, in order; runs are found again from the map): what a pack stores so
    /// [`Self::with_model`] need not fit. The compact form keeps only the fixed-point lines;
    /// each segment's float line is their value. `None` for the forms without lines to keep.
    /// The lines do not depend on the storage: either form's model builds the other.
    pub fn model(&self) -> Option<Model> {
        match &self.form {
            Form::Pieces(p) => Some(p.model()),
            Form::Empty | Form::One(_) | Form::Plain(_) | Form::Wide(_) => None,
        }
    }

    fn build(exts: &[Extent], lines: Lines<'_>, storage: Storage) -> Result<Self, ModelError> {
        check_extents(exts)?;
        if u32::try_from(exts.len()).is_err() {
            return Err(ModelError::TooMany(exts.len()));
        }
        let form = match exts {
            [] => Form::Empty,
            [e] => Form::One(*e),
            _ if exts.len() <= PLAIN_MAX => plain(exts),
            // Packed only where it is smaller than the plain array (from a dozen extents or so:
            // a bucket, a piece and a block header cost some 160 bytes).
            _ => match (Packed::new(exts, lines, storage)?, storage) {
                (Some(p), Storage::Packed) if p.heap_bytes() < plain_bytes(exts) => Form::Pieces(p),
                // Records are never smaller than a plain array: the model is what they add.
                (Some(p), Storage::Records) => Form::Pieces(p),
                _ => plain(exts),
            },
        };
        Ok(Self { form })
    }

    /// Extents in the map.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Empty => 0,
            Form::One(_) => 1,
            Form::Plain(e) => e.len(),
            Form::Wide(e) => e.len(),
            Form::Pieces(_) => self.shape().extents,
        }
    }

    /// Whether the map has no extents.
    pub fn is_empty(&self) -> bool {
        matches!(self.form, Form::Empty)
    }

    /// The widest window of its lines, in extent slots (0 without lines): at most [`WINDOW`].
    pub fn max_window(&self) -> u64 {
        match &self.form {
            Form::Pieces(p) => p.max_window(),
            Form::Empty | Form::One(_) | Form::Plain(_) | Form::Wide(_) => 0,
        }
    }

    /// Line pieces (each one segment of a fitted model).
    pub fn segment_count(&self) -> usize {
        self.shape().lines
    }

    /// How its line pieces store their extents (`None` for the forms without pieces).
    pub fn storage(&self) -> Option<Storage> {
        match &self.form {
            Form::Pieces(p) => Some(p.storage),
            Form::Empty | Form::One(_) | Form::Plain(_) | Form::Wide(_) => None,
        }
    }

    /// Heap bytes of the model alone: the directory and the pieces (lines and runs), without
    /// the stored extents (0 for the forms without a model).
    pub fn model_bytes(&self) -> usize {
        match &self.form {
            Form::Pieces(p) => p.model_bytes(),
            Form::Empty | Form::One(_) | Form::Plain(_) | Form::Wide(_) => 0,
        }
    }

    /// The form this file got.
    pub fn form(&self) -> LearnedForm {
        match &self.form {
            Form::Empty => LearnedForm::Empty,
            Form::One(_) => LearnedForm::One,
            Form::Plain(_) | Form::Wide(_) => LearnedForm::Plain,
            Form::Pieces(p) => match p.storage {
                Storage::Packed => LearnedForm::Packed,
                Storage::Records => LearnedForm::Records,
            },
        }
    }

    /// What it is made of.
    pub fn shape(&self) -> LearnedShape {
        let mut s = LearnedShape::default();
        match &self.form {
            Form::Empty => {}
            Form::One(_) => s.extents = 1,
            Form::Plain(e) => s.extents = e.len(),
            Form::Wide(e) => s.extents = e.len(),
            Form::Pieces(p) => {
                for piece in p.pieces.iter() {
                    match piece.body {
                        Body::Run(r) => {
                            s.runs += 1;
                            s.run_extents += r.count as usize;
                        }
                        Body::Line(Stored::Packed(l)) => {
                            s.lines += 1;
                            s.packed_extents += l.count() as usize;
                        }
                        Body::Line(Stored::Records(r)) => {
                            s.lines += 1;
                            s.record_extents += r.count() as usize;
                        }
                    }
                }
                s.extents = s.packed_extents + s.record_extents + s.run_extents;
            }
        }
        s
    }

    /// Every extent, in order (decoded).
    pub fn extents(&self) -> Vec<Extent> {
        match &self.form {
            Form::Empty => Vec::new(),
            Form::One(e) => vec![*e],
            Form::Plain(e) => e.iter().map(|r| r.extent()).collect(),
            Form::Wide(e) => e.to_vec(),
            Form::Pieces(p) => p.extents(),
        }
    }

    /// Its parts, as the lookup reads them (for another evaluator: a front tier).
    pub fn layout(&self) -> LearnedLayout<'_> {
        match &self.form {
            Form::Empty => LearnedLayout::Empty,
            Form::One(e) => LearnedLayout::Plain(Cow::Borrowed(std::slice::from_ref(e))),
            Form::Plain(e) => LearnedLayout::Plain(e.iter().map(|r| r.extent()).collect()),
            Form::Wide(e) => LearnedLayout::Plain(Cow::Borrowed(e)),
            Form::Pieces(p) => LearnedLayout::Packed(p.layout()),
        }
    }

    /// Cache lines a lookup of `q` reads (the lookup-cost model of [`crate::index::choose`]):
    /// none for the inline forms, a binary search's lines in a plain array, the packed path's
    /// lines otherwise.
    pub fn lines_read(&self, q: u32) -> u32 {
        match &self.form {
            Form::Empty | Form::One(_) => 0,
            Form::Plain(r) => super::search_lines(r.len(), std::mem::size_of::<PlainRec>()),
            Form::Wide(e) => super::search_lines(e.len(), std::mem::size_of::<Extent>()),
            Form::Pieces(p) => p.lines_read(q),
        }
    }

    /// Looks up block `q`.
    #[inline]
    pub fn probe(&self, q: u32) -> Lookup {
        // The pieces first, two tests of the storage's byte (which holds the form's tag too),
        // where a jump over the forms costs five instructions of a lookup's two hundred; each
        // storage to its own probe, so the records lookup is not laid out around the packed
        // decoder.
        match &self.form {
            Form::Pieces(p) => match p.storage {
                Storage::Packed => p.probe(q),
                Storage::Records => p.probe_records(q),
            },
            _ => self.probe_small(q),
        }
    }

    /// [`Self::probe`] for the forms without a model (out of the packed form's way).
    #[inline(never)]
    fn probe_small(&self, q: u32) -> Lookup {
        match &self.form {
            Form::Empty => one_extent(None, q),
            Form::One(e) => one_extent(Some(e), q),
            Form::Plain(recs) => {
                let n = recs.partition_point(|r| r.lblk <= q);
                let at = n
                    .checked_sub(1)
                    .and_then(|j| recs.get(j))
                    .map(|r| r.extent());
                Lookup::Found(resolve(q, at, recs.get(n).map(|r| r.lblk)))
            }
            Form::Wide(exts) => {
                let n = exts.partition_point(|e| e.lblk <= q);
                let at = n.checked_sub(1).and_then(|j| exts.get(j)).copied();
                Lookup::Found(resolve(q, at, exts.get(n).map(|e| e.lblk)))
            }
            Form::Pieces(p) => p.probe(q),
        }
    }
}

/// The lookup of a map of at most one extent (the compact index's smallest forms, and what
/// the per-file choice keeps inline).
#[inline]
pub fn one_extent(e: Option<&Extent>, q: u32) -> Lookup {
    match e {
        None => Lookup::Found(BlockMap::Hole { next: None }),
        Some(e) if q < e.lblk => Lookup::Found(BlockMap::Hole { next: Some(e.lblk) }),
        Some(e) => Lookup::Found(resolve(q, Some(*e), None)),
    }
}

impl ExtentIndex for LearnedIndex {
    fn find(&self, lblk: u32) -> Lookup {
        self.probe(lblk)
    }

    fn heap_bytes(&self) -> usize {
        match &self.form {
            Form::Empty | Form::One(_) => 0,
            Form::Plain(e) => std::mem::size_of_val::<[PlainRec]>(e),
            Form::Wide(e) => std::mem::size_of_val::<[Extent]>(e),
            Form::Pieces(p) => p.heap_bytes(),
        }
    }
}

impl Packed {
    /// Heap bytes: the directory, the pieces and the stored extents.
    fn heap_bytes(&self) -> usize {
        self.model_bytes() + self.bytes.len()
    }

    /// Heap bytes of the directory and the pieces.
    fn model_bytes(&self) -> usize {
        std::mem::size_of_val::<[Bucket]>(&self.buckets)
            + std::mem::size_of_val::<[Piece]>(&self.pieces)
    }
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);
const _: () = assert!(std::mem::size_of::<LearnedIndex>() == 64);
const _: () = assert!(std::mem::size_of::<Line>() == 48);
const _: () = assert!(std::mem::size_of::<Body>() == 48);
