//! Property tests: on random extent maps and random blocks, every structure answers what
//! [`SortedIndex`] answers, and every model's window holds the true extent index.
//!
//! Maps have up to 3000 extents with gaps and lengths from a block to billions (log-uniform,
//! with a per-map scale for gaps), 20% unwritten, starting anywhere in the 32-bit block space, some ending exactly at the last
//! addressable block. One map in eight is "wild": lengths and physical blocks beyond what the
//! XFS record packs, so that layout must refuse the map (and only then).

use proptest::prelude::*;

use super::*;
use crate::model::{fit_extents, FitParams, Form};

/// Log-uniform in `[1, 2^bits)`: mostly small values, some large, like real gaps and lengths.
fn log_uniform(bits: u32) -> impl Strategy<Value = u64> {
    (0..bits, any::<u64>()).prop_map(|(b, r)| (1u64 << b) + r % (1u64 << b))
}

/// Gap before an extent: none (40%), else log-uniform below `2^bits`.
fn gap(bits: u32) -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(0u64), 3 => log_uniform(bits)]
}

/// Length of an extent; `wild` adds lengths the XFS record cannot hold (2^21 and more).
fn len(wild: bool) -> BoxedStrategy<u32> {
    let tame = prop_oneof![
        16 => 1..64u32,
        4 => 64..32_769u32,
        1 => 32_769..(1u32 << 21),
    ];
    if wild {
        prop_oneof![20 => tame, 1 => (1u32 << 21)..=u32::MAX].boxed()
    } else {
        tame.boxed()
    }
}

/// Physical start; `wild` adds blocks at and above 2^52.
fn pblk(wild: bool) -> BoxedStrategy<u64> {
    let tame = prop_oneof![4 => 0..(1u64 << 32), 1 => 0..(1u64 << 52)];
    if wild {
        prop_oneof![20 => tame, 1 => (1u64 << 52)..=u64::MAX].boxed()
    } else {
        tame.boxed()
    }
}

/// A valid extent map: extents laid out from `start` by the drawn gaps and lengths, cut at the
/// end of the block space, then (if `to_end`) shifted so the last ends at [`ext4::MAX_LBLK`].
fn extent_map() -> impl Strategy<Value = Vec<Extent>> {
    // Per map: wild or not, and how far apart extents lie (up to 2^32: only a few fit).
    (
        prop::bool::weighted(0.125),
        prop_oneof![Just(8u32), Just(14), Just(20), Just(32)],
    )
        .prop_flat_map(|(wild, gap_bits)| {
            (
                prop_oneof![Just(0u64), 0..1000u64, 0..(1u64 << 32)],
                prop::bool::weighted(0.25),
                prop::collection::vec(
                    (
                        gap(gap_bits),
                        len(wild),
                        prop::bool::weighted(0.2),
                        pblk(wild),
                    ),
                    0..3000,
                ),
            )
                .prop_map(|(start, to_end, parts)| lay_out(start, to_end, &parts))
        })
}

fn lay_out(start: u64, to_end: bool, parts: &[(u64, u32, bool, u64)]) -> Vec<Extent> {
    let mut exts = Vec::with_capacity(parts.len());
    let mut at = start;
    for (i, &(gap, len, unwritten, pblk)) in parts.iter().enumerate() {
        if i > 0 {
            at += gap;
        }
        // Cut the extent at the end of the block space; stop once nothing fits.
        let len = u64::from(len).min(ext4::MAX_LBLK.saturating_sub(at));
        let (Ok(lblk), Ok(len)) = (u32::try_from(at), u32::try_from(len)) else {
            break;
        };
        if len == 0 {
            break;
        }
        exts.push(Extent {
            lblk,
            pblk,
            len,
            unwritten,
        });
        at += u64::from(len);
    }
    if to_end {
        let shift = ext4::MAX_LBLK - crate::synth::span(&exts);
        for e in &mut exts {
            // OK to narrow: every extent ends at or before MAX_LBLK after the shift.
            e.lblk = (u64::from(e.lblk) + shift) as u32;
        }
    }
    exts
}

/// Random blocks, plus the blocks around every boundary of the map.
fn blocks(exts: &[Extent], random: &[u32]) -> Vec<u32> {
    let mut q: Vec<u32> = random.to_vec();
    q.extend([0, 1, u32::MAX - 1, u32::MAX]);
    for e in exts {
        for v in [
            u64::from(e.lblk).wrapping_sub(1),
            u64::from(e.lblk),
            e.end() - 1,
            e.end(),
        ] {
            if let Ok(v) = u32::try_from(v) {
                q.push(v);
            }
        }
    }
    q
}

/// Index of the last extent starting at or before `q`.
fn truth(exts: &[Extent], q: u32) -> Option<usize> {
    exts.partition_point(|e| e.lblk <= q).checked_sub(1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_structure_equals_sorted(
        exts in extent_map(),
        random in prop::collection::vec(any::<u32>(), 0..300),
    ) {
        check_extents(&exts).unwrap();
        let fits_xfs = exts
            .iter()
            .all(|e| e.len < 1 << 21 && e.pblk < 1 << 52);
        let xfs = XfsIextIndex::new(&exts);
        prop_assert_eq!(xfs.is_ok(), fits_xfs, "xfs16 builds iff every extent fits");

        let mut structures: Vec<(String, Box<dyn ExtentIndex>)> = vec![
            ("iext fuse32".into(), Box::new(FuseIextIndex::new(&exts).unwrap())),
            ("btree".into(), Box::new(BTreeIndex::new(&exts))),
            ("rangemap".into(), Box::new(RangeMapIndex::new(&exts))),
        ];
        if let Ok(x) = xfs {
            structures.push(("iext xfs16".into(), Box::new(x)));
        }
        for max_window in [2, FitParams::default().max_window] {
            let params = FitParams { max_window, ..FitParams::default() };
            let c = LearnedIndex::with_storage(&exts, &params, Storage::Packed).unwrap();
            prop_assert_eq!(&c.extents(), &exts, "compact w={} round trip", max_window);
            structures.push((format!("compact w={max_window}"), Box::new(c)));
        }
        let mut models = Vec::new();
        for max_window in [2, FitParams::default().max_window] {
            let params = FitParams { max_window, ..FitParams::default() };
            let (model, _) = fit_extents(&exts, &params).unwrap();
            let l = LearnedIndex::with_storage(&exts, &params, Storage::Records).unwrap();
            prop_assert_eq!(&l.extents(), &exts, "learned w={} round trip", max_window);
            structures.push((format!("learned w={max_window}"), Box::new(l)));
            models.push((max_window, model));
        }

        let reference = SortedIndex::new(exts.clone());
        for q in blocks(&exts, &random) {
            let want = reference.find(q);
            for (name, s) in &structures {
                prop_assert_eq!(s.find(q), want, "{} at block {}", name, q);
            }
            let j = truth(&exts, q);
            for (max_window, m) in &models {
                for form in [Form::Float, Form::Fixed] {
                    match (j, m.window_for(q, form)) {
                        (None, None) => {}
                        (Some(j), Some((lo, hi))) => prop_assert!(
                            lo <= j && j <= hi,
                            "w={} {:?} block {}: index {} not in [{}, {}]",
                            max_window, form, q, j, lo, hi
                        ),
                        (j, w) => prop_assert!(
                            false,
                            "w={} {:?} block {}: index {:?}, window {:?}",
                            max_window, form, q, j, w
                        ),
                    }
                }
            }
        }
    }

    /// The compact form of a map never holds more bytes than the kernel's iext tree with
    /// 16-byte records holds for it (whenever the tree can hold the map at all): a user who
    /// shapes a file's map cannot make the learned tier cost more memory than the kernel's.
    #[test]
    fn compact_never_holds_more_than_the_kernel_tree(exts in extent_map()) {
        let Ok(tree) = XfsIextIndex::new(&exts) else {
            return Ok(());
        };
        let c = LearnedIndex::new(&exts).unwrap();
        prop_assert!(
            c.heap_bytes() <= tree.heap_bytes(),
            "{} extents: compact {:?} {} B, iext16 {} B",
            exts.len(),
            c.form(),
            c.heap_bytes(),
            tree.heap_bytes()
        );
    }
}

/// A map of the adversarial generator: a random genome, mutated a few times, realised.
fn adversarial_map() -> impl Strategy<Value = Vec<Extent>> {
    (any::<u64>(), 0..2500usize, 0..6u32).prop_map(|(seed, n, mutations)| {
        let mut rng = crate::synth::Rng::new(seed);
        let mut g = crate::adversary::Genome::random(&mut rng);
        for _ in 0..mutations {
            g = g.mutated(&mut rng);
        }
        crate::adversary::realise(&g, n)
    })
}

/// Most keys fitting may visit per extent for a map of `n` extents, the compact index's and
/// the learned index's fits together: per fit, galloping visits at most 4 L keys for a
/// segment of L, bisecting at most 2 L per step for log2(L) + 1 steps, the final line 2 L.
/// L is at most `min(n, MAX_SEGMENT_LEN)`, so the bound per extent is a constant (108 at the
/// largest segment): fitting is linear in extents.
pub(crate) fn fit_work_bound(n: usize) -> f64 {
    let l = n.clamp(2, crate::model::MAX_SEGMENT_LEN);
    let log = f64::from(usize::BITS - (l - 1).leading_zeros());
    2.0 * (6.0 + 2.0 * log)
}

/// The per-file choice over `exts`: at most the kernel tree's bytes, its counted cost within
/// the slack of the cheapest eligible and so of the tree's, and every answer the sorted
/// array's.
fn check_choice(exts: &[Extent], random: &[u32]) -> Result<(), TestCaseError> {
    use super::choose::{boxed_bytes, choose_index, SLACK_PERCENT};
    let (chosen, index) = choose_index(exts).unwrap();
    if let Ok(tree) = XfsIextIndex::new(exts) {
        prop_assert!(
            chosen.chosen.bytes <= boxed_bytes(&tree),
            "{} extents: chosen {:?}, iext16 {} B",
            exts.len(),
            chosen.chosen,
            boxed_bytes(&tree)
        );
    }
    prop_assert!(chosen.chosen.bytes <= chosen.reference.bytes);
    prop_assert!(
        chosen.chosen.lines * 100.0 <= chosen.reference.lines * (100 + SLACK_PERCENT) as f64,
        "{:?}",
        chosen
    );
    prop_assert_eq!(index.heap_bytes(), chosen.chosen.bytes);
    let reference = SortedIndex::new(exts.to_vec());
    let mut checked = 0;
    for q in blocks(exts, random) {
        prop_assert_eq!(index.find(q), reference.find(q), "block {}", q);
        checked += 1;
    }
    prop_assert!(checked > 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The per-file choice never holds more than the kernel's tree, on generated maps (wild
    /// ones included, where the 16-byte tree cannot hold them and the 32-byte one is the
    /// reference).
    #[test]
    fn choice_never_worse_than_the_kernel_tree(
        exts in extent_map(),
        random in prop::collection::vec(any::<u32>(), 0..100),
    ) {
        check_choice(&exts, &random)?;
    }

    /// The same on the adversarial generator's maps.
    #[test]
    fn choice_never_worse_on_adversarial_maps(
        exts in adversarial_map(),
        random in prop::collection::vec(any::<u32>(), 0..100),
    ) {
        check_choice(&exts, &random)?;
    }

    /// Fitting is linear in extents: the keys it visits per extent stay under a constant.
    #[test]
    fn fitting_work_is_linear(exts in prop_oneof![extent_map(), adversarial_map()]) {
        let per = crate::adversary::fit_work_per_extent(&exts);
        prop_assert!(
            per <= fit_work_bound(exts.len()),
            "{} extents: {} keys visited per extent, bound {}",
            exts.len(),
            per,
            fit_work_bound(exts.len())
        );
    }
}

/// The adversarial search's worst maps (a small budget) obey the choice rule too.
#[test]
fn choice_on_the_worst_maps() {
    for found in crate::adversary::worst_maps(1, crate::adversary::Budget::QUICK) {
        assert!(!found.extents.is_empty(), "{}", found.name);
        check_choice(&found.extents, &[]).unwrap();
        let per = crate::adversary::fit_work_per_extent(&found.extents);
        assert!(
            per <= fit_work_bound(found.extents.len()),
            "{}: {per}",
            found.name
        );
    }
}
