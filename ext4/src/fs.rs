//! An open filesystem: the entry point of the crate.

use std::collections::HashSet;
use std::path::Path;

use crate::dir::{self, DirEntry, FileType};
use crate::error::{CorruptKind, Error, GroupDescKind, Result};
use crate::extent::{self, BlockMap, Extent};
use crate::features::IncompatFeatures;
use crate::indirect;
use crate::inode::{Inode, InodeKind, I_BLOCK_SIZE};
use crate::source::{BlockSource, FileSource};
use crate::superblock::{
    GroupDesc, Superblock, BG_INODE_UNINIT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use crate::xattr;

/// Root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// Longest symlink target Linux allows (`PATH_MAX` - 1).
const MAX_SYMLINK_LEN: u64 = 4095;

/// A read-only ext2/3/4 filesystem over a [`BlockSource`]. `Send + Sync`: every method takes
/// `&self` and reads with positional reads, so threads share one `Fs` without a lock.
pub struct Fs {
    src: Box<dyn BlockSource>,
    sb: Superblock,
    /// One entry per group; a bad descriptor only fails reads of that group's inodes.
    groups: Vec<Result<GroupDesc, GroupDescKind>>,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("sb", &self.sb)
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// One object found by [`Fs::walk`].
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Absolute path, `/`-separated; invalid UTF-8 in names is replaced.
    pub path: String,
    /// Its inode.
    pub inode: Inode,
}

impl Fs {
    /// Opens the image file at `path`.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let src = FileSource::open(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::open(src)
    }

    /// Opens a filesystem from any source of bytes: reads and checks the superblock and
    /// the group descriptors.
    pub fn open(src: impl BlockSource + 'static) -> Result<Self> {
        let src: Box<dyn BlockSource> = Box::new(src);
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        read_exact(src.as_ref(), SUPERBLOCK_OFFSET, &mut raw)?;
        let sb = Superblock::from_bytes(&raw, src.len())?;
        let mut fs = Fs {
            src,
            sb,
            groups: Vec::new(),
        };
        fs.groups = fs.read_group_descs()?;
        Ok(fs)
    }

    fn read_group_descs(&self) -> Result<Vec<Result<GroupDesc, GroupDescKind>>> {
        let sb = &self.sb;
        let count = sb.group_count();
        let ds = usize::from(sb.desc_size);
        let mut out = Vec::with_capacity(count as usize);
        let mut cached: Option<(u64, Vec<u8>)> = None;
        for g in 0..count {
            let (block, off) = sb.desc_location(g);
            if cached.as_ref().map(|c| c.0) != Some(block) {
                cached = Some((block, self.read_block(block)?));
            }
            let Some((_, buf)) = cached.as_ref() else {
                continue;
            };
            let desc = buf
                .get(off..off + ds)
                .ok_or(GroupDescKind::OutsideBlock)
                .and_then(|b| GroupDesc::from_bytes(b, sb));
            out.push(desc);
        }
        Ok(out)
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.sb.block_size
    }

    /// Reads filesystem block `block`.
    pub fn read_block(&self, block: u64) -> Result<Vec<u8>> {
        let bs = self.sb.block_size as usize;
        let mut buf = vec![0u8; bs];
        self.read_block_into(block, &mut buf)?;
        Ok(buf)
    }

    /// Reads filesystem block `block` into `buf` (of at most one block).
    pub fn read_block_into(&self, block: u64, buf: &mut [u8]) -> Result<()> {
        let offset = block
            .checked_mul(u64::from(self.sb.block_size))
            .ok_or_else(|| Error::Io {
                offset: u64::MAX,
                len: buf.len(),
                source: std::io::ErrorKind::InvalidInput.into(),
            })?;
        read_exact(self.src.as_ref(), offset, buf)
    }

    fn group(&self, g: u32) -> Result<&GroupDesc> {
        match self.groups.get(g as usize) {
            Some(Ok(d)) => Ok(d),
            Some(Err(kind)) => Err(Error::Group {
                group: g,
                kind: kind.clone(),
            }),
            None => Err(Error::NoSuchGroup { group: g }),
        }
    }

    /// Reads and decodes inode `ino` (checksum verified under `metadata_csum`).
    pub fn inode(&self, ino: u32) -> Result<Inode> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::NoSuchInode {
                ino,
                count: self.sb.inodes_count,
            });
        }
        let ipg = self.sb.inodes_per_group;
        let desc = self.group((ino - 1) / ipg)?;
        let index = u64::from((ino - 1) % ipg);
        let size = usize::from(self.sb.inode_size);
        let offset = desc.inode_table * u64::from(self.sb.block_size) + index * size as u64;
        let mut raw = vec![0u8; size];
        read_exact(self.src.as_ref(), offset, &mut raw)?;
        Inode::from_bytes(&raw, ino, &self.sb)
    }

    /// The extent map of an inode: from its extent tree, or converted from its indirect block
    /// map. Empty for inline data, fast symlinks and device/fifo/socket inodes.
    pub fn extents(&self, inode: &Inode) -> Result<Vec<Extent>> {
        if !self.has_block_map(inode) {
            return Ok(Vec::new());
        }
        if inode.uses_extents() {
            extent::extents(self, inode)
        } else {
            indirect::extents(self, inode)
        }
    }

    /// What logical block `lblk` maps to, walking the on-disk tree: O(depth) block reads for
    /// extent-mapped inodes (block-mapped inodes convert their whole map).
    pub fn map_block(&self, inode: &Inode, lblk: u32) -> Result<BlockMap> {
        if !self.has_block_map(inode) {
            return Ok(BlockMap::Hole { next: None });
        }
        if inode.uses_extents() {
            return extent::map_block(self, inode, lblk);
        }
        let extents = indirect::extents(self, inode)?;
        let i = extents.partition_point(|e| e.lblk <= lblk);
        match i.checked_sub(1).map(|p| extents[p]) {
            Some(e) if e.contains(lblk) => Ok(BlockMap::Mapped(e)),
            _ => Ok(BlockMap::Hole {
                next: extents.get(i).map(|e| e.lblk),
            }),
        }
    }

    /// Depth of an extent-mapped inode's tree (0: the root in the inode is a leaf); `None` for
    /// inodes without an extent tree.
    pub fn extent_depth(&self, inode: &Inode) -> Result<Option<u16>> {
        if self.has_block_map(inode) && inode.uses_extents() {
            extent::depth(self, inode).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The extents of an extent-mapped inode grouped by the leaf node that holds them (for
    /// tools that print the tree the way `debugfs` does); `None` without an extent tree.
    pub fn extent_leaves(&self, inode: &Inode) -> Result<Option<Vec<Vec<Extent>>>> {
        if self.has_block_map(inode) && inode.uses_extents() {
            extent::leaves(self, inode).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether the inode's data is addressed by blocks (not inline, not a fast symlink, and a
    /// kind that has data).
    fn has_block_map(&self, inode: &Inode) -> bool {
        matches!(
            inode.kind,
            InodeKind::File | InodeKind::Dir | InodeKind::Symlink
        ) && !inode.has_inline_data()
            && !inode.is_fast_symlink(&self.sb)
    }

    /// The bytes of an inline-data inode: the first 60 in `i_block`, the rest in the
    /// `system.data` extended attribute.
    pub fn inline_data(&self, inode: &Inode) -> Result<Vec<u8>> {
        let bad = |kind| Error::corrupt(inode.ino, kind);
        let extra = xattr::find_system(&inode.xattr_area, b"data")
            .map_err(bad)?
            .unwrap_or(&[]);
        let avail = (I_BLOCK_SIZE + extra.len()) as u64;
        if inode.size > avail {
            return Err(bad(CorruptKind::InlineDataSize {
                size: inode.size,
                avail,
            }));
        }
        let mut data = Vec::with_capacity(inode.size as usize);
        data.extend_from_slice(&inode.i_block);
        data.extend_from_slice(extra);
        data.truncate(inode.size as usize);
        Ok(data)
    }

    /// Reads file bytes from `offset` into `buf` using a precomputed extent map; returns the
    /// bytes read (short at EOF). Holes and unwritten extents read as zeros.
    pub fn read_at(
        &self,
        inode: &Inode,
        extents: &[Extent],
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        if offset >= inode.size {
            return Ok(0);
        }
        let n = (inode.size - offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        if inode.has_inline_data() {
            let data = self.inline_data(inode)?;
            buf.copy_from_slice(&data[offset as usize..offset as usize + n]);
            return Ok(n);
        }
        let bs = u64::from(self.sb.block_size);
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let lblk = pos / bs;
            let in_block = pos % bs;
            let i = extents.partition_point(|e| u64::from(e.lblk) <= lblk);
            let ext = i
                .checked_sub(1)
                .map(|p| extents[p])
                .filter(|e| e.end() > lblk);
            // Bytes until the end of this extent, or of the hole before the next one.
            let run_end = match ext {
                Some(e) => e.end() * bs,
                None => extents.get(i).map_or(u64::MAX, |e| u64::from(e.lblk) * bs),
            };
            let len = (run_end - pos).min((n - done) as u64) as usize;
            let dst = &mut buf[done..done + len];
            match ext {
                Some(e) if !e.unwritten => {
                    let phys = (e.pblk + (lblk - u64::from(e.lblk))) * bs + in_block;
                    read_exact(self.src.as_ref(), phys, dst)?;
                }
                _ => dst.fill(0),
            }
            done += len;
        }
        Ok(n)
    }

    /// The whole contents of a file (for tests and tools; the size must fit in memory).
    pub fn read_file(&self, inode: &Inode) -> Result<Vec<u8>> {
        let len = usize::try_from(inode.size)
            .ok()
            .filter(|&l| (l as u64) <= self.src.len().saturating_mul(4).max(1 << 20))
            .ok_or_else(|| Error::corrupt(inode.ino, CorruptKind::TooLarge { size: inode.size }))?;
        let extents = self.extents(inode)?;
        let mut buf = vec![0u8; len];
        let n = self.read_at(inode, &extents, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The entries of a directory, `.` and `..` included.
    pub fn read_dir(&self, inode: &Inode) -> Result<Vec<DirEntry>> {
        if inode.kind != InodeKind::Dir {
            return Err(Error::NotADirectory { ino: inode.ino });
        }
        let ft = self
            .sb
            .feature_incompat
            .contains(IncompatFeatures::FILETYPE);
        let bad = |kind| Error::corrupt(inode.ino, kind);
        let mut out = Vec::new();
        if inode.has_inline_data() {
            // i_block holds the parent's inode number, then entries; system.data continues them.
            let data = self.inline_data(inode)?;
            let parent = crate::le::u32_at(&data, 0);
            out.push(DirEntry {
                ino: inode.ino,
                name: b".".to_vec(),
                file_type: FileType::Dir,
            });
            out.push(DirEntry {
                ino: parent,
                name: b"..".to_vec(),
                file_type: FileType::Dir,
            });
            let first = data.get(4..I_BLOCK_SIZE.min(data.len())).unwrap_or(&[]);
            dir::parse_block(first, 0, ft, &mut out).map_err(bad)?;
            if let Some(rest) = data.get(I_BLOCK_SIZE..) {
                dir::parse_block(rest, 1, ft, &mut out).map_err(bad)?;
            }
            return Ok(out);
        }
        let bs = u64::from(self.sb.block_size);
        let blocks = inode.size.div_ceil(bs);
        for e in self.extents(inode)? {
            for lblk in u64::from(e.lblk)..e.end().min(blocks) {
                if e.unwritten {
                    continue;
                }
                let block = self.read_block(e.pblk + (lblk - u64::from(e.lblk)))?;
                dir::parse_block(&block, lblk, ft, &mut out).map_err(bad)?;
            }
        }
        Ok(out)
    }

    /// The inode a name in directory `dir` points to.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<u32>> {
        Ok(self
            .read_dir(dir)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.ino))
    }

    /// Resolves an absolute path (symlinks are not followed, like `lstat`).
    pub fn lookup_path(&self, path: &str) -> Result<Inode> {
        let mut cur = self.inode(ROOT_INO)?;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            let ino = self
                .lookup(&cur, name.as_bytes())?
                .ok_or_else(|| Error::NoSuchEntry {
                    path: path.to_owned(),
                    name: name.to_owned(),
                })?;
            cur = self.inode(ino)?;
        }
        Ok(cur)
    }

    /// The target of a symlink.
    pub fn read_link(&self, inode: &Inode) -> Result<Vec<u8>> {
        let bad = |kind| Error::corrupt(inode.ino, kind);
        if inode.kind != InodeKind::Symlink {
            return Err(Error::NotASymlink { ino: inode.ino });
        }
        let len = inode.size;
        if len == 0 || len > MAX_SYMLINK_LEN {
            return Err(bad(CorruptKind::SymlinkLength { len }));
        }
        if inode.has_inline_data() {
            return self.inline_data(inode);
        }
        if inode.is_fast_symlink(&self.sb) {
            if len >= I_BLOCK_SIZE as u64 {
                return Err(bad(CorruptKind::FastSymlinkLength { len }));
            }
            return Ok(inode.i_block[..inode.size as usize].to_vec());
        }
        if len > u64::from(self.sb.block_size) {
            return Err(bad(CorruptKind::SymlinkOverBlock { len }));
        }
        self.read_file(inode)
    }

    /// Every object reachable from the root, each directory visited once (a directory linked
    /// twice, as in a corrupt image, is not entered again). Errors in one directory are
    /// collected and the walk goes on.
    pub fn walk(&self) -> (Vec<WalkEntry>, Vec<Error>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        let mut seen = HashSet::from([ROOT_INO]);
        let mut queue = match self.inode(ROOT_INO) {
            Ok(root) => vec![(String::new(), root)],
            Err(e) => return (entries, vec![e]),
        };
        while let Some((path, dir)) = queue.pop() {
            let list = match self.read_dir(&dir) {
                Ok(l) => l,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for d in list.into_iter().filter(|d| !d.is_dot_or_dotdot()) {
                let child = format!("{path}/{}", d.name_lossy());
                match self.inode(d.ino) {
                    Ok(inode) => {
                        if inode.kind == InodeKind::Dir && seen.insert(d.ino) {
                            queue.push((child.clone(), inode.clone()));
                        }
                        entries.push(WalkEntry { path: child, inode });
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        (entries, errors)
    }

    /// Inode numbers marked in use in the inode bitmaps (groups whose inode table is
    /// uninitialised are skipped). A group whose bitmap cannot be read is reported and skipped.
    pub fn used_inodes(&self) -> (Vec<u32>, Vec<Error>) {
        let mut used = Vec::new();
        let mut errors = Vec::new();
        let ipg = self.sb.inodes_per_group;
        for g in 0..self.sb.group_count() {
            let desc = match self.group(g) {
                Ok(d) => *d,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if desc.flags & BG_INODE_UNINIT != 0 {
                continue;
            }
            let bitmap = match self.read_block(desc.inode_bitmap) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for i in 0..ipg {
                let ino = g as u64 * u64::from(ipg) + u64::from(i) + 1;
                if ino > u64::from(self.sb.inodes_count) {
                    break;
                }
                if bitmap
                    .get((i / 8) as usize)
                    .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
                {
                    used.push(ino as u32);
                }
            }
        }
        (used, errors)
    }
}

fn read_exact(src: &dyn BlockSource, offset: u64, buf: &mut [u8]) -> Result<()> {
    src.read_exact_at(offset, buf).map_err(|source| Error::Io {
        offset,
        len: buf.len(),
        source,
    })
}
