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
//!   most [`crate::model::DEFAULT_MAX_WINDOW`] slots) over the other extents, with the piece's
//!   extents stored bit-packed right behind it.
//!
//! A line piece stores its extents in blocks of [`BLOCK`], frame-of-reference packed: each
//! block has a 16-byte header (first logical block, smallest length, smallest physical field)
//! followed by two columns, the logical starts as offsets from the first (all a window search
//! reads: one or two cache lines) and, per extent, its length and physical field above the
//! block's smallest and its unwritten flag (read once, for the answer). The bit widths are the
//! piece's (the widest of its blocks), so every block of a piece has the same size and block
//! `k` is found by arithmetic, not through an offset table. The physical field is `pblk - lblk`
//! (near-constant while the allocator keeps logically adjacent blocks physically adjacent: a
//! punched or appended file) or `pblk` itself (dense placement of scattered writes, a sparse
//! disk image), whichever packs the piece tighter.
//!
//! The directory is a radix table over logical blocks (as in [`super::radix`]) whose buckets
//! hold a copy of the piece covering the bucket's first block, so the usual lookup reads one
//! bucket, one block header with its keys, and one record: three or four dependent cache
//! misses when cold, where the iext tree pays one per level.
//!
//! # Cost, measured (`reports structures`)
//! On kernel-allocator maps of 10^3 to 10^6 extents: 2.4 to 6 bytes per extent against iext's
//! 18.2 with 16-byte records; cold lookups faster than iext's from 10^4 extents; warm ones
//! faster from about 10^5. Below that the iext tree is two or three nodes in L1 and the decode
//! work here (directory, line, bit-packed keys, record) costs more than its scans: a lookup is
//! some 12 ns of fixed work plus about 8 ns of window walk.
//!
//! # Verification
//! As in [`super::LearnedIndex`]: the answer `j` of a window search must satisfy
//! `start[j] <= q < start[j + 1]` on the stored (exact) starts, or the lookup is a miss, so a
//! wrong model can cost time, never a wrong mapping.

use ext4::{BlockMap, Extent};

use super::{check_extents, resolve, ExtentIndex, Lookup};
use crate::model::{clamp_window, fit, FitParams, FixedLine, ModelError, FIXED_INTERCEPT_SHIFT};

/// Extents per packed block (one header each).
pub const BLOCK: usize = 64;
/// Files with at most this many extents keep a plain array.
pub const PLAIN_MAX: usize = 8;
/// Shortest arithmetic run stored as a run: shorter ones cost less packed than as a piece.
pub const RUN_MIN: usize = 16;
/// Widest packed field: one unaligned 8-byte read at any bit offset yields 57 bits.
pub const MAX_FIELD_BITS: u32 = 56;
/// Directory buckets per piece (rounded up to a power of two), as in the radix table. Each
/// bucket copies a piece (72 bytes); 2 and 8 per piece measured no faster on kernel maps.
const BUCKETS_PER_PIECE: usize = 1;
/// Bytes of a block header: first key (u32), smallest length (u32), smallest physical field
/// (u64, two's complement).
const HEAD: usize = 16;
/// The `end_key` of the last piece: no extent starts at 2^32 - 1 (extents end by 2^32 - 1).
const NO_KEY: u32 = u32::MAX;

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
#[derive(Debug, Clone, Copy)]
struct Run {
    step: u32,
    len: u32,
    pblk: u64,
    pstep: u64,
    count: u32,
    unwritten: bool,
}

/// A line piece's packed extents: `count` of them in blocks of [`BLOCK`] from byte `off`.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// Predicts the piece-local index of the last extent starting at or before `q`.
    line: FixedLine,
    count: u32,
    off: u32,
    /// Bytes of one block: header, 64 keys, 64 records (derived from the widths, kept so a
    /// lookup does not recompute it).
    block: u32,
    /// Byte offset of the record column within a block.
    recs: u16,
    /// Bits of a key offset, a length excess, a delta excess, and a whole record.
    wk: u8,
    wl: u8,
    wd: u8,
    wr: u8,
    /// The unwritten flag: 0 none are, 1 all are, 2 one bit per record.
    unw: u8,
    /// What the physical field is stored against.
    phys: Phys,
}

impl Line {
    fn new(
        line: FixedLine,
        count: u32,
        off: u32,
        [wk, wl, wd]: [u8; 3],
        unw: u8,
        phys: Phys,
    ) -> Self {
        let wr = wl + wd + u8::from(unw == 2);
        let recs = HEAD + BLOCK / 8 * usize::from(wk);
        Self {
            line,
            count,
            off,
            // At most 16 + 8 * (56 * 3 + 1) bytes: fits both.
            block: (recs + BLOCK / 8 * usize::from(wr)) as u32,
            recs: recs as u16,
            wk,
            wl,
            wd,
            wr,
            unw,
            phys,
        }
    }

    /// Byte offset of the block holding piece-local extent `j`.
    #[inline(always)]
    fn block_at(&self, j: usize) -> usize {
        self.off as usize + j / BLOCK * self.block as usize
    }

    /// The logical start of piece-local extent `j`.
    #[inline(always)]
    fn key(&self, bytes: &[u8], j: usize) -> u32 {
        let at = self.block_at(j);
        let key0 = word(bytes, at) as u32;
        // A real start: key0 plus an offset below 2^32 - key0.
        key0.wrapping_add(self.offset(bytes, at, j % BLOCK) as u32)
    }

    /// Key offset `r` (from the block's first key) of the block at byte `at`.
    #[inline(always)]
    fn offset(&self, bytes: &[u8], at: usize, r: usize) -> u64 {
        field(bytes, (at + HEAD) * 8 + r * usize::from(self.wk), self.wk)
    }

    /// The extent of the last window key at or below `q` (`d = q - first_key`) and the start
    /// of the extent after it within the piece (`None` past the piece's last extent); `None`
    /// if no window key is at or below `q` (a wrong model).
    ///
    /// The window (at most a few dozen slots) spans at most two blocks: one header read picks
    /// the block, then a walk from the predicted slot runs over that block's key offsets.
    #[inline(always)]
    fn find(&self, bytes: &[u8], q: u32, d: u32) -> Option<(Extent, Option<u32>)> {
        let p = self.line.predict(d);
        let last = i64::from(self.count) - 1;
        let (lo, hi) = clamp_window(p, self.line.e_lo, self.line.e_hi, 0, last);
        // OK to narrow: clamped to 0..count.
        let (mut lo, mut hi) = (lo as usize, hi as usize);
        let mut at = self.block_at(lo);
        if hi / BLOCK != lo / BLOCK {
            // Blocks are consecutive; the window's second block starts at a multiple of 64.
            let next_at = self.block_at(hi);
            if word(bytes, next_at) as u32 <= q {
                (lo, at) = (hi / BLOCK * BLOCK, next_at);
            }
        }
        hi = hi.min(lo / BLOCK * BLOCK + BLOCK - 1);
        // Header: key0 and len0 in one word, then d0.
        let head = word(bytes, at);
        let key0 = head as u32;
        let qd = u64::from(q.checked_sub(key0)?);
        let off = |j: usize| self.offset(bytes, at, j % BLOCK);
        // Walk from the prediction: it is usually a few slots off, and a walk costs one
        // unpredictable branch (which way) where a binary search over the window costs one per
        // step (measured: byte-aligned keys counted with vector instructions, as the learned
        // index does, were no faster and cost a byte or two per extent more). Both loops stay
        // inside the window.
        let mut j = p.clamp(lo as i64, hi as i64) as usize;
        if off(j) <= qd {
            while j < hi && off(j + 1) <= qd {
                j += 1;
            }
        } else {
            while j > lo && off(j) > qd {
                j -= 1;
            }
        }
        // Keys are sorted: start[j] <= q unless every window key is above q; the caller checks
        // q < start[j + 1] with the `next` returned.
        let k = off(j);
        if k > qd {
            return None;
        }
        let next = if j + 1 >= self.count as usize {
            None
        } else if (j + 1) % BLOCK != 0 {
            Some(key0.wrapping_add(off(j + 1) as u32))
        } else {
            Some(self.key(bytes, j + 1))
        };
        let e = self.record(bytes, at, head, j, key0.wrapping_add(k as u32));
        Some((e, next))
    }

    /// Piece-local extent `j`, in the block at byte `at` whose first header word is `head`,
    /// starting at `key`.
    #[inline(always)]
    fn record(&self, bytes: &[u8], at: usize, head: u64, j: usize, key: u32) -> Extent {
        let len0 = (head >> 32) as u32;
        let d0 = word(bytes, at + 8);
        let bit = (at + usize::from(self.recs)) * 8 + j % BLOCK * usize::from(self.wr);
        let len = len0.wrapping_add(field(bytes, bit, self.wl) as u32);
        let d = d0.wrapping_add(field(bytes, bit + usize::from(self.wl), self.wd));
        let unwritten = match self.unw {
            0 => false,
            1 => true,
            _ => field(bytes, bit + usize::from(self.wl) + usize::from(self.wd), 1) != 0,
        };
        Extent {
            lblk: key,
            pblk: match self.phys {
                Phys::FromLogical => u64::from(key).wrapping_add(d),
                Phys::Absolute => d,
            },
            len,
            unwritten,
        }
    }

    /// Piece-local extent `j` (for decoding the whole map).
    fn extent(&self, bytes: &[u8], j: usize) -> Extent {
        let at = self.block_at(j);
        self.record(bytes, at, word(bytes, at), j, self.key(bytes, j))
    }
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
    /// Logical start of the next piece's first extent ([`NO_KEY`] for the last piece): the
    /// piece answers `first_key <= q < end_key`.
    end_key: u32,
    body: Body,
}

impl Piece {
    fn end(&self) -> Option<u32> {
        Some(self.end_key).filter(|&k| k != NO_KEY)
    }
}

/// A directory bucket: the piece holding the bucket's first block, copied, and its index.
#[derive(Debug, Clone, Copy)]
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

/// Reads the `w`-bit field (`w <= MAX_FIELD_BITS`) at bit `bit`.
#[inline(always)]
fn field(bytes: &[u8], bit: usize, w: u8) -> u64 {
    // w <= 56, so the shift is in range; w == 0 masks everything.
    (word(bytes, bit / 8) >> (bit % 8)) & ((1u64 << w) - 1)
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
            _ => match Packed::new(exts, params)? {
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
                            s.packed_extents += l.count as usize;
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

    /// Looks up block `q`.
    #[inline]
    pub fn probe(&self, q: u32) -> Lookup {
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

    /// `None` when a field does not pack (the caller keeps a plain array).
    fn new(exts: &[Extent], params: &FitParams) -> Result<Option<Self>, ModelError> {
        // Pieces: runs of RUN_MIN or more, and lines over the stretches between them.
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        let mut stretch_start = 0usize;
        let mut i = 0usize;
        while let Some(rest) = exts.get(i..).filter(|r| !r.is_empty()) {
            let len = run_len(rest);
            let (Some(a), Some(b)) = (rest.first(), rest.get(1)) else {
                break;
            };
            if len < RUN_MIN {
                i += 1;
                continue;
            }
            let stretch = exts.get(stretch_start..i).unwrap_or(&[]);
            if !line_pieces(stretch, params, &mut pieces, &mut bytes)? {
                return Ok(None);
            }
            pieces.push(Piece {
                first_key: a.lblk,
                end_key: NO_KEY,
                body: Body::Run(Run {
                    step: b.lblk - a.lblk,
                    len: a.len,
                    pblk: a.pblk,
                    pstep: b.pblk.wrapping_sub(a.pblk),
                    // Fewer than 2^32 extents in all (checked by the caller).
                    count: len as u32,
                    unwritten: a.unwritten,
                }),
            });
            i += len;
            stretch_start = i;
        }
        let stretch = exts.get(stretch_start..).unwrap_or(&[]);
        if !line_pieces(stretch, params, &mut pieces, &mut bytes)? {
            return Ok(None);
        }
        for k in 1..pieces.len() {
            pieces[k - 1].end_key = pieces[k].first_key;
        }
        bytes.extend_from_slice(&[0; 8]);
        let first_key = exts.first().map_or(0, |e| e.lblk);
        let last_key = exts.last().map_or(0, |e| e.lblk);
        let (shift, buckets) = directory(&pieces, first_key, last_key);
        Ok(Some(Self {
            first_key,
            shift,
            buckets,
            pieces: pieces.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        }))
    }

    /// The piece holding `q` (`q >= first_key`).
    #[inline(always)]
    fn piece(&self, q: u32) -> Option<&Piece> {
        let last = self.buckets.len().checked_sub(1)?;
        let b = ((u64::from(q - self.first_key) >> self.shift) as usize).min(last);
        let bucket = self.buckets.get(b)?;
        // (Block 2^32 - 1 is past every piece's start, so the last piece holds it.)
        if q < bucket.piece.end_key || bucket.piece.end_key == NO_KEY {
            return Some(&bucket.piece);
        }
        // q is past the bucket's first piece: one of those starting inside the bucket.
        let from = bucket.index as usize + 1;
        let to = self
            .buckets
            .get(b + 1)
            .map_or(self.pieces.len(), |n| n.index as usize + 1);
        let rest = self.pieces.get(from..to)?;
        let k = rest.partition_point(|p| p.first_key <= q).checked_sub(1)?;
        rest.get(k)
    }

    #[inline]
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
        match piece.body {
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
            Body::Line(l) => match l.find(&self.bytes, q, d) {
                Some((e, next)) => {
                    let next = next.or_else(|| piece.end());
                    // Verify on the stored starts: start[j] <= q < start[j + 1].
                    if next.is_some_and(|n| n <= q) {
                        return Lookup::Missed;
                    }
                    Lookup::Found(resolve(q, Some(e), next))
                }
                None => Lookup::Missed,
            },
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
                    out.extend((0..l.count as usize).map(|j| l.extent(&self.bytes, j)))
                }
            }
        }
        out
    }
}

/// Fits lines over `stretch` (extents between runs) and appends one line piece per segment,
/// with its packed blocks in `bytes`. `false` if a field does not pack.
fn line_pieces(
    stretch: &[Extent],
    params: &FitParams,
    pieces: &mut Vec<Piece>,
    bytes: &mut Vec<u8>,
) -> Result<bool, ModelError> {
    if stretch.is_empty() {
        return Ok(true);
    }
    let keys: Vec<u32> = stretch.iter().map(|e| e.lblk).collect();
    let (model, _) = fit(&keys, params)?;
    let n = model.extent_count;
    for (s, seg) in model.segments.iter().enumerate() {
        let end = model.segments.get(s + 1).map_or(n, |t| t.first_idx);
        let Some(exts) = stretch.get(seg.first_idx as usize..end as usize) else {
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
            end_key: NO_KEY,
            body: Body::Line(packed),
        });
    }
    Ok(true)
}

/// Packs `exts` (one line piece) into blocks appended to `bytes`; `None` if a field is wider
/// than [`MAX_FIELD_BITS`] or the bytes pass 4 GiB (offsets are `u32`).
fn pack_line(exts: &[Extent], line: FixedLine, bytes: &mut Vec<u8>) -> Option<Line> {
    // The piece's widths: the widest of its blocks, for each way of storing the physical
    // field; the narrower one is used.
    let (mut wk, mut wl, mut wd) = (0u32, 0u32, [0u32; 2]);
    let modes = [Phys::FromLogical, Phys::Absolute];
    for chunk in exts.chunks(BLOCK) {
        let (first, last) = (chunk.first()?, chunk.last()?);
        let (l0, l1) = (
            chunk.iter().map(|e| e.len).min()?,
            chunk.iter().map(|e| e.len).max()?,
        );
        wk = wk.max(bits_for(u128::from(last.lblk - first.lblk)));
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
    if wk.max(wl).max(wd) > MAX_FIELD_BITS {
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
        [wk as u8, wl as u8, wd as u8],
        unw,
        phys,
    );
    let (kw, rw) = (usize::from(l.wk), usize::from(l.wr));
    for chunk in exts.chunks(BLOCK) {
        let at = bytes.len();
        let first = chunk.first()?;
        let len0 = chunk.iter().map(|e| e.len).min()?;
        let d0 = chunk.iter().map(|e| phys.of(e)).min()?;
        // A full block's size even for the last one (the last block of the last piece could
        // be trimmed; the 8-byte padding keeps reads in bounds either way), plus write slack.
        bytes.resize(at + l.block as usize + 8, 0);
        bytes[at..at + 4].copy_from_slice(&first.lblk.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&len0.to_le_bytes());
        // Two's complement: pblk = (lblk +) d0 + excess, wrapping, is exact.
        bytes[at + 8..at + 16].copy_from_slice(&(d0 as u64).to_le_bytes());
        let keys = (at + HEAD) * 8;
        let recs = (at + usize::from(l.recs)) * 8;
        for (r, e) in chunk.iter().enumerate() {
            put(bytes, keys + r * kw, u64::from(e.lblk - first.lblk));
            let bit = recs + r * rw;
            put(bytes, bit, u64::from(e.len - len0));
            put(
                bytes,
                bit + usize::from(l.wl),
                u64::try_from(phys.of(e) - d0).ok()?,
            );
            if l.unw == 2 {
                put(
                    bytes,
                    bit + usize::from(l.wl) + usize::from(l.wd),
                    u64::from(e.unwritten),
                );
            }
        }
        bytes.truncate(at + l.block as usize);
    }
    Some(l)
}

/// The directory: a shift and, per bucket, the piece holding the bucket's first block.
fn directory(pieces: &[Piece], first_key: u32, last_key: u32) -> (u32, Box<[Bucket]>) {
    let nb = (pieces.len() * BUCKETS_PER_PIECE).next_power_of_two();
    let span = u64::from(last_key - first_key);
    let span_bits = 64 - span.leading_zeros();
    let shift = span_bits.saturating_sub(nb.trailing_zeros());
    let buckets = (0..nb)
        .filter_map(|b| {
            let start = u64::from(first_key) + ((b as u64) << shift);
            let n = pieces.partition_point(|p| u64::from(p.first_key) <= start);
            let index = n.saturating_sub(1);
            Some(Bucket {
                piece: *pieces.get(index)?,
                index: index as u32,
            })
        })
        .collect();
    (shift, buckets)
}

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
    fn unpackable_fields_fall_back_to_the_plain_array() {
        let mut exts = allocator_like(100, 2);
        exts[50].pblk = u64::MAX - 5;
        exts[51].pblk = 3;
        let c = CompactIndex::new(&exts).unwrap();
        assert_eq!(c.form(), CompactForm::Plain);
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
