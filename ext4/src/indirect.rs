//! ext2/ext3 block maps (`i_block` as 12 direct pointers and single, double and triple indirect
//! blocks), converted to extents so the rest of the program sees one kind of map.

use std::collections::HashSet;

use crate::error::{CorruptKind, Error, Result};
use crate::extent::{Extent, MAX_LBLK};
use crate::fs::Fs;
use crate::inode::Inode;
use crate::le::u32_at;

const DIRECT: u64 = 12;

/// The walk of one map. What bounds its work on a hostile image is not `i_size` or `i_blocks`
/// (the kernel follows the map whatever they say, and e2fsprogs' `f_hugedir_blocks` maps more
/// blocks than its `i_blocks` counts) but the filesystem itself: each indirect block may be
/// read once (a second reference to one is a cycle or a shared subtree, never a valid map), so
/// at most `blocks_count` reads; and the map may hold at most `blocks_count` blocks.
struct Walk<'a> {
    fs: &'a Fs,
    inode: &'a Inode,
    /// Indirect blocks read so far.
    seen: HashSet<u32>,
    /// Mapped blocks left before the map is declared corrupt.
    budget: u64,
    out: Vec<Extent>,
}

impl Walk<'_> {
    fn spend(&mut self) -> Result<()> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| Error::corrupt(self.inode.ino, CorruptKind::MapTooLarge))?;
        Ok(())
    }

    fn push(&mut self, lblk: u64, pblk: u64) -> Result<()> {
        let sb = self.fs.superblock();
        if pblk >= sb.blocks_count {
            return Err(Error::corrupt(
                self.inode.ino,
                CorruptKind::MapBlockOutsideFs { lblk, pblk },
            ));
        }
        self.spend()?;
        // lblk < MAX_LBLK, checked by the caller.
        let lblk32 = u32::try_from(lblk).unwrap_or(u32::MAX);
        if let Some(last) = self.out.last_mut() {
            if last.end() == lblk && last.pblk + u64::from(last.len) == pblk && last.len < u32::MAX
            {
                last.len += 1;
                return Ok(());
            }
        }
        self.out.push(Extent {
            lblk: lblk32,
            pblk,
            len: 1,
            unwritten: false,
        });
        Ok(())
    }

    /// Maps the subtree of `level` levels of indirection under pointer `ptr`, whose first
    /// logical block is `first`.
    fn subtree(&mut self, ptr: u32, level: u32, first: u64) -> Result<()> {
        // Blocks from 2^32 - 1 on are not addressable by ext4's 32-bit block numbers (only a
        // triple-indirect tree of 64 KiB blocks reaches them).
        if ptr == 0 || first >= MAX_LBLK {
            return Ok(());
        }
        if level == 0 {
            return self.push(first, u64::from(ptr));
        }
        let sb = self.fs.superblock();
        if u64::from(ptr) >= sb.blocks_count {
            return Err(Error::corrupt(
                self.inode.ino,
                CorruptKind::IndirectOutsideFs { block: ptr },
            ));
        }
        if !self.seen.insert(ptr) {
            return Err(Error::corrupt(
                self.inode.ino,
                CorruptKind::IndirectTwice { block: ptr },
            ));
        }
        let block = self.fs.read_block(u64::from(ptr))?;
        let per_block = u64::from(sb.block_size / 4);
        let span = per_block.pow(level - 1);
        for (i, chunk) in block.chunks_exact(4).enumerate() {
            let child = u32_at(chunk, 0);
            self.subtree(child, level - 1, first + i as u64 * span)?;
        }
        Ok(())
    }
}

/// The extents of a block-mapped inode: every mapped block, past `i_size` too (the kernel's
/// `ext4_ind_map_blocks` and debugfs follow the map whatever the size says, and FIEMAP reports
/// those blocks). See [`Walk`] for what bounds the work.
pub(crate) fn extents(fs: &Fs, inode: &Inode) -> Result<Vec<Extent>> {
    let sb = fs.superblock();
    let bs = u64::from(sb.block_size);
    let mut w = Walk {
        fs,
        inode,
        seen: HashSet::new(),
        budget: sb.blocks_count,
        out: Vec::new(),
    };
    let ptr = |i: usize| u32_at(&inode.i_block, i * 4);
    for i in 0..DIRECT as usize {
        w.subtree(ptr(i), 0, i as u64)?;
    }
    let per_block = bs / 4;
    let mut first = DIRECT;
    for level in 1..=3u32 {
        w.subtree(ptr(11 + level as usize), level, first)?;
        first += per_block.pow(level);
    }
    Ok(w.out)
}
