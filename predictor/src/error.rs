//! Errors of queries and of building a tier stack. Pack-format errors live in
//! [`crate::pack::PackError`], model-validation errors in [`crate::model::ModelError`].

/// Why a query got no mapping. Each variant names the inode; none of them is a wrong mapping.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// `count` was 0.
    #[error("inode {ino}: zero-length query at byte {pos}")]
    ZeroCount {
        /// Inode asked about.
        ino: u32,
        /// Byte offset asked about.
        pos: u64,
    },
    /// `pos` is at or after the end of the file.
    #[error("inode {ino}: byte {pos} is at or past end of file ({size} bytes)")]
    PastEof {
        /// Inode asked about.
        ino: u32,
        /// Byte offset asked about.
        pos: u64,
        /// File size in bytes.
        size: u64,
    },
    /// `pos` is inside the file but its block number does not fit ext4's 32 bits (only a
    /// corrupt inode claims such a size).
    #[error("inode {ino}: byte {pos} is beyond logical block 2^32-1")]
    BlockOutOfRange {
        /// Inode asked about.
        ino: u32,
        /// Byte offset asked about.
        pos: u64,
    },
    /// The inode is not a regular file loaded by the stack.
    #[error("inode {ino}: not a regular file known to this tier stack")]
    UnknownInode {
        /// Inode asked about.
        ino: u32,
    },
    /// The file keeps its data inside the inode (`inline_data`): it has no blocks, so no
    /// block tier can map it (iomap would call this `IOMAP_INLINE`); read it through the inode.
    #[error("inode {ino}: data is inline in the inode, not in blocks")]
    InlineData {
        /// Inode asked about.
        ino: u32,
    },
    /// The file's extent map could not be loaded when the stack was built.
    #[error("inode {ino}: extent map unavailable: {reason}")]
    Unavailable {
        /// Inode asked about.
        ino: u32,
        /// The load error, as text (the original error was reported by the build).
        reason: String,
    },
    /// A block lookup produced an answer that does not cover the block (only a corrupt image's
    /// on-disk walk can do this; the in-memory tiers are built to never do it).
    #[error("inode {ino}, block {lblk}: inconsistent block map: {what}")]
    Inconsistent {
        /// Inode asked about.
        ino: u32,
        /// Logical block looked up.
        lblk: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// The on-disk walk failed.
    #[error("inode {ino}, block {lblk}: on-disk lookup")]
    Ondisk {
        /// Inode asked about.
        ino: u32,
        /// Logical block looked up.
        lblk: u32,
        /// The reader's error.
        source: ext4::Error,
    },
}

/// Why a tier stack could not be built. Per-file problems (a corrupt extent tree, a stale model)
/// do not fail the build; they are listed in [`crate::stack::BuildReport`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The model pack does not belong to this image.
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
}

/// An error and its sources as one line, `outer: cause: ...`, as anyhow's `{:#}` prints
/// them: for code that keeps or logs an error as text (reports, per-file problems, logs).
/// No message in the workspace repeats its source's text, so each part appears once.
///
/// ```
/// let e = std::io::Error::other("disk on fire");
/// let q = predictor::QueryError::Ondisk {
///     ino: 12,
///     lblk: 3,
///     source: ext4::Error::Io { offset: 4096, len: 1024, source: e },
/// };
/// assert_eq!(
///     predictor::error::Chain(&q).to_string(),
///     "inode 12, block 3: on-disk lookup: reading 1024 bytes at byte 4096 of the image: \
///      disk on fire"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}
