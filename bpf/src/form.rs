//! One file's form as the program's maps hold it: the file to load ([`BpfFile`]), why one is
//! left out ([`Skip`]), its header ([`Entry`]) and the arrays whose slots the header names
//! ([`Array`]), and the writes that put a form into those slots. What the loader (`tier`) and
//! the replacement path (`update`) both write, in one place.

use predictor::{LearnedIndex, LearnedLayout, PieceBody};

use crate::abi;
use crate::mmap::MmapArray;

/// One file to load: its inode (the key the program looks up), size, block size and the
/// index the userspace predictor uses for it.
#[derive(Debug, Clone, Copy)]
pub struct BpfFile<'a> {
    /// Inode number (FUSE node id).
    pub ino: u64,
    /// i_size in bytes.
    pub size: u64,
    /// Filesystem block size.
    pub block_size: u32,
    /// The file's extents and model.
    pub index: BpfIndex<'a>,
}

/// Which of the program's two layouts a file is loaded in.
#[derive(Debug, Clone, Copy)]
pub enum BpfIndex<'a> {
    /// The learned index: FILES, SEGS, RADIX and 16-byte EXTENTS.
    Learned(&'a LearnedIndex),
    /// The compact index: CFILES, PIECES, CBUCKETS and its packed bytes in WORDS.
    Compact(&'a LearnedIndex),
}

impl<'a> BpfIndex<'a> {
    /// Extents in the file's map.
    pub fn extent_count(&self) -> usize {
        match self {
            Self::Learned(ix) => ix.len(),
            Self::Compact(c) => c.shape().extents,
        }
    }

    /// The file's extents, in order (the learned index's read in place; the compact index's
    /// decoded).
    pub fn extents(self) -> Box<dyn Iterator<Item = ext4::Extent> + 'a> {
        match self {
            Self::Learned(ix) => Box::new(ix.extents()),
            Self::Compact(c) => Box::new(c.extents().into_iter()),
        }
    }
}

/// Why a file was not loaded into the program's maps (its queries then fall back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// The model's largest window is over the program's bound.
    #[error(
        "window of {window} extents is over the program's bound of {}",
        abi::MAX_WINDOW
    )]
    Window {
        /// The model's largest window.
        window: u64,
    },
    /// No extents: nothing to model.
    #[error("no extents")]
    NoExtents,
    /// A block size the program does not take (a power of two from 1 KiB to 64 KiB).
    #[error("block size {0}")]
    BlockSize(u32),
    /// An extent whose byte address does not fit 64 bits (a corrupt image).
    #[error("extent {index}: physical byte address overflows 64 bits")]
    Address {
        /// Index of the extent.
        index: usize,
    },
    /// The maps are full (see [`crate::Limits`]).
    #[error("maps full ({0} extents at most)")]
    Full(u32),
    /// A replacement found no room for the new form in this map (see [`crate::Spare`]).
    #[error("no room in {0} for the new form (Limits::spare)")]
    NoRoom(&'static str),
    /// A replacement's form is in a layout the program was loaded without (this hash map's).
    #[error("the program was loaded without the {0} layout (Limits::spare keeps no room)")]
    Layout(&'static str),
}

/// The arrays a file's form takes slots in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Array {
    Extents,
    Segs,
    Radix,
    Pieces,
    CBuckets,
    Words,
}

impl Array {
    pub(crate) const ALL: [Array; 6] = [
        Array::Extents,
        Array::Segs,
        Array::Radix,
        Array::Pieces,
        Array::CBuckets,
        Array::Words,
    ];

    /// The map's name in the object.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Extents => "EXTENTS",
            Self::Segs => "SEGS",
            Self::Radix => "RADIX",
            Self::Pieces => "PIECES",
            Self::CBuckets => "CBUCKETS",
            Self::Words => "WORDS",
        }
    }

    /// Bytes of one element.
    pub(crate) fn element_bytes(self) -> u64 {
        let size = match self {
            Self::Extents => std::mem::size_of::<abi::Extent>(),
            Self::Segs => std::mem::size_of::<abi::Seg>(),
            Self::Radix => std::mem::size_of::<abi::Bucket>(),
            Self::Pieces => std::mem::size_of::<abi::Piece>(),
            Self::CBuckets => std::mem::size_of::<abi::CBucket>(),
            Self::Words => 8,
        };
        size as u64
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl Entry {
    /// The slots the form takes: (array, first, count), three per layout (empty ones too).
    pub(crate) fn ranges(&self) -> [(Array, u32, u32); 3] {
        match self {
            Entry::Learned(f) => [
                (Array::Extents, f.ext_first, f.ext_count),
                (Array::Segs, f.seg_first, f.seg_count),
                (Array::Radix, f.radix_first, f.radix_buckets),
            ],
            Entry::Compact(c) => [
                (Array::Words, c.word_first, c.words),
                (Array::Pieces, c.piece_first, c.pieces),
                (Array::CBuckets, c.bucket_first, c.buckets),
            ],
        }
    }

    /// Sets where the form's range in `array` starts.
    pub(crate) fn set_first(&mut self, array: Array, first: u32) {
        match (self, array) {
            (Entry::Learned(f), Array::Extents) => f.ext_first = first,
            (Entry::Learned(f), Array::Segs) => f.seg_first = first,
            (Entry::Learned(f), Array::Radix) => f.radix_first = first,
            (Entry::Compact(c), Array::Words) => c.word_first = first,
            (Entry::Compact(c), Array::Pieces) => c.piece_first = first,
            (Entry::Compact(c), Array::CBuckets) => c.bucket_first = first,
            _ => {}
        }
    }
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Learned(abi::File),
    Compact(abi::CFile),
}

/// The entry of `f`'s form, with every range starting at slot 0 ([`Space::place`] puts them).
pub(crate) fn entry_of(f: &BpfFile<'_>, blkbits: u32) -> Result<Entry, Skip> {
    let count = |n: usize, array: Array| u32::try_from(n).map_err(|_| Skip::NoRoom(array.name()));
    match f.index {
        BpfIndex::Learned(ix) => {
            let (radix_base, radix_shift, counts) = ix.radix();
            Ok(Entry::Learned(abi::File {
                size: f.size,
                ext_first: 0,
                ext_count: count(ix.len(), Array::Extents)?,
                seg_first: 0,
                seg_count: count(ix.segment_count(), Array::Segs)?,
                blkbits,
                radix_shift,
                radix_first: 0,
                radix_buckets: count(counts.len().saturating_sub(1), Array::Radix)?,
                radix_base,
                first_key: ix.extents().next().map_or(0, |e| e.lblk),
            }))
        }
        BpfIndex::Compact(c) => {
            let mut entry = abi::CFile {
                size: f.size,
                blkbits,
                ..abi::CFile::default()
            };
            let bytes = match c.layout() {
                // check_file refused empty maps.
                LearnedLayout::Empty => 0,
                LearnedLayout::Plain(e) => {
                    entry.form = abi::FORM_PLAIN;
                    entry.count = count(e.len(), Array::Words)?;
                    e.len() * std::mem::size_of::<abi::Extent>()
                }
                LearnedLayout::Packed(p) => {
                    entry.form = abi::FORM_PACKED;
                    entry.first_key = p.first_key;
                    entry.shift = p.shift;
                    entry.buckets = count(p.buckets.len(), Array::CBuckets)?;
                    entry.pieces = count(p.pieces.len(), Array::Pieces)?;
                    p.bytes.len()
                }
            };
            entry.words = count(bytes.div_ceil(8), Array::Words)?;
            Ok(Entry::Compact(entry))
        }
    }
}

/// The file's log2 block size if the program can take it.
pub(crate) fn check_file(f: &BpfFile<'_>) -> Result<u32, Skip> {
    if !f.block_size.is_power_of_two() || !(1024..=65536).contains(&f.block_size) {
        return Err(Skip::BlockSize(f.block_size));
    }
    let bits = f.block_size.trailing_zeros();
    if f.index.extent_count() == 0 {
        return Err(Skip::NoExtents);
    }
    if let BpfIndex::Learned(ix) = f.index {
        let window = ix.max_window();
        if window > abi::MAX_WINDOW {
            return Err(Skip::Window { window });
        }
    }
    for (index, e) in f.index.extents().enumerate() {
        // The program computes (pblk << bits) + offset and (lblk + len) << bits unchecked.
        let fits = e
            .pblk
            .checked_add(u64::from(e.len))
            .filter(|&end| end < abi::UNWRITTEN)
            .and_then(|end| end.checked_mul(u64::from(f.block_size)))
            .is_some();
        if !fits {
            return Err(Skip::Address { index });
        }
    }
    Ok(bits)
}

/// Writes a learned form into the slots its entry names.
pub(crate) fn fill_learned(
    entry: &abi::File,
    ix: &LearnedIndex,
    exts: &MmapArray<abi::Extent>,
    radix: &MmapArray<abi::Bucket>,
    segs: &MmapArray<abi::Seg>,
) {
    let (e0, s0) = (entry.ext_first as usize, entry.seg_first as usize);
    for (i, e) in ix.extents().enumerate() {
        exts.set(e0 + i, extent(&e));
    }
    let (_, _, counts) = ix.radix();
    for (i, w) in counts.windows(2).enumerate() {
        let b = abi::Bucket { lo: w[0], hi: w[1] };
        radix.set(entry.radix_first as usize + i, b);
    }
    for (i, s) in ix.segments().enumerate() {
        segs.set(
            s0 + i,
            abi::Seg {
                first_key: s.first_key,
                first: s.first,
                last: s.last,
                e_lo: s.line.e_lo,
                e_hi: s.line.e_hi,
                pad: 0,
                slope: s.line.slope,
                intercept: s.line.intercept,
            },
        );
    }
}

/// An EXTENTS record (also the plain compact form's record in WORDS).
fn extent(e: &ext4::Extent) -> abi::Extent {
    let flag = if e.unwritten { abi::UNWRITTEN } else { 0 };
    abi::Extent {
        lblk: e.lblk,
        len: e.len,
        pblk: e.pblk | flag,
    }
}

/// Writes a compact form into the slots its entry names.
pub(crate) fn fill_compact(
    entry: &abi::CFile,
    c: &LearnedIndex,
    pieces: &MmapArray<abi::Piece>,
    cbuckets: &MmapArray<abi::CBucket>,
    words: &MmapArray<u64>,
) {
    let w0 = entry.word_first as usize;
    match c.layout() {
        LearnedLayout::Empty => {}
        LearnedLayout::Plain(exts) => {
            for (i, e) in exts.iter().enumerate() {
                let r = extent(e);
                words.set(w0 + 2 * i, u64::from(r.lblk) | (u64::from(r.len) << 32));
                words.set(w0 + 2 * i + 1, r.pblk);
            }
        }
        LearnedLayout::Packed(p) => {
            for (i, chunk) in p.bytes.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                words.set(w0 + i, u64::from_le_bytes(w));
            }
            for (i, &piece) in p.buckets.iter().enumerate() {
                let b = abi::CBucket { piece, pad: 0 };
                cbuckets.set(entry.bucket_first as usize + i, b);
            }
            for (i, piece) in p.pieces.iter().enumerate() {
                let mut out = abi::Piece {
                    first_key: piece.first_key,
                    end_key: piece.end_key.unwrap_or(abi::NO_KEY),
                    ..abi::Piece::default()
                };
                match piece.body {
                    PieceBody::Run(r) => {
                        out.kind = abi::PIECE_RUN;
                        out.count = r.count;
                        out.step = r.step;
                        out.len = r.len;
                        out.pblk = r.pblk;
                        out.pstep = r.pstep;
                        out.unw = u8::from(r.unwritten);
                    }
                    PieceBody::Line(l) => {
                        out.kind = abi::PIECE_LINE;
                        out.count = l.count;
                        out.slope = l.line.slope;
                        out.intercept = l.line.intercept;
                        out.e_lo = l.line.e_lo;
                        out.e_hi = l.line.e_hi;
                        out.off = l.off;
                        out.block = l.block;
                        out.recs = l.recs;
                        out.key_bytes = l.key_bytes;
                        out.wl = l.wl;
                        out.wd = l.wd;
                        out.wr = l.wr;
                        out.unw = l.unw;
                        out.phys = u8::from(l.phys_absolute);
                    }
                }
                pieces.set(entry.piece_first as usize + i, out);
            }
        }
    }
}
