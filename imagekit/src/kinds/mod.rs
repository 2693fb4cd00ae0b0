//! What goes into each [`Kind`] of image: one row of [`KINDS`] per kind, and one generic
//! [`build`] that makes every image in the same steps: the host tree for `mke2fs -d`, mkfs,
//! `e2fsck -D`, the files the debugfs script adds, [`Builder::finish`]. The trees and files the
//! rows name are in [`files`].

use std::path::Path;

use crate::builder::{
    every_other, file_spec, kept_runs, tree_dir, tree_fifo, tree_file, tree_symlink, Builder,
    Pattern, MAX_LBLK,
};
use crate::error::Result;
use crate::oracle::FileKind;
use crate::{FileSpec, Image, Kind, Layout};

mod files;

use files::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// How one [`Kind`] of image is made, and what it covers.
pub(crate) struct KindSpec {
    kind: Kind,
    /// Short id ([`Kind::name`]).
    pub name: &'static str,
    block_size: u32,
    /// `mke2fs -t`.
    fs_type: &'static str,
    /// Size of the (sparse) image file.
    bytes: u64,
    /// `mke2fs -O`.
    features: Features,
    /// More mke2fs arguments, after `-O`.
    mkfs_args: &'static [&'static str],
    /// Whether mke2fs computes the metadata checksums itself. Otherwise they are computed once
    /// at the end (see [`Builder::csum_later`]); only `ext4-4k` is made the ordinary way.
    csum_by_mkfs: bool,
    /// The host tree `mke2fs -d` copies in, if any.
    tree: Tree,
    /// Whether `e2fsck -fyD` rebuilds the directories after mkfs (the multi-block ones become
    /// htrees; see [`Builder::index_dirs`]).
    index_dirs: bool,
    /// What the debugfs script adds, in this order (it draws on the kind's random numbers).
    files: &'static [Files],
    /// One line on what the image covers ([`Image::description`]).
    pub description: &'static str,
}

/// The features given to `mke2fs -O`.
enum Features {
    /// [`EXT4_FEATURES`], then these (comma-separated, `^` turns one off).
    Ext4With(&'static str),
    /// Exactly these.
    Exactly(&'static str),
    /// No `-O`: mke2fs's defaults for the file-system type.
    MkfsDefaults,
}

/// The ext4 features most images start from.
const EXT4_FEATURES: &str = "extent,64bit,flex_bg,metadata_csum,dir_index,extra_isize";

impl Features {
    /// The `-O` argument, if any.
    fn arg(&self) -> Option<String> {
        match self {
            Features::Ext4With(more) => Some(format!("{EXT4_FEATURES},{more}")),
            Features::Exactly(list) => Some((*list).to_owned()),
            Features::MkfsDefaults => None,
        }
    }
}

/// The host tree given to `mke2fs -d`.
enum Tree {
    /// None: mkfs makes an empty file system.
    None,
    /// [`common_tree`], regular files and slow symlinks mapped as this layout.
    Common(Layout),
    /// A tree only this kind has.
    Special(fn(&mut Builder) -> Result<()>),
}

/// A set of files the debugfs script adds after mkfs.
enum Files {
    /// The standard extent-mapped files ([`std_files`]).
    Standard(Std),
    /// The block-mapped files of ext2/ext3 ([`indirect_files`]).
    BlockMapped,
    /// One file punched into an irregular pattern of `extents` extents ([`Builder::irregular`]).
    Irregular {
        path: &'static str,
        extents: usize,
        depth: u16,
        note: &'static str,
    },
    /// Files only this kind has.
    Special(fn(&mut Builder) -> Result<()>),
}

/// Which of the optional standard files an image gets.
#[derive(Clone, Copy)]
struct Std {
    /// `/depth2`: 3000 irregular extents.
    depth2: bool,
    /// `/depth3`: 64 Ki blocks, every other one punched.
    depth3: bool,
    /// `/sparse-max`: written blocks up to the last addressable one.
    written_max: bool,
}

/// The standard files of most images: all but `/depth3`.
const STD: Std = Std {
    depth2: true,
    depth3: false,
    written_max: true,
};

/// Every kind of image, in the order of [`Kind`] ([`KindSpec::of`] indexes it).
const KINDS: &[KindSpec] = &[
    KindSpec {
        kind: Kind::Ext4k,
        name: "ext4-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 512 * MIB,
        features: Features::Ext4With("has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: true,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(STD)],
        description: "4 KiB blocks, default ext4 features with a journal and metadata_csum",
    },
    KindSpec {
        kind: Kind::Ext1k,
        name: "ext4-1k",
        block_size: 1024,
        fs_type: "ext4",
        bytes: 256 * MIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(Std {
            depth3: true,
            ..STD
        })],
        description: "1 KiB blocks, no journal; extent trees of depth 0 to 3",
    },
    KindSpec {
        kind: Kind::Frag1k,
        name: "frag-1k",
        block_size: 1024,
        fs_type: "ext4",
        bytes: GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::None,
        index_dirs: false,
        files: &[Files::Irregular {
            path: "/frag-100k",
            extents: 100_000,
            depth: 3,
            note: "about 10^5 irregular extents, depth 3",
        }],
        description: "1 KiB blocks, one file with about 10^5 irregular extents",
    },
    KindSpec {
        kind: Kind::Frag4k,
        name: "frag-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 512 * MIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::None,
        index_dirs: false,
        files: &[
            Files::Irregular {
                path: "/frag-10k",
                extents: 10_000,
                depth: 2,
                note: "10^4 irregular extents, depth 2",
            },
            Files::Special(random_ranges),
            Files::Special(refill),
        ],
        description: "4 KiB blocks, fragmented files: irregular, random ranges, refilled holes",
    },
    KindSpec {
        kind: Kind::Bigalloc,
        name: "bigalloc-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 512 * MIB,
        features: Features::Ext4With("bigalloc,^has_journal"),
        mkfs_args: &["-C", "16384"],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(STD)],
        description: "4 KiB blocks in 16 KiB clusters (bigalloc)",
    },
    KindSpec {
        kind: Kind::No64bit,
        name: "no64bit-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 512 * MIB,
        features: Features::Exactly("extent,^64bit,flex_bg,metadata_csum,^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(STD)],
        description: "4 KiB blocks without 64bit (32-byte group descriptors)",
    },
    KindSpec {
        kind: Kind::NoFlexBg,
        name: "noflexbg-1k",
        block_size: 1024,
        fs_type: "ext4",
        bytes: 256 * MIB,
        features: Features::Exactly("extent,64bit,^flex_bg,metadata_csum,^has_journal"),
        mkfs_args: &["-N", "1024"],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(STD)],
        description:
            "1 KiB blocks without flex_bg, 32 inodes per group (the tree spans many groups)",
    },
    KindSpec {
        kind: Kind::MetaBg,
        name: "metabg-1k",
        block_size: 1024,
        fs_type: "ext4",
        bytes: GIB,
        features: Features::Exactly(
            "extent,64bit,flex_bg,metadata_csum,meta_bg,^resize_inode,^has_journal",
        ),
        mkfs_args: &["-N", "2048"],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(STD)],
        description: "1 KiB blocks with meta_bg (16 groups per meta group), 16 inodes per group",
    },
    KindSpec {
        kind: Kind::Inline,
        name: "inline-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 64 * MIB,
        features: Features::Ext4With("inline_data,^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Special(inline_tree),
        index_dirs: false,
        files: &[Files::Special(inline_by_debugfs)],
        description: "4 KiB blocks with inline_data: small files and directories in the inode",
    },
    KindSpec {
        kind: Kind::HtreeNoCsum,
        name: "htree-nocsum-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 512 * MIB,
        features: Features::Exactly("extent,64bit,flex_bg,^metadata_csum,dir_index,^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Special(big_dir),
        index_dirs: true,
        files: &[Files::Standard(Std {
            depth2: false,
            written_max: false,
            ..STD
        })],
        description: "4 KiB blocks, metadata_csum off; a directory with 10^4 entries (htree)",
    },
    KindSpec {
        kind: Kind::Ext3_1k,
        name: "ext3-1k",
        block_size: 1024,
        fs_type: "ext3",
        bytes: 256 * MIB,
        features: Features::MkfsDefaults,
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::BlockMap),
        index_dirs: true,
        files: &[Files::BlockMapped],
        description: "ext3 (no extents): files mapped by direct and indirect blocks",
    },
    KindSpec {
        kind: Kind::Ext3_4k,
        name: "ext3-4k",
        block_size: 4096,
        fs_type: "ext3",
        bytes: 256 * MIB,
        features: Features::MkfsDefaults,
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::BlockMap),
        index_dirs: true,
        files: &[Files::BlockMapped],
        description: "ext3 (no extents): files mapped by direct and indirect blocks",
    },
    KindSpec {
        kind: Kind::Ext4_64k,
        name: "ext4-64k",
        block_size: 65_536,
        fs_type: "ext4",
        bytes: 4 * GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Common(Layout::Extents),
        index_dirs: true,
        files: &[Files::Standard(Std {
            depth2: false,
            written_max: false,
            ..STD
        })],
        description: "64 KiB blocks (the kernel mounts it only where pages are 64 KiB)",
    },
    KindSpec {
        kind: Kind::DemoTree,
        name: "demo-tree-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 2 * GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Special(demo_tree),
        index_dirs: false,
        files: &[],
        description: "demo: a tree of 2000 ordinary files in 40 directories",
    },
    KindSpec {
        kind: Kind::DemoPunched,
        name: "demo-punched-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: 2 * GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::None,
        index_dirs: false,
        files: &[Files::Irregular {
            path: "/punched-100k",
            extents: 100_000,
            depth: 2,
            note: "about 10^5 irregular extents",
        }],
        description: "demo: a punched file with about 10^5 extents on 4 KiB blocks",
    },
    KindSpec {
        kind: Kind::DemoUnwritten,
        name: "demo-unwritten-4k",
        block_size: 4096,
        fs_type: "ext4",
        bytes: GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::None,
        index_dirs: false,
        files: &[Files::Special(fallocated), Files::Special(mixed_big)],
        description: "demo: unwritten (fallocated) extents",
    },
    KindSpec {
        kind: Kind::DemoDepth3,
        name: "demo-depth3-1k",
        block_size: 1024,
        fs_type: "ext4",
        bytes: GIB,
        features: Features::Ext4With("^has_journal"),
        mkfs_args: &[],
        csum_by_mkfs: false,
        tree: Tree::Special(twenty_files),
        index_dirs: false,
        files: &[Files::Irregular {
            path: "/depth3",
            extents: 40_000,
            depth: 3,
            note: "4*10^4 irregular extents, depth 3",
        }],
        description: "demo: 1 KiB blocks, a depth-3 extent tree",
    },
];

// `KindSpec::of` indexes `KINDS` by the kind's discriminant.
const _: () = {
    let mut i = 0;
    while i < KINDS.len() {
        assert!(
            KINDS[i].kind as usize == i,
            "KINDS lists the kinds in the order of `Kind`"
        );
        i += 1;
    }
};

impl KindSpec {
    /// The row of `kind`.
    pub(crate) fn of(kind: Kind) -> &'static KindSpec {
        &KINDS[kind as usize]
    }
}

/// Builds the image of `kind` in `dir` from its row of [`KINDS`].
pub(crate) fn build(kind: Kind, dir: &Path) -> Result<Image> {
    let row = KindSpec::of(kind);
    let _span = tracing::info_span!("build", image = row.name).entered();
    let mut b = Builder::new(kind, dir, row.block_size)?;
    b.csum_later = !row.csum_by_mkfs;
    let with_tree = match row.tree {
        Tree::None => false,
        Tree::Common(layout) => {
            common_tree(&mut b, layout)?;
            true
        }
        Tree::Special(make) => {
            make(&mut b)?;
            true
        }
    };
    let features = row.features.arg();
    let mut args: Vec<&str> = Vec::new();
    if let Some(features) = &features {
        args.extend(["-O", features.as_str()]);
    }
    args.extend(row.mkfs_args);
    b.mkfs(row.fs_type, row.bytes, &args, with_tree)?;
    if row.index_dirs {
        b.index_dirs()?;
    }
    for files in row.files {
        match *files {
            Files::Standard(which) => std_files(&mut b, &which)?,
            Files::BlockMapped => indirect_files(&mut b)?,
            Files::Irregular {
                path,
                extents,
                depth,
                note,
            } => {
                let p = b.irregular(extents);
                punched(&mut b, path, &p, Some(depth), note)?;
            }
            Files::Special(add) => add(&mut b)?,
        }
    }
    b.finish(row.description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_row_and_a_name_of_its_own() {
        let lists = crate::Recipe::STANDARD.iter().chain(crate::Recipe::DEMO);
        let all: Vec<Kind> = lists.filter_map(crate::Recipe::kind).collect();
        assert_eq!(
            all.len(),
            KINDS.len(),
            "STANDARD and DEMO list every kind once"
        );
        let mut names: Vec<&str> = all.iter().map(|&k| KindSpec::of(k).name).collect();
        for &kind in &all {
            assert_eq!(KindSpec::of(kind).kind, kind);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "names are unique");
    }
}
