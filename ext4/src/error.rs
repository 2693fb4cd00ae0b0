//! Errors. Every variant says where: the image offset of a failed read, the group of a bad
//! descriptor, the inode (and block, entry or byte) of corrupt metadata. What is wrong is a
//! typed value ([`SuperblockKind`], [`GroupDescKind`], [`CorruptKind`]) carrying the numbers
//! found, so callers and tests match on the failure rather than on its message.

use std::io;
use std::path::PathBuf;

use crate::extent::MAX_EXTENT_DEPTH;
use crate::features::IncompatFeatures;
use crate::superblock::MAGIC;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why reading an image failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image file could not be opened.
    #[error("opening image {path}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A read of the image failed or ran past its end.
    #[error("reading {len} bytes at byte {offset} of the image")]
    Io {
        /// Byte offset in the image.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The OS error (`UnexpectedEof` for a read past the end).
        source: io::Error,
    },
    /// The superblock is missing, not ext2/3/4, or self-contradictory.
    #[error("superblock: {0}")]
    Superblock(SuperblockKind),
    /// The image uses incompatible features this reader does not implement (unknown bits
    /// included).
    #[error("unsupported incompatible feature(s): {0}")]
    Unsupported(IncompatFeatures),
    /// A block group descriptor is bad: only the inodes of that group are unreadable.
    #[error("group {group}: {kind}")]
    Group {
        /// Group number.
        group: u32,
        /// What is wrong.
        kind: GroupDescKind,
    },
    /// A group number past the last group.
    #[error("group {group} does not exist")]
    NoSuchGroup {
        /// Group asked for.
        group: u32,
    },
    /// Metadata reached through an inode is corrupt.
    #[error("inode {ino}: {kind}")]
    Corrupt {
        /// Inode number.
        ino: u32,
        /// What is wrong, and where.
        kind: CorruptKind,
    },
    /// An inode number outside the filesystem's inodes (0, or over `s_inodes_count`).
    #[error("inode {ino} is outside 1..={count}")]
    NoSuchInode {
        /// Inode asked for.
        ino: u32,
        /// Inodes in the filesystem.
        count: u32,
    },
    /// A directory operation on an inode that is not a directory.
    #[error("inode {ino} is not a directory")]
    NotADirectory {
        /// The inode.
        ino: u32,
    },
    /// A symlink operation on an inode that is not a symlink.
    #[error("inode {ino} is not a symlink")]
    NotASymlink {
        /// The inode.
        ino: u32,
    },
    /// A path component that its directory does not hold.
    #[error("{path}: no entry {name:?}")]
    NoSuchEntry {
        /// The whole path looked up.
        path: String,
        /// The component not found.
        name: String,
    },
}

impl Error {
    pub(crate) fn corrupt(ino: u32, kind: CorruptKind) -> Self {
        Error::Corrupt { ino, kind }
    }

    /// The inode whose metadata is corrupt, when this error is about corrupt metadata.
    pub fn ino(&self) -> Option<u32> {
        match self {
            Error::Corrupt { ino, .. } => Some(*ino),
            _ => None,
        }
    }
}

/// What is wrong with a superblock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockKind {
    /// Fewer bytes than a superblock.
    #[error("only {len} bytes")]
    Short {
        /// Bytes given.
        len: usize,
    },
    /// `s_magic` is not ext2/3/4's.
    #[error("bad magic {magic:#06x} (want {MAGIC:#06x}): not an ext2/3/4 image")]
    Magic {
        /// The magic found.
        magic: u16,
    },
    /// `metadata_csum` with a checksum algorithm other than crc32c.
    #[error("unknown checksum type {checksum_type}")]
    ChecksumType {
        /// `s_checksum_type`.
        checksum_type: u8,
    },
    /// The superblock's checksum does not match its bytes (`metadata_csum`).
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// Checksum in the superblock.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// `s_log_block_size` gives blocks over 64 KiB.
    #[error("block size 1024 << {log_block} is over 64 KiB")]
    BlockSize {
        /// `s_log_block_size`.
        log_block: u32,
    },
    /// `s_log_cluster_size` (bigalloc) is below the block size or absurd.
    #[error("cluster size 1024 << {log_cluster} is invalid")]
    ClusterSize {
        /// `s_log_cluster_size`.
        log_cluster: u32,
    },
    /// `s_log_cluster_size` (bigalloc) gives clusters that do not fit 32 bits.
    #[error("cluster size 1024 << {log_cluster} is too big")]
    ClusterTooBig {
        /// `s_log_cluster_size`.
        log_cluster: u32,
    },
    /// `s_first_data_block` does not fit the block size.
    #[error("first data block {first_data_block} for {block_size}-byte blocks")]
    FirstDataBlock {
        /// `s_first_data_block`.
        first_data_block: u32,
        /// Block size in bytes.
        block_size: u32,
    },
    /// No blocks after the first data block.
    #[error("{blocks_count} blocks")]
    BlocksCount {
        /// Blocks in the filesystem.
        blocks_count: u64,
    },
    /// `s_blocks_per_group` or `s_inodes_per_group` is 0.
    #[error("zero blocks or inodes per group")]
    ZeroPerGroup,
    /// bigalloc: blocks per group is not clusters per group times blocks per cluster.
    #[error("{blocks_per_group} blocks per group is not {clusters_per_group} clusters of {ratio}")]
    ClustersPerGroup {
        /// `s_blocks_per_group`.
        blocks_per_group: u32,
        /// `s_clusters_per_group`.
        clusters_per_group: u32,
        /// Blocks per cluster.
        ratio: u32,
    },
    /// A group's blocks or inodes do not fit one bitmap block.
    #[error(
        "{blocks_per_group} blocks / {inodes_per_group} inodes per group do not fit a bitmap block"
    )]
    PerGroup {
        /// `s_blocks_per_group`.
        blocks_per_group: u32,
        /// `s_inodes_per_group`.
        inodes_per_group: u32,
    },
    /// `s_inode_size` is under 128, not a power of two, or over the block size.
    #[error("inode size {inode_size}")]
    InodeSize {
        /// `s_inode_size`.
        inode_size: u16,
    },
    /// `s_desc_size` (64bit) is under 64, not a power of two, or over the block size.
    #[error("group descriptor size {desc_size}")]
    DescSize {
        /// `s_desc_size`.
        desc_size: u16,
    },
    /// More inodes than the groups hold.
    #[error("{inodes_count} inodes do not fit {groups} groups of {inodes_per_group}")]
    InodesCount {
        /// `s_inodes_count`.
        inodes_count: u32,
        /// Groups in the filesystem.
        groups: u32,
        /// `s_inodes_per_group`.
        inodes_per_group: u32,
    },
    /// The descriptor table (read whole at open) would be larger than the image.
    #[error("{groups} group descriptors would not fit in a {image_len}-byte image")]
    DescTable {
        /// Groups in the filesystem.
        groups: u32,
        /// Image size in bytes.
        image_len: u64,
    },
}

/// What is wrong with a block group descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupDescKind {
    /// The descriptor's bytes are not inside the block that should hold them.
    #[error("descriptor outside its block")]
    OutsideBlock,
    /// The inode table does not lie inside the filesystem.
    #[error("inode table at block {block} ({blocks} blocks) is outside the {blocks_count} blocks")]
    InodeTable {
        /// First block of the table.
        block: u64,
        /// Blocks the table takes.
        blocks: u64,
        /// Blocks in the filesystem.
        blocks_count: u64,
    },
}

/// What is corrupt about an inode's metadata, and where: extent-tree nodes are named by block
/// (0 for the root node inside the inode's `i_block`) and entry, directory entries by logical
/// block and byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKind {
    /// The inode's checksum does not match its bytes (`metadata_csum`).
    #[error("inode checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    InodeChecksum {
        /// Checksum in the inode.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// Fewer bytes than the superblock's inode size.
    #[error("bad inode field: short inode ({len} bytes)")]
    InodeShort {
        /// Bytes read.
        len: usize,
    },
    /// `i_extra_isize` runs past the inode or is not a multiple of 4.
    #[error("bad inode field: i_extra_isize {extra_isize}")]
    ExtraIsize {
        /// `i_extra_isize`.
        extra_isize: usize,
    },

    /// An extent node's header has the wrong magic.
    #[error("extent node at block {block}: bad magic {magic:#06x}")]
    ExtentMagic {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// The magic found.
        magic: u16,
    },
    /// An extent node's `eh_max` is 0 or more than the node has room for.
    #[error("extent node at block {block}: max {max} entries, room for {room}")]
    ExtentMax {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// `eh_max`.
        max: u16,
        /// Entries that fit the node.
        room: usize,
    },
    /// An extent node holds more entries than its `eh_max`.
    #[error("extent node at block {block}: {entries} entries over max {max}")]
    ExtentEntries {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// `eh_entries`.
        entries: u16,
        /// `eh_max`.
        max: u16,
    },
    /// A node's depth is not its parent's minus one (a cycle, or a subtree linked at two
    /// levels).
    #[error("extent node at block {block}: depth {depth} where {expected} was due")]
    ExtentDepth {
        /// Block holding the node.
        block: u64,
        /// `eh_depth`.
        depth: u16,
        /// The parent's depth minus one.
        expected: u16,
    },
    /// The root's depth is over [`MAX_EXTENT_DEPTH`].
    #[error("extent node at block {block}: depth {depth} over {MAX_EXTENT_DEPTH}")]
    ExtentTooDeep {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// `eh_depth`.
        depth: u16,
    },
    /// An index node (depth over 0) with no entries.
    #[error("extent node at block {block}: index node with no entries")]
    ExtentEmptyIndex {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
    },
    /// An extent block's checksum does not match (`metadata_csum`).
    #[error("extent block {block}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ExtentChecksum {
        /// The block.
        block: u64,
        /// Checksum in the block's tail.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A leaf extent of length 0.
    #[error("extent node at block {block}, entry {entry}: zero length")]
    ExtentZeroLength {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
    },
    /// A leaf extent running past the last addressable logical block.
    #[error(
        "extent node at block {block}, entry {entry}: blocks {lblk}+{len} run past block 2^32 - 2"
    )]
    ExtentPastMaxLblk {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// The extent's first logical block.
        lblk: u32,
        /// Its length.
        len: u32,
    },
    /// A leaf extent before the end of the previous one (out of order or overlapping), or
    /// outside the range of logical blocks its parent's index entry gives the leaf.
    #[error("extent node at block {block}, entry {entry}: logical blocks {lblk}..{end} out of order or outside {floor}..{hi}")]
    ExtentOutOfOrder {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// The extent's first logical block.
        lblk: u32,
        /// One past its last logical block.
        end: u64,
        /// Lowest logical block it may start at.
        floor: u64,
        /// One past the highest logical block it may cover.
        hi: u64,
    },
    /// A leaf extent whose physical blocks are not inside the filesystem.
    #[error("extent node at block {block}, entry {entry}: physical blocks {pblk}+{len} outside the filesystem ({blocks_count} blocks)")]
    ExtentOutsideFs {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// The extent's first physical block.
        pblk: u64,
        /// Its length.
        len: u32,
        /// Blocks in the filesystem.
        blocks_count: u64,
    },
    /// An index entry's key not above the previous one, or outside its parent's range.
    #[error("extent node at block {block}, entry {entry}: key {key} out of order or outside {floor}..{hi}")]
    IndexKey {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// `ei_block`.
        key: u32,
        /// Lowest key it may have.
        floor: u64,
        /// One past the highest key it may have.
        hi: u64,
    },
    /// An index entry whose child block is not inside the filesystem.
    #[error("extent node at block {block}, entry {entry}: child block {child} outside the filesystem ({blocks_count} blocks)")]
    IndexChild {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// The child block.
        child: u64,
        /// Blocks in the filesystem.
        blocks_count: u64,
    },

    /// An indirect (ext2/3) block map maps more blocks than the filesystem has.
    #[error("block map: maps more blocks than the filesystem has")]
    MapTooLarge,
    /// An indirect block map points a data block outside the filesystem.
    #[error("block map: block {lblk} at {pblk}, outside the filesystem")]
    MapBlockOutsideFs {
        /// Logical block.
        lblk: u64,
        /// The physical block it points at.
        pblk: u64,
    },
    /// An indirect block outside the filesystem.
    #[error("block map: indirect block {block} outside the filesystem")]
    IndirectOutsideFs {
        /// The indirect block.
        block: u32,
    },
    /// An indirect block referenced twice in one map (a cycle or a shared subtree).
    #[error("block map: indirect block {block} is referenced twice")]
    IndirectTwice {
        /// The indirect block.
        block: u32,
    },

    /// A directory block ends with fewer bytes than an entry header.
    #[error("directory block {lblk}, byte {offset}: {len} trailing bytes")]
    DirentTrailing {
        /// Logical block of the directory (for inline data: 0 in `i_block`, 1 in the xattr).
        lblk: u64,
        /// Byte offset in that block.
        offset: usize,
        /// Bytes left.
        len: usize,
    },
    /// A directory entry's `rec_len` is under 12, not 4-aligned, or runs past the block.
    #[error("directory block {lblk}, byte {offset}: record length {rec_len}")]
    DirentRecLen {
        /// Logical block of the directory.
        lblk: u64,
        /// Byte offset in that block.
        offset: usize,
        /// `rec_len`.
        rec_len: usize,
    },
    /// A directory entry's name does not fit its record.
    #[error("directory block {lblk}, byte {offset}: name of {name_len} bytes in a {rec_len}-byte record")]
    DirentNameLen {
        /// Logical block of the directory.
        lblk: u64,
        /// Byte offset in that block.
        offset: usize,
        /// `name_len`.
        name_len: usize,
        /// `rec_len`.
        rec_len: usize,
    },
    /// A live directory entry with an empty name.
    #[error("directory block {lblk}, byte {offset}: empty name")]
    DirentEmptyName {
        /// Logical block of the directory.
        lblk: u64,
        /// Byte offset in that block.
        offset: usize,
    },

    /// An in-inode xattr entry's name runs past the inode (while looking for inline data).
    #[error("inline data: xattr entry at byte {offset} runs past the inode")]
    XattrEntry {
        /// Byte offset of the entry in the xattr entries.
        offset: usize,
    },
    /// An in-inode xattr value runs past the inode.
    #[error("inline data: xattr value at {offset}+{size} runs past the inode")]
    XattrValue {
        /// `e_value_offs`.
        offset: usize,
        /// `e_value_size`.
        size: usize,
    },
    /// `system.data` is stored in an EA inode, which inline data never is.
    #[error("inline data: system.data stored in an EA inode")]
    InlineDataInEaInode,
    /// The size is more than `i_block` and `system.data` hold.
    #[error("inline data: size {size} but only {avail} inline bytes")]
    InlineDataSize {
        /// `i_size`.
        size: u64,
        /// Inline bytes there are.
        avail: u64,
    },

    /// A symlink target of length 0 or over 4095 bytes.
    #[error("symlink: target length {len}")]
    SymlinkLength {
        /// `i_size`.
        len: u64,
    },
    /// A fast symlink (target in `i_block`) longer than `i_block`.
    #[error("symlink: fast symlink of {len} bytes")]
    FastSymlinkLength {
        /// `i_size`.
        len: u64,
    },
    /// A block symlink whose target is longer than one block.
    #[error("symlink: target of {len} bytes is over one block")]
    SymlinkOverBlock {
        /// `i_size`.
        len: u64,
    },

    /// The file's data would need more memory than the image can justify.
    #[error("too large: {size} bytes")]
    TooLarge {
        /// `i_size`.
        size: u64,
    },
}
