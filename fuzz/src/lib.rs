//! Shared pieces of the fuzz targets: reading a whole image the way the corpus test does, and
//! the template image (made by `scripts/fuzz.sh`) that the extent-tree and directory targets
//! patch with fuzz bytes.

use std::path::PathBuf;
use std::sync::OnceLock;

use ext4::{Fs, Inode, InodeKind, MemSource};

/// Reads everything an image has: every used inode (extents, a few block maps and reads,
/// directories, symlinks) and a walk from the root. Errors are fine; panics are the bugs.
pub fn read_everything(fs: &Fs) {
    let (used, _) = fs.used_inodes();
    for ino in used.into_iter().take(4096) {
        if let Ok(inode) = fs.inode(ino) {
            read_inode(fs, &inode);
        }
    }
    let _ = fs.walk();
    let _ = fs.lookup_path("/a/b");
}

/// Everything the public API can do with one inode.
pub fn read_inode(fs: &Fs, inode: &Inode) {
    let _ = fs.extent_depth(inode);
    let _ = fs.extent_leaves(inode);
    match inode.kind {
        InodeKind::File => {
            if let Ok(exts) = fs.extents(inode) {
                let mut buf = [0u8; 4096];
                let _ = fs.read_at(inode, &exts, 0, &mut buf);
                let mid = inode.size / 2;
                let _ = fs.read_at(inode, &exts, mid, &mut buf);
                let _ = fs.read_at(inode, &exts, inode.size.saturating_sub(100), &mut buf);
                for e in exts.iter().take(64) {
                    let _ = fs.map_block(inode, e.lblk);
                    let _ = fs.map_block(inode, e.lblk.saturating_add(e.len));
                }
            }
            let _ = fs.map_block(inode, 0);
            let _ = fs.map_block(inode, u32::MAX);
            if inode.size <= 1 << 20 {
                let _ = fs.read_file(inode);
            }
        }
        InodeKind::Dir => {
            let _ = fs.read_dir(inode);
            let _ = fs.lookup(inode, b"f1");
            let _ = fs.lookup(inode, b"no-such-name");
        }
        InodeKind::Symlink => {
            let _ = fs.read_link(inode);
        }
        _ => {}
    }
}

/// The template image: `$IOMAP_FUZZ_TEMPLATE`, or `fuzz/work/template.img` as the script
/// writes it. Made with `-O ^metadata_csum` so patched bytes are not simply refused by a
/// checksum. Holds `/frag` (a depth-1 extent tree), `/dir` (a one-block linear directory) and
/// `/hdir` (an htree directory).
pub fn template() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let path = std::env::var_os("IOMAP_FUZZ_TEMPLATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/work/template.img"))
            });
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "template image {} missing ({e}): run scripts/fuzz.sh",
                path.display()
            )
        })
    })
}

/// Where things are in the template image.
pub struct Layout {
    pub block_size: usize,
    /// Byte offset of `/frag`'s `i_block` in the inode table.
    pub frag_iblock: usize,
    /// Byte offsets of `/frag`'s leaf blocks.
    pub frag_leaves: Vec<usize>,
    /// Byte offset of `/dir`'s first block.
    pub dir_block: usize,
    /// Byte offset of `/hdir`'s first block (its dx root).
    pub hdir_block: usize,
}

/// Finds the template's pieces through the reader itself (on the unpatched image).
pub fn layout() -> &'static Layout {
    static L: OnceLock<Layout> = OnceLock::new();
    L.get_or_init(|| {
        let img = template();
        let fs = Fs::open(MemSource(img.to_vec())).expect("template opens");
        let bs = fs.block_size() as usize;
        let frag = fs.lookup_path("/frag").expect("/frag in template");
        assert_eq!(
            fs.extent_depth(&frag).ok().flatten(),
            Some(1),
            "/frag has depth 1"
        );
        // The i_block bytes are unique in the image (an extent header with this inode's index
        // entries); find them in the inode table.
        let frag_iblock = img
            .windows(frag.i_block.len())
            .position(|w| w == frag.i_block)
            .expect("/frag i_block found in the image");
        let entries = u16::from_le_bytes([frag.i_block[2], frag.i_block[3]]) as usize;
        let frag_leaves = (0..entries)
            .map(|i| {
                let e = &frag.i_block[12 + 12 * i..24 + 12 * i];
                let lo = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as u64;
                let hi = u16::from_le_bytes([e[8], e[9]]) as u64;
                ((hi << 32 | lo) as usize) * bs
            })
            .collect();
        let first_block = |path: &str| {
            let ino = fs.lookup_path(path).expect("dir in template");
            let exts = fs.extents(&ino).expect("dir extents");
            exts[0].pblk as usize * bs
        };
        Layout {
            block_size: bs,
            frag_iblock,
            frag_leaves,
            dir_block: first_block("/dir"),
            hdir_block: first_block("/hdir"),
        }
    })
}

/// Copies `src` over `img[at..]`, as much as fits in `max` bytes.
pub fn patch(img: &mut [u8], at: usize, src: &[u8], max: usize) {
    let n = src.len().min(max).min(img.len().saturating_sub(at));
    img[at..at + n].copy_from_slice(&src[..n]);
}
