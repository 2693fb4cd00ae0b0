//! One file of 10^7 or 10^8 extents (`reports huge`), the most fragmented a regular file gets,
//! through the compact learned index, the kernel-style iext tree with XFS's 16-byte records
//! (`iext16`) and the BPF tier.
//!
//! Per size: a synthetic map whose steps (gap, length, physical jump) are drawn from a map the
//! kernel's allocator made ([`source`]); both structures built in the same run, their build
//! rate and the heap bytes the allocator counts; uniform random lookups raced `warm-shared` and `cold-evicted`
//! with the regimes of `reports structures` (the same code: [`crate::support::race`]); a sample of
//! both structures' answers checked against binary search over the map; the compact form
//! loaded into the BPF program's u32-indexed arrays, or declined with a reason ([`in_bpf`]).
//! The bars the compact index is held to are printed as met or not met.

mod in_bpf;
mod source;

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use ext4::{BlockMap, Extent};
use predictor::synth::{in_orders, uniform_queries};
use predictor::{ExtentIndex, LearnedIndex, Lookup, XfsIextIndex};

use crate::support::race::{cold_race, Effort, Evictor, ORDERS_SEED, WARM_ORDERS};
use crate::support::rows::met;
use crate::support::timing::{race, Summary};

pub use source::{Pattern, Source};

/// The bar on bytes: the compact index holds at most this share of iext16's bytes.
const BYTES_BAR: f64 = 0.25;
/// The bar on build: at least this many extents per second.
const BUILD_BAR: f64 = 5e6;

/// One structure at one size.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Built {
    /// Heap bytes it holds, counted by the allocator while it was built.
    pub bytes: usize,
    /// `bytes / extents`.
    pub bytes_per_extent: f64,
    /// Seconds to build it from the map.
    pub build_s: f64,
    /// Extents per second of build.
    pub build_rate: f64,
    /// Median ns per uniform lookup, `warm-shared`.
    pub warm_shared_ns: f64,
    /// Median ns of one uniform lookup, `cold-evicted`.
    pub cold_evicted_ns: f64,
    /// Answers checked against binary search over the map.
    pub checked: u64,
    /// Of those, wrong (or not given).
    pub wrong: u64,
}

/// Met or not met, per bar; `None` where it was not measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Bars {
    /// Compact at most a quarter of iext16's counted bytes.
    pub bytes_quarter: bool,
    /// `warm-shared` lookups at least as fast as iext16's.
    pub warm_shared: bool,
    /// `cold-evicted` lookups at least as fast as iext16's.
    pub cold_evicted: bool,
    /// Compact build at least 5*10^6 extents/s.
    pub build: bool,
    /// The BPF tier serves the file or declines it with a reason, 0 wrong answers.
    pub bpf: Option<bool>,
}

/// One size: the command's output record (its JSON keys are these names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Extents asked for.
    pub extents_asked: usize,
    /// Extents in the map made (fewer only if the block space filled up).
    pub extents: usize,
    /// Where the steps came from.
    pub source: String,
    /// Logical blocks the map spans.
    pub span_blocks: u64,
    /// Seconds to draw the map.
    pub generate_s: f64,
    /// The compact index's form.
    pub compact_form: String,
    /// The compact learned index.
    pub compact: Built,
    /// The iext tree with 16-byte records.
    pub iext16: Built,
    /// `compact.bytes / iext16.bytes`.
    pub bytes_ratio: f64,
    /// The BPF tier.
    pub bpf: in_bpf::Outcome,
    /// The bars.
    pub bars: Bars,
}

/// Steps of [`measure`] on the progress bar.
pub const STEPS: usize = 6;

/// What one size measures besides the map: its seeds and how many answers are checked.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Seed of the draw and the queries.
    pub seed: u64,
    /// Uniform random blocks whose answers are checked, for each structure.
    pub check: usize,
    /// Of those, how many are asked through the BPF program.
    pub bpf_check: usize,
}

/// Measures one size.
pub fn measure(
    n: usize,
    source: &source::Source,
    args: &Plan,
    effort: &Effort,
    evictor: &Evictor,
    bar: &indicatif::ProgressBar,
) -> Result<Row> {
    let step = |msg: String| {
        bar.set_message(msg);
        bar.inc(1);
    };
    bar.set_message(format!("{n}: drawing the map"));
    let t = Instant::now();
    let exts = source.generate(n, args.seed ^ n as u64)?;
    let generate_s = t.elapsed().as_secs_f64();
    let len = exts.len();
    tracing::info!(extents = len, secs = generate_s, "map drawn");
    step(format!("{len}: building the compact index"));
    let (mut compact, c) = build(&exts, |e| LearnedIndex::new(e).map_err(anyhow::Error::from))?;
    step(format!("{len}: building iext16"));
    let (mut iext16, x) = build(&exts, |e| XfsIextIndex::new(e).map_err(anyhow::Error::from))?;
    let compact_form = crate::support::structures::form_of(c.form(), c.shape());
    step(format!("{len}: warm lookups"));
    let seed = 0x5eed ^ len as u64;
    let batches = in_orders(
        &uniform_queries(&exts, effort.warm.batch, seed),
        WARM_ORDERS,
        seed ^ ORDERS_SEED,
    );
    let contenders: [&dyn ExtentIndex; 2] = [&c, &x];
    let warm = race(&contenders, &batches, &effort.warm);
    step(format!("{len}: cold lookups (second builds first)"));
    let cold = {
        // The cold regime's twins: the same structures built again, elsewhere in memory.
        let c2 = LearnedIndex::new(&exts)?;
        let x2 = XfsIextIndex::new(&exts)?;
        let twins: [&dyn ExtentIndex; 2] = [&c2, &x2];
        cold_race(
            &contenders,
            &twins,
            &exts,
            effort.cold_samples,
            seed,
            evictor,
        )
    };
    for ((b, w), cd) in [&mut compact, &mut iext16].into_iter().zip(warm).zip(cold) {
        b.warm_shared_ns = median(w);
        b.cold_evicted_ns = median(cd);
    }
    step(format!("{len}: checking answers"));
    let checks = uniform_queries(&exts, args.check, seed ^ 0xc4ec);
    (compact.checked, compact.wrong) = check(&c, &exts, &checks);
    (iext16.checked, iext16.wrong) = check(&x, &exts, &checks);
    // The iext tree is done with: its gigabytes are not kept through the BPF load.
    drop(x);
    step(format!("{len}: the BPF tier"));
    let bpf = in_bpf::run(&c, &exts, &checks[..args.bpf_check.min(checks.len())]);
    let bars = Bars {
        bytes_quarter: compact.bytes as f64 <= BYTES_BAR * iext16.bytes as f64,
        warm_shared: compact.warm_shared_ns <= iext16.warm_shared_ns,
        cold_evicted: compact.cold_evicted_ns <= iext16.cold_evicted_ns,
        build: compact.build_rate >= BUILD_BAR,
        bpf: (bpf.status != "unavailable")
            .then(|| bpf.wrong() == 0 && (bpf.status == "served" || !bpf.reason.is_empty())),
    };
    Ok(Row {
        extents_asked: n,
        extents: len,
        source: source.name.clone(),
        span_blocks: predictor::synth::span(&exts),
        generate_s,
        compact_form,
        bytes_ratio: compact.bytes as f64 / iext16.bytes.max(1) as f64,
        compact,
        iext16,
        bpf,
        bars,
    })
}

/// Builds a structure over `exts`, timed, with its heap bytes counted by the allocator.
fn build<T>(exts: &[Extent], make: impl FnOnce(&[Extent]) -> Result<T>) -> Result<(Built, T)> {
    let t = Instant::now();
    let (bytes, ix) = predictor::alloc::counted(|| make(exts));
    let secs = t.elapsed().as_secs_f64();
    let ix = ix?;
    let n = exts.len().max(1) as f64;
    tracing::info!(bytes, secs, "built");
    Ok((
        Built {
            bytes,
            bytes_per_extent: bytes as f64 / n,
            build_s: secs,
            build_rate: n / secs.max(1e-9),
            ..Built::default()
        },
        ix,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    Summary::of(&mut v).map_or(f64::NAN, |s| s.median)
}

/// What binary search over the map says of `lblk`: the reference answer.
pub fn reference(exts: &[Extent], lblk: u32) -> BlockMap {
    let n = exts.partition_point(|e| e.lblk <= lblk);
    match n.checked_sub(1).and_then(|j| exts.get(j)) {
        Some(e) if e.contains(lblk) => BlockMap::Mapped(*e),
        _ => BlockMap::Hole {
            next: exts.get(n).map(|e| e.lblk),
        },
    }
}

/// (checked, wrong) of `ix`'s answers to `queries`: a lookup that gives no answer is wrong.
fn check(ix: &dyn ExtentIndex, exts: &[Extent], queries: &[u32]) -> (u64, u64) {
    let wrong = queries
        .iter()
        .filter(|&&q| black_box(ix.find(q)) != Lookup::Found(reference(exts, q)))
        .count();
    (queries.len() as u64, wrong as u64)
}

/// The Markdown of one size: the structures, the BPF tier's arrays and loads, the bars.
pub fn markdown(r: &Row) -> String {
    let mut s = format!(
        "\n## {} extents\n\nsource: {}; span {} blocks; drawn in {:.2} s; compact form: {}\n\n",
        r.extents, r.source, r.span_blocks, r.generate_s, r.compact_form
    );
    s += "| structure | bytes | B/extent | build s | extents/s | warm-shared ns | cold-evicted ns | checked | wrong |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, b) in [
        (predictor::Structure::Compact.name(), &r.compact),
        (predictor::Structure::Iext16.name(), &r.iext16),
    ] {
        s += &format!(
            "| {name} | {} | {:.2} | {:.2} | {:.3e} | {:.1} | {:.1} | {} | {} |\n",
            b.bytes,
            b.bytes_per_extent,
            b.build_s,
            b.build_rate,
            b.warm_shared_ns,
            b.cold_evicted_ns,
            b.checked,
            b.wrong
        );
    }
    s += &format!("\ncompact / iext16 bytes: {:.3}\n", r.bytes_ratio);
    s += &in_bpf::markdown(&r.bpf);
    let b = &r.bars;
    s += &format!(
        "\nbars:\n- compact at most 1/4 of iext16's bytes ({:.3}): {}\n\
         - warm-shared at least as fast as iext16 ({:.1} vs {:.1} ns): {}\n\
         - cold-evicted at least as fast as iext16 ({:.1} vs {:.1} ns): {}\n\
         - build at least 5*10^6 extents/s ({:.3e}): {}\n\
         - BPF tier serves or declines with a reason, 0 wrong: {}\n",
        r.bytes_ratio,
        met(b.bytes_quarter),
        r.compact.warm_shared_ns,
        r.iext16.warm_shared_ns,
        met(b.warm_shared),
        r.compact.cold_evicted_ns,
        r.iext16.cold_evicted_ns,
        met(b.cold_evicted),
        r.compact.build_rate,
        met(b.build),
        b.bpf.map_or("not run (no BPF here)", met)
    );
    s
}
