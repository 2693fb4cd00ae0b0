//! Loading a tier stack from a real image: extents rebuilt from the image (the pack holds only
//! models), with and without a pack, and parsing the pack itself.

use std::sync::Arc;

use benches::real_files;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use predictor::{FitParams, Models, Pack, StackOptions, Tier, TierStack};

fn load(c: &mut Criterion) {
    // The image holding the most fragmented file.
    let Some(f) = real_files(2).into_iter().max_by_key(|f| f.extents.len()) else {
        return;
    };
    let fs = f.fs.clone();
    let build = |tier, models| match TierStack::build(
        Arc::clone(&fs),
        tier,
        models,
        StackOptions::default(),
    ) {
        Ok((s, report)) => (s, report),
        Err(e) => panic!("building the stack: {e}"),
    };
    let (_, report) = build(Tier::Btree, Models::None);
    let pack = predictor::train::train(&fs, &FitParams::default(), 1, &|_| ()).pack;
    let bytes = pack.to_bytes();
    eprintln!(
        "load: image of {}: {} files, {} extents, pack {} bytes",
        f.name,
        report.files,
        report.extents,
        bytes.len()
    );
    let mut g = c.benchmark_group(format!(
        "load/{} files {} extents",
        report.files, report.extents
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(report.extents));
    g.bench_function(BenchmarkId::new("stack", "btree"), |b| {
        b.iter(|| build(Tier::Btree, Models::None))
    });
    g.bench_function(BenchmarkId::new("stack", "predictor+pack"), |b| {
        b.iter(|| build(Tier::Learned, Models::Pack(&pack)))
    });
    g.bench_function(BenchmarkId::new("stack", "predictor+fit"), |b| {
        b.iter(|| build(Tier::Learned, Models::Fit(FitParams::default())))
    });
    g.bench_function(BenchmarkId::new("pack", "parse"), |b| {
        b.iter(|| Pack::from_bytes(&bytes).map(|p| p.entries.len()))
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
