//! Extent maps: the `(lblk, pblk, len, unwritten)` runs of a file, and the checked walk of the
//! on-disk extent tree that produces them.

/// Largest extent-tree depth ext4 allows (the kernel's `EXT4_MAX_EXTENT_DEPTH`).
pub const MAX_EXTENT_DEPTH: u16 = 5;

/// One past the last addressable logical block: ext4 maps blocks `0..=2^32 - 2` (the kernel's
/// `EXT_MAX_BLOCKS` is `2^32 - 1`, and an extent's `lblk + len` must not wrap a u32).
pub const MAX_LBLK: u64 = (1 << 32) - 1;

/// One run of a file: `len` logical blocks from `lblk` live at physical blocks from `pblk`.
///
/// Extents of one file are sorted by `lblk` and never overlap; gaps between them are holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extent {
    /// First logical block (file offset / block size).
    pub lblk: u32,
    /// First physical block (byte offset in the image / block size).
    pub pblk: u64,
    /// Number of blocks, at least 1. `lblk + len <= MAX_LBLK`.
    pub len: u32,
    /// Allocated but not written (`fallocate`): reads as zeros.
    pub unwritten: bool,
}

impl Extent {
    /// One past the last logical block, as u64 so the sum never overflows.
    pub fn end(&self) -> u64 {
        u64::from(self.lblk) + u64::from(self.len)
    }

    /// Whether logical block `lblk` lies inside this extent.
    pub fn contains(&self, lblk: u32) -> bool {
        lblk >= self.lblk && u64::from(lblk) < self.end()
    }
}

/// What one logical block maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMap {
    /// The block lies in this extent.
    Mapped(Extent),
    /// The block is in a hole that ends where the next extent starts (`None`: no extent follows).
    Hole {
        /// First logical block of the next extent.
        next: Option<u32>,
    },
}

// ---------------------------------------------------------------------------------------------
// The on-disk extent tree.
//
// A node is a 12-byte header followed by 12-byte entries: extents in leaves (depth 0), index
// entries above. The root node lives in the inode's 60-byte `i_block` (4 entries); the others
// fill a block each, with a 4-byte checksum tail under `metadata_csum`.
//
// Why the walk terminates on any input: every node is checked to have exactly its parent's depth
// minus one (and the root at most 5), so the recursion is at most 6 deep; every entry's key must
// lie in the half-open range its parent's index entry gives it, and keys strictly increase within
// a node, so the ranges of sibling subtrees are disjoint and no index node can be accepted at two
// places in the tree. A cycle or a block shared between subtrees is therefore an error as soon as
// its keys are compared, and the number of nodes read is bounded by the number of index entries,
// which is bounded by the blocks of the image.

use crate::checksum::{ext4_crc, inode_seed};
use crate::error::{CorruptKind, Error, Result};
use crate::features::RoCompatFeatures;
use crate::fs::Fs;
use crate::inode::Inode;
use crate::le::{join, u16_at, u32_at};

const EXTENT_MAGIC: u16 = 0xF30A;
const HEADER_SIZE: usize = 12;
const ENTRY_SIZE: usize = 12;
/// `ee_len` above this marks an unwritten extent of `ee_len - 32768` blocks.
const INIT_MAX_LEN: u16 = 32768;

/// A validated node header.
#[derive(Debug, Clone, Copy)]
struct Header {
    entries: u16,
    max: u16,
    depth: u16,
}

/// One index entry: the subtree at `child` holds the blocks from `key` (up to the next key).
#[derive(Debug, Clone, Copy)]
struct Index {
    key: u32,
    child: u64,
}

/// Where a node comes from, for error messages and checksums: block 0 is the inode's root.
struct NodeCtx<'a> {
    fs: &'a Fs,
    inode: &'a Inode,
}

impl NodeCtx<'_> {
    fn err(&self, kind: CorruptKind) -> Error {
        Error::corrupt(self.inode.ino, kind)
    }

    /// Checks a node's header. `depth` is what the parent promised (the root promises nothing).
    fn header(&self, node: &[u8], block: u64, depth: Option<u16>) -> Result<Header> {
        let magic = u16_at(node, 0);
        if magic != EXTENT_MAGIC {
            return Err(self.err(CorruptKind::ExtentMagic { block, magic }));
        }
        let h = Header {
            entries: u16_at(node, 2),
            max: u16_at(node, 4),
            depth: u16_at(node, 6),
        };
        let room = (node.len() - HEADER_SIZE) / ENTRY_SIZE;
        if h.max == 0 || usize::from(h.max) > room {
            return Err(self.err(CorruptKind::ExtentMax {
                block,
                max: h.max,
                room,
            }));
        }
        if h.entries > h.max {
            return Err(self.err(CorruptKind::ExtentEntries {
                block,
                entries: h.entries,
                max: h.max,
            }));
        }
        match depth {
            Some(expected) if h.depth != expected => {
                return Err(self.err(CorruptKind::ExtentDepth {
                    block,
                    depth: h.depth,
                    expected,
                }));
            }
            None if h.depth > MAX_EXTENT_DEPTH => {
                return Err(self.err(CorruptKind::ExtentTooDeep {
                    block,
                    depth: h.depth,
                }));
            }
            _ => {}
        }
        if h.entries == 0 && h.depth > 0 {
            return Err(self.err(CorruptKind::ExtentEmptyIndex { block }));
        }
        Ok(h)
    }

    /// Reads a non-root node, verifying its checksum tail under `metadata_csum`.
    fn read_node(&self, block: u64) -> Result<Vec<u8>> {
        let node = self.fs.read_block(block)?;
        let sb = self.fs.superblock();
        if sb
            .feature_ro_compat
            .contains(RoCompatFeatures::METADATA_CSUM)
        {
            let max = usize::from(u16_at(&node, 4));
            let tail = HEADER_SIZE + max * ENTRY_SIZE;
            // A bad max is reported by `header`; only checksum nodes whose tail fits.
            if u16_at(&node, 0) == EXTENT_MAGIC && tail + 4 <= node.len() {
                let seed = inode_seed(sb.csum_seed, self.inode.ino, self.inode.generation);
                let computed = ext4_crc(seed, &node[..tail]);
                let stored = u32_at(&node, tail);
                if stored != computed {
                    return Err(self.err(CorruptKind::ExtentChecksum {
                        block,
                        stored,
                        computed,
                    }));
                }
            }
        }
        Ok(node)
    }

    /// Decodes and checks the extents of a leaf: each inside `[lo, hi)`, sorted, not
    /// overlapping, below `MAX_LBLK`, and inside the filesystem.
    fn leaf(&self, node: &[u8], block: u64, h: Header, lo: u64, hi: u64) -> Result<Vec<Extent>> {
        let sb = self.fs.superblock();
        let mut out: Vec<Extent> = Vec::with_capacity(usize::from(h.entries));
        for entry in 0..h.entries {
            let e = &node[HEADER_SIZE + usize::from(entry) * ENTRY_SIZE..][..ENTRY_SIZE];
            let raw_len = u16_at(e, 4);
            let (len, unwritten) = if raw_len > INIT_MAX_LEN {
                (raw_len - INIT_MAX_LEN, true)
            } else {
                (raw_len, false)
            };
            let ext = Extent {
                lblk: u32_at(e, 0),
                pblk: join(u32_at(e, 8), u32::from(u16_at(e, 6))),
                len: u32::from(len),
                unwritten,
            };
            if len == 0 {
                return Err(self.err(CorruptKind::ExtentZeroLength { block, entry }));
            }
            if ext.end() > MAX_LBLK {
                return Err(self.err(CorruptKind::ExtentPastMaxLblk {
                    block,
                    entry,
                    lblk: ext.lblk,
                    len: ext.len,
                }));
            }
            let floor = out.last().map_or(lo, Extent::end);
            if u64::from(ext.lblk) < floor || ext.end() > hi {
                return Err(self.err(CorruptKind::ExtentOutOfOrder {
                    block,
                    entry,
                    lblk: ext.lblk,
                    end: ext.end(),
                    floor,
                    hi,
                }));
            }
            if ext.pblk < u64::from(sb.first_data_block)
                || ext.pblk.saturating_add(u64::from(ext.len)) > sb.blocks_count
            {
                return Err(self.err(CorruptKind::ExtentOutsideFs {
                    block,
                    entry,
                    pblk: ext.pblk,
                    len: ext.len,
                    blocks_count: sb.blocks_count,
                }));
            }
            out.push(ext);
        }
        Ok(out)
    }

    /// Decodes and checks the entries of an index node: keys strictly increasing inside
    /// `[lo, hi)`, children inside the filesystem.
    fn index(&self, node: &[u8], block: u64, h: Header, lo: u64, hi: u64) -> Result<Vec<Index>> {
        let sb = self.fs.superblock();
        let mut out: Vec<Index> = Vec::with_capacity(usize::from(h.entries));
        for entry in 0..h.entries {
            let e = &node[HEADER_SIZE + usize::from(entry) * ENTRY_SIZE..][..ENTRY_SIZE];
            let idx = Index {
                key: u32_at(e, 0),
                child: join(u32_at(e, 4), u32::from(u16_at(e, 8))),
            };
            let floor = out.last().map_or(lo, |p| u64::from(p.key) + 1);
            if u64::from(idx.key) < floor || u64::from(idx.key) >= hi {
                return Err(self.err(CorruptKind::IndexKey {
                    block,
                    entry,
                    key: idx.key,
                    floor,
                    hi,
                }));
            }
            if idx.child <= u64::from(sb.first_data_block) || idx.child >= sb.blocks_count {
                return Err(self.err(CorruptKind::IndexChild {
                    block,
                    entry,
                    child: idx.child,
                    blocks_count: sb.blocks_count,
                }));
            }
            out.push(idx);
        }
        Ok(out)
    }

    /// Hands every leaf of the subtree rooted at `node`, in order, to `out`.
    fn collect(&self, node: &[u8], at: Span, out: &mut dyn FnMut(Vec<Extent>)) -> Result<()> {
        let h = self.header(node, at.block, at.depth)?;
        if h.depth == 0 {
            out(self.leaf(node, at.block, h, at.lo, at.hi)?);
            return Ok(());
        }
        let index = self.index(node, at.block, h, at.lo, at.hi)?;
        for child in children(&index, h.depth, at.hi) {
            self.collect(&self.read_node(child.block)?, child, out)?;
        }
        Ok(())
    }

    /// First extent of the subtree at `node`, if it has one (leaves may be empty).
    fn first_extent(&self, node: &[u8], at: Span) -> Result<Option<Extent>> {
        let h = self.header(node, at.block, at.depth)?;
        if h.depth == 0 {
            return Ok(self.leaf(node, at.block, h, at.lo, at.hi)?.first().copied());
        }
        let index = self.index(node, at.block, h, at.lo, at.hi)?;
        for child in children(&index, h.depth, at.hi) {
            if let Some(e) = self.first_extent(&self.read_node(child.block)?, child)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Finds what `lblk` maps to in the subtree at `node`: one root-to-leaf path, plus, for a
    /// block in a hole at the end of a leaf, the first extent of the following subtrees.
    fn lookup(&self, node: &[u8], at: Span, lblk: u32) -> Result<BlockMap> {
        let h = self.header(node, at.block, at.depth)?;
        if h.depth == 0 {
            let leaf = self.leaf(node, at.block, h, at.lo, at.hi)?;
            let i = leaf.partition_point(|e| e.lblk <= lblk);
            return Ok(match i.checked_sub(1).map(|p| leaf[p]) {
                Some(e) if e.contains(lblk) => BlockMap::Mapped(e),
                _ => BlockMap::Hole {
                    next: leaf.get(i).map(|e| e.lblk),
                },
            });
        }
        let index = self.index(node, at.block, h, at.lo, at.hi)?;
        // The subtree whose key is the last one <= lblk (the first subtree for blocks before it).
        let i = index.partition_point(|x| x.key <= lblk).saturating_sub(1);
        let mut subtrees = children(&index, h.depth, at.hi).skip(i);
        let Some(child) = subtrees.next() else {
            // Unreachable: index nodes have at least one entry (checked by `header`).
            return Ok(BlockMap::Hole { next: None });
        };
        let found = self.lookup(&self.read_node(child.block)?, child, lblk)?;
        if let BlockMap::Hole { next: None } = found {
            // The hole runs past this subtree: the next extent starts in a later sibling.
            for sib in subtrees {
                if let Some(e) = self.first_extent(&self.read_node(sib.block)?, sib)? {
                    return Ok(BlockMap::Hole { next: Some(e.lblk) });
                }
            }
        }
        Ok(found)
    }
}

/// A node to visit: its block (0 for the root in `i_block`), the depth its parent promises
/// (none for the root), and the half-open key range its entries must stay in.
#[derive(Debug, Clone, Copy)]
struct Span {
    block: u64,
    depth: Option<u16>,
    lo: u64,
    hi: u64,
}

impl Span {
    const ROOT: Span = Span {
        block: 0,
        depth: None,
        lo: 0,
        hi: MAX_LBLK,
    };
}

/// The subtrees of an index node at `depth` whose own range ends at `hi`: child `i` holds
/// keys from its index key up to the next entry's key.
fn children(index: &[Index], depth: u16, hi: u64) -> impl Iterator<Item = Span> + '_ {
    index.iter().enumerate().map(move |(i, idx)| Span {
        block: idx.child,
        depth: Some(depth - 1),
        lo: u64::from(idx.key),
        hi: index.get(i + 1).map_or(hi, |n| u64::from(n.key)),
    })
}

/// Every extent of an extent-mapped inode, checked.
pub(crate) fn extents(fs: &Fs, inode: &Inode) -> Result<Vec<Extent>> {
    let ctx = NodeCtx { fs, inode };
    let mut out = Vec::new();
    ctx.collect(&inode.i_block, Span::ROOT, &mut |leaf| out.extend(leaf))?;
    Ok(out)
}

/// The extents of an extent-mapped inode leaf by leaf, as the tree stores them.
pub(crate) fn leaves(fs: &Fs, inode: &Inode) -> Result<Vec<Vec<Extent>>> {
    let ctx = NodeCtx { fs, inode };
    let mut out = Vec::new();
    ctx.collect(&inode.i_block, Span::ROOT, &mut |leaf| out.push(leaf))?;
    Ok(out)
}

/// What logical block `lblk` of an extent-mapped inode maps to: O(depth) block reads.
pub(crate) fn map_block(fs: &Fs, inode: &Inode, lblk: u32) -> Result<BlockMap> {
    let ctx = NodeCtx { fs, inode };
    ctx.lookup(&inode.i_block, Span::ROOT, lblk)
}

/// Depth of an extent-mapped inode's tree (0: the root is a leaf).
pub(crate) fn depth(fs: &Fs, inode: &Inode) -> Result<u16> {
    let ctx = NodeCtx { fs, inode };
    Ok(ctx.header(&inode.i_block, 0, None)?.depth)
}
