//! ext2/ext3 block maps (`i_block` as 12 direct pointers and single, double and triple indirect
//! blocks), converted to extents so the rest of the program sees one kind of map.

use crate::error::{Corrupt, Error, Result};
use crate::extent::Extent;
use crate::fs::Fs;
use crate::inode::Inode;
use crate::le::u32_at;

const DIRECT: u64 = 12;

struct Walk<'a> {
    fs: &'a Fs,
    inode: &'a Inode,
    /// Logical blocks past this are beyond EOF and not collected.
    end_lblk: u64,
    /// Block reads and mapped blocks left before the map is declared corrupt. It starts at the
    /// blocks the inode says it owns (`i_blocks`, which counts indirect blocks too), so a map
    /// that points many times at the same block cannot make us read without bound.
    budget: u64,
    out: Vec<Extent>,
}

impl Walk<'_> {
    fn spend(&mut self) -> Result<()> {
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            Error::corrupt(
                self.inode.ino,
                Corrupt::BlockMap("maps more blocks than the inode owns (i_blocks)".into()),
            )
        })?;
        Ok(())
    }

    fn push(&mut self, lblk: u64, pblk: u64) -> Result<()> {
        let sb = self.fs.superblock();
        if pblk >= sb.blocks_count {
            return Err(Error::corrupt(
                self.inode.ino,
                Corrupt::BlockMap(format!("block {lblk} at {pblk}, outside the filesystem")),
            ));
        }
        self.spend()?;
        // lblk < end_lblk <= 2^32, checked by the caller.
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
    /// logical block is `first`. Returns the number of logical blocks it spans.
    fn subtree(&mut self, ptr: u32, level: u32, first: u64) -> Result<()> {
        if ptr == 0 || first >= self.end_lblk {
            return Ok(());
        }
        if level == 0 {
            return self.push(first, u64::from(ptr));
        }
        let sb = self.fs.superblock();
        if u64::from(ptr) >= sb.blocks_count {
            return Err(Error::corrupt(
                self.inode.ino,
                Corrupt::BlockMap(format!("indirect block {ptr} outside the filesystem")),
            ));
        }
        self.spend()?;
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

/// The extents of a block-mapped inode, up to its size.
pub(crate) fn extents(fs: &Fs, inode: &Inode) -> Result<Vec<Extent>> {
    let sb = fs.superblock();
    let bs = u64::from(sb.block_size);
    let end_lblk = inode.size.div_ceil(bs).min(crate::extent::MAX_LBLK);
    let owned = inode.blocks_512 / (bs / 512).max(1);
    let mut w = Walk {
        fs,
        inode,
        end_lblk,
        budget: owned.min(sb.blocks_count),
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
