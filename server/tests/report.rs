//! Report queries (`IOMAP_REPORT`) against the kernel's FIEMAP: for every kernel-mountable
//! test image, every regular file's map is rebuilt from report queries the way the kernel's
//! `iomap_fiemap` walks a file (query at 0, step by each mapping's length, holes skipped, until
//! the hole after the last extent ends the walk), through every `--tier` the server offers (the
//! BPF program included, and the compact index), and must equal what FIEMAP reports on a loop
//! mount of the same image: blocks preallocated past `i_size` included. Reads past EOF must be
//! refused by every tier. Needs root (loop mounts, BPF); under `IOMAP_REQUIRE_ALL` (CI) a skip
//! fails.

mod common;

use std::path::Path;

use bpf::TierChoice;
use ext4::{Fs, InodeKind};
use imagekit::kernel::{self, LoopMount};
use imagekit::oracle::{self, OracleExtent};
use predictor::{MappingType, Query, QueryError, Tier};
use server::image::{self, Served};

use common::{root_or_skip, write_pack};

/// The map of `ino` as report queries give it, walked like `iomap_fiemap` over the whole
/// addressable block range.
fn map_by_reports(loaded: &Served, ino: u32, bs: u64, what: &str) -> Vec<OracleExtent> {
    let end = ext4::MAX_LBLK * bs;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < end {
        let (m, kind) = loaded
            .query(Query::report(ino, pos, end - pos))
            .unwrap_or_else(|e| panic!("{what}: report at {pos}: {e}"));
        assert!(m.length > 0 && m.offset == pos, "{what}: {m:?}");
        if m.kind != MappingType::Hole {
            let addr = m
                .addr
                .unwrap_or_else(|| panic!("{what}: {m:?} without address"));
            assert!(
                pos % bs == 0 && addr % bs == 0 && m.length % bs == 0,
                "{what}: unaligned {m:?} ({kind:?})"
            );
            out.push(OracleExtent {
                lblk: u32::try_from(pos / bs).unwrap_or_else(|e| panic!("{what}: {e}")),
                pblk: addr / bs,
                len: u32::try_from(m.length / bs).unwrap_or_else(|e| panic!("{what}: {e}")),
                unwritten: m.kind == MappingType::Unwritten,
            });
        }
        pos += m.length;
    }
    out
}

#[test]
fn report_queries_of_every_tier_equal_fiemap_past_eof_included() {
    if !root_or_skip("report_queries_of_every_tier_equal_fiemap_past_eof_included") {
        return;
    }
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut files, mut past_eof) = (0usize, 0u64);
    for img in images.iter().filter(|i| i.kernel_mountable) {
        let fs = Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{}: {e}", img.name));
        let bs = u64::from(fs.block_size());
        let pack = tmp.path().join(format!("{}.pack", img.name));
        write_pack(&img.path, &pack);
        let (entries, errors) = fs.walk();
        assert!(errors.is_empty(), "{}: {errors:?}", img.name);
        let regular: Vec<_> = entries
            .iter()
            .filter(|e| e.inode.kind == InodeKind::File && !e.inode.has_inline_data())
            .collect();
        // The kernel's answers.
        let mount = LoopMount::new(&img.path).unwrap_or_else(|e| panic!("{}: {e}", img.name));
        let fiemaps: Vec<Vec<OracleExtent>> = regular
            .iter()
            .map(|e| {
                let host = mount.host_path(&e.path);
                let extents = kernel::fiemap(&host).unwrap_or_else(|err| panic!("{err}"));
                let blocks = kernel::fiemap_blocks(&host, &extents, img.block_size)
                    .unwrap_or_else(|err| panic!("{err}"));
                oracle::normalize(&blocks)
            })
            .collect();
        mount
            .unmount()
            .unwrap_or_else(|e| panic!("{}: {e}", img.name));
        for choice in TierChoice::all() {
            let loaded = image::open(&img.path, Some(Path::new(&pack)), choice, true)
                .unwrap_or_else(|e| panic!("{}: {choice:?}: {e}", img.name));
            assert!(
                !choice.in_kernel || loaded.bpf.is_some(),
                "{}: BPF tier not loaded: {:?}",
                img.name,
                loaded.bpf_error
            );
            for (e, theirs) in regular.iter().zip(&fiemaps) {
                let what = format!("{} {} ({choice:?})", img.name, e.path);
                let ours = map_by_reports(&loaded, e.inode.ino, bs, &what);
                assert_eq!(&oracle::normalize(&ours), theirs, "{what}: FIEMAP");
                if choice == Tier::Learned.into() {
                    let eof = e.inode.size.div_ceil(bs);
                    past_eof += theirs
                        .iter()
                        .map(|x| x.lblk_end().saturating_sub(eof.max(u64::from(x.lblk))))
                        .sum::<u64>();
                }
                // Past EOF, a read is refused whatever the map holds there.
                let read = loaded.query(Query::read(e.inode.ino, e.inode.size, 1));
                assert!(
                    matches!(read, Err(QueryError::PastEof { .. })),
                    "{what}: read at EOF gave {read:?}"
                );
            }
            let s = loaded.stack.stats();
            assert_eq!(s.audit_mismatches, 0, "{}: {choice:?} audit", img.name);
        }
        files += regular.len();
    }
    eprintln!("{files} files x every tier equal FIEMAP ({past_eof} blocks past EOF)");
    assert!(files > 20, "only {files} files compared");
    assert!(past_eof > 0, "no block past EOF compared");
}
