//! Fitting throughput, in extents per second: one big file per size, and an image-like mix of
//! many small files. Criterion's throughput line gives the rate.

use std::hint::black_box;

use benches::{budget, MAP_SEED};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use predictor::model::{fit, FinalFit, FitParams};
use predictor::synth::{allocator_like, Rng};

const SIZES: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];

fn keys_of(n: usize, seed: u64) -> Vec<u32> {
    allocator_like(n, seed).iter().map(|e| e.lblk).collect()
}

fn one_file(c: &mut Criterion) {
    for n in SIZES {
        let keys = keys_of(n, MAP_SEED);
        let mut g = c.benchmark_group(format!("fit/{n}"));
        budget(&mut g, n);
        if n >= 10_000_000 {
            // One fit takes seconds: criterion's minimum of 10 samples is all we take.
            g.measurement_time(std::time::Duration::from_secs(20));
        }
        g.throughput(Throughput::Elements(n as u64));
        for final_fit in [FinalFit::Linfa, FinalFit::ClosedForm] {
            let params = FitParams {
                final_fit,
                ..Default::default()
            };
            g.bench_with_input(
                BenchmarkId::new(format!("{final_fit:?}"), n),
                &keys,
                |b, keys| b.iter(|| fit(black_box(keys), &params).map(|(m, _)| m.segments.len())),
            );
        }
        g.finish();
    }
}

/// 20,000 files of 1 to 100 extents: per-file overhead (allocation, linfa set-up) dominates.
fn many_files(c: &mut Criterion) {
    let mut rng = Rng::new(9);
    let files: Vec<Vec<u32>> = (0..20_000)
        .map(|i| keys_of(1 + rng.below(100) as usize, i))
        .collect();
    let total: usize = files.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("fit/many-files");
    budget(&mut g, total);
    g.throughput(Throughput::Elements(total as u64));
    for final_fit in [FinalFit::Linfa, FinalFit::ClosedForm] {
        let params = FitParams {
            final_fit,
            ..Default::default()
        };
        g.bench_with_input(
            BenchmarkId::new(format!("{final_fit:?}"), total),
            &files,
            |b, files| {
                b.iter(|| {
                    files
                        .iter()
                        .map(|k| fit(black_box(k), &params).map_or(0, |(m, _)| m.segments.len()))
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, one_file, many_files);
criterion_main!(benches);
