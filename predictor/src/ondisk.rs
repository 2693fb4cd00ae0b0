//! The `ondisk` tier: walk the file's extent tree in the image for every query, as fuse2fs's
//! `ext2fs_bmap` does. It never declines; it is the reference the other tiers must equal.

use std::sync::Arc;

use ext4::{BlockMap, Fs, Inode};

use crate::error::QueryError;
use crate::index::{ExtentIndex, Lookup};

/// Looks blocks up in the image itself.
#[derive(Debug, Clone)]
pub struct OnDisk {
    fs: Arc<Fs>,
}

impl OnDisk {
    /// The tier over an open image.
    pub fn new(fs: Arc<Fs>) -> Self {
        Self { fs }
    }

    /// What block `lblk` of `inode` maps to: O(depth) block reads.
    ///
    /// Inline-data files have no blocks; their data is in the inode, which no block mapping can
    /// describe, so they are an [`QueryError::InlineData`] error rather than a hole (the reader
    /// would report a hole, which would make their bytes read as zeros).
    pub fn find(&self, inode: &Inode, lblk: u32) -> Result<BlockMap, QueryError> {
        if inode.has_inline_data() {
            return Err(QueryError::InlineData { ino: inode.ino });
        }
        self.fs
            .map_block(inode, lblk)
            .map_err(|source| QueryError::Ondisk {
                ino: inode.ino,
                lblk,
                source,
            })
    }
}

/// One file's on-disk walk behind the [`ExtentIndex`] trait, so benches and tests can drive it
/// like the in-memory structures. A failed walk (corrupt image, inline data) is
/// [`Lookup::Missed`]; use [`OnDisk::find`] to see the error.
#[derive(Debug, Clone)]
pub struct OnDiskIndex {
    tier: OnDisk,
    inode: Inode,
}

impl OnDiskIndex {
    /// The walk of `inode` in `fs`.
    pub fn new(fs: Arc<Fs>, inode: Inode) -> Self {
        Self {
            tier: OnDisk::new(fs),
            inode,
        }
    }
}

impl ExtentIndex for OnDiskIndex {
    fn find(&self, lblk: u32) -> Lookup {
        self.tier
            .find(&self.inode, lblk)
            .map_or(Lookup::Missed, Lookup::Found)
    }

    /// Nothing: the on-disk tier holds no structure (the inode is cached by its owner).
    fn heap_bytes(&self) -> usize {
        0
    }
}
