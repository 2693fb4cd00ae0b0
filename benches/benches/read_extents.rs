//! Reading extent maps from an image: the whole map of a file with 10^6 extents (a 4 KiB-block
//! image punched by the kernel, depth-2 tree of ~2950 leaf blocks), as `training` and the tier
//! stack do at load. Needs root (the image is made through a loop mount); skipped otherwise.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const EXTENTS: u32 = 1_000_000;

fn read_extents(c: &mut Criterion) {
    if !imagekit::kernel::is_root() {
        eprintln!("read_extents: skipped (building the image needs root for a loop mount)");
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temp dir: {e}"),
    };
    let recipe = imagekit::Recipe::Punched { extents: EXTENTS };
    let image = match recipe.build(dir.path()) {
        Ok(i) => i.path,
        Err(e) => panic!("building the image: {e}"),
    };
    let fs = match ext4::Fs::open_path(&image) {
        Ok(fs) => fs,
        Err(e) => panic!("{e}"),
    };
    let inode = match fs.lookup_path("/punched") {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    let mut g = c.benchmark_group("read_extents");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(EXTENTS)));
    g.bench_function("1e6 extents, whole map", |b| {
        b.iter(|| match fs.extents(&inode) {
            Ok(e) => assert_eq!(e.len(), EXTENTS as usize),
            Err(e) => panic!("{e}"),
        });
    });
    g.finish();
    let mut g = c.benchmark_group("map_block");
    g.bench_function("1e6 extents, one block (on-disk walk)", |b| {
        let mut lblk = 0u32;
        b.iter(|| {
            lblk = (lblk + 7919) % (2 * EXTENTS);
            fs.map_block(&inode, lblk).map(std::hint::black_box)
        });
    });
    g.finish();
}

criterion_group!(benches, read_extents);
criterion_main!(benches);
