//! Extent maps of files on a mounted ("live") file system, read through the `FS_IOC_FIEMAP`
//! ioctl: the other source of extent maps beside an image's extent trees (the `ext4` crate).
//!
//! Everything here is read-only: files are opened `O_RDONLY | O_NONBLOCK` (never for writing,
//! never blocking on a FIFO that replaced a file), FIEMAP is asked without `FIEMAP_FLAG_SYNC`
//! (which would write dirty pages back), and a scan never follows symbolic links or leaves the
//! file system it started on.
//!
//! What FIEMAP reports is what the kernel's mapping code answers, which is what an iomap cache
//! would be filled from. On ext4 it may join physically contiguous on-disk extents (the extent
//! status cache merges them) and it splits nothing an extent tree holds, so a live map describes
//! the same blocks as the image's tree, sometimes in fewer extents.

mod error;
mod fiemap;
pub mod mountinfo;
mod scan;
pub mod trace;

pub use error::{Error, Result};
pub use fiemap::{
    blocks, fiemap, BlockExtent, FiemapExtent, FIEMAP_EXTENT_DATA_INLINE, FIEMAP_EXTENT_DATA_TAIL,
    FIEMAP_EXTENT_DELALLOC, FIEMAP_EXTENT_ENCODED, FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_MERGED,
    FIEMAP_EXTENT_NOT_ALIGNED, FIEMAP_EXTENT_SHARED, FIEMAP_EXTENT_UNKNOWN,
    FIEMAP_EXTENT_UNWRITTEN,
};
pub use scan::{file_system, map_file, scan, FileSystemInfo, LiveFile, Progress, Scan};
