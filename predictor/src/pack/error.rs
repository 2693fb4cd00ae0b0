//! Errors of reading a model pack.

use std::io;
use std::path::PathBuf;

/// What is wrong with a pack's bytes. Offsets are byte offsets in the pack file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file is shorter than its header (or than the header says it is).
    #[error("truncated: {len} bytes, expected {need}")]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The file does not start with the pack magic: not a model pack.
    #[error("not a model pack (bad magic)")]
    BadMagic,
    /// The pack was written by a newer format version than this reader knows.
    #[error("format version {found} is newer than supported version {supported}")]
    NewerVersion {
        /// Version in the file.
        found: u32,
        /// Newest version this reader understands.
        supported: u32,
    },
    /// The pack was written by an older format version, whose models this reader no longer
    /// uses (before version 3 a file had two models; retrain to get the one).
    #[error("format version {found} is older than version {supported}: retrain the pack")]
    OlderVersion {
        /// Version in the file.
        found: u32,
        /// The version this reader understands.
        supported: u32,
    },
    /// The checksum over the file does not match: the bytes changed after writing.
    #[error("checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    Checksum {
        /// Checksum in the trailer.
        stored: u64,
        /// Checksum of the bytes.
        computed: u64,
    },
    /// The bytes pass the checksum but do not describe a valid pack (a buggy or hostile writer).
    #[error("corrupt at byte {offset}{}: {what}", ino.map(|i| format!(" (inode {i})")).unwrap_or_default())]
    Corrupt {
        /// Byte offset of the offending field.
        offset: u64,
        /// The entry's inode, when inside an entry.
        ino: Option<u32>,
        /// What is wrong.
        what: String,
    },
}

/// Why a model pack could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The file could not be read or written.
    #[error("model pack {path}")]
    Io {
        /// The pack file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file's bytes are not a valid pack.
    #[error("model pack {path}")]
    Format {
        /// The pack file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// The pack was trained on another image.
    #[error("model pack {path}: trained on image {pack}, this image is {image}", pack = hex(pack), image = hex(image))]
    WrongImage {
        /// The pack file (empty if the pack never was one).
        path: PathBuf,
        /// UUID in the pack.
        pack: [u8; 16],
        /// UUID of the image.
        image: [u8; 16],
    },
    /// The pack was trained for another block size.
    #[error(
        "model pack {path}: trained for {pack}-byte blocks, the image has {image}-byte blocks"
    )]
    WrongBlockSize {
        /// The pack file.
        path: PathBuf,
        /// Block size in the pack.
        pack: u32,
        /// Block size of the image.
        image: u32,
    },
}

fn hex(b: &[u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
