//! The superblock's three feature masks as flag types. Each keeps the bits it does not know
//! (they are read with `from_bits_retain`), so an unknown incompatible feature is still seen,
//! and refused, by [`IncompatFeatures::unsupported`].

use std::fmt;

bitflags::bitflags! {
    /// Compatible features (`s_feature_compat`): a reader that does not know one may still read
    /// and write the filesystem. None of them changes how this reader reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CompatFeatures: u32 {
        /// `dir_prealloc`: directories get preallocated blocks.
        const DIR_PREALLOC = 0x1;
        /// `imagic_inodes`: AFS server inodes.
        const IMAGIC_INODES = 0x2;
        /// `has_journal`: the filesystem has a journal.
        const HAS_JOURNAL = 0x4;
        /// `ext_attr`: extended attributes.
        const EXT_ATTR = 0x8;
        /// `resize_inode`: blocks reserved for growing the descriptor table.
        const RESIZE_INODE = 0x10;
        /// `dir_index`: hashed-tree directories.
        const DIR_INDEX = 0x20;
        /// `lazy_bg`: uninitialised groups (old).
        const LAZY_BG = 0x40;
        /// `exclude_inode` (never used).
        const EXCLUDE_INODE = 0x80;
        /// `exclude_bitmap` (snapshots, never merged).
        const EXCLUDE_BITMAP = 0x100;
        /// `sparse_super2`: at most two superblock backups.
        const SPARSE_SUPER2 = 0x200;
        /// `fast_commit`: fast-commit journal blocks.
        const FAST_COMMIT = 0x400;
        /// `stable_inodes`: inode numbers never change (for encryption policies).
        const STABLE_INODES = 0x800;
        /// `orphan_file`: the orphan list lives in a file.
        const ORPHAN_FILE = 0x1000;
    }
}

bitflags::bitflags! {
    /// Incompatible features (`s_feature_incompat`): a reader that does not know one must not
    /// read the filesystem. [`IncompatFeatures::SUPPORTED`] are the ones this reader knows.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IncompatFeatures: u32 {
        /// `compression` (never merged).
        const COMPRESSION = 0x1;
        /// `filetype`: directory entries carry a file type byte.
        const FILETYPE = 0x2;
        /// `needs_recovery`: the journal needs replay.
        const RECOVER = 0x4;
        /// `journal_dev`: this is an external journal device, not a filesystem.
        const JOURNAL_DEV = 0x8;
        /// `meta_bg`: descriptor blocks spread over meta groups.
        const META_BG = 0x10;
        /// `extent`: files may map their blocks with extent trees.
        const EXTENTS = 0x40;
        /// `64bit`: 64-bit block numbers and wide group descriptors.
        const IS_64BIT = 0x80;
        /// `mmp`: multiple-mount protection.
        const MMP = 0x100;
        /// `flex_bg`: group metadata may live in other groups.
        const FLEX_BG = 0x200;
        /// `ea_inode`: large xattr values in inodes of their own.
        const EA_INODE = 0x400;
        /// `dirdata`: data in directory entries (Lustre).
        const DIRDATA = 0x1000;
        /// `metadata_csum_seed`: the checksum seed is stored in the superblock.
        const CSUM_SEED = 0x2000;
        /// `large_dir`: directories over 2 GiB, 3-level htrees.
        const LARGEDIR = 0x4000;
        /// `inline_data`: small files and directories inside the inode.
        const INLINE_DATA = 0x8000;
        /// `encrypt`: encrypted names and contents.
        const ENCRYPT = 0x10000;
        /// `casefold`: case-insensitive names.
        const CASEFOLD = 0x20000;
    }
}

bitflags::bitflags! {
    /// Read-only-compatible features (`s_feature_ro_compat`): a reader that does not know one
    /// may still read the filesystem, not write it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RoCompatFeatures: u32 {
        /// `sparse_super`: superblock backups only in groups 0, 1 and powers of 3, 5 and 7.
        const SPARSE_SUPER = 0x1;
        /// `large_file`: files over 2 GiB.
        const LARGE_FILE = 0x2;
        /// `btree_dir` (never used).
        const BTREE_DIR = 0x4;
        /// `huge_file`: `i_blocks` may count filesystem blocks.
        const HUGE_FILE = 0x8;
        /// `uninit_bg`: group descriptor checksums.
        const GDT_CSUM = 0x10;
        /// `dir_nlink`: directories over 65000 subdirectories.
        const DIR_NLINK = 0x20;
        /// `extra_isize`: large inodes reserve `s_want_extra_isize`.
        const EXTRA_ISIZE = 0x40;
        /// `snapshot` (never merged).
        const HAS_SNAPSHOT = 0x80;
        /// `quota`: quota inodes.
        const QUOTA = 0x100;
        /// `bigalloc`: blocks are allocated in clusters.
        const BIGALLOC = 0x200;
        /// `metadata_csum`: crc32c checksums on metadata.
        const METADATA_CSUM = 0x400;
        /// `replica` (never merged).
        const REPLICA = 0x800;
        /// `read-only`: the filesystem must be mounted read-only.
        const READONLY = 0x1000;
        /// `project`: project quotas.
        const PROJECT = 0x2000;
        /// `shared_blocks`: blocks may be shared (e2fsprogs deduplication).
        const SHARED_BLOCKS = 0x4000;
        /// `verity`: fs-verity files.
        const VERITY = 0x8000;
        /// `orphan_present`: the orphan file is not empty.
        const ORPHAN_PRESENT = 0x10000;
    }
}

impl IncompatFeatures {
    /// Incompatible features this reader handles; the rest are refused by name.
    /// `needs_recovery` (a journal that needs replay) is accepted: the image is read as it is
    /// on disk, like `debugfs` does, with a warning. `encrypt` and `casefold` change only how
    /// names are stored and compared; extents and contents are read as they are on disk.
    pub const SUPPORTED: Self = Self::FILETYPE
        .union(Self::RECOVER)
        .union(Self::META_BG)
        .union(Self::EXTENTS)
        .union(Self::IS_64BIT)
        .union(Self::MMP)
        .union(Self::FLEX_BG)
        .union(Self::EA_INODE)
        .union(Self::CSUM_SEED)
        .union(Self::LARGEDIR)
        .union(Self::INLINE_DATA)
        .union(Self::ENCRYPT)
        .union(Self::CASEFOLD);

    /// The features set here that this reader does not handle, unknown bits included
    /// (`difference` keeps them, where `& !SUPPORTED` would drop them).
    pub fn unsupported(self) -> Self {
        self.difference(Self::SUPPORTED)
    }

    /// e2fsprogs' name of each known feature, in bit order.
    const NAMES: &'static [(Self, &'static str)] = &[
        (Self::COMPRESSION, "compression"),
        (Self::FILETYPE, "filetype"),
        (Self::RECOVER, "needs_recovery"),
        (Self::JOURNAL_DEV, "journal_dev"),
        (Self::META_BG, "meta_bg"),
        (Self::EXTENTS, "extent"),
        (Self::IS_64BIT, "64bit"),
        (Self::MMP, "mmp"),
        (Self::FLEX_BG, "flex_bg"),
        (Self::EA_INODE, "ea_inode"),
        (Self::DIRDATA, "dirdata"),
        (Self::CSUM_SEED, "metadata_csum_seed"),
        (Self::LARGEDIR, "large_dir"),
        (Self::INLINE_DATA, "inline_data"),
        (Self::ENCRYPT, "encrypt"),
        (Self::CASEFOLD, "casefold"),
    ];
}

/// The features by their e2fsprogs names, comma-separated, then the unknown bits as one hex
/// value: `journal_dev, unknown 0x100000`.
impl fmt::Display for IncompatFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (flag, name) in Self::NAMES {
            if self.contains(*flag) {
                write!(f, "{sep}{name}")?;
                sep = ", ";
            }
        }
        let unknown = self.bits() & !Self::all().bits();
        if unknown != 0 {
            write!(f, "{sep}unknown {unknown:#x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_incompat_bits_are_kept_refused_and_named() {
        let f = IncompatFeatures::from_bits_retain(0x8 | 0x40 | 0x10_0000);
        assert_eq!(
            f.unsupported(),
            IncompatFeatures::from_bits_retain(0x8 | 0x10_0000)
        );
        assert_eq!(f.unsupported().to_string(), "journal_dev, unknown 0x100000");
        assert_eq!(f.to_string(), "journal_dev, extent, unknown 0x100000");
        assert!(IncompatFeatures::SUPPORTED.unsupported().is_empty());
    }
}
