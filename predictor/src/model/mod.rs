//! Per-file models: `lblk -> index of the last extent starting at or before lblk`.
//!
//! A model is a list of [`Segment`]s, each a line fitted by ordinary least squares to the points
//! `(lblk_i, i)` of a run of consecutive extents, with exact error bounds measured on those
//! points. Each line exists twice: in `f64` ([`Line`], what the fit produced) and in fixed point
//! ([`FixedLine`], integer-only arithmetic that an in-kernel evaluator can run: the kernel has no floating
//! point). The fixed-point form is the one the lookup structures search with, so userspace and
//! the kernel see identical windows.
//!
//! # Windows
//! A line predicts `p(q)`; its bounds `e_lo`, `e_hi` are the largest amounts by which the true
//! index of a training point (an extent start) lies below / above the prediction. A query `q`
//! in a segment is searched in the index range `[p(q) - e_lo - 1, p(q) + e_hi]`, clamped to the
//! segment's extents; its size, `e_lo + e_hi + 2` slots, is the segment's **window**
//! ([`window`]). [`FitParams::max_window`] bounds the window of every segment.
//!
//! Why one extra slot below: a query is usually not an extent start but a block inside an
//! extent or a hole, `k_j <= q < k_{j+1}`, and its answer is `j`. Predictions are monotone
//! (slope >= 0, and rounding is monotone), so `p(k_j) <= p(q) <= p(k_{j+1})`. The bounds on the
//! training points give `j <= p(k_j) + e_hi <= p(q) + e_hi` (upper side holds as is) and
//! `j + 1 >= p(k_{j+1}) - e_lo >= p(q) - e_lo`, so `j >= p(q) - e_lo - 1`: one slot of slack on
//! the low side. When `j` is the segment's last extent, `k_{j+1}` belongs to the next segment
//! (or does not exist) and its bound does not apply; then clamping the window to the segment's
//! own extents is what keeps `j` inside it: the upper bound `p(q) + e_hi >= j` still holds, so
//! the clamped window ends exactly at `j`. The lookup still verifies every candidate against the
//! real extent array; these bounds only make verification succeed.

mod fit;
mod fixed;
mod ols;

pub use fit::{
    fit, fit_extents, fit_work, FinalFit, FitParams, FitStats, DEFAULT_MAX_WINDOW, MAX_SEGMENT_LEN,
};
pub use fixed::{FixedLine, FIXED_INTERCEPT_SHIFT, FIXED_SLOPE_SHIFT};

/// Size in index slots of the search window of a line with bounds `e_lo`, `e_hi` (see the
/// module documentation for the extra slot).
pub fn window(e_lo: u32, e_hi: u32) -> u64 {
    u64::from(e_lo) + u64::from(e_hi) + 2
}

/// The window `[lo, hi]` of extent indices for prediction `p` of a segment with bounds `e_lo`,
/// `e_hi` covering extents `first..=last`: `[p - e_lo - 1, p + e_hi]` clamped to the segment.
/// Never empty (`lo <= hi`) when `first <= last`, since the clamp is monotone.
#[inline]
pub fn clamp_window(p: i64, e_lo: u32, e_hi: u32, first: i64, last: i64) -> (i64, i64) {
    let lo = p.saturating_sub(i64::from(e_lo) + 1).clamp(first, last);
    let hi = p.saturating_add(i64::from(e_hi)).clamp(first, last);
    (lo, hi)
}

/// Which of a segment's two lines to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `f64` line.
    Float,
    /// The fixed-point line (what lookups, here and in the kernel, use).
    Fixed,
}

/// A line in `f64`: predicts `floor(slope * (q - first_key) + intercept + 1/2)`, i.e. the
/// nearest index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Extents per block, in `[0, 1]` (extents are at least one block long).
    pub slope: f64,
    /// Predicted (absolute) extent index at the segment's first key.
    pub intercept: f64,
    /// Largest amount a training point's index lies below its prediction.
    pub e_lo: u32,
    /// Largest amount a training point's index lies above its prediction.
    pub e_hi: u32,
}

impl Line {
    /// Predicted index at `d` blocks past the segment's first key.
    pub fn predict(&self, d: u32) -> i64 {
        // `as` saturates, and NaN becomes 0: a garbage line gives a garbage window, which
        // verification rejects; it never panics.
        (self.slope * f64::from(d) + self.intercept + 0.5).floor() as i64
    }

    /// This line's window (see [`window`]).
    pub fn window(&self) -> u64 {
        window(self.e_lo, self.e_hi)
    }
}

/// One piece of a model: covers extents `first_idx ..` up to the next segment's `first_idx`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Index of the segment's first extent.
    pub first_idx: u32,
    /// That extent's first logical block: queries `>= first_key` (and below the next
    /// segment's) use this segment.
    pub first_key: u32,
    /// The fitted line.
    pub line: Line,
    /// The same line in fixed point, with its own bounds.
    pub fixed: FixedLine,
}

/// What shape a model has; stored in the pack so a reader can tell them apart without counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ModelKind {
    /// No extents: every block is a hole.
    Empty = 0,
    /// One extent: one constant segment, no regression.
    Single = 1,
    /// One fitted line.
    Linear = 2,
    /// Several fitted lines.
    Piecewise = 3,
}

impl ModelKind {
    /// The kind with code `b`, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Empty),
            1 => Some(Self::Single),
            2 => Some(Self::Linear),
            3 => Some(Self::Piecewise),
            _ => None,
        }
    }
}

/// A per-file model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    /// Number of extents it was trained on.
    pub extent_count: u32,
    /// Segments by increasing `first_idx`; empty only when `extent_count == 0`.
    pub segments: Vec<Segment>,
}

impl Model {
    /// The model's shape.
    pub fn kind(&self) -> ModelKind {
        match (self.extent_count, self.segments.len()) {
            (0, _) => ModelKind::Empty,
            (1, _) => ModelKind::Single,
            (_, 1) => ModelKind::Linear,
            _ => ModelKind::Piecewise,
        }
    }

    /// Largest window over all segments, fixed point (what lookups search), 0 for no segments.
    pub fn max_window(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.fixed.window())
            .max()
            .unwrap_or(0)
    }

    /// The window of extent indices the model gives for block `q`, in either form; `None` when
    /// `q` is before the first extent (no extent index to predict) or there are no extents.
    /// This is the reference definition; [`crate::index::LearnedIndex`] evaluates the same
    /// fixed-point window from its compact copy of the segments.
    pub fn window_for(&self, q: u32, form: Form) -> Option<(usize, usize)> {
        let s = self
            .segments
            .partition_point(|s| s.first_key <= q)
            .checked_sub(1)?;
        let seg = self.segments.get(s)?;
        let d = q - seg.first_key;
        let (p, e_lo, e_hi) = match form {
            Form::Float => (seg.line.predict(d), seg.line.e_lo, seg.line.e_hi),
            Form::Fixed => (seg.fixed.predict(d), seg.fixed.e_lo, seg.fixed.e_hi),
        };
        let last = self
            .segments
            .get(s + 1)
            .map_or(i64::from(self.extent_count), |t| i64::from(t.first_idx))
            - 1;
        let (lo, hi) = clamp_window(p, e_lo, e_hi, i64::from(seg.first_idx), last);
        Some((usize::try_from(lo).ok()?, usize::try_from(hi).ok()?))
    }

    /// Heap bytes of the segment list.
    pub fn heap_bytes(&self) -> usize {
        self.segments.capacity() * std::mem::size_of::<Segment>()
    }

    /// Checks what can be checked without the extents: segments start at extent 0, increase
    /// strictly, stay below `extent_count`, have finite `f64` lines and fixed slopes in range.
    pub fn check_shape(&self) -> Result<(), ModelError> {
        let n = self.extent_count;
        if (n == 0) != self.segments.is_empty() {
            return Err(ModelError::BadSegment {
                segment: 0,
                what: "segments do not match the extent count",
            });
        }
        let mut prev: Option<u32> = None;
        for (i, s) in self.segments.iter().enumerate() {
            let bad = |what| Err(ModelError::BadSegment { segment: i, what });
            match prev {
                None if s.first_idx != 0 => return bad("first segment does not start at extent 0"),
                Some(p) if s.first_idx <= p => return bad("segments out of order"),
                _ => {}
            }
            if s.first_idx >= n {
                return bad("segment starts past the last extent");
            }
            if !s.line.slope.is_finite() || !s.line.intercept.is_finite() {
                return bad("non-finite coefficient");
            }
            if s.fixed.slope > 1 << FIXED_SLOPE_SHIFT {
                return bad("fixed-point slope above 1");
            }
            prev = Some(s.first_idx);
        }
        Ok(())
    }

    /// Checks that this model describes `keys` (the extent starts, sorted): the shape, the count,
    /// and each segment's `first_key`.
    pub fn check_keys(&self, keys: &[u32]) -> Result<(), ModelError> {
        if usize::try_from(self.extent_count).ok() != Some(keys.len()) {
            return Err(ModelError::CountMismatch {
                model: self.extent_count,
                extents: keys.len(),
            });
        }
        self.check_shape()?;
        for (i, s) in self.segments.iter().enumerate() {
            if keys.get(s.first_idx as usize) != Some(&s.first_key) {
                return Err(ModelError::BadSegment {
                    segment: i,
                    what: "first key differs from the extent map",
                });
            }
        }
        Ok(())
    }
}

/// Checks what every structure assumes of its input: sorted by `lblk`, non-overlapping,
/// non-empty extents that end by [`ext4::MAX_LBLK`] (2^32 - 1). The ext4 reader guarantees it; structures built
/// from other sources (tests, packs) check it once at construction.
pub fn check_extents(exts: &[ext4::Extent]) -> Result<(), ModelError> {
    for (i, e) in exts.iter().enumerate() {
        if e.len == 0 || e.end() > ext4::MAX_LBLK {
            return Err(ModelError::BadExtents {
                index: i,
                what: "empty or past the last addressable block",
            });
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| exts.get(p)) {
            if u64::from(e.lblk) < prev.end() {
                return Err(ModelError::BadExtents {
                    index: i,
                    what: "unsorted or overlapping",
                });
            }
        }
    }
    Ok(())
}

/// Why a model or extent map cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The extent map breaks an invariant the structures rely on.
    #[error("extent {index}: {what}")]
    BadExtents {
        /// Index of the offending extent.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The model was trained on a different number of extents.
    #[error("model has {model} extents, the file has {extents}")]
    CountMismatch {
        /// Extent count in the model.
        model: u32,
        /// Extents in the file.
        extents: usize,
    },
    /// A segment is malformed.
    #[error("segment {segment}: {what}")]
    BadSegment {
        /// Index of the segment.
        segment: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// More extents than a model can count (2^32 or more).
    #[error("{0} extents: too many for one model")]
    TooMany(usize),
}

#[cfg(test)]
mod tests;
