//! The e2fsprogs regression images (`testdata/e2fsprogs/`), many deliberately corrupt, against
//! debugfs: every image our reader opens is trained into a model pack, loaded as a tier stack
//! with that pack and audit mode (and as the compact tier), and every mapped block of every
//! regular file whose map both we and debugfs read is looked up and compared with debugfs's
//! extents: same physical block, same written/unwritten state, and 0 audit mismatches.
//!
//! Files over [`BLOCK_CAP`] mapped blocks are checked at every extent boundary plus an even
//! spread of blocks. Maps are compared whole, past EOF included; every checked block is asked
//! as a report query (FIEMAP's, which answers past `i_size`), and as a read query, which must
//! give the same mapping before `i_size` and be refused past it.
//! Needs debugfs (e2fsprogs); under `IOMAP_REQUIRE_ALL` (CI) its absence fails the test.

use std::path::Path;
use std::sync::Arc;

use ext4::{Extent, Fs};
use imagekit::oracle::{self, OracleExtent};
use predictor::stack::StackOptions;
use predictor::{
    FitParams, Mapping, MappingType, Models, Query, QueryError, Tier, TierKind, TierStack,
};

/// Mapped blocks checked one by one per file before sampling.
const BLOCK_CAP: u64 = 1 << 14;

fn oracle_of(e: &Extent) -> OracleExtent {
    OracleExtent {
        lblk: e.lblk,
        pblk: e.pblk,
        len: e.len,
        unwritten: e.unwritten,
    }
}

/// The logical blocks of `map` to query: all of them up to [`BLOCK_CAP`], else each extent's
/// first and last block plus an even spread.
fn blocks_to_check(map: &[OracleExtent]) -> Vec<(u32, &OracleExtent)> {
    let total: u64 = map.iter().map(|e| u64::from(e.len)).sum();
    let stride = total.div_ceil(BLOCK_CAP).max(1);
    let mut out = Vec::new();
    for e in map {
        let last = e.lblk_end() - 1;
        let mut b = u64::from(e.lblk);
        while b <= last {
            out.push((b as u32, e));
            b += stride;
        }
        if stride > 1 {
            out.push((last as u32, e));
        }
    }
    out
}

struct Tally {
    images_open: usize,
    files: usize,
    blocks: u64,
    learned: u64,
    past_eof: u64,
    debugfs_unreadable: usize,
}

/// Checks one image; returns what it checked.
fn check_image(name: &str, img: &Path, t: &mut Tally) {
    let Ok(fs) = Fs::open_path(img) else {
        return; // refused at open: ext4's corpus test asserts which and why
    };
    t.images_open += 1;
    let fs = Arc::new(fs);
    let trained = predictor::train::train(&fs, &FitParams::default(), 1, &|_| ());
    let audit = StackOptions { audit: true };
    let build = |tier, models| {
        TierStack::build(fs.clone(), tier, models, audit)
            .unwrap_or_else(|e| panic!("{name}: {tier:?} stack: {e}"))
            .0
    };
    let learned = build(Tier::Learned, Models::Pack(&trained.pack));
    let compact = build(Tier::Compact, Models::None);
    let bs = u64::from(fs.block_size());
    let (files, _) = predictor::train::regular_files(&fs);
    // Our maps, for the files our reader reads; debugfs's in batches (one run per 256 files),
    // file by file where a batch fails because debugfs complains about one of them.
    //
    // Left out: files with inline data (no block map; an inode flagged both inline and extents
    // is read as inline, where debugfs prints the tree anyway), and files with nothing mapped
    // and nothing allocated (`i_blocks` 0: the htree images hold 10^4 of them, and asking
    // debugfs about each costs a millisecond).
    let ours: Vec<(String, ext4::Inode, Vec<Extent>)> = files
        .into_iter()
        .filter(|(_, inode)| !inode.has_inline_data())
        .filter_map(|(path, inode)| Some((path, inode.clone(), fs.extents(&inode).ok()?)))
        .filter(|(_, inode, map)| !map.is_empty() || inode.blocks_512 > 0)
        .collect();
    let mut theirs: Vec<Option<Vec<OracleExtent>>> = Vec::with_capacity(ours.len());
    for chunk in ours.chunks(256) {
        let paths: Vec<&str> = chunk.iter().map(|(p, _, _)| p.as_str()).collect();
        match oracle::extents_many(img, &paths) {
            Ok(maps) => theirs.extend(maps.into_iter().map(Some)),
            Err(_) => theirs.extend(paths.iter().map(|p| oracle::extents(img, p).ok())),
        }
    }
    for ((path, inode, ours), theirs) in ours.into_iter().zip(theirs) {
        let Some(theirs) = theirs else {
            t.debugfs_unreadable += 1;
            continue;
        };
        let ours_o: Vec<OracleExtent> = ours.iter().map(oracle_of).collect();
        assert_eq!(
            oracle::normalize(&ours_o),
            oracle::normalize(&theirs),
            "{name}:{path}: extent map differs from debugfs"
        );
        t.files += 1;
        for (lblk, e) in blocks_to_check(&theirs) {
            let pos = u64::from(lblk) * bs;
            let past_eof = pos >= inode.size;
            t.past_eof += u64::from(past_eof);
            let want_addr = (e.pblk + u64::from(lblk - e.lblk)) * bs;
            let want_kind = if e.unwritten {
                MappingType::Unwritten
            } else {
                MappingType::Mapped
            };
            for (tier, stack) in [("learned", &learned), ("compact", &compact)] {
                let (m, kind) = stack
                    .query(Query::report(inode.ino, pos, bs))
                    .unwrap_or_else(|e| panic!("{name}:{path} block {lblk}: {tier}: {e}"));
                assert_eq!(
                    (m.addr, m.kind),
                    (Some(want_addr), want_kind),
                    "{name}:{path} block {lblk}: {tier} report answered {m:?} ({kind:?})"
                );
                let read = stack.query(Query::read(inode.ino, pos, bs));
                if past_eof {
                    assert!(
                        matches!(read, Err(QueryError::PastEof { .. })),
                        "{name}:{path} block {lblk} (past EOF): {tier} read gave {read:?}"
                    );
                } else {
                    let read = read.map(|(m, _)| m).ok();
                    assert_eq!(
                        read,
                        Some(Mapping {
                            length: m.length.min(inode.size - pos),
                            ..m
                        }),
                        "{name}:{path} block {lblk}: {tier} read differs from the report"
                    );
                }
                if kind == TierKind::Learned {
                    t.learned += 1;
                }
            }
            t.blocks += 1;
        }
    }
    for (tier, stack) in [("learned", &learned), ("compact", &compact)] {
        let s = stack.stats();
        assert_eq!(s.audit_mismatches, 0, "{name}: {tier} audit mismatches");
        assert_eq!(s.tier(TierKind::Learned).missed, 0, "{name}: {tier} misses");
    }
}

#[test]
fn every_mapped_block_of_every_readable_corpus_file_agrees_with_debugfs() {
    if imagekit::tool("debugfs").is_err() {
        imagekit::skip(
            "every_mapped_block_of_every_readable_corpus_file_agrees_with_debugfs",
            "debugfs (e2fsprogs) is not installed",
        );
        return;
    }
    let images = imagekit::corpus::images().unwrap_or_else(|e| panic!("{e}"));
    assert!(images.len() >= 60, "corpus: only {} images", images.len());
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut t = Tally {
        images_open: 0,
        files: 0,
        blocks: 0,
        learned: 0,
        past_eof: 0,
        debugfs_unreadable: 0,
    };
    for (name, gz) in &images {
        let img = tmp.path().join(format!("{name}.img"));
        imagekit::corpus::unpack(gz, &img).unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        let before = (t.files, t.blocks);
        check_image(name, &img, &mut t);
        eprintln!(
            "{name}: {} files, {} blocks, {:?}",
            t.files - before.0,
            t.blocks - before.1,
            start.elapsed()
        );
        // Images are small, but 62 of them add up.
        let _ = std::fs::remove_file(&img);
    }
    eprintln!(
        "corpus vs debugfs: {} images opened, {} files compared ({} debugfs could not read), {} blocks looked up ({} past EOF), {} answered by the learned tier",
        t.images_open, t.files, t.debugfs_unreadable, t.blocks, t.past_eof, t.learned
    );
    assert!(t.images_open >= 30, "only {} images opened", t.images_open);
    assert!(t.blocks > 1000 && t.learned > 0, "too little checked");
    assert!(t.past_eof > 0, "no block past EOF checked");
}
