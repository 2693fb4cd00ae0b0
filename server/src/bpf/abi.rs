//! The program's data layout, mirrored from `server/bpf/iomap_begin.h` (the one definition;
//! the size assertions below fail the build if the two drift apart).

/// Largest window (extent slots) the program searches (`IOMAP_BPF_MAX_WINDOW`).
pub const MAX_WINDOW: u64 = 1024;
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
/// `IOMAP_BPF_RUN_FULL_SEARCH`: ignore the model, binary-search the file's extents.
pub const RUN_FULL_SEARCH: u32 = 2;
/// `IOMAP_BPF_OP_REPORT` (`FUSE_IOMAP_OP_REPORT`): answer past `i_size`.
pub const OP_REPORT: u32 = 1 << 2;
/// `XDP_PASS`: what the program returns when every slot it was given was answered.
pub const XDP_PASS: u32 = 2;

/// `struct iomap_bpf_file`, the FILES value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct File {
    /// i_size in bytes.
    pub size: u64,
    /// Index of the file's first extent in EXTENTS.
    pub ext_first: u32,
    /// Extents (>= 1).
    pub ext_count: u32,
    /// Index of the file's first segment in SEGS.
    pub seg_first: u32,
    /// Segments (>= 1).
    pub seg_count: u32,
    /// log2 of the block size.
    pub blkbits: u32,
    /// Bits dropped from `q - radix_base` to get a bucket.
    pub radix_shift: u32,
    /// Index of the file's first bucket in RADIX.
    pub radix_first: u32,
    /// Buckets (0: one segment, no table).
    pub radix_buckets: u32,
    /// First key of the file.
    pub radix_base: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct iomap_bpf_bucket`, a RADIX element: the bucket's segments `lo..hi`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// First segment starting in the bucket (relative to the file).
    pub lo: u32,
    /// One past the last.
    pub hi: u32,
}

/// `struct iomap_bpf_seg`, a SEGS element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seg {
    /// First logical block of the segment.
    pub first_key: u32,
    /// First extent index, relative to the file.
    pub first: u32,
    /// Last extent index, relative to the file.
    pub last: u32,
    /// Window below the prediction.
    pub e_lo: u32,
    /// Window above the prediction.
    pub e_hi: u32,
    /// Zero.
    pub pad: u32,
    /// Slope, scaled by 2^32.
    pub slope: u64,
    /// Intercept + 1/2, scaled by 2^16.
    pub intercept: i64,
}

/// `struct iomap_bpf_extent`, an EXTENTS element.
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

/// `struct iomap_bpf_query`, a QUERIES element: one `iomap_begin` call, laid out as
/// `fuse_iomap_begin_in`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query {
    /// `FUSE_IOMAP_OP_*` ([`OP_REPORT`] or 0 for a read).
    pub opflags: u32,
    /// Zero.
    pub reserved: u32,
    /// Inode (the FUSE node id).
    pub ino: u64,
    /// File byte offset.
    pub pos: u64,
    /// Bytes wanted.
    pub count: u64,
}

impl From<predictor::Query> for Query {
    fn from(q: predictor::Query) -> Self {
        Self {
            opflags: crate::wire::opflags_of(q.op),
            reserved: 0,
            ino: u64::from(q.ino),
            pos: q.pos,
            count: q.count,
        }
    }
}

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
    /// `enum iomap_bpf_status` (see [`super::Status`]).
    pub status: u16,
    /// Extent and segment entries read.
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
    assert!(std::mem::size_of::<File>() == 48);
    assert!(std::mem::size_of::<Bucket>() == 8);
    assert!(std::mem::size_of::<Seg>() == 40);
    assert!(std::mem::size_of::<Extent>() == 16);
    assert!(std::mem::size_of::<Query>() == 32);
    assert!(OP_REPORT == crate::wire::OP_REPORT);
    assert!(std::mem::size_of::<Answer>() == 32);
    assert!(std::mem::size_of::<Run>() == 16);
};

// SAFETY: plain `repr(C)` integers with no padding (sizes asserted above): any bit pattern is
// valid, which is what aya's `Pod` requires for values copied to and from maps.
unsafe impl aya::Pod for File {}
// SAFETY: as for File.
unsafe impl aya::Pod for Bucket {}
// SAFETY: as for File.
unsafe impl aya::Pod for Seg {}
// SAFETY: as for File.
unsafe impl aya::Pod for Extent {}
// SAFETY: as for File.
unsafe impl aya::Pod for Query {}
// SAFETY: as for File.
unsafe impl aya::Pod for Answer {}

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
