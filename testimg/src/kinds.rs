//! What goes into each [`Kind`] of image.

use std::path::Path;

use crate::error::Result;
use crate::oracle::FileKind;
use crate::recipe::{
    every_other, file_spec, kept_runs, tree_dir, tree_fifo, tree_file, tree_symlink, Builder,
    Pattern, MAX_LBLK,
};
use crate::{FileSpec, Image, Kind, Layout};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Sizes of the `/sizes/size-N` files of the common tree: around inline and block limits.
const TREE_SIZES: &[u64] = &[
    0, 1, 59, 60, 61, 100, 1000, 4095, 4096, 4097, 65_537, 300_000, 1_100_000,
];

/// A target of 59 bytes (fast symlink: fits the 60-byte `i_block`) and one of 60 (slow).
fn long_target(len: usize) -> String {
    let mut s = String::from("/sizes/");
    while s.len() < len {
        s.push('x');
    }
    s.truncate(len);
    s
}

/// The common tree given to `mke2fs -d`: nested directories, files of sizes around the
/// interesting limits, fast and slow symlinks, a hard link, a FIFO, a name with a space and
/// non-ASCII, an empty directory, and a 500-entry directory (several blocks: an htree once
/// `e2fsck -D` has run).
fn common_tree(b: &mut Builder, regular: Layout) -> Result<()> {
    let root = b.tree_root();
    tree_dir(&root, "")?;
    for &size in TREE_SIZES {
        let path = format!("sizes/size-{size}");
        tree_file(&root, &path, &mut b.rng, size as usize)?;
        b.spec(file_spec(
            &format!("/{path}"),
            regular,
            size,
            "tree file (mke2fs -d)",
        ));
    }
    tree_file(&root, "nested/a/b/c/d/e/f/deep.bin", &mut b.rng, 5000)?;
    b.spec(file_spec(
        "/nested/a/b/c/d/e/f/deep.bin",
        regular,
        5000,
        "7 directories deep",
    ));
    tree_file(&root, "name with space é.txt", &mut b.rng, 777)?;
    b.spec(file_spec(
        "/name with space é.txt",
        regular,
        777,
        "blank and non-ASCII in the name",
    ));
    tree_dir(&root, "empty-dir")?;
    tree_dir(&root, "links")?;
    tree_symlink(&root, "links/fast", "../sizes/size-1")?;
    tree_symlink(&root, "links/len59", &long_target(59))?;
    tree_symlink(&root, "links/len60", &long_target(60))?;
    tree_symlink(&root, "links/slow", &long_target(200))?;
    for (path, len, fast) in [
        ("/links/fast", 15u64, true),
        ("/links/len59", 59, true),
        ("/links/len60", 60, false),
        ("/links/slow", 200, false),
    ] {
        b.spec(FileSpec {
            path: path.into(),
            kind: FileKind::Symlink,
            layout: if fast { Layout::FastSymlink } else { regular },
            extents: Some(if fast { 0..=0 } else { 1..=1 }),
            depth: None,
            unwritten: Some(false),
            last_lblk: (!fast).then_some(0),
            size: Some(len),
            note: if fast {
                "fast symlink (target in i_block)"
            } else {
                "slow symlink (target in a block)"
            }
            .into(),
        });
    }
    std::fs::hard_link(root.join("sizes/size-100"), root.join("links/hard-100")).map_err(
        crate::error::io_err("creating hard link", root.join("links/hard-100")),
    )?;
    tree_fifo(&root, "links/fifo")?;
    for i in 0..500 {
        let len = (b.rng.below(200)) as usize;
        tree_file(
            &root,
            &format!("dir500/f{i:03}-{}", "n".repeat(i % 23)),
            &mut b.rng,
            len,
        )?;
    }
    b.spec(FileSpec {
        path: "/dir500".into(),
        kind: FileKind::Dir,
        layout: Layout::Dir,
        extents: None,
        depth: None,
        unwritten: Some(false),
        last_lblk: None,
        size: None,
        note: "500 entries, several blocks (htree after e2fsck -D)".into(),
    });
    Ok(())
}

/// Which of the standard debugfs-made files an image gets.
struct Std {
    depth2: bool,
    depth3: bool,
    written_max: bool,
}

fn spec(path: &str, note: &str) -> FileSpec {
    FileSpec {
        path: path.into(),
        kind: FileKind::File,
        layout: Layout::Extents,
        extents: None,
        depth: None,
        unwritten: None,
        last_lblk: None,
        size: None,
        note: note.into(),
    }
}

/// A punched file from `pattern`, with its promises.
fn punched(
    b: &mut Builder,
    path: &str,
    pattern: &Pattern,
    depth: Option<u16>,
    note: &str,
) -> Result<()> {
    b.pattern_file(path, pattern)?;
    let n = pattern.extents;
    b.spec(FileSpec {
        extents: Some(n..=n + n / 10 + 8),
        depth,
        unwritten: Some(false),
        last_lblk: pattern.last_kept().map(|b| b as u32),
        size: Some(pattern.end * b.bs()),
        ..spec(path, note)
    });
    Ok(())
}

/// The standard extent-mapped files made with debugfs.
fn std_files(b: &mut Builder, o: &Std) -> Result<()> {
    let bs = b.bs();
    // depth 0: 16 blocks, punch 5 and 10..=11: three extents in the inode.
    let p = Pattern {
        segments: vec![(0, 16)],
        punches: vec![(5, 5), (10, 11)],
        extents: 3,
        end: 16,
    };
    punched(
        b,
        "/depth0",
        &p,
        Some(0),
        "3 extents in the inode (depth 0)",
    )?;
    let p = b.irregular(60);
    punched(b, "/depth1", &p, Some(1), "60 irregular extents (depth 1)")?;
    if o.depth2 {
        let p = b.irregular(3000);
        punched(
            b,
            "/depth2",
            &p,
            Some(2),
            "3000 irregular extents (depth 2)",
        )?;
    }
    if o.depth3 {
        let p = every_other(65_536);
        punched(
            b,
            "/depth3",
            &p,
            Some(3),
            "64 Ki blocks, every other punched (depth 3 on 1 KiB blocks)",
        )?;
    }
    // Unwritten only: three fallocated ranges, the last longer than an unwritten extent can be
    // (32767 blocks), size covering all.
    b.writes.push("write /dev/null /unwritten".into());
    let last = 5000 + 32_767 + 99;
    for (a, z) in [(0, 255), (1000, 1099), (5000, last)] {
        b.prealloc.push(format!("fallocate /unwritten {a} {z}"));
    }
    b.prealloc
        .push(format!("sif /unwritten size {}", (last + 1) * bs));
    b.spec(FileSpec {
        extents: Some(4..=64),
        depth: None,
        unwritten: Some(true),
        last_lblk: Some(last as u32),
        size: Some((last + 1) * bs),
        ..spec(
            "/unwritten",
            "only unwritten extents (debugfs fallocate), one longer than 32767 blocks",
        )
    });
    // Mixed: data in [0,16) [32,48) [64,80), fallocate [16,32) and [80,128) (past EOF), hole [48,64).
    let src = b.sparse_source(&[(0, 16), (32, 16), (64, 16)], 80 * bs)?;
    b.write(&src, "/mixed")?;
    b.prealloc.push("fallocate /mixed 16 31".into());
    b.prealloc.push("fallocate /mixed 80 127".into());
    b.spec(FileSpec {
        extents: Some(5..=12),
        unwritten: Some(true),
        last_lblk: Some(127),
        size: Some(80 * bs),
        ..spec(
            "/mixed",
            "written, unwritten, written, hole, written, unwritten past EOF",
        )
    });
    if o.written_max {
        let max = u64::from(MAX_LBLK);
        let src = b.sparse_source(&[(0, 3), (max - 2, 3)], (max + 1) * bs)?;
        b.write(&src, "/sparse-max")?;
        b.spec(FileSpec {
            extents: Some(2..=2),
            unwritten: Some(false),
            last_lblk: Some(MAX_LBLK),
            size: Some((max + 1) * bs),
            ..spec(
                "/sparse-max",
                "written blocks 0..=2 and 2^32-4..=2^32-2 (the last addressable)",
            )
        });
    }
    let max = u64::from(MAX_LBLK);
    b.writes
        .push("write /dev/null /sparse-max-unwritten".into());
    b.prealloc
        .push(format!("fallocate /sparse-max-unwritten {} {max}", max - 4));
    b.prealloc
        .push(format!("sif /sparse-max-unwritten size {}", (max + 1) * bs));
    b.spec(FileSpec {
        extents: Some(1..=2),
        unwritten: Some(true),
        last_lblk: Some(MAX_LBLK),
        size: Some((max + 1) * bs),
        ..spec(
            "/sparse-max-unwritten",
            "unwritten blocks 2^32-6..=2^32-2, size covering them",
        )
    });
    b.writes.push("write /dev/null /empty".into());
    b.spec(FileSpec {
        extents: Some(0..=0),
        depth: Some(0),
        unwritten: Some(false),
        size: Some(0),
        ..spec("/empty", "extent-mapped, no extents")
    });
    Ok(())
}

/// Block-mapped (ext2/ext3) files: one reaching the double-indirect block, a sparse one whose
/// last block needs the triple-indirect tree, a punched one, an empty one.
fn indirect_files(b: &mut Builder) -> Result<()> {
    let bs = b.bs();
    let apb = bs / 4; // block addresses per indirect block
    let dind_blocks = 12 + apb + 20;
    let src = b.random_source(dind_blocks * bs)?;
    b.write(&src, "/dind")?;
    b.spec(FileSpec {
        layout: Layout::BlockMap,
        extents: Some(1..=8),
        unwritten: Some(false),
        last_lblk: Some((dind_blocks - 1) as u32),
        size: Some(dind_blocks * bs),
        ..spec(
            "/dind",
            "direct, indirect and the first double-indirect blocks",
        )
    });
    let tind_first = 12 + apb + apb * apb;
    // On 1 KiB blocks, the very last block a block map can address; on larger blocks a block a
    // little into the triple-indirect range (the last one would exceed ext3's size limit).
    let last = if bs == 1024 {
        tind_first + apb * apb * apb - 1
    } else {
        tind_first + 100
    };
    let src = b.sparse_source(&[(0, 300), (tind_first, 2), (last, 1)], (last + 1) * bs)?;
    b.write(&src, "/tind")?;
    b.spec(FileSpec {
        layout: Layout::BlockMap,
        extents: Some(3..=8),
        unwritten: Some(false),
        last_lblk: Some(last as u32),
        size: Some((last + 1) * bs),
        ..spec(
            "/tind",
            "sparse: data in direct, double and triple indirect ranges",
        )
    });
    let blocks = 5 * MIB / bs;
    let src = b.random_source(blocks * bs)?;
    b.write(&src, "/punched")?;
    for _ in 0..20 {
        let a = b.rng.below(blocks);
        let z = (a + b.rng.range(0, 40)).min(blocks - 1);
        b.punches.push(format!("punch /punched {a} {z}"));
    }
    b.spec(FileSpec {
        layout: Layout::BlockMap,
        unwritten: Some(false),
        size: Some(blocks * bs),
        ..spec("/punched", "5 MiB with 20 random punched ranges")
    });
    b.writes.push("write /dev/null /empty".into());
    b.spec(FileSpec {
        layout: Layout::BlockMap,
        extents: Some(0..=0),
        size: Some(0),
        ..spec("/empty", "block-mapped, no blocks")
    });
    Ok(())
}

fn ext4_opts(extra: &str) -> String {
    format!("extent,64bit,flex_bg,metadata_csum,dir_index,extra_isize{extra}")
}

pub(crate) fn build(kind: Kind, dir: &Path) -> Result<Image> {
    let _span = tracing::info_span!("build", image = kind.name()).entered();
    build_kind(kind, dir)
}

/// A builder for `kind` with metadata checksums computed at the end (see
/// [`Builder::csum_later`]); only `ext4-4k` computes them natively, so that one image is made
/// the ordinary way.
fn builder(kind: Kind, dir: &Path, block_size: u32) -> Result<Builder> {
    let mut b = Builder::new(kind, dir, block_size)?;
    b.csum_later = kind != Kind::Ext4k;
    Ok(b)
}

fn build_kind(kind: Kind, dir: &Path) -> Result<Image> {
    match kind {
        Kind::Ext4k => {
            let mut b = builder(kind, dir, 4096)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs("ext4", 512 * MIB, &["-O", &ext4_opts(",has_journal")], true)?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: false,
                    written_max: true,
                },
            )?;
            b.finish("4 KiB blocks, default ext4 features with a journal and metadata_csum")
        }
        Kind::Ext1k => {
            let mut b = builder(kind, dir, 1024)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs(
                "ext4",
                256 * MIB,
                &["-O", &ext4_opts(",^has_journal")],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: true,
                    written_max: true,
                },
            )?;
            b.finish("1 KiB blocks, no journal; extent trees of depth 0 to 3")
        }
        Kind::Frag1k => {
            let mut b = builder(kind, dir, 1024)?;
            b.mkfs("ext4", GIB, &["-O", &ext4_opts(",^has_journal")], false)?;
            let p = b.irregular(100_000);
            punched(
                &mut b,
                "/frag-100k",
                &p,
                Some(3),
                "about 10^5 irregular extents, depth 3",
            )?;
            b.finish("1 KiB blocks, one file with about 10^5 irregular extents")
        }
        Kind::Frag4k => {
            let mut b = builder(kind, dir, 4096)?;
            b.mkfs(
                "ext4",
                512 * MIB,
                &["-O", &ext4_opts(",^has_journal")],
                false,
            )?;
            let p = b.irregular(10_000);
            punched(
                &mut b,
                "/frag-10k",
                &p,
                Some(2),
                "10^4 irregular extents, depth 2",
            )?;
            // 64 MiB with 1500 random, overlapping punches of 1..=32 blocks.
            let blocks = 64 * MIB / b.bs();
            let src = b.random_source(blocks * b.bs())?;
            b.write(&src, "/random-ranges")?;
            let mut ranges = Vec::new();
            for _ in 0..1500 {
                let a = b.rng.below(blocks);
                let z = (a + b.rng.range(0, 31)).min(blocks - 1);
                ranges.push((a, z));
                b.punches.push(format!("punch /random-ranges {a} {z}"));
            }
            let runs = kept_runs(blocks, &ranges);
            b.spec(FileSpec {
                extents: Some(runs..=runs + runs / 10 + 8),
                unwritten: Some(false),
                size: Some(blocks * b.bs()),
                ..spec("/random-ranges", "64 MiB, 1500 random overlapping punches")
            });
            // Written after the punches: the allocator refills the punched holes.
            let src = b.random_source(8 * MIB)?;
            b.late.push(format!(
                "write {} /refill",
                crate::cmd::debugfs_host_path(&src)?
            ));
            b.spec(FileSpec {
                extents: Some(2..=2048),
                unwritten: Some(false),
                last_lblk: Some((8 * MIB / b.bs() - 1) as u32),
                size: Some(8 * MIB),
                ..spec(
                    "/refill",
                    "8 MiB written into the holes of the punched files: scattered physically",
                )
            });
            b.finish("4 KiB blocks, fragmented files: irregular, random ranges, refilled holes")
        }
        Kind::Bigalloc => {
            let mut b = builder(kind, dir, 4096)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs(
                "ext4",
                512 * MIB,
                &["-O", &ext4_opts(",bigalloc,^has_journal"), "-C", "16384"],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: false,
                    written_max: true,
                },
            )?;
            b.finish("4 KiB blocks in 16 KiB clusters (bigalloc)")
        }
        Kind::No64bit => {
            let mut b = builder(kind, dir, 4096)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs(
                "ext4",
                512 * MIB,
                &["-O", "extent,^64bit,flex_bg,metadata_csum,^has_journal"],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: false,
                    written_max: true,
                },
            )?;
            b.finish("4 KiB blocks without 64bit (32-byte group descriptors)")
        }
        Kind::NoFlexBg => {
            let mut b = builder(kind, dir, 1024)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs(
                "ext4",
                256 * MIB,
                &[
                    "-O",
                    "extent,64bit,^flex_bg,metadata_csum,^has_journal",
                    "-N",
                    "1024",
                ],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: false,
                    written_max: true,
                },
            )?;
            b.finish(
                "1 KiB blocks without flex_bg, 32 inodes per group (the tree spans many groups)",
            )
        }
        Kind::MetaBg => {
            let mut b = builder(kind, dir, 1024)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs(
                "ext4",
                GIB,
                &[
                    "-O",
                    "extent,64bit,flex_bg,metadata_csum,meta_bg,^resize_inode,^has_journal",
                    "-N",
                    "2048",
                ],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: true,
                    depth3: false,
                    written_max: true,
                },
            )?;
            b.finish("1 KiB blocks with meta_bg (16 groups per meta group), 16 inodes per group")
        }
        Kind::Inline => {
            let mut b = builder(kind, dir, 4096)?;
            inline_tree(&mut b)?;
            b.mkfs(
                "ext4",
                64 * MIB,
                &["-O", &ext4_opts(",inline_data,^has_journal")],
                true,
            )?;
            let src = b.random_source(30)?;
            b.write(&src, "/dbg-small")?;
            b.writes.push("mkdir /dbg-dir".into());
            b.writes.push("symlink /dbg-dir/link /dbg-small".into());
            b.spec(file_spec(
                "/dbg-small",
                Layout::Inline,
                30,
                "written by debugfs, inline",
            ));
            b.spec(FileSpec {
                kind: FileKind::Dir,
                layout: Layout::Inline,
                ..spec("/dbg-dir", "made by debugfs mkdir: inline directory")
            });
            b.finish("4 KiB blocks with inline_data: small files and directories in the inode")
        }
        Kind::HtreeNoCsum => {
            let mut b = builder(kind, dir, 4096)?;
            let root = b.tree_root();
            for i in 0..10_000usize {
                let extra = b.rng.below(41) as usize;
                let name: String = (0..extra)
                    .map(|_| char::from(b'a' + b.rng.below(26) as u8))
                    .collect();
                tree_file(
                    &root,
                    &format!("big-dir/e{i:05}-{name}"),
                    &mut b.rng,
                    i % 97,
                )?;
            }
            b.spec(FileSpec {
                kind: FileKind::Dir,
                layout: Layout::Dir,
                ..spec("/big-dir", "10^4 entries of varied name length: an htree")
            });
            b.mkfs(
                "ext4",
                512 * MIB,
                &[
                    "-O",
                    "extent,64bit,flex_bg,^metadata_csum,dir_index,^has_journal",
                ],
                true,
            )?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: false,
                    depth3: false,
                    written_max: false,
                },
            )?;
            b.finish("4 KiB blocks, metadata_csum off; a directory with 10^4 entries (htree)")
        }
        Kind::Ext3_1k | Kind::Ext3_4k => {
            let bs = if kind == Kind::Ext3_1k { 1024 } else { 4096 };
            let mut b = builder(kind, dir, bs)?;
            common_tree(&mut b, Layout::BlockMap)?;
            b.mkfs("ext3", 256 * MIB, &[], true)?;
            b.index_dirs()?;
            indirect_files(&mut b)?;
            b.finish("ext3 (no extents): files mapped by direct and indirect blocks")
        }
        Kind::Ext4_64k => {
            let mut b = builder(kind, dir, 65_536)?;
            common_tree(&mut b, Layout::Extents)?;
            b.mkfs("ext4", 4 * GIB, &["-O", &ext4_opts(",^has_journal")], true)?;
            b.index_dirs()?;
            std_files(
                &mut b,
                &Std {
                    depth2: false,
                    depth3: false,
                    written_max: false,
                },
            )?;
            b.finish("64 KiB blocks (the kernel mounts it only where pages are 64 KiB)")
        }
        Kind::DemoTree => {
            let mut b = builder(kind, dir, 4096)?;
            let root = b.tree_root();
            for i in 0..2000usize {
                let roll = b.rng.below(100);
                let len = match roll {
                    0..=69 => b.rng.range(0, 16 * 1024),
                    70..=95 => b.rng.range(16 * 1024, 512 * 1024),
                    _ => b.rng.range(512 * 1024, 2 * MIB),
                };
                tree_file(
                    &root,
                    &format!("d{:02}/f{i:04}", i % 40),
                    &mut b.rng,
                    len as usize,
                )?;
            }
            b.mkfs("ext4", 2 * GIB, &["-O", &ext4_opts(",^has_journal")], true)?;
            b.finish("demo: a tree of 2000 ordinary files in 40 directories")
        }
        Kind::DemoPunched => {
            let mut b = builder(kind, dir, 4096)?;
            b.mkfs("ext4", 2 * GIB, &["-O", &ext4_opts(",^has_journal")], false)?;
            let p = b.irregular(100_000);
            punched(
                &mut b,
                "/punched-100k",
                &p,
                Some(2),
                "about 10^5 irregular extents",
            )?;
            b.finish("demo: a punched file with about 10^5 extents on 4 KiB blocks")
        }
        Kind::DemoUnwritten => {
            let mut b = builder(kind, dir, 4096)?;
            b.mkfs("ext4", GIB, &["-O", &ext4_opts(",^has_journal")], false)?;
            b.writes.push("write /dev/null /fallocated".into());
            let mut pos = 0u64;
            for _ in 0..10_000 {
                let a = pos + b.rng.range(1, 64);
                let z = a + b.rng.range(0, 7);
                b.prealloc.push(format!("fallocate /fallocated {a} {z}"));
                pos = z + 1;
            }
            b.prealloc
                .push(format!("sif /fallocated size {}", pos * b.bs()));
            b.spec(FileSpec {
                extents: Some(10_000..=11_000),
                unwritten: Some(true),
                last_lblk: Some((pos - 1) as u32),
                size: Some(pos * b.bs()),
                ..spec(
                    "/fallocated",
                    "10^4 fallocated ranges: unwritten extents only",
                )
            });
            let blocks = 32 * MIB / b.bs();
            let src = b.random_source(blocks * b.bs())?;
            b.write(&src, "/mixed-big")?;
            let mut a = 0;
            let mut n = 0;
            loop {
                a += b.rng.range(2, 20);
                if a >= blocks {
                    break;
                }
                let z = (a + b.rng.range(0, 3)).min(blocks - 1);
                b.punches.push(format!("punch /mixed-big {a} {z}"));
                if n % 2 == 0 {
                    b.late.push(format!("fallocate /mixed-big {a} {z}"));
                }
                n += 1;
                a = z + 1;
            }
            b.spec(FileSpec {
                unwritten: Some(true),
                size: Some(blocks * b.bs()),
                ..spec(
                    "/mixed-big",
                    "32 MiB written, punched, half the holes fallocated",
                )
            });
            b.finish("demo: unwritten (fallocated) extents")
        }
        Kind::DemoDepth3 => {
            let mut b = builder(kind, dir, 1024)?;
            let root = b.tree_root();
            for i in 0..20usize {
                let len = b.rng.range(0, 256 * 1024) as usize;
                tree_file(&root, &format!("files/f{i:02}"), &mut b.rng, len)?;
            }
            b.mkfs("ext4", GIB, &["-O", &ext4_opts(",^has_journal")], true)?;
            let p = b.irregular(40_000);
            punched(
                &mut b,
                "/depth3",
                &p,
                Some(3),
                "4*10^4 irregular extents, depth 3",
            )?;
            b.finish("demo: 1 KiB blocks, a depth-3 extent tree")
        }
    }
}

/// Tree for the inline_data image: sizes around the inline limits (60 bytes in `i_block`, more
/// in the in-inode extended attribute), a 3-entry directory (inline) and a 200-entry one (not).
fn inline_tree(b: &mut Builder) -> Result<()> {
    let root = b.tree_root();
    for size in [0u64, 1, 59, 60, 61, 100, 150, 200, 1000, 5000] {
        let path = format!("inline/size-{size}");
        tree_file(&root, &path, &mut b.rng, size as usize)?;
        let layout = match size {
            0..=100 => Some(Layout::Inline),
            1000.. => Some(Layout::Extents),
            _ => None,
        };
        if let Some(layout) = layout {
            let mut s = file_spec(&format!("/{path}"), layout, size, "inline_data candidate");
            if size == 0 {
                // An empty file is created with the inline flag and nothing stored.
                s.extents = Some(0..=0);
            }
            b.spec(s);
        }
    }
    for name in ["a", "b", "c"] {
        tree_file(&root, &format!("inline/small-dir/{name}"), &mut b.rng, 10)?;
    }
    b.spec(FileSpec {
        kind: FileKind::Dir,
        layout: Layout::Inline,
        ..spec("/inline/small-dir", "3 entries: an inline directory")
    });
    for i in 0..200 {
        tree_file(
            &root,
            &format!("inline/big-dir/entry-{i:03}"),
            &mut b.rng,
            20,
        )?;
    }
    b.spec(FileSpec {
        kind: FileKind::Dir,
        layout: Layout::Extents,
        ..spec("/inline/big-dir", "200 entries: too big to be inline")
    });
    tree_dir(&root, "links")?;
    tree_symlink(&root, "links/fast", "../inline/size-1")?;
    tree_symlink(&root, "links/slow", &long_target(200))?;
    Ok(())
}
