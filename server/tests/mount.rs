//! Real mounts, compared with the kernel's own ext4 driver (loop mount, read-only) as the
//! oracle: the whole tree (names, types, sizes, modes, owners, times, link targets, contents)
//! and SEEK_DATA / SEEK_HOLE on every regular file, for every standard test image the kernel
//! can mount; random reads from 8 threads on the most fragmented file; and the start-up
//! refusals. Needs root (loop devices, mount); skipped otherwise.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    kill_and_detach, num, root_or_skip, stats_json, with_timeout, write_pack, ServerMount,
};
use imagekit::kernel::LoopMount;
use imagekit::Image;

/// Files larger than this are compared around their extents instead of in full.
const FULL_COMPARE_MAX: u64 = 256 << 20;
/// SEEK_DATA/SEEK_HOLE transitions followed from offset 0 per file (each is an upcall).
const SEEK_TRANSITIONS: usize = 300;

/// Held by every test that loop-mounts an image. Two loop mounts of one image file at once may
/// share a loop device, hence one superblock and one page cache: one test's reads then turn the
/// other's unwritten extents into cached data, and the kernel's SEEK_DATA answers change.
static KERNEL_MOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lock, even if a test holding it failed.
fn kernel_mounts() -> std::sync::MutexGuard<'static, ()> {
    KERNEL_MOUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn images() -> &'static [Image] {
    imagekit::standard().unwrap_or_else(|e| panic!("building the standard test images: {e}"))
}

/// Every object under `root`, by path relative to it (the root itself is "").
fn tree(root: &Path) -> BTreeMap<String, Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let meta = std::fs::symlink_metadata(&abs)
            .unwrap_or_else(|e| panic!("stat {}: {e}", abs.display()));
        if meta.is_dir() {
            let dir = std::fs::read_dir(&abs)
                .unwrap_or_else(|e| panic!("readdir {}: {e}", abs.display()));
            for entry in dir {
                let entry = entry.unwrap_or_else(|e| panic!("readdir {}: {e}", abs.display()));
                stack.push(rel.join(entry.file_name()));
            }
        }
        out.insert(rel.to_string_lossy().into_owned(), meta);
    }
    out
}

/// The differences between two stats of the same path (ours, the kernel's).
fn meta_diffs(path: &str, ours: &Metadata, kernel: &Metadata, out: &mut Vec<String>) {
    let fields: [(&str, u64, u64); 10] = [
        ("mode", u64::from(ours.mode()), u64::from(kernel.mode())),
        ("size", ours.size(), kernel.size()),
        ("nlink", ours.nlink(), kernel.nlink()),
        ("uid", u64::from(ours.uid()), u64::from(kernel.uid())),
        ("gid", u64::from(ours.gid()), u64::from(kernel.gid())),
        ("mtime", ours.mtime() as u64, kernel.mtime() as u64),
        (
            "mtime_nsec",
            ours.mtime_nsec() as u64,
            kernel.mtime_nsec() as u64,
        ),
        ("ctime", ours.ctime() as u64, kernel.ctime() as u64),
        ("blocks", ours.blocks(), kernel.blocks()),
        ("rdev", ours.rdev(), kernel.rdev()),
    ];
    for (name, a, b) in fields {
        if a != b {
            out.push(format!("{path}: {name} {a} (ours) != {b} (kernel)"));
        }
    }
}

/// `lseek(fd, offset, whence)`: the offset, or the errno.
fn seek(f: &File, offset: i64, whence: i32) -> Result<i64, i32> {
    // SAFETY: lseek on an open descriptor has no memory preconditions.
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// One probe: the offset, then what SEEK_DATA and SEEK_HOLE from it answered (offset or errno).
type SeekProbe = (i64, Result<i64, i32>, Result<i64, i32>);

/// The data/hole transitions from offset 0 (at most `SEEK_TRANSITIONS`), then SEEK_DATA and
/// SEEK_HOLE at a few scattered offsets.
fn seek_map(f: &File, size: u64) -> Vec<SeekProbe> {
    let mut out = Vec::new();
    let mut pos = 0i64;
    for _ in 0..SEEK_TRANSITIONS {
        let data = seek(f, pos, libc::SEEK_DATA);
        let hole = seek(f, pos, libc::SEEK_HOLE);
        out.push((pos, data, hole));
        let next = match (data, hole) {
            (Ok(d), Ok(h)) if h > d => h,
            (Ok(d), _) => d + 1,
            (Err(_), _) => break,
        };
        if next <= pos || next as u64 >= size {
            break;
        }
        pos = next;
    }
    // Scattered probes where there is room for more than one run.
    let probes = if size > 64 << 10 { 16 } else { 0 };
    let mut rng = imagekit::Rng::new(size);
    for _ in 0..probes {
        let pos = rng.below(size.saturating_add(2)) as i64;
        out.push((
            pos,
            seek(f, pos, libc::SEEK_DATA),
            seek(f, pos, libc::SEEK_HOLE),
        ));
    }
    out
}

/// Reads `len` bytes at `offset` (short at EOF).
fn pread(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// The byte ranges compared for a file: all of it, or (for huge sparse files) the start, the
/// end, and around the start and end of every extent the kernel reports (FIEMAP).
fn ranges(kernel_path: &Path, size: u64) -> Vec<(u64, usize)> {
    const CHUNK: u64 = 1 << 20;
    if size <= FULL_COMPARE_MAX {
        return (0..size.div_ceil(CHUNK))
            .map(|i| (i * CHUNK, CHUNK as usize))
            .collect();
    }
    let extents = imagekit::kernel::fiemap(kernel_path)
        .unwrap_or_else(|e| panic!("FIEMAP {}: {e}", kernel_path.display()));
    let step = (extents.len() / 2000).max(1);
    let mut out = vec![
        (0, CHUNK as usize),
        (size.saturating_sub(CHUNK), CHUNK as usize),
    ];
    for e in extents.iter().step_by(step) {
        out.push((e.logical.saturating_sub(8192), 16384));
        let end = e.logical.saturating_add(e.length);
        out.push((end.saturating_sub(8192), 16384));
    }
    out
}

/// Compares two files' bytes over `ranges`; the first difference, if any.
fn content_diff(path: &str, ours: &File, kernel: &File, ranges: &[(u64, usize)]) -> Option<String> {
    for &(offset, len) in ranges {
        let a = pread(ours, offset, len);
        let b = pread(kernel, offset, len);
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                let at = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                return Some(format!(
                    "{path}: contents differ at byte {} (ours {} bytes, kernel {} bytes from {offset})",
                    offset + at as u64,
                    a.len(),
                    b.len()
                ));
            }
            (a, b) => {
                return Some(format!(
                    "{path}: read at {offset}: ours {:?}, kernel {:?}",
                    a.map(|v| v.len()),
                    b.map(|v| v.len())
                ))
            }
        }
    }
    None
}

/// Everything that differs between our mount and the kernel's.
fn compare_trees(ours: &Path, kernel: &Path) -> Vec<String> {
    let (a, b) = (tree(ours), tree(kernel));
    let mut diffs = Vec::new();
    for p in a.keys().filter(|p| !b.contains_key(*p)) {
        diffs.push(format!("{p}: only in our mount"));
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!("{p}: only in the kernel's mount"));
    }
    // Seeks first, on every regular file: the kernel reports unwritten extents as holes only
    // while their pages are not cached, and the content comparison below caches them.
    let files: Vec<&String> = a
        .iter()
        .filter(|(p, m)| m.is_file() && b.get(*p).is_some_and(Metadata::is_file))
        .map(|(p, _)| p)
        .collect();
    let open =
        |root: &Path, p: &str| File::open(root.join(p)).unwrap_or_else(|e| panic!("open {p}: {e}"));
    for p in &files {
        let size = a[*p].size();
        let (x, y) = (
            seek_map(&open(ours, p), size),
            seek_map(&open(kernel, p), size),
        );
        if x != y {
            let first = x.iter().zip(&y).find(|(s, t)| s != t);
            diffs.push(format!(
                "{p}: SEEK_DATA/SEEK_HOLE differ: first (pos, data, hole) ours/kernel {first:?}"
            ));
        }
    }
    for (p, ma) in &a {
        let Some(mb) = b.get(p) else { continue };
        if ma.file_type() != mb.file_type() {
            diffs.push(format!(
                "{p}: type {:?} != {:?}",
                ma.file_type(),
                mb.file_type()
            ));
            continue;
        }
        meta_diffs(p, ma, mb, &mut diffs);
        if ma.file_type().is_symlink() {
            let (x, y) = (
                std::fs::read_link(ours.join(p)),
                std::fs::read_link(kernel.join(p)),
            );
            if x.as_ref().ok() != y.as_ref().ok() {
                diffs.push(format!("{p}: link target {x:?} != {y:?}"));
            }
        }
        if ma.is_file() && ma.size() == mb.size() {
            let r = ranges(&kernel.join(p), ma.size());
            if let Some(d) = content_diff(p, &open(ours, p), &open(kernel, p), &r) {
                diffs.push(d);
            }
        }
    }
    diffs
}

/// Mounts `img` at `dir` with our server (`args`) and with the kernel, and asserts the two
/// trees are equal (`compare_trees`, under a timeout that kills the server); returns both
/// mounts, still mounted.
fn mount_beside_kernel(img: &Image, dir: &Path, args: &[&str]) -> (ServerMount, LoopMount) {
    let ours = ServerMount::start(&img.path, dir, args)
        .unwrap_or_else(|e| panic!("{}: server refused to mount: {e:?}", img.name));
    let kernel =
        LoopMount::new(&img.path).unwrap_or_else(|e| panic!("{}: loop mount: {e}", img.name));
    let (pid, d) = (ours.pid(), dir.to_owned());
    let (a, b) = (dir.to_owned(), kernel.path().to_owned());
    let diffs = with_timeout(
        &format!("{}: comparing trees", img.name),
        Duration::from_secs(90),
        move || kill_and_detach(pid, &d),
        move || compare_trees(&a, &b),
    );
    assert!(
        diffs.is_empty(),
        "{}: {} differences with the kernel, first ones:\n{}\nserver log:\n{}",
        img.name,
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        ours.stderr()
    );
    (ours, kernel)
}

#[test]
fn tree_matches_the_kernel_on_every_image() {
    if !root_or_skip("tree_matches_the_kernel_on_every_image") {
        return;
    }
    let _one_at_a_time = kernel_mounts();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut compared = 0;
    for (i, img) in images().iter().enumerate() {
        if !img.kernel_mountable {
            eprintln!("{}: the kernel cannot mount it here; skipped", img.name);
            continue;
        }
        let start = Instant::now();
        let pack = tmp.path().join(format!("{}.pack", img.name));
        let entries = write_pack(&img.path, &pack).entries.len();
        let stats = tmp.path().join(format!("{}.stats.json", img.name));
        let dir = tmp.path().join(format!("mnt-{}", img.name));
        let args = [
            "--tier",
            "learned",
            "--audit",
            "--models",
            pack.to_str().unwrap_or_default(),
            "--stats-json",
            stats.to_str().unwrap_or_default(),
        ];
        let (ours, kernel) = mount_beside_kernel(img, &dir, &args);

        // Stats are readable while mounted, through the hidden file.
        let live: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(".iomap-stats")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{}: .iomap-stats is not JSON: {e}", img.name));
        assert_eq!(live["tier"], "learned");

        // Both ways of stopping: umount from outside, and SIGTERM.
        let ended = if i % 2 == 0 {
            ours.unmount()
        } else {
            ours.stop_with(libc::SIGTERM)
        };
        assert!(
            ended.status.success(),
            "{}: server exit {:?}:\n{}",
            img.name,
            ended.status,
            ended.stderr
        );
        drop(kernel);

        let s = stats_json(&stats);
        assert_eq!(
            num(&s, &["audit_mismatches"]),
            0,
            "{}: audit mismatches\n{s}",
            img.name
        );
        assert_eq!(
            num(&s, &["counters", "read_errors"]),
            0,
            "{}: read errors\n{s}",
            img.name
        );
        assert_eq!(
            num(&s, &["tiers", "learned", "missed"]),
            0,
            "{}: stale answers\n{s}",
            img.name
        );
        if num(&s, &["build", "models_active"]) > 0 && num(&s, &["counters", "read_bytes"]) > 0 {
            assert!(
                num(&s, &["tiers", "learned", "answered"]) > 0,
                "{}: predictor idle\n{s}",
                img.name
            );
            assert!(
                num(&s, &["audit_checked"]) > 0,
                "{}: nothing audited\n{s}",
                img.name
            );
        }
        eprintln!(
            "{}: tree equal to the kernel's ({} models, predictor answered {}, audited {}, {:?})",
            img.name,
            entries,
            num(&s, &["tiers", "learned", "answered"]),
            num(&s, &["audit_checked"]),
            start.elapsed()
        );
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} images compared");
}

/// The compact learned tier behind the mount: on every image the kernel can mount, the whole
/// tree reads byte-equal to the kernel's, and every compact answer was audited against the
/// on-disk walk with no mismatch.
#[test]
fn compact_tier_tree_matches_the_kernel() {
    if !root_or_skip("compact_tier_tree_matches_the_kernel") {
        return;
    }
    let _one_at_a_time = kernel_mounts();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut compared = 0;
    for img in images().iter().filter(|i| i.kernel_mountable) {
        let stats = tmp.path().join(format!("{}.compact.json", img.name));
        let dir = tmp.path().join(format!("mnt-compact-{}", img.name));
        let args = [
            "--tier",
            "compact",
            "--audit",
            "--stats-json",
            stats.to_str().unwrap_or_default(),
        ];
        let (ours, kernel) = mount_beside_kernel(img, &dir, &args);
        let ended = ours.unmount();
        assert!(ended.status.success(), "{}: {}", img.name, ended.stderr);
        drop(kernel);
        let s = stats_json(&stats);
        // The server counts its structures' bytes with the allocator, not by estimate (a
        // one-extent file's compact form is inline: 0 heap bytes is a right answer).
        assert_eq!(s["build"]["index_bytes_counted"], true, "{}: {s}", img.name);
        let answered = num(&s, &["tiers", "compact", "answered"]);
        assert_eq!(num(&s, &["audit_mismatches"]), 0, "{}: {s}", img.name);
        assert_eq!(
            num(&s, &["tiers", "compact", "missed"]),
            0,
            "{}: {s}",
            img.name
        );
        assert_eq!(num(&s, &["audit_checked"]), answered, "{}: {s}", img.name);
        if num(&s, &["counters", "read_bytes"]) > 0 {
            assert!(answered > 0, "{}: compact tier idle\n{s}", img.name);
        }
        eprintln!(
            "{}: compact tier equal to the kernel ({answered} answers audited)",
            img.name
        );
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} images compared");
}

/// A 4 KiB-aligned buffer for O_DIRECT reads.
struct Aligned(Vec<u8>);

impl Aligned {
    fn new() -> Self {
        Self(vec![0u8; 3 * 4096])
    }
    fn block(&mut self) -> &mut [u8] {
        let off = self.0.as_ptr().align_offset(4096);
        &mut self.0[off..off + 4096]
    }
}

#[test]
fn random_reads_from_eight_threads_match_the_kernel() {
    if !root_or_skip("random_reads_from_eight_threads_match_the_kernel") {
        return;
    }
    let _one_at_a_time = kernel_mounts();
    let imgs = images();
    let (img, path) = imgs
        .iter()
        .find(|i| i.name == "frag-1k" && i.kernel_mountable)
        .map(|i| (i, "/frag-100k"))
        .or_else(|| {
            imgs.iter()
                .find(|i| i.name == "frag-4k")
                .map(|i| (i, "/frag-10k"))
        })
        .unwrap_or_else(|| panic!("no fragmented image"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pack = tmp.path().join("frag.pack");
    write_pack(&img.path, &pack);
    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let args = [
        "--audit",
        "--threads",
        "4",
        "--models",
        pack.to_str().unwrap_or_default(),
        "--stats-json",
        stats.to_str().unwrap_or_default(),
    ];
    let ours = ServerMount::start(&img.path, &dir, &args).unwrap_or_else(|e| panic!("{e:?}"));
    let kernel = LoopMount::new(&img.path).unwrap_or_else(|e| panic!("loop mount: {e}"));
    // O_DIRECT on our side: every read reaches the server instead of the page cache.
    let ours_file = Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join(&path[1..]))
            .unwrap_or_else(|e| panic!("open with O_DIRECT: {e}")),
    );
    let kernel_file =
        Arc::new(File::open(kernel.host_path(path)).unwrap_or_else(|e| panic!("{e}")));
    let size = kernel_file.metadata().map(|m| m.len()).unwrap_or(0);
    assert!(size > 1 << 20, "{path}: {size} bytes");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let (pid, d) = (ours.pid(), dir.clone());
    let run = {
        let (stop, reads) = (stop.clone(), reads.clone());
        move || {
            let threads: Vec<_> = (0..8u64)
                .map(|t| {
                    let (a, b) = (ours_file.clone(), kernel_file.clone());
                    let (stop, reads) = (stop.clone(), reads.clone());
                    std::thread::spawn(move || -> Result<(), String> {
                        let mut rng = imagekit::Rng::new(0x5eed + t);
                        let mut buf = Aligned::new();
                        while !stop.load(Ordering::Relaxed) {
                            let offset = rng.below(size.div_ceil(4096)) * 4096;
                            let block = buf.block();
                            let n = a
                                .read_at(block, offset)
                                .map_err(|e| format!("our read at {offset}: {e}"))?;
                            let want =
                                pread(&b, offset, 4096).map_err(|e| format!("kernel read: {e}"))?;
                            if block[..n] != want[..] {
                                return Err(format!(
                                    "bytes differ at {offset} ({n} vs {})",
                                    want.len()
                                ));
                            }
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(5));
            stop.store(true, Ordering::Relaxed);
            threads
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("reader panicked".into())))
                .collect::<Vec<_>>()
        }
    };
    let results = with_timeout(
        "random reads",
        Duration::from_secs(60),
        move || kill_and_detach(pid, &d),
        run,
    );
    for r in &results {
        assert!(r.is_ok(), "{r:?}\n{}", ours.stderr());
    }
    let n = reads.load(Ordering::Relaxed);
    let ended = ours.unmount();
    assert!(ended.status.success(), "{}", ended.stderr);
    drop(kernel);
    let s = stats_json(&stats);
    assert_eq!(num(&s, &["audit_mismatches"]), 0, "{s}");
    assert_eq!(num(&s, &["counters", "read_errors"]), 0, "{s}");
    assert!(num(&s, &["counters", "reads"]) >= n, "{s}");
    eprintln!(
        "{} {path}: {n} random 4 KiB reads from 8 threads in 5 s ({} per s), all equal to the \
         kernel's; predictor answered {}, p50 {} ns, p99 {} ns",
        img.name,
        n / 5,
        num(&s, &["tiers", "learned", "answered"]),
        num(&s, &["tiers", "learned", "latency_ns", "p50"]),
        num(&s, &["tiers", "learned", "latency_ns", "p99"]),
    );
    assert!(n > 1000, "only {n} reads in 5 s");
}

#[test]
fn refuses_to_start_with_a_clear_message() {
    if !root_or_skip("refuses_to_start_with_a_clear_message") {
        return;
    }
    let imgs = images();
    let a = imgs
        .iter()
        .find(|i| i.name == "ext4-4k")
        .unwrap_or_else(|| panic!("no ext4-4k"));
    let b = imgs
        .iter()
        .find(|i| i.name == "ext4-1k")
        .unwrap_or_else(|| panic!("no ext4-1k"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pack_a = tmp.path().join("a.pack");
    write_pack(&a.path, &pack_a);
    let garbage = tmp.path().join("garbage.img");
    std::fs::write(&garbage, vec![0u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("mnt");
    let refused = |image: &Path, args: &[&str], expect: &str| {
        let before = common::mounts_at(&dir);
        let ended = ServerMount::start(image, &dir, args)
            .map(|m| panic!("mounted {} with {args:?}: {}", image.display(), m.stderr()))
            .unwrap_err();
        assert!(!ended.status.success());
        assert!(
            ended.stderr.contains(expect),
            "expected {expect:?} in the error, got:\n{}",
            ended.stderr
        );
        assert_eq!(
            common::mounts_at(&dir),
            before,
            "a refused start left a mount"
        );
    };
    refused(&tmp.path().join("missing.img"), &[], "No such file");
    refused(&garbage, &[], "not an ext2/3/4 image");
    refused(
        &b.path,
        &["--models", pack_a.to_str().unwrap_or_default()],
        "a.pack",
    );
    // A mount point already in use: mount once, then try again on the same directory.
    let first = ServerMount::start(&a.path, &dir, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    refused(&a.path, &[], "already in use");
    let ended = first.stop_with(libc::SIGINT);
    assert!(ended.status.success(), "{}", ended.stderr);
}
