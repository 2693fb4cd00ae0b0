//! Every in-memory lookup structure, named once: the `structure` of report tables and notebook
//! columns, benchmark ids, the per-file choice, the `--tier` of a stack of one structure.

/// A lookup structure over one file's extent map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// The learned index ([`super::LearnedIndex`]) storing 16 bytes an extent unpacked, a key
    /// column beside 12-byte records ([`super::Storage::Records`]).
    Learned,
    /// The learned index storing bit-packed blocks where smaller than a plain array
    /// ([`super::Storage::Packed`]): the compact form.
    Compact,
    /// `std::collections::BTreeMap` ([`super::BTreeIndex`]), the baseline of every speed-up.
    Btree,
    /// The kernel-style iext tree with fuse-iomap's 32-byte `fuse_iomap_io` records
    /// ([`super::FuseIextIndex`]).
    Iext32,
    /// The kernel-style iext tree with XFS's 16-byte records ([`super::XfsIextIndex`]).
    Iext16,
    /// `rangemap::RangeMap` ([`super::RangeMapIndex`]).
    RangeMap,
    /// Binary search over the sorted extent array ([`super::SortedIndex`]).
    Sorted,
    /// The walk of the extent tree in the image, per lookup ([`crate::OnDiskIndex`]).
    Ondisk,
}

impl Structure {
    /// Every structure, in the order reports draw them.
    pub const ALL: [Structure; 8] = [
        Self::Learned,
        Self::Compact,
        Self::Btree,
        Self::Iext32,
        Self::Iext16,
        Self::RangeMap,
        Self::Sorted,
        Self::Ondisk,
    ];

    /// Its name everywhere: tables, benchmark ids, notebooks, the per-file choice.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Compact => "compact",
            Self::Btree => "btree",
            Self::Iext32 => "iext32",
            Self::Iext16 => "iext16",
            Self::RangeMap => "rangemap",
            Self::Sorted => "sorted",
            Self::Ondisk => "ondisk",
        }
    }

    /// Its legend text in figures.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Learned => "learned index over 16 B records",
            Self::Compact => "learned index over bit-packed blocks (compact)",
            Self::Btree => "BTreeMap",
            Self::Iext32 => "kernel-style iext tree (32 B fuse_iomap_io records)",
            Self::Iext16 => "kernel-style iext tree (16 B xfs records)",
            Self::RangeMap => "rangemap::RangeMap",
            Self::Sorted => "sorted array (binary search)",
            Self::Ondisk => "on-disk extent-tree walk",
        }
    }
}

impl std::fmt::Display for Structure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_structure_has_one_name() {
        for s in Structure::ALL {
            assert!(!s.label().is_empty());
        }
        let mut names = Structure::ALL.map(Structure::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Structure::ALL.len());
    }
}
