//! Experiment 4: bytes per extent of every structure (heap bytes counted by the allocator while
//! figure 1 built it: `structures::Structure::make`), and of whole tier stacks per image (as
//! the stack reports its parts).

use std::sync::Arc;

use anyhow::{Context, Result};
use plotters::prelude::SeriesLabelPosition;
use predictor::{Models, StackOptions, Tier, TierStack};

use super::registry::{FIG4_BYTES_PER_EXTENT, FIG4_STACK_MEMORY};
use super::{ratio, Ctx, Section};
use crate::support::datasets::Source;
use crate::support::plot::{color, Figure, Fmt, Line, LinePanel, Panel};
use crate::support::structures::Cell;
use crate::support::structures::{BASELINE, STRUCTURES};
use crate::support::table::Table;

/// Runs experiment 4 from the structures experiment 1 built.
pub fn run(ctx: &Ctx<'_>, cells: &[Cell]) -> Result<Section> {
    ctx.bar.set_message("fig 4: memory");
    let sized = sized_cells(cells);
    let t = bytes_per_extent_table(&sized);
    let stacks = stack_memory_table(ctx)?;
    save_figure(ctx, &sized)?;
    let body = body(&sized);
    let summary = summary(&sized);
    ctx.bar.inc(1);
    Ok(Section {
        title: "4. Memory: bytes per extent".into(),
        body,
        figures: vec![FIG4_BYTES_PER_EXTENT.into()],
        tables: vec![t, stacks],
        skipped: Vec::new(),
        summary,
    })
}

/// The cells that carry a structure's sizes, one per (dataset, structure).
fn sized_cells(cells: &[Cell]) -> Vec<&Cell> {
    // One row per (dataset, structure): the uniform stream's cell carries the sizes.
    // The on-disk walk holds nothing in memory; it has no row here. The BPF rows share one set
    // of maps: only the model's row carries them.
    cells
        .iter()
        .filter(|c| {
            c.stream == "uniform"
                && !["ondisk", crate::support::structures::BPF_NOOP].contains(&c.structure)
        })
        .collect()
}

/// The `fig4_bytes_per_extent` table.
fn bytes_per_extent_table(sized: &[&Cell]) -> Table {
    let mut t = Table::new(FIG4_BYTES_PER_EXTENT);
    for c in sized {
        let n = c.extents.max(1) as f64;
        t.push(vec![
            ("dataset", c.dataset.clone().into()),
            ("source", c.source.name().into()),
            ("extents", c.extents.into()),
            ("structure", c.structure.into()),
            ("heap_bytes", c.heap_bytes.into()),
            ("bytes_per_extent", (c.heap_bytes as f64 / n).into()),
            ("model_bytes", c.model_bytes.into()),
            ("model_bytes_per_extent", (c.model_bytes as f64 / n).into()),
            ("segments", c.segments.into()),
        ]);
    }
    t
}

/// Builds every tier stack of every image and records what it reports of its memory.
fn stack_memory_table(ctx: &Ctx<'_>) -> Result<Table> {
    let mut stacks = Table::new(FIG4_STACK_MEMORY);
    for img in ctx.images {
        for (name, tier) in [
            ("learned", Tier::Learned),
            ("btree", Tier::Btree),
            ("sorted", Tier::Sorted),
            ("rangemap", Tier::RangeMap),
            ("compact", Tier::Compact),
        ] {
            let models = if tier == Tier::Learned {
                Models::Pack(&img.pack)
            } else {
                Models::None
            };
            let (stack, report) =
                TierStack::build(Arc::clone(&img.fs), tier, models, StackOptions::default())
                    .with_context(|| {
                        format!("building the {name} stack of {}", img.path.display())
                    })?;
            let m = stack.memory();
            let total = m.model_bytes + m.record_bytes + m.index_bytes;
            stacks.push(vec![
                ("image", img.name.clone().into()),
                ("tier", name.into()),
                ("files", report.files.into()),
                ("extents", m.extents.into()),
                ("model_bytes", m.model_bytes.into()),
                ("record_bytes", m.record_bytes.into()),
                ("index_bytes", m.index_bytes.into()),
                ("total_bytes", total.into()),
                ("bytes_per_extent", m.per_extent(total).into()),
                ("build_ms", (report.elapsed.as_secs_f64() * 1e3).into()),
            ]);
        }
    }
    Ok(stacks)
}

/// Figure 4: bytes per extent of each structure on the synthetic maps.
fn save_figure(ctx: &Ctx<'_>, sized: &[&Cell]) -> Result<()> {
    let per_extent = |c: &Cell, model_only: bool| {
        let b = if model_only {
            c.model_bytes
        } else {
            c.heap_bytes
        };
        (
            c.extents.max(1) as f64,
            (b as f64 / c.extents.max(1) as f64).max(1e-3),
        )
    };
    let mut lines = Vec::new();
    for s in STRUCTURES
        .iter()
        .filter(|s| s.in_figure && s.name != "ondisk")
    {
        let mut of: Vec<&&Cell> = sized
            .iter()
            .filter(|c| c.structure == s.name && c.source == Source::Synthetic)
            .collect();
        of.sort_by_key(|c| c.extents);
        let mut l = Line::new(
            s.label,
            color(s.color),
            of.iter().map(|c| per_extent(c, false)).collect(),
        );
        l.markers = true;
        lines.push(l);
        if s.name == "learned" {
            let mut m = Line::new(
                "learned index: model alone",
                color(6),
                of.iter().map(|c| per_extent(c, true)).collect(),
            );
            m.markers = true;
            lines.push(m);
        }
    }
    let fig = Figure {
        title: "Fig. 4: heap bytes per extent by structure (synthetic allocator-like maps)".into(),
        footer: ctx.footer(),
        panels: vec![Panel::Lines(LinePanel {
            title: "the learned index stores keys (4 B) + records (16 B) + the model".into(),
            x_desc: "extents in the file (log)".into(),
            y_desc: "heap bytes per extent (log)".into(),
            x_log: true,
            y_log: true,
            x_fmt: Fmt::Count,
            y_fmt: Fmt::Plain,
            lines,
            legend: SeriesLabelPosition::UpperRight,
        })],
    };
    fig.save(ctx.fig_dir, FIG4_BYTES_PER_EXTENT)?;
    Ok(())
}

/// The section's text: what was counted, and a markdown table of bytes per extent by dataset.
fn body(sized: &[&Cell]) -> String {
    let mut body = String::from(
        "Heap bytes per extent, counted by a counting allocator while each structure was built \
         (what it keeps; temporaries of the build excluded). The on-disk walk holds nothing in \
         memory (it reads the image). \
         For the learned index, the model alone (segments and the radix table over them) is what \
         a pack stores; the key and record arrays are the extent list it searches.\n\n\
         | dataset | extents | learned B/ext | model alone B/ext | BTreeMap B/ext | rangemap B/ext | sorted B/ext | model / BTreeMap |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut names: Vec<&str> = Vec::new();
    for c in sized {
        if !names.contains(&c.dataset.as_str()) {
            names.push(&c.dataset);
        }
    }
    for name in names {
        let get = |s: &str| sized.iter().find(|c| c.dataset == name && c.structure == s);
        let bpe = |s: &str| {
            get(s).map_or("-".into(), |c| {
                format!("{:.2}", c.heap_bytes as f64 / c.extents.max(1) as f64)
            })
        };
        let (Some(l), Some(b)) = (get("learned"), get(BASELINE)) else {
            continue;
        };
        let model_bpe = l.model_bytes as f64 / l.extents.max(1) as f64;
        let btree_bpe = b.heap_bytes as f64 / b.extents.max(1) as f64;
        body.push_str(&format!(
            "| {name} | {} | {} | {model_bpe:.3} | {} | {} | {} | {:.3} |\n",
            l.extents,
            bpe("learned"),
            bpe(BASELINE),
            bpe("rangemap"),
            bpe("sorted"),
            ratio(model_bpe, btree_bpe)
        ));
    }
    body
}

/// The summary line at the largest synthetic map.
fn summary(sized: &[&Cell]) -> Vec<String> {
    let mut summary = Vec::new();
    let largest = sized
        .iter()
        .filter(|c| c.structure == "learned" && c.source == Source::Synthetic)
        .max_by_key(|c| c.extents);
    if let Some(l) = largest {
        let get = |s: &str| {
            sized
                .iter()
                .find(|c| c.dataset == l.dataset && c.structure == s)
        };
        let bpe = |c: &Cell| c.heap_bytes as f64 / c.extents.max(1) as f64;
        if let Some(b) = get(BASELINE) {
            let model = l.model_bytes as f64 / l.extents.max(1) as f64;
            summary.push(format!(
                "Bytes per extent at {} extents: learned index {:.1} (model alone {:.3}), BTreeMap {:.1}, rangemap {}, sorted array {}; model / BTreeMap = {:.4} (bar: at most 0.25).",
                l.extents,
                bpe(l),
                model,
                bpe(b),
                get("rangemap").map_or("-".into(), |c| format!("{:.1}", bpe(c))),
                get("sorted").map_or("-".into(), |c| format!("{:.1}", bpe(c))),
                ratio(model, bpe(b))
            ));
        }
    }
    summary
}
