//! ext4 inodes as FUSE sees them: inode numbers, file types and attributes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ext4::{Inode, InodeKind, ROOT_INO};
use fuser::{FileAttr, FileType, INodeNo};

/// FUSE node of the hidden stats file `/.iomap-stats` (above every 32-bit ext4 inode number).
pub const STATS_NODE: INodeNo = INodeNo((1 << 32) + 1);

/// The FUSE node of an ext4 inode. FUSE's root is node 1 and ext4's is inode 2, so the two are
/// swapped; every other number is itself (ext4 inode 1, the bad-blocks inode, is never linked
/// from a directory of a sane image, but a corrupt one can point at it, so it gets node 2
/// rather than colliding with the root).
pub fn node(ino: u32) -> INodeNo {
    match ino {
        ROOT_INO => INodeNo::ROOT,
        1 => INodeNo(u64::from(ROOT_INO)),
        n => INodeNo(u64::from(n)),
    }
}

/// The ext4 inode of a FUSE node (`None` for nodes above 32 bits, such as [`STATS_NODE`]).
pub fn ino(node: INodeNo) -> Option<u32> {
    match node.0 {
        1 => Some(ROOT_INO),
        2 => Some(1),
        n => u32::try_from(n).ok(),
    }
}

/// The FUSE type of an inode kind (`None` for a mode with an unknown type).
pub fn file_type(kind: InodeKind) -> Option<FileType> {
    Some(match kind {
        InodeKind::File => FileType::RegularFile,
        InodeKind::Dir => FileType::Directory,
        InodeKind::Symlink => FileType::Symlink,
        InodeKind::CharDev => FileType::CharDevice,
        InodeKind::BlockDev => FileType::BlockDevice,
        InodeKind::Fifo => FileType::NamedPipe,
        InodeKind::Socket => FileType::Socket,
        InodeKind::Unknown => return None,
    })
}

/// The FUSE type of a directory entry's type byte (`None`: not recorded, read the inode).
pub fn entry_type(t: ext4::FileType) -> Option<FileType> {
    Some(match t {
        ext4::FileType::File => FileType::RegularFile,
        ext4::FileType::Dir => FileType::Directory,
        ext4::FileType::Symlink => FileType::Symlink,
        ext4::FileType::CharDev => FileType::CharDevice,
        ext4::FileType::BlockDev => FileType::BlockDevice,
        ext4::FileType::Fifo => FileType::NamedPipe,
        ext4::FileType::Socket => FileType::Socket,
        ext4::FileType::Unknown => return None,
    })
}

/// An on-disk time (seconds since the epoch, possibly negative, and nanoseconds).
fn time((secs, nanos): (i64, u32)) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nanos));
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

/// The device number of a device inode, in the encoding FUSE expects (the kernel's
/// `new_encode_dev`). ext4 keeps it in `i_block`: the old 16-bit form in word 0 when non-zero,
/// else the new 32-bit form in word 1 (as the kernel's `ext4_iget` reads it).
fn rdev(inode: &Inode) -> u32 {
    if !matches!(inode.kind, InodeKind::CharDev | InodeKind::BlockDev) {
        return 0;
    }
    let word = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&inode.i_block[i * 4..i * 4 + 4]);
        u32::from_le_bytes(b)
    };
    let (major, minor) = match word(0) {
        0 => {
            let d = word(1);
            ((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00))
        }
        old => ((old >> 8) & 0xff, old & 0xff),
    };
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// `st_blocks`: the inode's 512-byte units, plus, for regular files with inline data, the
/// sectors their bytes would fill, as the kernel's `ext4_file_getattr` adds "so tools like tar
/// and rsync do not think the file is completely sparse" (directories and symlinks do not get
/// it).
fn blocks(inode: &Inode) -> u64 {
    let inline = if inode.kind == InodeKind::File && inode.has_inline_data() {
        inode.size.div_ceil(512)
    } else {
        0
    };
    inode.blocks_512.saturating_add(inline)
}

/// The attributes of an inode.
pub fn attr(inode: &Inode, block_size: u32) -> Option<FileAttr> {
    Some(FileAttr {
        ino: node(inode.ino),
        size: inode.size,
        blocks: blocks(inode),
        atime: time(inode.atime),
        mtime: time(inode.mtime),
        ctime: time(inode.ctime),
        // ext4 keeps a creation time in large inodes, but the reader does not decode it and
        // Linux's stat does not take it from FUSE attributes.
        crtime: time(inode.ctime),
        kind: file_type(inode.kind)?,
        perm: inode.mode & 0o7777,
        nlink: u32::from(inode.links_count),
        uid: inode.uid,
        gid: inode.gid,
        rdev: rdev(inode),
        blksize: block_size,
        flags: 0,
    })
}

/// The attributes of the virtual stats file, of `size` bytes, owned by the server's user.
pub fn stats_attr(size: u64, block_size: u32) -> FileAttr {
    let now = SystemTime::now();
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    FileAttr {
        ino: STATS_NODE,
        size,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: FileType::RegularFile,
        perm: 0o444,
        nlink: 1,
        uid,
        gid,
        rdev: 0,
        blksize: block_size,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_numbers_are_a_bijection() {
        for ino in [1u32, 2, 3, 11, 12, u32::MAX] {
            assert_eq!(super::ino(node(ino)), Some(ino));
        }
        assert_eq!(node(2), INodeNo::ROOT);
        assert_eq!(super::ino(STATS_NODE), None);
    }

    #[test]
    fn times_before_and_after_the_epoch() {
        assert_eq!(time((1, 5)), UNIX_EPOCH + Duration::new(1, 5));
        assert_eq!(time((-1, 0)), UNIX_EPOCH - Duration::from_secs(1));
    }
}
