//! Builds ext4 test images with `mke2fs` and `debugfs`, and reads answers back from oracles we
//! did not write: `debugfs` ([`oracle`]) and the kernel's ext4 driver ([`kernel`]).
//!
//! Every image has one name, a [`Recipe`]: a debugfs-built [`Kind`], a map the kernel's
//! allocator makes ([`kernel::Allocated`]) or a kernel-punched file. Used by tests, benches and
//! `reports demo`, never by hand. Images are sparse files in a directory the caller names
//! ([`Recipe::build`], [`build_many`]) or in a per-process temporary directory ([`standard`];
//! under `/dev/shm` when it has room), removed when the process exits (set `IMAGEKIT_KEEP=1` to
//! keep it, the debugfs scripts and the source files; `IMAGEKIT_DIR` picks its parent
//! directory). Contents are seeded random bytes: the same recipe gives the same files on every
//! machine (the file system UUIDs differ; the kernel's allocator may place blocks differently).
//!
//! ```no_run
//! # fn main() -> Result<(), imagekit::Error> {
//! for image in imagekit::standard()? {
//!     for path in &image.files {
//!         let extents = imagekit::oracle::extents(&image.path, path)?;
//!         println!("{} {path}: {} extents", image.name, extents.len());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Needs e2fsprogs (`mke2fs`, `debugfs`, `e2fsck`); [`kernel`] needs root, loop devices and
//! util-linux `mount`; [`fuse::FuseMount`] runs a FUSE server until dropped.

#![warn(missing_docs)]

mod builder;
mod cmd;
mod error;
mod kinds;
mod recipe;
mod rng;

pub mod corpus;
pub mod fuse;
pub mod kernel;
pub mod oracle;
mod skip;
mod sqlite;
pub mod workloads;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use builder::MAX_LBLK;
pub use cmd::tool;
pub use error::{Error, Result};
pub use oracle::{FileKind, OracleExtent};
pub use recipe::{build_many, count_label, Recipe, DEMO_SEED};
pub use rng::Rng;
pub use skip::{root_or_skip, skip, REQUIRE_ALL};

/// One kind of image mke2fs and debugfs build ([`Recipe::Debugfs`]); [`Recipe::STANDARD`] and
/// [`Recipe::DEMO`] list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `ext4-4k`: 4 KiB blocks, journal, metadata_csum, 64bit, flex_bg; the common tree
    /// (sizes around limits, nested dirs, fast/slow symlinks, hard link, FIFO, a 500-entry
    /// htree) and the standard files: depth 0, 1, 2 extent trees, unwritten, mixed, blocks at
    /// 2^32 - 2 (written and unwritten), empty.
    Ext4k,
    /// `ext4-1k`: the same on 1 KiB blocks without a journal, plus `/depth3` (64 Ki blocks,
    /// every other one punched: 32768 extents, depth 3).
    Ext1k,
    /// `frag-1k`: 1 KiB blocks, `/frag-100k` with about 10^5 irregular extents (depth 3).
    Frag1k,
    /// `frag-4k`: 4 KiB blocks, `/frag-10k` (10^4 irregular extents, depth 2),
    /// `/random-ranges` (random overlapping punches), `/refill` (written into the holes).
    Frag4k,
    /// `bigalloc-4k`: 4 KiB blocks, 16 KiB clusters; common tree and standard files.
    Bigalloc,
    /// `no64bit-4k`: without the 64bit feature (32-byte group descriptors).
    No64bit,
    /// `noflexbg-1k`: without flex_bg, 32 inodes per group so the tree spans many groups.
    NoFlexBg,
    /// `metabg-1k`: meta_bg without resize_inode, 16 inodes per group (inodes in several meta
    /// groups).
    MetaBg,
    /// `inline-4k`: inline_data: small files and directories stored in the inode.
    Inline,
    /// `htree-nocsum-4k`: metadata_csum off; `/big-dir` with 10^4 entries (htree).
    HtreeNoCsum,
    /// `ext3-1k`: ext3 layout (no extents): direct, indirect, double and triple indirect
    /// blocks, including the last block a block map can address.
    Ext3_1k,
    /// `ext3-4k`: ext3 layout on 4 KiB blocks.
    Ext3_4k,
    /// `ext4-64k`: 64 KiB blocks (mke2fs allows it; the kernel mounts it only with 64 KiB
    /// pages, see [`Image::kernel_mountable`]).
    Ext4_64k,
    /// `demo-tree-4k`: 2000 ordinary files in 40 directories.
    DemoTree,
    /// `demo-punched-4k`: `/punched-100k`, about 10^5 irregular extents on 4 KiB blocks.
    DemoPunched,
    /// `demo-unwritten-4k`: `/fallocated` (10^4 unwritten extents), `/mixed-big`.
    DemoUnwritten,
    /// `demo-depth3-1k`: 1 KiB blocks, `/depth3` with 4*10^4 irregular extents.
    DemoDepth3,
}

impl Kind {
    /// Short id used in file names and test output.
    #[must_use]
    pub fn name(self) -> &'static str {
        kinds::KindSpec::of(self).name
    }

    /// One line on what the image covers.
    #[must_use]
    pub fn description(self) -> &'static str {
        kinds::KindSpec::of(self).description
    }

    /// The seed of this kind's random contents.
    #[must_use]
    pub fn seed(self) -> u64 {
        // FNV-1a of the name: stable across builds, different per kind.
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// How a file's data is mapped, as a [`FileSpec`] promises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// An extent tree (`EXT4_EXTENTS_FL`).
    Extents,
    /// Direct and indirect block pointers (ext2/ext3).
    BlockMap,
    /// Data in the inode (`EXT4_INLINE_DATA_FL`).
    Inline,
    /// A symlink whose target sits in `i_block` (under 60 bytes).
    FastSymlink,
    /// A directory whose mapping is not promised.
    Dir,
}

/// What an interesting file of an image promises; tests check these against the oracles.
/// `None` means "not promised".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path inside the image.
    pub path: String,
    /// Inode type.
    pub kind: FileKind,
    /// How the data is mapped.
    pub layout: Layout,
    /// Number of extents [`oracle::extents`] reports (for block maps: contiguous runs).
    pub extents: Option<RangeInclusive<usize>>,
    /// Extent tree depth.
    pub depth: Option<u16>,
    /// `Some(true)`: at least one unwritten extent; `Some(false)`: none.
    pub unwritten: Option<bool>,
    /// The last mapped logical block.
    pub last_lblk: Option<u32>,
    /// `i_size`.
    pub size: Option<u64>,
    /// What the file is there to cover.
    pub note: String,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Short id, e.g. `ext4-1k` (see [`Recipe::name`]).
    pub name: String,
    /// The recipe.
    pub recipe: Recipe,
    /// The image file (sparse).
    pub path: PathBuf,
    /// File-system block size in bytes.
    pub block_size: u32,
    /// Paths of the interesting files inside the image (those of `specs`), e.g. `/depth3`.
    /// [`oracle::list_files`] lists everything.
    pub files: Vec<String>,
    /// What each interesting file promises (none for the kernel's images).
    pub specs: Vec<FileSpec>,
    /// One line on what the image covers.
    pub description: String,
    /// The mke2fs command line that made it.
    pub mkfs_command: String,
    /// Whether this kernel can mount it (block size at most the page size).
    pub kernel_mountable: bool,
    /// How long building it took.
    pub build_time: Duration,
}

impl Image {
    /// The spec of `path`, if it is an interesting file.
    #[must_use]
    pub fn spec(&self, path: &str) -> Option<&FileSpec> {
        self.specs.iter().find(|s| s.path == path)
    }
}

struct Standard {
    dir: PathBuf,
    images: Vec<Image>,
    elapsed: Duration,
}

static STANDARD: OnceLock<Result<Standard, Arc<Error>>> = OnceLock::new();
static STANDARD_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_standard_dir() {
    if let Some(dir) = STANDARD_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Free bytes of the file system holding `dir`, if it can be asked.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::useless_conversion)]
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    (rc == 0).then(|| avail.saturating_mul(frsize))
}

/// `/dev/shm` when it is writable and has 8 GiB free, else `None`. tmpfs makes building about
/// twice as fast and much steadier: mke2fs, debugfs and tune2fs fsync the image, and source
/// files need never reach a disk.
pub(crate) fn shm_dir() -> Option<&'static Path> {
    let shm = Path::new("/dev/shm");
    let writable = {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(shm.as_os_str().as_bytes()).is_ok_and(|c| {
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
        })
    };
    (writable && free_bytes(shm).is_some_and(|free| free >= 8 << 30)).then_some(shm)
}

/// Where the standard images go: `IMAGEKIT_DIR` if set; else [`shm_dir`] (the images take
/// about 700 MiB of memory while the process runs); else the temporary directory.
fn standard_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGEKIT_DIR") {
        return PathBuf::from(dir);
    }
    shm_dir().map_or_else(std::env::temp_dir, Path::to_owned)
}

fn build_standard() -> Result<Standard> {
    let parent = standard_parent();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = parent.join(format!("imagekit-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(error::io_err("creating", &dir))?;
    if std::env::var_os("IMAGEKIT_KEEP").is_some() {
        tracing::info!(dir = %dir.display(), "keeping the standard images (IMAGEKIT_KEEP)");
    } else if STANDARD_DIR.set(dir.clone()).is_ok() {
        // SAFETY: registering a plain `extern "C" fn()` with atexit has no preconditions; the
        // handler only reads a OnceLock and removes a directory.
        unsafe {
            libc::atexit(remove_standard_dir);
        }
    }
    let start = Instant::now();
    let images = build_many(Recipe::STANDARD, &dir)?;
    let elapsed = start.elapsed();
    tracing::info!(ms = elapsed.as_millis() as u64, dir = %dir.display(), "standard images built");
    Ok(Standard {
        dir,
        images,
        elapsed,
    })
}

/// Builds every [`Recipe::STANDARD`] image once per process (tests in one binary share them)
/// into a temporary directory that is removed when the process exits. A failure is remembered
/// and returned to every caller as [`Error::Standard`].
pub fn standard() -> Result<&'static [Image]> {
    match STANDARD.get_or_init(|| build_standard().map_err(Arc::new)) {
        Ok(s) => Ok(&s.images),
        Err(e) => Err(Error::Standard(Arc::clone(e))),
    }
}

/// The directory of the standard images and how long building them took, once built.
#[must_use]
pub fn standard_info() -> Option<(&'static Path, Duration)> {
    match STANDARD.get() {
        Some(Ok(s)) => Some((&s.dir, s.elapsed)),
        _ => None,
    }
}
