//! The `FS_IOC_FIEMAP` ioctl (linux/fiemap.h) and the conversion of its byte extents to the
//! block extents an extent map is made of.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// The extent is the last one of the file.
pub const FIEMAP_EXTENT_LAST: u32 = 0x0000_0001;
/// The location is not known.
pub const FIEMAP_EXTENT_UNKNOWN: u32 = 0x0000_0002;
/// Delayed allocation: written, not yet placed on disk (also sets `UNKNOWN`).
pub const FIEMAP_EXTENT_DELALLOC: u32 = 0x0000_0004;
/// The data is encoded (compressed, ...): its blocks do not map one to one.
pub const FIEMAP_EXTENT_ENCODED: u32 = 0x0000_0008;
/// The offsets are not block aligned.
pub const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x0000_0100;
/// The data is stored in the inode (inline data); `physical` is a byte address, not aligned.
pub const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x0000_0200;
/// The data shares a block with other files' tails.
pub const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x0000_0400;
/// Unwritten (preallocated) extent.
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x0000_0800;
/// The kernel merged several on-disk extents (block-mapped files).
pub const FIEMAP_EXTENT_MERGED: u32 = 0x0000_1000;
/// The blocks are shared with another file (reflink, snapshot).
pub const FIEMAP_EXTENT_SHARED: u32 = 0x0000_2000;

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

/// One extent of a block map: what an extent tree stores, in file-system blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockExtent {
    /// First logical block.
    pub lblk: u32,
    /// First physical block.
    pub pblk: u64,
    /// Number of blocks, at least 1.
    pub len: u32,
    /// Allocated but not written: reads as zeros.
    pub unwritten: bool,
}

/// `struct fiemap` header.
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

/// `struct fiemap_extent`.
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

/// Extents asked for per call: 56 KiB of buffer, and a 10^6-extent file in ~1000 calls.
const BATCH: usize = 1024;

/// The header followed by room for `BATCH` extents, as the ioctl expects them in one buffer.
#[repr(C)]
struct FiemapBuffer {
    header: RawFiemap,
    extents: [RawFiemapExtent; BATCH],
}

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: u64 = 0xC020_660B;

/// All extents of the open file `file` (at `path`, for messages) from `FS_IOC_FIEMAP`, in
/// ascending logical order, including blocks preallocated past the end of the file. No
/// `FIEMAP_FLAG_SYNC`: nothing is written back. A file system without FIEMAP is
/// [`Error::Unsupported`].
pub fn fiemap(file: &File, path: &Path) -> Result<Vec<FiemapExtent>> {
    let fd = file.as_raw_fd();
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
        // writes; `fd` stays open for the duration of the call.
        let rc = unsafe { libc::ioctl(fd, FS_IOC_FIEMAP as _, ptr) };
        if rc < 0 {
            let source = std::io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::ENOTTY) => Error::Unsupported {
                    path: path.to_path_buf(),
                    fs_type: fs_type(file),
                    source,
                },
                _ => Error::Fiemap {
                    path: path.to_path_buf(),
                    source,
                },
            });
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
        // A map that does not move forward would loop forever: stop (the caller's checks
        // then judge what was read).
        if last || next <= start {
            break;
        }
        start = next;
    }
    Ok(out)
}

/// The `statfs` type of the file system holding `file`, as `0x...` with its name where known.
fn fs_type(file: &File) -> String {
    // SAFETY: statfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open and `st` is a valid out-pointer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return "unknown".into();
    }
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between targets
    let magic = st.f_type as u64;
    let name = match magic {
        0x0102_1994 => " tmpfs",
        0x9fa0 => " proc",
        0x6265_6572 => " sysfs",
        0x6969 => " nfs",
        0xff53_4d42 | 0xfe53_4d42 => " cifs/smb",
        0x6573_5546 => " fuse",
        0x794c_7630 => " overlayfs",
        _ => "",
    };
    format!("{magic:#x}{name}")
}

/// Converts FIEMAP byte extents to extents of `block_size`-byte blocks. Inline data has no
/// blocks and is left out. Fails, naming the extent, on one that is not block aligned, has no
/// known location (delayed allocation: written data not yet on disk), is encoded, overlaps or
/// precedes the one before it, or reaches past block 2^32 - 2 (the last one an extent map holds).
pub fn blocks(path: &Path, extents: &[FiemapExtent], block_size: u32) -> Result<Vec<BlockExtent>> {
    let bs = u64::from(block_size);
    let bad = |e: &FiemapExtent, why: &str| Error::Map {
        path: path.to_path_buf(),
        reason: format!(
            "extent at byte {} ({} bytes at device byte {}, flags {:#x}) {why}",
            e.logical, e.length, e.physical, e.flags
        ),
    };
    if bs == 0 {
        return Err(Error::Map {
            path: path.to_path_buf(),
            reason: "the file system reports a block size of 0".into(),
        });
    }
    let mut out: Vec<BlockExtent> = Vec::with_capacity(extents.len());
    let mut end = 0u64; // one past the last logical block so far
    for e in extents.iter().filter(|e| !e.is_inline()) {
        if e.flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC) != 0 {
            return Err(bad(
                e,
                "has no location on disk yet (delayed allocation; sync the file and scan again)",
            ));
        }
        if e.flags & (FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_TAIL) != 0 {
            return Err(bad(
                e,
                "is encoded or packed: its blocks do not map one to one",
            ));
        }
        if e.logical % bs != 0 || e.physical % bs != 0 || e.length % bs != 0 || e.length == 0 {
            return Err(bad(
                e,
                &format!("is not aligned to {block_size}-byte blocks"),
            ));
        }
        let (lblk, pblk, len) = (e.logical / bs, e.physical / bs, e.length / bs);
        if lblk < end {
            return Err(bad(e, "overlaps or precedes the extent before it"));
        }
        // Block 2^32 - 1 is one past the last block an extent map can hold (ext4's
        // EXT_MAX_BLOCKS), so the start and the length both fit in u32 below it.
        let (Ok(start), Ok(count)) = (u32::try_from(lblk), u32::try_from(len)) else {
            return Err(bad(
                e,
                "lies past block 2^32 - 1, beyond what an extent map holds",
            ));
        };
        if lblk + len > u64::from(u32::MAX) {
            return Err(bad(
                e,
                "lies past block 2^32 - 1, beyond what an extent map holds",
            ));
        }
        out.push(BlockExtent {
            lblk: start,
            pblk,
            len: count,
            unwritten: e.is_unwritten(),
        });
        end = lblk + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(logical: u64, physical: u64, length: u64, flags: u32) -> FiemapExtent {
        FiemapExtent {
            logical,
            physical,
            length,
            flags,
        }
    }

    #[test]
    fn converts_aligned_extents_and_skips_inline_data() {
        let p = Path::new("/f");
        let got = blocks(
            p,
            &[
                fe(0, 4096 * 10, 8192, 0),
                fe(
                    16384,
                    4096 * 100,
                    4096,
                    FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_LAST,
                ),
            ],
            4096,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                BlockExtent {
                    lblk: 0,
                    pblk: 10,
                    len: 2,
                    unwritten: false
                },
                BlockExtent {
                    lblk: 4,
                    pblk: 100,
                    len: 1,
                    unwritten: true
                },
            ]
        );
        let inline = fe(
            0,
            12345,
            60,
            FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_NOT_ALIGNED,
        );
        assert!(blocks(p, &[inline], 4096).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_block_map() {
        let p = Path::new("/f");
        for (bad, why) in [
            (vec![fe(0, 100, 4096, 0)], "aligned"),
            (
                vec![fe(
                    0,
                    0,
                    4096,
                    FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN,
                )],
                "delayed",
            ),
            (vec![fe(0, 0, 4096, FIEMAP_EXTENT_ENCODED)], "encoded"),
            (
                vec![fe(8192, 0, 8192, 0), fe(4096, 40960, 4096, 0)],
                "precedes",
            ),
            (vec![fe(u64::from(u32::MAX) * 4096, 0, 4096, 0)], "2^32"),
            (vec![fe(4096, 0, u64::from(u32::MAX) * 4096, 0)], "2^32"),
        ] {
            let e = blocks(p, &bad, 4096).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("/f"), "{e}");
        }
    }
}
