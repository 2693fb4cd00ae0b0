//! The race of `reports structures` and the experiments: every lookup structure built over one
//! file's extent map and raced on the same queries in three regimes, with its heap bytes counted
//! by the allocator.
//!
//! # Regimes (`predictor::regime`)
//! - **`warm-shared`**: one batch of [`BATCH`] uniform random blocks over the file's span,
//!   asked again and again (two untimed passes first), each structure in turn, in one of
//!   [`WARM_ORDERS`] orders per round: the working set is the cache lines that batch touches,
//!   which stay in the caches, while the sequence of queries does not repeat. What a kernel
//!   cache sees when one file is being read hard. (Asked in one fixed order, the batch's
//!   branch outcomes repeat every 4096 lookups and the branch predictor learns part of them:
//!   on a map of 10^3 extents the iext tree's warm lookups took half the time they take in
//!   changing orders, the compact index's about two thirds; `docs/design.md`, section 7.)
//! - **`cold-evicted`**: before every timed lookup, a buffer of twice the last-level cache is
//!   read (one load per 64-byte line; the size comes from sysfs, see [`Evictor`]), so the
//!   structure's cache lines are gone; then the same block is looked up in a *twin* of the
//!   structure (a second build over the same map, elsewhere in memory), which brings back the
//!   clock and exactly the code the timed lookup runs (a run, a second block, a hole: paths a
//!   small twin would not take), and one lookup of the structure is timed alone, the clock's
//!   own cost subtracted. The structure and its twin take turns (each warms the other's code
//!   before its own timed lookup), so the median spans two placements in memory, which on
//!   this machine move a structure's cold time by up to a fifth ([`cold_race`]).
//!   What an `iomap_begin` sees when the mapping cache was evicted by other work while the
//!   lookup code stayed hot.
//! - **`sequential`**: batches of [`BATCH`] consecutive blocks, as a sequential read asks for
//!   them (warm), from [`SEQUENTIAL_STARTS`] random starts taken in turn: one stretch of a map
//!   (mostly holes, or one long extent) would stand for the whole file.
//!
//! Medians over the timed batches (or cold lookups). The structures take turns within every
//! round, so drift in clock speed or cache state hits them alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ext4::Extent;
use predictor::index::choose::Chosen;
use predictor::synth::{in_orders, sequential_queries, uniform_queries};
use predictor::ExtentIndex;

use crate::support::datasets::Dataset;
use crate::support::structures::{Built, STRUCTURES};
use crate::support::timing::{clock_overhead_ns, race, Budget, Summary};

/// Queries per timed batch in the warm regimes.
pub const BATCH: usize = 4096;

/// Starting points of the sequential regime's batches.
pub const SEQUENTIAL_STARTS: u64 = 16;

/// Orders of the uniform warm batch, taken in turn round by round.
pub const WARM_ORDERS: u64 = 16;

/// Mixed into a map's query seed for the warm orders' shuffles.
pub const ORDERS_SEED: u64 = 0x0bde_75ee;

/// The structures raced, by their name in [`STRUCTURES`] (this command's output and the
/// experiments' tables). `iext16` and `iext32` are the kernel-style iext tree with XFS's
/// 16-byte records and with fuse-iomap's 32-byte `fuse_iomap_io` records.
pub const RACED: [&str; 6] = [
    predictor::Structure::Compact.name(),
    predictor::Structure::Learned.name(),
    predictor::Structure::Iext16.name(),
    predictor::Structure::Iext32.name(),
    predictor::Structure::Btree.name(),
    predictor::Structure::Sorted.name(),
];

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Warm regimes.
    pub warm: Budget,
    /// Cold lookups timed per structure. A map's cold times can be a mixture (on the kernel's
    /// random-punched file about half the uniform queries fall in its unpunched tail of a few
    /// hundred long extents, mostly runs answered by arithmetic, the rest among the punched
    /// ones), and at 201 the compact index's median moved between the two modes from run to
    /// run.
    pub cold_samples: usize,
}

impl Effort {
    /// The default of the command and the demo.
    pub fn full() -> Self {
        Self {
            warm: Budget {
                batch: BATCH,
                min_rounds: 15,
                max_rounds: 201,
                time: Duration::from_millis(300),
            },
            cold_samples: 1001,
        }
    }

    /// Toy scale for tests.
    pub fn quick() -> Self {
        Self {
            warm: Budget {
                batch: BATCH,
                min_rounds: 3,
                max_rounds: 3,
                time: Duration::ZERO,
            },
            cold_samples: 5,
        }
    }
}

/// One structure over one file: the command's output record (its JSON keys are these names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The file (`PATH` within the image, or a dataset name).
    pub file: String,
    /// Extents in the file's map.
    pub extents: usize,
    /// Structure name (see [`RACED`]).
    pub structure: &'static str,
    /// Heap bytes the structure holds, counted by the allocator while it was built.
    pub bytes: usize,
    /// `bytes / extents`.
    pub bytes_per_extent: f64,
    /// Median ns per lookup, `warm-shared`.
    pub ns_warm_shared: f64,
    /// Median ns of one lookup, `cold-evicted`.
    pub ns_cold_evicted: f64,
    /// Median ns per lookup, `sequential`.
    pub ns_sequential: f64,
    /// The compact index's chosen form (empty for the others); not in the JSON, whose keys
    /// are fixed.
    #[serde(skip)]
    pub form: String,
}

/// Evicts the caches by reading a buffer of twice the last-level cache, mapped with huge pages
/// where the kernel allows them (`MADV_HUGEPAGE`), so the eviction itself takes few TLB entries
/// and the structure's translations mostly survive, as the kernel's mapping cache keeps its
/// translations in the direct map's huge pages. Its cache lines do not survive.
///
/// Evicting alone is not the regime: it also evicts the lookup code and the clock, and on this
/// virtual machine those misses (3-4 us per lookup for every structure, whatever its own
/// cache-line count) hid the structures' differences; [`measure`] therefore warms the code with
/// a twin structure before each timed lookup. A twin over the map's first 256 extents was not
/// enough: its lookup ran one path, and a timed lookup taking another (a run, the piece array)
/// paid that code's misses, half a microsecond and more each, in some structures and not others.
pub struct Evictor {
    map: *mut u8,
    len: usize,
}

impl Evictor {
    /// Twice [`predictor::synth::cold_cache`]: the last-level cache from
    /// `/sys/devices/system/cpu/cpu0/cache/index*/size`, at most 32 MiB.
    pub fn new() -> Result<Self> {
        let llc = predictor::synth::cold_cache();
        let len = (2 * llc).next_multiple_of(2 << 20);
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .context(format!("mapping a {len}-byte eviction buffer"));
        }
        // SAFETY: `map` is our mapping of `len` bytes. Without huge pages (THP disabled) the
        // buffer still evicts the caches, with 4 KiB pages.
        if unsafe { libc::madvise(map, len, libc::MADV_HUGEPAGE) } != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "no huge pages for the eviction buffer: cold lookups will include TLB misses"
            );
        }
        let mut ev = Self {
            map: map.cast(),
            len,
        };
        // Fault every page in (non-zero, so they are not the shared zero page).
        ev.buf_mut().fill(1);
        Ok(ev)
    }

    fn buf_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is ours, `len` bytes, alive until drop; `&mut self` makes this
        // the only view of it.
        unsafe { std::slice::from_raw_parts_mut(self.map, self.len) }
    }

    fn buf(&self) -> &[u8] {
        // SAFETY: as in `buf_mut`.
        unsafe { std::slice::from_raw_parts(self.map, self.len) }
    }

    /// Bytes read per eviction.
    pub fn bytes(&self) -> usize {
        self.len
    }

    /// Reads one byte of every cache line of the buffer.
    pub fn evict(&self) {
        let sum = self
            .buf()
            .iter()
            .step_by(64)
            .fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
        black_box(sum);
    }
}

impl Drop for Evictor {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once; no slice of it outlives `self`.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

/// Builds every structure of [`RACED`] over `d` and races them; one row per structure that
/// applies (an iext layout that cannot hold the map is left out, with a log line).
pub fn measure(d: &Dataset, file: &str, effort: &Effort, evictor: &Evictor) -> Vec<Row> {
    measure_with(d, file, effort, evictor, false)
}

/// The per-file choice over `d` (`predictor::index::choose`), built, with its bytes (header
/// and structure) counted by the allocator; its row's form names the structure chosen.
pub fn chosen(d: &Dataset) -> Option<Built> {
    chosen_with_costs(d).map(|(b, _)| b)
}

/// [`chosen`], and the costs the rule weighed to choose it.
pub fn chosen_with_costs(d: &Dataset) -> Option<(Built, Chosen)> {
    // The header boxed inside the count too: what a file costs is the header and what it
    // points to.
    let (bytes, built) = predictor::alloc::counted(|| {
        predictor::index::choose::choose_index(&d.extents).map(|(c, ix)| (c, Box::new(ix)))
    });
    match built {
        Ok((c, index)) => Some((
            Built {
                index,
                heap_bytes: bytes,
                segments: 0,
                max_window: 0,
                model_bytes: 0,
                compact: None,
                chosen: Some(c.chosen.structure.name()),
            },
            c,
        )),
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "no per-file choice");
            None
        }
    }
}

/// A structure's build function (rebuilt for the cold regime's twins).
pub type Build = fn(&Dataset) -> Option<Built>;

/// Every structure of [`RACED`] built over `d` (one that cannot hold the map left out), with
/// its name and build function; with `with_chosen` the per-file choice after them as
/// `chosen`, and the costs behind it.
pub fn built(
    d: &Dataset,
    with_chosen: bool,
) -> (Vec<(&'static str, Build, Built)>, Option<Chosen>) {
    let mut built: Vec<(&'static str, Build, Built)> = RACED
        .iter()
        .filter_map(|&name| {
            let s = STRUCTURES.iter().find(|s| s.name == name)?;
            Some((name, s.build, s.make(d)?))
        })
        .collect();
    let mut costs = None;
    if with_chosen {
        if let Some((b, c)) = chosen_with_costs(d) {
            built.push(("chosen", chosen as Build, b));
            costs = Some(c);
        }
    }
    (built, costs)
}

/// [`measure`], and with `with_chosen` the per-file choice raced beside the structures as the
/// row `chosen` (its form names the structure it chose).
pub fn measure_with(
    d: &Dataset,
    file: &str,
    effort: &Effort,
    evictor: &Evictor,
    with_chosen: bool,
) -> Vec<Row> {
    let (built, _) = built(d, with_chosen);
    let seed = 0x5eed ^ d.extents.len() as u64;
    // The orders' shuffles seeded apart from the draw, so they do not replay its stream.
    let uniform = in_orders(
        &uniform_queries(&d.extents, effort.warm.batch, seed),
        WARM_ORDERS,
        seed ^ ORDERS_SEED,
    );
    let sequential: Vec<Vec<u32>> = (0..SEQUENTIAL_STARTS)
        .map(|k| sequential_queries(&d.extents, effort.warm.batch, seed ^ k))
        .collect();
    let contenders: Vec<&dyn ExtentIndex> =
        built.iter().map(|(_, _, b)| b.index.as_ref()).collect();
    let median = |mut v: Vec<f64>| Summary::of(&mut v).map_or(f64::NAN, |s| s.median);
    let warm = race(&contenders, &uniform, &effort.warm);
    let seq = race(&contenders, &sequential, &effort.warm);
    // Twins: the same structures built again over the same map: same code paths, other memory.
    let twins: Vec<Built> = built.iter().filter_map(|(_, build, _)| build(d)).collect();
    let cold = if twins.len() == built.len() {
        let twins: Vec<&dyn ExtentIndex> = twins.iter().map(|b| b.index.as_ref()).collect();
        cold_race(
            &contenders,
            &twins,
            &d.extents,
            effort.cold_samples,
            seed,
            evictor,
        )
    } else {
        tracing::warn!(dataset = %d.name, "twin structures not built; no cold timing");
        vec![Vec::new(); built.len()]
    };
    let n = d.extents.len();
    built
        .iter()
        .zip(warm.into_iter().zip(seq).zip(cold))
        .map(|((name, _, b), ((w, s), c))| Row {
            file: file.to_string(),
            extents: n,
            structure: name,
            bytes: b.heap_bytes,
            bytes_per_extent: b.heap_bytes as f64 / n.max(1) as f64,
            ns_warm_shared: median(w),
            ns_cold_evicted: median(c),
            ns_sequential: median(s),
            form: b.form(),
        })
        .collect()
}

/// Per contender, the ns of `samples` single lookups of uniform random blocks, each after an
/// eviction and a lookup of the same block in the other build of the structure, so the code
/// the lookup runs, its TLB entries and the clock's data are warm and only the timed build's
/// own lines are cold; clock cost subtracted.
///
/// The contender and its twin (the same structure over the same map, built later, elsewhere
/// in memory) take turns being timed, query by query. Where the allocator put a structure is
/// part of its cold time: in four runs on the kernel's random-punched file (10^6 extents),
/// timing both builds of every structure, the iext16/compact cold ratio was 1.83-2.05 on the
/// first builds and 1.45-1.78 on the twins (the iext tree's twin 6-11% faster, the compact
/// index's 3% faster to 18% slower), so one build's median stood for one placement; both
/// builds' samples together stand for two (1.69-1.86 in the same runs).
pub fn cold_race(
    contenders: &[&dyn ExtentIndex],
    twins: &[&dyn ExtentIndex],
    exts: &[Extent],
    samples: usize,
    seed: u64,
    evictor: &Evictor,
) -> Vec<Vec<f64>> {
    let clock = clock_overhead_ns();
    let queries = uniform_queries(exts, samples, seed ^ 0xc01d);
    let mut out = vec![Vec::with_capacity(samples); contenders.len()];
    for (k, &q) in queries.iter().enumerate() {
        for ((&first, &twin), v) in contenders.iter().zip(twins).zip(&mut out) {
            let (warmer, timed) = if k % 2 == 0 {
                (twin, first)
            } else {
                (first, twin)
            };
            evictor.evict();
            black_box(warmer.find(black_box(q)));
            black_box(Instant::now());
            let t = Instant::now();
            black_box(timed.find(black_box(q)));
            v.push((t.elapsed().as_nanos() as f64 - clock).max(0.0));
        }
    }
    out
}
