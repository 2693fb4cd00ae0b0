//! The model pack: every file's model for one image, in one checksummed file.
//!
//! Written by `training`, read by the server and reports (layout in the `codec` module). The
//! pack holds models, not extents: at load, the tier stack reads each file's extents from the
//! image, computes their [`fingerprint`](crate::fingerprint::fingerprint) and uses the model
//! only if the fingerprint and the inode generation match the pack's; otherwise that one file
//! falls back to the next tier. Rebuilding extents costs one extent-tree walk per file at load
//! and keeps the pack small and impossible to disagree with the image. The model is the learned
//! index's lines ([`crate::LearnedIndex::model`]: over the extents outside arithmetic runs),
//! which both learned structures (`learned` and `compact`) build on, whatever their storage.

mod codec;
mod error;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use codec::{MAGIC, VERSION};
pub use error::{FormatError, PackError};

use crate::model::Model;

/// Pack-wide facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackHeader {
    /// UUID of the image the models were trained on.
    pub uuid: [u8; 16],
    /// Its block size in bytes.
    pub block_size: u32,
    /// The `max_window` the models were fitted with.
    pub max_window: u32,
    /// When the pack was made, seconds since the Unix epoch.
    pub created: u64,
}

/// One file's model and what identifies the extent map it was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct PackEntry {
    /// Inode number.
    pub ino: u32,
    /// The inode's generation at training time.
    pub generation: u32,
    /// Fingerprint of the extent map at training time.
    pub fingerprint: u64,
    /// The learned index's lines over the map's line extents (its `extent_count` is how many
    /// there were at training time; none for maps of at most [`crate::index::learned::PLAIN_MAX`]
    /// extents, kept plain).
    pub model: Model,
}

/// A model pack in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    /// Pack-wide facts.
    pub header: PackHeader,
    /// Entries by inode number.
    pub entries: BTreeMap<u32, PackEntry>,
    /// Where the pack was read from (for error messages), if from a file.
    pub path: Option<PathBuf>,
}

impl Pack {
    /// An empty pack for an image, stamped with the current time.
    pub fn new(uuid: [u8; 16], block_size: u32, max_window: u32) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            header: PackHeader {
                uuid,
                block_size,
                max_window,
                created,
            },
            entries: BTreeMap::new(),
            path: None,
        }
    }

    /// Adds (or replaces) a file's entry.
    pub fn insert(&mut self, entry: PackEntry) {
        self.entries.insert(entry.ino, entry);
    }

    /// The entry of inode `ino`.
    pub fn get(&self, ino: u32) -> Option<&PackEntry> {
        self.entries.get(&ino)
    }

    /// The pack's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses a pack, checking magic, version, length and checksum before anything else, and
    /// every count against the bytes that remain before allocating for it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        codec::decode(bytes)
    }

    /// Writes the pack to `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), PackError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| PackError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads the pack at `path`.
    pub fn read_file(path: &Path) -> Result<Self, PackError> {
        let bytes = std::fs::read(path).map_err(|source| PackError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut pack = Self::from_bytes(&bytes).map_err(|source| PackError::Format {
            path: path.to_owned(),
            source,
        })?;
        pack.path = Some(path.to_owned());
        Ok(pack)
    }

    /// Checks that the pack was trained on the image with this UUID and block size.
    pub fn check_image(&self, uuid: [u8; 16], block_size: u32) -> Result<(), PackError> {
        let path = self.path.clone().unwrap_or_default();
        if self.header.uuid != uuid {
            return Err(PackError::WrongImage {
                path,
                pack: self.header.uuid,
                image: uuid,
            });
        }
        if self.header.block_size != block_size {
            return Err(PackError::WrongBlockSize {
                path,
                pack: self.header.block_size,
                image: block_size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
