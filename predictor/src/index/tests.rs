//! Every structure against [`SortedIndex`], on synthetic maps, at every interesting block.

use super::*;
use crate::model::{FinalFit, FitParams, Model};
use crate::synth::{allocator_like, regular, uniform_queries};

/// Named extent maps covering the edge cases.
pub(crate) fn maps() -> Vec<(&'static str, Vec<Extent>)> {
    let e = |lblk, len, unwritten| Extent {
        lblk,
        pblk: 5000 + u64::from(lblk),
        len,
        unwritten,
    };
    vec![
        ("empty", vec![]),
        ("one at 0", vec![e(0, 8, false)]),
        ("one after a hole", vec![e(100, 1, true)]),
        ("two touching", vec![e(0, 4, false), e(4, 4, true)]),
        ("two apart", vec![e(3, 2, false), e(1000, 7, false)]),
        (
            "first and last block",
            vec![e(0, 1, false), e(u32::MAX - 1, 1, true)],
        ),
        (
            "ends at the last block",
            regular(300, u32::MAX - 299 * 11 - 10, 10, 1),
        ),
        ("regular", regular(1000, 0, 8, 8)),
        ("regular touching", regular(1000, 7, 1, 0)),
        ("sparse huge gaps", regular(50, 17, 3, 80_000_000)),
        ("allocator 5k", allocator_like(5000, 7)),
    ]
}

/// Blocks around every extent boundary plus the ends of the block space.
pub(crate) fn probe_blocks(exts: &[Extent]) -> Vec<u32> {
    let mut q = vec![0, 1, u32::MAX - 1, u32::MAX];
    for x in exts {
        let end = x.end();
        for v in [
            u64::from(x.lblk).wrapping_sub(1),
            u64::from(x.lblk),
            u64::from(x.lblk) + 1,
            end - 1,
            end,
            end + 1,
        ] {
            if let Ok(v) = u32::try_from(v) {
                q.push(v);
            }
        }
    }
    q.extend(uniform_queries(exts, 2000, 99));
    q
}

fn learned_variants(exts: &[Extent]) -> Vec<(String, LearnedIndex)> {
    let mut v = Vec::new();
    // Lines are fitted with at most the lookup's WINDOW, whatever is asked.
    for max_window in [2, 3, 4, 16, 32, 1024] {
        for final_fit in [FinalFit::Linfa, FinalFit::ClosedForm] {
            let params = FitParams {
                max_window,
                final_fit,
            };
            let l = LearnedIndex::with_storage(exts, &params, Storage::Records).unwrap();
            v.push((format!("learned w={max_window} {final_fit:?}"), l));
        }
    }
    v
}

fn assert_all_agree(name: &str, exts: &[Extent], queries: &[u32]) {
    check_extents(exts).unwrap();
    let reference = SortedIndex::new(exts.to_vec());
    let mut others: Vec<(String, Box<dyn ExtentIndex>)> = vec![
        ("btree".into(), Box::new(BTreeIndex::new(exts))),
        ("rangemap".into(), Box::new(RangeMapIndex::new(exts))),
        (
            "iext xfs16".into(),
            Box::new(XfsIextIndex::new(exts).unwrap()),
        ),
        (
            "iext fuse32".into(),
            Box::new(FuseIextIndex::new(exts).unwrap()),
        ),
    ];
    for (n, l) in learned_variants(exts) {
        others.push((n, Box::new(l)));
    }
    for max_window in [2, 32] {
        let params = FitParams {
            max_window,
            ..FitParams::default()
        };
        let c = LearnedIndex::with_storage(exts, &params, Storage::Packed).unwrap();
        assert_eq!(c.extents(), exts, "map {name}: compact round trip");
        others.push((format!("compact w={max_window}"), Box::new(c)));
    }
    for &q in queries {
        let want = reference.find(q);
        assert!(matches!(want, Lookup::Found(_)));
        for (n, ix) in &others {
            assert_eq!(ix.find(q), want, "map {name}, structure {n}, block {q}");
        }
    }
}

#[test]
fn every_structure_equals_sorted_on_edge_maps() {
    for (name, exts) in maps() {
        assert_all_agree(name, &exts, &probe_blocks(&exts));
    }
}

#[test]
fn every_structure_equals_sorted_on_a_huge_map() {
    let exts = allocator_like(200_000, 3);
    let mut q = uniform_queries(&exts, 20_000, 5);
    q.extend(
        exts.iter()
            .step_by(97)
            .flat_map(|e| [e.lblk, (e.end() - 1) as u32, e.end() as u32]),
    );
    assert_all_agree("allocator 200k", &exts, &q);
}

#[test]
fn sorted_reference_is_right_by_brute_force() {
    let exts = allocator_like(300, 11);
    let sorted = SortedIndex::new(exts.clone());
    for q in 0..(crate::synth::span(&exts) + 10) as u32 {
        let at = exts.iter().find(|e| e.contains(q)).copied();
        let want = match at {
            Some(e) => BlockMap::Mapped(e),
            None => BlockMap::Hole {
                next: exts.iter().find(|e| e.lblk > q).map(|e| e.lblk),
            },
        };
        assert_eq!(sorted.find(q), Lookup::Found(want), "block {q}");
    }
}

/// A model whose lines are wrong but whose shape fits: the index must miss, never lie.
#[test]
fn a_wrong_model_misses_but_never_answers_wrongly() {
    let exts = allocator_like(5000, 21);
    let params = FitParams {
        max_window: 8,
        ..Default::default()
    };
    let good = LearnedIndex::with_storage(&exts, &params, Storage::Records)
        .unwrap()
        .model()
        .unwrap();
    let sorted = SortedIndex::new(exts.clone());
    let (mut misses, mut found) = (0, 0);
    for shift in [-3i64, 1, 40, 100_000] {
        let mut bad: Model = good.clone();
        for s in &mut bad.segments {
            s.fixed.intercept += shift << crate::model::FIXED_INTERCEPT_SHIFT;
            s.fixed.e_lo = 0;
            s.fixed.e_hi = 0;
        }
        for storage in [Storage::Records, Storage::Packed] {
            let l = LearnedIndex::with_model(&exts, &bad, storage).unwrap();
            for q in probe_blocks(&exts) {
                match l.find(q) {
                    Lookup::Found(bm) => {
                        assert_eq!(Lookup::Found(bm), sorted.find(q), "shift {shift} block {q}");
                        found += 1;
                    }
                    Lookup::Missed => misses += 1,
                    Lookup::Declined => panic!("learned index declined"),
                }
            }
        }
    }
    assert!(misses > 0, "the broken models should miss somewhere");
    assert!(found > 1000, "only {found} answers checked");
}

#[test]
fn learned_rejects_models_of_other_maps() {
    let a = allocator_like(100, 1);
    let b = allocator_like(101, 2);
    let ma = LearnedIndex::learned(&a).unwrap().model().unwrap();
    let mut shifted = a.clone();
    for e in &mut shifted {
        e.lblk += 1;
    }
    for storage in [Storage::Records, Storage::Packed] {
        assert!(
            LearnedIndex::with_model(&b, &ma, storage).is_err(),
            "count differs"
        );
        assert!(
            LearnedIndex::with_model(&shifted, &ma, storage).is_err(),
            "first keys differ"
        );
    }
}

#[test]
fn check_extents_rejects_bad_maps() {
    let e = |lblk, len| Extent {
        lblk,
        pblk: 1,
        len,
        unwritten: false,
    };
    assert!(check_extents(&[e(5, 1), e(5, 1)]).is_err());
    assert!(check_extents(&[e(5, 3), e(6, 1)]).is_err());
    assert!(check_extents(&[e(5, 0)]).is_err());
    assert!(check_extents(&[e(u32::MAX - 1, 2)]).is_err());
    assert!(check_extents(&[e(u32::MAX, 1)]).is_err());
    assert!(check_extents(&[e(0, 5), e(5, 1), e(u32::MAX - 1, 1)]).is_ok());
}

#[test]
fn heap_bytes_are_plausible() {
    let exts = allocator_like(10_000, 4);
    let l = LearnedIndex::learned(&exts).unwrap();
    // The records, the kernel's iext record size (and 8 bytes of padding), and a model a
    // fraction of them.
    assert_eq!(l.heap_bytes() - l.model_bytes(), 16 * 10_000 + 8);
    assert!(l.model_bytes() < 4 * 10_000, "model {} B", l.model_bytes());
    let b = BTreeIndex::new(&exts).heap_bytes();
    assert!(b > 20 * 10_000 && b < 40 * 10_000, "btree estimate {b}");
    // Full nodes: 256 bytes per 15 (or 7) extents, plus about one inner node per 16 leaves.
    let x = XfsIextIndex::new(&exts).unwrap().heap_bytes();
    assert_eq!(x, (667 + 42 + 3 + 1) * 256, "xfs16 tree bytes");
    let f = FuseIextIndex::new(&exts).unwrap().heap_bytes();
    assert_eq!(f, (1429 + 90 + 6 + 1) * 256, "fuse32 tree bytes");
}

/// Every extent map the other tests use, read back through the iext trees' leaf chains.
#[test]
fn iext_leaf_chains_hold_every_extent_in_order() {
    let mut all = maps();
    all.push(("allocator 100k", allocator_like(100_000, 8)));
    for (name, exts) in all {
        assert_eq!(XfsIextIndex::new(&exts).unwrap().extents(), exts, "{name}");
        assert_eq!(FuseIextIndex::new(&exts).unwrap().extents(), exts, "{name}");
    }
}
