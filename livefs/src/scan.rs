//! Scanning a file, or every regular file under a directory, of one mounted file system.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fiemap::{blocks, fiemap, BlockExtent};

/// Facts about the file system a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSystemInfo {
    /// Block size (`statvfs` `f_bsize`): the unit of every extent of the scan.
    pub block_size: u32,
    /// The file system's UUID (`FS_IOC_GETFSUUID`), where the kernel tells it. On ext4 it is
    /// the superblock's, so a model pack fitted live fits the image of the same file system.
    pub uuid: Option<[u8; 16]>,
    /// Device number (`st_dev`); a directory scan stays on it.
    pub dev: u64,
}

/// One regular file's extent map, read live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Inode number (`st_ino`).
    pub ino: u64,
    /// Inode generation (`FS_IOC_GETVERSION`), where the file system tells it.
    pub generation: Option<u32>,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// Its extents in blocks of the file system's block size, ascending, including blocks
    /// preallocated past `size`.
    pub extents: Vec<BlockExtent>,
}

/// What a scan has seen so far (given to the progress callback after every file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Regular files mapped.
    pub files: u64,
    /// Their extents.
    pub extents: u64,
    /// Paths skipped.
    pub skipped: u64,
}

/// The result of [`scan`].
#[derive(Debug)]
pub struct Scan {
    /// The scanned path, absolute.
    pub root: PathBuf,
    /// Its file system.
    pub fs: FileSystemInfo,
    /// Every regular file mapped, in path order.
    pub files: Vec<LiveFile>,
    /// Paths that could not be read, and why (each error names its path: [`Error::path`]).
    pub skipped: Vec<Error>,
}

impl Scan {
    /// Records a path the scan goes on without, and warns about it (with the OS error) here,
    /// so every caller's log says the same.
    fn skip(&mut self, error: Error) {
        match std::error::Error::source(&error) {
            Some(cause) => tracing::warn!("skipped: {error}: {cause}"),
            None => tracing::warn!("skipped: {error}"),
        }
        self.skipped.push(error);
    }

    /// Extents over all files.
    #[must_use]
    pub fn extents(&self) -> u64 {
        self.files.iter().map(|f| f.extents.len() as u64).sum()
    }
}

/// Opens `path` read-only, without blocking (a FIFO that replaced a file must not hang the
/// scan) and without updating its access time where the kernel allows that.
fn open(path: &Path) -> Result<File> {
    let open_with = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    let base = libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match open_with(base | libc::O_NOATIME) {
        // O_NOATIME is only for the file's owner (or CAP_FOWNER).
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open_with(base),
        other => other,
    }
    .map_err(Error::io("opening", path))
}

/// `_IOR(0x15, 0, struct fsuuid2)`: `{ __u8 len; __u8 uuid[16]; }`.
const FS_IOC_GETFSUUID: u64 = 0x8011_1500;
/// `_IOR('v', 1, long)`.
const FS_IOC_GETVERSION: u64 = 0x8008_7601;

/// The UUID of the file system holding `file`, if the kernel tells it.
fn fs_uuid(file: &File) -> Option<[u8; 16]> {
    let mut raw = [0u8; 17];
    // SAFETY: `raw` is a writable 17-byte buffer, the size of `struct fsuuid2` the ioctl fills.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_GETFSUUID as _, raw.as_mut_ptr()) };
    if rc != 0 || raw[0] != 16 {
        return None;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&raw[1..]);
    Some(uuid)
}

/// The generation of `file`'s inode, if the file system tells it.
fn generation(file: &File) -> Option<u32> {
    let mut g: libc::c_long = 0;
    // SAFETY: `g` is a writable long, the largest the ioctl writes (ext4 writes an int).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_GETVERSION as _, &mut g) };
    #[allow(clippy::cast_possible_truncation)] // the kernel's value is a 32-bit i_generation
    (rc == 0).then_some(g as u32)
}

/// Block size, UUID and device of the file system holding `path` (a file or a directory).
pub fn file_system(path: &Path) -> Result<FileSystemInfo> {
    let file = open(path)?;
    info_of(&file, path)
}

fn info_of(file: &File, path: &Path) -> Result<FileSystemInfo> {
    // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open and `st` is a valid out-pointer.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::io("statvfs of", path)(
            std::io::Error::last_os_error(),
        ));
    }
    let block_size = u32::try_from(st.f_bsize)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| Error::Map {
            path: path.to_path_buf(),
            reason: format!("the file system reports a block size of {}", st.f_bsize),
        })?;
    let meta = file.metadata().map_err(Error::io("fstat of", path))?;
    Ok(FileSystemInfo {
        block_size,
        uuid: fs_uuid(file),
        dev: meta.dev(),
    })
}

/// The extent map of the regular file at `path`, in blocks of `block_size` bytes (the file
/// system's, from [`file_system`]).
pub fn map_file(path: &Path, block_size: u32) -> Result<LiveFile> {
    let file = open(path)?;
    let meta = file.metadata().map_err(Error::io("fstat of", path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let raw = fiemap(&file, path)?;
    Ok(LiveFile {
        path: path.to_path_buf(),
        ino: meta.ino(),
        generation: generation(&file),
        size: meta.size(),
        extents: blocks(path, &raw, block_size)?,
    })
}

/// Maps `root` (a regular file) or every regular file under `root` (a directory) on the file
/// system `root` is on: symbolic links are not followed, other file systems mounted below are
/// not entered, and files or directories that cannot be read are reported in
/// [`Scan::skipped`] (and logged). A file system without FIEMAP is an error at its first file.
/// `on_file` is told the running totals after every file.
pub fn scan(root: &Path, on_file: &mut dyn FnMut(&Progress)) -> Result<Scan> {
    let root = std::fs::canonicalize(root).map_err(Error::io("resolving", root))?;
    let fs = file_system(&root)?;
    let meta = std::fs::metadata(&root).map_err(Error::io("stat of", &root))?;
    let mut out = Scan {
        root: root.clone(),
        fs,
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let mut progress = Progress::default();
    if meta.is_file() {
        let f = map_file(&root, fs.block_size)?;
        progress.files = 1;
        progress.extents = f.extents.len() as u64;
        on_file(&progress);
        out.files.push(f);
        return Ok(out);
    }
    if !meta.is_dir() {
        return Err(Error::NotAFile { path: root });
    }
    let walk = walkdir::WalkDir::new(&root)
        .follow_links(false)
        .same_file_system(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().map_or_else(|| root.clone(), Path::to_path_buf);
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("file system loop"));
                out.skip(Error::Io {
                    what: "reading",
                    path,
                    source,
                });
                progress.skipped += 1;
                on_file(&progress);
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        match map_file(entry.path(), fs.block_size) {
            Ok(f) => {
                progress.files += 1;
                progress.extents += f.extents.len() as u64;
                out.files.push(f);
            }
            // The whole file system lacks FIEMAP: say so once instead of once per file.
            Err(e @ Error::Unsupported { .. }) => return Err(e),
            Err(error) => {
                out.skip(error);
                progress.skipped += 1;
            }
        }
        on_file(&progress);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tmpfs has no FIEMAP: the scan says so, naming the path and the file system type.
    #[test]
    fn a_file_system_without_fiemap_is_a_clear_error() {
        let dir = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
        std::fs::write(dir.path().join("a"), b"data").unwrap();
        let e = scan(dir.path(), &mut |_| {}).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Unsupported { .. }), "{msg}");
        assert!(
            msg.contains("without FIEMAP") && msg.contains("tmpfs"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let e = scan(Path::new("/nonexistent/iomap-livefs"), &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/iomap-livefs"), "{e}");
    }
}
