//! A radix table over segment starts (the RadixSpline idea): the top bits of `q - first key`
//! pick a bucket, and the bucket lists the few segments that can hold `q`, so finding a
//! segment costs one table read and a search over a handful of keys instead of a binary search
//! over all segment starts (which dominated lookups in files with hundreds of segments).

/// Segment lookup table for one file's model.
#[derive(Debug, Clone, Default)]
pub(crate) struct RadixTable {
    /// First key of the file: buckets count from here.
    base: u32,
    /// Bits dropped from `q - base` to get a bucket.
    shift: u32,
    /// `table[b]`: number of segments whose start lies in a bucket before `b`; `buckets + 1`
    /// entries, the last being the segment count.
    table: Vec<u32>,
}

/// Buckets per segment (rounded up to a power of two): sparse enough that most buckets hold 0
/// or 1 segment starts, small enough that the table stays a fraction of the model's size.
const BUCKETS_PER_SEGMENT: usize = 2;

impl RadixTable {
    /// A table for segments starting at `starts` (sorted, first = the file's first key) in a
    /// file whose last extent starts at `last_key`. Files with one segment need none.
    pub(crate) fn new(starts: &[u32], last_key: u32) -> Self {
        let Some(&base) = starts.first().filter(|_| starts.len() > 1) else {
            return Self::default();
        };
        let buckets = (starts.len() * BUCKETS_PER_SEGMENT).next_power_of_two();
        let span_bits = 32 - last_key.wrapping_sub(base).leading_zeros();
        let shift = span_bits.saturating_sub(buckets.trailing_zeros());
        let mut table = vec![0u32; buckets + 1];
        for &k in starts {
            let b = (k.wrapping_sub(base) >> shift) as usize;
            // Every start counts in all buckets after its own.
            if let Some(t) = table.get_mut(b + 1) {
                *t += 1;
            }
        }
        for b in 1..table.len() {
            table[b] += table[b - 1];
        }
        Self { base, shift, table }
    }

    /// Index of the last segment starting at or before `q` (`q >= base`), searching only the
    /// starts in `q`'s bucket; 0 for tables of single-segment files.
    #[inline]
    pub(crate) fn segment(&self, starts: &[u32], q: u32) -> usize {
        let buckets = self.table.len().saturating_sub(1);
        if buckets == 0 {
            return 0;
        }
        // Queries past the last start fall in the last bucket.
        let b = ((q.wrapping_sub(self.base) >> self.shift) as usize).min(buckets - 1);
        let (lo, hi) = match (self.table.get(b), self.table.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => return 0,
        };
        // Starts in this bucket that are <= q; if none, q's segment began in an earlier bucket.
        let within = starts
            .get(lo..hi)
            .map_or(0, |s| s.partition_point(|&k| k <= q));
        (lo + within).saturating_sub(1)
    }

    /// The table's parts: first key, shift, and the cumulative counts (`buckets + 1` entries,
    /// empty for single-segment files).
    pub(crate) fn parts(&self) -> (u32, u32, &[u32]) {
        (self.base, self.shift, &self.table)
    }

    /// Heap bytes of the table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_same_segment_as_binary_search() {
        let mut rng = crate::synth::Rng::new(4);
        for case in 0..200 {
            let n = 2 + rng.below(300) as usize;
            let mut starts: Vec<u32> = (0..n)
                .map(|_| rng.below(1 << (8 + case % 24)) as u32)
                .collect();
            if case % 3 == 0 {
                // Clustered starts: many in one bucket.
                starts.extend((0..50).map(|i| 1_000_000 + i));
            }
            starts.sort_unstable();
            starts.dedup();
            let last = starts.last().copied().unwrap_or(0) + rng.below(1000) as u32;
            let t = RadixTable::new(&starts, last);
            let base = starts[0];
            for _ in 0..2000 {
                let q = base + rng.below(u64::from(u32::MAX - base) + 1) as u32;
                let want = starts.partition_point(|&k| k <= q) - 1;
                assert_eq!(t.segment(&starts, q), want, "case {case} q {q}");
            }
            for &k in &starts {
                for q in [k, k.saturating_sub(1).max(base), k.saturating_add(1)] {
                    assert_eq!(
                        t.segment(&starts, q),
                        starts.partition_point(|&s| s <= q) - 1
                    );
                }
            }
        }
    }
}
