//! Bytes per extent of each structure, measured with a counting global allocator (not an
//! estimate): the heap growth while building each structure from an extent list. Prints a
//! table; not a criterion bench.

use predictor::alloc::counted;
use predictor::synth::allocator_like;
use predictor::{
    BTreeIndex, ExtentIndex, FuseIextIndex, LearnedIndex, RangeMapIndex, SortedIndex, Structure,
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

/// The bytes a structure reports for itself must match what the allocator counted: exactly for
/// arrays and the compact index, within 2% for the std trees (`BTreeMap`, `RangeMap`) whose
/// figure is a node-layout estimate, the fallback of `TierStack::memory` in processes without
/// the counting allocator (from 10^3 extents; small trees round to whole nodes).
fn check_own_account(name: &str, n: usize, own: usize, counted: isize, exact: bool) {
    let counted = counted.max(0) as f64;
    if exact {
        assert_eq!(
            own as f64, counted,
            "{name} at {n} extents: heap_bytes is not exact"
        );
    } else if n >= 1000 {
        let off = (own as f64 - counted).abs() / counted.max(1.0);
        assert!(
            off <= 0.02,
            "{name} at {n} extents: estimate {own} B, counted {counted} B"
        );
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
        "{:>10} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "extents",
        "segments",
        "model",
        Structure::Learned.name(),
        Structure::Sorted.name(),
        Structure::Btree.name(),
        Structure::RangeMap.name(),
        Structure::Iext16.name(),
        Structure::Iext32.name(),
        Structure::Compact.name()
    );
    for &n in sizes {
        let exts = allocator_like(n, benches::MAP_SEED);
        let per = |b: isize| b as f64 / n as f64;
        let (learned_b, l) = measure(|| LearnedIndex::learned(&exts));
        let Ok(l) = l else {
            panic!("fitting a synthetic map failed")
        };
        check_own_account(
            Structure::Learned.name(),
            n,
            l.heap_bytes(),
            learned_b,
            true,
        );
        let (sorted_b, s) = measure(|| SortedIndex::new(exts.clone()));
        check_own_account(Structure::Sorted.name(), n, s.heap_bytes(), sorted_b, true);
        drop(s);
        let (btree_b, b) = measure(|| BTreeIndex::new(&exts));
        check_own_account(Structure::Btree.name(), n, b.heap_bytes(), btree_b, false);
        drop(b);
        let (range_b, r) = measure(|| RangeMapIndex::new(&exts));
        check_own_account(
            Structure::RangeMap.name(),
            n,
            r.heap_bytes(),
            range_b,
            false,
        );
        drop(r);
        let (compact_b, c) = measure(|| LearnedIndex::new(&exts));
        let Ok(c) = c else {
            panic!("building the compact index of a synthetic map failed")
        };
        check_own_account(
            Structure::Compact.name(),
            n,
            c.heap_bytes(),
            compact_b,
            true,
        );
        drop(c);
        let iext16_b = iext_bytes(|| XfsIextIndex::new(&exts));
        let iext32_b = iext_bytes(|| FuseIextIndex::new(&exts));
        println!(
            "{:>10} {:>9} {:>8.3} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            n,
            l.segment_count(),
            per(l.model_bytes() as isize),
            per(learned_b),
            per(sorted_b),
            per(btree_b),
            per(range_b),
            per(iext16_b),
            per(iext32_b),
            per(compact_b),
        );
    }
}
