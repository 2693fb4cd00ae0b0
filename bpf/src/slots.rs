//! Free-slot bookkeeping for the program's arrays: which ranges of each array no file's form
//! uses. A file's form takes one contiguous range per array; a replacement takes new ranges
//! and gives the old ones back once no program can still read them (see `tier::Writer`).

use std::collections::BTreeMap;

/// The free ranges of one array of `capacity` slots: first fit, neighbours merged on free.
#[derive(Debug, Clone)]
pub(crate) struct Ranges {
    /// Free ranges: start -> length, disjoint, never adjacent (merged).
    free: BTreeMap<u32, u32>,
    capacity: u32,
}

impl Ranges {
    /// An array of `capacity` slots, all free.
    pub(crate) fn new(capacity: u32) -> Self {
        let mut free = BTreeMap::new();
        if capacity > 0 {
            free.insert(0, capacity);
        }
        Self { free, capacity }
    }

    /// Slots in the array.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots in use (the capacity less the free slots).
    pub(crate) fn used(&self) -> u64 {
        u64::from(self.capacity) - self.free.values().map(|&n| u64::from(n)).sum::<u64>()
    }

    /// The first free range of `n` slots, now taken; `Some(0)` for `n == 0` (an empty range
    /// takes nothing and is never read).
    pub(crate) fn alloc(&mut self, n: u32) -> Option<u32> {
        if n == 0 {
            return Some(0);
        }
        let (&start, &len) = self.free.iter().find(|(_, &len)| len >= n)?;
        self.free.remove(&start);
        if len > n {
            self.free.insert(start + n, len - n);
        }
        Some(start)
    }

    /// Gives `[start, start + n)` back. The caller frees only what `alloc` gave it, once.
    pub(crate) fn free(&mut self, start: u32, n: u32) {
        if n == 0 {
            return;
        }
        let (mut start, mut n) = (start, n);
        // Merge with the free range ending at `start`, then with the one starting at its end.
        if let Some((&s, &len)) = self.free.range(..start).next_back() {
            if s + len == start {
                self.free.remove(&s);
                start = s;
                n += len;
            }
        }
        if let Some(len) = self.free.remove(&(start + n)) {
            n += len;
        }
        debug_assert!(u64::from(start) + u64::from(n) <= u64::from(self.capacity));
        self.free.insert(start, n);
    }
}

#[cfg(test)]
mod tests {
    use super::Ranges;

    #[test]
    fn first_fit_and_merged_frees() {
        let mut r = Ranges::new(10);
        assert_eq!(r.alloc(4), Some(0));
        assert_eq!(r.alloc(4), Some(4));
        assert_eq!(r.alloc(3), None);
        assert_eq!(r.alloc(0), Some(0));
        assert_eq!(r.used(), 8);
        r.free(0, 4);
        assert_eq!(r.alloc(5), None, "0..4 and 8..10 are not adjacent");
        r.free(4, 4);
        assert_eq!(r.used(), 0);
        assert_eq!(
            r.alloc(10),
            Some(0),
            "the three frees merged into one range"
        );
        assert_eq!(Ranges::new(0).alloc(1), None);
    }
}
