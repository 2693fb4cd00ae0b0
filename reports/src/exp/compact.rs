//! Figure 9's question, in a table: the compact learned mapping (`compact`) against the
//! kernel's own cache structure (the iext tree with XFS's 16-byte records, `iext16`), per group
//! of maps, in memory and in time (`warm-shared`, `cold-evicted`, `sequential`), with every other
//! structure of `reports structures` beside them. One [`crate::support::race::measure`] per file.

use std::fmt::Write as _;

use anyhow::Result;

use super::registry::FIG9_COMPACT;
use super::{ratio, Ctx, Section};
use crate::support::datasets::{count_label, file_dataset, Dataset, Source};
use crate::support::race::{measure, Evictor, Row};
use crate::support::table::Table;

/// Maps below this many extents are left out (a one-leaf iext tree; the compact form keeps a
/// plain array or a single small piece there).
pub const MIN_EXTENTS: usize = 1_000;

/// The structure under test and the one every ratio is against.
const COMPACT: &str = predictor::Structure::Compact.name();
const KERNEL: &str = predictor::Structure::Iext16.name();

/// Maps the kernel allocator made: the group the compact index is judged on first.
const KERNEL_MAPS: &str = "maps made by the kernel allocator";

/// Which group a dataset belongs to: maps the kernel allocator made, the punched test images
/// (debugfs punches and the kernel-punched regular pattern, which flatter a line), synthetic
/// allocator-like maps, live files.
fn group(d: &Dataset) -> &'static str {
    let image = d.name.split(':').next().unwrap_or_default();
    match d.source {
        Source::Synthetic => "synthetic allocator-like maps",
        Source::Live => "live files",
        Source::Image
            if imagekit::kernel::Allocated::ALL
                .iter()
                .any(|r| r.name() == image) =>
        {
            KERNEL_MAPS
        }
        Source::Image => "punched test images (regular patterns)",
    }
}

/// Groups in report order.
const GROUPS: [&str; 4] = [
    KERNEL_MAPS,
    "punched test images (regular patterns)",
    "synthetic allocator-like maps",
    "live files",
];

/// One measured file: its group and the rows of every structure.
struct Measured {
    name: String,
    group: &'static str,
    rows: Vec<Row>,
}

impl Measured {
    fn get(&self, s: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.structure == s)
    }

    /// Compact against iext16: (bytes ratio, warm, cold, sequential speed-ups), speed-up being
    /// iext16's ns over the compact index's (above 1: the compact index is faster).
    fn versus(&self) -> Option<[f64; 4]> {
        let (c, k) = (self.get(COMPACT)?, self.get(KERNEL)?);
        Some([
            ratio(c.bytes as f64, k.bytes as f64),
            ratio(k.ns_warm_shared, c.ns_warm_shared),
            ratio(k.ns_cold_evicted, c.ns_cold_evicted),
            ratio(k.ns_sequential, c.ns_sequential),
        ])
    }
}

/// The other files of at least [`MIN_EXTENTS`] extents in the image of each dataset whose maps
/// the kernel allocator made, each with the index of its image's dataset in `sets`. The other
/// experiments take one file per image (its most fragmented); here every kernel-made map from
/// 10^3 extents counts, and the appenders' image has maps of several sizes down to about that
/// (`imagekit::kernel::APPENDS_DIVISOR`).
fn kernel_siblings(ctx: &Ctx<'_>, sets: &[Dataset]) -> Result<Vec<(usize, Dataset)>> {
    let mut out = Vec::new();
    for (i, d) in sets.iter().enumerate() {
        if d.file.is_none() || group(d) != KERNEL_MAPS {
            continue;
        }
        let Some((image, path)) = d.name.split_once(':') else {
            continue;
        };
        let Some(img) = ctx.images.iter().find(|img| img.name == image) else {
            continue;
        };
        let mut files: Vec<_> = img
            .files
            .iter()
            .filter(|f| f.extents as usize >= MIN_EXTENTS && f.path != path)
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for f in files {
            out.push((i, file_dataset(img, f.ino, &f.path)?));
        }
    }
    Ok(out)
}

/// Runs the comparison on every dataset with at least [`MIN_EXTENTS`] extents, and on the
/// other files of that many in the kernel-made images ([`kernel_siblings`]), each after its
/// image's dataset.
pub fn run(ctx: &Ctx<'_>, sets: &[Dataset]) -> Result<Section> {
    ctx.bar
        .set_message("fig 9: compact learned mapping vs the iext tree (memory and time)");
    let evictor = Evictor::new()?;
    let effort = ctx.scale.structures;
    let siblings = kernel_siblings(ctx, sets)?;
    let maps = sets.iter().enumerate().flat_map(|(i, d)| {
        std::iter::once(d).chain(
            siblings
                .iter()
                .filter(move |(j, _)| *j == i)
                .map(|(_, s)| s),
        )
    });
    let measured: Vec<Measured> = maps
        .filter(|d| d.extents.len() >= MIN_EXTENTS)
        .map(|d| Measured {
            name: d.name.clone(),
            group: group(d),
            rows: measure(d, &d.name, &effort, &evictor),
        })
        .collect();
    ctx.bar.inc(1);

    let mut table = Table::new(FIG9_COMPACT);
    for m in &measured {
        for r in &m.rows {
            let mut row = vec![
                ("dataset", m.name.clone().into()),
                ("group", m.group.into()),
                ("extents", r.extents.into()),
                ("structure", r.structure.into()),
                ("bytes", r.bytes.into()),
                ("bytes_per_extent", r.bytes_per_extent.into()),
                ("ns_warm_shared", r.ns_warm_shared.into()),
                ("ns_cold_evicted", r.ns_cold_evicted.into()),
                ("ns_sequential", r.ns_sequential.into()),
                ("form", r.form.clone().into()),
            ];
            row.extend(ctx.machine_cols());
            table.push(row);
        }
    }

    let mut body = format!(
        "Every structure of `reports structures` built over each map of at least {MIN_EXTENTS} \
         extents (the most fragmented file of every image, every synthetic map, and every \
         other file of that many extents in the images the kernel allocator made) and raced on \
         the same queries (heap bytes counted by the allocator). Three \
         regimes (`predictor::regime`): **`warm-shared`**: one batch of {batch} uniform random blocks asked again and \
         again, each structure in turn, in one of {orders} orders per round, so the lines the \
         batch touches stay cached while the query sequence does not repeat (a file being read \
         hard); \
         **`cold-evicted`**: before every timed lookup a {evict} MiB buffer (twice the \
         last-level cache, counted at most 32 MiB as `predictor::synth::cold_cache` says why; huge pages so the TLB keeps its entries) is read, the same block is \
         looked up in one of two builds of the structure (so the code that lookup runs is warm, \
         not the data), then one lookup in the other build is timed alone ({cold} per \
         structure, the two builds timed in turn so the median spans two placements in memory; \
         a lookup after the task did other work); **`sequential`**: batches of {batch} \
         consecutive blocks from {starts} random starts in turn. Medians. Ratios are \
         against `iext16`, the kernel's in-core extent tree with XFS's 16-byte records (the \
         fuse-iomap cache uses the same tree with 32-byte records, `iext32`); speed-up above 1 \
         means the compact index is faster. Table `fig9_compact`.\n\n",
        batch = effort.warm.batch,
        evict = evictor.bytes() >> 20,
        cold = effort.cold_samples,
        starts = crate::support::race::SEQUENTIAL_STARTS,
        orders = crate::support::race::WARM_ORDERS,
    );
    body.push_str(
        "| map | group | extents | compact form | compact B/ext | iext16 B/ext | memory | warm-shared speed-up | cold-evicted speed-up | sequential speed-up |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in &measured {
        let (Some(c), Some(k), Some(v)) = (m.get(COMPACT), m.get(KERNEL), m.versus()) else {
            continue;
        };
        let _ = writeln!(
            body,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            m.name,
            m.group,
            count_label(c.extents),
            c.form,
            c.bytes_per_extent,
            k.bytes_per_extent,
            v[0],
            v[1],
            v[2],
            v[3]
        );
    }

    let mut summary = Vec::new();
    for g in GROUPS {
        let in_group: Vec<&Measured> = measured.iter().filter(|m| m.group == g).collect();
        let vs: Vec<[f64; 4]> = in_group.iter().filter_map(|m| m.versus()).collect();
        let bpe: Vec<f64> = in_group
            .iter()
            .filter_map(|m| m.get(COMPACT).map(|r| r.bytes_per_extent))
            .collect();
        let sizes: Vec<usize> = in_group
            .iter()
            .filter_map(|m| m.get(COMPACT).map(|r| r.extents))
            .collect();
        if vs.is_empty() {
            continue;
        }
        let range = |i: usize| span(vs.iter().map(|v| v[i]));
        let line = format!(
            "Compact learned mapping vs the kernel's iext tree (16 B records), {g} ({} files, \
             {} extents): {} B/extent, {} of iext16's memory; lookups {} iext16's speed \
             `warm-shared`, {} `cold-evicted`, {} `sequential` (speed-up > 1: compact faster; \
             ranges over the files).",
            vs.len(),
            span_with(sizes.iter().map(|&n| n as f64), |v| count_label(v as usize)),
            span_with(bpe.iter().copied(), |v| format!("{v:.2}")),
            range(0),
            range(1),
            range(2),
            range(3),
        );
        let _ = writeln!(body, "\n{line}");
        summary.push(line);
    }
    if measured.is_empty() {
        body.push_str("\nNo map of this run has that many extents.\n");
    }
    Ok(Section {
        title: "Compact learned mapping vs the kernel's iext tree (memory; warm-shared, \
                cold-evicted, sequential)"
            .into(),
        body,
        tables: vec![table],
        summary,
        ..Section::default()
    })
}

/// `a-bx` for the smallest and largest value (`ax` when equal).
fn span(v: impl Iterator<Item = f64>) -> String {
    span_with(v, |x| format!("{x:.2}")) + "x"
}

/// `a-b` of the smallest and largest value formatted by `f` (`a` when they format alike).
fn span_with(v: impl Iterator<Item = f64>, f: impl Fn(f64) -> String) -> String {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let (a, b) = (f(lo), f(hi));
    if a == b {
        a
    } else {
        format!("{a}-{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(span([1.5, 0.25, 3.0].into_iter()), "0.25-3.00x");
        assert_eq!(span([2.0].into_iter()), "2.00x");
        assert_eq!(
            span_with([1000.0, 1e6].into_iter(), |v| count_label(v as usize)),
            "1e3-1e6"
        );
    }
}
