//! Answers from the Linux kernel's own ext4 driver (loop mounts and FIEMAP), and the images
//! whose maps the kernel makes ([`Allocated`], [`crate::Recipe`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd;
use crate::error::{io_err, Error, Result};
use crate::oracle::OracleExtent;

mod allocator;

pub(crate) use allocator::{allocated, punched};
pub use allocator::{Allocated, APPENDS_DIVISOR};

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
/// Returns the mount and the mke2fs command line.
fn fresh_rw_mount(image: &Path, fs_bytes: u64) -> Result<(LoopMount, String)> {
    fresh_mount(image, fs_bytes, "loop")
}

/// Makes `image` a fresh 4 KiB-block ext4 of `fs_bytes` and mounts it read-write with the
/// `nodelalloc` option: every write allocates at once, as fuse4fs does at `iomap_begin`, so a
/// trace of the kernel's map changes ([`livefs::trace`]) holds each allocation when it happens.
/// Needs root.
pub fn fresh_mount_nodelalloc(image: &Path, fs_bytes: u64) -> Result<LoopMount> {
    fresh_mount(image, fs_bytes, "loop,nodelalloc").map(|(mount, _)| mount)
}

fn fresh_mount(image: &Path, fs_bytes: u64, options: &str) -> Result<(LoopMount, String)> {
    let mut mkfs = Command::new(cmd::tool("mke2fs")?);
    mkfs.args(["-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^has_journal"])
        .args(["-E", "lazy_itable_init=1,nodiscard"])
        .arg(image)
        .arg(format!("{}k", fs_bytes / 1024));
    let made = cmd::run_checked(mkfs, image, &[0])?;
    Ok((LoopMount::with_options(image, options)?, made.command))
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
