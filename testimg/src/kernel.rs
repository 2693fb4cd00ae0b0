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
        let dir = std::env::temp_dir().join(format!("testimg-mnt-{}-{n}", std::process::id()));
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
                tracing::warn!(error = %e, dir = %self.dir.display(), "umount failed; trying lazy");
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
            tracing::error!(error = %e, dir = %self.dir.display(), "could not unmount");
        }
    }
}

pub use livefs::FiemapExtent;

/// All extents of `file` (a regular file or a directory) from the kernel's FIEMAP
/// ([`livefs::fiemap`]: no `FIEMAP_FLAG_SYNC`, the mounts here are read-only).
pub fn fiemap(file: &Path) -> Result<Vec<FiemapExtent>> {
    let handle = File::open(file).map_err(io_err("opening for FIEMAP", file))?;
    livefs::fiemap(&handle, file).map_err(|e| unexpected(file, &e))
}

/// Converts FIEMAP extents to blocks of `block_size` bytes ([`livefs::blocks`]: inline data
/// left out; an extent that is not block aligned or past the block number range is an error).
pub fn fiemap_blocks(
    file: &Path,
    extents: &[FiemapExtent],
    block_size: u32,
) -> Result<Vec<OracleExtent>> {
    let blocks = livefs::blocks(file, extents, block_size).map_err(|e| unexpected(file, &e))?;
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

/// A FIEMAP failure as this crate's error (the oracle answered something unusable).
fn unexpected(file: &Path, e: &livefs::Error) -> Error {
    Error::Unexpected {
        image: file.to_owned(),
        path: String::new(),
        reason: chain(e),
    }
}

/// `e` and its sources, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// Reads a whole file through the kernel (for content comparisons).
pub fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(io_err("reading", file))
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
    let mut mkfs = Command::new(cmd::tool("mke2fs")?);
    mkfs.args(["-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^has_journal"])
        .args(["-E", "lazy_itable_init=1,nodiscard"])
        .arg(&image)
        .arg(format!("{}k", fs_bytes / 1024));
    cmd::run_checked(mkfs, &image, &[0])?;
    let mount = LoopMount::new_rw(&image)?;
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
