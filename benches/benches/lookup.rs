//! Lookup time per structure and extent-map size, uniform and sequential query streams; and on
//! real images, the same plus the on-disk walk.

use std::hint::black_box;

use benches::{budget, real_files, run_batch, BATCH, MAP_SEED, SIZES};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use ext4::Extent;
use predictor::synth::{allocator_like, sequential_queries, uniform_queries};
use predictor::{
    BTreeIndex, ExtentIndex, FitParams, FuseIextIndex, LearnedIndex, OnDiskIndex, RangeMapIndex,
    SortedIndex, XfsIextIndex,
};

/// Benches one structure on each query stream. Generic, so each structure's `find` is
/// inlined into the loop as it would be in a server (no virtual call per lookup).
fn bench_all<I: ExtentIndex>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    ix: &I,
    streams: &[(&str, Vec<u32>)],
) {
    for (stream, qs) in streams {
        g.bench_with_input(BenchmarkId::new(name, stream), qs, |b, qs| {
            b.iter(|| run_batch(ix, black_box(qs)))
        });
    }
}

/// Builds each structure in turn (only one large one alive at a time) and benches it.
fn bench_structures(
    g: &mut BenchmarkGroup<'_, WallTime>,
    exts: &[Extent],
    streams: &[(&str, Vec<u32>)],
) {
    match LearnedIndex::fit(exts, &FitParams::default()) {
        Ok(l) => bench_all(g, "learned", &l, streams),
        Err(e) => panic!("fitting the map failed: {e}"),
    }
    bench_all(g, "sorted", &SortedIndex::new(exts.to_vec()), streams);
    bench_all(g, "btree", &BTreeIndex::new(exts), streams);
    bench_all(g, "rangemap", &RangeMapIndex::new(exts), streams);
    // The kernel-style in-core extent tree, XFS's 16-byte records and fuse-iomap's 32-byte ones.
    match XfsIextIndex::new(exts) {
        Ok(t) => bench_all(g, "iext16", &t, streams),
        Err(e) => panic!("building the xfs16 iext tree failed: {e}"),
    }
    match FuseIextIndex::new(exts) {
        Ok(t) => bench_all(g, "iext32", &t, streams),
        Err(e) => panic!("building the fuse32 iext tree failed: {e}"),
    }
}

fn synthetic(c: &mut Criterion) {
    for n in SIZES {
        let exts = allocator_like(n, MAP_SEED);
        let streams = [
            ("uniform", uniform_queries(&exts, BATCH, 1)),
            ("sequential", sequential_queries(&exts, BATCH, 2)),
        ];
        let mut g = c.benchmark_group(format!("lookup/{n}"));
        budget(&mut g, n);
        g.throughput(Throughput::Elements(BATCH as u64));
        bench_structures(&mut g, &exts, &streams);
        g.finish();
    }
}

fn real(c: &mut Criterion) {
    for f in real_files(2) {
        let mut g = c.benchmark_group(format!("real/{} ({} extents)", f.name, f.extents.len()));
        budget(&mut g, f.extents.len());
        g.throughput(Throughput::Elements(BATCH as u64));
        let streams = [("uniform", uniform_queries(&f.extents, BATCH, 3))];
        bench_structures(&mut g, &f.extents, &streams);
        bench_all(
            &mut g,
            "ondisk",
            &OnDiskIndex::new(f.fs.clone(), f.inode.clone()),
            &streams,
        );
        g.finish();
    }
}

criterion_group!(benches, synthetic, real);
criterion_main!(benches);
