//! Where image bytes come from: a file read with `pread`, or memory (tests, fuzzing).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Random-access, read-only bytes of an image. `Send + Sync` so one open filesystem can serve
/// many threads (a FUSE server's workers) without a lock around reads.
pub trait BlockSource: Send + Sync {
    /// Fills `buf` from byte `offset`; a read that would run past the end is an error
    /// (`UnexpectedEof`), never a short read.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Size of the image in bytes.
    fn len(&self) -> u64;
    /// Whether the image is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An image file, read with positional reads (no shared file cursor, so no lock).
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl BlockSource for FileSource {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// An image held in memory.
#[derive(Debug, Clone)]
pub struct MemSource(pub Vec<u8>);

impl BlockSource for MemSource {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let eof = || io::Error::from(io::ErrorKind::UnexpectedEof);
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.0.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}
