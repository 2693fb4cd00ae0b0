//! The program's data layout, mirrored from `bpf/program/iomap_begin.h` (the one definition;
//! the size assertions below fail the build if the two drift apart).

use crate::mmap::Plain;

/// `IOMAP_BPF_UNWRITTEN`: the flag bit in [`Extent::pblk`].
pub const UNWRITTEN: u64 = 1 << 63;
/// `IOMAP_BPF_NULL_ADDR`: the address of a hole (`FUSE_IOMAP_NULL_ADDR`; the program's header
/// writes the same uapi numbers as these, and every BPF test compares its answers with the
/// userspace mapping, type and address included).
pub use predictor::NULL_ADDR;
/// `IOMAP_BPF_HOLE`, `_MAPPED`, `_UNWRITTEN_TYPE`: the iomap types
/// ([`predictor::MappingType::code`]).
pub const TYPE_HOLE: u16 = predictor::MappingType::Hole.code();
/// See [`TYPE_HOLE`].
pub const TYPE_MAPPED: u16 = predictor::MappingType::Mapped.code();
/// See [`TYPE_HOLE`].
pub const TYPE_UNWRITTEN: u16 = predictor::MappingType::Unwritten.code();
/// `IOMAP_BPF_RUN_NOOP`: read the query, answer nothing (measures the run's own cost).
pub const RUN_NOOP: u32 = 1;

/// `IOMAP_BPF_OP_REPORT` (`FUSE_IOMAP_OP_REPORT`): answer past `i_size`.
pub const OP_REPORT: u32 = 1 << 2;
/// `IOMAP_BPF_OP_WRITING`: the opflags the struct_ops hook leaves to the server.
pub const OP_WRITING: u32 = (1 << 0) | (1 << 1) | (1 << 6) | (1 << 7) | (1 << 9);
/// `XDP_PASS`: what the program returns when every slot it was given was answered.
pub const XDP_PASS: u32 = 2;

/// `struct iomap_bpf_extent`: one extent as a 16-byte record, the record of a small file's
/// plain array in WORDS (`predictor::RECORD_BYTES`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    /// First logical block.
    pub lblk: u32,
    /// Length in blocks.
    pub len: u32,
    /// First physical block, with [`UNWRITTEN`] set for unwritten extents.
    pub pblk: u64,
}

/// `IOMAP_BPF_RECORD`: bytes of an [`Extent`] record.
pub const RECORD: usize = 16;
/// `IOMAP_BPF_KEYED_RECORD`: bytes of a records line piece's record, whose key is in the
/// piece's key column: length (u32), then the physical start with [`UNWRITTEN`] (u64)
/// (`predictor::KEYED_RECORD_BYTES`).
pub const KEYED_RECORD: usize = 12;

/// `IOMAP_BPF_COMPACT_BLOCK`, `_WINDOW`, `_HEAD`: the learned index's geometry, which the
/// program hard-codes (checked against `predictor::index::learned` below).
pub const COMPACT_BLOCK: usize = 64;
/// See [`COMPACT_BLOCK`].
pub const COMPACT_WINDOW: usize = 32;
/// See [`COMPACT_BLOCK`].
pub const COMPACT_HEAD: usize = 16;
/// `IOMAP_BPF_WORDS_VALUE`: words of a WORDS value.
pub const WORDS_VALUE: usize = 512;

/// `struct iomap_bpf_words`, a WORDS value: [`WORDS_VALUE`] words of the one run of words that
/// holds every file's bytes (the loader writes the run through the map's mapping, where
/// the values lie end to end; a file's `word_first` counts words of the run).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// The words.
    pub w: [u64; WORDS_VALUE],
}

/// `IOMAP_BPF_NO_KEY`: the `end_key` of a file's last piece.
pub const NO_KEY: u32 = u32::MAX;
/// `IOMAP_BPF_FORM_PLAIN`: [`Extent`] records in WORDS.
pub const FORM_PLAIN: u32 = 1;
/// `IOMAP_BPF_FORM_PACKED`: pieces (runs, lines over packed blocks, lines over records).
pub const FORM_PACKED: u32 = 2;
/// `IOMAP_BPF_PIECE_RUN`.
pub const PIECE_RUN: u32 = 0;
/// `IOMAP_BPF_PIECE_LINE`: a line over packed blocks.
pub const PIECE_LINE: u32 = 1;
/// `IOMAP_BPF_PIECE_RECORDS`: a line over a key column beside [`KEYED_RECORD`]-byte records.
pub const PIECE_RECORDS: u32 = 2;

/// `struct iomap_bpf_cfile`, the CFILES value: a file's learned index.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CFile {
    /// i_size in bytes.
    pub size: u64,
    /// Word of WORDS where the file's bytes start.
    pub word_first: u32,
    /// Words of the file's bytes: the program reads nothing outside them.
    pub words: u32,
    /// log2 of the block size.
    pub blkbits: u32,
    /// [`FORM_PLAIN`] or [`FORM_PACKED`].
    pub form: u32,
    /// Plain: extents.
    pub count: u32,
    /// Packed: start of the first extent.
    pub first_key: u32,
    /// Packed: bits dropped from `q - first_key` to get a bucket.
    pub shift: u32,
    /// Packed: the file's first bucket in CBUCKETS.
    pub bucket_first: u32,
    /// Packed: buckets.
    pub buckets: u32,
    /// Packed: the file's first piece in PIECES.
    pub piece_first: u32,
    /// Packed: pieces.
    pub pieces: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct iomap_bpf_piece`, a PIECES element (`predictor::PieceLayout`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Piece {
    /// Start of its first extent.
    pub first_key: u32,
    /// Start of the next piece's first extent ([`NO_KEY`] for the last).
    pub end_key: u32,
    /// [`PIECE_RUN`], [`PIECE_LINE`] or [`PIECE_RECORDS`].
    pub kind: u32,
    /// Extents.
    pub count: u32,
    /// Line, records: slope, scaled by 2^32.
    pub slope: u64,
    /// Line, records: intercept + 1/2, scaled by 2^16.
    pub intercept: i64,
    /// Line, records: window below the prediction.
    pub e_lo: u32,
    /// Line, records: window above the prediction.
    pub e_hi: u32,
    /// Line: byte offset of the first block in the file's bytes; records: of the key column.
    pub off: u32,
    /// Line: bytes of a block; records: byte offset of the records.
    pub block: u32,
    /// Line: byte offset of the record column in a block.
    pub recs: u16,
    /// Line: bytes of a key offset (2 or 4).
    pub key_bytes: u8,
    /// Line: bits of a record's length excess.
    pub wl: u8,
    /// Line: bits of a record's physical excess.
    pub wd: u8,
    /// Line: bits of a record.
    pub wr: u8,
    /// Line: 0 none unwritten, 1 all, 2 a bit per record; run: 0 or 1.
    pub unw: u8,
    /// Line: 1 if the physical field is `pblk`, 0 if `pblk - lblk`.
    pub phys: u8,
    /// Run: logical step.
    pub step: u32,
    /// Run: every extent's length.
    pub len: u32,
    /// Run: first physical block.
    pub pblk: u64,
    /// Run: physical step (wrapping).
    pub pstep: u64,
}

/// `struct iomap_bpf_cbucket`, a CBUCKETS element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CBucket {
    /// The piece holding the bucket's first block (relative to the file).
    pub piece: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct iomap_bpf_query`, a QUERIES element: one `iomap_begin` call, laid out as
/// `fuse_iomap_begin_in`, which is the socket protocol's record: one type for both.
pub use predictor::wire::BeginIn;

/// `struct iomap_bpf_answer`, an ANSWERS element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    /// Mapping start (the query's `pos`).
    pub offset: u64,
    /// Mapping length in bytes.
    pub length: u64,
    /// Image byte address, [`NULL_ADDR`] for holes.
    pub addr: u64,
    /// [`TYPE_HOLE`], [`TYPE_MAPPED`] or [`TYPE_UNWRITTEN`].
    pub kind: u16,
    /// `enum iomap_bpf_status` (see [`crate::Status`]).
    pub status: u16,
    /// Map entries read.
    pub probes: u32,
}

/// `struct iomap_bpf_run`: the test-run packet.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    /// First QUERIES slot.
    pub first: u32,
    /// Queries to answer.
    pub n: u32,
    /// Rotation mask (0: none).
    pub mask: u32,
    /// `RUN_*` flags.
    pub flags: u32,
}

// The C layout, checked at compile time.
const _: () = {
    assert!(std::mem::size_of::<Extent>() == RECORD);
    assert!(RECORD == predictor::RECORD_BYTES);
    assert!(KEYED_RECORD == predictor::KEYED_RECORD_BYTES);
    assert!(std::mem::size_of::<BeginIn>() == 32);
    assert!(OP_REPORT == predictor::OP_REPORT);
    assert!(OP_WRITING == predictor::OP_WRITING);
    assert!(std::mem::size_of::<Answer>() == 32);
    assert!(std::mem::size_of::<Run>() == 16);
    assert!(std::mem::size_of::<CFile>() == 56);
    assert!(std::mem::size_of::<Piece>() == 80);
    assert!(std::mem::size_of::<CBucket>() == 8);
    assert!(std::mem::size_of::<Words>() == WORDS_VALUE * 8);
    // The learned index's geometry, which the program hard-codes.
    assert!(COMPACT_BLOCK == predictor::index::learned::BLOCK);
    assert!(COMPACT_WINDOW == predictor::index::learned::WINDOW);
    assert!(COMPACT_HEAD == predictor::index::learned::BLOCK_HEADER_BYTES);
};

// SAFETY: plain `repr(C)` integers with no padding (sizes asserted above): any bit pattern is
// valid, which is what aya's `Pod` requires of the hash-map values it copies (CFILES) and
// `Plain` of the elements of the arrays the loader maps into memory (every other map).
unsafe impl aya::Pod for CFile {}
// SAFETY: as for CFile.
unsafe impl Plain for Piece {}
// SAFETY: as for CFile.
unsafe impl Plain for CBucket {}
// SAFETY: as for CFile.
unsafe impl Plain for Answer {}
// SAFETY: `fuse_iomap_begin_in`: `repr(C)`, u32, u32, u64, u64, u64, no padding (size asserted).
unsafe impl Plain for BeginIn {}

impl Run {
    /// The packet bytes (XDP test runs want at least an Ethernet header's worth: 64 bytes).
    pub fn packet(&self) -> [u8; 64] {
        let mut p = [0u8; 64];
        p[0..4].copy_from_slice(&self.first.to_ne_bytes());
        p[4..8].copy_from_slice(&self.n.to_ne_bytes());
        p[8..12].copy_from_slice(&self.mask.to_ne_bytes());
        p[12..16].copy_from_slice(&self.flags.to_ne_bytes());
        p
    }
}
