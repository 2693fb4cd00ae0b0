//! Experiment 7: training throughput against image size: the images of this run (trained by
//! `predictor::train`, reading extents and fitting on all cores), single synthetic files of 10^3
//! to 10^7 extents, and many small synthetic files (fitting alone, one thread).

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use plotters::prelude::SeriesLabelPosition;
use predictor::model::{fit_extents, FitParams};

use super::registry::FIG7_TRAINING;
use super::{Ctx, Section};
use crate::support::datasets::{count_label, SYNTH_SEED};
use crate::support::plot::{color, Figure, Fmt, Line, LinePanel, Panel};
use crate::support::table::Table;

/// One training measurement.
struct Run {
    dataset: String,
    source: &'static str,
    what: &'static str,
    files: u64,
    extents: u64,
    secs: f64,
    jobs: usize,
}

/// Runs experiment 7.
pub fn run(ctx: &Ctx<'_>) -> Result<Section> {
    let mut runs = recorded_runs(ctx);
    let params = FitParams::default();
    runs.extend(fit_single_maps(ctx, &params));
    runs.push(fit_many_small_files(ctx, &params));
    let (t, body) = table_and_body(ctx, &runs);
    save_figure(ctx, &runs)?;
    let summary = summary(&runs);
    ctx.bar.inc(1);
    Ok(Section {
        title: "7. Training throughput".into(),
        body,
        figures: vec![FIG7_TRAINING.into()],
        tables: vec![t],
        skipped: Vec::new(),
        summary,
    })
}

/// The trainings this run already did and timed: each image's, and the live scan's.
fn recorded_runs(ctx: &Ctx<'_>) -> Vec<Run> {
    let mut runs = Vec::new();
    for img in ctx.images {
        runs.push(Run {
            dataset: img.name.clone(),
            source: "image",
            what: "predictor::train: read extents + fit both models + pack entry",
            files: img.training.files as u64,
            extents: img.training.extents,
            secs: img.training.elapsed.as_secs_f64(),
            jobs: img.training.jobs,
        });
    }
    if let Some(live) = ctx.live {
        runs.push(Run {
            dataset: live.name.clone(),
            source: "live",
            what: "predictor::train::train_maps: fit + pack entry (maps read by FIEMAP before, not timed)",
            files: live.training.files as u64,
            extents: live.training.extents,
            secs: live.training.elapsed.as_secs_f64(),
            jobs: live.training.jobs,
        });
    }
    runs
}

/// Fits one synthetic map of each of `ctx.scale.train_sizes` extents.
fn fit_single_maps(ctx: &Ctx<'_>, params: &FitParams) -> Vec<Run> {
    let mut runs = Vec::new();
    for &n in &ctx.scale.train_sizes {
        ctx.bar
            .set_message(format!("fig 7: fitting a synthetic map of {n} extents"));
        let exts = predictor::synth::allocator_like(n, SYNTH_SEED);
        let t = Instant::now();
        let fitted = fit_extents(&exts, params).is_ok();
        let secs = t.elapsed().as_secs_f64();
        if !fitted {
            tracing::warn!(n, "fitting the synthetic map failed");
            continue;
        }
        runs.push(Run {
            dataset: format!("synthetic-{}", count_label(n)),
            source: "synthetic",
            what: "fit_extents on one map, 1 thread",
            files: 1,
            extents: n as u64,
            secs,
            jobs: 1,
        });
    }
    runs
}

/// Many small files: what an image of ordinary files costs (1..16 extents each).
fn fit_many_small_files(ctx: &Ctx<'_>, params: &FitParams) -> Run {
    ctx.bar.set_message(format!(
        "fig 7: fitting {} small synthetic files",
        ctx.scale.train_many_files
    ));
    let maps: Vec<_> = (0..ctx.scale.train_many_files)
        .map(|i| predictor::synth::allocator_like(1 + i % 16, SYNTH_SEED + i as u64))
        .collect();
    let t = Instant::now();
    for m in &maps {
        black_box(fit_extents(m, params).is_ok());
    }
    let secs = t.elapsed().as_secs_f64();
    Run {
        dataset: format!("synthetic-{}-files", count_label(maps.len())),
        source: "synthetic",
        what: "fit_extents on many 1..16-extent maps, 1 thread",
        files: maps.len() as u64,
        extents: maps.iter().map(|m| m.len() as u64).sum(),
        secs,
        jobs: 1,
    }
}

/// The `fig7_training` table and the section's text with its markdown table.
fn table_and_body(ctx: &Ctx<'_>, runs: &[Run]) -> (Table, String) {
    let mut t = Table::new(FIG7_TRAINING);
    let mut body = String::from(
        "Training throughput. Images: the whole of `predictor::train` (walk the directory tree, \
         read every file's extent tree from the image, fit the learned model and the compact \
         index's lines, build the pack entry) on all cores. \
         Live scan: the same fitting of the maps FIEMAP read (the scan itself is not timed). \
         Synthetic: fitting alone on one thread. The bar: at least 10^6 extents per second.\n\n\
         | dataset | what | files | extents | seconds | extents/s | files/s | jobs |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let secs = r.secs.max(1e-9);
        let mut row = vec![
            ("dataset", r.dataset.clone().into()),
            ("source", r.source.into()),
            ("what", r.what.into()),
            ("files", r.files.into()),
            ("extents", r.extents.into()),
            ("seconds", r.secs.into()),
            ("extents_per_s", (r.extents as f64 / secs).into()),
            ("files_per_s", (r.files as f64 / secs).into()),
            ("jobs", r.jobs.into()),
        ];
        row.extend(ctx.machine_cols());
        t.push(row);
        body.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {:.3e} | {:.0} | {} |\n",
            r.dataset,
            r.what,
            r.files,
            r.extents,
            r.secs,
            r.extents as f64 / secs,
            r.files as f64 / secs,
            r.jobs
        ));
    }
    (t, body)
}

/// Figure 7: extents per second against extents trained, with the 10^6/s bar.
fn save_figure(ctx: &Ctx<'_>, runs: &[Run]) -> Result<()> {
    let point = |r: &&Run| {
        (
            r.extents.max(1) as f64,
            (r.extents as f64 / r.secs.max(1e-9)).max(1.0),
        )
    };
    let single: Vec<&Run> = runs
        .iter()
        .filter(|r| r.source == "synthetic" && r.files == 1)
        .collect();
    let many: Vec<&Run> = runs
        .iter()
        .filter(|r| r.source == "synthetic" && r.files > 1)
        .collect();
    let images: Vec<&Run> = runs
        .iter()
        .filter(|r| r.source == "image" || r.source == "live")
        .collect();
    let mut l1 = Line::new(
        "synthetic: one file, fit only (1 thread)",
        color(0),
        single.iter().map(point).collect(),
    );
    l1.markers = true;
    let mut l2 = Line::new(
        "synthetic: many small files, fit only (1 thread)",
        color(1),
        many.iter().map(point).collect(),
    );
    (l2.markers, l2.connect) = (true, false);
    let mut l3 = Line::new(
        "images / live scan: predictor::train (all cores)",
        color(2),
        images.iter().map(point).collect(),
    );
    (l3.markers, l3.connect) = (true, false);
    l3.point_labels = images
        .iter()
        .map(|r| format!("{} ({} files)", r.dataset, r.files))
        .collect();
    l2.labels_below = true;
    l2.point_labels = many.iter().map(|r| format!("{} files", r.files)).collect();
    let xs: Vec<f64> = runs.iter().map(|r| r.extents.max(1) as f64).collect();
    let (xmin, xmax) = xs
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let bar = Line::new(
        "bar: 10^6 extents/s",
        color(7),
        vec![(xmin.min(1e3), 1e6), (xmax.max(1e4), 1e6)],
    );
    let fig = Figure {
        title: "Fig. 7: training throughput vs size".into(),
        footer: ctx.footer(),
        panels: vec![Panel::Lines(LinePanel {
            title: "extents fitted per second".into(),
            x_desc: "extents trained (log)".into(),
            y_desc: "extents per second (log)".into(),
            x_log: true,
            y_log: true,
            x_fmt: Fmt::Count,
            y_fmt: Fmt::Count,
            lines: vec![l1, l2, l3, bar],
            legend: SeriesLabelPosition::LowerRight,
        })],
    };
    fig.save(ctx.fig_dir, FIG7_TRAINING)?;
    Ok(())
}

/// The summary line: the rate of every run of at least 1000 extents.
fn summary(runs: &[Run]) -> Vec<String> {
    let rate = |r: &Run| r.extents as f64 / r.secs.max(1e-9);
    vec![format!(
        "Training: {} (bar: at least 10^6 extents/s).",
        runs.iter()
            .filter(|r| r.extents >= 1000)
            .map(|r| format!("{} {:.2e} extents/s", r.dataset, rate(r)))
            .collect::<Vec<_>>()
            .join("; ")
    )]
}
