//! The contract over real images: for every test image and regular file, every tier's mapping
//! equals the on-disk tier's, exhaustively per block for files under 10^5 blocks and on seeded
//! random queries beyond (10^6 per file; `CONTRACT_RANDOM` overrides),
//! plus every extent boundary, EOF and the last block of the block space. Queries alternate
//! between reads and reports; boundaries and EOF are asked both ways, so preallocated blocks
//! past `i_size` are answered by reports and refused to reads identically in every tier.

use std::sync::Arc;

use ext4::Fs;
use predictor::model::FitParams;
use predictor::pack::Pack;
use predictor::stack::{ModelStatus, StackStats};
use predictor::synth::Rng;
use predictor::{Mapping, Models, Query, QueryError, StackOptions, Tier, TierKind, TierStack};

/// Files with fewer blocks are checked at every block.
const EXHAUSTIVE_BLOCKS: u64 = 100_000;

fn random_queries() -> usize {
    let default = 1_000_000;
    std::env::var("CONTRACT_RANDOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The queries to ask about one file.
fn queries(fs: &Fs, stack: &TierStack, ino: u32) -> Vec<Query> {
    let bs = u64::from(fs.block_size());
    let Some(inode) = stack.inode(ino) else {
        return Vec::new();
    };
    let size = inode.size;
    let blocks = size.div_ceil(bs);
    let counts = [1, bs, 3 * bs + 5, u64::MAX, bs / 2];
    let mut out = Vec::new();
    let mut push = |pos: u64, i: usize| {
        let count = counts[i % counts.len()];
        out.push(if i % 2 == 0 {
            Query::read(ino, pos, count)
        } else {
            Query::report(ino, pos, count)
        });
    };
    if blocks < EXHAUSTIVE_BLOCKS {
        for b in 0..blocks {
            push(b * bs, b as usize);
            if b % 7 == 0 {
                push(b * bs + 1 + b % (bs - 1), b as usize + 1);
            }
        }
    } else {
        let mut rng = Rng::new(u64::from(ino));
        for i in 0..random_queries() {
            push(rng.below(size), i);
        }
    }
    // Around every extent boundary (the interesting blocks of huge sparse files).
    if let Ok(exts) = fs.extents(inode) {
        for (i, e) in exts.iter().enumerate() {
            for b in [
                u64::from(e.lblk).wrapping_sub(1),
                u64::from(e.lblk),
                e.end() - 1,
                e.end(),
            ] {
                if let Some(pos) = b.checked_mul(bs) {
                    push(pos, 2 * i);
                    push(pos, 2 * i + 1);
                }
            }
        }
    }
    // EOF: the last byte, the first byte past it, the last block of the 2^32 block space.
    for pos in [
        size.saturating_sub(1),
        size,
        size + 1,
        (u64::from(u32::MAX)) * bs,
    ] {
        push(pos, 2);
        push(pos, 3);
    }
    out
}

/// Same answer, or the same kind of error.
fn same(
    a: &Result<(Mapping, TierKind), QueryError>,
    b: &Result<(Mapping, TierKind), QueryError>,
) -> bool {
    match (a, b) {
        (Ok((x, _)), Ok((y, _))) => x == y,
        (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
        _ => false,
    }
}

fn build(fs: &Arc<Fs>, tier: Tier, models: Models<'_>) -> TierStack {
    let (stack, report) = TierStack::build(fs.clone(), tier, models, StackOptions { audit: true })
        .unwrap_or_else(|e| panic!("building a {tier:?} stack: {e}"));
    assert!(
        report.models_invalid.is_empty(),
        "{tier:?}: invalid models {:?}",
        report.models_invalid
    );
    stack
}

/// The pack `training fit` would write for this image.
fn pack_for(fs: &Fs, params: FitParams) -> Pack {
    let trained = predictor::train::train(fs, &params, 2, &|_| ());
    assert!(trained.errors.is_empty(), "training: {:?}", trained.errors);
    trained.pack
}

fn assert_clean(name: &str, stats: &StackStats) {
    assert_eq!(stats.audit_mismatches, 0, "{name}: audit mismatches");
    assert_eq!(
        stats.tier(TierKind::Learned).missed,
        0,
        "{name}: learned misses with fresh models"
    );
}

#[test]
fn every_tier_equals_ondisk_on_every_image() {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    assert!(!images.is_empty());
    for img in images {
        let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{}: {e}", img.name)));
        let reference = build(&fs, Tier::Ondisk, Models::None);
        let narrow = FitParams {
            max_window: 2,
            ..Default::default()
        };
        let pack = pack_for(&fs, FitParams::default());
        let pack = Pack::from_bytes(&pack.to_bytes())
            .unwrap_or_else(|e| panic!("{}: pack round trip: {e}", img.name));
        let stacks = [
            (
                "predictor (fit)",
                build(&fs, Tier::Learned, Models::Fit(FitParams::default())),
            ),
            (
                "predictor (fit, window 2)",
                build(&fs, Tier::Learned, Models::Fit(narrow)),
            ),
            (
                "predictor (pack)",
                build(&fs, Tier::Learned, Models::Pack(&pack)),
            ),
            (
                "predictor (no models)",
                build(&fs, Tier::Learned, Models::None),
            ),
            ("btree", build(&fs, Tier::Btree, Models::None)),
            ("sorted", build(&fs, Tier::Sorted, Models::None)),
            ("rangemap", build(&fs, Tier::RangeMap, Models::None)),
            ("iext32", build(&fs, Tier::Iext, Models::None)),
            ("compact", build(&fs, Tier::Compact, Models::None)),
            ("compact (pack)", compact_from_pack(&fs, &pack, &img.name)),
            ("chosen", build(&fs, Tier::Chosen, Models::None)),
        ];
        let mut checked = 0u64;
        for ino in reference.inodes() {
            for q in queries(&fs, &reference, ino) {
                let want = reference.query(q);
                for (name, stack) in &stacks {
                    let got = stack.query(q);
                    assert!(
                        same(&got, &want),
                        "{} {q:?}: {name} gave {got:?}, ondisk {want:?}",
                        img.name
                    );
                }
                checked += 1;
            }
        }
        for (name, stack) in &stacks {
            assert_clean(name, &stack.stats());
        }
        // The kernel-style tree and the compact learned index hold whole maps: they answer
        // every query of a file they loaded, never missing or declining; the compact index's
        // answers were each re-checked against the on-disk walk (audit mode, 0 mismatches).
        for (prefix, kind) in [("iext", TierKind::Iext), ("compact", TierKind::Compact)] {
            let named: Vec<_> = stacks
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .collect();
            assert!(!named.is_empty(), "no {prefix} stack");
            for (_, stack) in named {
                let s = stack.stats().tier(kind);
                assert_eq!(
                    (s.missed, s.declined),
                    (0, 0),
                    "{}: {prefix} fell through",
                    img.name
                );
                assert!(
                    s.answered > 0 || checked == 0,
                    "{}: {prefix} answered nothing",
                    img.name
                );
                if kind == TierKind::Compact {
                    let audited = stack.stats().audit_checked;
                    assert_eq!(audited, s.answered, "{}: compact audits", img.name);
                }
            }
        }
        // The per-file choice holds whole maps too, whatever it chose: it never misses or
        // declines, and every in-memory answer was audited against the on-disk walk.
        let chosen = stacks
            .iter()
            .find(|(n, _)| *n == "chosen")
            .map(|(_, s)| s.stats())
            .unwrap_or_else(|| panic!("no chosen stack"));
        let kinds = [TierKind::Compact, TierKind::Learned, TierKind::Iext];
        for kind in kinds {
            let s = chosen.tier(kind);
            assert_eq!(
                (s.missed, s.declined),
                (0, 0),
                "{}: chosen {kind:?}",
                img.name
            );
        }
        let answered: u64 = kinds.iter().map(|&k| chosen.tier(k).answered).sum();
        assert_eq!(
            chosen.audit_checked, answered,
            "{}: chosen audits",
            img.name
        );
        let learned = stacks[0].1.stats().tier(TierKind::Learned).answered;
        assert!(
            learned > 0 || checked == 0,
            "{}: the learned tier answered nothing",
            img.name
        );
        eprintln!(
            "{}: {checked} queries x {} tiers agree with ondisk",
            img.name,
            stacks.len()
        );
    }
}

/// The compact tier over a fresh pack: every file whose compact form has lines takes them
/// from the pack (none fitted at load, none refused).
fn compact_from_pack(fs: &Arc<Fs>, pack: &Pack, image: &str) -> TierStack {
    let (stack, report) = TierStack::build(
        fs.clone(),
        Tier::Compact,
        Models::Pack(pack),
        StackOptions { audit: true },
    )
    .unwrap_or_else(|e| panic!("{image}: building a compact stack from the pack: {e}"));
    let packed = stack
        .inodes()
        .filter(|&ino| {
            stack
                .compact(ino)
                .is_some_and(|c| c.form() == predictor::LearnedForm::Packed)
        })
        .count();
    assert_eq!(
        (report.models_active, report.models_untrained),
        (packed, 0),
        "{image}: compact lines from the pack"
    );
    assert!(
        report.models_stale.is_empty() && report.models_invalid.is_empty(),
        "{image}: {:?} {:?}",
        report.models_stale,
        report.models_invalid
    );
    stack
}

/// A stale pack entry disables that file's model only; answers stay right and are counted as
/// declined by the learned tier.
#[test]
fn stale_pack_entries_fall_back_per_file() {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let Some(img) = images.iter().max_by_key(|i| i.files.len()) else {
        imagekit::skip(
            "stale_pack_entries_fall_back_per_file",
            "no standard image was built",
        );
        return;
    };
    let fs = Arc::new(Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{}: {e}", img.name)));
    let reference = build(&fs, Tier::Ondisk, Models::None);
    let mut pack = pack_for(&fs, FitParams::default());
    let mut inos: Vec<u32> = pack.entries.keys().copied().collect();
    inos.sort_unstable();
    let [gen_victim, fp_victim, ..] = inos[..] else {
        panic!("{}: need two files with models", img.name)
    };
    if let Some(e) = pack.entries.get_mut(&gen_victim) {
        e.generation ^= 1;
    }
    if let Some(e) = pack.entries.get_mut(&fp_victim) {
        e.fingerprint ^= 1;
    }
    let stack = build(&fs, Tier::Learned, Models::Pack(&pack));
    assert!(matches!(
        stack.model_status(gen_victim),
        Some(ModelStatus::StaleGeneration { .. })
    ));
    assert!(matches!(
        stack.model_status(fp_victim),
        Some(ModelStatus::StaleFingerprint { .. })
    ));
    let others_active = inos[2..]
        .iter()
        .all(|i| matches!(stack.model_status(*i), Some(ModelStatus::Active { .. })));
    assert!(others_active, "other files keep their models");
    for ino in [gen_victim, fp_victim] {
        for q in queries(&fs, &reference, ino).into_iter().take(2000) {
            assert!(same(&stack.query(q), &reference.query(q)), "{q:?}");
        }
    }
    let s = stack.stats();
    assert!(s.tier(TierKind::Learned).declined > 0);
    assert_eq!(
        s.tier(TierKind::Learned).answered,
        0,
        "only stale files were queried"
    );
    // A pack for another image is refused outright.
    let mut alien = pack.clone();
    alien.header.uuid[0] ^= 1;
    assert!(TierStack::build(
        fs,
        Tier::Learned,
        Models::Pack(&alien),
        StackOptions::default()
    )
    .is_err());
}
