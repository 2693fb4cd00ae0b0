//! The learned index: segment by binary search over segment starts, fixed-point line, a window
//! of the key array, a search inside it, and verification against the real array.

use ext4::{BlockMap, Extent};

use super::radix::RadixTable;
use super::{check_extents, resolve, ExtentIndex, Lookup, Record};
use crate::model::{clamp_window, fit_extents, FitParams, FixedLine, Model, ModelError};

/// Windows up to this many keys are searched by counting the keys <= q (branch-free,
/// vectorised: two cache lines of u32 keys); wider ones by binary search. Measured with the
/// `window` bench: counting beats `partition_point` by 1-3 ns at windows of 16 and 32, and was
/// 10 ns slower at 64.
const LINEAR_SCAN_MAX: usize = 32;

/// A segment in the form the lookup wants: the fixed-point line and its window offsets, and the
/// segment's index range for clamping (its first key lives in `seg_keys`, where the segment
/// search reads it). [`LearnedSegment`] is the same segment shown to other evaluators.
#[derive(Debug, Clone, Copy)]
struct SegLine {
    line: FixedLine,
    /// First extent index of the segment.
    first: i64,
    /// Last extent index of the segment.
    last: i64,
}

/// One segment of a [`LearnedIndex`] as its lookup evaluates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedSegment {
    /// First logical block of the segment: it answers queries from here to the next
    /// segment's `first_key`.
    pub first_key: u32,
    /// Index of the segment's first extent.
    pub first: u32,
    /// Index of its last extent.
    pub last: u32,
    /// The fixed-point line and its window bounds.
    pub line: FixedLine,
}

/// A file's extents with a model over them.
///
/// Extent starts live in their own `Vec<u32>` (the window search touches only them: 16 per
/// cache line) and the rest of each extent in a parallel `Vec<Record>`, read once per lookup.
#[derive(Debug, Clone, Default)]
pub struct LearnedIndex {
    keys: Vec<u32>,
    recs: Vec<Record>,
    seg_keys: Vec<u32>,
    segs: Vec<SegLine>,
    radix: RadixTable,
}

impl LearnedIndex {
    /// Builds the index from an extent map and a model trained on it. Fails if the extents are
    /// not a valid sorted map or the model does not describe them (wrong count, first keys).
    pub fn new(exts: &[Extent], model: &Model) -> Result<Self, ModelError> {
        check_extents(exts)?;
        let keys: Vec<u32> = exts.iter().map(|e| e.lblk).collect();
        model.check_keys(&keys)?;
        let n = keys.len() as i64;
        let segs = model
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let next = model
                    .segments
                    .get(i + 1)
                    .map_or(n, |t| i64::from(t.first_idx));
                SegLine {
                    line: s.fixed,
                    first: i64::from(s.first_idx),
                    last: next - 1,
                }
            })
            .collect();
        let seg_keys: Vec<u32> = model.segments.iter().map(|s| s.first_key).collect();
        let radix = RadixTable::new(&seg_keys, keys.last().copied().unwrap_or(0));
        Ok(Self {
            recs: exts.iter().map(Record::of).collect(),
            seg_keys,
            radix,
            keys,
            segs,
        })
    }

    /// Fits a model (see [`crate::model::fit`]) and builds the index.
    pub fn fit(exts: &[Extent], params: &FitParams) -> Result<Self, ModelError> {
        let (model, _) = fit_extents(exts, params)?;
        Self::new(exts, &model)
    }

    /// Number of extents.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the file has no extents.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Heap bytes of the model alone (segment starts, lines and the segment radix table).
    pub fn model_bytes(&self) -> usize {
        self.seg_keys.capacity() * std::mem::size_of::<u32>()
            + self.segs.capacity() * std::mem::size_of::<SegLine>()
            + self.radix.heap_bytes()
    }

    /// Heap bytes of the extent-start array.
    pub fn key_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<u32>()
    }

    /// Heap bytes of the per-extent records.
    pub fn record_bytes(&self) -> usize {
        self.recs.capacity() * std::mem::size_of::<Record>()
    }

    /// The segments as the lookup evaluates them, in order: for other evaluators of the same
    /// model (a front tier loads exactly these lines, bounds and index ranges).
    pub fn segments(&self) -> impl ExactSizeIterator<Item = LearnedSegment> + '_ {
        self.segs
            .iter()
            .zip(&self.seg_keys)
            .map(|(s, &first_key)| LearnedSegment {
                first_key,
                // Validated extent indices (< keys.len(), which the model's u32 count bounds).
                first: u32::try_from(s.first).unwrap_or(u32::MAX),
                last: u32::try_from(s.last).unwrap_or(u32::MAX),
                line: s.line,
            })
    }

    /// The segment radix table: `(base, shift, counts)`. Block `q >= base` falls in bucket
    /// `min((q - base) >> shift, buckets - 1)`, whose segment starts are those with index in
    /// `counts[b]..counts[b + 1]`; `q`'s segment is the last of them at or below `q`, or the
    /// one before them. `counts` is empty when the model has one segment.
    pub fn radix(&self) -> (u32, u32, &[u32]) {
        self.radix.parts()
    }

    /// The extents, in order.
    pub fn extents(&self) -> impl ExactSizeIterator<Item = Extent> + '_ {
        self.keys.iter().zip(&self.recs).map(|(&k, r)| r.extent(k))
    }

    /// Largest fixed-point window over the segments, in extent slots (0 with no extents).
    pub fn max_window(&self) -> u64 {
        self.segs.iter().map(|s| s.line.window()).max().unwrap_or(0)
    }

    /// The window `[lo, hi]` of extent indices the model gives for `q >= keys[0]`.
    #[inline]
    fn window(&self, q: u32) -> Option<(usize, usize)> {
        // The segment: its radix bucket, then the few starts in it (no search with one segment).
        let s = self.radix.segment(&self.seg_keys, q);
        let seg = self.segs.get(s)?;
        let base = *self.seg_keys.get(s)?;
        let p = seg.line.predict(q.wrapping_sub(base));
        // See the model module docs for why e_lo + 1 below and the clamp to the segment.
        let (lo, hi) = clamp_window(p, seg.line.e_lo, seg.line.e_hi, seg.first, seg.last);
        // OK to narrow: first and last are extent indices (validated < keys.len()).
        Some((lo as usize, hi as usize))
    }

    /// Cache lines a lookup of `q` reads: the segment's radix bucket and starts (with more than
    /// one segment), its line, the window's keys and the key after them, and the record. The
    /// lookup-cost model of [`super::choose`].
    pub fn lines_read(&self, q: u32) -> u32 {
        let Some(&k0) = self.keys.first() else {
            return 0;
        };
        if q < k0 {
            return 1;
        }
        let segment = if self.segs.len() > 1 { 3 } else { 2 };
        let Some((lo, hi)) = self.window(q) else {
            return segment;
        };
        let key = std::mem::size_of::<u32>();
        let keys = super::span_lines(lo * key, (hi + 2).min(self.keys.len()) * key);
        segment + keys + 1
    }

    /// Looks up `q`: [`Lookup::Found`] with a verified answer, or [`Lookup::Missed`] if the
    /// model's window does not hold the extent (never for a model trained on these extents).
    #[inline]
    pub fn probe(&self, q: u32) -> Lookup {
        let Some(&k0) = self.keys.first() else {
            return Lookup::Found(BlockMap::Hole { next: None });
        };
        if q < k0 {
            // Verified by the array itself: no extent starts at or before q.
            return Lookup::Found(BlockMap::Hole { next: Some(k0) });
        }
        let Some((lo, hi)) = self.window(q) else {
            return Lookup::Missed;
        };
        let Some(win) = self.keys.get(lo..=hi) else {
            return Lookup::Missed;
        };
        // Keys are sorted, so the number of window keys <= q locates the candidate.
        let below = if win.len() <= LINEAR_SCAN_MAX {
            win.iter().map(|&k| u32::from(k <= q)).sum::<u32>() as usize
        } else {
            win.partition_point(|&k| k <= q)
        };
        // Verify on the real array: keys[j] <= q (below > 0) and keys[j + 1] > q (or j is last).
        if below == 0 {
            return Lookup::Missed;
        }
        let j = lo + below - 1;
        let next = self.keys.get(j + 1).copied();
        if next.is_some_and(|k| k <= q) {
            return Lookup::Missed;
        }
        match (self.keys.get(j), self.recs.get(j)) {
            (Some(&k), Some(r)) => Lookup::Found(resolve(q, Some(r.extent(k)), next)),
            _ => Lookup::Missed,
        }
    }
}

impl ExtentIndex for LearnedIndex {
    fn find(&self, lblk: u32) -> Lookup {
        self.probe(lblk)
    }

    fn heap_bytes(&self) -> usize {
        self.model_bytes() + self.key_bytes() + self.record_bytes()
    }
}
