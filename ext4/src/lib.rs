//! A read-only ext2/ext3/ext4 image reader written for hostile input.
//!
//! Every on-disk value is checked where it enters the program: a corrupt image gives an
//! [`Error`] that names the inode (or group) and what is wrong, never a panic, an unbounded loop
//! or an allocation that the image size does not justify. Nothing here writes.
//!
//! Data flows one way: [`BlockSource`] (bytes) -> [`Superblock`] and group descriptors ->
//! [`Inode`] -> extent map ([`Extent`]s, from the extent tree or converted from indirect blocks)
//! -> file contents, directory entries, symlink targets.
//!
//! ```no_run
//! # fn main() -> Result<(), ext4::Error> {
//! let fs = ext4::Fs::open_path("disk.img")?;
//! let inode = fs.lookup_path("/big")?;
//! for e in fs.extents(&inode)? {
//!     println!("{} -> {} ({} blocks)", e.lblk, e.pblk, e.len);
//! }
//! # Ok(()) }
//! ```

mod checksum;
mod dir;
mod error;
mod extent;
mod features;
mod fs;
mod indirect;
mod inode;
mod le;
mod source;
mod superblock;
mod xattr;

pub use dir::{DirEntry, FileType};
pub use error::{CorruptKind, Error, GroupDescKind, Result, SuperblockKind};
pub use extent::{BlockMap, Extent, MAX_EXTENT_DEPTH, MAX_LBLK};
pub use features::{CompatFeatures, IncompatFeatures, RoCompatFeatures};
pub use fs::{Fs, WalkEntry, ROOT_INO};
pub use inode::{Inode, InodeKind};
pub use source::{BlockSource, FileSource, MemSource};
pub use superblock::Superblock;
