//! The "adversarial maps" section: the worst map the adversarial search finds per objective
//! (`reports adversarial`, seed [`SEED`]), every structure and the per-file choice raced on
//! each `warm-shared` (one run), and whether the choice stays within 10% of iext16's time.

use std::fmt::Write as _;

use anyhow::Result;
use predictor::adversary::worst_maps;

use super::registry::ADVERSARIAL_MAPS;
use super::{Ctx, Section};
use crate::support::adversarial::{evaluate, MapResult, BAR_PERCENT};
use crate::support::race::RACED;
use crate::support::rows::met;
use crate::support::table::Table;

/// Seed of the report's search (the maps are the same in every report).
pub const SEED: u64 = 1;

/// Runs the section.
pub fn run(ctx: &Ctx<'_>) -> Result<Section> {
    ctx.bar
        .set_message("adversarial maps: the worst maps a user can make, and the per-file choice");
    let budget = ctx.scale.adversarial;
    let effort = ctx.scale.structures;
    let maps = worst_maps(SEED, budget);
    let mut measured: Vec<MapResult> = Vec::with_capacity(maps.len());
    let mut checked = 0;
    for found in &maps {
        let (n, m) = evaluate(found, &effort)?;
        checked += n;
        measured.push(m);
    }
    ctx.bar.inc(1);

    let mut table = Table::new(ADVERSARIAL_MAPS);
    for m in &measured {
        for r in &m.rows {
            let mut row = vec![
                ("dataset", m.map.clone().into()),
                ("score", m.score.into()),
                ("extents", m.extents.into()),
                ("structure", r.structure.clone().into()),
                ("bytes", r.bytes.into()),
                ("bytes_per_extent", r.bytes_per_extent.into()),
                ("ns_warm_shared", r.ns_warm_shared.into()),
                ("chosen", m.chosen.into()),
            ];
            row.extend(ctx.machine_cols());
            table.push(row);
        }
    }

    let names: Vec<&str> = RACED.iter().copied().chain(["chosen"]).collect();
    let mut body = format!(
        "Maps a user can give one file on ext4 (`fallocate`, punches and writes, the allocator \
         steered by the order of writes; within ext4's limits), searched for the worst case of \
         each learned structure (`predictor::adversary`, seed {SEED}: {random} random \
         generators, then {climb} hill-climbing mutations of the best, maps of {n} extents; \
         `docs/design.md` section 4.6). Per map, every structure and the per-file choice \
         (`chosen`: the fewest bytes among the structures within 10% of the cheapest counted \
         lookup, never more than iext16's bytes) built over it (bytes counted by the \
         allocator) and raced `warm-shared` in one run; {checked} answers checked against the \
         sorted array first. Cells: bytes per extent / ns per lookup. Table \
         `adversarial_maps`; `reports adversarial --kernel DIR` also makes the maps through \
         the kernel's allocator on a loop mount.\n\n| map | extents |",
        random = budget.random,
        climb = budget.climb,
        n = budget.extents,
    );
    for n in &names {
        let _ = write!(body, " {n} |");
    }
    body.push_str(" chosen vs iext16 |\n|---|---:|");
    for _ in &names {
        body.push_str("---:|");
    }
    body.push_str("---|\n");
    for m in &measured {
        let _ = write!(body, "| {} | {} |", m.map, m.extents);
        for n in &names {
            match m.rows.iter().find(|r| r.structure == *n) {
                Some(r) => {
                    let _ = write!(
                        body,
                        " {:.2} / {:.1} |",
                        r.bytes_per_extent, r.ns_warm_shared
                    );
                }
                None => body.push_str(" - |"),
            }
        }
        let _ = writeln!(
            body,
            " {} {:.2}x ({}) |",
            m.chosen,
            m.chosen_over_iext16,
            met(m.met)
        );
    }
    let worst = |name: &str| {
        measured
            .iter()
            .filter_map(|m| m.rows.iter().find(|r| r.structure == name))
            .map(|r| r.bytes_per_extent)
            .fold(0.0f64, f64::max)
    };
    let met = measured.iter().filter(|m| m.met).count();
    let (lo, hi) = measured
        .iter()
        .map(|m| m.chosen_over_iext16)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    let line = format!(
        "Adversarial maps ({} worst maps of {} extents): at most {:.2} B/extent compact, \
         {:.2} learned, {:.2} iext16; the per-file choice held at most iext16's bytes on every \
         map and was within {BAR_PERCENT}% of its `warm-shared` time on {met} of {} \
         ({lo:.2}x-{hi:.2}x).",
        measured.len(),
        budget.extents,
        worst(predictor::Structure::Compact.name()),
        worst(predictor::Structure::Learned.name()),
        worst(predictor::Structure::Iext16.name()),
        measured.len(),
    );
    let _ = writeln!(body, "\n{line}");
    Ok(Section {
        title: "Adversarial maps and the per-file choice (warm-shared)".into(),
        body,
        tables: vec![table],
        summary: vec![line],
        ..Section::default()
    })
}
