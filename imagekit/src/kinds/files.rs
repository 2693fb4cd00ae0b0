//! The trees and files of the kinds: first those only one kind has, then the tree and the file
//! sets that several kinds share.

use super::*;

// The trees and files only one kind has.

/// `htree-nocsum-4k`: `/big-dir`, 10^4 entries with names of varied length.
pub(super) fn big_dir(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `inline-4k`: sizes around the inline limits (60 bytes in `i_block`, more in the in-inode
/// extended attribute), a 3-entry directory (inline) and a 200-entry one (not).
pub(super) fn inline_tree(b: &mut Builder) -> Result<()> {
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

/// `inline-4k`: a small file, a directory and a symlink made by debugfs rather than mke2fs.
pub(super) fn inline_by_debugfs(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `frag-4k`: `/random-ranges`, 64 MiB with 1500 random, overlapping punches of 1..=32 blocks.
pub(super) fn random_ranges(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `frag-4k`: `/refill`, written after the punches: the allocator refills the punched holes.
pub(super) fn refill(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `demo-tree-4k`: 2000 files in 40 directories, 70% of them up to 16 KiB, 26% up to 512 KiB,
/// the rest up to 2 MiB.
pub(super) fn demo_tree(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `demo-unwritten-4k`: `/fallocated`, nothing written: 10^4 fallocated ranges of 1..=8 blocks,
/// holes of 1..=64 blocks between them.
pub(super) fn fallocated(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `demo-unwritten-4k`: `/mixed-big`, 32 MiB written, then a hole of 1..=4 blocks punched after
/// every 2..=20 blocks, and every other hole fallocated again.
pub(super) fn mixed_big(b: &mut Builder) -> Result<()> {
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
    Ok(())
}

/// `demo-depth3-1k`: 20 files of up to 256 KiB in `/files`, beside the depth-3 tree.
pub(super) fn twenty_files(b: &mut Builder) -> Result<()> {
    let root = b.tree_root();
    for i in 0..20usize {
        let len = b.rng.range(0, 256 * 1024) as usize;
        tree_file(&root, &format!("files/f{i:02}"), &mut b.rng, len)?;
    }
    Ok(())
}

// The tree and the files several kinds share.

/// Sizes of the `/sizes/size-N` files of the common tree: around inline and block limits.
const TREE_SIZES: &[u64] = &[
    0, 1, 59, 60, 61, 100, 1000, 4095, 4096, 4097, 65_537, 300_000, 1_100_000,
];

/// A target of 59 bytes (fast symlink: fits the 60-byte `i_block`) and one of 60 (slow).
pub(super) fn long_target(len: usize) -> String {
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
pub(super) fn common_tree(b: &mut Builder, regular: Layout) -> Result<()> {
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

pub(super) fn spec(path: &str, note: &str) -> FileSpec {
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
pub(super) fn punched(
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
pub(super) fn std_files(b: &mut Builder, o: &Std) -> Result<()> {
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
pub(super) fn indirect_files(b: &mut Builder) -> Result<()> {
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
