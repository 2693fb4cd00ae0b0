//! Oracles outside the project, and a real change to an image after training:
//! - the predictor stack's answers for sampled blocks, preallocated blocks past `i_size`
//!   included (report queries, as FIEMAP asks), equal `debugfs -R "bmap PATH LBLK"`;
//! - after `debugfs -w` punches one file and rewrites another, their models are stale: their
//!   queries stay right and fall through, the other files keep their models.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ext4::{Fs, InodeKind};
use imagekit::oracle;
use predictor::model::FitParams;
use predictor::stack::ModelStatus;
use predictor::synth::Rng;
use predictor::{MappingType, Models, Query, StackOptions, Tier, TierKind, TierStack};

fn predictor_stack(fs: &Arc<Fs>, models: Models<'_>) -> TierStack {
    TierStack::build(
        Arc::clone(fs),
        Tier::Learned,
        models,
        StackOptions { audit: true },
    )
    .unwrap_or_else(|e| panic!("building the stack: {e}"))
    .0
}

#[test]
fn sampled_blocks_equal_debugfs_bmap() {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let (mut checked, mut past_eof) = (0usize, 0usize);
    for img in images {
        let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{}: {e}", img.name)));
        let stack = predictor_stack(&fs, Models::Fit(FitParams::default()));
        let bs = u64::from(fs.block_size());
        for path in &img.files {
            let inode = fs
                .lookup_path(path)
                .unwrap_or_else(|e| panic!("{} {path}: {e}", img.name));
            if inode.kind != InodeKind::File || inode.has_inline_data() {
                continue;
            }
            // Up to EOF or the end of the last extent, whichever is later.
            let mapped_end = fs
                .extents(&inode)
                .unwrap_or_else(|e| panic!("{} {path}: {e}", img.name))
                .last()
                .map_or(0, |e| e.end());
            // Block-mapped files address fewer blocks than debugfs will answer for.
            let blocks = inode
                .size
                .div_ceil(bs)
                .max(mapped_end)
                .min(if inode.uses_extents() {
                    u64::MAX
                } else {
                    16_843_020
                });
            if blocks == 0 {
                continue;
            }
            let mut rng = Rng::new(u64::from(inode.ino));
            let mut lblks: Vec<u32> = (0..200).map(|_| rng.below(blocks) as u32).collect();
            lblks.push((blocks - 1) as u32);
            let theirs =
                oracle::bmap_many(&img.path, path, &lblks).unwrap_or_else(|e| panic!("{e}"));
            for (&lblk, want) in lblks.iter().zip(theirs) {
                let pos = u64::from(lblk) * bs;
                past_eof += usize::from(pos >= inode.size);
                let (m, _) = stack
                    .query(Query::report(inode.ino, pos, bs))
                    .unwrap_or_else(|e| panic!("{} {path} block {lblk}: {e}", img.name));
                let got = match m.kind {
                    MappingType::Hole => None,
                    kind => m.addr.map(|a| (a / bs, kind == MappingType::Unwritten)),
                };
                assert_eq!(
                    got,
                    want.map(|b| (b.pblk, b.unwritten)),
                    "{} {path} block {lblk}: debugfs bmap",
                    img.name
                );
                checked += 1;
            }
        }
        assert_eq!(stack.stats().audit_mismatches, 0, "{}", img.name);
    }
    println!("{checked} sampled blocks ({past_eof} past EOF) equal debugfs bmap");
    assert!(past_eof > 0, "no preallocated block past EOF was sampled");
}

fn debugfs_write(image: &Path, script: &str) {
    let file = image.with_extension("debugfs");
    std::fs::write(&file, script).expect("write debugfs script");
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&file)
        .arg(image)
        .output()
        .expect("run debugfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "debugfs -w failed: {stderr}"
    );
}

#[test]
fn files_changed_after_training_fall_back_and_stay_correct() {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let img = images
        .iter()
        .find(|i| i.name == "ext4-4k")
        .expect("ext4-4k image");
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("copy.img");
    std::fs::copy(&img.path, &copy).expect("copy image");
    let src = dir.path().join("new-contents");
    std::fs::write(&src, vec![0x5a_u8; 300_000]).expect("write source");

    let trained = {
        let fs = Fs::open_path(&copy).expect("open copy");
        predictor::train::train(&fs, &FitParams::default(), 2, &|_| ())
    };
    assert!(trained.errors.is_empty(), "{:?}", trained.errors);

    // Punch /depth1 and replace /depth2 with a different file.
    debugfs_write(
        &copy,
        &format!(
            "punch /depth1 3 40\nrm /depth2\nwrite {} /depth2\n",
            src.display()
        ),
    );

    let fs = Arc::new(Fs::open_path(&copy).expect("open modified copy"));
    let stack = predictor_stack(&fs, Models::Pack(&trained.pack));
    let reference = TierStack::build(
        Arc::clone(&fs),
        Tier::Ondisk,
        Models::None,
        StackOptions::default(),
    )
    .expect("ondisk stack")
    .0;
    let changed: Vec<u32> = ["/depth1", "/depth2"]
        .iter()
        .map(|p| fs.lookup_path(p).expect("changed file").ino)
        .collect();
    for &ino in &changed {
        assert_not_from_pack(&stack, ino);
    }
    let mut active = 0;
    for ino in stack.inodes() {
        if !changed.contains(&ino) {
            let kept = matches!(
                stack.model_status(ino),
                Some(ModelStatus::Active { .. } | ModelStatus::Unavailable)
            );
            assert!(
                kept,
                "inode {ino} lost its model: {:?}",
                stack.model_status(ino)
            );
            active += usize::from(matches!(
                stack.model_status(ino),
                Some(ModelStatus::Active { .. })
            ));
        }
    }
    assert!(active > 5, "other files keep their models ({active})");

    // Every block of the changed files: the same answer as the on-disk walk, never from a model.
    for &ino in &changed {
        assert_every_block_agrees(&stack, &reference, ino);
    }
    let s = stack.stats();
    assert_eq!(
        s.tier(TierKind::Learned).answered,
        0,
        "a stale model answered"
    );
    assert!(s.tier(TierKind::Learned).declined > 0);
    assert_eq!(s.audit_mismatches, 0);

    // The compact tier over the same pack: the changed files' lines are fitted at load (the
    // status says why), and every answer for them is the on-disk walk's (audited).
    let compact = TierStack::build(
        Arc::clone(&fs),
        Tier::Compact,
        Models::Pack(&trained.pack),
        StackOptions { audit: true },
    )
    .expect("compact stack")
    .0;
    for &ino in &changed {
        assert_not_from_pack(&compact, ino);
        assert_every_block_agrees(&compact, &reference, ino);
    }
    let s = compact.stats();
    assert!(s.tier(TierKind::Compact).answered > 0);
    assert_eq!(s.audit_mismatches, 0);
}

/// The pack's model for `ino` was not used: its entry is stale (or gone).
fn assert_not_from_pack(stack: &TierStack, ino: u32) {
    assert!(
        matches!(
            stack.model_status(ino),
            Some(
                ModelStatus::StaleFingerprint { .. }
                    | ModelStatus::StaleGeneration { .. }
                    | ModelStatus::Untrained
            )
        ),
        "inode {ino}: {:?}",
        stack.model_status(ino)
    );
}

/// Every block of `ino` read through `stack` maps as through `reference`.
fn assert_every_block_agrees(stack: &TierStack, reference: &TierStack, ino: u32) {
    let bs = u64::from(stack.block_size());
    let size = stack.inode(ino).expect("inode").size;
    for pos in (0..size).step_by(bs as usize) {
        let got = stack.query(Query::read(ino, pos, bs)).map(|(m, _)| m);
        let want = reference.query(Query::read(ino, pos, bs)).map(|(m, _)| m);
        assert_eq!(
            got.ok(),
            want.ok(),
            "{:?}: inode {ino} pos {pos}",
            stack.tier()
        );
    }
}
