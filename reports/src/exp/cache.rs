//! Experiment 10: upcalls under fuse-iomap's cache budget, on traces the kernel recorded while
//! workloads read and wrote (`reports cache` on every trace, at 64 KiB, 256 KiB and 2 MiB).
//!
//! The traces: as root in the demo, every built-in workload of `imagekit::workloads` is
//! recorded in this run (ext4 on a loop device, the kernel's tracepoints); otherwise the real
//! traces committed under `testdata/traces` are replayed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use livefs::trace::Trace;
use plotters::prelude::SeriesLabelPosition;

use super::registry::FIG10_CACHE;
use super::{ratio, Ctx, Section};
use crate::support::cache::{replay, replay_bpf, BpfReplay, Row, STRUCTURES};
use crate::support::plot::{color, Figure, Fmt, Line, LinePanel, Panel};
use crate::support::rows::met;
use crate::support::table::Table;

/// The budgets replayed: fuse-iomap's default cap and a quarter and eight times it.
pub const BUDGETS: [u64; 3] = [64 << 10, 256 << 10, 2 << 20];

/// fuse-iomap's default `cache_maxbytes` (`FUSE_IOMAP_CACHE_DEFAULT_MAXBYTES`).
pub const DEFAULT_BUDGET: u64 = predictor::cache::DEFAULT_MAX_BYTES;

/// The committed real traces.
fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces")
}

/// The traces of this run, by name: recorded now (root, demo) or the committed ones.
fn traces(ctx: &Ctx<'_>, skipped: &mut Vec<(String, String)>) -> Result<Vec<(String, Trace)>> {
    let mut out = Vec::new();
    if ctx.demo && imagekit::kernel::is_root() && !ctx.scale.cache_workloads.is_empty() {
        for &(w, scale) in &ctx.scale.cache_workloads {
            ctx.bar
                .set_message(format!("fig 10: recording the {} trace", w.name()));
            match imagekit::workloads::record(
                ctx.work_dir,
                w,
                scale,
                crate::support::datasets::SYNTH_SEED,
                256 * 1024,
            ) {
                Ok(t) => out.push((format!("{}-{scale}", w.name()), t)),
                Err(e) => skipped.push((
                    format!("{} trace", w.name()),
                    predictor::error::Chain(&e).to_string(),
                )),
            }
        }
        return Ok(out);
    }
    if !imagekit::kernel::is_root() {
        skipped.push((
            "traces recorded in this run (fig 10 replays the committed ones)".into(),
            "recording needs root (tracefs, loop mounts)".into(),
        ));
    }
    out.extend(read_committed()?);
    Ok(out)
}

/// The committed real traces, by name.
fn read_committed() -> Result<Vec<(String, Trace)>> {
    let dir = committed();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            Ok((name, tables::trace::read_trace(&p)?))
        })
        .collect()
}

/// Records or reads the traces, replays them and writes figure 10. `round_trip_ns`: a FUSE
/// round trip measured on our mount in this run (the median 4 KiB O_DIRECT read of figure 6),
/// the price of an upcall in the mapping cost per query.
pub fn run(ctx: &Ctx<'_>, round_trip_ns: Option<f64>) -> Result<Section> {
    let mut skipped = Vec::new();
    let traces = traces(ctx, &mut skipped)?;
    ctx.bar
        .set_message("fig 10: replaying the traces through fuse-iomap's cache");
    let mut rows: Vec<Row> = Vec::new();
    for (name, t) in &traces {
        t.check()
            .with_context(|| format!("trace {name} does not rebuild its checkpoints"))?;
        rows.extend(replay(name, t, &BUDGETS, 100, round_trip_ns)?);
    }
    // Per trace, its file with the most extents at the end.
    let mut largest: Vec<(&str, u64, usize)> = Vec::new();
    for r in &rows {
        match largest.iter_mut().find(|(t, ..)| *t == r.trace) {
            Some(l) if r.extents > l.2 => *l = (&r.trace, r.file, r.extents),
            Some(_) => {}
            None => largest.push((&r.trace, r.file, r.extents)),
        }
    }
    let pick = |trace: &str, file: u64, budget: u64, s: &str| {
        rows.iter()
            .find(|r| r.trace == trace && r.file == file && r.budget == budget && r.structure == s)
    };
    let t = table(ctx, &rows);

    let mut body = format!(
        "Traces of mapping queries and map changes the kernel recorded (ext4's tracepoints on a \
         loop device mounted `nodelalloc`, `training record`; each rebuilt FIEMAP's maps exactly \
         at its checkpoints), replayed through fuse-iomap's mapping cache as the v7 patches \
         build it (`predictor::cache`: 32-byte records, the whole tree destroyed when an upsert \
         finds it over `cache_maxbytes`, ranges invalidated by writes, punches and shifts, fuse4fs \
         upserting one extent per miss) and through the learned tier kept exact as the map \
         changes (`ChangingIndex`). A query that writes into a hole is an upcall for every \
         structure (the server allocates). Every answer is checked against the map at that \
         moment. Per trace, its file with the most extents, at fuse-iomap's default budget of \
         {} KiB:\n\n\
         | trace | extents | structure | upcalls / 10^6 queries | vs fuse-cache | peak bytes \
         | lookup ns | mapping ns / query | update ns mean (p99) | stale |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
        DEFAULT_BUDGET >> 10
    );
    let mut total_queries = 0u64;
    let mut total_stale = 0u64;
    for r in &rows {
        total_queries += r.queries;
        total_stale += r.stale;
    }
    for &(trace, file, extents) in &largest {
        let base =
            pick(trace, file, DEFAULT_BUDGET, STRUCTURES[0]).map_or(0.0, |r| r.upcalls as f64);
        for s in STRUCTURES {
            let Some(r) = pick(trace, file, DEFAULT_BUDGET, s) else {
                continue;
            };
            body.push_str(&format!(
                "| {trace} | {extents} | {s} | {:.0} | {} | {} | {} | {} | {:.0} ({}) | {} |\n",
                r.upcalls_per_million,
                if r.upcalls == 0 {
                    "all avoided".to_string()
                } else {
                    format!("{:.2}x", ratio(base, r.upcalls as f64))
                },
                r.peak_bytes,
                r.lookup_ns_p50,
                r.mapping_ns_per_query
                    .map_or_else(|| "-".to_string(), |n| format!("{n:.0}")),
                r.update_ns_mean,
                r.update_ns_p99,
                r.stale
            ));
        }
    }
    body.push_str(&format!(
        "\n{total_stale} stale answers over {total_queries} replayed queries (every structure, \
         every budget). `fuse-cache-bulk` pushes the extents after a miss while the tree is at \
         most half full (density apart from filling); `fuse-cache-unlimited` is the tree without \
         a cap; `learned+fuse-cache` keeps the learned tier in its own maps, outside the budget. \
         Lookup ns: the in-kernel answer alone (the cache's lookup or the learned map's), median, \
         the clock's own cost taken off. Overwrites that change no block are invisible in an \
         ext4 trace, so the replayed fuse-iomap cache sees fewer invalidations than the kernel \
         would make: the baseline is flattered.\n"
    ));
    body.push_str(&match round_trip_ns {
        Some(rt) => format!(
            "\nMapping ns / query = median lookup + upcalls per query x {}, the FUSE round trip \
             measured on our mount in this run (median 4 KiB O_DIRECT read, figure 6).\n",
            Fmt::Nanos.format(rt)
        ),
        None => "\nNo FUSE round trip was measured in this run (figure 6 did not run): no \
                 mapping cost per query.\n"
            .to_string(),
    });
    body.push_str(&update_bars(&rows));
    let in_kernel = in_kernel(ctx, &mut skipped)?;
    if let Some(b) = &in_kernel {
        body.push_str(&format!(
            "\nIn the kernel: the committed traces' files replayed through the BPF tier, the \
             file's compact form replaced before the first query after its map changed (written \
             aside, published in one update, the old slots freed after a grace period): {} \
             answers from the program, {} wrong, {} forms replaced ({} could not load, {} queries \
             fell back).\n",
            b.answered, b.wrong, b.replacements, b.skipped, b.fell_back
        ));
    }

    let mut summary = headline(&largest, &pick, total_queries, total_stale);
    if let (Some(line), Some(b)) = (summary.first_mut(), &in_kernel) {
        line.push_str(&format!(
            " In the BPF tier, its form replaced as the map changes: {} answers, {} wrong.",
            b.answered, b.wrong
        ));
    }
    figure(ctx, &rows, &largest)?;
    ctx.bar.inc(1);
    Ok(Section {
        title: "10. Upcalls under fuse-iomap's cache budget (recorded traces)".into(),
        body,
        figures: vec![FIG10_CACHE.into()],
        tables: vec![t],
        skipped,
        summary,
    })
}

/// Table `fig10_cache`: every row, with the machine's columns.
fn table(ctx: &Ctx<'_>, rows: &[Row]) -> Table {
    let mut t = Table::new(FIG10_CACHE);
    for r in rows {
        let mut row = vec![
            ("trace", r.trace.clone().into()),
            ("file", r.file.into()),
            ("extents", r.extents.into()),
            ("budget", r.budget.into()),
            ("structure", r.structure.into()),
            ("queries", r.queries.into()),
            ("upcalls", r.upcalls.into()),
            ("upcalls_per_million", r.upcalls_per_million.into()),
            ("stale", r.stale.into()),
            ("map_changes", r.changes.into()),
            ("peak_bytes", r.peak_bytes.into()),
            ("mean_bytes", r.mean_bytes.into()),
            ("lookup_ns_p50", r.lookup_ns_p50.into()),
            (
                "mapping_ns_per_query",
                r.mapping_ns_per_query.unwrap_or(f64::NAN).into(),
            ),
            ("destroys", r.destroys.into()),
            ("rebuilds", r.rebuilds.into()),
            ("update_ns_p50", r.update_ns_p50.into()),
            ("update_ns_p99", r.update_ns_p99.into()),
            ("update_ns_max", r.update_ns_max.into()),
            ("update_ns_mean", r.update_ns_mean.into()),
            ("rebuild_ns_max", r.rebuild_ns_max.into()),
            ("install_ns_max", r.install_ns_max.into()),
        ];
        row.extend(ctx.machine_cols());
        t.push(row);
    }
    t
}

/// The committed traces replayed through the BPF tier (root), summed over their files.
fn in_kernel(ctx: &Ctx<'_>, skipped: &mut Vec<(String, String)>) -> Result<Option<BpfReplay>> {
    if !imagekit::kernel::is_root() {
        skipped.push(("fig 10: the BPF tier's replay".into(), "needs root".into()));
        return Ok(None);
    }
    ctx.bar
        .set_message("fig 10: replaying the committed traces through the BPF tier");
    let mut sum = BpfReplay::default();
    for (name, trace) in read_committed()? {
        for b in replay_bpf(&name, &trace, 100)? {
            sum.answered += b.answered;
            sum.wrong += b.wrong;
            sum.fell_back += b.fell_back;
            sum.replacements += b.replacements;
            sum.skipped += b.skipped;
        }
    }
    anyhow::ensure!(
        sum.wrong == 0,
        "the BPF tier answered {} wrong mappings replaying the committed traces",
        sum.wrong
    );
    Ok(Some(sum))
}

/// The learned map's update cost against its bars: at most 1 us per change amortized (rebuilds
/// included), and no lookup waiting more than 1 ms for a change (its logging in the delta, or
/// the swap of a rebuilt form; the rebuild itself is built aside).
fn update_bars(rows: &[Row]) -> String {
    let learned: Vec<&Row> = rows
        .iter()
        .filter(|r| r.structure == STRUCTURES[2] && r.budget == DEFAULT_BUDGET && r.changes > 0)
        .collect();
    let Some(worst) = learned
        .iter()
        .max_by(|a, b| a.update_ns_mean.total_cmp(&b.update_ns_mean))
    else {
        return String::new();
    };
    let wait = learned
        .iter()
        .map(|r| r.update_ns_max.max(r.install_ns_max))
        .max()
        .unwrap_or(0);
    let rebuilds: u64 = learned.iter().map(|r| r.rebuilds).sum();
    format!(
        "\nThe learned map under change: a change costs at most {} amortized (`{}` inode {}, \
         {} changes, {} rebuilds; bar 1 us per change: {}); the longest a lookup waits for a \
         change, its logging or the swap of a rebuilt form, is {} (bar 1 ms: {}). A rebuild \
         ({rebuilds} in all, when the delta holds more bytes than the packed form) is built aside \
         from a snapshot of the map while the delta answers, then swapped in with the changes \
         made since.\n",
        Fmt::Nanos.format(worst.update_ns_mean),
        worst.trace,
        worst.file,
        worst.changes,
        worst.rebuilds,
        met(worst.update_ns_mean <= 1_000.0),
        Fmt::Nanos.format(wait as f64),
        met(wait <= 1_000_000),
    )
}

/// The summary line: the read-heavy trace's upcall ratio at the default budget, and the worst
/// ratio over every trace.
fn headline<'a>(
    largest: &[(&str, u64, usize)],
    pick: &dyn Fn(&str, u64, u64, &str) -> Option<&'a Row>,
    queries: u64,
    stale: u64,
) -> Vec<String> {
    let at =
        |trace: &str, file: u64, s: &str| pick(trace, file, DEFAULT_BUDGET, s).map(|r| r.upcalls);
    let mut worst: Option<(f64, &str)> = None;
    let mut lead = None;
    for &(trace, file, extents) in largest {
        let (Some(fuse), Some(bulk), Some(learned)) = (
            at(trace, file, STRUCTURES[0]),
            at(trace, file, STRUCTURES[1]),
            at(trace, file, STRUCTURES[2]),
        ) else {
            continue;
        };
        let better = fuse.min(bulk) as f64;
        let r = ratio(better, learned.max(1) as f64);
        if worst.is_none_or(|(w, _)| r < w) {
            worst = Some((r, trace));
        }
        if trace.starts_with("vm-disk") {
            lead = Some(format!(
                "**Upcalls under fuse-iomap's default {} KiB cache budget**, on the read-heavy `{trace}` trace (a VM disk of {extents} extents read at random, one write in sixteen, recorded from the kernel): the learned cache makes {learned} upcalls where fuse-iomap's cache makes {fuse} ({bulk} when the server pushes extents ahead), {:.1}x fewer than the better of the two",
                DEFAULT_BUDGET >> 10,
                r
            ));
        }
    }
    let mut line = lead.unwrap_or_else(|| {
        format!(
            "**Upcalls under fuse-iomap's default {} KiB cache budget** (recorded traces)",
            DEFAULT_BUDGET >> 10
        )
    });
    if let Some((w, trace)) = worst {
        line.push_str(&format!(
            "; on no trace does it make more (smallest ratio {w:.1}x, on `{trace}`)"
        ));
    }
    line.push_str(&format!(
        "; {stale} stale answers over {queries} replayed queries (figure 10)."
    ));
    vec![line]
}

/// Traces drawn: the two whose largest file has the most extents (the others are in the table).
const DRAWN: usize = 2;

fn figure(ctx: &Ctx<'_>, rows: &[Row], largest: &[(&str, u64, usize)]) -> Result<()> {
    let mut drawn = largest.to_vec();
    drawn.sort_by_key(|&(t, _, n)| (std::cmp::Reverse(n), t));
    drawn.truncate(DRAWN);
    let panels = drawn
        .iter()
        .map(|&(trace, file, extents)| {
            let lines = STRUCTURES
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let pts = BUDGETS
                        .iter()
                        .filter_map(|&b| {
                            rows.iter()
                                .find(|r| {
                                    r.trace == trace
                                        && r.file == file
                                        && r.budget == b
                                        && r.structure == *s
                                })
                                .map(|r| ((b >> 10) as f64, r.upcalls_per_million))
                        })
                        .collect();
                    Line::new(*s, color(i), pts)
                })
                .collect();
            Panel::Lines(LinePanel {
                title: format!("{trace}: inode {file}, {extents} extents"),
                x_desc: "cache budget per file, KiB (log)".into(),
                y_desc: "upcalls per 10^6 mapping queries".into(),
                x_log: true,
                y_log: false,
                x_fmt: Fmt::Count,
                y_fmt: Fmt::Count,
                lines,
                legend: SeriesLabelPosition::MiddleRight,
            })
        })
        .collect();
    let fig = Figure {
        title: "Fig. 10: upcalls under fuse-iomap's cache budget, recorded read/write traces"
            .into(),
        footer: ctx.footer(),
        panels,
    };
    fig.save(ctx.fig_dir, FIG10_CACHE)?;
    Ok(())
}
