//! A userspace model of fuse-iomap's per-inode mapping cache: the READ tree of
//! `fs/fuse/fuse_iomap_cache.c` as posted in "[PATCHSET v7 7/9] fuse: cache iomap mappings for
//! even better file IO performance" (Darrick J. Wong, linux-fsdevel, 2026-02-23).
//!
//! What is modelled — everything that decides hits, misses and bytes:
//!
//! - the records of one inode's read tree, kept canonical as the kernel keeps them: records
//!   never overlap and mergeable neighbours are always merged (`fuse_iext_add_mapping`);
//! - upsert = remove the new range, apply the size cap, add with merging
//!   (`fuse_iomap_cache_upsert`, `fuse_iomap_cache_cleanup`, `fuse_iomap_cache_add`);
//! - invalidation of a range or to EOF, trimming or splitting records that straddle its ends,
//!   and the fast path that destroys the whole tree (`fuse_iomap_cache_remove`);
//! - lookups: a hit only if a record contains the block; holes are never synthesised, so a hole
//!   hits only if a hole record was upserted (`fuse_iomap_cache_lookup`);
//! - `ir_bytes` (records × 32), the cap (strict `>`, whole-tree destroy, checked only on
//!   upsert) and `ic_seq`, bumped by every record insert, remove and update
//!   (`fuse_iext_inc_seq`, skipping 0);
//! - what fuse4fs upserts on a miss for an extent-mapped file ([`server_mapping`]).
//!
//! What is not modelled, and why that is faithful:
//!
//! - The write tree (`ic_write`). fuse4fs upserts with a NULL write mapping, which libfuse sends
//!   as `FUSE_IOMAP_TYPE_NOCACHE`, so the write tree stays NOFORK (`ir_bytes == -1`) and writes
//!   are answered from the read tree.
//! - Node layout (leaves of 7 records, inner nodes of 16 keys, root reallocs, rebalancing).
//!   `ir_bytes` counts records × 32 only, so a sorted map of records decides everything the cap
//!   decides.
//! - Destroy does not bump `ic_seq`, as in the kernel (`fuse_iext_destroy`): neither the cap's
//!   destroy nor the 0-to-EOF fast path changes [`MappingCache::seq`].
//! - Record flags and devices: fuse4fs's read mappings of one file share one device, and the
//!   model gives every record the same flags, so `fuse_iomap_can_merge`'s `dev` and `flags`
//!   tests always pass.
//!
//! Units are filesystem blocks, not bytes: the kernel aligns every range outwards to blocks
//! before it reaches the tree (`fuse_iomap_cache_invalidate_range`, `fuse_iomap_check_mapping`),
//! so a block-unit tree holds the same records. The model's `s_maxbytes` is `u64::MAX` blocks,
//! the largest range a `u64` block number can express.

use std::collections::BTreeMap;

use ext4::{BlockMap, Extent};

/// Bytes one record adds to `ir_bytes`: `sizeof(struct fuse_iomap_io)`.
pub const RECORD_BYTES: u64 = 32;

/// The cap when the server does not set one: `FUSE_IOMAP_CACHE_DEFAULT_MAXBYTES` (256 KiB,
/// 8192 records). fuse4fs never sets one.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 10;

/// The largest cap a server may set: `FUSE_IOMAP_CACHE_MAX_MAXBYTES` (2 MiB, 65536 records).
pub const MAX_MAX_BYTES: u64 = 2 << 20;

/// The smallest cap a server may set: `NODE_SIZE`, the floor of the clamp in
/// `fuse_iomap_cache_set_maxbytes` (8 records).
pub const MIN_MAX_BYTES: u64 = 256;

/// Longest record a merge may produce: `FUSE_IOMAP_MAX_LEN` (2^63), applied to block counts
/// (the kernel applies it to byte counts; no ext4 file, whose blocks are below 2^32, reaches
/// either limit).
const MAX_LEN: u64 = 1 << 63;

/// The model's `s_maxbytes`, in blocks: the end of the largest block range a `u64` expresses.
const S_MAX_BLOCKS: u64 = u64::MAX;

/// `FUSE_IOMAP_INVAL_TO_EOF` (`~0ULL`): an invalidation length meaning "to EOF".
const INVAL_TO_EOF: u64 = u64::MAX;

/// What a cached block range maps to (the `type` and `addr` of a `fuse_iomap_io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedKind {
    /// `FUSE_IOMAP_TYPE_MAPPED`: written blocks starting at physical block `pblk`.
    Mapped {
        /// Physical block of the range's first block.
        pblk: u64,
    },
    /// `FUSE_IOMAP_TYPE_UNWRITTEN`: allocated, reads as zeros, starting at physical `pblk`.
    Unwritten {
        /// Physical block of the range's first block.
        pblk: u64,
    },
    /// `FUSE_IOMAP_TYPE_HOLE`: no blocks (`addr == FUSE_IOMAP_NULL_ADDR`).
    Hole,
}

impl CachedKind {
    /// The same kind `by` blocks further on: physical addresses advance with the logical ones,
    /// as `fuse_iext_del_mapping` and `fuse_iomap_trim` shift `addr` for MAPPED/UNWRITTEN only.
    /// `None` if the physical block would overflow.
    fn advanced(self, by: u64) -> Option<Self> {
        Some(match self {
            Self::Mapped { pblk } => Self::Mapped {
                pblk: pblk.checked_add(by)?,
            },
            Self::Unwritten { pblk } => Self::Unwritten {
                pblk: pblk.checked_add(by)?,
            },
            Self::Hole => Self::Hole,
        })
    }
}

/// One cached record: `len` blocks from logical block `lblk`, of kind `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedMapping {
    /// First logical block.
    pub lblk: u64,
    /// Length in blocks (at least 1 in a cache).
    pub len: u64,
    /// Type and first physical block.
    pub kind: CachedKind,
}

impl CachedMapping {
    /// One past the last logical block (saturating; a cached record never saturates, since
    /// [`MappingCache::upsert`] rejects ranges that overflow).
    pub fn end(&self) -> u64 {
        self.lblk.saturating_add(self.len)
    }

    /// Whether logical block `lblk` lies inside this record.
    pub fn contains(&self, lblk: u64) -> bool {
        lblk >= self.lblk && lblk < self.end()
    }

    /// What block `lblk` maps to: the kind with its physical block shifted to `lblk` (the
    /// `addr` `fuse_iomap_trim` returns), or `None` if `lblk` is outside the record.
    pub fn block_at(&self, lblk: u64) -> Option<CachedKind> {
        if !self.contains(lblk) {
            return None;
        }
        self.kind.advanced(lblk - self.lblk)
    }

    /// The part of this record inside `[from, to)`, which must lie within it (the `del` and
    /// `new` records of `fuse_iomap_cache_remove` and `fuse_iext_del_mapping`).
    fn slice(&self, from: u64, to: u64) -> Self {
        Self {
            lblk: from,
            len: to - from,
            // Cannot fail: every block of an accepted record has a representable address.
            kind: self.kind.advanced(from - self.lblk).unwrap_or(self.kind),
        }
    }
}

/// Whether `left` and `right` may become one record, as `fuse_iomap_can_merge`: logically
/// contiguous, the same type, physically adjacent (MAPPED/UNWRITTEN) or both without address
/// (HOLE), and not longer than `FUSE_IOMAP_MAX_LEN` together.
fn can_merge(left: &CachedMapping, right: &CachedMapping) -> bool {
    let adjacent = match (left.kind, right.kind) {
        (CachedKind::Mapped { pblk: a }, CachedKind::Mapped { pblk: b })
        | (CachedKind::Unwritten { pblk: a }, CachedKind::Unwritten { pblk: b }) => {
            a.checked_add(left.len) == Some(b)
        }
        (CachedKind::Hole, CachedKind::Hole) => true,
        _ => false,
    };
    adjacent
        && left.lblk.checked_add(left.len) == Some(right.lblk)
        && left
            .len
            .checked_add(right.len)
            .is_some_and(|l| l <= MAX_LEN)
}

/// Whether a three-way merge stays within `FUSE_IOMAP_MAX_LEN`, as `fuse_iomap_can_merge3`.
fn can_merge3(left: &CachedMapping, new: &CachedMapping, right: &CachedMapping) -> bool {
    left.len
        .checked_add(new.len)
        .and_then(|l| l.checked_add(right.len))
        .is_some_and(|l| l <= MAX_LEN)
}

/// The cap a server's `cache_maxbytes` yields, as `fuse_iomap_cache_set_maxbytes`: 0 keeps the
/// current value (the default, for a new cache), anything else is clamped to
/// [`MIN_MAX_BYTES`]`..=`[`MAX_MAX_BYTES`].
fn clamp_max_bytes(max_bytes: u64) -> u64 {
    if max_bytes == 0 {
        return DEFAULT_MAX_BYTES;
    }
    max_bytes.clamp(MIN_MAX_BYTES, MAX_MAX_BYTES)
}

/// Why an upsert was refused (the checks of `fuse_iomap_check_mapping` and
/// `fuse_iomap_upsert_validate_dev` that apply to block ranges).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The mapping has length 0.
    #[error("mapping at block {lblk} has zero length")]
    ZeroLength {
        /// First logical block of the rejected mapping.
        lblk: u64,
    },
    /// `lblk + len` does not fit in a u64.
    #[error("mapping at block {lblk} with {len} blocks overflows the logical range")]
    RangeOverflow {
        /// First logical block of the rejected mapping.
        lblk: u64,
        /// Its length in blocks.
        len: u64,
    },
    /// `pblk + len` does not fit in a u64 (no device is that large).
    #[error("mapping at physical block {pblk} with {len} blocks overflows the device range")]
    AddrOverflow {
        /// First physical block of the rejected mapping.
        pblk: u64,
        /// Its length in blocks.
        len: u64,
    },
}

/// The outcome of a successful [`MappingCache::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    /// Whether the cap destroyed the whole tree before the mapping was added.
    pub destroyed: bool,
}

/// One inode's read tree (`ic_read`) with the inode's sequence counter (`ic_seq`).
#[derive(Debug, Clone)]
pub struct MappingCache {
    /// Records keyed by first logical block; canonical (no overlap, no mergeable neighbours).
    recs: BTreeMap<u64, CachedMapping>,
    /// The connection's `cache_maxbytes`, already clamped.
    max_bytes: u64,
    /// `ic_seq`, starting at `FUSE_IOMAP_INIT_COOKIE` (1).
    seq: u64,
    /// How many times the cap destroyed the tree.
    destroys: u64,
}

impl Default for MappingCache {
    /// A cache with the kernel's default cap, [`DEFAULT_MAX_BYTES`].
    fn default() -> Self {
        Self::new(0)
    }
}

impl MappingCache {
    /// An empty cache whose cap is `max_bytes` clamped as `fuse_iomap_cache_set_maxbytes`
    /// (0 = [`DEFAULT_MAX_BYTES`]); `ic_seq` starts at `FUSE_IOMAP_INIT_COOKIE` (1), as
    /// `fuse_iomap_cache_alloc` leaves it.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            recs: BTreeMap::new(),
            max_bytes: clamp_max_bytes(max_bytes),
            seq: 1,
            destroys: 0,
        }
    }

    /// An empty cache without a cap: the kernel's tree if memory were free, the ceiling of
    /// what caching can do (misses are then first lookups and invalidations only).
    pub fn unlimited() -> Self {
        Self {
            max_bytes: u64::MAX,
            ..Self::new(0)
        }
    }

    /// The cap after clamping.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// `ir_bytes`: records × [`RECORD_BYTES`] (node overhead is not counted, as in the kernel).
    pub fn bytes(&self) -> u64 {
        self.recs.len() as u64 * RECORD_BYTES
    }

    /// Number of records (`fuse_iext_count`).
    pub fn records(&self) -> usize {
        self.recs.len()
    }

    /// `ic_seq`, the validity cookie cached mappings carry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many times the cap destroyed the tree (`fuse_iomap_cache_cleanup`).
    pub fn destroys(&self) -> u64 {
        self.destroys
    }

    /// The records in logical order.
    pub fn iter(&self) -> impl Iterator<Item = CachedMapping> + '_ {
        self.recs.values().copied()
    }

    /// The record containing `lblk` (a hit), or `None` (a miss, and an upcall), as
    /// `fuse_iomap_cache_lookup`: the first record ending after `lblk` hits only if it starts
    /// at or before `lblk`. Holes are never synthesised. The whole record is returned, not the
    /// `fuse_iomap_trim` of it; use [`CachedMapping::block_at`] for one block.
    pub fn lookup(&self, lblk: u64) -> Option<CachedMapping> {
        let (_, rec) = self.recs.range(..=lblk).next_back()?;
        rec.contains(lblk).then_some(*rec)
    }

    /// Caches `m`, as `fuse_iomap_cache_upsert` on the read tree: remove `[m.lblk, m.end())`,
    /// then destroy the whole tree if `bytes() > max_bytes()` (strictly; the cap is checked
    /// after the removal and before the add, `fuse_iomap_cache_cleanup`), then add `m`,
    /// merging it with its neighbours (`fuse_iomap_cache_add`).
    pub fn upsert(&mut self, m: CachedMapping) -> Result<Upserted, CacheError> {
        validate(&m)?;
        self.remove(m.lblk, m.len);
        let destroyed = self.bytes() > self.max_bytes;
        if destroyed {
            self.recs.clear();
            self.destroys += 1;
        }
        self.add(m);
        Ok(Upserted { destroyed })
    }

    /// Drops cached mappings of `[lblk, lblk + len)`, or of `[lblk, EOF)` if `len` is `None`
    /// (or `Some(u64::MAX)`, the value of `FUSE_IOMAP_INVAL_TO_EOF`), as
    /// `fuse_iomap_cache_invalidate_range` does to the read tree. Records straddling either
    /// end are trimmed; a record containing the whole range is split in two. Invalidating
    /// from block 0 to EOF destroys the tree without bumping `seq`. The cap is not checked.
    pub fn invalidate(&mut self, lblk: u64, len: Option<u64>) {
        self.remove(lblk, len.unwrap_or(INVAL_TO_EOF));
    }

    /// Removes `[start, start + len)`, as `fuse_iomap_cache_remove`.
    fn remove(&mut self, start: u64, len: u64) {
        // An empty tree is left alone before any other test, so nothing bumps seq.
        if self.recs.is_empty() {
            return;
        }
        // The fast path frees the tree without touching seq (`fuse_iext_destroy`). The
        // kernel tests `len >= s_maxbytes`; with s_maxbytes = u64::MAX that is equality.
        if start == 0 && len == S_MAX_BLOCKS {
            self.recs.clear();
            return;
        }
        let len = if len == INVAL_TO_EOF {
            S_MAX_BLOCKS - start
        } else {
            len
        };
        // Saturating: a range reaching past the largest block simply runs to it.
        let end = start.saturating_add(len);
        for got in self.overlapping(start, end) {
            self.del_mapping(got, start.max(got.lblk), end.min(got.end()));
        }
    }

    /// Records overlapping `[start, end)`, copied out so the tree can change under the walk.
    fn overlapping(&self, start: u64, end: u64) -> Vec<CachedMapping> {
        if start >= end {
            return Vec::new();
        }
        let mut found: Vec<CachedMapping> = self
            .recs
            .range(..end)
            .rev()
            .map(|(_, r)| *r)
            .take_while(|r| r.end() > start)
            .collect();
        // The kernel walks backwards too; the order only matters for readability here.
        found.reverse();
        found
    }

    /// Removes `[from, to)` from record `got`, which contains it, as `fuse_iext_del_mapping`'s
    /// four cases: whole record removed, head trimmed, tail trimmed, or split (+1 record).
    fn del_mapping(&mut self, got: CachedMapping, from: u64, to: u64) {
        match (from == got.lblk, to == got.end()) {
            (true, true) => self.remove_rec(got.lblk),
            (true, false) => self.update_rec(got.lblk, got.slice(to, got.end())),
            (false, true) => self.update_rec(got.lblk, got.slice(got.lblk, from)),
            (false, false) => {
                self.update_rec(got.lblk, got.slice(got.lblk, from));
                self.insert_rec(got.slice(to, got.end()));
            }
        }
    }

    /// Adds `new` into a hole, as `fuse_iext_add_mapping`'s four cases (the
    /// `xfs_bmap_add_extent_hole_real` ones): merge with both neighbours, the left, the right,
    /// or neither. The right merge is refused if a three-way merge would be too long.
    fn add(&mut self, new: CachedMapping) {
        let left = self.left_of(&new).filter(|l| can_merge(l, &new));
        let right = self
            .recs
            .get(&new.end())
            .copied()
            .filter(|r| can_merge(&new, r))
            .filter(|r| left.is_none_or(|l| can_merge3(&l, &new, r)));
        match (left, right) {
            (Some(l), Some(r)) => {
                self.remove_rec(r.lblk);
                self.update_rec(l.lblk, grown(l, new.len + r.len));
            }
            (Some(l), None) => self.update_rec(l.lblk, grown(l, new.len)),
            (None, Some(r)) => self.update_rec(r.lblk, grown(new, r.len)),
            (None, None) => self.insert_rec(new),
        }
    }

    /// The record just before `new` (`fuse_iext_peek_prev_extent`).
    fn left_of(&self, new: &CachedMapping) -> Option<CachedMapping> {
        self.recs.range(..new.lblk).next_back().map(|(_, r)| *r)
    }

    /// `fuse_iext_insert`: one more record (+32 bytes) and a seq bump.
    fn insert_rec(&mut self, rec: CachedMapping) {
        self.inc_seq();
        self.recs.insert(rec.lblk, rec);
    }

    /// `fuse_iext_remove`: one record fewer (-32 bytes) and a seq bump.
    fn remove_rec(&mut self, lblk: u64) {
        self.inc_seq();
        self.recs.remove(&lblk);
    }

    /// `fuse_iext_update_extent`: the record at `old_lblk` becomes `rec` in place (its key may
    /// move, as the kernel rewrites parent keys), bytes unchanged, and a seq bump.
    fn update_rec(&mut self, old_lblk: u64, rec: CachedMapping) {
        self.inc_seq();
        self.recs.remove(&old_lblk);
        self.recs.insert(rec.lblk, rec);
    }

    /// `fuse_iext_inc_seq`: wraps, skipping `FUSE_IOMAP_ALWAYS_VALID` (0), which would make
    /// every cookie valid.
    fn inc_seq(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
    }
}

/// `rec` with its length grown by `more` blocks (`can_merge` has bounded the sum).
fn grown(rec: CachedMapping, more: u64) -> CachedMapping {
    CachedMapping {
        len: rec.len + more,
        ..rec
    }
}

/// The block-range checks of `fuse_iomap_check_mapping`: non-zero length, no logical overflow,
/// and (as `fuse_iomap_upsert_validate_dev` bounds `addr + length`) no physical overflow.
fn validate(m: &CachedMapping) -> Result<(), CacheError> {
    if m.len == 0 {
        return Err(CacheError::ZeroLength { lblk: m.lblk });
    }
    if m.lblk.checked_add(m.len).is_none() {
        return Err(CacheError::RangeOverflow {
            lblk: m.lblk,
            len: m.len,
        });
    }
    match m.kind {
        CachedKind::Mapped { pblk } | CachedKind::Unwritten { pblk }
            if pblk.checked_add(m.len).is_none() =>
        {
            Err(CacheError::AddrOverflow { pblk, len: m.len })
        }
        _ => Ok(()),
    }
}

/// What fuse4fs's `iomap_begin` answers and upserts for block `q` of a file whose extents are
/// `exts` (sorted, non-overlapping): the whole extent containing `q`, untrimmed
/// (`fuse4fs_iomap_begin_extent`); else the hole from `q` to the next extent's start; else the
/// hole from `q` to `eof_blocks`, and at least to `q + 1` (`fuse4fs_iomap_hole_to_eof`, with a
/// one-block request).
///
/// Models extent-mapped files only: block-mapped files (`fuse4fs_iomap_begin_indirect`) and
/// write allocation are not modelled. `q` is expected below `u64::MAX` (ext4 blocks are below
/// 2^32); at `u64::MAX` the one-block hole overflows and an upsert rejects it.
pub fn server_mapping(exts: &[Extent], q: u64, eof_blocks: u64) -> CachedMapping {
    // First extent ending after q: it contains q, or it is the next extent after the hole.
    let i = exts.partition_point(|e| e.end() <= q);
    let answer = match exts.get(i) {
        Some(e) if u64::from(e.lblk) <= q => BlockMap::Mapped(*e),
        Some(e) => BlockMap::Hole { next: Some(e.lblk) },
        None => BlockMap::Hole { next: None },
    };
    server_answer(answer, q, eof_blocks)
}

/// [`server_mapping`] from the server's own lookup of `q` (the extent holding it, or the hole
/// with where the next extent starts).
pub fn server_answer(answer: BlockMap, q: u64, eof_blocks: u64) -> CachedMapping {
    match answer {
        BlockMap::Mapped(e) => extent_mapping(&e),
        BlockMap::Hole { next: Some(n) } => hole(q, u64::from(n).saturating_sub(q).max(1)),
        BlockMap::Hole { next: None } => hole(q, eof_blocks.saturating_sub(q).max(1)),
    }
}

/// An ext4 extent as fuse4fs maps it: MAPPED, or UNWRITTEN for an uninitialised extent.
fn extent_mapping(e: &Extent) -> CachedMapping {
    let kind = if e.unwritten {
        CachedKind::Unwritten { pblk: e.pblk }
    } else {
        CachedKind::Mapped { pblk: e.pblk }
    };
    CachedMapping {
        lblk: u64::from(e.lblk),
        len: u64::from(e.len),
        kind,
    }
}

/// A hole record of `len` blocks from `lblk`.
fn hole(lblk: u64, len: u64) -> CachedMapping {
    CachedMapping {
        lblk,
        len,
        kind: CachedKind::Hole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapped(lblk: u64, len: u64, pblk: u64) -> CachedMapping {
        CachedMapping {
            lblk,
            len,
            kind: CachedKind::Mapped { pblk },
        }
    }

    fn unwritten(lblk: u64, len: u64, pblk: u64) -> CachedMapping {
        CachedMapping {
            lblk,
            len,
            kind: CachedKind::Unwritten { pblk },
        }
    }

    fn recs(c: &MappingCache) -> Vec<CachedMapping> {
        c.iter().collect()
    }

    fn cache_with(ms: &[CachedMapping]) -> MappingCache {
        let mut c = MappingCache::default();
        for m in ms {
            c.upsert(*m).unwrap();
        }
        c
    }

    #[test]
    fn max_bytes_is_clamped_like_set_maxbytes() {
        assert_eq!(MappingCache::new(0).max_bytes(), DEFAULT_MAX_BYTES);
        assert_eq!(MappingCache::new(1).max_bytes(), MIN_MAX_BYTES);
        assert_eq!(MappingCache::new(u64::MAX).max_bytes(), MAX_MAX_BYTES);
        assert_eq!(MappingCache::new(4096).max_bytes(), 4096);
    }

    #[test]
    fn merge_neither_inserts_a_record() {
        // Physically not adjacent, different kind, and a logical gap: three records.
        let c = cache_with(&[mapped(0, 4, 100), mapped(4, 4, 200), unwritten(8, 4, 204)]);
        let c2 = cache_with(&[mapped(0, 4, 100), mapped(5, 4, 104)]);
        assert_eq!(c.records(), 3);
        assert_eq!(c2.records(), 2);
        assert_eq!(c.bytes(), 3 * RECORD_BYTES);
        assert_eq!(c.seq(), 1 + 3);
    }

    #[test]
    fn merge_left_grows_the_left_record() {
        let c = cache_with(&[mapped(0, 4, 100), mapped(4, 2, 104)]);
        assert_eq!(recs(&c), vec![mapped(0, 6, 100)]);
        assert_eq!(c.seq(), 1 + 2, "one insert, one update");
    }

    #[test]
    fn merge_right_moves_the_right_record() {
        let c = cache_with(&[unwritten(4, 4, 104), unwritten(2, 2, 102)]);
        assert_eq!(recs(&c), vec![unwritten(2, 6, 102)]);
        assert_eq!(c.seq(), 1 + 2);
    }

    #[test]
    fn merge_both_joins_three_records() {
        let hole = |l, n| CachedMapping {
            lblk: l,
            len: n,
            kind: CachedKind::Hole,
        };
        let mut c = cache_with(&[hole(0, 3), hole(5, 3)]);
        assert_eq!(c.seq(), 3);
        c.upsert(hole(3, 2)).unwrap();
        assert_eq!(recs(&c), vec![hole(0, 8)]);
        assert_eq!(c.seq(), 5, "remove right, update left");
        assert_eq!(c.bytes(), RECORD_BYTES);
    }

    #[test]
    fn three_way_merge_respects_max_len() {
        let half = MAX_LEN / 2;
        let mut c = cache_with(&[mapped(0, half, 0), mapped(half + 1, half, half + 1)]);
        c.upsert(mapped(half, 1, half)).unwrap();
        // left + new fits; left + new + right does not: only the left merge happens.
        assert_eq!(
            recs(&c),
            vec![mapped(0, half + 1, 0), mapped(half + 1, half, half + 1)]
        );
    }

    #[test]
    fn upsert_replaces_overlapped_records() {
        let mut c = cache_with(&[mapped(0, 10, 100)]);
        c.upsert(unwritten(3, 2, 500)).unwrap();
        assert_eq!(
            recs(&c),
            vec![mapped(0, 3, 100), unwritten(3, 2, 500), mapped(5, 5, 105)]
        );
        // Upserting the original mapping back splits nothing and merges all three.
        c.upsert(mapped(3, 2, 103)).unwrap();
        assert_eq!(recs(&c), vec![mapped(0, 10, 100)]);
    }

    #[test]
    fn invalidate_trims_head_and_tail() {
        let mut c = cache_with(&[mapped(0, 10, 100), mapped(20, 10, 300)]);
        c.invalidate(5, Some(20));
        assert_eq!(recs(&c), vec![mapped(0, 5, 100), mapped(25, 5, 305)]);
        assert_eq!(c.seq(), 3 + 2, "two in-place updates");
        assert_eq!(c.bytes(), 2 * RECORD_BYTES);
    }

    #[test]
    fn invalidate_inside_a_record_splits_it() {
        let mut c = cache_with(&[unwritten(0, 10, 100)]);
        c.invalidate(4, Some(2));
        assert_eq!(recs(&c), vec![unwritten(0, 4, 100), unwritten(6, 4, 106)]);
        assert_eq!(c.bytes(), 2 * RECORD_BYTES, "+1 record");
        assert_eq!(c.seq(), 2 + 2, "update then insert");
    }

    #[test]
    fn invalidate_removes_covered_records_and_ignores_empty_ranges() {
        let mut c = cache_with(&[mapped(0, 2, 100), mapped(4, 2, 200), mapped(8, 2, 300)]);
        let seq = c.seq();
        c.invalidate(2, Some(2));
        c.invalidate(3, Some(0));
        assert_eq!(c.seq(), seq, "nothing overlapped, nothing bumped");
        c.invalidate(3, Some(4));
        assert_eq!(recs(&c), vec![mapped(0, 2, 100), mapped(8, 2, 300)]);
        assert_eq!(c.seq(), seq + 1);
    }

    #[test]
    fn invalidate_to_eof_from_nonzero_removes_records() {
        let mut c = cache_with(&[mapped(0, 10, 100), mapped(20, 10, 300)]);
        c.invalidate(5, None);
        assert_eq!(recs(&c), vec![mapped(0, 5, 100)]);
        assert_eq!(c.seq(), 3 + 2, "trim and remove both bump seq");
        c.invalidate(2, Some(u64::MAX));
        assert_eq!(recs(&c), vec![mapped(0, 2, 100)], "u64::MAX is TO_EOF");
    }

    #[test]
    fn invalidate_zero_to_eof_destroys_without_seq_bump() {
        let mut c = cache_with(&[mapped(0, 10, 100), mapped(20, 10, 300)]);
        let seq = c.seq();
        c.invalidate(0, None);
        assert_eq!(c.records(), 0);
        assert_eq!(c.bytes(), 0);
        assert_eq!(c.seq(), seq, "fuse_iext_destroy does not bump seq");
        assert_eq!(c.destroys(), 0, "the fast path is not the cap");
        // A bounded range from 0 removes record by record, bumping seq.
        let mut c = cache_with(&[mapped(0, 10, 100)]);
        c.invalidate(0, Some(1 << 40));
        assert_eq!((c.records(), c.seq()), (0, 3));
    }

    #[test]
    fn cap_keeps_max_records_and_destroys_strictly_above() {
        let mut c = MappingCache::new(MIN_MAX_BYTES);
        let max_recs = MIN_MAX_BYTES / RECORD_BYTES;
        // Every other block, never mergeable: one record each.
        for i in 0..max_recs {
            assert!(!c.upsert(mapped(2 * i, 1, 1000 * i)).unwrap().destroyed);
        }
        assert_eq!(c.bytes(), MIN_MAX_BYTES);
        // bytes == max is not over the cap: kept, now max + 1 records.
        assert!(!c.upsert(mapped(2 * max_recs, 1, 99_999)).unwrap().destroyed);
        assert_eq!(c.records() as u64, max_recs + 1);
        let seq = c.seq();
        // Still over the cap after its removal: destroyed, one record left.
        let up = c.upsert(mapped(1_000, 1, 5)).unwrap();
        assert!(up.destroyed);
        assert_eq!(recs(&c), vec![mapped(1_000, 1, 5)]);
        assert_eq!(
            (c.destroys(), c.seq()),
            (1, seq + 1),
            "only the add bumps seq"
        );
    }

    #[test]
    fn cap_is_checked_after_the_removal() {
        let mut c = MappingCache::new(MIN_MAX_BYTES);
        let max_recs = MIN_MAX_BYTES / RECORD_BYTES;
        for i in 0..=max_recs {
            c.upsert(mapped(2 * i, 1, 1000 * i)).unwrap();
        }
        // Replacing one record removes it first, which brings bytes back to max: kept.
        let up = c.upsert(mapped(0, 1, 7)).unwrap();
        assert!(!up.destroyed);
        assert_eq!(c.records() as u64, max_recs + 1);
        assert_eq!(c.lookup(0), Some(mapped(0, 1, 7)));
    }

    #[test]
    fn seq_starts_at_one_and_skips_zero() {
        let mut c = MappingCache::default();
        assert_eq!(c.seq(), 1);
        c.seq = u64::MAX;
        c.upsert(mapped(0, 1, 1)).unwrap();
        assert_eq!(c.seq(), 1, "wraps past FUSE_IOMAP_ALWAYS_VALID");
    }

    #[test]
    fn upsert_rejects_bad_ranges() {
        let mut c = MappingCache::default();
        assert!(matches!(
            c.upsert(mapped(3, 0, 1)),
            Err(CacheError::ZeroLength { lblk: 3 })
        ));
        assert!(matches!(
            c.upsert(mapped(u64::MAX, 1, 1)),
            Err(CacheError::RangeOverflow { .. })
        ));
        assert!(matches!(
            c.upsert(unwritten(0, 2, u64::MAX)),
            Err(CacheError::AddrOverflow { .. })
        ));
        assert_eq!((c.records(), c.seq()), (0, 1));
    }

    #[test]
    fn lookup_hits_only_recorded_blocks() {
        let hole = CachedMapping {
            lblk: 10,
            len: 5,
            kind: CachedKind::Hole,
        };
        let c = cache_with(&[mapped(0, 4, 100), hole]);
        assert_eq!(c.lookup(3), Some(mapped(0, 4, 100)));
        assert_eq!(c.lookup(4), None, "an unrecorded gap is a miss");
        assert_eq!(c.lookup(12), Some(hole), "a recorded hole is a hit");
        assert_eq!(c.lookup(15), None);
        assert_eq!(
            mapped(0, 4, 100).block_at(3),
            Some(CachedKind::Mapped { pblk: 103 })
        );
        assert_eq!(mapped(0, 4, 100).block_at(4), None);
    }

    fn ext(lblk: u32, pblk: u64, len: u32, unwritten: bool) -> Extent {
        Extent {
            lblk,
            pblk,
            len,
            unwritten,
        }
    }

    #[test]
    fn server_mapping_answers_like_fuse4fs() {
        let exts = [ext(2, 100, 3, false), ext(10, 200, 2, true)];
        assert_eq!(
            server_mapping(&exts, 3, 20),
            mapped(2, 3, 100),
            "whole extent"
        );
        assert_eq!(server_mapping(&exts, 11, 20), unwritten(10, 2, 200));
        let hole = |l, n| CachedMapping {
            lblk: l,
            len: n,
            kind: CachedKind::Hole,
        };
        assert_eq!(
            server_mapping(&exts, 0, 20),
            hole(0, 2),
            "hole to next extent"
        );
        assert_eq!(server_mapping(&exts, 6, 20), hole(6, 4));
        assert_eq!(server_mapping(&exts, 12, 20), hole(12, 8), "hole to EOF");
        assert_eq!(
            server_mapping(&exts, 25, 20),
            hole(25, 1),
            "past EOF: one block"
        );
        assert_eq!(server_mapping(&[], 0, 0), hole(0, 1));
    }

    /// One step of a random workload.
    #[derive(Debug, Clone)]
    enum Op {
        Upsert(CachedMapping),
        Invalidate(u64, Option<u64>),
    }

    /// Small logical and physical spaces so merges, trims and splits happen often: physical
    /// blocks follow the logical ones at one of two offsets, so neighbours are often adjacent.
    fn op() -> impl Strategy<Value = Op> {
        let kind = (0u8..3, prop_oneof![Just(1000u64), Just(5000)]);
        let upsert = (0u64..64, 1u64..12, kind).prop_map(|(lblk, len, (k, off))| {
            let kind = match k {
                0 => CachedKind::Mapped { pblk: lblk + off },
                1 => CachedKind::Unwritten { pblk: lblk + off },
                _ => CachedKind::Hole,
            };
            Op::Upsert(CachedMapping { lblk, len, kind })
        });
        let inval = (
            prop_oneof![3 => 0u64..70, 1 => Just(0u64)],
            prop::option::weighted(0.8, 0u64..16),
        )
            .prop_map(|(l, n)| Op::Invalidate(l, n));
        prop_oneof![3 => upsert, 1 => inval]
    }

    /// The naive model: what each block maps to.
    type Naive = BTreeMap<u64, CachedKind>;

    fn naive_apply(naive: &mut Naive, op: &Op, destroyed: bool) {
        match *op {
            Op::Upsert(m) => {
                if destroyed {
                    naive.clear();
                }
                for b in m.lblk..m.end() {
                    naive.insert(b, m.block_at(b).unwrap());
                }
            }
            Op::Invalidate(l, n) => {
                let end = n.map_or(u64::MAX, |n| l.saturating_add(n));
                naive.retain(|&b, _| b < l || b >= end);
            }
        }
    }

    fn check_canonical(c: &MappingCache) -> Result<(), TestCaseError> {
        let rs = recs(c);
        for w in rs.windows(2) {
            prop_assert!(w[0].end() <= w[1].lblk, "overlap: {:?}", w);
            prop_assert!(!can_merge(&w[0], &w[1]), "unmerged: {:?}", w);
        }
        prop_assert!(rs.iter().all(|r| r.len > 0));
        prop_assert_eq!(c.bytes(), c.records() as u64 * RECORD_BYTES);
        Ok(())
    }

    fn check_against_naive(c: &MappingCache, naive: &Naive) -> Result<(), TestCaseError> {
        for b in 0..80 {
            let got = c.lookup(b).and_then(|r| r.block_at(b));
            prop_assert_eq!(got, naive.get(&b).copied(), "block {}", b);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn cache_equals_per_block_model(
            ops in prop::collection::vec(op(), 1..80),
            small_cap in any::<bool>(),
        ) {
            let mut c = MappingCache::new(if small_cap { MIN_MAX_BYTES } else { u64::MAX });
            let mut naive = Naive::new();
            for op in &ops {
                let destroyed = match *op {
                    Op::Upsert(m) => c.upsert(m).unwrap().destroyed,
                    Op::Invalidate(l, n) => {
                        c.invalidate(l, n);
                        false
                    }
                };
                naive_apply(&mut naive, op, destroyed);
                check_canonical(&c)?;
                check_against_naive(&c, &naive)?;
                // The cap bounds a tree only right after an upsert: invalidation splits
                // records (+1 each) without checking it, as in the kernel.
                if matches!(op, Op::Upsert(_)) {
                    prop_assert!(c.bytes() <= c.max_bytes() + RECORD_BYTES);
                }
            }
            if !small_cap {
                prop_assert_eq!(c.destroys(), 0);
            }
        }
    }
}
