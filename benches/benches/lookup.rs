//! Lookup time per structure and extent-map size in three regimes (`predictor::regime`):
//! `warm-alone` (one structure, one batch of 4096 uniform queries asked again and again in
//! `WARM_BATCHES` orders taken in turn), `sequential` (batches of 4096 consecutive blocks from
//! as many starts) and `cold-many-files` (the batch spread over copies of the structure filling
//! twice the last-level cache); and on real images, `warm-alone` plus the on-disk walk.

use std::hint::black_box;

use benches::{
    budget, cold_copies, cold_queries, kernel_files, real_files, run_batch, run_cold_batch, BATCH,
    MAP_SEED, SIZES, WARM_BATCHES,
};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use ext4::Extent;
use predictor::regime::Regime;
use predictor::synth::{allocator_like, in_orders, sequential_queries, uniform_queries};
use predictor::{
    BTreeIndex, ExtentIndex, FuseIextIndex, LearnedIndex, OnDiskIndex, RangeMapIndex, SortedIndex,
    Structure, XfsIextIndex,
};

/// Warm-regime streams: one structure, its batches taken in turn (the same blocks in other
/// orders, or other starts), so the sequence of queries does not repeat every batch.
fn bench_warm<I: ExtentIndex>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    ix: &I,
    streams: &[(&str, Vec<Vec<u32>>)],
) {
    for (stream, batches) in streams {
        g.bench_with_input(BenchmarkId::new(name, stream), batches, |b, batches| {
            let mut turn = batches.iter().cycle();
            b.iter(|| run_batch(ix, black_box(turn.next().map_or(&[][..], Vec::as_slice))))
        });
    }
}

/// Benches one structure, built by `build`, in both regimes: the warm streams on one copy,
/// then `cold-many-files` over as many copies as fill twice the last-level cache (only one
/// structure's copies alive at a time). Generic, so each structure's `find` is inlined into
/// the loop as it would be in a server (no virtual call per lookup).
fn bench_structure<I: ExtentIndex>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    build: impl Fn() -> I,
    warm: &[(&str, Vec<Vec<u32>>)],
    cold_keys: &[u32],
) {
    let ix = build();
    bench_warm(g, name, &ix, warm);
    let copies = cold_copies(ix.heap_bytes() + std::mem::size_of::<I>());
    drop(ix);
    let all: Vec<I> = (0..copies).map(|_| build()).collect();
    let qs = cold_queries(cold_keys, copies, 4);
    g.bench_with_input(
        BenchmarkId::new(name, Regime::ColdManyFiles.name()),
        &qs,
        |b, qs| b.iter(|| run_cold_batch(&all, black_box(qs))),
    );
}

/// Every structure over `exts`, in turn.
fn bench_structures(
    g: &mut BenchmarkGroup<'_, WallTime>,
    exts: &[Extent],
    warm: &[(&str, Vec<Vec<u32>>)],
    cold_keys: &[u32],
) {
    let or_panic = |what: &str, e: &dyn std::fmt::Display| -> ! { panic!("{what}: {e}") };
    let fit = || LearnedIndex::learned(exts).unwrap_or_else(|e| or_panic("fitting the map", &e));
    bench_structure(g, Structure::Learned.name(), fit, warm, cold_keys);
    let compact =
        || LearnedIndex::new(exts).unwrap_or_else(|e| or_panic("building the compact index", &e));
    bench_structure(g, Structure::Compact.name(), compact, warm, cold_keys);
    bench_structure(
        g,
        Structure::Sorted.name(),
        || SortedIndex::new(exts.to_vec()),
        warm,
        cold_keys,
    );
    bench_structure(
        g,
        Structure::Btree.name(),
        || BTreeIndex::new(exts),
        warm,
        cold_keys,
    );
    bench_structure(
        g,
        Structure::RangeMap.name(),
        || RangeMapIndex::new(exts),
        warm,
        cold_keys,
    );
    // The kernel-style in-core extent tree, XFS's 16-byte records and fuse-iomap's 32-byte ones.
    let xfs = || XfsIextIndex::new(exts).unwrap_or_else(|e| or_panic("the iext16 tree", &e));
    bench_structure(g, Structure::Iext16.name(), xfs, warm, cold_keys);
    let fuse = || FuseIextIndex::new(exts).unwrap_or_else(|e| or_panic("the iext32 tree", &e));
    bench_structure(g, Structure::Iext32.name(), fuse, warm, cold_keys);
}

fn synthetic(c: &mut Criterion) {
    for n in SIZES {
        let exts = allocator_like(n, MAP_SEED);
        let uniform = uniform_queries(&exts, BATCH, 1);
        let warm = warm_streams(&exts, &uniform, 2);
        let mut g = c.benchmark_group(format!("lookup/{n}"));
        budget(&mut g, n);
        g.throughput(Throughput::Elements(BATCH as u64));
        bench_structures(&mut g, &exts, &warm, &uniform);
        g.finish();
    }
}

/// The warm streams of a map: its uniform batch in [`WARM_BATCHES`] orders, and sequential
/// batches from as many starts.
fn warm_streams(exts: &[Extent], uniform: &[u32], seed: u64) -> [(&'static str, Vec<Vec<u32>>); 2] {
    [
        (
            Regime::WarmAlone.name(),
            in_orders(uniform, WARM_BATCHES, 0),
        ),
        (
            Regime::Sequential.name(),
            (0..WARM_BATCHES)
                .map(|k| sequential_queries(exts, BATCH, seed + (k << 32)))
                .collect(),
        ),
    ]
}

/// Real maps: the most fragmented file of each standard test image, and (as root) every file of
/// at least 10^3 extents of the kernel-allocator images, the maps the compact index is judged
/// on (`docs/design.md`, section 4.5).
fn real(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("a scratch directory for the kernel-allocator images: {e}"),
    };
    let files = real_files(2)
        .into_iter()
        .chain(kernel_files(dir.path(), 1_000));
    for f in files {
        let mut g = c.benchmark_group(format!("real/{} ({} extents)", f.name, f.extents.len()));
        budget(&mut g, f.extents.len());
        g.throughput(Throughput::Elements(BATCH as u64));
        let uniform = uniform_queries(&f.extents, BATCH, 3);
        let streams = warm_streams(&f.extents, &uniform, 4);
        bench_structures(&mut g, &f.extents, &streams, &uniform);
        bench_warm(
            &mut g,
            Structure::Ondisk.name(),
            &OnDiskIndex::new(f.fs.clone(), f.inode.clone()),
            &streams,
        );
        g.finish();
    }
}

criterion_group!(benches, synthetic, real);
criterion_main!(benches);
