//! The fixed-point form of a line: what an in-kernel evaluator runs (u64/i64 multiply, add and
//! shifts only; no floating point, no division by a variable).

use super::{window, Line};

/// Fractional bits of [`FixedLine::slope`].
pub const FIXED_SLOPE_SHIFT: u32 = 32;
/// Fractional bits of [`FixedLine::intercept`] (and of the sum before the final shift).
pub const FIXED_INTERCEPT_SHIFT: u32 = 16;

/// A line in fixed point: `p(d) = ((slope * d) >> 16 + intercept) >> 16` (arithmetic shift,
/// so a floor), where `d = q - first_key`.
///
/// Ranges: `slope <= 2^32` (slopes are at most 1) and `d < 2^32`, so `slope * d < 2^64` fits a
/// u64; after the first shift it is below `2^48` and the i64 sum cannot overflow for any
/// intercept a u32 extent index produces. A hostile pack can hold other values: evaluation
/// wraps (as the kernel's arithmetic does) rather than panics, and verification rejects the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FixedLine {
    /// Extents per block, scaled by `2^32`.
    pub slope: u64,
    /// Predicted index at the segment's first key plus 1/2 (so the floor rounds to nearest),
    /// scaled by `2^16`.
    pub intercept: i64,
    /// Largest amount a training point's index lies below the fixed-point prediction.
    pub e_lo: u32,
    /// Largest amount a training point's index lies above the fixed-point prediction.
    pub e_hi: u32,
}

impl FixedLine {
    /// The fixed-point coefficients of `line` (bounds left at 0: measure them with
    /// `ols::bounds`). The slope is clamped to `[0, 1]`.
    pub fn quantize(line: &Line) -> Self {
        let slope =
            (line.slope.clamp(0.0, 1.0) * (1u64 << FIXED_SLOPE_SHIFT) as f64).round() as u64;
        // `as` saturates: an intercept beyond i64 range only happens with a garbage line.
        let intercept =
            ((line.intercept + 0.5) * f64::from(1u32 << FIXED_INTERCEPT_SHIFT)).round() as i64;
        Self {
            slope,
            intercept,
            e_lo: 0,
            e_hi: 0,
        }
    }

    /// The `f64` line this one stands for (bounds kept): [`Self::quantize`] undone, up to its
    /// rounding. For a model kept only in fixed point (the compact index's).
    pub fn to_float(&self) -> Line {
        Line {
            slope: self.slope as f64 / (1u64 << FIXED_SLOPE_SHIFT) as f64,
            intercept: self.intercept as f64 / f64::from(1u32 << FIXED_INTERCEPT_SHIFT) - 0.5,
            e_lo: self.e_lo,
            e_hi: self.e_hi,
        }
    }

    /// Predicted index at `d` blocks past the segment's first key.
    #[inline]
    pub fn predict(&self, d: u32) -> i64 {
        let scaled =
            self.slope.wrapping_mul(u64::from(d)) >> (FIXED_SLOPE_SHIFT - FIXED_INTERCEPT_SHIFT);
        (scaled as i64).wrapping_add(self.intercept) >> FIXED_INTERCEPT_SHIFT
    }

    /// This line's window (see [`window`]).
    pub fn window(&self) -> u64 {
        window(self.e_lo, self.e_hi)
    }
}
