//! The compact index as another evaluator (a front tier) reads it: pieces, directory and
//! bytes, with each line piece's geometry.

use super::*;

/// A compact index as another evaluator of it (a front tier) reads it: the lookup's own
/// pieces, directory and bytes ([`LearnedIndex::layout`]).
#[derive(Debug, Clone)]
pub enum LearnedLayout<'a> {
    /// No extents.
    Empty,
    /// A plain extent array (the one-extent and plain-array forms), searched whole.
    Plain(Cow<'a, [Extent]>),
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
    /// The line pieces' extents, ending with 8 zero bytes: packed blocks, or key columns and
    /// records (as [`RecordsLayout`] says) for [`Storage::Records`].
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
    /// Extents as a key column beside 12-byte records, addressed by a fitted line.
    Records(RecordsLayout),
}

/// A records piece: `count` extents as a key column beside 12-byte records, 16 bytes an extent.
/// The key column (from byte `keys`) holds the logical starts (`u32`), so that a window's keys
/// are contiguous (a window never crosses a piece); the records (from byte `recs`, right after
/// the column) hold, per extent in the same order, the length (`u32`) and the physical start
/// with the unwritten flag in its top bit (`u64`). Little-endian, no padding: a record's `u64`
/// is 4-byte aligned at best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsLayout {
    /// As [`LineLayout::line`].
    pub line: FixedLine,
    /// Extents.
    pub count: u32,
    /// Byte offset of the key column: key `j` at `keys + 4 * j`.
    pub keys: u32,
    /// Byte offset of the records: record `j` at `recs + KEYED_RECORD_BYTES * j`.
    pub recs: u32,
}

/// Bytes of a plain array's record (the one-extent and plain-array forms in a front tier): the
/// logical start (u32), the length (u32) and the physical start with the unwritten flag in its
/// top bit (u64), little-endian: the kernel's iext record size.
pub const RECORD_BYTES: usize = 16;

/// Bytes of a record of [`RecordsLayout`] (its key is in the key column): length (u32), then the
/// physical start with the unwritten flag in its top bit (u64).
pub const KEYED_RECORD_BYTES: usize = 12;

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

impl Packed {
    pub(super) fn layout(&self) -> PackedLayout<'_> {
        let piece = |p: &Piece| PieceLayout {
            first_key: p.first_key,
            end_key: p.end(),
            body: match p.body {
                Body::Run(r) => PieceBody::Run(r),
                Body::Line(Stored::Packed(l)) => PieceBody::Line(LineLayout {
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
                Body::Line(Stored::Records(r)) => PieceBody::Records(RecordsLayout {
                    line: r.win.fixed(),
                    count: r.count(),
                    keys: r.keys(),
                    recs: r.recs(),
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
}
