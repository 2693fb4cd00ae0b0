//! Bytes per extent of each structure, measured with a counting global allocator (not an
//! estimate): the heap growth while building each structure from an extent list. Prints a
//! table; not a criterion bench.

use predictor::alloc::counted;
use predictor::synth::allocator_like;
use predictor::{
    BTreeIndex, ExtentIndex, FitParams, FuseIextIndex, LearnedIndex, RangeMapIndex, SortedIndex,
    XfsIextIndex,
};

#[global_allocator]
static ALLOC: predictor::alloc::Counting = predictor::alloc::Counting;

/// Heap bytes `make` leaves allocated (its result kept alive until measured), and the result.
fn measure<T>(make: impl FnOnce() -> T) -> (isize, T) {
    let (bytes, v) = counted(make);
    (isize::try_from(bytes).unwrap_or(isize::MAX), v)
}

/// Measured heap bytes of an iext tree, checked against its own exact count.
fn iext_bytes<I: ExtentIndex, E: std::fmt::Display>(make: impl FnOnce() -> Result<I, E>) -> isize {
    let (bytes, t) = measure(make);
    match t {
        Ok(t) => {
            // heap_bytes claims to be exact for these trees: hold it to that.
            assert_eq!(
                t.heap_bytes() as isize,
                bytes,
                "iext heap_bytes is not exact"
            );
            bytes
        }
        Err(e) => panic!("building an iext tree failed: {e}"),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[1, 1000]
    } else {
        &[1, 10, 1_000, 100_000, 1_000_000, 10_000_000]
    };
    println!(
        "{:>10} {:>9} {:>8} {:>12} {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "extents",
        "segments",
        "model",
        "model+keys",
        "learned(all)",
        "sorted",
        "btree",
        "btree~est",
        "rangemap",
        "range~est",
        "iext16",
        "iext32"
    );
    for &n in sizes {
        let exts = allocator_like(n, benches::MAP_SEED);
        let per = |b: isize| b as f64 / n as f64;
        let (learned_b, l) = measure(|| LearnedIndex::fit(&exts, &FitParams::default()));
        let Ok(l) = l else {
            panic!("fitting a synthetic map failed")
        };
        let (sorted_b, s) = measure(|| SortedIndex::new(exts.clone()));
        drop(s);
        let (btree_b, b) = measure(|| BTreeIndex::new(&exts));
        let btree_est = b.heap_bytes();
        drop(b);
        let (range_b, r) = measure(|| RangeMapIndex::new(&exts));
        let range_est = r.heap_bytes();
        drop(r);
        let iext16_b = iext_bytes(|| XfsIextIndex::new(&exts));
        let iext32_b = iext_bytes(|| FuseIextIndex::new(&exts));
        println!(
            "{:>10} {:>9} {:>8.3} {:>12.3} {:>14.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            n,
            l.segment_count(),
            per(l.model_bytes() as isize),
            per((l.model_bytes() + l.key_bytes()) as isize),
            per(learned_b),
            per(sorted_b),
            per(btree_b),
            per(btree_est as isize),
            per(range_b),
            per(range_est as isize),
            per(iext16_b),
            per(iext32_b),
        );
    }
}
