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

/// The extent is the last one of the file.
pub const FIEMAP_EXTENT_LAST: u32 = 0x0000_0001;
/// The location is not known.
pub const FIEMAP_EXTENT_UNKNOWN: u32 = 0x0000_0002;
/// Delayed allocation.
pub const FIEMAP_EXTENT_DELALLOC: u32 = 0x0000_0004;
/// The data is stored in the inode (inline data); `physical` is a byte address, not aligned.
pub const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x0000_0200;
/// The offsets are not block aligned.
pub const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x0000_0100;
/// Unwritten (preallocated) extent.
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x0000_0800;
/// The kernel merged several on-disk extents (block-mapped files).
pub const FIEMAP_EXTENT_MERGED: u32 = 0x0000_1000;

/// One extent as FIEMAP reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiemapExtent {
    /// Byte offset in the file.
    pub logical: u64,
    /// Byte offset on the device.
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

impl FiemapExtent {
    /// `FIEMAP_EXTENT_UNWRITTEN` is set.
    #[must_use]
    pub fn is_unwritten(&self) -> bool {
        self.flags & FIEMAP_EXTENT_UNWRITTEN != 0
    }

    /// `FIEMAP_EXTENT_LAST` is set.
    #[must_use]
    pub fn is_last(&self) -> bool {
        self.flags & FIEMAP_EXTENT_LAST != 0
    }

    /// `FIEMAP_EXTENT_DATA_INLINE` is set.
    #[must_use]
    pub fn is_inline(&self) -> bool {
        self.flags & FIEMAP_EXTENT_DATA_INLINE != 0
    }
}

/// `struct fiemap` header (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawFiemap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent` (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawFiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

const BATCH: usize = 1024;

/// The header followed by room for `BATCH` extents, as the ioctl expects them in one buffer.
#[repr(C)]
struct FiemapBuffer {
    header: RawFiemap,
    extents: [RawFiemapExtent; BATCH],
}

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: u64 = 0xC020_660B;

/// All extents of `file` from the `FS_IOC_FIEMAP` ioctl (no `FIEMAP_FLAG_SYNC`: the mounts here
/// are read-only), in ascending logical order, asked for in batches of 1024. Opens the file
/// read-only: do not call it on FIFOs or devices.
pub fn fiemap(file: &Path) -> Result<Vec<FiemapExtent>> {
    let handle = File::open(file).map_err(io_err("opening for FIEMAP", file))?;
    let fd = handle.as_raw_fd();
    let mut buffer = Box::new(FiemapBuffer {
        header: RawFiemap::default(),
        extents: [RawFiemapExtent::default(); BATCH],
    });
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        buffer.header = RawFiemap {
            fm_start: start,
            fm_length: u64::MAX - start,
            fm_flags: 0,
            fm_mapped_extents: 0,
            fm_extent_count: BATCH as u32,
            fm_reserved: 0,
        };
        let ptr: *mut FiemapBuffer = &mut *buffer;
        // SAFETY: `ptr` points to a live, writable buffer laid out as `struct fiemap` followed
        // by `fm_extent_count` `struct fiemap_extent`s, which is what the ioctl reads and
        // writes; `fd` is open for the duration of the call.
        let rc = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP as _, ptr) };
        if rc < 0 {
            return Err(io_err("FIEMAP on", file)(std::io::Error::last_os_error()));
        }
        let mapped = (buffer.header.fm_mapped_extents as usize).min(BATCH);
        if mapped == 0 {
            break;
        }
        let mut last = false;
        for raw in &buffer.extents[..mapped] {
            let e = FiemapExtent {
                logical: raw.fe_logical,
                physical: raw.fe_physical,
                length: raw.fe_length,
                flags: raw.fe_flags,
            };
            last |= e.is_last();
            out.push(e);
        }
        let Some(tail) = out.last() else { break };
        let next = tail.logical.saturating_add(tail.length);
        if last || next <= start {
            break;
        }
        start = next;
    }
    Ok(out)
}

/// Converts FIEMAP extents to blocks of `block_size` bytes, leaving out inline-data extents
/// (which have no blocks). Fails on an extent that is not block aligned or does not fit the
/// block number ranges.
pub fn fiemap_blocks(
    file: &Path,
    extents: &[FiemapExtent],
    block_size: u32,
) -> Result<Vec<OracleExtent>> {
    let bs = u64::from(block_size);
    let bad = |reason: String| Error::Unexpected {
        image: file.to_owned(),
        path: String::new(),
        reason,
    };
    let mut out = Vec::with_capacity(extents.len());
    for e in extents.iter().filter(|e| !e.is_inline()) {
        if bs == 0 || e.logical % bs != 0 || e.physical % bs != 0 || e.length % bs != 0 {
            return Err(bad(format!(
                "FIEMAP extent {e:?} is not aligned to {block_size}-byte blocks"
            )));
        }
        let lblk = u32::try_from(e.logical / bs)
            .map_err(|_| bad(format!("FIEMAP extent {e:?} starts beyond block 2^32")))?;
        let len = u32::try_from(e.length / bs)
            .map_err(|_| bad(format!("FIEMAP extent {e:?} is longer than 2^32 blocks")))?;
        out.push(OracleExtent {
            lblk,
            pblk: e.physical / bs,
            len,
            unwritten: e.is_unwritten(),
        });
    }
    Ok(out)
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
