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
    #[error("inode {ino}, block {lblk}: on-disk lookup: {source}")]
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

/// An error and its causes as one line, `outer: inner: ...`, skipping a cause whose message the
/// previous one already contains (our error types embed their source in their message, and
/// also expose it as `source()`, so a plain chain would print it twice). The binaries print
/// their errors with it.
pub fn chain_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}
