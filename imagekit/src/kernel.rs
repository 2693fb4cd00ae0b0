//! Answers from the Linux kernel's own ext4 driver: loop mounts and FIEMAP.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd;
use crate::error::{io_err, Error, Result};
use crate::oracle::OracleExtent;

/// The effective uid of this process.
#[must_use]
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process runs as root (loop mounts need it).
#[must_use]
pub fn is_root() -> bool {
    euid() == 0
}

/// The kernel's page size; ext4 (before large block size support) mounts only file systems
/// whose block size is at most this.
#[must_use]
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// An image loop-mounted read-only (`mount -t ext4 -o loop,ro,noload`) on a fresh directory.
/// Unmounted (and the directory removed) on drop; a lazy unmount is the last resort.
#[derive(Debug)]
pub struct LoopMount {
    image: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

static MOUNT_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LoopMount {
    /// Mounts `image`. Fails with [`Error::NotRoot`] when not root, and with the output of
    /// `mount` when the kernel refuses (no loop devices, unsupported block size, ...).
    pub fn new(image: &Path) -> Result<Self> {
        Self::with_options(image, "loop,ro,noload")
    }

    /// Mounts `image` read-write, for building images through the kernel's own allocator.
    /// Never use it on an image that is not the caller's own.
    pub fn new_rw(image: &Path) -> Result<Self> {
        Self::with_options(image, "loop")
    }

    fn with_options(image: &Path, options: &str) -> Result<Self> {
        let euid = euid();
        if euid != 0 {
            return Err(Error::NotRoot {
                what: "loop-mounting an image",
                euid,
            });
        }
        let n = MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("imagekit-mnt-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io_err("creating mount point", &dir))?;
        let mut mount = Command::new(cmd::tool("mount")?);
        mount
            .args(["-t", "ext4", "-o", options])
            .arg(image)
            .arg(&dir);
        if let Err(e) = cmd::run_checked(mount, image, &[0]) {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        tracing::debug!(image = %image.display(), dir = %dir.display(), "mounted");
        Ok(Self {
            image: image.to_owned(),
            dir,
            mounted: true,
        })
    }

    /// The mount point: image paths are `mount.path().join(path.trim_start_matches('/'))`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The host path of `path` inside the image.
    #[must_use]
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    /// The mounted image.
    #[must_use]
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The block device's name (`loop3`), from /proc/self/mounts: the directory under
    /// `/sys/fs/ext4/` that holds this mount's allocator knobs.
    pub fn device_name(&self) -> Result<String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .map_err(io_err("reading", "/proc/self/mounts"))?;
        let dir = self.dir.to_string_lossy();
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?, f.next()?))
            })
            .filter(|(_, d)| *d == dir)
            .filter_map(|(dev, _)| dev.rsplit('/').next())
            .next_back()
            .map(str::to_string)
            .ok_or_else(|| Error::Unexpected {
                image: self.image.clone(),
                path: String::new(),
                reason: format!("no mount at {dir} in /proc/self/mounts"),
            })
    }

    /// Unmounts now and reports failure (drop only logs it).
    pub fn unmount(mut self) -> Result<()> {
        self.do_unmount()
    }

    fn do_unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        let mut umount = Command::new(cmd::tool("umount")?);
        umount.arg(&self.dir);
        let result = match cmd::run_checked(umount, &self.image, &[0]) {
            Ok(_) => Ok(()),
            Err(e) => {
                // Recorded as an error value, so the log shows its sources too.
                let error: &dyn std::error::Error = &e;
                tracing::warn!(error, dir = %self.dir.display(), "umount failed; trying lazy");
                let mut lazy = Command::new(cmd::tool("umount")?);
                lazy.arg("-l").arg(&self.dir);
                cmd::run_checked(lazy, &self.image, &[0]).map(|_| ())
            }
        };
        self.mounted = false;
        if result.is_ok() {
            let _ = std::fs::remove_dir(&self.dir);
        }
        result
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if let Err(e) = self.do_unmount() {
            let error: &dyn std::error::Error = &e;
            tracing::error!(error, dir = %self.dir.display(), "could not unmount");
        }
    }
}

pub use livefs::FiemapExtent;

/// All extents of `file` (a regular file or a directory) from the kernel's FIEMAP
/// ([`livefs::fiemap`]: no `FIEMAP_FLAG_SYNC`, the mounts here are read-only).
pub fn fiemap(file: &Path) -> Result<Vec<FiemapExtent>> {
    let handle = File::open(file).map_err(io_err("opening for FIEMAP", file))?;
    livefs::fiemap(&handle, file).map_err(Error::Fiemap)
}

/// Converts FIEMAP extents to blocks of `block_size` bytes ([`livefs::blocks`]: inline data
/// left out; an extent that is not block aligned or past the block number range is an error).
pub fn fiemap_blocks(
    file: &Path,
    extents: &[FiemapExtent],
    block_size: u32,
) -> Result<Vec<OracleExtent>> {
    let blocks = livefs::blocks(file, extents, block_size).map_err(Error::Fiemap)?;
    Ok(blocks
        .into_iter()
        .map(|b| OracleExtent {
            lblk: b.lblk,
            pblk: b.pblk,
            len: b.len,
            unwritten: b.unwritten,
        })
        .collect())
}

/// Reads a whole file through the kernel (for content comparisons).
pub fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(io_err("reading", file))
}

/// Makes `image` a fresh `fs_bytes`-byte ext4 file system with 4 KiB blocks and no journal
/// (the kernel's allocator is what the recipes measure; a journal only slows their `fsync`s),
/// and mounts it read-write.
fn fresh_rw_mount(image: &Path, fs_bytes: u64) -> Result<LoopMount> {
    fresh_mount(image, fs_bytes, "loop")
}

/// Makes `image` a fresh 4 KiB-block ext4 of `fs_bytes` and mounts it read-write with the
/// `nodelalloc` option: every write allocates at once, as fuse4fs does at `iomap_begin`, so a
/// trace of the kernel's map changes ([`livefs::trace`]) holds each allocation when it happens.
/// Needs root.
pub fn fresh_mount_nodelalloc(image: &Path, fs_bytes: u64) -> Result<LoopMount> {
    fresh_mount(image, fs_bytes, "loop,nodelalloc")
}

fn fresh_mount(image: &Path, fs_bytes: u64, options: &str) -> Result<LoopMount> {
    let mut mkfs = Command::new(cmd::tool("mke2fs")?);
    mkfs.args(["-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^has_journal"])
        .args(["-E", "lazy_itable_init=1,nodiscard"])
        .arg(image)
        .arg(format!("{}k", fs_bytes / 1024));
    cmd::run_checked(mkfs, image, &[0])?;
    LoopMount::with_options(image, options)
}

/// Builds `DIR/kernel-punched-N.img`: a 4 KiB-block ext4 image whose file `/punched` has exactly
/// `extents` unwritten extents, made by the kernel: `fallocate` of `2 * extents` blocks on a
/// read-write loop mount, then a hole punched in every other block. Nothing is written but
/// metadata, so 10^6 extents take seconds and the (sparse) image stays small. Needs root.
pub fn punched_with_kernel(dir: &Path, extents: u32) -> Result<PathBuf> {
    let image = dir.join(format!("kernel-punched-{extents}.img"));
    let blocks = u64::from(extents) * 2;
    // Room for the file's blocks, its extent tree (12 bytes an extent) and the rest.
    let fs_bytes = (blocks + blocks / 64 + 65_536) * 4096;
    let mount = fresh_rw_mount(&image, fs_bytes)?;
    let path = mount.host_path("/punched");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err("creating", &path))?;
    let fd = file.as_raw_fd();
    let len = i64::try_from(blocks * 4096).map_err(|_| Error::Unexpected {
        image: image.clone(),
        path: "/punched".into(),
        reason: format!("{extents} extents is too many"),
    })?;
    // SAFETY: fd is an open, writable file for the duration of the calls.
    if unsafe { libc::fallocate(fd, 0, 0, len) } != 0 {
        return Err(io_err("fallocate", &path)(std::io::Error::last_os_error()));
    }
    for b in (1..blocks).step_by(2) {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: as above; offsets are inside the file.
        if unsafe { libc::fallocate(fd, mode, (b * 4096) as i64, 4096) } != 0 {
            return Err(io_err("punching a hole in", &path)(
                std::io::Error::last_os_error(),
            ));
        }
    }
    file.sync_all().map_err(io_err("syncing", &path))?;
    drop(file);
    mount.unmount()?;
    Ok(image)
}

/// A map the kernel's allocator makes, on a read-write loop mount of a fresh 4 KiB-block ext4
/// image: irregular gaps and lengths, as real workloads leave them (unlike the regular
/// every-other-block punch of [`punched_with_kernel`], which one line predicts exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocated {
    /// `/random-punched`: a fallocated file with holes of 1 to 8 blocks punched at random
    /// gaps of 1 to 16 blocks: `scale` unwritten extents of irregular lengths.
    RandomPunched,
    /// `/append-0` .. `/append-3`: four files appended in turn, 1 to 8 blocks of random data
    /// at a time, each append `fsync`ed, with the allocator's stream and group-preallocation
    /// knobs set so the appends interleave on disk (a log directory, a mail spool). The first
    /// two append `scale` times, to the end, so every append of theirs lands among the
    /// other's; the third stops after half the turns and the fourth after a fifth
    /// ([`APPENDS_DIVISOR`]), so one image holds real allocator maps of several sizes, the
    /// smallest about `scale / 5` extents.
    Appenders,
    /// `/sparse-disk`: a 16 GiB sparse file (a VM disk) with `scale` writes of 1 to 16 blocks
    /// of random data at random block offsets, then one `fsync` (delayed allocation places
    /// them).
    SparseDisk,
    /// `/database.sqlite`: an SQLite database (the `sqlite3` shell, rollback journal,
    /// `synchronous=FULL`) under `scale` transactions of 1 to 4 inserts of 0.5 to 20 KB blobs,
    /// one in three also deleting a row: every commit writes, fsyncs and deletes its journal,
    /// so the database's growth interleaves with the journals' blocks (allocator knobs as for
    /// the appenders).
    Sqlite,
}

/// The kernel-allocator images of the demo and the benches, with each recipe's operations
/// (`scale`): maps from about 10^3 (the appenders' smallest file) to 10^6 extents.
pub const DEMO_RECIPES: [(Allocated, u32); 4] = [
    (Allocated::RandomPunched, 1_000_000),
    (Allocated::Appenders, 5_000),
    (Allocated::SparseDisk, 30_000),
    (Allocated::Sqlite, 5_000),
];

/// The appenders' four files: file `k` appends in the first `scale / APPENDS_DIVISOR[k]` of the
/// recipe's `scale` turns.
pub const APPENDS_DIVISOR: [u32; 4] = [1, 1, 2, 5];

impl Allocated {
    /// Every recipe.
    pub const ALL: [Allocated; 4] = [
        Self::RandomPunched,
        Self::Appenders,
        Self::SparseDisk,
        Self::Sqlite,
    ];

    /// Short name (image file stem and dataset prefix).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RandomPunched => "kernel-random-punched",
            Self::Appenders => "kernel-appenders",
            Self::SparseDisk => "kernel-sparse-disk",
            Self::Sqlite => "kernel-sqlite",
        }
    }

    /// One line on what the image holds.
    #[must_use]
    pub fn description(self, scale: u32) -> String {
        match self {
            Self::RandomPunched => format!("4 KiB blocks, /random-punched: fallocated, then {scale} holes of 1-8 blocks punched at random gaps of 1-16 blocks by the kernel (unwritten extents; reads are zeros)"),
            Self::Appenders => {
                let [a, b, c, d] = APPENDS_DIVISOR.map(|k| scale / k);
                format!("4 KiB blocks, /append-0..3: four files appended in turn, {a}, {b}, {c} and {d} times (1-8 blocks of data, fsync after each), allocator knobs set so the appends interleave")
            }
            Self::SparseDisk => format!("4 KiB blocks, /sparse-disk: a 16 GiB sparse file with {scale} writes of 1-16 blocks at random offsets, placed by delayed allocation"),
            Self::Sqlite => format!("4 KiB blocks, /database.sqlite: an SQLite database after {scale} fsynced transactions of 1-4 inserts of 0.5-20 KB blobs (one in three with a delete), rollback journal"),
        }
    }

    /// Whether its files hold written data (worth reading end to end).
    #[must_use]
    pub fn written(self) -> bool {
        !matches!(self, Self::RandomPunched)
    }
}

/// Writes `buf` at byte `offset` of `file`, all of it.
fn pwrite_all(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
        .map_err(io_err("writing", path))
}

/// Builds `DIR/<recipe name>.img` ([`Allocated`]) through the kernel with `scale` operations and
/// the seed `seed`. Needs root.
pub fn allocated_with_kernel(
    dir: &Path,
    recipe: Allocated,
    scale: u32,
    seed: u64,
) -> Result<PathBuf> {
    const BS: u64 = 4096;
    let image = dir.join(format!("{}.img", recipe.name()));
    let n = u64::from(scale);
    // Room for the data (at most 16 blocks an operation, four files for the appenders), the
    // extent trees and the rest.
    let data_blocks = match recipe {
        Allocated::RandomPunched => n * 25,
        Allocated::Appenders => n * 4 * 8,
        Allocated::SparseDisk => n * 16,
        Allocated::Sqlite => n * 24,
    };
    let fs_bytes = (data_blocks + data_blocks / 16 + 65_536) * BS;
    let mount = fresh_rw_mount(&image, fs_bytes)?;
    let mut rng = crate::Rng::new(seed);
    let create = |name: &str| {
        let path = mount.host_path(name);
        std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map(|f| (f, path.clone()))
            .map_err(io_err("creating", &path))
    };
    let too_big = |what: &str| Error::Unexpected {
        image: image.clone(),
        path: String::new(),
        reason: format!("{what}: {scale} operations is too many"),
    };
    match recipe {
        Allocated::RandomPunched => {
            let (file, path) = create("/random-punched")?;
            let len = i64::try_from(data_blocks * BS).map_err(|_| too_big("fallocate"))?;
            // SAFETY: `file` is open for writing for the duration of the call.
            if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
                return Err(io_err("fallocate", &path)(std::io::Error::last_os_error()));
            }
            let mut at = 0u64;
            for _ in 0..n {
                at += rng.range(1, 16);
                let hole = rng.range(1, 8);
                if at + hole >= data_blocks {
                    break;
                }
                let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                let (off, l) = ((at * BS) as i64, (hole * BS) as i64);
                // SAFETY: as above; the range lies inside the file.
                if unsafe { libc::fallocate(file.as_raw_fd(), mode, off, l) } != 0 {
                    return Err(io_err("punching a hole in", &path)(
                        std::io::Error::last_os_error(),
                    ));
                }
                at += hole;
            }
            file.sync_all().map_err(io_err("syncing", &path))?;
        }
        Allocated::Appenders => {
            interleave_small_allocations(&mount)?;
            let files: Vec<(File, PathBuf)> = (0..4)
                .map(|i| create(&format!("/append-{i}")))
                .collect::<Result<_>>()?;
            let turns = APPENDS_DIVISOR.map(|k| n / u64::from(k));
            let mut ends = [0u64; 4];
            let mut buf = vec![0u8; 8 * BS as usize];
            for t in 0..n {
                for (k, (file, path)) in files.iter().enumerate() {
                    if t >= turns[k] {
                        continue;
                    }
                    let len = (rng.range(1, 8) * BS) as usize;
                    rng.fill(&mut buf[..len]);
                    pwrite_all(file, path, &buf[..len], ends[k])?;
                    ends[k] += len as u64;
                    file.sync_data().map_err(io_err("fsync of", path))?;
                }
            }
        }
        Allocated::SparseDisk => {
            let (file, path) = create("/sparse-disk")?;
            let size = 16u64 << 30;
            file.set_len(size).map_err(io_err("sizing", &path))?;
            let mut buf = vec![0u8; 16 * BS as usize];
            for _ in 0..n {
                let blocks = rng.range(1, 16);
                let at = rng.below(size / BS - blocks);
                let len = (blocks * BS) as usize;
                rng.fill(&mut buf[..len]);
                pwrite_all(&file, &path, &buf[..len], at * BS)?;
            }
            file.sync_all().map_err(io_err("syncing", &path))?;
        }
        Allocated::Sqlite => {
            interleave_small_allocations(&mount)?;
            let mut sql = String::from(
                "PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n\
                 CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);\n",
            );
            let mut rows = 0u64;
            for _ in 0..n {
                sql.push_str("BEGIN;\n");
                for _ in 0..rng.range(1, 4) {
                    rows += 1;
                    let bytes = rng.range(500, 20_000);
                    sql.push_str(&format!("INSERT INTO t(v) VALUES (randomblob({bytes}));\n"));
                }
                if rows > 10 && rng.range(1, 3) == 1 {
                    let row = rng.range(1, rows);
                    sql.push_str(&format!("DELETE FROM t WHERE id={row};\n"));
                }
                sql.push_str("COMMIT;\n");
            }
            let script = dir.join(format!("{}.sql", recipe.name()));
            std::fs::write(&script, sql).map_err(io_err("writing", &script))?;
            let mut cmd = std::process::Command::new(crate::cmd::tool("sqlite3")?);
            cmd.arg("-bail")
                .arg(mount.host_path("/database.sqlite"))
                .arg(format!(".read {}", script.display()));
            let ran = crate::cmd::run_checked(cmd, &image, &[0]);
            let _ = std::fs::remove_file(&script);
            ran?;
        }
    }
    mount.unmount()?;
    Ok(image)
}

/// Sets the allocator knobs under which small allocations of different files interleave:
/// requests go to the locality group's shared preallocation, one block preallocated at a time,
/// so consecutive small writes of different files take adjacent blocks, as on a busy machine.
pub fn interleave_small_allocations(mount: &LoopMount) -> Result<()> {
    let sys = Path::new("/sys/fs/ext4").join(mount.device_name()?);
    for (knob, value) in [("mb_stream_req", "1000000"), ("mb_group_prealloc", "1")] {
        let p = sys.join(knob);
        std::fs::write(&p, value).map_err(io_err("setting", &p))?;
    }
    Ok(())
}
