//! An extent tree built like the kernel's in-core extent tree (XFS `xfs_iext_tree.c`, whose
//! design the fuse-iomap mapping cache reuses): the most faithful B-tree baseline for the
//! learned index, because it is the structure the kernel would consult instead of an upcall.
//!
//! Written from the kernel's description, not its code. The shape:
//!
//! - Every node is [`NODE_SIZE`] = 256 bytes, allocated 256-byte aligned: four 64-byte cache
//!   lines, as a `kmalloc-256` object is.
//! - An inner node holds [`KEYS_PER_NODE`] = 16 keys (`u64`, the first logical block under each
//!   child) followed by 16 child links (8 bytes each, a pointer's width). Unused key slots hold
//!   [`KEY_INVALID`] (2^63), which sorts after every real key, so the scan needs no count.
//! - A leaf holds as many records as fit beside two 8-byte links (`prev`, `next`):
//!   `(256 - 16) / size_of::<record>()`. Unused record slots are zero (a record's length is
//!   never 0), so a leaf's record count is where the first empty slot is.
//! - Lookups scan each node linearly from the left, never binary search: at 16 keys the scan
//!   touches at most two cache lines of keys and stays branch-predictable.
//! - Height 0 is an empty tree; height 1 is a root that is a single leaf; each inner level adds
//!   one. The kernel grows a height-1 root one record at a time (sized to exactly its records,
//!   without links) and only gives it a whole node when it fills; [`IextIndex`] does the same
//!   (see [`IextIndex::heap_bytes`]).
//!
//! Building from a sorted map gives the tree the kernel gets when it loads an inode's extents
//! in order: appending to a full node spills into a fresh node instead of splitting it, so
//! every leaf holds [`IextRecord::PER_LEAF`] records and every inner node 16 children, except
//! the rightmost node of each level. A tree of height `h` therefore holds up to
//! `PER_LEAF * 16^(h-1)` extents ([`IextIndex::capacity_at_height`]).
//!
//! The kernel links nodes with pointers to separately allocated objects; here nodes live in two
//! arenas (one `Vec` of inner nodes, one of leaves, both 256-byte aligned) and links are indices
//! into them (kept 8 bytes wide so node sizes match). A lookup visits the same nodes and cache
//! lines; it costs one extra add per level to turn an index into an address, and in exchange the
//! tree needs no `unsafe`.
//!
//! Two record layouts, chosen by the type parameter:
//!
//! | layout | record | records per leaf | leaf bytes used | keys per inner node |
//! |---|---|---|---|---|
//! | [`XfsRec`] (`xfs_iext_rec`) | 16 bytes | 15 | 240 + 16 links = 256 | 16 |
//! | [`FuseRec`] (`fuse_iomap_io`) | 32 bytes | 7 | 224 + 16 links = 240 (16 spare) | 16 |

use std::fmt::Debug;

use ext4::{BlockMap, Extent};

use super::{check_extents, ExtentIndex, Lookup, Structure};
use crate::mapping::{FuseIomapIo, MappingType};
use crate::model::ModelError;

/// Bytes of every tree node, inner or leaf (four cache lines).
pub const NODE_SIZE: usize = 256;

/// Bytes of one link (the kernel's pointer width, kept so node capacities match).
const LINK_BYTES: usize = 8;

/// Keys (and as many child links) per inner node: `256 / (8-byte key + 8-byte link)` = 16.
pub const KEYS_PER_NODE: usize = NODE_SIZE / (8 + LINK_BYTES);

/// The key of an unused inner-node slot: above every real key (ours are below 2^32), so the
/// left-to-right scan stops at it without knowing how many slots are used.
pub const KEY_INVALID: u64 = 1 << 63;

/// The link of an absent node (no previous / next leaf, unused child slot).
const NO_NODE: u64 = u64::MAX;

/// Records of `rec_bytes` bytes that fit in a leaf beside its `prev` and `next` links.
pub const fn recs_per_leaf(rec_bytes: usize) -> usize {
    (NODE_SIZE - 2 * LINK_BYTES) / rec_bytes
}

/// A field of an extent that a record layout cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unfit {
    /// Which field (`"length"`, `"physical block"`).
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// Bits the layout has for it.
    pub bits: u32,
}

/// Why an [`IextIndex`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IextError {
    /// The extent map is not sorted, non-overlapping and within the block space.
    #[error(transparent)]
    Extents(#[from] ModelError),
    /// An extent does not fit the record layout (only [`XfsRec`] has limits: 21-bit lengths,
    /// 52-bit physical blocks; ext4 extents never exceed them).
    #[error("extent {index}: {} {} does not fit the {layout} record's {} bits", .unfit.field, .unfit.value, .unfit.bits)]
    Unfit {
        /// Index of the extent.
        index: usize,
        /// The structure of that record layout ([`IextRecord::STRUCTURE`]'s name).
        layout: &'static str,
        /// The field that does not fit.
        unfit: Unfit,
    },
}

/// One leaf record layout. Implemented by [`XfsRec`] and [`FuseRec`]; the tree is generic over
/// it so both layouts share one implementation and differ only in records per leaf.
pub trait IextRecord: Copy + Debug + Send + Sync + 'static {
    /// The structure a tree of these records is ([`Structure::Iext16`] or
    /// [`Structure::Iext32`]): its name in benches, reports and errors.
    const STRUCTURE: Structure;
    /// Records per leaf, computed as the kernel does: `(256 - 16) / size_of::<Self>()`.
    const PER_LEAF: usize = recs_per_leaf(std::mem::size_of::<Self>());
    /// The record array of one leaf, `[Self; PER_LEAF]`. An associated type because stable
    /// Rust cannot size an array by an associated constant of a generic parameter; the tree
    /// checks at compile time that its length is [`Self::PER_LEAF`].
    type Recs: Copy + Debug + Send + Sync + AsRef<[Self]> + AsMut<[Self]>;
    /// A leaf's worth of unused slots.
    const EMPTY_RECS: Self::Recs;
    /// Packs an extent, or names the field that does not fit.
    fn pack(e: &Extent) -> Result<Self, Unfit>;
    /// First logical block (the record's key).
    fn start(&self) -> u64;
    /// Length in blocks; 0 marks an unused slot (every extent has at least one block).
    fn blocks(&self) -> u64;
    /// The extent this record holds.
    fn unpack(&self) -> Extent;
}

/// The XFS in-core extent record (`xfs_iext_rec`): an extent packed into two `u64`s.
///
/// ```text
/// lo: bits  0..=53  logical start (54 bits; ours are u32)
///     bits 54..=63  physical start, low 10 bits
/// hi: bits  0..=20  length in blocks (21 bits: 1 ..= 2^21 - 1)
///     bit  21       unwritten
///     bits 22..=63  physical start, high 42 bits (so physical starts are below 2^52)
/// ```
///
/// 16 bytes; 15 per leaf. `hi == 0` only in an unused slot (lengths are at least 1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XfsRec {
    /// Logical start and the low bits of the physical start.
    pub lo: u64,
    /// Length, unwritten flag and the high bits of the physical start.
    pub hi: u64,
}

impl XfsRec {
    /// Bits of the logical start in `lo`.
    pub const STARTOFF_BITS: u32 = 54;
    /// Bits of the length in `hi`.
    pub const LENGTH_BITS: u32 = 21;
    /// Bits of the physical start (10 in `lo`, 42 in `hi`).
    pub const STARTBLOCK_BITS: u32 = 52;
    /// Physical-start bits kept in `lo`.
    const STARTBLOCK_LO_BITS: u32 = 10;
    /// The unwritten flag in `hi`.
    const UNWRITTEN: u64 = 1 << Self::LENGTH_BITS;
    /// Where the physical start's high bits begin in `hi`.
    const STARTBLOCK_HI_SHIFT: u32 = Self::LENGTH_BITS + 1;

    const fn mask(bits: u32) -> u64 {
        (1 << bits) - 1
    }
}

impl IextRecord for XfsRec {
    const STRUCTURE: Structure = Structure::Iext16;
    type Recs = [Self; recs_per_leaf(16)];
    const EMPTY_RECS: Self::Recs = [Self { lo: 0, hi: 0 }; recs_per_leaf(16)];

    fn pack(e: &Extent) -> Result<Self, Unfit> {
        let len = u64::from(e.len);
        if len > Self::mask(Self::LENGTH_BITS) {
            return Err(Unfit {
                field: "length",
                value: len,
                bits: Self::LENGTH_BITS,
            });
        }
        if e.pblk > Self::mask(Self::STARTBLOCK_BITS) {
            return Err(Unfit {
                field: "physical block",
                value: e.pblk,
                bits: Self::STARTBLOCK_BITS,
            });
        }
        // u32 logical starts always fit the 54-bit field.
        let lo = u64::from(e.lblk) | (e.pblk << Self::STARTOFF_BITS);
        let hi = len
            | if e.unwritten { Self::UNWRITTEN } else { 0 }
            | ((e.pblk >> Self::STARTBLOCK_LO_BITS) << Self::STARTBLOCK_HI_SHIFT);
        Ok(Self { lo, hi })
    }

    #[inline]
    fn start(&self) -> u64 {
        self.lo & Self::mask(Self::STARTOFF_BITS)
    }

    #[inline]
    fn blocks(&self) -> u64 {
        self.hi & Self::mask(Self::LENGTH_BITS)
    }

    #[inline]
    fn unpack(&self) -> Extent {
        Extent {
            // OK to narrow: packed from a u32 logical start and a u32 length.
            lblk: self.start() as u32,
            pblk: (self.lo >> Self::STARTOFF_BITS)
                | ((self.hi >> Self::STARTBLOCK_HI_SHIFT) << Self::STARTBLOCK_LO_BITS),
            len: self.blocks() as u32,
            unwritten: self.hi & Self::UNWRITTEN != 0,
        }
    }
}

/// The fuse-iomap uapi's `struct fuse_iomap_io` ([`FuseIomapIo`]) as a tree record: the
/// fuse-iomap mapping cache stores it unpacked in its leaves (three `u64`s, two `u16`s and a
/// `u32`).
///
/// 32 bytes; 7 per leaf (224 bytes of records, 16 of links, 16 spare). The cache keeps byte
/// offsets; this index is per file and block-based, so the same fields hold blocks (the tree's
/// shape, sizes and comparisons are identical; a server converts with a shift by the block
/// size's log). `length == 0` only in an unused slot. Holds any [`Extent`].
pub type FuseRec = FuseIomapIo;

impl IextRecord for FuseRec {
    const STRUCTURE: Structure = Structure::Iext32;
    type Recs = [Self; recs_per_leaf(32)];
    const EMPTY_RECS: Self::Recs = [FuseIomapIo {
        offset: 0,
        length: 0,
        addr: 0,
        kind: 0,
        flags: 0,
        dev: 0,
    }; recs_per_leaf(32)];

    fn pack(e: &Extent) -> Result<Self, Unfit> {
        Ok(Self {
            offset: u64::from(e.lblk),
            length: u64::from(e.len),
            addr: e.pblk,
            kind: if e.unwritten {
                MappingType::Unwritten.code()
            } else {
                MappingType::Mapped.code()
            },
            flags: 0,
            dev: 0,
        })
    }

    #[inline]
    fn start(&self) -> u64 {
        self.offset
    }

    #[inline]
    fn blocks(&self) -> u64 {
        self.length
    }

    #[inline]
    fn unpack(&self) -> Extent {
        Extent {
            // OK to narrow: packed from a u32 logical start and a u32 length.
            lblk: self.offset as u32,
            pblk: self.addr,
            len: self.length as u32,
            unwritten: self.kind == MappingType::Unwritten.code(),
        }
    }
}

/// An inner node: 16 keys, then 16 child links (indices into the level below: inner nodes,
/// or leaves for the lowest inner level). 256 bytes, 256-byte aligned.
#[repr(C, align(256))]
#[derive(Debug, Clone, Copy)]
struct Node {
    keys: [u64; KEYS_PER_NODE],
    ptrs: [u64; KEYS_PER_NODE],
}

impl Node {
    const EMPTY: Node = Node {
        keys: [KEY_INVALID; KEYS_PER_NODE],
        ptrs: [NO_NODE; KEYS_PER_NODE],
    };

    /// The child whose subtree holds `q`: the last slot whose key is at or below `q` (slot 0
    /// if none is, so blocks before the first key descend leftmost and find the first extent
    /// as the end of their hole). Scans left to right from slot 1, as the kernel does.
    #[inline]
    fn child(&self, q: u64) -> u64 {
        let mut i = 1;
        while i < KEYS_PER_NODE && self.keys[i] <= q {
            i += 1;
        }
        self.ptrs[i - 1]
    }
}

/// A leaf: records in slots from 0, unused slots empty, then links to the leaves before and
/// after it. 256 bytes, 256-byte aligned.
#[repr(C, align(256))]
#[derive(Debug, Clone, Copy)]
struct Leaf<R: IextRecord> {
    recs: R::Recs,
    prev: u64,
    next: u64,
}

/// What a leaf says about block `q`.
enum InLeaf {
    /// The block's extent, or the hole that ends at a record of this leaf.
    Answer(BlockMap),
    /// Every record of the leaf ends at or before `q`: the hole's end is the next leaf's first
    /// record, if any.
    PastEnd,
}

/// Scans `recs` (a leaf's slots) for the first record that ends after `q`: it holds `q` or
/// starts after it. Stops at the first unused slot.
#[inline]
fn scan<R: IextRecord>(recs: &[R], q: u64) -> InLeaf {
    for r in recs {
        let n = r.blocks();
        if n == 0 {
            break;
        }
        let s = r.start();
        if s > q {
            // OK to narrow: record starts were packed from u32s.
            return InLeaf::Answer(BlockMap::Hole {
                next: Some(s as u32),
            });
        }
        if s + n > q {
            return InLeaf::Answer(BlockMap::Mapped(r.unpack()));
        }
    }
    InLeaf::PastEnd
}

/// A file's extents in a kernel-style in-core extent tree with record layout `R`.
#[derive(Debug, Clone)]
pub struct IextIndex<R: IextRecord> {
    /// 0: no extents; 1: the root is one leaf; `h`: `h - 1` inner levels above the leaves.
    height: u32,
    /// Index of the root in `nodes` (height 2 and more).
    root: u64,
    /// Inner nodes, lowest level first.
    nodes: Vec<Node>,
    /// Leaves in key order (a full root leaf at height 1).
    leaves: Vec<Leaf<R>>,
    /// A height-1 root that is not full: exactly its records, no links.
    small: Box<[R]>,
    /// Number of extents.
    len: usize,
}

/// The XFS layout: 16-byte packed records, 15 per leaf.
pub type XfsIextIndex = IextIndex<XfsRec>;
/// The fuse-iomap mapping cache's layout: 32-byte `fuse_iomap_io` records, 7 per leaf. The
/// tier stack's `iext32` tier uses this one.
pub type FuseIextIndex = IextIndex<FuseRec>;

impl<R: IextRecord> IextIndex<R> {
    /// Builds the tree from a sorted extent map (checked with [`check_extents`]): leaves
    /// filled left to right, then each inner level over the one below, as an in-order load
    /// leaves the kernel's tree. Fails if the map is invalid or an extent does not fit `R`.
    pub fn new(exts: &[Extent]) -> Result<Self, IextError> {
        // The layout, checked when the tree is instantiated: the record array has PER_LEAF
        // slots and a leaf, like an inner node, is exactly one aligned node.
        const {
            assert!(std::mem::size_of::<R::Recs>() == R::PER_LEAF * std::mem::size_of::<R>());
            assert!(R::PER_LEAF >= 2);
            assert!(std::mem::size_of::<Leaf<R>>() == NODE_SIZE);
            assert!(std::mem::align_of::<Leaf<R>>() == NODE_SIZE);
            assert!(std::mem::size_of::<Node>() == NODE_SIZE);
        }
        check_extents(exts)?;
        let pack = |(i, e): (usize, &Extent)| {
            R::pack(e).map_err(|unfit| IextError::Unfit {
                index: i,
                layout: R::STRUCTURE.name(),
                unfit,
            })
        };
        let mut t = Self {
            height: 0,
            root: NO_NODE,
            nodes: Vec::new(),
            leaves: Vec::new(),
            small: Box::default(),
            len: exts.len(),
        };
        if exts.is_empty() {
            return Ok(t);
        }
        if exts.len() < R::PER_LEAF {
            t.height = 1;
            t.small = exts
                .iter()
                .enumerate()
                .map(pack)
                .collect::<Result<_, _>>()?;
            return Ok(t);
        }
        let nleaves = exts.len().div_ceil(R::PER_LEAF);
        t.leaves.reserve_exact(nleaves);
        for (li, chunk) in exts.chunks(R::PER_LEAF).enumerate() {
            let mut recs = R::EMPTY_RECS;
            for (slot, (i, e)) in recs.as_mut().iter_mut().zip(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(j, e)| (li * R::PER_LEAF + j, e)),
            ) {
                *slot = pack((i, e))?;
            }
            t.leaves.push(Leaf {
                recs,
                prev: if li == 0 { NO_NODE } else { li as u64 - 1 },
                next: if li + 1 < nleaves {
                    li as u64 + 1
                } else {
                    NO_NODE
                },
            });
        }
        t.height = 1;
        if nleaves == 1 {
            return Ok(t);
        }
        // Inner levels: (first key, link) of each node of the level below, 16 to a node.
        t.nodes.reserve_exact(inner_nodes(nleaves));
        let mut level: Vec<(u64, u64)> = t
            .leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (l.recs.as_ref().first().map_or(0, R::start), i as u64))
            .collect();
        while level.len() > 1 {
            let mut up = Vec::with_capacity(level.len().div_ceil(KEYS_PER_NODE));
            for group in level.chunks(KEYS_PER_NODE) {
                let mut node = Node::EMPTY;
                for (slot, &(key, ptr)) in group.iter().enumerate() {
                    node.keys[slot] = key;
                    node.ptrs[slot] = ptr;
                }
                up.push((node.keys[0], t.nodes.len() as u64));
                t.nodes.push(node);
            }
            t.height += 1;
            level = up;
        }
        t.root = level.first().map_or(NO_NODE, |&(_, p)| p);
        Ok(t)
    }

    /// Most extents a tree of height `h` holds: `PER_LEAF * 16^(h - 1)` (0 for height 0),
    /// saturating.
    pub fn capacity_at_height(h: u32) -> usize {
        match h.checked_sub(1) {
            None => 0,
            Some(inner) => (KEYS_PER_NODE as u64)
                .checked_pow(inner)
                .and_then(|p| p.checked_mul(R::PER_LEAF as u64))
                .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX)),
        }
    }

    /// Number of extents.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no extents.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Height: 0 when empty, 1 when the root is a single leaf, one more per inner level.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Leaves, counting a not-yet-full height-1 root as one.
    pub fn leaf_count(&self) -> usize {
        self.leaves.len() + usize::from(!self.small.is_empty())
    }

    /// Inner nodes.
    pub fn inner_count(&self) -> usize {
        self.nodes.len()
    }

    /// Records per leaf of this layout.
    pub fn records_per_leaf(&self) -> usize {
        R::PER_LEAF
    }

    /// The extents in key order, read by walking the leaf chain from the leftmost leaf (found
    /// by descending first children) along the `next` links: a check of the links for tests.
    pub fn extents(&self) -> Vec<Extent> {
        let mut out = Vec::with_capacity(self.len);
        if self.height == 1 && self.leaves.is_empty() {
            out.extend(self.small.iter().map(R::unpack));
            return out;
        }
        let mut at = self.root;
        if self.height >= 2 {
            for _ in 2..self.height {
                at = self.node(at).map_or(NO_NODE, |n| n.ptrs[0]);
            }
            at = self.node(at).map_or(NO_NODE, |n| n.ptrs[0]);
        } else {
            at = 0;
        }
        let mut prev = NO_NODE;
        while let Some(leaf) = self.leaf(at) {
            debug_assert_eq!(leaf.prev, prev, "leaf {at}: prev link");
            out.extend(
                leaf.recs
                    .as_ref()
                    .iter()
                    .take_while(|r| r.blocks() != 0)
                    .map(R::unpack),
            );
            (prev, at) = (at, leaf.next);
        }
        out
    }

    #[inline]
    fn node(&self, at: u64) -> Option<&Node> {
        self.nodes.get(usize::try_from(at).ok()?)
    }

    #[inline]
    fn leaf(&self, at: u64) -> Option<&Leaf<R>> {
        self.leaves.get(usize::try_from(at).ok()?)
    }

    /// Cache lines a lookup of `q` reads (nodes are 256-byte aligned, four lines each): in
    /// every inner node the lines of the keys its scan compares and the line of the link it
    /// follows; in the leaf the lines of the records it scans; past a leaf's last record, the
    /// line of the next leaf's first record. The lookup-cost model of [`super::choose`].
    pub fn lines_read(&self, q: u32) -> u32 {
        let q = u64::from(q);
        let rec = std::mem::size_of::<R>();
        // Records a scan reads (the one it stops at included) and whether it ran past them.
        let scanned = |recs: &[R]| -> (u32, bool) {
            let mut read = 0;
            for r in recs {
                read += 1;
                let n = r.blocks();
                if n == 0 {
                    break;
                }
                let s = r.start();
                if s > q || s + n > q {
                    return (super::span_lines(0, read * rec), false);
                }
            }
            (super::span_lines(0, read * rec), true)
        };
        match self.height {
            0 => 0,
            1 => {
                let recs = match self.leaves.first() {
                    Some(l) => l.recs.as_ref(),
                    None => &self.small[..],
                };
                scanned(recs).0
            }
            h => {
                let mut lines = 0;
                let mut at = self.root;
                for _ in 1..h {
                    let Some(node) = self.node(at) else {
                        return lines;
                    };
                    let mut i = 1;
                    while i < KEYS_PER_NODE && node.keys[i] <= q {
                        i += 1;
                    }
                    // Keys 1..=i compared (i < 16), then the link line.
                    let last_key = i.min(KEYS_PER_NODE - 1);
                    lines += super::span_lines(8, (last_key + 1) * 8) + 1;
                    at = node.ptrs[i - 1];
                }
                let Some(leaf) = self.leaf(at) else {
                    return lines;
                };
                let (l, past) = scanned(leaf.recs.as_ref());
                lines + l + u32::from(past && leaf.next != NO_NODE)
            }
        }
    }

    /// The lookup: descend from the root to a leaf, scan it, and if `q` is past its last
    /// record, the hole ends at the first record of the next leaf. `None` only if a link is
    /// broken (never for a tree built by [`Self::new`]).
    #[inline]
    fn lookup(&self, q: u32) -> Option<BlockMap> {
        let q = u64::from(q);
        let leaf = match self.height {
            0 => return Some(BlockMap::Hole { next: None }),
            1 => {
                let recs = match self.leaves.first() {
                    Some(l) => l.recs.as_ref(),
                    None => &self.small[..],
                };
                return Some(match scan(recs, q) {
                    InLeaf::Answer(bm) => bm,
                    InLeaf::PastEnd => BlockMap::Hole { next: None },
                });
            }
            h => {
                let mut at = self.root;
                // Inner levels above the lowest one link to inner nodes; the lowest to leaves.
                for _ in 2..h {
                    at = self.node(at)?.child(q);
                }
                self.leaf(self.node(at)?.child(q))?
            }
        };
        Some(match scan(leaf.recs.as_ref(), q) {
            InLeaf::Answer(bm) => bm,
            InLeaf::PastEnd => BlockMap::Hole {
                // OK to narrow: record starts were packed from u32s.
                next: self
                    .leaf(leaf.next)
                    .and_then(|n| n.recs.as_ref().first())
                    .filter(|r| r.blocks() != 0)
                    .map(|r| r.start() as u32),
            },
        })
    }
}

/// Inner nodes above `leaves` leaves when every node but the last of a level is full.
fn inner_nodes(leaves: usize) -> usize {
    let mut total = 0;
    let mut level = leaves;
    while level > 1 {
        level = level.div_ceil(KEYS_PER_NODE);
        total += level;
    }
    total
}

impl<R: IextRecord> ExtentIndex for IextIndex<R> {
    #[inline]
    fn find(&self, lblk: u32) -> Lookup {
        match self.lookup(lblk) {
            Some(bm) => Lookup::Found(bm),
            // A broken link: let the next tier answer rather than guess.
            None => Lookup::Missed,
        }
    }

    /// Exact: 256 bytes per allocated node (inner nodes and leaves, by `Vec` capacity), plus
    /// the records of a not-yet-full height-1 root (which the kernel also sizes to its
    /// records). The `Vec` headers live in the struct, not on the heap.
    fn heap_bytes(&self) -> usize {
        (self.nodes.capacity() + self.leaves.capacity()) * NODE_SIZE
            + std::mem::size_of_val::<[R]>(&self.small)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SortedIndex;
    use crate::synth::regular;

    fn ext(lblk: u32, pblk: u64, len: u32, unwritten: bool) -> Extent {
        Extent {
            lblk,
            pblk,
            len,
            unwritten,
        }
    }

    #[test]
    fn node_and_leaf_sizes_match_the_kernel() {
        assert_eq!(KEYS_PER_NODE, 16);
        assert_eq!(std::mem::size_of::<XfsRec>(), 16);
        assert_eq!(std::mem::size_of::<FuseRec>(), 32);
        assert_eq!(XfsRec::PER_LEAF, 15);
        assert_eq!(FuseRec::PER_LEAF, 7);
        assert_eq!(std::mem::size_of::<Node>(), 256);
        assert_eq!(std::mem::size_of::<Leaf<XfsRec>>(), 256);
        assert_eq!(std::mem::size_of::<Leaf<FuseRec>>(), 256);
    }

    #[test]
    fn nodes_are_256_byte_aligned() {
        let exts = regular(5000, 0, 2, 1);
        let t = XfsIextIndex::new(&exts).unwrap();
        assert!(t.nodes.len() > 1 && t.leaves.len() > 1);
        for n in &t.nodes {
            assert_eq!(std::ptr::from_ref(n) as usize % 256, 0);
        }
        for l in &t.leaves {
            assert_eq!(std::ptr::from_ref(l) as usize % 256, 0);
        }
    }

    #[test]
    fn xfs_record_bit_layout() {
        // pblk = 0b11_0000000101 (high part 3, low 10 bits 5), len 7, unwritten.
        let pblk = (3 << 10) | 5;
        let r = XfsRec::pack(&ext(0x1234, pblk, 7, true)).unwrap();
        assert_eq!(r.lo, 0x1234 | (5 << 54));
        assert_eq!(r.hi, 7 | (1 << 21) | (3 << 22));
        assert_eq!(r.unpack(), ext(0x1234, pblk, 7, true));
        // The extremes round-trip.
        let max = ext(u32::MAX - 1, (1 << 52) - 1, (1 << 21) - 1, false);
        assert_eq!(XfsRec::pack(&max).unwrap().unpack(), max);
        let min = ext(0, 0, 1, false);
        assert_eq!(XfsRec::pack(&min).unwrap(), XfsRec { lo: 0, hi: 1 });
    }

    #[test]
    fn xfs_layout_rejects_what_it_cannot_hold() {
        let long = ext(0, 1, 1 << 21, false);
        assert_eq!(
            XfsRec::pack(&long),
            Err(Unfit {
                field: "length",
                value: 1 << 21,
                bits: 21
            })
        );
        let far = ext(0, 1 << 52, 1, false);
        assert!(XfsRec::pack(&far).is_err());
        let err = XfsIextIndex::new(&[ext(0, 1, 1, false), ext(5, 1 << 52, 1, false)]);
        match err {
            Err(e @ IextError::Unfit { index: 1, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("physical block") && msg.contains("iext16"),
                    "{msg}"
                );
            }
            other => panic!("expected Unfit, got {other:?}"),
        }
        // The fuse layout holds both.
        assert!(FuseIextIndex::new(&[long]).is_ok());
        assert!(FuseIextIndex::new(&[far]).is_ok());
        assert_eq!(FuseRec::pack(&far).unwrap().unpack(), far);
    }

    #[test]
    fn bad_maps_are_rejected() {
        let overlapping = [ext(0, 1, 4, false), ext(3, 9, 1, false)];
        assert!(matches!(
            XfsIextIndex::new(&overlapping),
            Err(IextError::Extents(_))
        ));
        assert!(matches!(
            FuseIextIndex::new(&overlapping),
            Err(IextError::Extents(_))
        ));
    }

    /// Height, leaf and inner-node counts at `n` extents, and answers equal to the sorted
    /// array's around every extent of the map.
    fn check_shape<R: IextRecord>(n: usize) -> IextIndex<R> {
        let exts = regular(n, 10, 3, 2);
        assert_eq!(exts.len(), n);
        let t = IextIndex::<R>::new(&exts).unwrap();
        let per = R::PER_LEAF;
        let want_height = (1..).find(|&h| n <= IextIndex::<R>::capacity_at_height(h));
        assert_eq!(Some(t.height()), if n == 0 { Some(0) } else { want_height });
        assert_eq!(t.len(), n);
        assert_eq!(t.leaf_count(), n.div_ceil(per));
        assert_eq!(t.inner_count(), inner_nodes(n.div_ceil(per)));
        let bytes = if n < per {
            n * std::mem::size_of::<R>()
        } else {
            (t.leaf_count() + t.inner_count()) * NODE_SIZE
        };
        assert_eq!(t.heap_bytes(), bytes, "{} n={n}", R::STRUCTURE);
        assert_eq!(t.extents(), exts);
        let sorted = SortedIndex::new(exts.clone());
        let mut qs = vec![0, 9, u32::MAX];
        for e in &exts {
            qs.extend([e.lblk - 1, e.lblk, e.lblk + 2, e.lblk + 3]);
        }
        for q in qs {
            assert_eq!(t.find(q), sorted.find(q), "{} n={n} q={q}", R::STRUCTURE);
        }
        t
    }

    fn heights_grow_at_the_right_counts<R: IextRecord>() {
        let per = R::PER_LEAF;
        assert_eq!(check_shape::<R>(0).height(), 0);
        // Below a full leaf: height 1, sized to its records.
        for n in 1..per {
            let t = check_shape::<R>(n);
            assert_eq!((t.height(), t.leaf_count(), t.inner_count()), (1, 1, 0));
            assert_eq!(t.heap_bytes(), n * std::mem::size_of::<R>());
        }
        // A full leaf is still height 1, now a whole node.
        let t = check_shape::<R>(per);
        assert_eq!((t.height(), t.heap_bytes()), (1, NODE_SIZE));
        // One more record: two leaves under one inner node.
        let t = check_shape::<R>(per + 1);
        assert_eq!((t.height(), t.leaf_count(), t.inner_count()), (2, 2, 1));
        // Each further level at PER_LEAF * 16^(h-1) + 1 records.
        for h in 2..=4 {
            let cap = IextIndex::<R>::capacity_at_height(h);
            assert_eq!(cap, per * 16usize.pow(h - 1));
            assert_eq!(check_shape::<R>(cap).height(), h);
            assert_eq!(check_shape::<R>(cap + 1).height(), h + 1);
            check_shape::<R>(cap - 1);
        }
        // Two leaves short of a second level-3 node, and a non-full right edge at every level.
        check_shape::<R>(per * 16 * 16 + per * 17 + 3);
    }

    #[test]
    fn xfs_heights_grow_at_the_right_counts() {
        heights_grow_at_the_right_counts::<XfsRec>();
        assert_eq!(XfsIextIndex::capacity_at_height(1), 15);
        assert_eq!(XfsIextIndex::capacity_at_height(2), 240);
        assert_eq!(XfsIextIndex::capacity_at_height(6), 15 << 20);
    }

    #[test]
    fn fuse_heights_grow_at_the_right_counts() {
        heights_grow_at_the_right_counts::<FuseRec>();
        assert_eq!(FuseIextIndex::capacity_at_height(1), 7);
        assert_eq!(FuseIextIndex::capacity_at_height(2), 112);
        assert_eq!(FuseIextIndex::capacity_at_height(6), 7 << 20);
        assert_eq!(FuseIextIndex::capacity_at_height(0), 0);
        assert_eq!(FuseIextIndex::capacity_at_height(40), usize::MAX);
    }

    /// The hole after the last record of a leaf ends at the next leaf's first record: found
    /// through the leaf link, for every leaf boundary.
    #[test]
    fn holes_across_leaf_boundaries_use_the_next_link() {
        let exts = regular(1000, 0, 1, 5);
        let t = FuseIextIndex::new(&exts).unwrap();
        for pair in exts.chunks(FuseRec::PER_LEAF) {
            let Some(last) = pair.last() else { continue };
            let hole = last.lblk + 1;
            let next = exts.iter().find(|e| e.lblk > hole).map(|e| e.lblk);
            assert_eq!(t.find(hole), Lookup::Found(BlockMap::Hole { next }));
        }
    }
}
