//! Crafted extent-tree damage on a real image (the 1 KiB-block depth-3 file of `ext4-1k`):
//! cycles, shared subtrees, wrong depths, impossible counts and pointers. Each must be a
//! `Corrupt` error naming the inode, from both the full walk and the single-block lookup; never
//! a hang, a panic or a wrong mapping. Checksums are recomputed after each edit, so the
//! structural checks (not the checksum) are what catch the damage.
//!
//! Block maps (ext3's `/dind`, `ext3-1k`): a double-indirect block whose entries all point at
//! one indirect block is an error; a size or `i_blocks` that understates the map is not (the
//! kernel and debugfs follow the map whatever they say, and so do we).

use ext4::{CorruptKind, Error, Fs, Inode, MemSource};
use imagekit::Image;

fn image() -> &'static Image {
    let images =
        imagekit::standard().unwrap_or_else(|e| panic!("building the standard images: {e}"));
    images
        .iter()
        .find(|i| i.name == "ext4-1k")
        .expect("ext4-1k image")
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn ext4_crc(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The pristine image, the depth-3 file's inode, and a way to edit one tree block.
struct Fixture {
    bytes: Vec<u8>,
    inode: Inode,
    bs: usize,
    csum_seed: Option<u32>,
}

impl Fixture {
    fn new() -> Self {
        let img = image();
        let bytes = std::fs::read(&img.path).expect("read image");
        let fs = Fs::open(MemSource(bytes.clone())).expect("open");
        let inode = fs.lookup_path("/depth3").expect("/depth3");
        assert_eq!(fs.extent_depth(&inode).expect("depth"), Some(3));
        let sb = fs.superblock();
        let csum_seed = sb
            .feature_ro_compat
            .contains(ext4::RoCompatFeatures::METADATA_CSUM)
            .then(|| {
                let s = ext4_crc(sb.csum_seed, &inode.ino.to_le_bytes());
                ext4_crc(s, &inode.generation.to_le_bytes())
            });
        Fixture {
            bytes,
            inode,
            bs: img.block_size as usize,
            csum_seed,
        }
    }

    /// Child block of index entry `i` of a node.
    fn child(node: &[u8], i: usize) -> u64 {
        let e = 12 + 12 * i;
        u64::from(u32_at(node, e + 4)) | (u64::from(u16_at(node, e + 8)) << 32)
    }

    /// The first child of the root (a depth-2 index node).
    fn level1(&self) -> u64 {
        Self::child(&self.inode.i_block, 0)
    }

    fn block(&self, b: u64) -> &[u8] {
        &self.bytes[b as usize * self.bs..][..self.bs]
    }

    /// Edits block `b` and fixes its checksum tail.
    fn edit(&mut self, b: u64, f: impl FnOnce(&mut [u8])) {
        let bs = self.bs;
        let seed = self.csum_seed;
        let node = &mut self.bytes[b as usize * bs..][..bs];
        f(node);
        if let Some(seed) = seed {
            let tail = 12 + 12 * usize::from(u16_at(node, 4));
            let c = ext4_crc(seed, &node[..tail]);
            put_u32(node, tail, c);
        }
    }

    /// Both readers on the edited image must fail with a `Corrupt` error for this inode.
    fn assert_corrupt(self, probe: u32, want: impl Fn(&CorruptKind) -> bool) {
        let fs = Fs::open(MemSource(self.bytes)).expect("open edited image");
        let ino = self.inode.ino;
        for (what, r) in [
            ("extents", fs.extents(&self.inode).map(|_| ())),
            ("map_block", fs.map_block(&self.inode, probe).map(|_| ())),
        ] {
            match r {
                Err(Error::Corrupt { ino: i, kind }) if i == ino && want(&kind) => {}
                other => {
                    panic!("{what}: expected a matching corruption of inode {ino}, got {other:?}")
                }
            }
        }
    }
}

#[test]
fn a_cycle_back_to_the_same_node_is_a_depth_error() {
    let mut f = Fixture::new();
    let l1 = f.level1();
    // Entry 0 of the depth-2 node points at the node itself.
    f.edit(l1, |n| put_u32(n, 12 + 4, l1 as u32));
    // Found again one level down, where depth 1 is due.
    f.assert_corrupt(0, |c| {
        *c == CorruptKind::ExtentDepth {
            block: l1,
            depth: 2,
            expected: 1,
        }
    });
}

#[test]
fn a_subtree_shared_by_two_index_entries_is_caught_by_its_keys() {
    let mut f = Fixture::new();
    let l1 = f.level1();
    let node = f.block(l1).to_vec();
    assert!(u16_at(&node, 2) >= 2, "need two entries");
    let first_child = Fixture::child(&node, 0);
    let second_key = u32_at(&node, 12 + 12);
    // Entry 1 points where entry 0 does: same depth, but keys below entry 1's range.
    f.edit(l1, |n| put_u32(n, 24 + 4, first_child as u32));
    // The shared (depth-1 index) node's first key is below entry 1's range.
    f.assert_corrupt(
        second_key,
        |c| matches!(*c, CorruptKind::IndexKey { block, entry: 0, .. } if block == first_child),
    );
}

#[test]
fn keys_out_of_order_are_an_error() {
    let mut f = Fixture::new();
    let l1 = f.level1();
    f.edit(l1, |n| {
        let k0 = u32_at(n, 12);
        put_u32(n, 24, k0); // entry 1's key equals entry 0's
    });
    f.assert_corrupt(
        0,
        |c| matches!(*c, CorruptKind::IndexKey { block, entry: 1, .. } if block == l1),
    );
}

#[test]
fn more_entries_than_max_is_an_error() {
    let mut f = Fixture::new();
    let l1 = f.level1();
    f.edit(l1, |n| {
        let max = u16_at(n, 4);
        put_u16(n, 2, max + 1);
    });
    f.assert_corrupt(0, |c| {
        matches!(*c, CorruptKind::ExtentEntries { block, entries, max } if block == l1 && entries == max + 1)
    });
}

#[test]
fn a_child_outside_the_filesystem_is_an_error() {
    let mut f = Fixture::new();
    let l1 = f.level1();
    f.edit(l1, |n| put_u32(n, 12 + 4, u32::MAX));
    f.assert_corrupt(0, |c| {
        matches!(
            *c,
            CorruptKind::IndexChild { block, entry: 0, child, .. }
                if block == l1 && child == u64::from(u32::MAX)
        )
    });
}

#[test]
fn a_bad_checksum_is_reported_as_such() {
    let mut f = Fixture::new();
    if f.csum_seed.is_none() {
        imagekit::skip(
            "a_bad_checksum_is_reported_as_such",
            "mkfs.ext4 made the image without metadata_csum",
        );
        return;
    }
    let l1 = f.level1();
    let off = l1 as usize * f.bs + 12 + 12 * usize::from(u16_at(f.block(l1), 4));
    f.bytes[off] ^= 0xFF;
    f.assert_corrupt(
        0,
        |c| matches!(*c, CorruptKind::ExtentChecksum { block, .. } if block == l1),
    );
}

/// `ext3-1k`'s bytes and its `/dind` inode (direct, indirect and double-indirect blocks).
fn dind() -> (Vec<u8>, Inode, &'static Image) {
    let images =
        imagekit::standard().unwrap_or_else(|e| panic!("building the standard images: {e}"));
    let img = images
        .iter()
        .find(|i| i.name == "ext3-1k")
        .expect("ext3-1k image");
    let bytes = std::fs::read(&img.path).expect("read image");
    let fs = Fs::open(MemSource(bytes.clone())).expect("open");
    let inode = fs.lookup_path("/dind").expect("/dind");
    assert!(!inode.uses_extents());
    (bytes, inode, img)
}

#[test]
fn an_indirect_block_referenced_twice_is_an_error() {
    let (mut bytes, inode, img) = dind();
    let bs = img.block_size as usize;
    let dind_block = u32_at(&inode.i_block, 13 * 4) as usize;
    assert_ne!(dind_block, 0, "/dind has a double-indirect block");
    // Every entry of the double-indirect block points at its first indirect block: without
    // the check, 256 copies of that subtree.
    let node = &mut bytes[dind_block * bs..][..bs];
    let first = u32_at(node, 0);
    for i in 1..bs / 4 {
        put_u32(node, i * 4, first);
    }
    let fs = Fs::open(MemSource(bytes)).expect("open edited image");
    for (what, r) in [
        ("extents", fs.extents(&inode).map(|_| ())),
        ("map_block", fs.map_block(&inode, 0).map(|_| ())),
    ] {
        match r {
            Err(Error::Corrupt {
                ino,
                kind: CorruptKind::IndirectTwice { block },
            }) if ino == inode.ino && block == first => {}
            other => panic!("{what}: expected a repeated-block error, got {other:?}"),
        }
    }
}

#[test]
fn a_map_past_the_size_or_the_block_count_is_read_whole() {
    let (bytes, inode, img) = dind();
    let want = Fs::open(MemSource(bytes.clone()))
        .and_then(|fs| fs.extents(&inode))
        .expect("pristine map");
    let debugfs = imagekit::tool("debugfs").unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    // i_size of one block (the rest of the map is past EOF), and i_blocks of one block (the
    // map holds more than the inode says it owns, like e2fsprogs' f_hugedir_blocks).
    for (field, value) in [("size", img.block_size), ("blocks", 2)] {
        let copy = tmp.path().join(format!("{field}.img"));
        std::fs::write(&copy, &bytes).expect("copy image");
        let out = std::process::Command::new(&debugfs)
            .args(["-w", "-R", &format!("sif /dind {field} {value}")])
            .arg(&copy)
            .output()
            .expect("run debugfs");
        assert!(out.status.success(), "debugfs: {out:?}");
        let fs = Fs::open_path(&copy).expect("open edited image");
        let edited = fs.lookup_path("/dind").expect("/dind");
        assert_ne!(
            (edited.size, edited.blocks_512),
            (inode.size, inode.blocks_512),
            "{field} edited"
        );
        assert_eq!(fs.extents(&edited).expect("edited map"), want, "{field}");
        let last = want.last().expect("extents");
        assert_eq!(
            fs.map_block(&edited, last.lblk).expect("lookup"),
            ext4::BlockMap::Mapped(*last),
            "{field}: the last block"
        );
    }
}
