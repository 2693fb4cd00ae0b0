//! Errors. Every variant says where: the image offset of a failed read, the group of a bad
//! descriptor, the inode (and block) of corrupt metadata.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why reading an image failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image file could not be opened.
    #[error("opening image {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A read of the image failed or ran past its end.
    #[error("reading {len} bytes at byte {offset} of the image: {source}")]
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
    Superblock(String),
    /// The image uses an incompatible feature this reader does not implement.
    #[error("unsupported incompatible feature(s): {0}")]
    Unsupported(String),
    /// A block group descriptor is bad.
    #[error("group {group}: {what}")]
    Group {
        /// Group number.
        group: u32,
        /// What is wrong.
        what: String,
    },
    /// Metadata reached through an inode is corrupt.
    #[error("inode {ino}: {what}")]
    Corrupt {
        /// Inode number.
        ino: u32,
        /// What is wrong.
        what: Corrupt,
    },
    /// A request that does not fit the image: an inode number out of range, a path that does not
    /// exist, a directory operation on a file.
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    pub(crate) fn corrupt(ino: u32, what: Corrupt) -> Self {
        Error::Corrupt { ino, what }
    }

    /// The inode this error is about, when it is about one.
    pub fn ino(&self) -> Option<u32> {
        match self {
            Error::Corrupt { ino, .. } => Some(*ino),
            _ => None,
        }
    }
}

/// What is corrupt about an inode's metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    /// The inode's checksum does not match its bytes (`metadata_csum`).
    #[error("inode checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    InodeChecksum {
        /// Checksum in the inode.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A field of the inode itself is impossible.
    #[error("bad inode field: {0}")]
    InodeField(String),
    /// An extent node header is bad. `block` is 0 for the root node inside the inode.
    #[error("extent node at block {block}: {what}")]
    ExtentHeader {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// What is wrong.
        what: String,
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
    /// An extent or index entry is bad: out of order, overlapping, past 2^32 blocks, or pointing
    /// outside the filesystem.
    #[error("extent node at block {block}, entry {entry}: {what}")]
    ExtentEntry {
        /// Block holding the node (0: the inode's `i_block`).
        block: u64,
        /// Entry index within the node.
        entry: u16,
        /// What is wrong.
        what: String,
    },
    /// An indirect (ext2/3 block-mapped) map is bad.
    #[error("block map: {0}")]
    BlockMap(String),
    /// A directory entry is bad.
    #[error("directory block {lblk}, byte {offset}: {what}")]
    Dirent {
        /// Logical block of the directory.
        lblk: u64,
        /// Byte offset in that block.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// Inline data (in `i_block` and the `system.data` xattr) is bad.
    #[error("inline data: {0}")]
    InlineData(String),
    /// A symlink is bad.
    #[error("symlink: {0}")]
    Symlink(String),
    /// The file's data would need more memory than the image can justify.
    #[error("too large: {0}")]
    TooLarge(String),
}
