use super::*;
use crate::index::tests::probe_blocks;
use crate::index::SortedIndex;
use crate::synth::allocator_like;

/// `n` extents of `len` blocks every `step` blocks from `lblk`, physically `pstep` apart.
fn run(lblk: u32, n: u32, step: u32, len: u32, pblk: u64, pstep: u64) -> Vec<Extent> {
    (0..n)
        .map(|i| Extent {
            lblk: lblk + i * step,
            pblk: pblk.wrapping_add(pstep.wrapping_mul(u64::from(i))),
            len,
            unwritten: false,
        })
        .collect()
}

/// Runs and allocator-like stretches alternating, some runs shorter than [`RUN_MIN`].
fn mixed() -> Vec<Extent> {
    let mut exts = Vec::new();
    let mut at = 0u32;
    for (i, n) in [40u32, 5, 300, 15, 16, 1000, 2].into_iter().enumerate() {
        let mut stretch = allocator_like(200 + i * 37, i as u64);
        for e in &mut stretch {
            e.lblk += at;
        }
        at = crate::synth::span(&stretch) as u32 + 3;
        exts.extend(stretch);
        // Descending physical layout for one of them.
        let pstep = if i == 2 { 0u64.wrapping_sub(9) } else { 9 };
        exts.extend(run(at, n, 7, 4, 1 << 30, pstep));
        at += n * 7 + 1;
    }
    exts
}

fn agree(exts: &[Extent], c: &LearnedIndex) {
    assert_eq!(c.extents(), exts);
    let reference = SortedIndex::new(exts.to_vec());
    for q in probe_blocks(exts) {
        assert_eq!(c.find(q), reference.find(q), "block {q}");
    }
}

#[test]
fn mixed_runs_and_lines_are_exact() {
    let exts = mixed();
    let c = LearnedIndex::new(&exts).unwrap();
    assert_eq!(c.form(), LearnedForm::Packed);
    let s = c.shape();
    // The runs of 40, 300, 16 and 1000 extents; 5, 15 and 2 are packed.
    assert_eq!((s.runs, s.run_extents), (4, 40 + 300 + 16 + 1000));
    assert_eq!(s.extents, exts.len());
    assert_eq!(s.packed_extents, exts.len() - s.run_extents);
    agree(&exts, &c);
}

#[test]
fn forms_follow_the_cost_benefit_rule() {
    let exts = allocator_like(100, 1);
    let form = |n: usize| LearnedIndex::new(&exts[..n]).unwrap().form();
    assert_eq!(form(0), LearnedForm::Empty);
    assert_eq!(form(1), LearnedForm::One);
    assert_eq!(form(PLAIN_MAX), LearnedForm::Plain);
    assert_eq!(form(100), LearnedForm::Packed);
    // Past PLAIN_MAX the packed form is taken only where it is the smaller.
    for n in PLAIN_MAX + 1..=100 {
        let c = LearnedIndex::new(&exts[..n]).unwrap();
        assert!(
            c.heap_bytes() <= n * std::mem::size_of::<Extent>(),
            "{n} extents"
        );
    }
    assert_eq!(LearnedIndex::new(&exts[..1]).unwrap().heap_bytes(), 0);
    // A whole-file run stores no extent at all.
    let r = run(10, 100_000, 3, 2, 77, 3);
    let c = LearnedIndex::new(&r).unwrap();
    assert_eq!(c.shape().packed_extents, 0);
    assert!(c.heap_bytes() < 256, "{} bytes", c.heap_bytes());
    agree(&r, &c);
}

#[test]
fn key_widths_follow_the_blocks_spans() {
    // Extents 2^12 blocks apart: a block of 64 spans 2^18 blocks, past u16 offsets. Then
    // 1,000 blocks apart: u16. Both with a partial last block (padding never counted).
    for (gap, width) in [(1u32 << 12, KeyWidth::U32), (1000, KeyWidth::U16)] {
        let exts: Vec<Extent> = allocator_like(1000 + 37, 3)
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                e.lblk = i as u32 * gap;
                e.len = e.len.min(gap - 1);
                e
            })
            .collect();
        let c = LearnedIndex::new(&exts).unwrap();
        assert!(c.shape().lines > 0, "gap {gap}: {:?}", c.shape());
        let Form::Pieces(p) = &c.form else {
            panic!("gap {gap}: {:?}", c.form());
        };
        for piece in p.pieces.iter() {
            if let Body::Line(Stored::Packed(l)) = piece.body {
                assert_eq!(l.kw, width, "gap {gap}");
            }
        }
        agree(&exts, &c);
    }
}

#[test]
fn windows_wider_than_the_count_are_narrowed() {
    // A caller's max_window above WINDOW: lines are fitted with WINDOW, lookups stay exact.
    let exts = allocator_like(20_000, 4);
    let params = FitParams {
        max_window: 4096,
        ..FitParams::default()
    };
    let c = LearnedIndex::with_storage(&exts, &params, Storage::Packed).unwrap();
    if let Form::Pieces(p) = &c.form {
        for piece in p.pieces.iter() {
            if let Body::Line(Stored::Packed(l)) = piece.body {
                assert!(l.fixed().window() <= WINDOW as u64, "{:?}", l.fixed());
            }
        }
    }
    agree(&exts, &c);
}

#[test]
fn window_counts_agree_with_the_portable_sum() {
    // Sorted slots (offsets, then padding), every query offset around each of them.
    let mut rng = crate::synth::Rng::new(5);
    for _ in 0..200 {
        let used = rng.below(WINDOW as u64 + 1) as usize;
        let mut offs: Vec<u16> = (0..used).map(|_| rng.below(0xFFFF) as u16).collect();
        offs.sort_unstable();
        offs.resize(WINDOW, u16::MAX);
        let mut w = [0u8; 2 * WINDOW];
        for (c, o) in w.chunks_exact_mut(2).zip(&offs) {
            c.copy_from_slice(&o.to_le_bytes());
        }
        for &o in &offs {
            for qd in [
                o.saturating_sub(1),
                o,
                o.saturating_add(1).min(0xFFFE),
                0,
                0xFFFE,
            ] {
                let want = offs.iter().filter(|&&x| x <= qd).count();
                assert_eq!(count_u16_portable(&w, qd), want);
                assert_eq!(count_u16(&w, qd), want, "{offs:?} {qd}");
            }
        }
    }
}

#[test]
fn u32_counts_agree_with_the_portable_sum() {
    // Keys anywhere in u32 (the top bit both ways: the SSE2 compare is signed underneath),
    // sorted or not, every length up to a window and a group more.
    let mut rng = crate::synth::Rng::new(9);
    for _ in 0..300 {
        let n = rng.below(WINDOW as u64 + 6) as usize;
        let mut keys: Vec<u32> = (0..n).map(|_| rng.below(1 << 32) as u32).collect();
        if rng.below(2) == 0 {
            keys.sort_unstable();
        }
        let w: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
        let probes = keys
            .iter()
            .flat_map(|&k| [k.wrapping_sub(1), k, k.wrapping_add(1)]);
        for q in probes.chain([0, u32::MAX, 1 << 31, (1 << 31) - 1]) {
            let want = keys.iter().filter(|&&k| k <= q).count();
            assert_eq!(count_u32_portable(&w, q), want);
            assert_eq!(count_u32(&w, q), want, "{keys:?} {q}");
        }
    }
}

#[test]
fn u31_counts_agree_with_the_portable_sum() {
    // Sorted windows of keys below 2^31 (what a piece with `low` holds), against queries on
    // both sides of 2^31: the count compares signed, with `q` clamped below it.
    let mut rng = crate::synth::Rng::new(11);
    for _ in 0..300 {
        let top = [1u64 << 12, 1 << 31][rng.below(2) as usize];
        let mut keys: Vec<u32> = (0..WINDOW).map(|_| rng.below(top) as u32).collect();
        keys.sort_unstable();
        let w: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
        let w: &[u8; 4 * WINDOW] = w.as_slice().try_into().unwrap();
        let probes = keys
            .iter()
            .flat_map(|&k| [k.wrapping_sub(1), k, k.wrapping_add(1)]);
        for q in probes.chain([0, u32::MAX, 1 << 31, (1 << 31) - 1]) {
            let want = keys.iter().filter(|&&k| k <= q).count();
            assert_eq!(count_u31(w, q), want, "{keys:?} {q}");
        }
    }
}

#[test]
fn records_past_two_to_the_31_are_exact() {
    // Line pieces whose keys reach 2^31 and beyond (counted with the sign flip) beside ones
    // below it (counted without), and runs between them.
    let mut exts = mixed();
    let below = exts.len();
    let high: Vec<Extent> = mixed()
        .into_iter()
        .map(|e| Extent {
            lblk: e.lblk + (1 << 31) - 20_000,
            ..e
        })
        .collect();
    exts.extend(high);
    let r = LearnedIndex::learned(&exts).unwrap();
    assert_eq!(r.form(), LearnedForm::Records);
    assert!(exts[below - 1].lblk < 1 << 31 && exts[exts.len() - 1].lblk >= 1 << 31);
    agree(&exts, &r);
}

#[test]
fn records_lay_keys_beside_their_records() {
    let exts = mixed();
    let r = LearnedIndex::learned(&exts).unwrap();
    assert_eq!(r.form(), LearnedForm::Records);
    let LearnedLayout::Packed(p) = r.layout() else {
        panic!("no pieces");
    };
    let mut seen = 0;
    for piece in &p.pieces {
        let PieceBody::Records(l) = piece.body else {
            continue;
        };
        assert_eq!(l.recs, l.keys + 4 * l.count, "records right after the keys");
        for j in 0..l.count as usize {
            let at = |o: usize, n: usize| &p.bytes[o..o + n];
            let key = u32::from_le_bytes(at(l.keys as usize + 4 * j, 4).try_into().unwrap());
            let rec = at(l.recs as usize + KEYED_RECORD_BYTES * j, KEYED_RECORD_BYTES);
            let e = exts.iter().find(|e| e.lblk == key).unwrap();
            assert_eq!(u32::from_le_bytes(rec[..4].try_into().unwrap()), e.len);
            let flag = if e.unwritten { UNWRITTEN_BIT } else { 0 };
            assert_eq!(
                u64::from_le_bytes(rec[4..].try_into().unwrap()),
                e.pblk | flag
            );
            seen += 1;
        }
    }
    assert_eq!(seen, r.shape().record_extents);
    // 16 bytes an extent, as the records were.
    assert_eq!(p.bytes.len(), 16 * seen + 8);
    agree(&exts, &r);
}

#[test]
fn unpackable_fields_fall_back_to_the_plain_array() {
    let mut exts = allocator_like(100, 2);
    exts[50].pblk = u64::MAX - 5;
    exts[51].pblk = 3;
    let c = LearnedIndex::new(&exts).unwrap();
    assert_eq!(c.form(), LearnedForm::Plain);
    agree(&exts, &c);
}

/// A line moved by `slots` and narrowed to `width`, in its piece and its bucket copies (either
/// storage).
fn skew(c: &mut LearnedIndex, slots: i64, width: u8) {
    let Form::Pieces(p) = &mut c.form else {
        panic!("no pieces");
    };
    let pieces = p.pieces.iter_mut();
    let copies = p.buckets.iter_mut().map(|b| &mut b.piece);
    for piece in pieces.chain(copies) {
        let win = match &mut piece.body {
            Body::Line(Stored::Packed(l)) => &mut l.win,
            Body::Line(Stored::Records(r)) => &mut r.win,
            Body::Run(_) => continue,
        };
        win.lo_intercept += slots << FIXED_INTERCEPT_SHIFT;
        win.width = win.width.min(width);
    }
}

#[test]
fn wrong_lines_miss_and_never_answer_wrong() {
    let exts = mixed();
    let reference = SortedIndex::new(exts.clone());
    let blocks = probe_blocks(&exts);
    for slots in [-70, -40, -33, -9, -1, 1, 5, 31, 40, 70] {
        for (width, storage) in [0, 3, 31]
            .into_iter()
            .flat_map(|w| [(w, Storage::Packed), (w, Storage::Records)])
        {
            let mut c = LearnedIndex::with_storage(&exts, &FitParams::default(), storage).unwrap();
            skew(&mut c, slots, width);
            let mut missed = 0;
            for &q in &blocks {
                match c.find(q) {
                    Lookup::Missed => missed += 1,
                    got => assert_eq!(got, reference.find(q), "block {q}, {slots} slots"),
                }
            }
            // Far enough off, the lines miss (and the runs still answer).
            if slots.abs() >= 40 {
                assert!(
                    missed > 0,
                    "{slots} slots, width {width}, {storage:?}: no miss"
                );
            }
        }
    }
}

#[test]
fn the_lines_of_a_model_rebuild_the_same_index() {
    for exts in [mixed(), allocator_like(5000, 4)] {
        let c = LearnedIndex::new(&exts).unwrap();
        let model = c.model().unwrap();
        let s = c.shape();
        assert_eq!(model.extent_count as usize, s.packed_extents);
        assert_eq!(model.segments.len(), s.lines);
        let again = LearnedIndex::with_model(&exts, &model, Storage::Packed).unwrap();
        assert_eq!(again.model(), Some(model.clone()));
        assert_eq!(again.heap_bytes(), c.heap_bytes());
        agree(&exts, &again);
        // The same lines over records: the other storage, the same model.
        let r = LearnedIndex::with_model(&exts, &model, Storage::Records).unwrap();
        assert_eq!(r.form(), LearnedForm::Records);
        assert_eq!(r.model(), Some(model));
        let rs = r.shape();
        assert_eq!(
            (rs.record_extents, rs.packed_extents),
            (s.packed_extents, 0)
        );
        assert_eq!((rs.lines, rs.runs), (s.lines, s.runs));
        agree(&exts, &r);
        assert_eq!(
            LearnedIndex::learned(&exts).unwrap().model(),
            r.model(),
            "fitted over records: the same lines"
        );
    }
    // Forms without lines have no model to keep.
    assert_eq!(LearnedIndex::new(&mixed()[..5]).unwrap().model(), None);
}

#[test]
fn fitted_lines_are_the_built_forms_model() {
    let params = FitParams::default();
    let mut compared = 0;
    for exts in [
        mixed(),
        allocator_like(5000, 4),
        allocator_like(40_000, 9),
        crowded(300, 40),
        mixed()[..PLAIN_MAX + 1].to_vec(),
    ] {
        let built = LearnedIndex::with_storage(&exts, &params, Storage::Records).unwrap();
        let fitted = LearnedIndex::fit_lines(&exts, &params).unwrap();
        assert_eq!(
            Some(&fitted),
            built.model().as_ref(),
            "{} extents",
            exts.len()
        );
        assert!(!fitted.segments.is_empty(), "{} extents", exts.len());
        compared += 1;
    }
    assert_eq!(compared, 5);
    // A map a plain array holds has no lines.
    let small = LearnedIndex::fit_lines(&mixed()[..PLAIN_MAX], &params).unwrap();
    assert_eq!(small, Model::default());
    // Bad maps are refused as the build refuses them.
    let mut bad = mixed();
    bad.swap(0, 1);
    assert!(LearnedIndex::fit_lines(&bad, &params).is_err());
}

#[test]
fn a_model_of_another_map_is_refused() {
    let exts = mixed();
    let model = LearnedIndex::new(&exts).unwrap().model().unwrap();
    // Another map: a count or a first key differs.
    let mut moved = exts.clone();
    for e in &mut moved {
        e.lblk += 1;
    }
    assert!(LearnedIndex::with_model(&moved, &model, Storage::Records).is_err());
    assert!(LearnedIndex::with_model(&exts[..exts.len() - 1], &model, Storage::Packed).is_err());
    // A segment spanning a run: the second stretch's segment dropped.
    let second = cut(&exts).iter().filter_map(Cut::stretch).nth(1).unwrap();
    let mut spanning = model.clone();
    spanning
        .segments
        .retain(|s| s.first_key != exts[second.start].lblk);
    assert!(LearnedIndex::with_model(&exts, &spanning, Storage::Records).is_err());
    // A window the lookup's WINDOW slots cannot cover.
    let mut wide = model.clone();
    wide.segments[0].fixed.e_hi = WINDOW as u32;
    assert!(LearnedIndex::with_model(&exts, &wide, Storage::Packed).is_err());
}

/// Forty line pieces of `stretch` allocator-like extents, each followed by a run piece,
/// crowded at the start of the span, then a run of `tail` extents 64 blocks apart: the
/// shape of the kernel's random-punched file (punched part, then an unpunched tail).
fn crowded(stretch: usize, tail: u32) -> Vec<Extent> {
    let mut exts = Vec::new();
    let mut at = 0u32;
    for i in 0..40 {
        let mut s = allocator_like(stretch, i);
        for e in &mut s {
            e.lblk += at;
        }
        at = crate::synth::span(&s) as u32 + 5;
        exts.extend(s);
        exts.extend(run(at, RUN_MIN as u32, 3, 2, 1 << 30, 3));
        at += RUN_MIN as u32 * 3 + 1;
    }
    exts.extend(run(at, tail, 64, 32, 1 << 31, 64));
    exts
}

fn directory_of(c: &LearnedIndex) -> (usize, usize) {
    let Form::Pieces(p) = &c.form else {
        panic!("{:?}", c.form());
    };
    (p.buckets.len(), p.pieces.len())
}

#[test]
fn crowded_pieces_get_more_buckets() {
    // The punched part holds half the span and most pieces: one bucket per piece leaves
    // buckets holding several piece starts, so the directory doubles.
    let exts = crowded(400, 2_000);
    let c = LearnedIndex::new(&exts).unwrap();
    let (buckets, pieces) = directory_of(&c);
    assert!(
        buckets > pieces.next_power_of_two(),
        "{buckets} buckets, {pieces} pieces"
    );
    assert!(
        buckets * std::mem::size_of::<Bucket>() <= c.heap_bytes() / 8,
        "{buckets} buckets in {} bytes",
        c.heap_bytes()
    );
    agree(&exts, &c);
}

#[test]
fn buckets_of_many_pieces_stay_exact() {
    // A tail of 2^20 extents stored as one run: the pieces crowd the first 1% of the span,
    // a directory fine enough for them would outweigh the packed bytes, so it does not
    // grow and buckets hold dozens of piece starts (searched in the piece array).
    let exts = crowded(40, 1 << 20);
    let c = LearnedIndex::new(&exts).unwrap();
    let (buckets, pieces) = directory_of(&c);
    assert_eq!(buckets, pieces.next_power_of_two());
    agree(&exts, &c);
}

#[test]
fn allocator_maps_pack_to_a_few_bytes_per_extent() {
    let exts = allocator_like(100_000, 9);
    let c = LearnedIndex::new(&exts).unwrap();
    agree(&exts, &c);
    // Random 2^40 physical jumps in 20% of the extents are the worst case for the delta
    // column; the kernel allocator's maps pack much tighter (see `reports structures`).
    let per = c.heap_bytes() as f64 / exts.len() as f64;
    assert!(per < 10.0, "{per} bytes per extent");
}
