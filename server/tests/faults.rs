//! Faults injected into a live mount: the image truncated under it, a reader killed mid-read,
//! the server killed with SIGKILL, the model pack overwritten while serving, and 16 readers at
//! once. Each test is bounded in time (a hung mount fails the test instead of hanging it) and
//! never leaves a mount behind ([`ServerMount`] unmounts on drop, lazily as a last resort).
//! Needs root (FUSE mounts, loop mounts); skipped otherwise.

mod common;

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{
    kill_and_detach, num, root_or_skip, stats_json, umount, with_timeout, write_pack, ServerMount,
};
use ext4::Fs;
use imagekit::kernel::LoopMount;
use imagekit::{Image, Kind, Recipe};

/// The fragmented file every test reads (10^4 extents, depth 2).
const FRAG: &str = "/frag-10k";
/// A 64 MiB file with 1500 random punches.
const RANDOM: &str = "/random-ranges";

/// One `frag-4k` image (4 KiB blocks, so the kernel can mount it too) and its pack, built once
/// per test binary.
fn image() -> &'static (tempfile::TempDir, Image, PathBuf) {
    static IMG: OnceLock<(tempfile::TempDir, Image, PathBuf)> = OnceLock::new();
    IMG.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let img = Recipe::Debugfs(Kind::Frag4k)
            .build(tmp.path())
            .unwrap_or_else(|e| panic!("building frag-4k: {e}"));
        let pack = tmp.path().join("frag-4k.pack");
        write_pack(&img.path, &pack);
        (tmp, img, pack)
    })
}

/// Mount arguments: learned tier with audit, the pack, stats to `stats`.
fn args<'a>(pack: &'a Path, stats: &'a Path) -> [&'a str; 8] {
    [
        "--tier",
        "learned",
        "--audit",
        "--models",
        pack.to_str().unwrap_or_default(),
        "--stats-json",
        stats.to_str().unwrap_or_default(),
        "--threads=4",
    ]
}

/// A buffer of `len` bytes aligned to 4 KiB, for O_DIRECT reads.
struct Aligned {
    buf: Vec<u8>,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        Self {
            buf: vec![0u8; len + 4096],
            len,
        }
    }
    fn get(&mut self) -> &mut [u8] {
        let off = self.buf.as_ptr().align_offset(4096);
        &mut self.buf[off..off + self.len]
    }
}

/// Opens `path` with O_DIRECT: every read goes to the server, not the page cache.
fn open_direct(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} with O_DIRECT: {e}", path.display()))
}

/// Reads `len` bytes at `offset` of `f` (O_DIRECT, `offset` and `len` multiples of 4 KiB).
fn read_direct(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Aligned::new(len);
    let b = buf.get();
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut b[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(b[..done].to_vec())
}

/// Unmounts, then checks the stats: no audit mismatch (no wrong mapping), and `read_errors`
/// as expected.
fn finish(ours: ServerMount, stats: &Path, read_errors_ok: bool) -> serde_json::Value {
    let ended = ours.unmount();
    assert!(
        ended.status.success(),
        "server exit {:?}:\n{}",
        ended.status,
        ended.stderr
    );
    let s = stats_json(stats);
    assert_eq!(num(&s, &["audit_mismatches"]), 0, "wrong mappings\n{s}");
    // "0 mismatches" means something only if answers were audited.
    assert!(num(&s, &["audit_checked"]) > 0, "no answer audited\n{s}");
    if !read_errors_ok {
        assert_eq!(num(&s, &["counters", "read_errors"]), 0, "read errors\n{s}");
    }
    s
}

#[test]
fn image_truncated_while_mounted_gives_eio_and_the_server_stays_up() {
    if !root_or_skip("image_truncated_while_mounted_gives_eio_and_the_server_stays_up") {
        return;
    }
    let (_, img, pack) = image();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let copy = tmp.path().join("copy.img");
    let ok = Command::new("cp")
        .arg("--sparse=always")
        .arg(&img.path)
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "copying {}", img.path.display());

    // Where /frag-10k's lowest and highest extents are on disk; cut the image between them.
    let fs = Fs::open_path(&copy).unwrap_or_else(|e| panic!("{e}"));
    let bs = u64::from(fs.block_size());
    let inode = fs.lookup_path(FRAG).unwrap_or_else(|e| panic!("{e}"));
    let exts = fs.extents(&inode).unwrap_or_else(|e| panic!("{e}"));
    let written = exts.iter().filter(|e| !e.unwritten);
    let low = *written.clone().min_by_key(|e| e.pblk).expect("extents");
    let high = *written.max_by_key(|e| e.pblk).expect("extents");
    let cut = (low.pblk + u64::from(low.len)) * bs;
    assert!(
        high.pblk * bs >= cut,
        "the file's last extent is not past the cut"
    );
    drop(fs);

    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let mut ours =
        ServerMount::start(&copy, &dir, &args(pack, &stats)).unwrap_or_else(|e| panic!("{e:?}"));
    let (pid, d) = (ours.pid(), dir.clone());
    let (file, root) = (dir.join(&FRAG[1..]), dir.clone());
    let (early_at, late_at) = (u64::from(low.lblk) * bs, u64::from(high.lblk) * bs);
    let copy2 = copy.clone();
    with_timeout(
        "reads of a truncated image",
        Duration::from_secs(60),
        move || kill_and_detach(pid, &d),
        move || {
            let f = open_direct(&file);
            let early = read_direct(&f, early_at, 4096).unwrap_or_else(|e| panic!("{e}"));
            let late = read_direct(&f, late_at, 4096).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(early.len(), 4096);
            assert_eq!(late.len(), 4096);

            // Truncate the image under the mount.
            let img = std::fs::OpenOptions::new()
                .write(true)
                .open(&copy2)
                .unwrap_or_else(|e| panic!("{e}"));
            img.set_len(cut).unwrap_or_else(|e| panic!("truncate: {e}"));
            drop(img);

            for _ in 0..3 {
                let err = read_direct(&f, late_at, 4096)
                    .expect_err("a read past the truncated end must fail");
                assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
                // The server is still there: an early block still reads the same, the root
                // still stats.
                let again = read_direct(&f, early_at, 4096).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(again, early, "an early block changed");
                let meta = std::fs::metadata(&root).unwrap_or_else(|e| panic!("stat root: {e}"));
                assert!(meta.is_dir());
            }
        },
    );
    assert!(ours.running(), "server died:\n{}", ours.stderr());
    let s = finish(ours, &stats, true);
    assert!(
        num(&s, &["counters", "read_errors"]) >= 3,
        "EIOs counted\n{s}"
    );
    eprintln!("truncated image: EIO past the cut, early blocks and stat still fine");
}

#[test]
fn readers_killed_mid_read_do_not_disturb_the_mount() {
    if !root_or_skip("readers_killed_mid_read_do_not_disturb_the_mount") {
        return;
    }
    let (_, img, pack) = image();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let mut ours = ServerMount::start(&img.path, &dir, &args(pack, &stats))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let fs = Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}"));
    let inode = fs.lookup_path(RANDOM).unwrap_or_else(|e| panic!("{e}"));
    let want = fs.read_file(&inode).unwrap_or_else(|e| panic!("{e}"));

    let (pid, d) = (ours.pid(), dir.clone());
    let (big, frag) = (dir.join(&RANDOM[1..]), dir.join(&FRAG[1..]));
    let kills = with_timeout(
        "killing readers",
        Duration::from_secs(120),
        move || kill_and_detach(pid, &d),
        move || {
            let mut kills = 0;
            for delay in [0u64, 20, 100, 300] {
                for file in [&big, &frag] {
                    let mut child = Command::new("dd")
                        .arg(format!("if={}", file.display()))
                        .args(["of=/dev/null", "bs=1M", "iflag=direct"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap_or_else(|e| panic!("spawning dd: {e}"));
                    std::thread::sleep(Duration::from_millis(delay));
                    let _ = child.kill();
                    let _ = child.wait();
                    kills += 1;
                }
            }
            // The mount still serves, byte-exact.
            let f = open_direct(&big);
            let got = read_direct(&f, 0, want.len().next_multiple_of(4096))
                .unwrap_or_else(|e| panic!("read after the kills: {e}"));
            assert!(got == want, "contents differ after the kills");
            kills
        },
    );
    assert!(ours.running(), "server died:\n{}", ours.stderr());
    finish(ours, &stats, false);
    eprintln!("{kills} readers killed mid-read; the mount kept serving byte-exact data");
}

#[test]
fn server_killed_leaves_enotconn_and_the_mount_point_is_reusable() {
    if !root_or_skip("server_killed_leaves_enotconn_and_the_mount_point_is_reusable") {
        return;
    }
    let (_, img, pack) = image();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let mut first = ServerMount::start(&img.path, &dir, &args(pack, &stats))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(std::fs::metadata(dir.join(&FRAG[1..])).is_ok());
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(first.pid() as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.running() {
        assert!(Instant::now() < deadline, "server survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = dir.clone();
    let errno = with_timeout(
        "readdir of a dead mount",
        Duration::from_secs(30),
        || {
            umount(&dir, true);
        },
        // Not a stat of the root (the kernel may answer that from cached attributes): a
        // readdir always goes to the server.
        move || {
            std::fs::read_dir(&d)
                .and_then(|mut r| r.next().transpose())
                .map(|_| ())
                .map_err(|e| e.raw_os_error())
        },
    );
    assert_eq!(
        errno,
        Err(Some(libc::ENOTCONN)),
        "readdir of the dead mount"
    );
    assert!(
        umount(&dir, false) || umount(&dir, true),
        "umount of the dead mount"
    );
    assert!(!common::is_mounted(&dir), "still mounted after umount");
    drop(first);

    // A new server mounts the same mount point and serves.
    let stats2 = tmp.path().join("stats2.json");
    let second = ServerMount::start(&img.path, &dir, &args(pack, &stats2))
        .unwrap_or_else(|e| panic!("remount: {e:?}"));
    let fs = Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}"));
    let inode = fs.lookup_path(FRAG).unwrap_or_else(|e| panic!("{e}"));
    let mut want = vec![0u8; 1 << 20];
    let exts = fs.extents(&inode).unwrap_or_else(|e| panic!("{e}"));
    let n = fs
        .read_at(&inode, &exts, 0, &mut want)
        .unwrap_or_else(|e| panic!("{e}"));
    want.truncate(n);
    let (pid, d) = (second.pid(), dir.clone());
    let file = dir.join(&FRAG[1..]);
    let got = with_timeout(
        "reading after the remount",
        Duration::from_secs(60),
        move || kill_and_detach(pid, &d),
        move || read_direct(&open_direct(&file), 0, 1 << 20).unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(got == want, "contents differ after the remount");
    finish(second, &stats2, false);
    eprintln!("SIGKILLed server: ENOTCONN, umount, remount served byte-exact data");
}

#[test]
fn pack_overwritten_while_serving_changes_no_answer() {
    if !root_or_skip("pack_overwritten_while_serving_changes_no_answer") {
        return;
    }
    let (_, img, pack) = image();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let own_pack = tmp.path().join("own.pack");
    std::fs::copy(pack, &own_pack).unwrap_or_else(|e| panic!("{e}"));
    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let ours = ServerMount::start(&img.path, &dir, &args(&own_pack, &stats))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let kernel = LoopMount::new(&img.path).unwrap_or_else(|e| panic!("loop mount: {e}"));
    let want = imagekit::kernel::read(&kernel.host_path(FRAG)).unwrap_or_else(|e| panic!("{e}"));
    let (pid, d) = (ours.pid(), dir.clone());
    let file = dir.join(&FRAG[1..]);
    let p = own_pack.clone();
    with_timeout(
        "reads around the pack overwrite",
        Duration::from_secs(120),
        move || kill_and_detach(pid, &d),
        move || {
            let f = open_direct(&file);
            let len = want.len().next_multiple_of(4096);
            let before = read_direct(&f, 0, len).unwrap_or_else(|e| panic!("{e}"));
            assert!(before == want, "contents differ before the overwrite");
            let garbage: Vec<u8> = (0..64 * 1024u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            std::fs::write(&p, &garbage).unwrap_or_else(|e| panic!("{e}"));
            let after = read_direct(&f, 0, len).unwrap_or_else(|e| panic!("{e}"));
            assert!(after == want, "contents differ after the overwrite");
        },
    );
    let s = finish(ours, &stats, false);
    assert!(
        num(&s, &["tiers", "learned", "answered"]) > 0,
        "predictor idle\n{s}"
    );
    drop(kernel);
    eprintln!("pack overwritten with garbage while serving: answers unchanged");
}

#[test]
fn sixteen_concurrent_readers_match_the_kernel() {
    if !root_or_skip("sixteen_concurrent_readers_match_the_kernel") {
        return;
    }
    let (_, img, pack) = image();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stats = tmp.path().join("stats.json");
    let dir = tmp.path().join("mnt");
    let ours = ServerMount::start(&img.path, &dir, &args(pack, &stats))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let kernel = LoopMount::new(&img.path).unwrap_or_else(|e| panic!("loop mount: {e}"));
    let files: Vec<(Arc<File>, Arc<File>, u64)> = [FRAG, RANDOM]
        .iter()
        .map(|p| {
            let k = File::open(kernel.host_path(p)).unwrap_or_else(|e| panic!("{e}"));
            let size = k.metadata().map(|m| m.len()).unwrap_or(0);
            assert!(size > 1 << 20, "{p}: {size} bytes");
            (Arc::new(open_direct(&dir.join(&p[1..]))), Arc::new(k), size)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let (pid, d) = (ours.pid(), dir.clone());
    let (stop2, reads2) = (stop.clone(), reads.clone());
    let errors = with_timeout(
        "16 readers",
        Duration::from_secs(60),
        move || kill_and_detach(pid, &d),
        move || {
            let threads: Vec<_> = (0..16u64)
                .map(|t| {
                    let (ours, kernel, size) = files[t as usize % files.len()].clone();
                    let (stop, reads) = (stop2.clone(), reads2.clone());
                    std::thread::spawn(move || -> Result<(), String> {
                        let mut rng = imagekit::Rng::new(0xfa17 + t);
                        while !stop.load(Ordering::Relaxed) {
                            let len = 4096 * (1 + rng.below(16)) as usize;
                            let offset = rng.below(size.div_ceil(4096)) * 4096;
                            let got = read_direct(&ours, offset, len)
                                .map_err(|e| format!("our read at {offset}: {e}"))?;
                            let mut want = vec![0u8; len];
                            let n = kernel
                                .read_at(&mut want, offset)
                                .map_err(|e| format!("kernel read at {offset}: {e}"))?;
                            want.truncate(n);
                            if got.len() < n || got[..n] != want[..] {
                                return Err(format!("bytes differ at {offset}+{len}"));
                            }
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(3));
            stop2.store(true, Ordering::Relaxed);
            threads
                .into_iter()
                .filter_map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())).err())
                .collect::<Vec<_>>()
        },
    );
    assert!(errors.is_empty(), "reader errors: {errors:?}");
    let n = reads.load(Ordering::Relaxed);
    assert!(n > 16, "only {n} reads");
    finish(ours, &stats, false);
    drop(kernel);
    eprintln!("16 readers, 3 s: {n} reads, all equal to the kernel's");
}
