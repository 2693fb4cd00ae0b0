//! The answer to one `iomap_begin` query, in bytes, and the one function every tier uses to
//! build it.
//!
//! A query carries what the kernel's `iomap_begin` is asked for ([`Op`]): a read is clipped to
//! `i_size`, a report (FIEMAP, SEEK_DATA/SEEK_HOLE) is not, because blocks preallocated past
//! the size (`fallocate --keep-size`) are part of the file's map and the kernel reports them.
//!
//! Tiers only ever find the [`BlockMap`] of one logical block. [`Request::mapping`] turns that
//! into the byte mapping, so two tiers that agree on the block's `BlockMap` return identical
//! mappings by construction; the contract "every tier equals `ondisk`" reduces to "every tier
//! finds the same extent (or hole end) for the block".

use ext4::BlockMap;

use crate::error::QueryError;

/// What a byte range of a file is backed by (the kernel's `IOMAP_HOLE`, `IOMAP_MAPPED`,
/// `IOMAP_UNWRITTEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingType {
    /// No blocks: reads as zeros, `addr` is `None`.
    Hole,
    /// Written blocks at `addr`.
    Mapped,
    /// Allocated but never written (`fallocate`): reads as zeros, `addr` is where the blocks are.
    Unwritten,
}

impl MappingType {
    /// Every type, holes first.
    pub const ALL: [MappingType; 3] = [Self::Hole, Self::Mapped, Self::Unwritten];

    /// Its `FUSE_IOMAP_TYPE_*` code (= the kernel's `IOMAP_*`), the `type` of `fuse_iomap_io`:
    /// the one place these uapi numbers are written (the socket protocol, an in-kernel
    /// evaluator's records and the iext tree's 32-byte records use it).
    pub const fn code(self) -> u16 {
        match self {
            Self::Hole => 0,
            Self::Mapped => 2,
            Self::Unwritten => 3,
        }
    }

    /// The type with code `code` (`None` for codes this read-only server never gives:
    /// `DELALLOC`, `INLINE`, unknown ones).
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// `HOLE`, `MAPPED` or `UNWRITTEN`, as JSON answers print it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hole => "HOLE",
            Self::Mapped => "MAPPED",
            Self::Unwritten => "UNWRITTEN",
        }
    }
}

/// `FUSE_IOMAP_NULL_ADDR`: the `addr` of a hole in `fuse_iomap_io`.
pub const NULL_ADDR: u64 = u64::MAX;

/// One mapping, shaped like `fuse_iomap_io`: file bytes `[offset, offset + length)` are backed
/// by `kind`, starting at image byte `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// File byte offset where the mapping starts: always the queried `pos`.
    pub offset: u64,
    /// Length in bytes, at least 1.
    pub length: u64,
    /// Image byte offset of `offset` for mapped and unwritten ranges; `None` for holes.
    pub addr: Option<u64>,
    /// What backs the range.
    pub kind: MappingType,
}

/// What an `iomap_begin` call maps for: the part of `fuse_iomap_begin_in.opflags` (the
/// kernel's `IOMAP_*` flags) that changes a read-only answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Op {
    /// A read (buffered, direct, page fault): only bytes before `i_size` exist, so a query at
    /// or past it is refused and a mapping stops at it.
    #[default]
    Read,
    /// `IOMAP_REPORT` (FIEMAP, SEEK_DATA/SEEK_HOLE): the extent map as it is, past `i_size`
    /// too, like ext4's `ext4_iomap_begin_report`: preallocated blocks past the size answer
    /// UNWRITTEN, and the hole after the last extent runs to `pos + count`.
    Report,
}

/// `struct fuse_iomap_io`: one mapping as a fuse-iomap server answers `iomap_begin` and as the
/// kernel's mapping cache stores it, written once: the socket protocol sends it (byte offsets
/// and addresses), and the kernel-style iext tree with fuse-iomap records
/// ([`crate::index::FuseRec`]) keeps the same fields (in blocks). 32 bytes; little-endian on
/// the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FuseIomapIo {
    /// File offset of the mapping.
    pub offset: u64,
    /// Its length.
    pub length: u64,
    /// Disk address, [`NULL_ADDR`] for holes.
    pub addr: u64,
    /// `FUSE_IOMAP_TYPE_*` ([`MappingType::code`]).
    pub kind: u16,
    /// `FUSE_IOMAP_F_*`; always 0 here (read-only, one image).
    pub flags: u16,
    /// Device cookie; always 0 here (one image).
    pub dev: u32,
}

impl FuseIomapIo {
    /// Bytes of the record.
    pub const LEN: usize = 32;

    /// The record of `m` (bytes).
    pub fn of(m: &Mapping) -> Self {
        Self {
            offset: m.offset,
            length: m.length,
            addr: m.addr.unwrap_or(NULL_ADDR),
            kind: m.kind.code(),
            flags: 0,
            dev: 0,
        }
    }

    /// A hole at nothing: what a record without a mapping carries.
    pub const NONE: Self = Self {
        offset: 0,
        length: 0,
        addr: NULL_ADDR,
        kind: MappingType::Hole.code(),
        flags: 0,
        dev: 0,
    };

    /// The little-endian bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.length.to_le_bytes());
        b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        b[24..26].copy_from_slice(&self.kind.to_le_bytes());
        b[26..28].copy_from_slice(&self.flags.to_le_bytes());
        b[28..32].copy_from_slice(&self.dev.to_le_bytes());
        b
    }

    /// The record of little-endian bytes `b`.
    pub fn decode(b: &[u8; Self::LEN]) -> Self {
        let [o0, o1, o2, o3, o4, o5, o6, o7, l0, l1, l2, l3, l4, l5, l6, l7, a0, a1, a2, a3, a4, a5, a6, a7, k0, k1, f0, f1, d0, d1, d2, d3] =
            *b;
        Self {
            offset: u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            length: u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]),
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            kind: u16::from_le_bytes([k0, k1]),
            flags: u16::from_le_bytes([f0, f1]),
            dev: u32::from_le_bytes([d0, d1, d2, d3]),
        }
    }
}

const _: () = assert!(std::mem::size_of::<FuseIomapIo>() == FuseIomapIo::LEN);

/// `FUSE_IOMAP_OP_REPORT` (the kernel's `IOMAP_REPORT`): a FIEMAP- or SEEK-style query.
pub const OP_REPORT: u32 = 1 << 2;
/// The `FUSE_IOMAP_OP_*` bits that ask for a writable mapping: `WRITE`, `ZERO`,
/// `OVERWRITE_ONLY`, `UNSHARE`, `ATOMIC` (a read-only server refuses them).
pub const OP_WRITING: u32 = (1 << 0) | (1 << 1) | (1 << 6) | (1 << 7) | (1 << 9);

impl Op {
    /// What `FUSE_IOMAP_OP_*` flags ask a read-only server for: a report, or a read.
    pub fn from_opflags(opflags: u32) -> Self {
        if opflags & OP_REPORT != 0 {
            Self::Report
        } else {
            Self::Read
        }
    }

    /// The `FUSE_IOMAP_OP_*` flags of a read-only query.
    pub fn opflags(self) -> u32 {
        match self {
            Self::Read => 0,
            Self::Report => OP_REPORT,
        }
    }
}

/// One `iomap_begin` call: `count` bytes from byte `pos` of inode `ino`, for `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Query {
    /// Inode number.
    pub ino: u32,
    /// File byte offset.
    pub pos: u64,
    /// Bytes asked about (at least 1).
    pub count: u64,
    /// What the mapping is for.
    pub op: Op,
}

impl Query {
    /// A read query.
    pub fn read(ino: u32, pos: u64, count: u64) -> Self {
        Self {
            ino,
            pos,
            count,
            op: Op::Read,
        }
    }

    /// A report query (FIEMAP, SEEK_DATA/SEEK_HOLE).
    pub fn report(ino: u32, pos: u64, count: u64) -> Self {
        Self {
            op: Op::Report,
            ..Self::read(ino, pos, count)
        }
    }
}

/// A validated query on a file of `size` bytes, on a filesystem with `block_size`-byte blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    ino: u32,
    pos: u64,
    count: u64,
    /// Where mappings stop: `i_size` for reads, never (`u64::MAX`) for reports.
    limit: u64,
    block_size: u32,
    lblk: u32,
}

impl Request {
    /// Checks a query: `count` must be non-zero, a read's `pos` inside the file, and the
    /// block addressable by ext4's 32-bit logical block numbers.
    pub fn new(query: Query, size: u64, block_size: u32) -> Result<Self, QueryError> {
        let Query {
            ino,
            pos,
            count,
            op,
        } = query;
        if count == 0 {
            return Err(QueryError::ZeroCount { ino, pos });
        }
        let limit = match op {
            Op::Read if pos >= size => return Err(QueryError::PastEof { ino, pos, size }),
            Op::Read => size,
            Op::Report => u64::MAX,
        };
        if block_size == 0 {
            return Err(QueryError::Inconsistent {
                ino,
                lblk: 0,
                what: "block size 0",
            });
        }
        // A corrupt inode can claim a size past 2^32 blocks, and a report may ask past the
        // last addressable block; such a block has no mapping.
        let lblk = u32::try_from(pos / u64::from(block_size))
            .map_err(|_| QueryError::BlockOutOfRange { ino, pos })?;
        Ok(Self {
            ino,
            pos,
            count,
            limit,
            block_size,
            lblk,
        })
    }

    /// The logical block the tiers look up.
    pub fn lblk(&self) -> u32 {
        self.lblk
    }

    /// The byte mapping for this request, given what its block maps to.
    ///
    /// The mapping starts at `pos` and runs to the end of the extent (mapped, unwritten) or of
    /// the hole (the start of the next extent, or forever if none follows), clipped to
    /// `pos + count` and, for reads, to the file size. It stops at the extent's end even when
    /// the next extent continues physically and with the same type: that is what
    /// `ext4_map_blocks` reports to iomap (one extent per call), and it keeps the answer a
    /// function of one `BlockMap`, so every tier can produce it from a single lookup.
    ///
    /// A `BlockMap` that does not cover the request's block (an extent that does not contain
    /// it, a hole whose end is not after it) is an [`QueryError::Inconsistent`] error: the
    /// tiers never produce one, but the on-disk walk of a corrupt image might.
    pub fn mapping(&self, bm: BlockMap) -> Result<Mapping, QueryError> {
        let bs = u64::from(self.block_size);
        let inconsistent = |what| QueryError::Inconsistent {
            ino: self.ino,
            lblk: self.lblk,
            what,
        };
        // End of the run the block belongs to, in bytes (u64::MAX: unbounded hole).
        let (run_end, addr, kind) = match bm {
            BlockMap::Mapped(e) => {
                if !e.contains(self.lblk) {
                    return Err(inconsistent("extent does not contain the block"));
                }
                // pblk < 2^48 and bs <= 2^16 in a valid image; a corrupt one may overflow.
                let addr = e
                    .pblk
                    .checked_mul(bs)
                    .and_then(|a| a.checked_add(self.pos - u64::from(e.lblk) * bs))
                    .ok_or_else(|| inconsistent("physical address overflows 64 bits"))?;
                let kind = if e.unwritten {
                    MappingType::Unwritten
                } else {
                    MappingType::Mapped
                };
                // end() < 2^32, so end * bs < 2^48: no overflow.
                (e.end() * bs, Some(addr), kind)
            }
            BlockMap::Hole { next: Some(next) } => {
                if next <= self.lblk {
                    return Err(inconsistent("hole ends before the block"));
                }
                (u64::from(next) * bs, None, MappingType::Hole)
            }
            BlockMap::Hole { next: None } => (u64::MAX, None, MappingType::Hole),
        };
        let stop = run_end
            .min(self.pos.saturating_add(self.count))
            .min(self.limit);
        // stop > pos: run_end > pos (checked above), count > 0 and limit > pos (checked in
        // new; pos < u64::MAX because its block fits 32 bits).
        Ok(Mapping {
            offset: self.pos,
            length: stop - self.pos,
            addr,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ext4::Extent;

    const BS: u32 = 4096;

    fn ext(lblk: u32, pblk: u64, len: u32, unwritten: bool) -> Extent {
        Extent {
            lblk,
            pblk,
            len,
            unwritten,
        }
    }

    #[test]
    fn mapped_runs_to_extent_end_and_clips() {
        let e = ext(10, 1000, 5, false);
        let r = Request::new(Query::read(1, 11 * 4096 + 7, 1 << 30), 1 << 40, BS).unwrap();
        let m = r.mapping(BlockMap::Mapped(e)).unwrap();
        assert_eq!(m.offset, 11 * 4096 + 7);
        assert_eq!(m.addr, Some(1001 * 4096 + 7));
        assert_eq!(m.offset + m.length, 15 * 4096);
        assert_eq!(m.kind, MappingType::Mapped);
        // Clipped to count.
        let r = Request::new(Query::read(1, 11 * 4096, 100), 1 << 40, BS).unwrap();
        assert_eq!(r.mapping(BlockMap::Mapped(e)).unwrap().length, 100);
        // Clipped to EOF inside the extent.
        let r = Request::new(Query::read(1, 11 * 4096, 1 << 30), 12 * 4096 + 1, BS).unwrap();
        assert_eq!(r.mapping(BlockMap::Mapped(e)).unwrap().length, 4096 + 1);
    }

    #[test]
    fn unwritten_and_holes() {
        let r = Request::new(Query::read(1, 10 * 4096, 1 << 20), 1 << 40, BS).unwrap();
        let m = r.mapping(BlockMap::Mapped(ext(10, 5, 1, true))).unwrap();
        assert_eq!(
            (m.kind, m.length, m.addr),
            (MappingType::Unwritten, 4096, Some(5 * 4096))
        );
        let m = r.mapping(BlockMap::Hole { next: Some(12) }).unwrap();
        assert_eq!(
            (m.kind, m.length, m.addr),
            (MappingType::Hole, 2 * 4096, None)
        );
        let m = r.mapping(BlockMap::Hole { next: None }).unwrap();
        assert_eq!(m.length, 1 << 20);
    }

    #[test]
    fn last_block_of_the_lblk_space() {
        let size = (1u64 << 32) * 4096;
        let r = Request::new(Query::read(1, size - 1, u64::MAX), size, BS).unwrap();
        assert_eq!(r.lblk(), u32::MAX);
        let m = r
            .mapping(BlockMap::Mapped(ext(u32::MAX, 7, 1, false)))
            .unwrap();
        assert_eq!((m.length, m.addr), (1, Some(7 * 4096 + 4095)));
        assert!(matches!(
            Request::new(Query::read(1, size, 1), size + 1, BS),
            Err(QueryError::BlockOutOfRange { .. })
        ));
    }

    #[test]
    fn types_carry_the_uapi_codes() {
        // FUSE_IOMAP_TYPE_HOLE 0, _MAPPED 2, _UNWRITTEN 3 (the kernel's IOMAP_* values).
        let codes: Vec<(u16, &str)> = MappingType::ALL.map(|t| (t.code(), t.name())).to_vec();
        assert_eq!(codes, [(0, "HOLE"), (2, "MAPPED"), (3, "UNWRITTEN")]);
        for t in MappingType::ALL {
            assert_eq!(MappingType::from_code(t.code()), Some(t));
        }
        assert_eq!(MappingType::from_code(1), None); // IOMAP_DELALLOC: never ours
        assert_eq!(NULL_ADDR, u64::MAX);
    }

    #[test]
    fn reports_answer_past_eof_and_reads_do_not() {
        // Blocks 10..20 preallocated past a 12-block file (fallocate --keep-size).
        let size = 12 * 4096;
        let e = ext(10, 500, 10, true);
        let read = Request::new(Query::read(1, 11 * 4096, u64::MAX), size, BS).unwrap();
        assert_eq!(read.mapping(BlockMap::Mapped(e)).unwrap().length, 4096);
        let report = Request::new(Query::report(1, 11 * 4096, u64::MAX), size, BS).unwrap();
        let m = report.mapping(BlockMap::Mapped(e)).unwrap();
        assert_eq!(
            (m.kind, m.length, m.addr),
            (MappingType::Unwritten, 9 * 4096, Some(501 * 4096))
        );
        // Past EOF: a read is refused, a report maps the block.
        assert!(matches!(
            Request::new(Query::read(1, 15 * 4096, 1), size, BS),
            Err(QueryError::PastEof { .. })
        ));
        let report = Request::new(Query::report(1, 15 * 4096 + 3, 1 << 20), size, BS).unwrap();
        let m = report.mapping(BlockMap::Mapped(e)).unwrap();
        assert_eq!((m.length, m.addr), (5 * 4096 - 3, Some(505 * 4096 + 3)));
        // The hole after the last extent runs to pos + count, saturating.
        let report = Request::new(Query::report(1, 30 * 4096, u64::MAX), size, BS).unwrap();
        let m = report.mapping(BlockMap::Hole { next: None }).unwrap();
        assert_eq!(
            (m.kind, m.length),
            (MappingType::Hole, u64::MAX - 30 * 4096)
        );
        // Zero counts and blocks past 2^32 - 1 are refused for reports too.
        assert!(matches!(
            Request::new(Query::report(1, 0, 0), size, BS),
            Err(QueryError::ZeroCount { .. })
        ));
        assert!(matches!(
            Request::new(Query::report(1, (1 << 32) * 4096, 1), size, BS),
            Err(QueryError::BlockOutOfRange { .. })
        ));
    }

    #[test]
    fn rejects_bad_requests_and_inconsistent_maps() {
        assert!(matches!(
            Request::new(Query::read(1, 0, 0), 10, BS),
            Err(QueryError::ZeroCount { .. })
        ));
        assert!(matches!(
            Request::new(Query::read(1, 10, 1), 10, BS),
            Err(QueryError::PastEof { .. })
        ));
        let r = Request::new(Query::read(1, 4096 * 20, 1), 1 << 30, BS).unwrap();
        assert!(r.mapping(BlockMap::Mapped(ext(0, 0, 20, false))).is_err());
        assert!(r.mapping(BlockMap::Hole { next: Some(20) }).is_err());
        let huge = ext(20, u64::MAX / 2, 1, false);
        assert!(r.mapping(BlockMap::Mapped(huge)).is_err());
    }
}
