//! Errors of a live scan. Each names the path it is about; the OS error is the source.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening, `fstat`, `fstatvfs` or reading a directory failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file system does not answer FIEMAP (tmpfs, procfs, network file systems, ...).
    #[error("{path} is on a file system without FIEMAP (type {fs_type}): its extent maps cannot be read")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// `statfs` type magic, as `0x...`, with its name where known.
        fs_type: String,
        /// The ioctl's error.
        #[source]
        source: std::io::Error,
    },
    /// The ioctl failed for another reason.
    #[error("FIEMAP on {path}")]
    Fiemap {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The map the kernel answered cannot be used as a block map: an extent not aligned to
    /// blocks, with no known location (delayed allocation), encoded, out of order, or past the
    /// 32-bit block numbers of an extent map.
    #[error("{path}: {reason}")]
    Map {
        /// The path.
        path: PathBuf,
        /// What is wrong, with the extent.
        reason: String,
    },
    /// The path is neither a regular file nor a directory.
    #[error("{path} is not a regular file or a directory")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
}

impl Error {
    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Io { path, .. }
            | Self::Unsupported { path, .. }
            | Self::Fiemap { path, .. }
            | Self::Map { path, .. }
            | Self::NotAFile { path } => path,
        }
    }

    /// `Io` error builder for `map_err`.
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }
}
