//! Experiment 2: the distribution of lookup latency per structure on the most fragmented
//! file. Batches of thousands would average the tail away, so lookups are timed in small
//! groups (16 by default) with the clock's cost subtracted, all structures interleaved group by
//! group.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use plotters::prelude::SeriesLabelPosition;

use super::registry::FIG2_LATENCY_CDF;
use super::{Ctx, Section};
use crate::support::datasets::Dataset;
use crate::support::plot::{color, Figure, Fmt, Line, LinePanel, Panel};
use crate::support::structures::STRUCTURES;
use crate::support::table::Table;
use crate::support::timing::{clock_overhead_ns, quantile, run_batch, Summary};

/// Quantiles stored in the table: 0.5% steps, plus the far tail.
fn levels() -> Vec<f64> {
    (1..200)
        .map(|i| f64::from(i) / 200.0)
        .chain([0.999, 0.9999])
        .collect()
}

/// Measures and draws the CDF on `d`.
pub fn run(ctx: &Ctx<'_>, d: &Dataset) -> Result<Section> {
    ctx.bar
        .set_message(format!("fig 2: latency CDF on {}", d.name));
    let built: Vec<_> = STRUCTURES
        .iter()
        .filter(|s| s.in_figure)
        .filter_map(|s| s.make(d).map(|b| (s, b)))
        .collect();
    let (groups, group) = (ctx.scale.cdf_groups, ctx.scale.cdf_group.max(1));
    let queries = predictor::synth::uniform_queries(&d.extents, groups * group, 77);
    let overhead = clock_overhead_ns();
    let mut samples = vec![Vec::with_capacity(groups); built.len()];
    // Warm up every structure on the whole stream once.
    for (_, b) in &built {
        black_box(run_batch(b.index.as_ref(), &queries));
    }
    for g in queries.chunks(group) {
        for ((_, b), out) in built.iter().zip(&mut samples) {
            let t = Instant::now();
            black_box(run_batch(b.index.as_ref(), black_box(g)));
            let ns = t.elapsed().as_nanos() as f64;
            // A group can beat the median clock cost; a latency is never <= 0, so floor it.
            out.push(((ns - overhead) / g.len() as f64).max(0.1));
        }
    }

    let mut t = Table::new(FIG2_LATENCY_CDF);
    let mut lines = Vec::new();
    let mut body = format!(
        "Uniform random lookups on `{}` ({} extents), timed in groups of {group} lookups \
         ({groups} groups per structure, interleaved), clock cost ({overhead:.0} ns per timing) \
         subtracted. Each point is a group's mean ns per lookup.\n\n\
         | structure | p50 ns | p90 ns | p99 ns | p99.9 ns |\n|---|---:|---:|---:|---:|\n",
        d.name,
        d.extents.len()
    );
    for ((s, _), mut v) in built.iter().zip(samples) {
        let Some(sum) = Summary::of(&mut v) else {
            continue;
        };
        let mut pts = Vec::new();
        for q in levels() {
            let ns = quantile(&v, q);
            pts.push((ns, q));
            let mut row = vec![
                ("dataset", d.name.clone().into()),
                ("extents", d.extents.len().into()),
                ("structure", s.name.into()),
                ("quantile", q.into()),
                ("ns", ns.into()),
                ("group_lookups", group.into()),
                ("groups", sum.samples.into()),
            ];
            row.extend(ctx.machine_cols());
            t.push(row);
        }
        body.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            s.label,
            sum.median,
            quantile(&v, 0.9),
            sum.p99,
            quantile(&v, 0.999)
        ));
        lines.push(Line::new(s.label, color(s.color), pts));
    }
    let fig = Figure {
        title: format!(
            "Fig. 2: lookup latency CDF on {} ({} extents, uniform queries)",
            d.name,
            d.extents.len()
        ),
        footer: ctx.footer(),
        panels: vec![Panel::Lines(LinePanel {
            title: format!("groups of {group} lookups, clock cost subtracted"),
            x_desc: "ns per lookup (log)".into(),
            y_desc: "fraction of groups at or below".into(),
            x_log: true,
            y_log: false,
            x_fmt: Fmt::Nanos,
            y_fmt: Fmt::Percent,
            lines,
            legend: SeriesLabelPosition::LowerRight,
        })],
    };
    fig.save(ctx.fig_dir, FIG2_LATENCY_CDF)?;
    let summary = Vec::new();
    ctx.bar.inc(1);
    Ok(Section {
        title: "2. Latency distribution on the most fragmented file".into(),
        body,
        figures: vec![FIG2_LATENCY_CDF.into()],
        tables: vec![t],
        skipped: Vec::new(),
        summary,
    })
}
