//! A line piece over 16-byte records (the `records` storage): the same fitted line and window
//! as a packed line piece, over the file's extents kept whole, as the kernel's iext records
//! hold them. No packing to undo: the window search reads the records' starts in place.

use super::*;

/// A line piece whose extents are records `first..=first + last` of the file's records, which
/// lie in its bytes as [`RecordsLayout`] says (16 bytes each, little-endian).
#[derive(Debug, Clone, Copy)]
pub(super) struct RecLine {
    /// As [`Line`]'s: the line predicts the window's first slot directly.
    slope: u64,
    lo_intercept: i64,
    /// Index of the piece's first record among the file's.
    first: u32,
    /// Piece-local index of the last extent.
    last: u32,
    /// The line's bounds: the window is `[p - e_lo - 1, p - e_lo - 1 + width]`.
    e_lo: u8,
    width: u8,
}

impl RecLine {
    /// The piece of `count` records from record `first`, addressed by `line` (window below
    /// [`WINDOW`]).
    pub(super) fn new(line: FixedLine, first: u32, count: u32) -> Option<Self> {
        let e_lo = u8::try_from(line.e_lo).ok()?;
        let e_hi = u8::try_from(line.e_hi).ok()?;
        Some(Self {
            slope: line.slope,
            lo_intercept: line
                .intercept
                .wrapping_sub((i64::from(e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            first,
            last: count.checked_sub(1)?,
            e_lo,
            width: e_lo.checked_add(e_hi)?.checked_add(1)?,
        })
    }

    /// The line as fitted.
    pub(super) fn fixed(&self) -> FixedLine {
        FixedLine {
            slope: self.slope,
            intercept: self
                .lo_intercept
                .wrapping_add((i64::from(self.e_lo) + 1) << FIXED_INTERCEPT_SHIFT),
            e_lo: u32::from(self.e_lo),
            e_hi: u32::from(self.width - self.e_lo - 1),
        }
    }

    /// Extents in the piece.
    pub(super) fn count(&self) -> u32 {
        self.last + 1
    }

    /// Index of its first record among the file's.
    pub(super) fn first(&self) -> u32 {
        self.first
    }

    /// The piece's records' bytes.
    fn records<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let first = self.first as usize;
        let end = first + self.last as usize + 1;
        bytes.get(first * REC..end * REC).unwrap_or(&[])
    }

    /// Every extent of the piece, in order.
    pub(super) fn extents<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = Extent> + 'b {
        self.records(bytes)
            .chunks_exact(REC)
            .filter_map(|r| PlainRec::read(r).map(PlainRec::extent))
    }

    /// The answer for `q` (`d = q - first_key`, `end` the next piece's first key): the
    /// window's starts counted against `q` (branch-free: at most [`WINDOW`] of them), the
    /// candidate verified on the stored starts, `start[j] <= q < start[j + 1]`, or a miss.
    #[inline(always)]
    pub(super) fn find(&self, bytes: &[u8], q: u32, d: u32, end: Option<u32>) -> Lookup {
        let piece = self.records(bytes);
        let lo = predict(self.slope, self.lo_intercept, d).clamp(0, i64::from(self.last));
        // OK to narrow: 0 <= lo <= last.
        let lo = lo as usize;
        let hi = (lo + usize::from(self.width)).min(self.last as usize);
        let n = self.last as usize + 1;
        // The window's slots in groups of four records, from the window's first slot or moved
        // back to end at the piece's end: they cover the window, and are counted four at a
        // time. Starts are sorted, so the count of those at most q is the answer's slot + 1
        // from there. (The group count is the piece's: its branch is predicted.)
        let slots = (usize::from(self.width) + 1).next_multiple_of(GROUP);
        let (lo, below) = match n.checked_sub(slots) {
            Some(back) => {
                let s = lo.min(back);
                match piece.get(s * REC..(s + slots) * REC) {
                    Some(w) => (s, count_starts(w, q)),
                    None => return Lookup::Missed,
                }
            }
            // A piece shorter than that: its window, one start at a time.
            None => match piece.get(lo * REC..(hi + 1) * REC) {
                Some(w) => (lo, count_starts_portable(w, q)),
                None => return Lookup::Missed,
            },
        };
        // None at most q: the answer lies before the window, a wrong line.
        let Some(j) = (lo + below).checked_sub(1).filter(|_| below > 0) else {
            return Lookup::Missed;
        };
        let Some(e) = piece
            .get(j * REC..)
            .and_then(PlainRec::read)
            .map(PlainRec::extent)
        else {
            return Lookup::Missed;
        };
        if q.wrapping_sub(e.lblk) < e.len && e.lblk <= q {
            return Lookup::Found(BlockMap::Mapped(e));
        }
        let next = piece
            .get((j + 1) * REC..)
            .filter(|n| !n.is_empty())
            .map_or(end, |n| Some(PlainRec::lblk_of(n)));
        if e.lblk > q || next.is_some_and(|n| n <= q) {
            return Lookup::Missed;
        }
        Lookup::Found(BlockMap::Hole { next })
    }
}

/// Bytes of a record.
const REC: usize = RECORD_BYTES;

/// Records counted at once.
const GROUP: usize = 4;

/// How many records of `w` (whole groups of [`GROUP`] records) start at or before `q`. On
/// x86-64, SSE2 (the architecture's baseline) gathers four records' starts into one vector with
/// three unpacks and compares them at once: about a third of the instructions of the sum one
/// start at a time.
#[inline(always)]
fn count_starts(w: &[u8], q: u32) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        count_starts_sse2(w, q)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        count_starts_portable(w, q)
    }
}

/// [`count_starts`] in SSE2, compiled in without a `target_feature` attribute so it inlines.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn count_starts_sse2(w: &[u8], q: u32) -> usize {
    use std::arch::x86_64::{
        _mm_add_epi32, _mm_cmpgt_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_set1_epi32,
        _mm_setzero_si128, _mm_shuffle_epi32, _mm_sub_epi32, _mm_unpacklo_epi32,
        _mm_unpacklo_epi64, _mm_xor_si128,
    };
    const _: () = assert!(REC == 16 && GROUP == 4, "a record per vector, four a group");
    let groups = w.chunks_exact(REC * GROUP);
    let counted = groups.len() * GROUP;
    // SAFETY: SSE2 is on in this build (the cfg above), which is all these intrinsics ask; the
    // loads are bytes 16k..16k + 16 of a 64-byte group (k < 4), unaligned.
    let above = unsafe {
        // Unsigned compare as signed: both sides with the top bit flipped.
        let bias = _mm_set1_epi32(i32::MIN);
        let qv = _mm_xor_si128(_mm_set1_epi32(q as i32), bias);
        let mut acc = _mm_setzero_si128();
        for g in groups {
            let rec = |k: usize| _mm_loadu_si128(g.as_ptr().add(REC * k).cast());
            // Lane 0 of each record is its start: [s0, s1, ..] and [s2, s3, ..], then [s0..s3].
            let a = _mm_unpacklo_epi32(rec(0), rec(1));
            let b = _mm_unpacklo_epi32(rec(2), rec(3));
            let starts = _mm_xor_si128(_mm_unpacklo_epi64(a, b), bias);
            // -1 where a start is above q: subtracting counts them.
            acc = _mm_sub_epi32(acc, _mm_cmpgt_epi32(starts, qv));
        }
        let acc = _mm_add_epi32(acc, _mm_shuffle_epi32::<0b01_00_11_10>(acc));
        let acc = _mm_add_epi32(acc, _mm_shuffle_epi32::<0b10_11_00_01>(acc));
        _mm_cvtsi128_si32(acc) as usize
    };
    counted - above
}

/// Records of `w` (whole records only) starting at or before `q`: [`count_starts`] without
/// vector intrinsics, and the count of a window shorter than [`WINDOW`].
#[inline(always)]
fn count_starts_portable(w: &[u8], q: u32) -> usize {
    w.chunks_exact(REC)
        .map(|r| usize::from(PlainRec::lblk_of(r) <= q))
        .sum()
}

/// Appends `exts` (one line piece) to `bytes` as records; `None` if a physical block does not
/// fit a record or the records pass `u32` indices.
pub(super) fn record_line(
    exts: &[Extent],
    line: FixedLine,
    bytes: &mut Vec<u8>,
) -> Option<RecLine> {
    let first = u32::try_from(bytes.len() / REC).ok()?;
    let body = RecLine::new(line, first, u32::try_from(exts.len()).ok()?)?;
    for e in exts {
        PlainRec::of(e)?.write(bytes);
    }
    Some(body)
}
