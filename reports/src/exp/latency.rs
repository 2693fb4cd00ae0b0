//! Experiment 1: lookup latency against extent count, one line per structure, uniform and
//! sequential query streams, median with a p99 band. All structures of one dataset are built
//! together and raced batch by batch ([`crate::support::timing::race`]), so their numbers come from the
//! same minutes of the same run.

use std::time::Instant;

use anyhow::Result;
use plotters::prelude::SeriesLabelPosition;

use super::registry::FIG1_LOOKUP_LATENCY;
use super::{ratio, Ctx, Section};
use crate::support::datasets::{Dataset, Source};
use crate::support::plot::{color, Figure, Fmt, Line, LinePanel, Panel};
use crate::support::rows::met;
use crate::support::structures::{Built, Cell, Structure, BASELINE, STRUCTURES};
use crate::support::table::Table;
use crate::support::timing::{race, Summary};
use predictor::Structure as Id;

/// Query streams.
pub const STREAMS: [&str; 2] = ["uniform", "sequential"];

/// What figure 1 measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Every structure on every dataset and stream.
    pub cells: Vec<Cell>,
    /// What could not be measured, and why.
    pub skipped: Vec<(String, String)>,
    /// Why the BPF tier could not run at all here (no CAP_BPF, a kernel that refuses the
    /// program): the report says so in its first lines.
    pub bpf_unavailable: Option<String>,
    /// The verifier's statistics for each form of the program loaded (learned, compact), from
    /// the largest dataset loaded.
    pub verifier: Vec<(&'static str, bpf::VerifierStats)>,
}

/// Measures every structure on every dataset; also returns what could not be measured (the
/// BPF rows without CAP_BPF).
pub fn measure(ctx: &Ctx<'_>, datasets: &[Dataset]) -> Measured {
    let mut cells = Vec::new();
    let mut skipped = Vec::new();
    let mut verifier = Vec::new();
    let mut bpf_error: Option<String> = None;
    for d in datasets {
        ctx.bar.set_message(format!(
            "fig 1: lookups on {} ({} extents)",
            d.name,
            d.extents.len()
        ));
        let built: Vec<(&'static str, Built, f64)> = STRUCTURES
            .iter()
            .filter_map(|s| {
                let t = Instant::now();
                let b = s.make(d)?;
                Some((s.name, b, t.elapsed().as_secs_f64() * 1e3))
            })
            .collect();
        let contenders: Vec<&dyn predictor::ExtentIndex> =
            built.iter().map(|(_, b, _)| b.index.as_ref()).collect();
        // The same learned index in the kernel, unless an earlier dataset showed it cannot load.
        let in_kernel = if bpf_error.is_some() {
            None
        } else {
            match crate::support::in_kernel::into_kernel(d) {
                crate::support::in_kernel::Placement::InKernel(l) => {
                    verifier = l.verifier();
                    Some(l)
                }
                crate::support::in_kernel::Placement::Skipped(why) => {
                    skipped.push((format!("fig 1: BPF on {}", d.name), why));
                    None
                }
                crate::support::in_kernel::Placement::Unavailable(e) => {
                    tracing::warn!(error = %e, "BPF tier unavailable: no BPF rows in figure 1");
                    bpf_error = Some(e);
                    None
                }
            }
        };
        for (k, stream) in STREAMS.iter().enumerate() {
            let batches: Vec<Vec<u32>> = (0..ctx.scale.query_batches)
                .map(|i| {
                    let seed = 1000 * k as u64 + i as u64;
                    match *stream {
                        "uniform" => predictor::synth::uniform_queries(
                            &d.extents,
                            ctx.scale.lookup.batch,
                            seed,
                        ),
                        _ => predictor::synth::sequential_queries(
                            &d.extents,
                            ctx.scale.lookup.batch,
                            seed,
                        ),
                    }
                })
                .collect();
            let samples = race(&contenders, &batches, &ctx.scale.lookup);
            for ((name, b, build_ms), mut s) in built.iter().zip(samples) {
                let Some(ns) = Summary::of(&mut s) else {
                    continue;
                };
                cells.push(Cell {
                    dataset: d.name.clone(),
                    source: d.source,
                    extents: d.extents.len(),
                    structure: name,
                    stream,
                    ns,
                    heap_bytes: b.heap_bytes,
                    segments: b.segments,
                    max_window: b.max_window,
                    model_bytes: b.model_bytes,
                    build_ms: *build_ms,
                });
            }
            if let Some(k) = &in_kernel {
                cells.extend(crate::support::in_kernel::cells(k, d, stream, &batches));
            }
        }
        ctx.bar.inc(1);
    }
    if let Some(e) = &bpf_error {
        skipped.push(("fig 1: BPF tier".to_string(), e.clone()));
    }
    Measured {
        cells,
        skipped,
        bpf_unavailable: bpf_error,
        verifier,
    }
}

/// The baseline's median on the same dataset and stream.
pub fn baseline_median(cells: &[Cell], c: &Cell) -> Option<f64> {
    cells
        .iter()
        .find(|b| b.structure == BASELINE && b.dataset == c.dataset && b.stream == c.stream)
        .map(|b| b.ns.median)
}

/// What this run measured on maps of 1 to 10 extents (userspace structures): the range of
/// medians, and how far apart the three learned rows are there, although they hold the same
/// one-segment model: the run-to-run noise at that scale. Empty without such maps.
fn small_maps(cells: &[Cell]) -> String {
    let small: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.extents <= 10 && !c.structure.starts_with("bpf") && c.structure != "ondisk")
        .collect();
    let (Some(lo), Some(hi)) = (
        small.iter().map(|c| c.ns.median).reduce(f64::min),
        small.iter().map(|c| c.ns.median).reduce(f64::max),
    ) else {
        return String::new();
    };
    // Per (dataset, stream): the spread of the learned rows.
    let mut spread = 0f64;
    let name = Id::Learned.name();
    for c in small.iter().filter(|c| c.structure == name) {
        let learned: Vec<f64> = small
            .iter()
            .filter(|o| {
                o.dataset == c.dataset && o.stream == c.stream && o.structure.starts_with(name)
            })
            .map(|o| o.ns.median)
            .collect();
        let (a, b) = learned
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        if learned.len() > 1 {
            spread = spread.max(b - a);
        }
    }
    format!(
        " At 1 to 10 extents the structures took {lo:.1} to {hi:.1} ns in this run; the three \
         learned rows, which hold the same one-segment model there, differ by up to {spread:.1} ns: \
         differences of that size are run-to-run noise."
    )
}

/// Writes figure 1 and its table.
pub fn section(ctx: &Ctx<'_>, m: &Measured) -> Result<Section> {
    let cells = &m.cells[..];
    let t = latency_table(ctx, cells);
    save_figure(ctx, cells)?;
    let mut body = intro(ctx, cells, &m.verifier);
    body.push_str(&medians_table(cells));
    let summary = summarize(cells);
    Ok(Section {
        title: "1. Lookup latency vs extent count".into(),
        body,
        figures: vec![FIG1_LOOKUP_LATENCY.into()],
        tables: vec![t],
        skipped: vec![
            (
                "fig 1: on-disk walk of synthetic maps".into(),
                "a synthetic map has no on-disk extent tree; the on-disk line runs through files of real images".into(),
            ),
        ],
        summary,
    })
}

/// The `fig1_lookup_latency` table: every cell, with its speed-up over the baseline.
fn latency_table(ctx: &Ctx<'_>, cells: &[Cell]) -> Table {
    let mut t = Table::new(FIG1_LOOKUP_LATENCY);
    for c in cells {
        let base = baseline_median(cells, c).unwrap_or(0.0);
        let mut row = vec![
            ("dataset", c.dataset.clone().into()),
            ("source", c.source.name().into()),
            ("extents", c.extents.into()),
            ("structure", c.structure.into()),
            ("stream", c.stream.into()),
            ("batch_queries", ctx.scale.lookup.batch.into()),
            ("batches", c.ns.samples.into()),
            ("median_ns", c.ns.median.into()),
            ("p99_ns", c.ns.p99.into()),
            ("min_ns", c.ns.min.into()),
            ("mean_ns", c.ns.mean.into()),
            ("speedup_vs_btree", ratio(base, c.ns.median).into()),
            ("heap_bytes", c.heap_bytes.into()),
            ("segments", c.segments.into()),
            ("max_window", c.max_window.into()),
            ("build_ms", c.build_ms.into()),
        ];
        row.extend(ctx.machine_cols());
        t.push(row);
    }
    t
}

/// Figure 1: one panel per stream.
fn save_figure(ctx: &Ctx<'_>, cells: &[Cell]) -> Result<()> {
    let panels = STREAMS
        .iter()
        .map(|stream| stream_panel(cells, stream))
        .collect();
    let fig = Figure {
        title: "Fig. 1: extent lookup latency vs extent count (lines: synthetic allocator-like maps; dots: files of real images)".into(),
        footer: ctx.footer(),
        panels,
    };
    fig.save(ctx.fig_dir, FIG1_LOOKUP_LATENCY)?;
    Ok(())
}

/// One panel per stream: a line (and dots) per structure in the figure.
fn stream_panel(cells: &[Cell], stream: &str) -> Panel {
    let lines = STRUCTURES
        .iter()
        .filter(|s| s.in_figure)
        .flat_map(|s| structure_lines(cells, s, stream))
        .filter(|l| !l.points.is_empty())
        .collect();
    Panel::Lines(LinePanel {
        title: format!("{stream} queries"),
        x_desc: "extents in the file (log)".into(),
        y_desc: "ns per lookup (log; median, band to p99)".into(),
        x_log: true,
        y_log: true,
        x_fmt: Fmt::Count,
        y_fmt: Fmt::Nanos,
        lines,
        legend: SeriesLabelPosition::UpperLeft,
    })
}

/// A structure's line through its cells under `stream`, and its dots.
fn structure_lines(cells: &[Cell], s: &Structure, stream: &str) -> [Line; 2] {
    let of = |src: Source| {
        let mut v: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.structure == s.name && c.stream == stream && c.source == src)
            .collect();
        v.sort_by_key(|c| c.extents);
        v
    };
    let synth = of(Source::Synthetic);
    let mut real = of(Source::Image);
    real.extend(of(Source::Live));
    real.sort_by_key(|c| c.extents);
    // Synthetic maps make the line (with its p99 band); files of real images are
    // dots of the same colour. A structure with only real files (the on-disk
    // walk) gets its line through them.
    let (line_cells, dot_cells) = if synth.is_empty() {
        (real, Vec::new())
    } else {
        (synth, real)
    };
    let point = |c: &&Cell| (c.extents.max(1) as f64, c.ns.median);
    let mut line = Line::new(
        s.label,
        color(s.color),
        line_cells.iter().map(point).collect(),
    );
    line.band = line_cells
        .iter()
        .map(|c| (c.extents.max(1) as f64, c.ns.median, c.ns.p99))
        .collect();
    line.markers = true;
    let mut dots = Line::new("", color(s.color), dot_cells.iter().map(point).collect());
    dots.connect = false;
    dots.markers = true;
    [line, dots]
}

/// The text before the table: how lookups were timed, and what the BPF rows are.
fn intro(ctx: &Ctx<'_>, cells: &[Cell], verifier: &[(&'static str, bpf::VerifierStats)]) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "Per-lookup time of every structure, measured by timing batches of {} precomputed queries \
         (`Instant` around each batch, answers folded into `black_box`), at least {} and at most {} \
         batches per structure, all structures of a dataset raced batch by batch in one run. \
         The line is the median of the per-batch ns/lookup, the band reaches the p99. \
         Uniform: random blocks over the file's span plus 1/8 (holes included); sequential: \
         consecutive blocks from a random start. CPUs not pinned. Regime `warm-shared` \
         (uniform) and `sequential`: {} Section \"Compact learned mapping vs the kernel's iext \
         tree\" times `warm-shared` and `cold-evicted` apart for every structure.{}\n\n",
        ctx.scale.lookup.batch,
        ctx.scale.lookup.min_rounds,
        ctx.scale.lookup.max_rounds,
        predictor::regime::Regime::WarmShared.meaning(),
        small_maps(cells)
    ));
    body.push_str(
        "BPF rows are the kernel's own time per `BPF_PROG_TEST_RUN` run (one query per run, the \
         runs going through a batch, one pass per sample, median over the batches): the program \
         evaluating the learned index (records storage, 16 bytes an extent), the same program \
         evaluating the compact learned index (packed blocks) from the same maps, and the harness alone (a run \
         that reads its query and answers nothing), which every BPF figure includes.",
    );
    // What verifying each form cost the kernel (a program the verifier refuses measures nothing).
    for (form, v) in verifier {
        body.push_str(&format!(" The {form} program: the verifier {v}."));
    }
    body.push_str("\n\n");
    body
}

/// The markdown table of medians per dataset and stream.
fn medians_table(cells: &[Cell]) -> String {
    let mut md = String::from("| dataset | extents | stream | learned ns | BTreeMap ns | speed-up | sorted ns | rangemap ns | on-disk ns | BPF ns | BPF compact ns | BPF harness ns |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut names: Vec<(&str, usize)> = Vec::new();
    for c in cells {
        if !names.iter().any(|(n, _)| *n == c.dataset) {
            names.push((&c.dataset, c.extents));
        }
    }
    for (name, extents) in names {
        for stream in STREAMS {
            let get = |s: &str| {
                cells
                    .iter()
                    .find(|c| c.dataset == name && c.stream == stream && c.structure == s)
            };
            let ns = |s: &str| get(s).map_or("-".to_string(), |c| format!("{:.1}", c.ns.median));
            let speedup = match (get(Id::Learned.name()), get(BASELINE)) {
                (Some(l), Some(b)) => format!("{:.2}x", ratio(b.ns.median, l.ns.median)),
                _ => "-".into(),
            };
            md.push_str(&format!(
                "| {name} | {extents} | {stream} | {} | {} | {speedup} | {} | {} | {} | {} | {} | {} |\n",
                ns(Id::Learned.name()),
                ns(BASELINE),
                ns(Id::Sorted.name()),
                ns(Id::RangeMap.name()),
                ns(Id::Ondisk.name()),
                ns(crate::support::structures::BPF_MODEL),
                ns(crate::support::structures::BPF_COMPACT),
                ns(crate::support::structures::BPF_NOOP)
            ));
        }
    }
    md
}

/// Report bullets: learned vs `BTreeMap` per dataset (uniform), and the two latency bars.
fn summarize(cells: &[Cell]) -> Vec<String> {
    let pairs: Vec<(&Cell, &Cell)> = cells
        .iter()
        .filter(|c| c.structure == "learned" && c.stream == "uniform")
        .filter_map(|l| {
            cells
                .iter()
                .find(|b| b.structure == BASELINE && b.stream == l.stream && b.dataset == l.dataset)
                .map(|b| (l, b))
        })
        .collect();
    let list: Vec<String> = pairs
        .iter()
        .map(|(l, b)| {
            format!(
                "{} ({} ext.): {:.1} vs {:.1} ns = **{:.2}x**",
                l.dataset,
                l.extents,
                l.ns.median,
                b.ns.median,
                ratio(b.ns.median, l.ns.median)
            )
        })
        .collect();
    let mut out = vec![format!(
        "Lookup, uniform queries, learned index vs BTreeMap (median): {}.",
        list.join("; ")
    )];
    let big: Vec<&(&Cell, &Cell)> = pairs.iter().filter(|(l, _)| l.extents >= 100_000).collect();
    if !big.is_empty() {
        let met = big
            .iter()
            .filter(|(l, b)| b.ns.median >= 2.0 * l.ns.median)
            .count();
        out.push(format!(
            "Bar \"at least 2x faster than BTreeMap at 10^5 extents and beyond\": met on {met} of {} datasets (uniform stream).",
            big.len()
        ));
    }
    let in_kernel: Vec<String> = pairs
        .iter()
        .filter_map(|(l, b)| {
            let get = |s: &str| {
                cells
                    .iter()
                    .find(|c| c.structure == s && c.stream == l.stream && c.dataset == l.dataset)
            };
            let (k, h) = (get(crate::support::structures::BPF_MODEL)?, get(crate::support::structures::BPF_NOOP)?);
            let compact = get(crate::support::structures::BPF_COMPACT)
                .map(|c| format!(", compact {:.0} ns", c.ns.median))
                .unwrap_or_default();
            Some(format!(
                "{} ({} ext.): BPF {:.0} ns{compact} (harness {:.0}) vs learned {:.1} / BTreeMap {:.1} ns",
                l.dataset, l.extents, k.ns.median, h.ns.median, l.ns.median, b.ns.median
            ))
        })
        .collect();
    if !in_kernel.is_empty() {
        out.push(format!(
            "Lookup in the kernel (BPF program, test-run harness included), uniform: {}.",
            in_kernel.join("; ")
        ));
    }
    if let Some((l, b)) = pairs.iter().find(|(l, _)| l.extents == 1) {
        out.push(format!(
            "Bar \"no slower than BTreeMap on 1-extent files\": {:.1} vs {:.1} ns ({}).",
            l.ns.median,
            b.ns.median,
            met(l.ns.median <= b.ns.median * 1.05)
        ));
    }
    out
}
