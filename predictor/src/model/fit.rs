//! Fitting a model to one file's extent starts: greedy PGM-style segmentation with closed-form
//! OLS, then the final line of each segment from `linfa-linear`.

use ext4::Extent;

use super::ols::{bounds, bounds_within, closed_form, linfa_line};
use super::{FixedLine, Line, Model, ModelError, Segment};

/// Default bound on every segment's window, in slots: the learned index's lookup counts the
/// starts of a window of at most `index::learned::WINDOW` (32) slots branch-free, so its lines
/// are never fitted wider. Wider windows cost a longer count per lookup, narrower ones more
/// line pieces (a larger directory); the `window` bench measures 4 to 32 on allocator-like
/// maps of 10^5 and 10^6 extents.
pub const DEFAULT_MAX_WINDOW: u32 = 32;

/// Longest segment, in extents. Bounds the exact sums of the closed-form fit (see
/// `ols::closed_form`) and the size of one linfa problem.
pub const MAX_SEGMENT_LEN: usize = 1 << 24;

/// How the line of each final segment is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalFit {
    /// `linfa-linear` OLS (the reference), falling back to the closed form in the rare case
    /// its rounding widens the window past the bound.
    #[default]
    Linfa,
    /// The closed-form OLS used during segmentation (same line up to rounding; faster).
    ClosedForm,
}

/// Fitting parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitParams {
    /// Largest window (fixed point, in slots) any segment may have; at least 2 (a one-extent
    /// segment's window), smaller values are treated as 2.
    pub max_window: u32,
    /// Final fit of each segment.
    pub final_fit: FinalFit,
}

impl Default for FitParams {
    fn default() -> Self {
        Self {
            max_window: DEFAULT_MAX_WINDOW,
            final_fit: FinalFit::default(),
        }
    }
}

/// What fitting did beyond the model itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FitStats {
    /// Segments fitted with linfa and kept.
    pub linfa_kept: usize,
    /// Segments where linfa's line had a wider window than allowed and the closed form was kept.
    pub linfa_rejected: usize,
}

thread_local! {
    /// Keys this thread's fits have visited (see [`fit_work`]).
    static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Keys visited by every fit this thread has run so far: each feasibility check of a candidate
/// segment of `L` keys counts `L` (its sums and its bounds), each final line `2 L`. A counted
/// measure of fitting work, deterministic where wall time is not: take the difference around a
/// build. Galloping then bisecting costs `O(L log L)` per segment and segments are at most
/// [`MAX_SEGMENT_LEN`] keys, so the work per key is bounded by a constant.
pub fn fit_work() -> u64 {
    WORK.with(|w| w.get())
}

fn count_work(keys: usize) {
    WORK.with(|w| w.set(w.get().saturating_add(keys as u64)));
}

/// Fits a model to an extent map (see [`fit`]).
pub fn fit_extents(exts: &[Extent], params: &FitParams) -> Result<(Model, FitStats), ModelError> {
    super::check_extents(exts)?;
    let keys: Vec<u32> = exts.iter().map(|e| e.lblk).collect();
    fit(&keys, params)
}

/// Fits a model to `keys`, the sorted starts of a file's extents.
///
/// Greedy segmentation: from the first unassigned extent, find the longest run whose
/// closed-form OLS line, in fixed point, has a window within `max_window`, by galloping
/// (lengths 2, 4, 8, ...) then bisecting between the last length that fit and the first that
/// did not. Each check costs one pass for the sums and one for the bounds (stopping as soon as
/// the window is exceeded), so a segment of `L` extents costs `O(L log L)`. Window width is not
/// strictly monotone in the length, so this finds a long feasible segment, not always the
/// longest; every segment is within the bound either way. Then each segment's final line is
/// fitted ([`FinalFit`]) and its `f64` and fixed-point bounds measured exactly.
pub fn fit(keys: &[u32], params: &FitParams) -> Result<(Model, FitStats), ModelError> {
    if let Some(i) = keys.windows(2).position(|w| w[0] >= w[1]) {
        return Err(ModelError::BadExtents {
            index: i + 1,
            what: "unsorted or duplicate start",
        });
    }
    let extent_count = u32::try_from(keys.len()).map_err(|_| ModelError::TooMany(keys.len()))?;
    let limit = u64::from(params.max_window.max(2));
    let mut stats = FitStats::default();
    let mut segments = Vec::new();
    let mut a = 0usize;
    while let Some(rest) = keys.get(a..).filter(|r| !r.is_empty()) {
        // OK to narrow: a < keys.len() <= u32::MAX + 1 and a < extent_count here.
        let first = a as u32;
        let len = longest_feasible(rest, first, limit);
        let seg = rest.get(..len).unwrap_or(rest);
        segments.push(final_segment(
            seg,
            first,
            params.final_fit,
            limit,
            &mut stats,
        ));
        a += len;
    }
    Ok((
        Model {
            extent_count,
            segments,
        },
        stats,
    ))
}

/// Fixed-point line of the closed-form fit of `seg` with its bounds, if its window is within
/// `limit`.
fn feasible(seg: &[u32], first: u32, limit: u64) -> Option<FixedLine> {
    let mut fx = FixedLine::quantize(&closed_form(seg, first));
    let (lo, hi) = bounds_within(seg, first, |d| fx.predict(d), limit)?;
    (fx.e_lo, fx.e_hi) = (lo, hi);
    Some(fx)
}

/// Length of a long prefix of `rest` that one segment can cover (at least 1).
fn longest_feasible(rest: &[u32], first: u32, limit: u64) -> usize {
    let cap = rest.len().min(MAX_SEGMENT_LEN);
    let ok = |len: usize| {
        count_work(len);
        rest.get(..len)
            .is_some_and(|s| feasible(s, first, limit).is_some())
    };
    if cap <= 1 {
        return cap;
    }
    let mut good = 1usize;
    let mut len = 2usize;
    let mut bad = loop {
        if !ok(len) {
            break len;
        }
        good = len;
        if len == cap {
            return cap;
        }
        len = (len * 2).min(cap);
    };
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// The final segment for `seg` (known feasible with the closed form).
fn final_segment(
    seg: &[u32],
    first: u32,
    how: FinalFit,
    limit: u64,
    stats: &mut FitStats,
) -> Segment {
    count_work(2 * seg.len());
    let closed = closed_form(seg, first);
    // Two points or fewer: the closed form is exact, there is nothing to regress.
    let linfa = match how {
        FinalFit::Linfa if seg.len() > 2 => linfa_line(seg, first),
        _ => None,
    };
    let mut chosen = (closed, measured_fixed(seg, first, &closed));
    if let Some(line) = linfa {
        let fx = measured_fixed(seg, first, &line);
        if fx.window() <= limit {
            stats.linfa_kept += 1;
            chosen = (line, fx);
        } else {
            stats.linfa_rejected += 1;
        }
    }
    let (mut line, fixed) = chosen;
    (line.e_lo, line.e_hi) = bounds(seg, first, |d| line.predict(d));
    Segment {
        first_idx: first,
        first_key: seg.first().copied().unwrap_or(0),
        line,
        fixed,
    }
}

fn measured_fixed(seg: &[u32], first: u32, line: &Line) -> FixedLine {
    let mut fx = FixedLine::quantize(line);
    (fx.e_lo, fx.e_hi) = bounds(seg, first, |d| fx.predict(d));
    fx
}
