//! The numbers `statfs` reports. `ext4::Superblock` does not keep the free-block and
//! free-inode counts, so they are read here from the raw superblock once at mount time (the
//! image is read-only, so they never change).

use std::fs::File;
use std::os::unix::fs::FileExt;

use ext4::{IncompatFeatures, Superblock};

/// Byte offset of the superblock in the image.
const SUPERBLOCK_OFFSET: u64 = 1024;

/// Totals for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
}

impl Totals {
    /// Reads the free counts of the image whose (validated) superblock is `sb`. Counts that
    /// cannot be read, or exceed the totals (a corrupt superblock), are reported as 0 free.
    pub fn read(image: &File, sb: &Superblock) -> Self {
        let mut raw = [0u8; 1024];
        let ok = image.read_exact_at(&mut raw, SUPERBLOCK_OFFSET).is_ok();
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&raw[at..at + 4]);
            u64::from(u32::from_le_bytes(b))
        };
        let (mut bfree, mut ffree) = (0, 0);
        if ok {
            bfree = u32_at(0x0C);
            // With `64bit`, `s_free_blocks_count_hi` is valid.
            if sb.feature_incompat.contains(IncompatFeatures::IS_64BIT) {
                bfree |= u32_at(0x158) << 32;
            }
            ffree = u32_at(0x10);
        }
        let blocks = sb.blocks_count;
        let files = u64::from(sb.inodes_count);
        Self {
            blocks,
            bfree: if bfree <= blocks { bfree } else { 0 },
            files,
            ffree: if ffree <= files { ffree } else { 0 },
            bsize: sb.block_size,
        }
    }
}
