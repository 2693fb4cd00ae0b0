//! Builds every standard image and checks it against the oracles: what each file promises
//! (extent counts, depths, unwritten extents, the block near 2^32) per `debugfs`, that e2fsck
//! finds every image clean, and that the kernel (loop mount + FIEMAP) agrees with debugfs.
//!
//! Run with `--nocapture` to see the build times.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use imagekit::oracle::{self, FileKind, OracleExtent};
use imagekit::{kernel, FileSpec, Image, Kind, Layout, Recipe};

fn images() -> &'static [Image] {
    match imagekit::standard() {
        Ok(images) => images,
        Err(e) => panic!("building the standard images: {e}"),
    }
}

#[test]
fn build_time_is_seconds() {
    let images = images();
    let (dir, total) = imagekit::standard_info().expect("built above");
    println!(
        "standard images in {} ({} images):",
        dir.display(),
        images.len()
    );
    for image in images {
        let bytes = std::fs::metadata(&image.path)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        println!(
            "  {:<18} {:>6} ms  {:>5} MiB on disk  {}",
            image.name,
            image.build_time.as_millis(),
            bytes >> 20,
            image.description
        );
    }
    println!("standard() total: {} ms", total.as_millis());
    assert!(total.as_secs() < 60, "standard() took {total:?}");
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let expected: Vec<String> = Recipe::STANDARD.iter().map(Recipe::name).collect();
    assert_eq!(names, expected);
}

fn check_spec(image: &Image, spec: &FileSpec, stat: &oracle::OracleStat, extents: &[OracleExtent]) {
    let what = format!("{} {}", image.name, spec.path);
    assert_eq!(stat.kind, spec.kind, "{what}: kind");
    if let Some(size) = spec.size {
        assert_eq!(stat.size, size, "{what}: size");
    }
    match spec.layout {
        Layout::Extents => assert!(
            stat.uses_extents() && !stat.has_inline_data(),
            "{what}: not extent-mapped: {stat:?}"
        ),
        Layout::BlockMap => assert!(
            !stat.uses_extents() && !stat.has_inline_data() && stat.runs.is_some(),
            "{what}: not block-mapped: {stat:?}"
        ),
        Layout::Inline => assert!(stat.has_inline_data(), "{what}: no inline data: {stat:?}"),
        Layout::FastSymlink => assert!(
            stat.fast_link_target.is_some(),
            "{what}: not a fast symlink"
        ),
        Layout::Dir => assert_eq!(stat.kind, FileKind::Dir),
    }
    if let Some(range) = &spec.extents {
        assert!(
            range.contains(&extents.len()),
            "{what}: {} extents, promised {range:?}",
            extents.len()
        );
    }
    if let Some(unwritten) = spec.unwritten {
        assert_eq!(
            extents.iter().any(|e| e.unwritten),
            unwritten,
            "{what}: unwritten extents"
        );
    }
    if let Some(last) = spec.last_lblk {
        let end = extents.iter().map(OracleExtent::lblk_end).max();
        assert_eq!(end, Some(u64::from(last) + 1), "{what}: last mapped block");
    }
    // Extents are sorted and do not overlap.
    for pair in extents.windows(2) {
        assert!(
            pair[0].lblk_end() <= u64::from(pair[1].lblk),
            "{what}: overlap {pair:?}"
        );
    }
}

#[test]
fn files_keep_their_promises() {
    for image in images() {
        let paths: Vec<&str> = image.files.iter().map(String::as_str).collect();
        let stats = oracle::stat_many(&image.path, &paths).unwrap_or_else(|e| panic!("{e}"));
        let all = oracle::extents_many(&image.path, &paths).unwrap_or_else(|e| panic!("{e}"));
        for ((spec, stat), extents) in image.specs.iter().zip(&stats).zip(&all) {
            check_spec(image, spec, stat, extents);
            if let Some(depth) = spec.depth {
                let tree =
                    oracle::extent_tree(&image.path, &spec.path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(tree.depth, depth, "{} {}: depth", image.name, spec.path);
                assert_eq!(&tree.extents, extents);
            }
            // stat's EXTENTS/BLOCKS list is a second reading of the same map.
            if let Some(runs) = &stat.runs {
                assert_eq!(
                    oracle::normalize(runs),
                    oracle::normalize(extents),
                    "{} {}: stat list vs ex",
                    image.name,
                    spec.path
                );
            }
        }
    }
}

#[test]
fn promised_extremes_exist() {
    let images = images();
    let find = |name: &str| images.iter().find(|i| i.name == name).expect(name);
    let frag = oracle::extents(&find("frag-1k").path, "/frag-100k").unwrap();
    assert!((100_000..=110_000).contains(&frag.len()), "{}", frag.len());
    let tree = oracle::extent_tree(&find("ext4-1k").path, "/depth3").unwrap();
    assert_eq!((tree.depth, tree.extents.len()), (3, 32_768));
    let sparse = oracle::extents(&find("ext4-4k").path, "/sparse-max").unwrap();
    assert_eq!(
        sparse.last().map(|e| e.lblk_end()),
        Some(u64::from(u32::MAX))
    );
    let unwritten = oracle::extents(&find("ext4-4k").path, "/unwritten").unwrap();
    assert!(unwritten.iter().all(|e| e.unwritten));
    assert_eq!(
        unwritten.iter().map(|e| e.len).sum::<u32>(),
        256 + 100 + 32_867
    );
    let tind = oracle::extents(&find("ext3-1k").path, "/tind").unwrap();
    assert_eq!(
        tind.last().map(|e| e.lblk),
        Some(12 + 256 + 65_536 + 16_777_216 - 1)
    );
    // The irregular map is not a line: extent lengths and gaps vary.
    let lens: std::collections::HashSet<u32> = frag.iter().map(|e| e.len).collect();
    let gaps: std::collections::HashSet<u64> = frag
        .windows(2)
        .map(|w| u64::from(w[1].lblk) - w[0].lblk_end())
        .collect();
    assert!(
        lens.len() >= 5 && gaps.len() >= 50,
        "lens {lens:?}, {} gap sizes",
        gaps.len()
    );
}

#[test]
fn features_are_what_the_kind_says() {
    for image in images() {
        let features = oracle::features(&image.path).unwrap();
        let has = |f: &str| features.iter().any(|x| x == f);
        let want: &[(&str, bool)] = match image.recipe.kind() {
            Some(Kind::Bigalloc) => &[("bigalloc", true)],
            Some(Kind::No64bit) => &[("64bit", false), ("metadata_csum", true)],
            Some(Kind::NoFlexBg) => &[("flex_bg", false)],
            Some(Kind::MetaBg) => &[("meta_bg", true), ("resize_inode", false)],
            Some(Kind::Inline) => &[("inline_data", true)],
            Some(Kind::HtreeNoCsum) => &[("metadata_csum", false), ("dir_index", true)],
            Some(Kind::Ext3_1k | Kind::Ext3_4k) => &[("extent", false), ("has_journal", true)],
            Some(Kind::Ext4k) => &[
                ("has_journal", true),
                ("metadata_csum", true),
                ("64bit", true),
                ("flex_bg", true),
            ],
            _ => &[("extent", true), ("metadata_csum", true)],
        };
        for &(feature, on) in want {
            assert_eq!(
                has(feature),
                on,
                "{}: {feature} in {features:?}",
                image.name
            );
        }
    }
}

#[test]
fn e2fsck_finds_every_image_clean() {
    for image in images() {
        let (clean, output) = oracle::fsck(&image.path).unwrap();
        assert!(clean, "{}: e2fsck -fn:\n{output}", image.name);
    }
}

/// Every extent start and end and the blocks before and after (not past the last extent:
/// debugfs refuses blocks beyond what a block map can address).
fn probe_blocks(extents: &[OracleExtent]) -> Vec<u32> {
    let mut probes = Vec::new();
    for (i, e) in extents.iter().enumerate().take(300) {
        probes.push(e.lblk);
        probes.push(e.lblk + e.len - 1);
        probes.push(e.lblk.saturating_sub(1));
        if i + 1 < extents.len() {
            probes.push(e.lblk + e.len);
        }
    }
    probes.sort_unstable();
    probes.dedup();
    probes
}

fn lookup(extents: &[OracleExtent], lblk: u32) -> Option<(u64, bool)> {
    extents
        .iter()
        .find(|e| e.lblk <= lblk && u64::from(lblk) < e.lblk_end())
        .map(|e| (e.pblk + u64::from(lblk - e.lblk), e.unwritten))
}

#[test]
fn bmap_agrees_with_ex() {
    for image in images() {
        for spec in image.specs.iter().filter(|s| s.kind == FileKind::File) {
            let extents = oracle::extents(&image.path, &spec.path).unwrap();
            let probes = probe_blocks(&extents);
            let answers = oracle::bmap_many(&image.path, &spec.path, &probes).unwrap();
            for (&lblk, answer) in probes.iter().zip(&answers) {
                let want = lookup(&extents, lblk);
                let got = answer.map(|b| (b.pblk, b.unwritten && spec.layout == Layout::Extents));
                let want = want.map(|(p, u)| (p, u && spec.layout == Layout::Extents));
                assert_eq!(got, want, "{} {} block {lblk}", image.name, spec.path);
            }
        }
    }
}

#[test]
fn list_files_sees_the_tree() {
    for image in images() {
        let files = oracle::list_files(&image.path).unwrap();
        let by_path: HashMap<&str, &oracle::OracleFile> =
            files.iter().map(|f| (f.path.as_str(), f)).collect();
        assert_eq!(
            by_path.len(),
            files.len(),
            "{}: duplicate paths",
            image.name
        );
        for spec in &image.specs {
            let f = by_path
                .get(spec.path.as_str())
                .unwrap_or_else(|| panic!("{} lacks {}", image.name, spec.path));
            assert_eq!(f.kind, spec.kind, "{} {}", image.name, spec.path);
            if spec.kind != FileKind::Dir {
                assert_eq!(f.size, spec.size, "{} {}", image.name, spec.path);
            }
        }
        if image.recipe == Recipe::Debugfs(Kind::HtreeNoCsum) {
            let n = files
                .iter()
                .filter(|f| f.path.starts_with("/big-dir/"))
                .count();
            assert_eq!(n, 10_000);
        }
        if image.specs.iter().any(|s| s.path == "/dir500") {
            let n = files
                .iter()
                .filter(|f| f.path.starts_with("/dir500/"))
                .count();
            assert_eq!(n, 500, "{}", image.name);
            assert!(
                files.iter().any(|f| f.kind == FileKind::Fifo),
                "{}: FIFO",
                image.name
            );
            let hard = by_path["/links/hard-100"];
            assert_eq!(
                hard.ino, by_path["/sizes/size-100"].ino,
                "{}: hard link",
                image.name
            );
        }
    }
}

#[test]
fn kernel_agrees_with_debugfs() {
    if !imagekit::root_or_skip("kernel_agrees_with_debugfs") {
        return;
    }
    for image in images() {
        if !image.kernel_mountable {
            let refused = kernel::LoopMount::new(&image.path);
            println!(
                "{}: not mountable here, as expected: {}",
                image.name,
                refused.is_err()
            );
            continue;
        }
        let mount = kernel::LoopMount::new(&image.path).unwrap_or_else(|e| panic!("{e}"));
        let files = oracle::list_files(&image.path).unwrap();
        // Every path: same inode, type and size through the kernel.
        for f in &files {
            let host = mount.host_path(&f.path);
            let meta = std::fs::symlink_metadata(&host)
                .unwrap_or_else(|e| panic!("{}: {e}", host.display()));
            assert_eq!(meta.ino(), u64::from(f.ino), "{} {}", image.name, f.path);
            assert_eq!(
                FileKind::from_mode(meta.mode()),
                f.kind,
                "{} {}",
                image.name,
                f.path
            );
            if let Some(size) = f.size {
                assert_eq!(meta.len(), size, "{} {}", image.name, f.path);
            }
            if f.kind == FileKind::Symlink {
                let target = std::fs::read_link(&host).unwrap();
                assert_eq!(
                    target.as_os_str().len() as u64,
                    meta.len(),
                    "{} {}",
                    image.name,
                    f.path
                );
            }
        }
        // Every regular file and directory: FIEMAP == debugfs extents.
        let mapped: Vec<&str> = files
            .iter()
            .filter(|f| matches!(f.kind, FileKind::File | FileKind::Dir))
            .map(|f| f.path.as_str())
            .collect();
        let all = oracle::extents_many(&image.path, &mapped).unwrap();
        for (path, extents) in mapped.iter().zip(&all) {
            let host = mount.host_path(path);
            let fiemap = kernel::fiemap(&host).unwrap_or_else(|e| panic!("{e}"));
            let blocks = kernel::fiemap_blocks(&host, &fiemap, image.block_size).unwrap();
            assert_eq!(
                oracle::normalize(&blocks),
                oracle::normalize(extents),
                "{} {path}: FIEMAP vs debugfs",
                image.name
            );
        }
        // Contents of the smaller interesting files: kernel read == debugfs cat, not all zero.
        for spec in image.specs.iter().filter(|s| s.kind == FileKind::File) {
            if spec.size.is_none_or(|s| s > 8 << 20) {
                continue;
            }
            let via_kernel = kernel::read(&mount.host_path(&spec.path)).unwrap();
            let via_debugfs = oracle::read_file(&image.path, &spec.path).unwrap();
            assert!(
                via_kernel == via_debugfs,
                "{} {}: contents differ",
                image.name,
                spec.path
            );
            if !via_kernel.is_empty() && spec.unwritten != Some(true) {
                assert!(
                    via_kernel.iter().any(|&b| b != 0),
                    "{} {}: all zero",
                    image.name,
                    spec.path
                );
            }
        }
        mount.unmount().unwrap();
    }
}

/// The demo's debugfs mix (about 2 GB of sparse images, 10 s).
#[test]
fn demo_images_keep_their_promises() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let debugfs: Vec<Recipe> = Recipe::DEMO
        .iter()
        .filter(|r| !r.needs_root())
        .copied()
        .collect();
    let images = imagekit::build_many(&debugfs, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "the demo built {} images in {} ms",
        images.len(),
        start.elapsed().as_millis()
    );
    for image in &images {
        println!(
            "  {:<18} {:>6} ms  {}",
            image.name,
            image.build_time.as_millis(),
            image.description
        );
        let paths: Vec<&str> = image.files.iter().map(String::as_str).collect();
        let stats = oracle::stat_many(&image.path, &paths).unwrap();
        let all = oracle::extents_many(&image.path, &paths).unwrap();
        for ((spec, stat), extents) in image.specs.iter().zip(&stats).zip(&all) {
            check_spec(image, spec, stat, extents);
            println!("    {:<16} {:>7} extents", spec.path, extents.len());
            if let Some(depth) = spec.depth {
                assert_eq!(
                    oracle::extent_tree(&image.path, &spec.path).unwrap().depth,
                    depth
                );
            }
        }
        let (clean, output) = oracle::fsck(&image.path).unwrap();
        assert!(clean, "{}: {output}", image.name);
    }
    let tree = images
        .iter()
        .find(|i| i.recipe == Recipe::Debugfs(Kind::DemoTree))
        .unwrap();
    let files = oracle::list_files(&tree.path).unwrap();
    assert_eq!(
        files.iter().filter(|f| f.kind == FileKind::File).count(),
        2000
    );
}

#[test]
fn errors_name_what_failed() {
    let image = &images()[0];
    let missing = oracle::extents(&image.path, "/no/such/file")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/no/such/file") && missing.contains(&image.name),
        "{missing}"
    );
    let bad_image = std::path::Path::new("/nonexistent/x.img");
    let err = oracle::extent_tree(bad_image, "/f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.img"), "{err}");
    let err = oracle::bmap(&image.path, "/no-such", 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no-such"), "{err}");
    let quoted = oracle::stat(&image.path, "/a\"b").unwrap_err().to_string();
    assert!(quoted.contains("double quote"), "{quoted}");
    println!("{missing}\n{err}\n{quoted}");
}
