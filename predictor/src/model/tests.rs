//! Fitting: closed form against linfa, windows always containing the true index.

use super::ols::{bounds, closed_form, linfa_line};
use super::*;
use crate::index::tests::{maps, probe_blocks};
use crate::synth::{allocator_like, Rng};

/// Index of the last key <= q (the true answer), if any.
fn truth(keys: &[u32], q: u32) -> Option<usize> {
    keys.partition_point(|&k| k <= q).checked_sub(1)
}

#[test]
fn closed_form_agrees_with_linfa() {
    let mut rng = Rng::new(8);
    for case in 0..200 {
        let len = 3 + rng.below(2000) as usize;
        let start = if case % 5 == 0 {
            u32::MAX - 600_000
        } else {
            rng.below(1 << 31) as u32
        };
        let mut keys = Vec::with_capacity(len);
        let mut k = u64::from(start);
        for _ in 0..len {
            keys.push(k as u32);
            k += 1 + rng.below(if case % 2 == 0 { 10 } else { 300 });
        }
        let first = rng.below(1 << 20) as u32;
        let a = closed_form(&keys, first);
        let b = linfa_line(&keys, first).unwrap();
        let span = f64::from(keys[len - 1] - keys[0]);
        // Compare predictions over the segment rather than raw coefficients: the same line.
        assert!(
            (a.slope - b.slope).abs() * span < 1e-6,
            "case {case}: slopes {} {}",
            a.slope,
            b.slope
        );
        assert!(
            (a.intercept - b.intercept).abs() < 1e-6,
            "case {case}: intercepts {} {}",
            a.intercept,
            b.intercept
        );
    }
}

#[test]
fn windows_contain_the_true_index_in_both_forms() {
    let mut all = maps();
    all.push(("allocator 50k", allocator_like(50_000, 12)));
    for (name, exts) in all {
        let keys: Vec<u32> = exts.iter().map(|e| e.lblk).collect();
        for max_window in [2, 5, 64, 300] {
            let (m, _) = fit(
                &keys,
                &FitParams {
                    max_window,
                    ..Default::default()
                },
            )
            .unwrap();
            m.check_keys(&keys).unwrap();
            for s in &m.segments {
                assert!(
                    s.fixed.window() <= u64::from(max_window.max(2)),
                    "{name}: segment window over bound"
                );
            }
            for q in probe_blocks(&exts) {
                let want = truth(&keys, q);
                for form in [Form::Float, Form::Fixed] {
                    let got = m.window_for(q, form);
                    match (want, got) {
                        (None, None) => {}
                        (Some(j), Some((lo, hi))) => {
                            assert!(
                                lo <= j && j <= hi,
                                "{name} w={max_window} {form:?} q={q}: {j} not in [{lo},{hi}]"
                            )
                        }
                        _ => panic!("{name} {form:?} q={q}: truth {want:?}, window {got:?}"),
                    }
                }
            }
        }
    }
}

/// The bounds are exact: each non-zero bound is attained by some training point, so the window
/// is as narrow as the training points allow (the fixed-point window is the one needed, not a
/// padded one), and fixed point is within one slot of f64 on each side.
#[test]
fn bounds_are_tight_and_fixed_point_tracks_f64() {
    let exts = allocator_like(100_000, 31);
    let keys: Vec<u32> = exts.iter().map(|e| e.lblk).collect();
    let (m, _) = fit(
        &keys,
        &FitParams {
            max_window: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let n = m.segments.len();
    for (i, s) in m.segments.iter().enumerate() {
        let end = m
            .segments
            .get(i + 1)
            .map_or(keys.len(), |t| t.first_idx as usize);
        let seg = &keys[s.first_idx as usize..end];
        let errs: Vec<i64> = seg
            .iter()
            .enumerate()
            .map(|(v, &k)| s.first_idx as i64 + v as i64 - s.fixed.predict(k - s.first_key))
            .collect();
        let lo = errs.iter().map(|&e| -e).max().unwrap().max(0);
        let hi = errs.iter().copied().max().unwrap().max(0);
        assert_eq!(
            (s.fixed.e_lo as i64, s.fixed.e_hi as i64),
            (lo, hi),
            "segment {i} of {n}"
        );
        assert!(
            s.fixed.e_lo.abs_diff(s.line.e_lo) <= 1 && s.fixed.e_hi.abs_diff(s.line.e_hi) <= 1,
            "segment {i}"
        );
        assert_eq!(
            bounds(seg, s.first_idx, |d| s.line.predict(d)),
            (s.line.e_lo, s.line.e_hi)
        );
    }
}

#[test]
fn small_files_need_no_regression() {
    let (m, _) = fit(&[], &FitParams::default()).unwrap();
    assert_eq!(
        (m.kind(), m.segments.len(), m.window_for(5, Form::Fixed)),
        (ModelKind::Empty, 0, None)
    );
    let (m, stats) = fit(&[7], &FitParams::default()).unwrap();
    assert_eq!((m.kind(), stats.linfa_kept), (ModelKind::Single, 0));
    assert_eq!(m.window_for(7, Form::Fixed), Some((0, 0)));
    assert_eq!(m.window_for(u32::MAX, Form::Fixed), Some((0, 0)));
    assert_eq!(m.window_for(6, Form::Fixed), None);
    let (m, stats) = fit(&[7, u32::MAX], &FitParams::default()).unwrap();
    assert_eq!(
        (m.kind(), stats.linfa_kept, m.max_window()),
        (ModelKind::Linear, 0, 2)
    );
}

#[test]
fn fit_uses_linfa_for_final_lines_and_splits_when_needed() {
    let exts = allocator_like(20_000, 5);
    let keys: Vec<u32> = exts.iter().map(|e| e.lblk).collect();
    let (wide, stats) = fit(
        &keys,
        &FitParams {
            max_window: 100_000,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(wide.kind(), ModelKind::Linear);
    assert_eq!((stats.linfa_kept, stats.linfa_rejected), (1, 0));
    let (narrow, stats) = fit(
        &keys,
        &FitParams {
            max_window: 8,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(narrow.kind(), ModelKind::Piecewise);
    assert!(narrow.max_window() <= 8);
    assert!(stats.linfa_kept > 0);
    let (closed, stats) = fit(
        &keys,
        &FitParams {
            max_window: 8,
            final_fit: FinalFit::ClosedForm,
        },
    )
    .unwrap();
    assert_eq!((stats.linfa_kept, stats.linfa_rejected), (0, 0));
    assert_eq!(
        closed.segments.len(),
        narrow.segments.len(),
        "segmentation does not depend on the final fit"
    );
}

#[test]
fn fit_rejects_unsorted_keys() {
    assert!(matches!(
        fit(&[1, 1], &FitParams::default()),
        Err(ModelError::BadExtents { index: 1, .. })
    ));
    assert!(matches!(
        fit(&[3, 2], &FitParams::default()),
        Err(ModelError::BadExtents { .. })
    ));
}

#[test]
fn fixed_point_stays_in_range_at_the_extremes() {
    // Slope 1 over the whole block space: slope * d must not overflow.
    let line = Line {
        slope: 1.0,
        intercept: 0.0,
        e_lo: 0,
        e_hi: 0,
    };
    let fx = FixedLine::quantize(&line);
    assert_eq!(fx.slope, 1 << 32);
    assert_eq!(fx.predict(u32::MAX), i64::from(u32::MAX));
    assert_eq!(fx.predict(0), 0);
    // A garbage (hostile) line wraps instead of panicking.
    let junk = FixedLine {
        slope: u64::MAX,
        intercept: i64::MAX,
        e_lo: 0,
        e_hi: 0,
    };
    let _ = junk.predict(u32::MAX);
    let nan = Line {
        slope: f64::NAN,
        intercept: f64::INFINITY,
        e_lo: 0,
        e_hi: 0,
    };
    let _ = nan.predict(5);
    let _ = FixedLine::quantize(&nan).predict(5);
}

#[test]
fn check_shape_rejects_malformed_models() {
    let keys: Vec<u32> = allocator_like(100, 3).iter().map(|e| e.lblk).collect();
    let (m, _) = fit(
        &keys,
        &FitParams {
            max_window: 4,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(m.segments.len() > 1);
    let mut bad = m.clone();
    bad.segments.swap(0, 1);
    assert!(bad.check_shape().is_err());
    let mut bad = m.clone();
    bad.segments[0].first_idx = 1;
    assert!(bad.check_shape().is_err());
    let mut bad = m.clone();
    bad.extent_count = 1;
    assert!(bad.check_shape().is_err());
    let mut bad = m.clone();
    bad.segments[1].first_key += 1;
    assert!(bad.check_keys(&keys).is_err());
    let mut bad = m.clone();
    bad.segments[0].line.slope = f64::NAN;
    assert!(bad.check_shape().is_err());
    assert!(m.check_keys(&keys[1..]).is_err());
}
