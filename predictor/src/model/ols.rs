//! Least-squares lines over a run of extent starts, and their exact error bounds.
//!
//! Two ways to fit the same line: [`closed_form`] from exact integer sums (cheap enough to call
//! for every candidate segment while searching for segment boundaries) and [`linfa_line`]
//! (`linfa-linear`'s `LinearRegression`, the reference fit used for final segments). A test
//! checks that they agree.

use linfa::traits::Fit;
use linfa::Dataset;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};

use super::Line;

/// The OLS line through `(seg[v], first_idx + v)`, from exact sums.
///
/// Coordinates are taken relative to the segment's first point (`u = key - seg[0]`, `v`), and
/// the sums are u128, so nothing cancels: with `len <= 2^24` (the segment cap) and `u < 2^32`,
/// `len * sum(u^2) <= 2^112` and `len * sum(u v) <= 2^104`. Only the final division is in `f64`.
/// Fewer than two points give the constant line through the first.
pub(crate) fn closed_form(seg: &[u32], first_idx: u32) -> Line {
    let base = f64::from(first_idx);
    let Some(&k0) = seg.first() else {
        return Line {
            slope: 0.0,
            intercept: base,
            e_lo: 0,
            e_hi: 0,
        };
    };
    if seg.len() < 2 {
        return Line {
            slope: 0.0,
            intercept: base,
            e_lo: 0,
            e_hi: 0,
        };
    }
    let (mut su, mut suu, mut suv) = (0u128, 0u128, 0u128);
    for (v, &k) in seg.iter().enumerate() {
        let u = u128::from(k.wrapping_sub(k0));
        su += u;
        suu += u * u;
        suv += u * v as u128;
    }
    let n = seg.len() as u128;
    let sv = n * (n - 1) / 2;
    // Distinct keys make var > 0; both are >= 0 for increasing points, but compute signed.
    let var = (n * suu) as i128 - (su * su) as i128;
    let cov = (n * suv) as i128 - (su * sv) as i128;
    let slope = (cov as f64 / var as f64).clamp(0.0, 1.0);
    let intercept = (sv as f64 - slope * su as f64) / n as f64;
    Line {
        slope,
        intercept: base + intercept,
        e_lo: 0,
        e_hi: 0,
    }
}

/// The OLS line through `(seg[v], first_idx + v)` fitted by `linfa-linear`, or `None` if linfa
/// fails (it does not for two or more distinct keys).
///
/// The feature is centred on its mean before fitting, so the solver sees a well-conditioned
/// problem even when keys are near 2^32.
pub(crate) fn linfa_line(seg: &[u32], first_idx: u32) -> Option<Line> {
    let &k0 = seg.first()?;
    let n = seg.len();
    let rel = |k: u32| f64::from(k.wrapping_sub(k0));
    let mean = seg.iter().map(|&k| rel(k)).sum::<f64>() / n as f64;
    let x = Array2::from_shape_fn((n, 1), |(i, _)| seg.get(i).map_or(0.0, |&k| rel(k) - mean));
    let y = Array1::from_shape_fn(n, |i| i as f64);
    let fitted = LinearRegression::new().fit(&Dataset::new(x, y)).ok()?;
    let slope = fitted.params().first().copied()?.clamp(0.0, 1.0);
    let intercept = fitted.intercept() - slope * mean;
    Some(Line {
        slope,
        intercept: f64::from(first_idx) + intercept,
        e_lo: 0,
        e_hi: 0,
    })
}

/// Exact bounds `(e_lo, e_hi)` of `predict` on the points `(seg[v], first_idx + v)`, or `None`
/// as soon as the window they imply exceeds `limit` (so infeasible candidates stop early).
/// `predict` takes the distance from the segment's first key.
#[inline]
pub(crate) fn bounds_within(
    seg: &[u32],
    first_idx: u32,
    predict: impl Fn(u32) -> i64,
    limit: u64,
) -> Option<(u32, u32)> {
    let k0 = *seg.first()?;
    let (mut lo, mut hi) = (0i64, 0i64);
    for (v, &k) in seg.iter().enumerate() {
        let err = (i64::from(first_idx) + v as i64).saturating_sub(predict(k.wrapping_sub(k0)));
        lo = lo.max(err.saturating_neg());
        hi = hi.max(err);
        if lo.saturating_add(hi).saturating_add(2) as u64 > limit {
            return None;
        }
    }
    Some((sat_u32(lo), sat_u32(hi)))
}

/// Exact bounds of `predict` on the segment's points, however wide.
pub(crate) fn bounds(seg: &[u32], first_idx: u32, predict: impl Fn(u32) -> i64) -> (u32, u32) {
    bounds_within(seg, first_idx, predict, u64::MAX).unwrap_or((u32::MAX, u32::MAX))
}

fn sat_u32(x: i64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}
