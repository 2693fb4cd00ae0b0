//! On-disk inodes.

use crate::checksum::{ext4_crc, inode_seed};
use crate::error::{CorruptKind, Error, Result};
use crate::features::{IncompatFeatures, RoCompatFeatures};
use crate::le::{join, u16_at, u32_at};
use crate::superblock::Superblock;

/// Size of the fields every inode has (`EXT4_GOOD_OLD_INODE_SIZE`).
pub(crate) const GOOD_OLD_INODE_SIZE: usize = 128;
/// Bytes of `i_block`: the extent-tree root, the indirect pointers, inline data or a fast symlink.
pub(crate) const I_BLOCK_SIZE: usize = 60;

const EXTENTS_FL: u32 = 0x0008_0000;
const HUGE_FILE_FL: u32 = 0x0004_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const INDEX_FL: u32 = 0x1000;

/// What kind of object an inode is, from the top bits of `i_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// A mode whose type bits match none of the above.
    Unknown,
}

impl InodeKind {
    fn from_mode(mode: u16) -> Self {
        match mode & 0xF000 {
            0x8000 => InodeKind::File,
            0x4000 => InodeKind::Dir,
            0xA000 => InodeKind::Symlink,
            0x2000 => InodeKind::CharDev,
            0x6000 => InodeKind::BlockDev,
            0x1000 => InodeKind::Fifo,
            0xC000 => InodeKind::Socket,
            _ => InodeKind::Unknown,
        }
    }
}

/// One inode, decoded. Times are seconds since the epoch (the low 32 bits plus the epoch bits of
/// the `_extra` fields where the inode is large enough to have them) and nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Inode number.
    pub ino: u32,
    /// Permission and type bits (`i_mode`).
    pub mode: u16,
    /// What kind of object this is.
    pub kind: InodeKind,
    /// Owner (`i_uid` + high 16 bits).
    pub uid: u32,
    /// Group (`i_gid` + high 16 bits).
    pub gid: u32,
    /// Size in bytes (`i_size_lo` + `i_size_high`).
    pub size: u64,
    /// Hard links (`i_links_count`).
    pub links_count: u16,
    /// Space used, in 512-byte units (converted from filesystem blocks for `huge_file` inodes).
    pub blocks_512: u64,
    /// Inode flags (`i_flags`).
    pub flags: u32,
    /// Generation, for NFS handles and checksums (`i_generation`).
    pub generation: u32,
    /// Block of the extended-attribute block, 0 if none (`i_file_acl`).
    pub file_acl: u64,
    /// Access time (seconds, nanoseconds).
    pub atime: (i64, u32),
    /// Modification time.
    pub mtime: (i64, u32),
    /// Inode change time.
    pub ctime: (i64, u32),
    /// The raw 60 bytes of `i_block`.
    pub i_block: [u8; I_BLOCK_SIZE],
    /// In-inode extended attribute area (after `i_extra_isize`), empty for 128-byte inodes.
    pub(crate) xattr_area: Vec<u8>,
}

impl Inode {
    /// Decodes the `sb.inode_size` bytes of inode `ino` and verifies its checksum when the
    /// filesystem has `metadata_csum`.
    pub(crate) fn from_bytes(b: &[u8], ino: u32, sb: &Superblock) -> Result<Self> {
        let corrupt = |kind| Error::corrupt(ino, kind);
        let inode_size = usize::from(sb.inode_size);
        if b.len() < inode_size || inode_size < GOOD_OLD_INODE_SIZE {
            return Err(corrupt(CorruptKind::InodeShort { len: b.len() }));
        }
        let b = &b[..inode_size];
        let extra_isize = if inode_size > GOOD_OLD_INODE_SIZE {
            usize::from(u16_at(b, 0x80))
        } else {
            0
        };
        if GOOD_OLD_INODE_SIZE + extra_isize > inode_size || extra_isize % 4 != 0 {
            return Err(corrupt(CorruptKind::ExtraIsize { extra_isize }));
        }
        let generation = u32_at(b, 0x64);
        if sb
            .feature_ro_compat
            .contains(RoCompatFeatures::METADATA_CSUM)
            && b.iter().any(|&x| x != 0)
        {
            verify_checksum(b, ino, generation, extra_isize, sb).map_err(corrupt)?;
        }

        let mode = u16_at(b, 0x0);
        let flags = u32_at(b, 0x20);
        let blocks = join(u32_at(b, 0x1C), u32::from(u16_at(b, 0x74)));
        let blocks_512 = if sb.feature_ro_compat.contains(RoCompatFeatures::HUGE_FILE)
            && flags & HUGE_FILE_FL != 0
        {
            blocks.saturating_mul(u64::from(sb.block_size / 512))
        } else {
            blocks
        };
        // An extra field exists if the extra area is large enough to hold it.
        let has_extra = |end: usize| extra_isize >= end - GOOD_OLD_INODE_SIZE;
        let time = |lo: usize, extra: usize| {
            let secs = i64::from(u32_at(b, lo) as i32);
            if has_extra(extra + 4) {
                let e = u32_at(b, extra);
                // Low 2 bits extend the epoch, the rest are nanoseconds.
                (secs + (i64::from(e & 3) << 32), (e >> 2).min(999_999_999))
            } else {
                (secs, 0)
            }
        };
        let mut i_block = [0u8; I_BLOCK_SIZE];
        i_block.copy_from_slice(&b[0x28..0x28 + I_BLOCK_SIZE]);
        Ok(Inode {
            ino,
            mode,
            kind: InodeKind::from_mode(mode),
            uid: u32::from(u16_at(b, 0x2)) | (u32::from(u16_at(b, 0x78)) << 16),
            gid: u32::from(u16_at(b, 0x18)) | (u32::from(u16_at(b, 0x7A)) << 16),
            size: join(u32_at(b, 0x4), u32_at(b, 0x6C)),
            links_count: u16_at(b, 0x1A),
            blocks_512,
            flags,
            generation,
            file_acl: join(u32_at(b, 0x68), u32::from(u16_at(b, 0x76))),
            atime: time(0x8, 0x8C),
            mtime: time(0x10, 0x88),
            ctime: time(0xC, 0x84),
            i_block,
            xattr_area: b[GOOD_OLD_INODE_SIZE + extra_isize..].to_vec(),
        })
    }

    /// Whether the data is mapped by an extent tree (`EXTENTS_FL`).
    pub fn uses_extents(&self) -> bool {
        self.flags & EXTENTS_FL != 0
    }
    /// Whether the data lives inside the inode (`INLINE_DATA_FL`).
    pub fn has_inline_data(&self) -> bool {
        self.flags & INLINE_DATA_FL != 0
    }
    /// Whether this is a hashed-tree directory (`INDEX_FL`).
    pub fn is_htree(&self) -> bool {
        self.flags & INDEX_FL != 0
    }
    /// Whether this symlink keeps its target in `i_block`. The kernel's test
    /// (`ext4_inode_is_fast_symlink`): without `ea_inode`, no data blocks besides an xattr
    /// block; with `ea_inode` (whose xattr inodes are charged to `i_blocks`), a target shorter
    /// than `i_block`. Inline-data symlinks are never fast.
    pub fn is_fast_symlink(&self, sb: &Superblock) -> bool {
        if self.kind != InodeKind::Symlink || self.has_inline_data() {
            return false;
        }
        if sb.feature_incompat.contains(IncompatFeatures::EA_INODE) {
            return self.size > 0 && self.size < I_BLOCK_SIZE as u64;
        }
        let ea_blocks = if self.file_acl != 0 {
            u64::from(sb.cluster_size / 512)
        } else {
            0
        };
        self.blocks_512.saturating_sub(ea_blocks) == 0
    }
}

fn verify_checksum(
    b: &[u8],
    ino: u32,
    generation: u32,
    extra_isize: usize,
    sb: &Superblock,
) -> Result<(), CorruptKind> {
    // The checksum covers the whole inode with its own checksum fields read as zero.
    let has_hi = extra_isize >= 4;
    let mut seed = inode_seed(sb.csum_seed, ino, generation);
    seed = ext4_crc(seed, &b[..0x7C]);
    seed = ext4_crc(seed, &[0, 0]);
    seed = ext4_crc(seed, &b[0x7E..GOOD_OLD_INODE_SIZE]);
    if b.len() > GOOD_OLD_INODE_SIZE {
        if has_hi {
            seed = ext4_crc(seed, &b[GOOD_OLD_INODE_SIZE..0x82]);
            seed = ext4_crc(seed, &[0, 0]);
            seed = ext4_crc(seed, &b[0x84..]);
        } else {
            seed = ext4_crc(seed, &b[GOOD_OLD_INODE_SIZE..]);
        }
    }
    let lo = u32::from(u16_at(b, 0x7C));
    let (stored, computed) = if has_hi {
        (lo | (u32::from(u16_at(b, 0x82)) << 16), seed)
    } else {
        (lo, seed & 0xFFFF)
    };
    if stored != computed {
        return Err(CorruptKind::InodeChecksum { stored, computed });
    }
    Ok(())
}
