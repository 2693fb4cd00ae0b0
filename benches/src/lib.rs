//! Shared setup of the benches: extent-map sizes, query batches, timing budgets, and the real
//! test images' most fragmented files.
//!
//! Benches: `lookup` (every structure, every size, in two regimes: warm, one structure and its
//! query batch resident in cache, uniform and sequential queries; cold, uniform queries spread
//! over copies of the structure whose bytes together are twice the last-level cache, as an
//! in-kernel mapping cache sees when it holds many files' maps; plus the on-disk walk on real
//! images), `window` (learned lookup cost against `max_window`), `fit` (fitting throughput),
//! `memory` (bytes per extent, measured with a counting allocator).

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use ext4::{Extent, Fs, Inode, InodeKind};
use predictor::error::Chain;
use predictor::{ExtentIndex, Lookup};

/// Extent-map sizes of the lookup benches.
pub const SIZES: [usize; 6] = [1, 10, 1_000, 100_000, 1_000_000, 10_000_000];

/// Queries per benchmark iteration: enough to amortise the timing loop, few enough to stay a
/// small fraction of any map's cache footprint. Criterion reports time per query via
/// `Throughput::Elements(BATCH)`.
pub const BATCH: usize = 4096;

/// Batches of a warm stream, taken in turn: the uniform batch in this many orders, the
/// sequential stream from this many starts (a batch repeated in one order lets the branch
/// predictor learn it).
pub const WARM_BATCHES: u64 = 16;

/// Seed of the synthetic maps (the same maps in every run).
pub const MAP_SEED: u64 = 42;

/// Looks up every query and folds the answers into a number the optimiser cannot drop.
#[inline]
pub fn run_batch<I: ExtentIndex + ?Sized>(ix: &I, queries: &[u32]) -> u64 {
    queries.iter().fold(0u64, |acc, &q| {
        acc.wrapping_add(match ix.find(q) {
            Lookup::Found(ext4::BlockMap::Mapped(e)) => e.pblk,
            Lookup::Found(ext4::BlockMap::Hole { next }) => u64::from(next.unwrap_or(1)),
            Lookup::Declined | Lookup::Missed => 7,
        })
    })
}

/// Most copies of one structure in the cold regime (maps of one or ten extents would need
/// millions to fill twice the cache).
pub const MAX_COLD_COPIES: usize = 100_000;

/// How many copies of a structure of `bytes_each` bytes (heap and value) make the cold
/// regime's working set: twice the last-level cache, at most [`MAX_COLD_COPIES`].
pub fn cold_copies(bytes_each: usize) -> usize {
    (2 * predictor::synth::cold_cache())
        .div_ceil(bytes_each.max(64))
        .clamp(1, MAX_COLD_COPIES)
}

/// Cold-regime queries: each key of `keys` sent to a random one of `copies` structures.
pub fn cold_queries(keys: &[u32], copies: usize, seed: u64) -> Vec<(u32, u32)> {
    let mut rng = predictor::synth::Rng::new(seed);
    keys.iter()
        .map(|&q| (rng.below(copies as u64) as u32, q))
        .collect()
}

/// [`run_batch`] over the copies: each query looks its key up in its copy.
#[inline]
pub fn run_cold_batch<I: ExtentIndex>(copies: &[I], queries: &[(u32, u32)]) -> u64 {
    queries.iter().fold(0u64, |acc, &(c, q)| {
        acc.wrapping_add(match copies[c as usize].find(q) {
            Lookup::Found(ext4::BlockMap::Mapped(e)) => e.pblk,
            Lookup::Found(ext4::BlockMap::Hole { next }) => u64::from(next.unwrap_or(1)),
            Lookup::Declined | Lookup::Missed => 7,
        })
    })
}

/// Small samples and short measurements, longer for bigger maps (whose lookups vary more
/// with cache state), to keep a full `cargo bench -p benches` within minutes.
pub fn budget(g: &mut BenchmarkGroup<'_, WallTime>, extents: usize) {
    let (samples, secs) = if extents >= 1_000_000 {
        (10, 2.0)
    } else {
        (20, 1.0)
    };
    g.sample_size(samples)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs_f64(secs));
}

/// One regular file of a real test image, with everything a lookup bench needs.
pub struct RealFile {
    /// `image:path`.
    pub name: String,
    /// The open image.
    pub fs: Arc<Fs>,
    /// The file's inode.
    pub inode: Inode,
    /// Its extents.
    pub extents: Vec<Extent>,
}

/// Every regular file of at least `min_extents` extents in the demo's kernel-allocator images
/// (the `imagekit::Recipe::Allocated` of `Recipe::DEMO`, built in `dir` as the demo builds them,
/// with the demo's seed, `imagekit::DEMO_SEED`, which is [`MAP_SEED`]): maps
/// the kernel's allocator made, from about 10^3 extents (the appenders' smallest file) to
/// 10^6. Building them loop-mounts images, so as another user this is empty and says why.
pub fn kernel_files(dir: &std::path::Path, min_extents: usize) -> Vec<RealFile> {
    if !imagekit::kernel::is_root() {
        eprintln!("kernel-allocator maps skipped: building them needs root (loop mounts)");
        return Vec::new();
    }
    let mut out = Vec::new();
    let allocated = imagekit::Recipe::DEMO
        .iter()
        .filter(|r| matches!(r, imagekit::Recipe::Allocated { .. }));
    for recipe in allocated {
        let image = match recipe.build(dir) {
            Ok(i) => i.path,
            Err(e) => panic!("building {}: {}", recipe.name(), Chain(&e)),
        };
        let fs = match Fs::open_path(&image) {
            Ok(f) => Arc::new(f),
            Err(e) => panic!("opening {}: {}", image.display(), Chain(&e)),
        };
        let (entries, errors) = fs.walk();
        assert!(errors.is_empty(), "{}: {errors:?}", image.display());
        let mut files: Vec<RealFile> = entries
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File)
            .filter_map(|e| {
                let extents = fs.extents(&e.inode).ok()?;
                (extents.len() >= min_extents).then(|| RealFile {
                    name: format!("{}:{}", recipe.name(), e.path),
                    fs: fs.clone(),
                    inode: e.inode,
                    extents,
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(files);
    }
    out
}

/// The most fragmented regular file (at least `min_extents`) of each standard test image;
/// empty if the images cannot be built here (no mkfs.ext4/debugfs).
pub fn real_files(min_extents: usize) -> Vec<RealFile> {
    let images = match imagekit::standard() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("real images unavailable: {}", Chain(&e));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for img in images {
        let Ok(fs) = Fs::open_path(&img.path) else {
            continue;
        };
        let fs = Arc::new(fs);
        let (entries, _) = fs.walk();
        let best = entries
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File && !e.inode.has_inline_data())
            .filter_map(|e| fs.extents(&e.inode).ok().map(|x| (e, x)))
            .max_by_key(|(_, x)| x.len());
        if let Some((e, extents)) = best.filter(|(_, x)| x.len() >= min_extents) {
            out.push(RealFile {
                name: format!("{}:{}", img.name, e.path),
                fs: fs.clone(),
                inode: e.inode,
                extents,
            });
        }
    }
    out
}
