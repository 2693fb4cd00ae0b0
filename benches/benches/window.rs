//! Learned lookup cost (records storage) against `max_window` on one allocator-like map: small
//! windows mean many line pieces (a larger directory, more lookups past their bucket's piece),
//! large ones a longer count. Lines are fitted with at most the lookup's
//! `predictor::index::learned::WINDOW` slots, so that is the widest measured.

use std::hint::black_box;

use benches::{budget, run_batch, BATCH, MAP_SEED};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use predictor::regime::Regime;
use predictor::synth::{allocator_like, sequential_queries, uniform_queries};
use predictor::{FitParams, LearnedIndex, Storage};

const EXTENTS: [usize; 2] = [100_000, 1_000_000];
const WINDOWS: [u32; 4] = [4, 8, 16, 32];

fn window(c: &mut Criterion) {
    for n in EXTENTS {
        let exts = allocator_like(n, MAP_SEED);
        let streams = [
            ("uniform", uniform_queries(&exts, BATCH, 1)),
            (
                Regime::Sequential.name(),
                sequential_queries(&exts, BATCH, 2),
            ),
        ];
        let mut g = c.benchmark_group(format!("window/{n}"));
        budget(&mut g, n);
        g.throughput(Throughput::Elements(BATCH as u64));
        for w in WINDOWS {
            let l = match LearnedIndex::with_storage(
                &exts,
                &FitParams {
                    max_window: w,
                    ..Default::default()
                },
                Storage::Records,
            ) {
                Ok(l) => l,
                Err(e) => panic!("fitting a synthetic map failed: {e}"),
            };
            eprintln!(
                "window/{n}: max_window {w}: {} segments, model {} bytes",
                l.segment_count(),
                l.model_bytes()
            );
            for (stream, qs) in &streams {
                g.bench_with_input(BenchmarkId::new(*stream, w), qs, |b, qs| {
                    b.iter(|| run_batch(&l, black_box(qs)))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, window);
criterion_main!(benches);
