//! One file's form as the program's maps hold it: the file to load ([`BpfFile`]), why one is
//! left out ([`Skip`]), its header ([`Entry`], a CFILES value) and the arrays whose slots the
//! header names ([`Array`]), and the writes that put a form into those slots. What the loader
//! (`tier`) and the replacement path (`update`) both write, in one place.
//!
//! Every file is in the one map set, whatever its storage: the learned index's layout
//! ([`LearnedIndex::layout`]) is copied as it is, its pieces into PIECES (a records line piece
//! as [`abi::PIECE_RECORDS`], a packed one as [`abi::PIECE_LINE`]), its directory into
//! CBUCKETS and its bytes (packed blocks, or key columns beside 12-byte records) into WORDS.

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
    /// The file's learned index (either storage).
    pub index: &'a LearnedIndex,
}

/// Why a file was not loaded into the program's maps (its queries then fall back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// A line's window is over the slots the program searches (no fitted index has one).
    #[error(
        "window of {window} extents is over the program's bound of {}",
        abi::COMPACT_WINDOW
    )]
    Window {
        /// The widest line window.
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
}

/// The arrays a file's form takes slots in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Array {
    Pieces,
    CBuckets,
    Words,
}

/// Arrays of the map set.
pub(crate) const ARRAYS: usize = 3;

impl Array {
    pub(crate) const ALL: [Array; ARRAYS] = [Array::Pieces, Array::CBuckets, Array::Words];

    /// The map's name in the object.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Pieces => "PIECES",
            Self::CBuckets => "CBUCKETS",
            Self::Words => "WORDS",
        }
    }

    /// Bytes of one element.
    pub(crate) fn element_bytes(self) -> u64 {
        let size = match self {
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

/// A file's header, the CFILES value (public for the tier's test hooks only).
pub type Entry = abi::CFile;

/// The slots a form takes: (array, first, count), one per array (empty ones too).
pub(crate) fn ranges(e: &Entry) -> [(Array, u32, u32); ARRAYS] {
    [
        (Array::Pieces, e.piece_first, e.pieces),
        (Array::CBuckets, e.bucket_first, e.buckets),
        (Array::Words, e.word_first, e.words),
    ]
}

/// Sets where the form's range in `array` starts.
pub(crate) fn set_first(e: &mut Entry, array: Array, first: u32) {
    match array {
        Array::Pieces => e.piece_first = first,
        Array::CBuckets => e.bucket_first = first,
        Array::Words => e.word_first = first,
    }
}

/// The entry of `f`'s form, with every range starting at slot 0 ([`Space::place`] puts them).
///
/// [`Space::place`]: crate::update::Space::place
pub(crate) fn entry_of(f: &BpfFile<'_>, blkbits: u32) -> Result<Entry, Skip> {
    let count = |n: usize, array: Array| u32::try_from(n).map_err(|_| Skip::NoRoom(array.name()));
    let mut entry = abi::CFile {
        size: f.size,
        blkbits,
        ..abi::CFile::default()
    };
    let bytes = match f.index.layout() {
        // check_file refused empty maps.
        LearnedLayout::Empty => 0,
        LearnedLayout::Plain(e) => {
            entry.form = abi::FORM_PLAIN;
            entry.count = count(e.len(), Array::Words)?;
            e.len() * abi::RECORD
        }
        LearnedLayout::Packed(p) => {
            entry.form = abi::FORM_PACKED;
            entry.first_key = p.first_key;
            entry.shift = p.shift;
            entry.buckets = count(p.buckets.len(), Array::CBuckets)?;
            entry.pieces = count(p.pieces.len(), Array::Pieces)?;
            for piece in &p.pieces {
                let line = match piece.body {
                    PieceBody::Run(_) => continue,
                    PieceBody::Line(l) => l.line,
                    PieceBody::Records(r) => {
                        // The program reads a piece's keys at `off` and its records at `block`,
                        // u32s of bytes.
                        let count = u64::from(r.count);
                        let keys_end = u64::from(r.keys) + count * 4;
                        let end = u64::from(r.recs) + count * abi::KEYED_RECORD as u64;
                        if keys_end.max(end) > u64::from(u32::MAX)
                            || keys_end.max(end) > p.bytes.len() as u64
                        {
                            return Err(Skip::NoRoom(Array::Words.name()));
                        }
                        r.line
                    }
                };
                let window = line.window();
                if window > abi::COMPACT_WINDOW as u64 {
                    return Err(Skip::Window { window });
                }
            }
            p.bytes.len()
        }
    };
    entry.words = count(bytes.div_ceil(8), Array::Words)?;
    Ok(entry)
}

/// The file's log2 block size if the program can take it.
pub(crate) fn check_file(f: &BpfFile<'_>) -> Result<u32, Skip> {
    if !f.block_size.is_power_of_two() || !(1024..=65536).contains(&f.block_size) {
        return Err(Skip::BlockSize(f.block_size));
    }
    let bits = f.block_size.trailing_zeros();
    if f.index.shape().extents == 0 {
        return Err(Skip::NoExtents);
    }
    for (index, e) in f.index.extents().iter().enumerate() {
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

/// A plain form's record.
fn extent(e: &ext4::Extent) -> abi::Extent {
    let flag = if e.unwritten { abi::UNWRITTEN } else { 0 };
    abi::Extent {
        lblk: e.lblk,
        len: e.len,
        pblk: e.pblk | flag,
    }
}

/// Writes a file's form into the slots its entry names.
pub(crate) fn fill(
    entry: &Entry,
    index: &LearnedIndex,
    pieces: &MmapArray<abi::Piece>,
    cbuckets: &MmapArray<abi::CBucket>,
    words: &MmapArray<u64>,
) {
    let w0 = entry.word_first as usize;
    match index.layout() {
        LearnedLayout::Empty => {}
        LearnedLayout::Plain(exts) => {
            for (i, e) in exts.iter().enumerate() {
                let r = extent(e);
                words.set(w0 + 2 * i, u64::from(r.lblk) | (u64::from(r.len) << 32));
                words.set(w0 + 2 * i + 1, r.pblk);
            }
        }
        LearnedLayout::Packed(p) => {
            // Packed blocks or records, as the userspace lookup reads them.
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
                        set_line(&mut out, abi::PIECE_LINE, &l.line, l.count);
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
                    PieceBody::Records(r) => {
                        set_line(&mut out, abi::PIECE_RECORDS, &r.line, r.count);
                        // entry_of checked that the piece's keys and records end below 2^32
                        // bytes.
                        out.off = r.keys;
                        out.block = r.recs;
                    }
                }
                pieces.set(entry.piece_first as usize + i, out);
            }
        }
    }
}

/// The fields a line piece sets in either storage: its kind, extents and line.
fn set_line(out: &mut abi::Piece, kind: u32, line: &predictor::model::FixedLine, count: u32) {
    out.kind = kind;
    out.count = count;
    out.slope = line.slope;
    out.intercept = line.intercept;
    out.e_lo = line.e_lo;
    out.e_hi = line.e_hi;
}
