//! A sorted map whose keys from a block on can all be moved by one offset at once: the changing
//! index's overlay and shift list, which a collapse or insert range moves wholesale.
//!
//! Entries live in chunks of up to [`CHUNK`] * 2, each with a pending offset that applies to all
//! its keys (and values that move with them). Moving every key from a block on splits the
//! chunk holding that block and adds the offset to the chunks after it: O(chunks), where a
//! `BTreeMap` would re-insert every entry after the block.

/// A value that moves with its key: a shift list's offset does, a piece of the map does not.
pub trait Moves: Copy {
    /// The value after its key moved by `by` blocks.
    fn moved(self, by: i64) -> Self;
}

/// A key and its value.
pub type Entry<V> = (u64, V);

/// Entries a chunk is split back to (it is split at twice this).
pub const CHUNK: usize = 64;

/// See the module documentation. Keys are blocks (below 2^33; offsets within +-2^34).
#[derive(Debug, Clone)]
pub struct ShiftMap<V> {
    chunks: Vec<Chunk<V>>,
    len: usize,
}

/// Entries with a pending offset: entry i is `(keys[i] + by, vals[i].moved(by))`. `head` is
/// `keys[0]`, kept beside `by` so that finding a chunk reads the chunk list alone.
#[derive(Debug, Clone)]
struct Chunk<V> {
    by: i64,
    head: i64,
    keys: Vec<i64>,
    vals: Vec<V>,
}

impl<V: Moves> Chunk<V> {
    fn key(&self, i: usize) -> u64 {
        (self.keys[i] + self.by) as u64
    }

    fn entry(&self, i: usize) -> (u64, V) {
        (self.key(i), self.vals[i].moved(self.by))
    }

    fn first(&self) -> u64 {
        (self.head + self.by) as u64
    }

    /// Sets `head` after the first key changed (an empty chunk is dropped by the caller).
    fn new_head(&mut self) {
        if let Some(&k) = self.keys.first() {
            self.head = k;
        }
    }

    /// Index of the first key at or above `k`.
    fn at_or_above(&self, k: u64) -> usize {
        let raw = k as i64 - self.by;
        self.keys.partition_point(|&r| r < raw)
    }

    /// The entries from `i` on, as a new chunk with the same offset.
    fn split_off(&mut self, i: usize) -> Self {
        let keys = self.keys.split_off(i);
        Self {
            by: self.by,
            head: keys.first().copied().unwrap_or(0),
            keys,
            vals: self.vals.split_off(i),
        }
    }

    /// Appends `other`'s entries (all above this chunk's), taking them to this offset.
    fn append(&mut self, other: Self) {
        let rebase = other.by - self.by;
        self.keys.extend(other.keys.iter().map(|&r| r + rebase));
        self.vals.extend(other.vals.iter().map(|v| v.moved(rebase)));
    }
}

impl<V: Moves> Default for ShiftMap<V> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<V: Moves> ShiftMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The chunk that holds `k` if any chunk does: the last one starting at or below it.
    fn chunk_of(&self, k: u64) -> Option<usize> {
        self.chunks
            .partition_point(|c| c.first() <= k)
            .checked_sub(1)
    }

    /// The entry with the greatest key at or below `k`.
    pub fn at_or_below(&self, k: u64) -> Option<(u64, V)> {
        let c = &self.chunks[self.chunk_of(k)?];
        let i = c.keys.partition_point(|&r| r + c.by <= k as i64);
        Some(c.entry(i - 1))
    }

    /// The entries either side of `k`: the greatest key at or below it and the smallest above
    /// it, found with one search.
    pub fn around(&self, k: u64) -> (Option<Entry<V>>, Option<Entry<V>>) {
        let Some(ci) = self.chunk_of(k) else {
            return (None, self.chunks.first().map(|c| c.entry(0)));
        };
        let c = &self.chunks[ci];
        let i = c.keys.partition_point(|&r| r + c.by <= k as i64);
        let next = match c.keys.get(i) {
            Some(_) => Some(c.entry(i)),
            None => self.chunks.get(ci + 1).map(|n| n.entry(0)),
        };
        (Some(c.entry(i - 1)), next)
    }

    /// The entry with the greatest key below `k`.
    pub fn below(&self, k: u64) -> Option<(u64, V)> {
        self.at_or_below(k.checked_sub(1)?)
    }

    /// The entry with the smallest key at or above `k`.
    pub fn at_or_above(&self, k: u64) -> Option<(u64, V)> {
        let ci = self.chunk_of(k).unwrap_or(0);
        let c = self.chunks.get(ci)?;
        match c.at_or_above(k) {
            i if i < c.keys.len() => Some(c.entry(i)),
            _ => self.chunks.get(ci + 1).map(|n| n.entry(0)),
        }
    }

    /// The value at `k`.
    pub fn get(&self, k: u64) -> Option<V> {
        self.at_or_below(k).filter(|&(s, _)| s == k).map(|(_, v)| v)
    }

    /// Sets `k` to `v` (replacing what was there).
    pub fn insert(&mut self, k: u64, v: V) {
        let Some(ci) = self.chunk_of(k).or(if self.chunks.is_empty() {
            None
        } else {
            Some(0)
        }) else {
            self.chunks.push(Chunk {
                by: 0,
                head: k as i64,
                keys: vec![k as i64],
                vals: vec![v],
            });
            self.len = 1;
            return;
        };
        let c = &mut self.chunks[ci];
        let i = c.at_or_above(k);
        let (raw, val) = (k as i64 - c.by, v.moved(-c.by));
        if c.keys.get(i) == Some(&raw) {
            c.vals[i] = val;
            return;
        }
        c.keys.insert(i, raw);
        c.vals.insert(i, val);
        c.new_head();
        self.len += 1;
        if c.keys.len() > 2 * CHUNK {
            let tail = c.split_off(CHUNK);
            self.chunks.insert(ci + 1, tail);
        }
    }

    /// Removes `k`.
    pub fn remove(&mut self, k: u64) -> Option<V> {
        let ci = self.chunk_of(k)?;
        let c = &mut self.chunks[ci];
        let i = c.at_or_above(k);
        if i >= c.keys.len() || c.key(i) != k {
            return None;
        }
        c.keys.remove(i);
        c.new_head();
        let v = c.vals.remove(i).moved(c.by);
        self.len -= 1;
        if c.keys.is_empty() {
            self.chunks.remove(ci);
        }
        Some(v)
    }

    /// Replaces the entries with keys in `[lo, hi]` by `new` (sorted, keys in `[lo, hi]`). A
    /// change's pieces mostly fall in one chunk: then this is one search and one splice, where
    /// removing and inserting them one by one would search for each.
    pub fn replace(&mut self, lo: u64, hi: u64, new: &[Entry<V>]) {
        let ci = self.chunk_of(lo).unwrap_or(0);
        let one_chunk = self.chunks.get(ci + 1).is_none_or(|next| next.first() > hi);
        let Some(c) = self.chunks.get_mut(ci).filter(|_| one_chunk) else {
            while let Some((k, _)) = self.at_or_above(lo).filter(|&(k, _)| k <= hi) {
                self.remove(k);
            }
            for &(k, v) in new {
                self.insert(k, v);
            }
            return;
        };
        let (i, j) = (c.at_or_above(lo), c.at_or_above(hi.saturating_add(1)));
        let by = c.by;
        c.keys.splice(i..j, new.iter().map(|&(k, _)| k as i64 - by));
        c.vals.splice(i..j, new.iter().map(|&(_, v)| v.moved(-by)));
        c.new_head();
        self.len = self.len + new.len() - (j - i);
        if c.keys.is_empty() {
            self.chunks.remove(ci);
        }
        let mut at = ci;
        while self
            .chunks
            .get(at)
            .is_some_and(|c| c.keys.len() > 2 * CHUNK)
        {
            let tail = self.chunks[at].split_off(CHUNK);
            at += 1;
            self.chunks.insert(at, tail);
        }
    }

    /// The entries with keys in `[lo, hi]`, appended to `out`.
    pub fn range_into(&self, lo: u64, hi: u64, out: &mut Vec<Entry<V>>) {
        let mut ci = self.chunk_of(lo).unwrap_or(0);
        while let Some(c) = self.chunks.get(ci) {
            for i in c.at_or_above(lo)..c.keys.len() {
                let e = c.entry(i);
                if e.0 > hi {
                    return;
                }
                out.push(e);
            }
            ci += 1;
        }
    }

    /// Moves every key at or above `at` by `by`. The caller keeps the order: a move down by
    /// `n` needs no key in `[at - n, at)`.
    pub fn move_from(&mut self, at: u64, by: i64) {
        let Some(mut ci) = self
            .chunk_of(at)
            .or(Some(0))
            .filter(|_| !self.chunks.is_empty())
        else {
            return;
        };
        // Split the chunk at `at`, so each chunk is wholly below or wholly at or above it.
        let i = self.chunks[ci].at_or_above(at);
        if i == self.chunks[ci].keys.len() {
            ci += 1;
        } else if i > 0 {
            let tail = self.chunks[ci].split_off(i);
            ci += 1;
            self.chunks.insert(ci, tail);
        }
        for c in &mut self.chunks[ci..] {
            c.by += by;
        }
        // Join the two chunks either side of the split if they are small together.
        if ci > 0 && ci < self.chunks.len() {
            let (a, b) = (&self.chunks[ci - 1], &self.chunks[ci]);
            if a.keys.len() + b.keys.len() <= CHUNK {
                let b = self.chunks.remove(ci);
                self.chunks[ci - 1].append(b);
            }
        }
    }

    /// Every entry, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| (0..c.keys.len()).map(move |i| c.entry(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A value with a part that moves against its key (a shift's offset) and one that moves
    /// with it (a piece's end, which may pass below zero while stored).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct V {
        off: i64,
        end: u64,
    }

    impl Moves for V {
        fn moved(self, by: i64) -> Self {
            V {
                off: self.off.wrapping_sub(by),
                end: self.end.wrapping_add_signed(by),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, V),
        Remove(u64),
        /// Move keys from `.0` on by `.1` (down moves drop the keys in the way first).
        Move(u64, i64),
        /// Replace the keys in `[.0, .0 + .1]` by `.2` keys spread over it.
        Replace(u64, u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..5_000u64, -100..100i64).prop_map(|(k, v)| Op::Insert(k, V { off: v, end: k + 3 })),
            2 => (0..5_000u64).prop_map(Op::Remove),
            1 => (0..5_000u64, -50..50i64).prop_map(|(k, by)| Op::Move(k, by)),
            2 => (0..5_000u64, 0..400u64, 0..300u64).prop_map(|(k, w, n)| Op::Replace(k, w, n)),
        ]
    }

    proptest! {
        /// Every operation leaves the map equal to a `BTreeMap` doing the same, and every
        /// query answered alike.
        #[test]
        fn behaves_as_a_btreemap(ops in prop::collection::vec(op(), 1..1500)) {
            let mut m = ShiftMap::<V>::default();
            let mut r = BTreeMap::<u64, V>::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        m.insert(k, v);
                        r.insert(k, v);
                    }
                    Op::Remove(k) => prop_assert_eq!(m.remove(k), r.remove(&k)),
                    Op::Replace(lo, w, n) => {
                        let hi = lo + w;
                        let mut seen = Vec::new();
                        m.range_into(lo, hi, &mut seen);
                        let want: Vec<_> = r.range(lo..=hi).map(|(&k, &v)| (k, v)).collect();
                        prop_assert_eq!(seen, want);
                        let mut new: Vec<(u64, V)> = (0..n)
                            .map(|i| lo + i * (w + 1) / n.max(1))
                            .map(|k| (k, V { off: k as i64, end: k + 1 }))
                            .collect();
                        new.dedup_by_key(|e| e.0);
                        r.retain(|&k, _| k < lo || k > hi);
                        r.extend(new.iter().copied());
                        m.replace(lo, hi, &new);
                    }
                    Op::Move(at, by) => {
                        let lo = at.saturating_add_signed(by.min(0));
                        for k in r.range(lo..at).map(|(&k, _)| k).collect::<Vec<_>>() {
                            r.remove(&k);
                            m.remove(k);
                        }
                        if by < 0 && at < by.unsigned_abs() {
                            continue;
                        }
                        let moved: Vec<_> = r.split_off(&at).into_iter().collect();
                        r.extend(moved.into_iter().map(|(k, v)| (k.saturating_add_signed(by), v.moved(by))));
                        m.move_from(at, by);
                    }
                }
                prop_assert_eq!(m.len(), r.len());
            }
            prop_assert_eq!(m.iter().collect::<Vec<_>>(), r.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>());
            for q in (0..5_200u64).step_by(7) {
                prop_assert_eq!(m.at_or_below(q), r.range(..=q).next_back().map(|(&k, &v)| (k, v)));
                prop_assert_eq!(m.below(q), r.range(..q).next_back().map(|(&k, &v)| (k, v)));
                prop_assert_eq!(m.at_or_above(q), r.range(q..).next().map(|(&k, &v)| (k, v)));
                prop_assert_eq!(m.get(q), r.get(&q).copied());
                prop_assert_eq!(
                    m.around(q),
                    (
                        r.range(..=q).next_back().map(|(&k, &v)| (k, v)),
                        r.range(q + 1..).next().map(|(&k, &v)| (k, v))
                    )
                );
            }
        }
    }
}
