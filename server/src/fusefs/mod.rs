//! The FUSE filesystem: one `fuser::Filesystem` impl, each method a thin translation of a FUSE
//! request into calls on the ext4 reader (metadata, directories, symlinks), the read path in
//! [`data`] (file data through the tier stack) and the directory cache.
//!
//! Read-only: everything that would write answers `EROFS`. The image never changes while it
//! is served, so attributes, entries and pages are cached by the kernel for long.
//!
//! A hidden file, `/.iomap-stats`, reads as the current stats JSON (it is not listed by readdir
//! so tree walks do not see it; a real file of that name in the image's root wins).

pub mod attr;
pub mod data;
pub mod dircache;
pub mod statfs;

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ext4::{Fs, Inode, InodeKind};
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use predictor::error::Chain;

use crate::stats::{Counter, Stats};
use attr::{node, STATS_NODE};
use data::{Data, Seek};
use dircache::DirCache;
use statfs::Totals;

/// How long the kernel may cache attributes and entries: the image is read-only.
const TTL: Duration = Duration::from_secs(3600);
/// Name of the hidden stats file in the root directory.
pub const STATS_NAME: &str = ".iomap-stats";

/// A mounted image.
#[derive(Debug)]
pub struct ImageFs {
    fs: Arc<Fs>,
    stats: Arc<Stats>,
    data: Data,
    dirs: DirCache,
    totals: Totals,
    block_size: u32,
}

impl ImageFs {
    /// The filesystem of `fs`, reading file data from `image` (the same image) through the
    /// stack of `stats`.
    pub fn new(fs: Arc<Fs>, stats: Arc<Stats>, image: std::fs::File) -> Self {
        let totals = Totals::read(&image, fs.superblock());
        Self {
            block_size: fs.block_size(),
            data: Data::new(fs.clone(), stats.clone(), image),
            dirs: DirCache::default(),
            totals,
            fs,
            stats,
        }
    }

    /// The stack's copy of a regular file's inode.
    fn stack_inode(&self, n: INodeNo) -> Option<&Inode> {
        attr::ino(n).and_then(|ino| self.stats.stack().inode(ino))
    }

    /// The inode behind a FUSE node: cached by the stack for regular files, read otherwise.
    fn inode(&self, n: INodeNo) -> Result<Inode, Errno> {
        let ino = attr::ino(n).ok_or(Errno::ENOENT)?;
        if let Some(i) = self.stats.stack().inode(ino) {
            return Ok(i.clone());
        }
        self.fs.inode(ino).map_err(|e| eio("reading the inode", &e))
    }

    fn attr(&self, inode: &Inode) -> Result<fuser::FileAttr, Errno> {
        attr::attr(inode, self.block_size).ok_or_else(|| {
            tracing::warn!(ino = inode.ino, mode = inode.mode, "inode of unknown type");
            Errno::EIO
        })
    }

    fn listing(&self, dir: &Inode) -> Result<Arc<dircache::Listing>, Errno> {
        if dir.kind != InodeKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        self.dirs
            .get(&self.fs, dir)
            .map_err(|e| eio("reading the directory", &e))
    }

    /// Whether `name` in `parent` is the hidden stats file.
    fn is_stats_file(&self, parent: &Inode, name: &OsStr) -> bool {
        parent.ino == ext4::ROOT_INO
            && name == STATS_NAME
            && self
                .listing(parent)
                .is_ok_and(|l| l.get(STATS_NAME.as_bytes()).is_none())
    }

    fn stats_json(&self) -> String {
        self.stats.to_json()
    }
}

/// Logs an ext4 error (it names the inode and what is wrong) and answers EIO.
fn eio(what: &str, e: &ext4::Error) -> Errno {
    tracing::warn!(error = %Chain(e), "{what}");
    Errno::EIO
}

impl Filesystem for ImageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Each only if the kernel offers it: readdirplus (entries with attributes, saves a
        // lookup per name), parallel lookups in one directory, cached symlink targets.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel does not offer this FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = (|| {
            let dir = self.inode(parent)?;
            if self.is_stats_file(&dir, name) {
                let size = self.stats_json().len() as u64;
                return Ok((attr::stats_attr(size, self.block_size), 0, Duration::ZERO));
            }
            let listing = self.listing(&dir)?;
            use std::os::unix::ffi::OsStrExt;
            let entry = listing.get(name.as_bytes()).ok_or(Errno::ENOENT)?;
            let inode = self.inode(node(entry.ino))?;
            Ok((self.attr(&inode)?, inode.generation, TTL))
        })();
        match result {
            Ok((a, generation, ttl)) => reply.entry(&ttl, &a, Generation(u64::from(generation))),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == STATS_NODE {
            let size = self.stats_json().len() as u64;
            return reply.attr(&Duration::ZERO, &attr::stats_attr(size, self.block_size));
        }
        match self.inode(ino).and_then(|i| self.attr(&i)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self.inode(ino).and_then(|i| {
            if i.kind != InodeKind::Symlink {
                return Err(Errno::EINVAL);
            }
            self.fs
                .read_link(&i)
                .map_err(|e| eio("reading the symlink", &e))
        });
        match result {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if ino == STATS_NODE {
            // Direct I/O: every read asks us, so the size need not be known in advance.
            return reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        }
        match self.inode(ino) {
            Ok(i) if i.kind == InodeKind::Dir => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino == STATS_NODE {
            let json = self.stats_json();
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(json.len());
            let end = start.saturating_add(size as usize).min(json.len());
            return reply.data(&json.as_bytes()[start..end]);
        }
        // Regular files known to the stack are borrowed from it: no inode read, no copy.
        let owned;
        let inode = match self.stack_inode(ino) {
            Some(i) => i,
            None => match self.inode(ino) {
                Ok(i) if i.kind == InodeKind::Dir => return reply.error(Errno::EISDIR),
                Ok(i) => {
                    owned = i;
                    &owned
                }
                Err(e) => return reply.error(e),
            },
        };
        match self.data.read(inode, offset, size) {
            Ok(buf) => {
                self.stats.add(Counter::Reads, 1);
                self.stats.add(Counter::ReadBytes, buf.len() as u64);
                reply.data(&buf)
            }
            Err(e) => {
                self.stats.add(Counter::ReadErrors, 1);
                tracing::warn!(error = %Chain(&e), "read failed");
                reply.error(Errno::EIO)
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inode(ino) {
            // The kernel may keep the listing in its cache: it never changes.
            Ok(i) if i.kind == InodeKind::Dir => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = match self.inode(ino).and_then(|d| self.listing(&d)) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        // The offset of an entry is its index + 1: where the next call resumes.
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in listing.entries.iter().enumerate().skip(skip) {
            if reply.add(node(e.ino), i as u64 + 1, e.kind, e.name()) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listing = match self.inode(ino).and_then(|d| self.listing(&d)) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in listing.entries.iter().enumerate().skip(skip) {
            // An entry whose inode cannot be read is left out here (readdir lists it, and
            // looking it up fails with EIO).
            let Ok((a, generation)) = self
                .inode(node(e.ino))
                .and_then(|inode| Ok((self.attr(&inode)?, inode.generation)))
            else {
                continue;
            };
            let generation = Generation(u64::from(generation));
            if reply.add(node(e.ino), i as u64 + 1, e.name(), &TTL, &a, generation) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let t = &self.totals;
        // Nothing is available to write on a read-only mount, but free space is still shown.
        reply.statfs(
            t.blocks, t.bfree, t.bfree, t.files, t.ffree, t.bsize, 255, t.bsize,
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // The kernel answers SEEK_SET/CUR/END itself; only SEEK_DATA and SEEK_HOLE come here.
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return reply.error(Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        let inode = match self.inode(ino) {
            Ok(i) if i.kind == InodeKind::File => i,
            Ok(_) => return reply.error(Errno::EINVAL),
            Err(e) => return reply.error(e),
        };
        self.stats.add(Counter::Seeks, 1);
        match self.data.seek(&inode, offset, data) {
            Ok(Seek::Offset(o)) => match i64::try_from(o) {
                Ok(o) => reply.offset(o),
                Err(_) => reply.error(Errno::EOVERFLOW),
            },
            Ok(Seek::Nxio) => reply.error(Errno::ENXIO),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "seek failed");
                reply.error(Errno::EIO)
            }
        }
    }

    // Extended attributes are not decoded by the ext4 reader. ENOSYS makes the kernel stop
    // asking (it then answers EOPNOTSUPP itself), so `ls -l` does not cost an upcall per file.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // Permission bits are checked by the kernel (default_permissions); only writing is ours
        // to refuse.
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    // Everything below would write: EROFS.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}
