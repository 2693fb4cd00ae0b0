//! Seeded synthetic extent maps and query streams, shared by tests and benches.

use ext4::Extent;

/// SplitMix64: a tiny, seedable, reproducible generator (the maps must be the same on every
/// machine and every run, whatever version of `rand` is around).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (`n > 0`; 0 gives 0). Multiply-shift: bias below 2^-32 for our `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Log-uniform in `[1, 2^bits)`: many small values, a few large, like extent and gap
    /// lengths (`bits <= 31`).
    pub fn log_uniform(&mut self, bits: u32) -> u32 {
        let b = self.below(u64::from(bits.min(31))) as u32;
        let lo = 1u32 << b;
        lo + self.below(u64::from(lo)) as u32
    }
}

/// Longest run (extent plus the gap before it) [`allocator_like`] draws, in blocks.
pub const MAX_STRIDE: u64 = 256;

/// An allocator-like extent map of `n` extents: lengths log-uniform in 1..128 blocks; before
/// each extent no gap (40%) or a log-uniform gap of 1..128 blocks; physical starts mostly a
/// short hop after the previous extent, sometimes (20%) a jump anywhere; 10% unwritten.
///
/// Every stride (gap plus extent) is below [`MAX_STRIDE`] blocks, so up to `2^32 / 256` (16.7 million) extents fit
/// in the 32-bit block space; larger `n` are capped there.
pub fn allocator_like(n: usize, seed: u64) -> Vec<Extent> {
    let n = n.min(((1u64 << 32) / MAX_STRIDE) as usize);
    let mut rng = Rng::new(seed);
    let mut exts = Vec::with_capacity(n);
    let (mut lblk, mut pblk) = (0u64, 1u64 << 20);
    for _ in 0..n {
        if !rng.chance(40) {
            lblk += u64::from(rng.log_uniform(7));
        }
        let len = rng.log_uniform(7);
        pblk = if rng.chance(20) {
            rng.below(1 << 40)
        } else {
            pblk + u64::from(rng.log_uniform(6))
        };
        // OK to narrow: lblk < n * MAX_STRIDE <= 2^32 by the cap on n.
        exts.push(Extent {
            lblk: lblk as u32,
            pblk,
            len,
            unwritten: rng.chance(10),
        });
        lblk += u64::from(len);
        pblk += u64::from(len);
    }
    exts
}

/// `n` extents of `len` blocks with `gap`-block holes between them, the first at `start`,
/// capped so the last ends by [`ext4::MAX_LBLK`].
pub fn regular(n: usize, start: u32, len: u32, gap: u32) -> Vec<Extent> {
    let stride = u64::from(len.max(1)) + u64::from(gap);
    (0..n as u64)
        .map(|i| u64::from(start) + i * stride)
        .take_while(|&l| l + u64::from(len.max(1)) <= ext4::MAX_LBLK)
        .map(|l| Extent {
            lblk: l as u32,
            pblk: 1000 + l,
            len: len.max(1),
            unwritten: l % 3 == 0,
        })
        .collect()
}

/// `queries` in `orders` random orders (Fisher-Yates, the `k`-th seeded with `seed + k`): the
/// same blocks, so the same cache lines, in sequences a branch predictor has not seen. The
/// warm regime takes them in turn: a batch asked in one fixed order again and again lets the
/// predictor learn the batch's branch outcomes.
pub fn in_orders(queries: &[u32], orders: u64, seed: u64) -> Vec<Vec<u32>> {
    (0..orders)
        .map(|k| {
            let mut out = queries.to_vec();
            let mut rng = Rng::new(seed.wrapping_add(k));
            for i in (1..out.len()).rev() {
                // OK to narrow: below i + 1, a usize.
                out.swap(i, rng.below(i as u64 + 1) as usize);
            }
            out
        })
        .collect()
}

/// One past the last block covered by `exts` (0 for none): the span query streams draw from.
pub fn span(exts: &[Extent]) -> u64 {
    exts.last().map_or(0, |e| e.end())
}

/// `count` uniform random blocks in `[0, span + span / 8 + 1)`, clamped to the 32-bit block space,
/// so holes before, between and after the extents are all hit.
pub fn uniform_queries(exts: &[Extent], count: usize, seed: u64) -> Vec<u32> {
    let top = (span(exts) + span(exts) / 8 + 1).min(1 << 32);
    let mut rng = Rng::new(seed);
    // OK to narrow: below(top) < top <= 2^32.
    (0..count).map(|_| rng.below(top) as u32).collect()
}

/// `count` consecutive blocks from a random start, wrapping at the span: what a sequential read
/// asks for.
pub fn sequential_queries(exts: &[Extent], count: usize, seed: u64) -> Vec<u32> {
    let top = span(exts).max(1);
    let start = Rng::new(seed).below(top);
    // OK to narrow: the value is reduced modulo top <= 2^32.
    (0..count as u64)
        .map(|i| ((start + i) % top) as u32)
        .collect()
}

/// Bytes of this machine's largest CPU cache (the last level), from
/// `/sys/devices/system/cpu/cpu0/cache/index*/size`; 32 MiB if sysfs does not say. What the
/// cold lookup regime (a working set of twice this, or this evicted between lookups) is sized
/// from.
pub fn last_level_cache() -> usize {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("size")).ok())
        .filter_map(|s| parse_size(s.trim()))
        .max()
        .unwrap_or(32 << 20)
}

/// Most bytes of last-level cache the cold regimes size from: [`cold_cache`].
pub const COLD_CACHE_MAX: usize = 32 << 20;

/// The cache the cold regimes evict (a working set of twice this, or twice this read between
/// lookups): the last-level cache, at most [`COLD_CACHE_MAX`]. A virtual machine can report
/// its host's whole last-level cache, shared with every other guest (260 MiB on one 2-core
/// machine of this project's kind); twice that read before each of a thousand cold samples per
/// structure took the demo from minutes to hours, and a guest cannot count on keeping a share
/// that large anyway.
pub fn cold_cache() -> usize {
    last_level_cache().min(COLD_CACHE_MAX)
}

/// `32768K` / `1M` / `512` as bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mult)
}
