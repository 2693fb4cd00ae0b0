//! File data: reads and `SEEK_DATA` / `SEEK_HOLE`, with every block mapping asked of the tier
//! stack, one query per contiguous run (the mapping covers up to the end of its extent or
//! hole), and the bytes read from the image with positional reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use ext4::{Fs, Inode};
use predictor::{MappingType, Query, QueryError};

use crate::stats::{Counter, Stats};

/// Why file data could not be read. Every variant names the inode and the file offset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The tier stack could not map the position (a corrupt extent tree, say).
    #[error("inode {ino}, file byte {pos}")]
    Query {
        /// Inode.
        ino: u32,
        /// File byte offset.
        pos: u64,
        /// The stack's error.
        source: QueryError,
    },
    /// Reading the image at the mapped address failed (for instance past the image's end).
    #[error("inode {ino}, file byte {pos}: reading {len} bytes at image byte {addr}")]
    Image {
        /// Inode.
        ino: u32,
        /// File byte offset.
        pos: u64,
        /// Image byte offset.
        addr: u64,
        /// Bytes asked for.
        len: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The ext4 reader failed on a file the stack does not map (inline data, or a file its
    /// walk did not reach).
    #[error("inode {ino}, file byte {pos}")]
    Direct {
        /// Inode.
        ino: u32,
        /// File byte offset.
        pos: u64,
        /// The reader's error.
        source: ext4::Error,
    },
    /// The stack returned an empty mapping (never expected; refused rather than looping).
    #[error("inode {ino}, file byte {pos}: empty mapping")]
    Empty {
        /// Inode.
        ino: u32,
        /// File byte offset.
        pos: u64,
    },
}

/// What `lseek` answered.
#[derive(Debug)]
pub enum Seek {
    /// The offset found.
    Offset(u64),
    /// No data (SEEK_DATA) or the offset is at or past EOF: `ENXIO`.
    Nxio,
}

/// The read path of a mounted image.
#[derive(Debug)]
pub struct Data {
    fs: Arc<Fs>,
    stats: Arc<Stats>,
    image: File,
}

impl Data {
    /// Reads file data of `fs` through the stack of `stats`, from `image` (the same file).
    pub fn new(fs: Arc<Fs>, stats: Arc<Stats>, image: File) -> Self {
        Self { fs, stats, image }
    }

    /// Whether the stack maps this file's blocks (else the ext4 reader reads it directly).
    fn mapped_by_stack(&self, inode: &Inode) -> bool {
        !inode.has_inline_data() && self.stats.stack().inode(inode.ino).is_some()
    }

    /// Up to `size` bytes of `inode` from `offset` (short at EOF, empty past it).
    pub fn read(&self, inode: &Inode, offset: u64, size: u32) -> Result<Vec<u8>, DataError> {
        let ino = inode.ino;
        let end = offset.saturating_add(u64::from(size)).min(inode.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        // end - offset <= size, a u32.
        let mut buf = vec![0u8; (end - offset) as usize];
        if !self.mapped_by_stack(inode) {
            self.stats.add(Counter::DirectReads, 1);
            let direct = |source| DataError::Direct {
                ino,
                pos: offset,
                source,
            };
            let extents = self.fs.extents(inode).map_err(direct)?;
            let n = self
                .fs
                .read_at(inode, &extents, offset, &mut buf)
                .map_err(direct)?;
            buf.truncate(n);
            return Ok(buf);
        }
        let mut pos = offset;
        let mut zeros = 0u64;
        while pos < end {
            let (m, _) = self
                .stats
                .query(Query::read(ino, pos, end - pos))
                .map_err(|source| DataError::Query { ino, pos, source })?;
            let len = m.length.min(end - pos);
            if len == 0 {
                return Err(DataError::Empty { ino, pos });
            }
            // pos - offset and len are within buf (pos < end, len <= end - pos).
            let at = (pos - offset) as usize;
            let dst = &mut buf[at..at + len as usize];
            match (m.kind, m.addr) {
                (MappingType::Mapped, Some(addr)) => {
                    self.image
                        .read_exact_at(dst, addr)
                        .map_err(|source| DataError::Image {
                            ino,
                            pos,
                            addr,
                            len: dst.len(),
                            source,
                        })?;
                }
                // Holes and unwritten extents read as zeros (the buffer already is).
                _ => zeros += len,
            }
            pos += len;
        }
        self.stats.add(Counter::ZeroBytes, zeros);
        Ok(buf)
    }

    /// `lseek(SEEK_DATA)` (`data == true`) or `lseek(SEEK_HOLE)` from `offset`.
    ///
    /// Unwritten extents count as holes, as ext4 reports them when their pages are not cached
    /// (`iomap_seek_data` only looks into the page cache for them, and a read-only mount never
    /// dirties it).
    pub fn seek(&self, inode: &Inode, offset: u64, data: bool) -> Result<Seek, DataError> {
        let size = inode.size;
        if offset >= size {
            return Ok(Seek::Nxio);
        }
        if !self.mapped_by_stack(inode) {
            // Inline data (or an unmapped file): all data, no hole before EOF.
            return Ok(Seek::Offset(if data { offset } else { size }));
        }
        let ino = inode.ino;
        let mut pos = offset;
        while pos < size {
            let (m, _) = self
                .stats
                // The kernel's iomap_seek_data/hole ask with IOMAP_REPORT, bounded by i_size.
                .query(Query::report(ino, pos, size - pos))
                .map_err(|source| DataError::Query { ino, pos, source })?;
            if m.length == 0 {
                return Err(DataError::Empty { ino, pos });
            }
            if (m.kind == MappingType::Mapped) == data {
                return Ok(Seek::Offset(pos));
            }
            pos = pos.saturating_add(m.length);
        }
        // No data after offset: ENXIO; no hole: the implicit one at EOF.
        Ok(if data { Seek::Nxio } else { Seek::Offset(size) })
    }
}
