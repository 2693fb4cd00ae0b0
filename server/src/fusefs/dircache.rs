//! Directory listings, read once per directory and kept: `ext4::Fs::lookup` scans the whole
//! directory, so without a cache a lookup in a directory of 10^4 entries would re-read it every
//! time. The image is read-only, so a listing never goes stale.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use ext4::{Fs, Inode};
use fuser::FileType;
use parking_lot::RwLock;

use super::attr::{entry_type, file_type};

/// One name of a directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name's bytes.
    pub name: Vec<u8>,
    /// The inode it points to.
    pub ino: u32,
    /// Its type: from the entry, or from the inode where the entry does not record it.
    pub kind: FileType,
}

impl Entry {
    /// The name as FUSE takes it.
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }
}

/// A directory's entries in on-disk order (`.` and `..` included), indexed by name.
#[derive(Debug)]
pub struct Listing {
    /// The entries, in the order readdir returns them.
    pub entries: Vec<Entry>,
    by_name: HashMap<Vec<u8>, usize>,
}

impl Listing {
    /// Reads directory `dir`.
    fn read(fs: &Fs, dir: &Inode) -> ext4::Result<Self> {
        let raw = fs.read_dir(dir)?;
        let mut entries = Vec::with_capacity(raw.len());
        let mut by_name = HashMap::with_capacity(raw.len());
        for d in raw {
            let kind = entry_type(d.file_type).or_else(|| {
                // No type byte (no `filetype` feature): the inode says; an unreadable inode
                // is listed as a file and fails when looked up.
                fs.inode(d.ino).ok().and_then(|i| file_type(i.kind))
            });
            // A corrupt directory can repeat a name; the first one wins, as in a linear scan.
            by_name.entry(d.name.clone()).or_insert(entries.len());
            entries.push(Entry {
                name: d.name,
                ino: d.ino,
                kind: kind.unwrap_or(FileType::RegularFile),
            });
        }
        Ok(Self { entries, by_name })
    }

    /// The entry called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }
}

/// Listings by directory inode. Readers share the lock; a miss reads the directory outside it
/// (two threads missing at once both read, and one result is kept).
#[derive(Debug, Default)]
pub struct DirCache {
    map: RwLock<HashMap<u32, Arc<Listing>>>,
}

impl DirCache {
    /// The listing of directory `dir`.
    pub fn get(&self, fs: &Fs, dir: &Inode) -> ext4::Result<Arc<Listing>> {
        if let Some(l) = self.map.read().get(&dir.ino) {
            return Ok(l.clone());
        }
        let listing = Arc::new(Listing::read(fs, dir)?);
        Ok(self.map.write().entry(dir.ino).or_insert(listing).clone())
    }
}
