//! Timing lookups the way the learned-index papers do: many batches of precomputed queries,
//! each batch timed as a whole (`Instant` around it, results folded into a `black_box`), so
//! the clock's own cost (~20 ns) is spread over thousands of lookups; the distribution over
//! batches gives the median and the p99.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ext4::BlockMap;
use predictor::{ExtentIndex, Lookup};

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Queries per timed batch.
    pub batch: usize,
    /// Rounds always run (each round times one batch of every contender).
    pub min_rounds: usize,
    /// Rounds never exceeded.
    pub max_rounds: usize,
    /// Stop after the round in which this much time has passed (once `min_rounds` are done).
    pub time: Duration,
}

/// Median, p99 and friends of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median (nearest rank).
    pub median: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Number of samples.
    pub samples: usize,
}

impl Summary {
    /// Summarises `v` (sorts it). `None` for no samples.
    pub fn of(v: &mut [f64]) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Self {
            median: quantile(v, 0.5),
            p99: quantile(v, 0.99),
            min: v.first().copied().unwrap_or(0.0),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            samples: v.len(),
        })
    }
}

/// The value at quantile `q` of sorted `v` (nearest rank); 0 for no values.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(0.0)
}

/// Looks every query up and folds the answers into a number the optimiser cannot drop (the
/// same fold the criterion benches use, so the two measure the same work).
#[inline]
pub fn run_batch(ix: &dyn ExtentIndex, queries: &[u32]) -> u64 {
    queries.iter().fold(0u64, |acc, &q| {
        acc.wrapping_add(match ix.find(q) {
            Lookup::Found(BlockMap::Mapped(e)) => e.pblk,
            Lookup::Found(BlockMap::Hole { next }) => u64::from(next.unwrap_or(1)),
            Lookup::Declined | Lookup::Missed => 7,
        })
    })
}

/// Times `contenders` side by side on the same query batches: each round runs one batch of
/// every contender in turn (so drift in clock speed or cache state hits all of them alike),
/// cycling through `batches`. Returns, per contender, the ns per lookup of every timed batch.
/// Two untimed rounds warm caches and branch predictors first.
pub fn race(
    contenders: &[&dyn ExtentIndex],
    batches: &[Vec<u32>],
    budget: &Budget,
) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); contenders.len()];
    if batches.is_empty() || contenders.is_empty() {
        return out;
    }
    for batch in batches.iter().cycle().take(2) {
        for c in contenders {
            black_box(run_batch(*c, black_box(batch)));
        }
    }
    let start = Instant::now();
    for (round, batch) in batches.iter().cycle().enumerate() {
        if round >= budget.max_rounds
            || (round >= budget.min_rounds && start.elapsed() >= budget.time)
        {
            break;
        }
        for (c, samples) in contenders.iter().zip(&mut out) {
            let t = Instant::now();
            black_box(run_batch(*c, black_box(batch)));
            let ns = t.elapsed().as_nanos() as f64;
            samples.push(ns / batch.len().max(1) as f64);
        }
    }
    out
}

/// Median cost of one `Instant::now()` + `elapsed()` pair, in ns.
pub fn clock_overhead_ns() -> f64 {
    let mut v: Vec<f64> = (0..2001)
        .map(|_| {
            let t = Instant::now();
            black_box(t.elapsed().as_nanos() as f64)
        })
        .collect();
    Summary::of(&mut v).map_or(0.0, |s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let s = Summary::of(&mut v).unwrap();
        assert_eq!((s.median, s.p99, s.min, s.samples), (50.0, 99.0, 1.0, 100));
        assert!(Summary::of(&mut []).is_none());
    }
}
