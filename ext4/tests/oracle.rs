//! The reader against oracles we did not write, on every standard test image:
//! `debugfs` for the tree, extent maps and symlinks; the kernel's ext4 (loop mount, FIEMAP,
//! read) for mappings and contents.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

use ext4::{Extent, Fs, Inode, InodeKind};
use imagekit::oracle::{self, FileKind, OracleExtent};
use imagekit::{kernel, Image};

fn images() -> &'static [Image] {
    match imagekit::standard() {
        Ok(images) => images,
        Err(e) => panic!("building the standard images: {e}"),
    }
}

fn open(image: &Image) -> Fs {
    Fs::open_path(&image.path).unwrap_or_else(|e| panic!("{}: {e}", image.name))
}

fn as_oracle(extents: &[Extent]) -> Vec<OracleExtent> {
    extents
        .iter()
        .map(|e| OracleExtent {
            lblk: e.lblk,
            pblk: e.pblk,
            len: e.len,
            unwritten: e.unwritten,
        })
        .collect()
}

/// Every object of the image by path, from our walk.
fn walk(image: &Image, fs: &Fs) -> BTreeMap<String, Inode> {
    let (entries, errors) = fs.walk();
    assert!(errors.is_empty(), "{}: walk errors: {errors:?}", image.name);
    entries.into_iter().map(|e| (e.path, e.inode)).collect()
}

#[test]
fn tree_equals_debugfs() {
    for image in images() {
        let fs = open(image);
        let ours = walk(image, &fs);
        let theirs = oracle::list_files(&image.path).unwrap_or_else(|e| panic!("{e}"));
        let theirs: BTreeMap<String, oracle::OracleFile> = theirs
            .into_iter()
            .filter(|f| f.path != "/")
            .map(|f| (f.path.clone(), f))
            .collect();
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{}: paths",
            image.name
        );
        for (path, f) in &theirs {
            let inode = &ours[path];
            assert_eq!(inode.ino, f.ino, "{} {path}: inode number", image.name);
            assert_eq!(u32::from(inode.mode), f.mode, "{} {path}: mode", image.name);
            if let Some(size) = f.size {
                assert_eq!(inode.size, size, "{} {path}: size", image.name);
            }
            let kind = match inode.kind {
                InodeKind::File => FileKind::File,
                InodeKind::Dir => FileKind::Dir,
                InodeKind::Symlink => FileKind::Symlink,
                _ => f.kind,
            };
            assert_eq!(kind, f.kind, "{} {path}: kind", image.name);
        }
    }
}

#[test]
fn every_extent_map_equals_debugfs() {
    let mut files = 0usize;
    let mut extents = 0usize;
    for image in images() {
        let fs = open(image);
        let ours = walk(image, &fs);
        // Every inode with a data map: regular files, directories, slow symlinks.
        let mapped: Vec<(&String, &Inode)> = ours
            .iter()
            .filter(|(_, i)| {
                matches!(
                    i.kind,
                    InodeKind::File | InodeKind::Dir | InodeKind::Symlink
                )
            })
            .collect();
        let paths: Vec<&str> = mapped.iter().map(|(p, _)| p.as_str()).collect();
        let theirs = oracle::extents_many(&image.path, &paths).unwrap_or_else(|e| panic!("{e}"));
        for ((path, inode), want) in mapped.iter().zip(theirs) {
            let got = fs
                .extents(inode)
                .unwrap_or_else(|e| panic!("{} {path}: {e}", image.name));
            let got = as_oracle(&got);
            if inode.uses_extents() {
                // As stored in the tree leaves: not merged, not split.
                assert_eq!(got, want, "{} {path}: extents", image.name);
            } else {
                // Block maps: both sides are runs of contiguous blocks.
                assert_eq!(
                    oracle::normalize(&got),
                    oracle::normalize(&want),
                    "{} {path}",
                    image.name
                );
            }
            files += 1;
            extents += got.len();
        }
    }
    println!("{files} files, {extents} extents equal to debugfs");
}

#[test]
fn map_block_agrees_with_the_extent_list_and_debugfs_bmap() {
    for image in images() {
        let fs = open(image);
        for path in &image.files {
            let inode = fs
                .lookup_path(path)
                .unwrap_or_else(|e| panic!("{} {path}: {e}", image.name));
            if inode.kind != InodeKind::File || inode.has_inline_data() {
                continue;
            }
            let extents = fs.extents(&inode).unwrap_or_else(|e| panic!("{e}"));
            // Around every extent boundary, plus the first and last addressable blocks.
            // Block maps address fewer blocks (12 + n + n^2 + n^3 for n pointers per block, and
            // the test images map the last one): probe those only up to their last block.
            let last = if inode.uses_extents() {
                (ext4::MAX_LBLK - 1) as u32
            } else {
                extents.last().map_or(0, |e| (e.end() - 1) as u32)
            };
            let mut probes: Vec<u32> = vec![0, 1, last.saturating_sub(1), last];
            for e in extents.iter().take(2000) {
                let end = (e.end() - 1) as u32;
                probes.extend([e.lblk.saturating_sub(1), e.lblk, end, end.saturating_add(1)]);
            }
            probes.retain(|&b| b <= last);
            probes.sort_unstable();
            probes.dedup();
            let bmap =
                oracle::bmap_many(&image.path, path, &probes).unwrap_or_else(|e| panic!("{e}"));
            for (&lblk, want) in probes.iter().zip(bmap) {
                let got = fs.map_block(&inode, lblk).unwrap_or_else(|e| panic!("{e}"));
                // The reference answer from the full extent list.
                let i = extents.partition_point(|e| e.lblk <= lblk);
                let reference = match i.checked_sub(1).map(|p| extents[p]) {
                    Some(e) if e.contains(lblk) => ext4::BlockMap::Mapped(e),
                    _ => ext4::BlockMap::Hole {
                        next: extents.get(i).map(|e| e.lblk),
                    },
                };
                assert_eq!(got, reference, "{} {path} block {lblk}", image.name);
                let phys = match got {
                    ext4::BlockMap::Mapped(e) => {
                        Some((e.pblk + u64::from(lblk - e.lblk), e.unwritten))
                    }
                    ext4::BlockMap::Hole { .. } => None,
                };
                assert_eq!(
                    phys,
                    want.map(|b| (b.pblk, b.unwritten)),
                    "{} {path} block {lblk}: debugfs bmap",
                    image.name
                );
            }
        }
    }
}

#[test]
fn symlinks_equal_debugfs() {
    for image in images() {
        let fs = open(image);
        for (path, inode) in walk(image, &fs) {
            if inode.kind != InodeKind::Symlink {
                continue;
            }
            let got = fs
                .read_link(&inode)
                .unwrap_or_else(|e| panic!("{} {path}: {e}", image.name));
            let stat = oracle::stat(&image.path, &path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                got.len() as u64,
                stat.size,
                "{} {path}: target length",
                image.name
            );
        }
    }
}

/// Compares `len` bytes at `offset` through both readers.
fn same_bytes(
    fs: &Fs,
    inode: &Inode,
    extents: &[Extent],
    host: &std::fs::File,
    offset: u64,
    len: usize,
    what: &str,
) {
    let mut ours = vec![0u8; len];
    let mut theirs = vec![0u8; len];
    let n = fs
        .read_at(inode, extents, offset, &mut ours)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut m = 0;
    while m < len {
        let k = host
            .read_at(&mut theirs[m..], offset + m as u64)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if k == 0 {
            break;
        }
        m += k;
    }
    assert_eq!(n, m, "{what}: bytes read at {offset}");
    assert!(
        ours[..n] == theirs[..m],
        "{what}: contents differ at {offset}..{}",
        offset + n as u64
    );
}

#[test]
fn kernel_agrees_on_mappings_and_contents() {
    if !imagekit::root_or_skip("kernel_agrees_on_mappings_and_contents") {
        return;
    }
    let mut checked = 0usize;
    for image in images().iter().filter(|i| i.kernel_mountable) {
        let fs = open(image);
        let mount =
            kernel::LoopMount::new(&image.path).unwrap_or_else(|e| panic!("{}: {e}", image.name));
        for (path, inode) in walk(image, &fs) {
            let host_path = mount.host_path(&path);
            let what = format!("{} {path}", image.name);
            match inode.kind {
                InodeKind::Symlink => {
                    let target =
                        std::fs::read_link(&host_path).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let ours = fs
                        .read_link(&inode)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(
                        target.as_os_str().as_encoded_bytes(),
                        &ours[..],
                        "{what}: target"
                    );
                }
                InodeKind::File => {
                    let extents = fs.extents(&inode).unwrap_or_else(|e| panic!("{what}: {e}"));
                    if !inode.has_inline_data() {
                        let fiemap =
                            kernel::fiemap(&host_path).unwrap_or_else(|e| panic!("{what}: {e}"));
                        let theirs = kernel::fiemap_blocks(&host_path, &fiemap, image.block_size)
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(
                            oracle::normalize(&as_oracle(&extents)),
                            oracle::normalize(&theirs),
                            "{what}: FIEMAP"
                        );
                    }
                    let host =
                        std::fs::File::open(&host_path).unwrap_or_else(|e| panic!("{what}: {e}"));
                    if inode.size <= 64 << 20 {
                        same_bytes(&fs, &inode, &extents, &host, 0, inode.size as usize, &what);
                    } else {
                        // Huge sparse files: the first block of each extent and of the hole
                        // after it, and the last block of the file.
                        let bs = u64::from(image.block_size);
                        let mut offsets = vec![inode.size.saturating_sub(bs)];
                        for e in extents.iter().take(500) {
                            offsets.extend([u64::from(e.lblk) * bs, e.end() * bs]);
                        }
                        for off in offsets.into_iter().filter(|&o| o < inode.size) {
                            same_bytes(&fs, &inode, &extents, &host, off, bs as usize, &what);
                        }
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
        mount
            .unmount()
            .unwrap_or_else(|e| panic!("{}: {e}", image.name));
    }
    assert!(checked > 0, "no file compared with the kernel");
    println!("{checked} files agree with the kernel (FIEMAP and contents)");
}

/// The maps the kernel's allocator makes ([`imagekit::Recipe::Allocated`], small scale): our reader's map
/// of every file equals `debugfs -R "ex"` extent for extent and the kernel's FIEMAP block for
/// block, and the maps are what the recipes promise: many extents of irregular lengths (not
/// one arithmetic run a line would predict exactly).
#[test]
fn kernel_allocated_maps_equal_debugfs_and_fiemap() {
    if !imagekit::root_or_skip("kernel_allocated_maps_equal_debugfs_and_fiemap") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    for pattern in kernel::Allocated::ALL {
        let what = pattern.name();
        let recipe = imagekit::Recipe::Allocated {
            pattern,
            scale: 2000,
            seed: 7,
        };
        let image = recipe
            .build(dir.path())
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .path;
        let fs = Fs::open_path(&image).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (entries, errors) = fs.walk();
        assert!(errors.is_empty(), "{what}: {errors:?}");
        let files: Vec<_> = entries
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File)
            .collect();
        assert_eq!(
            files.len(),
            if pattern == kernel::Allocated::Appenders {
                4
            } else {
                1
            },
            "{what}: files"
        );
        let mount = kernel::LoopMount::new(&image).unwrap_or_else(|e| panic!("{what}: {e}"));
        let paths: Vec<&str> = files.iter().map(|e| e.path.as_str()).collect();
        let debugfs = oracle::extents_many(&image, &paths).unwrap_or_else(|e| panic!("{e}"));
        for (e, theirs) in files.iter().zip(&debugfs) {
            let at = format!("{what} {}", e.path);
            let ours = fs
                .extents(&e.inode)
                .unwrap_or_else(|err| panic!("{at}: {err}"));
            assert_eq!(as_oracle(&ours), *theirs, "{at}: vs debugfs");
            let host = mount.host_path(&e.path);
            let fiemap = kernel::fiemap(&host).unwrap_or_else(|err| panic!("{at}: {err}"));
            let blocks = kernel::fiemap_blocks(&host, &fiemap, 4096)
                .unwrap_or_else(|err| panic!("{at}: {err}"));
            assert_eq!(
                oracle::normalize(&as_oracle(&ours)),
                oracle::normalize(&blocks),
                "{at}: vs FIEMAP"
            );
            // Fragmented, with lengths and gaps that vary.
            assert!(ours.len() >= 200, "{at}: only {} extents", ours.len());
            // The appenders' files stop at different turns: about one extent per append
            // (each lands among another file's), so the image has maps of several sizes.
            if let Some(k) = e.path.strip_prefix("/append-") {
                let k: usize = k.parse().unwrap_or_else(|err| panic!("{at}: {err}"));
                let appends = (2000 / kernel::APPENDS_DIVISOR[k]) as usize;
                assert!(
                    (appends * 9 / 10..=appends * 2).contains(&ours.len()),
                    "{at}: {} extents for {appends} appends",
                    ours.len()
                );
            }
            let lens: std::collections::BTreeSet<u32> = ours.iter().map(|x| x.len).collect();
            assert!(lens.len() >= 4, "{at}: extent lengths {lens:?}");
            assert!(
                ours.iter().all(|x| x.unwritten != recipe.written()),
                "{at}: written/unwritten"
            );
        }
        mount.unmount().unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}
