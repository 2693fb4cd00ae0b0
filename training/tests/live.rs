//! `training dump --live` and `training fit --live` on kernel loop mounts of the standard test
//! images, against the same commands on the image files: the kernel's FIEMAP (through
//! `livefs`) and our ext4 reader must describe the same blocks of the same files, and a pack
//! fitted live must fit the image.
//!
//! Loop mounts need root. As another user the test says so and passes, unless
//! `IOMAP_REQUIRE_ALL` is set (CI sets it), where a skip is a failure.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use imagekit::kernel::LoopMount;
use imagekit::oracle::{normalize, OracleExtent};
use predictor::Pack;

const TRAINING: &str = env!("CARGO_BIN_EXE_training");

/// One line of `training dump`.
#[derive(serde::Deserialize, Debug)]
struct Line {
    ino: u64,
    path: String,
    size: u64,
    extents: Vec<(u32, u64, u32, bool)>,
}

impl Line {
    fn extents(&self) -> Vec<OracleExtent> {
        self.extents
            .iter()
            .map(|&(lblk, pblk, len, unwritten)| OracleExtent {
                lblk,
                pblk,
                len,
                unwritten,
            })
            .collect()
    }
}

/// Runs `training ARGS` and returns its stdout; it must exit 0.
fn training(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(TRAINING)
        .args(args)
        .output()
        .expect("running training");
    assert!(
        out.status.success(),
        "training {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn dump(args: &[&std::ffi::OsStr]) -> Vec<Line> {
    let mut all = vec![std::ffi::OsStr::new("dump")];
    all.extend_from_slice(args);
    training(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn live_maps_and_packs_equal_the_images() {
    if !imagekit::root_or_skip("live_maps_and_packs_equal_the_images") {
        return;
    }
    let images = imagekit::standard().expect("standard images");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let (mut files, mut exact, mut images_checked) = (0usize, 0usize, 0usize);
    for image in images.iter().filter(|i| i.kernel_mountable) {
        let mount = LoopMount::new(&image.path).unwrap_or_else(|e| panic!("{}: {e}", image.name));
        let root = std::fs::canonicalize(mount.path()).expect("mount point");
        let ours = dump(&[image.path.as_os_str()]);
        let live = dump(&[std::ffi::OsStr::new("--live"), mount.path().as_os_str()]);
        // The live scan lists every path (hard links too); the image dump one path per inode.
        let mut by_ino: HashMap<u64, &Line> = HashMap::new();
        for l in &live {
            let inside = Path::new(&l.path).strip_prefix(&root).unwrap_or_else(|_| {
                panic!(
                    "{}: live path {} outside {}",
                    image.name,
                    l.path,
                    root.display()
                )
            });
            assert!(Path::new(&l.path).is_absolute(), "{}", l.path);
            assert!(!inside.as_os_str().is_empty());
            by_ino.entry(l.ino).or_insert(l);
        }
        assert_eq!(
            by_ino.len(),
            ours.len(),
            "{}: regular files (inodes) seen live vs in the image",
            image.name
        );
        let mut exact_here = HashMap::new();
        for f in &ours {
            let what = format!("{} {}", image.name, f.path);
            let l = by_ino
                .get(&f.ino)
                .unwrap_or_else(|| panic!("{what}: inode {} not seen live", f.ino));
            assert_eq!(l.size, f.size, "{what}: size");
            // FIEMAP may join physically contiguous extents (ext4's extent status cache), so the
            // maps must describe the same blocks; most are identical extent for extent.
            assert_eq!(
                normalize(&l.extents()),
                normalize(&f.extents()),
                "{what}: live map vs image map"
            );
            let same = l.extents == f.extents;
            exact_here.insert(f.ino as u32, same);
            exact += usize::from(same);
            files += 1;
        }

        // Packs: the live one is bound to the same file system and holds the same models
        // wherever the maps are identical.
        let (a, b) = (tmp.path().join("image.pack"), tmp.path().join("live.pack"));
        training(&[
            "fit".as_ref(),
            image.path.as_os_str(),
            "-o".as_ref(),
            a.as_os_str(),
        ]);
        training(&[
            "fit".as_ref(),
            "--live".as_ref(),
            mount.path().as_os_str(),
            "-o".as_ref(),
            b.as_os_str(),
        ]);
        let (pa, pb) = (
            Pack::read_file(&a).expect("image pack"),
            Pack::read_file(&b).expect("live pack"),
        );
        pb.check_image(pa.header.uuid, pa.header.block_size)
            .unwrap_or_else(|e| panic!("{}: live pack does not fit the image: {e}", image.name));
        assert_eq!(
            pa.entries.len(),
            pb.entries.len(),
            "{}: pack entries",
            image.name
        );
        for (ino, same) in exact_here {
            let (ea, eb) = (
                pa.get(ino).expect("image entry"),
                pb.get(ino).expect("live entry"),
            );
            assert_eq!(
                ea.generation, eb.generation,
                "{} inode {ino}: generation",
                image.name
            );
            if same {
                assert_eq!(
                    ea, eb,
                    "{} inode {ino}: same map, different pack entry",
                    image.name
                );
            } else {
                assert_ne!(ea.fingerprint, eb.fingerprint, "{} inode {ino}", image.name);
            }
        }
        mount
            .unmount()
            .unwrap_or_else(|e| panic!("{}: {e}", image.name));
        images_checked += 1;
    }
    assert!(
        images_checked >= 5,
        "only {images_checked} images could be mounted"
    );
    assert!(
        files > 0 && exact * 2 > files,
        "{exact} of {files} live maps identical"
    );
    println!("{files} files on {images_checked} images: live maps describe the image's blocks ({exact} identical extent for extent)");
}

/// A path that is not on a file system with FIEMAP is a clear error, not an empty dump.
#[test]
fn live_dump_of_tmpfs_names_the_file_system() {
    let dir = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
    std::fs::write(dir.path().join("f"), b"data").expect("writing a file");
    let out = Command::new(TRAINING)
        .args(["dump", "--live"])
        .arg(dir.path())
        .output()
        .expect("running training");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without FIEMAP") && err.contains("tmpfs"),
        "{err}"
    );
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}
