//! The superblock (1024 bytes at byte 1024) and the block group descriptors.

use crate::checksum::ext4_crc;
use crate::error::{Error, GroupDescKind, Result, SuperblockKind};
use crate::features::{CompatFeatures, IncompatFeatures, RoCompatFeatures};
use crate::le::{join, u16_at, u32_at, u8_at};

/// Byte offset of the primary superblock in the image.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock on disk.
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic` of ext2/3/4.
pub(crate) const MAGIC: u16 = 0xEF53;

/// Block group descriptor flag: the inode table and bitmap are not initialised (no inodes used).
pub(crate) const BG_INODE_UNINIT: u16 = 0x1;

/// The fields of the superblock this reader uses, validated against each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Total inodes (`s_inodes_count`).
    pub inodes_count: u32,
    /// Total blocks (`s_blocks_count_lo`/`_hi`).
    pub blocks_count: u64,
    /// First block of group 0: 1 for 1 KiB blocks, else 0 (`s_first_data_block`).
    pub first_data_block: u32,
    /// Block size in bytes: 1 KiB to 64 KiB.
    pub block_size: u32,
    /// Cluster size in bytes (bigalloc allocation unit; equals `block_size` without bigalloc).
    pub cluster_size: u32,
    /// Blocks per group (`s_blocks_per_group`).
    pub blocks_per_group: u32,
    /// Inodes per group (`s_inodes_per_group`).
    pub inodes_per_group: u32,
    /// Size of one on-disk inode (128 for revision 0).
    pub inode_size: u16,
    /// First non-reserved inode (`s_first_ino`).
    pub first_ino: u32,
    /// Compatible features (unknown bits kept).
    pub feature_compat: CompatFeatures,
    /// Incompatible features (unknown bits kept; only [`IncompatFeatures::SUPPORTED`] ones
    /// pass [`Superblock::from_bytes`]).
    pub feature_incompat: IncompatFeatures,
    /// Read-only-compatible features (unknown bits kept).
    pub feature_ro_compat: RoCompatFeatures,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Volume label, NUL-padded.
    pub volume_name: [u8; 16],
    /// Size of a group descriptor: 32, or `s_desc_size` with `64bit`.
    pub desc_size: u16,
    /// First group whose descriptors use the `meta_bg` layout.
    pub first_meta_bg: u32,
    /// Seed for metadata checksums (from `s_checksum_seed` or the UUID).
    pub csum_seed: u32,
}

impl Superblock {
    /// Parses and validates the 1024 superblock bytes. `image_len` bounds how much metadata
    /// the superblock may claim (a hostile superblock must not make us allocate without bound).
    pub fn from_bytes(b: &[u8], image_len: u64) -> Result<Self> {
        let bad = Error::Superblock;
        if b.len() < SUPERBLOCK_SIZE {
            return Err(bad(SuperblockKind::Short { len: b.len() }));
        }
        let magic = u16_at(b, 0x38);
        if magic != MAGIC {
            return Err(bad(SuperblockKind::Magic { magic }));
        }
        let rev_level = u32_at(b, 0x4C);
        let feature_compat = CompatFeatures::from_bits_retain(u32_at(b, 0x5C));
        let (incompat, ro_compat) = if rev_level >= 1 {
            (u32_at(b, 0x60), u32_at(b, 0x64))
        } else {
            (0, 0)
        };
        let feature_incompat = IncompatFeatures::from_bits_retain(incompat);
        let feature_ro_compat = RoCompatFeatures::from_bits_retain(ro_compat);
        let unsupported = feature_incompat.unsupported();
        if !unsupported.is_empty() {
            return Err(Error::Unsupported(unsupported));
        }
        if feature_incompat.contains(IncompatFeatures::RECOVER) {
            tracing::warn!("journal needs recovery; reading the image as it is on disk");
        }

        if feature_ro_compat.contains(RoCompatFeatures::METADATA_CSUM) {
            let checksum_type = u8_at(b, 0x175);
            if checksum_type != 1 {
                return Err(bad(SuperblockKind::ChecksumType { checksum_type }));
            }
            let stored = u32_at(b, 0x3FC);
            let computed = ext4_crc(!0, &b[..0x3FC]);
            if stored != computed {
                return Err(bad(SuperblockKind::Checksum { stored, computed }));
            }
        }

        let log_block = u32_at(b, 0x18);
        if log_block > 6 {
            return Err(bad(SuperblockKind::BlockSize { log_block }));
        }
        let block_size = 1024u32 << log_block;
        let log_cluster = u32_at(b, 0x1C);
        let bigalloc = feature_ro_compat.contains(RoCompatFeatures::BIGALLOC);
        let cluster_size = if bigalloc {
            if log_cluster < log_block || log_cluster > 6 + 23 {
                return Err(bad(SuperblockKind::ClusterSize { log_cluster }));
            }
            1u64.checked_shl(10 + log_cluster)
                .and_then(|c| u32::try_from(c).ok())
                .ok_or(bad(SuperblockKind::ClusterTooBig { log_cluster }))?
        } else {
            block_size
        };

        let is_64bit = feature_incompat.contains(IncompatFeatures::IS_64BIT);
        let blocks_count = join(u32_at(b, 0x4), if is_64bit { u32_at(b, 0x150) } else { 0 });
        let first_data_block = u32_at(b, 0x14);
        let expected_first = u32::from(block_size == 1024);
        if first_data_block != expected_first {
            // bigalloc with 1 KiB blocks has first_data_block 0; accept both there.
            if !(bigalloc && first_data_block == 0) {
                return Err(bad(SuperblockKind::FirstDataBlock {
                    first_data_block,
                    block_size,
                }));
            }
        }
        if blocks_count <= u64::from(first_data_block) {
            return Err(bad(SuperblockKind::BlocksCount { blocks_count }));
        }
        let blocks_per_group = u32_at(b, 0x20);
        let clusters_per_group = u32_at(b, 0x24);
        let inodes_per_group = u32_at(b, 0x28);
        let bits_per_block = block_size.saturating_mul(8);
        if blocks_per_group == 0 || inodes_per_group == 0 {
            return Err(bad(SuperblockKind::ZeroPerGroup));
        }
        let ratio = cluster_size / block_size;
        if bigalloc
            && u64::from(clusters_per_group) * u64::from(ratio) != u64::from(blocks_per_group)
        {
            return Err(bad(SuperblockKind::ClustersPerGroup {
                blocks_per_group,
                clusters_per_group,
                ratio,
            }));
        }
        if blocks_per_group / ratio > bits_per_block || inodes_per_group > bits_per_block {
            return Err(bad(SuperblockKind::PerGroup {
                blocks_per_group,
                inodes_per_group,
            }));
        }
        let inodes_count = u32_at(b, 0x0);
        let inode_size = if rev_level >= 1 { u16_at(b, 0x58) } else { 128 };
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(bad(SuperblockKind::InodeSize { inode_size }));
        }
        let first_ino = if rev_level >= 1 { u32_at(b, 0x54) } else { 11 };
        let desc_size = if is_64bit {
            let d = u16_at(b, 0xFE);
            if d < 64 || !d.is_power_of_two() || u32::from(d) > block_size {
                return Err(bad(SuperblockKind::DescSize { desc_size: d }));
            }
            d
        } else {
            32
        };
        let csum_seed = if feature_incompat.contains(IncompatFeatures::CSUM_SEED) {
            u32_at(b, 0x270)
        } else {
            ext4_crc(!0, &b[0x68..0x78])
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x68..0x78]);
        let mut volume_name = [0u8; 16];
        volume_name.copy_from_slice(&b[0x78..0x88]);

        let sb = Superblock {
            inodes_count,
            blocks_count,
            first_data_block,
            block_size,
            cluster_size,
            blocks_per_group,
            inodes_per_group,
            inode_size,
            first_ino,
            feature_compat,
            feature_incompat,
            feature_ro_compat,
            uuid,
            volume_name,
            desc_size,
            first_meta_bg: u32_at(b, 0x104),
            csum_seed,
        };
        let groups = sb.group_count();
        if u64::from(inodes_count) > u64::from(groups) * u64::from(inodes_per_group) {
            return Err(bad(SuperblockKind::InodesCount {
                inodes_count,
                groups,
                inodes_per_group,
            }));
        }
        // The descriptor table is read whole at open: it must fit in the image.
        if u64::from(groups) * u64::from(desc_size) > image_len {
            return Err(bad(SuperblockKind::DescTable { groups, image_len }));
        }
        Ok(sb)
    }

    /// Number of block groups (at most 2^32 / 1, since `blocks_per_group >= 1`... bounded by
    /// the check against the image size in `from_bytes`).
    pub fn group_count(&self) -> u32 {
        let data_blocks = self.blocks_count - u64::from(self.first_data_block);
        let groups = data_blocks.div_ceil(u64::from(self.blocks_per_group));
        u32::try_from(groups).unwrap_or(u32::MAX)
    }

    /// First block of group `g`.
    pub(crate) fn group_first_block(&self, g: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// Whether group `g` holds a superblock backup (and so a descriptor-table copy).
    pub(crate) fn group_has_super(&self, g: u32) -> bool {
        if !self
            .feature_ro_compat
            .contains(RoCompatFeatures::SPARSE_SUPER)
            || g <= 1
        {
            return true;
        }
        [3u32, 5, 7].iter().any(|&base| is_power_of(g, base))
    }

    /// Image block holding the descriptor of group `g`, and the byte offset inside it.
    pub(crate) fn desc_location(&self, g: u32) -> (u64, usize) {
        let per_block = self.block_size / u32::from(self.desc_size);
        let index_in_block = (g % per_block) as usize * usize::from(self.desc_size);
        let desc_block = g / per_block;
        if self.feature_incompat.contains(IncompatFeatures::META_BG)
            && desc_block >= self.first_meta_bg
        {
            // meta_bg: the descriptors of meta group m live in the first group of m,
            // right after that group's superblock copy (if it has one).
            let first_group = desc_block * per_block;
            let mut has_super = u64::from(self.group_has_super(first_group));
            // bigalloc with 1 KiB blocks puts group 0 at block 0, and its superblock in block 1.
            if self.block_size == 1024 && first_group == 0 && self.first_data_block == 0 {
                has_super += 1;
            }
            (
                self.group_first_block(first_group) + has_super,
                index_in_block,
            )
        } else {
            // The table follows the block holding the primary superblock (byte 1024),
            // whatever s_first_data_block says (it is 0 for bigalloc with 1 KiB blocks).
            let sb_block = SUPERBLOCK_OFFSET / u64::from(self.block_size);
            (sb_block + 1 + u64::from(desc_block), index_in_block)
        }
    }
}

fn is_power_of(mut n: u32, base: u32) -> bool {
    while n > 1 && n % base == 0 {
        n /= base;
    }
    n == 1
}

/// The fields of one block group descriptor this reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupDesc {
    pub(crate) inode_bitmap: u64,
    pub(crate) inode_table: u64,
    pub(crate) flags: u16,
    pub(crate) itable_unused: u32,
}

impl GroupDesc {
    /// Decodes the descriptor bytes `b` and checks them against the superblock.
    pub(crate) fn from_bytes(b: &[u8], sb: &Superblock) -> Result<Self, GroupDescKind> {
        let wide = sb.desc_size >= 64;
        let hi = |off| if wide { u32_at(b, off) } else { 0 };
        let d = GroupDesc {
            inode_bitmap: join(u32_at(b, 0x4), hi(0x24)),
            inode_table: join(u32_at(b, 0x8), hi(0x28)),
            flags: u16_at(b, 0x12),
            itable_unused: u32::from(u16_at(b, 0x1C))
                | if wide {
                    u32::from(u16_at(b, 0x32)) << 16
                } else {
                    0
                },
        };
        // The inode table must lie inside the filesystem.
        let table_bytes = u64::from(sb.inodes_per_group) * u64::from(sb.inode_size);
        let table_blocks = table_bytes.div_ceil(u64::from(sb.block_size));
        if d.inode_table == 0 || d.inode_table.saturating_add(table_blocks) > sb.blocks_count {
            return Err(GroupDescKind::InodeTable {
                block: d.inode_table,
                blocks: table_blocks,
                blocks_count: sb.blocks_count,
            });
        }
        Ok(d)
    }
}
