//! The population view: every regular file of the run's images (or live scan) by extent-count
//! class; the files, bytes and extents of each class; the model each class gets; and what a
//! lookup costs a query drawn uniformly over files or over bytes, for the learned index and
//! the kernel's cache structure (the iext tree) and `BTreeMap`.
//!
//! Per class, up to `Scale::population_samples` files (spread evenly over the class's extent
//! counts) are timed: each file's structures are built and raced on uniform queries over that
//! file, one file at a time, so every structure is warm in cache (the regime of an iomap cache
//! that holds the file's map). The class's cost is the mean over its sampled files of each
//! file's median ns per lookup. Heap bytes are summed over every file of the class.

use std::fmt::Write as _;

use anyhow::Result;
use predictor::error::Chain;

use super::registry::{FIG8_EXPECTED_COST, FIG8_POPULATION, FIG8_POPULATION_COST};
use super::{ratio, Ctx, Section};
use crate::support::datasets::{Dataset, Source};
use crate::support::images::kind_name;
use crate::support::plot::{color, BarPanel, Bars, Figure, Fmt, Panel};
use crate::support::population::{class_index, Class, Population, CLASSES};
use crate::support::rows::met;
use crate::support::structures::STRUCTURES;
use crate::support::table::Table;
use crate::support::timing::{race, Summary};

/// The structures a population is costed with: the learned index, the kernel's iext tree with
/// its two record layouts, the `BTreeMap` baseline, the compact learned index (whose per-file
/// forms give a one-extent file no heap at all), and the per-file choice among the learned
/// forms and the iext tree (`predictor::index::choose`, what `--tier chosen` holds).
const COSTED: [&str; 6] = [
    "learned",
    predictor::Structure::Iext16.name(),
    predictor::Structure::Iext32.name(),
    "btree",
    predictor::Structure::Compact.name(),
    CHOSEN,
];

/// The per-file choice's row: a rule over each file's map, not one structure, so it is never
/// the "fastest structure" of a class.
const CHOSEN: &str = "chosen";

/// The kernel's structure every ratio is against: fuse-iomap's cache (iext tree, 32-byte
/// `fuse_iomap_io` records).
const KERNEL: &str = predictor::Structure::Iext32.name();

/// Model shapes, in table column order.
const KINDS: [predictor::model::ModelKind; 4] = [
    predictor::model::ModelKind::Empty,
    predictor::model::ModelKind::Single,
    predictor::model::ModelKind::Linear,
    predictor::model::ModelKind::Piecewise,
];

/// One class of one population.
#[derive(Debug, Clone, Default)]
struct ClassStats {
    files: u64,
    bytes: u64,
    extents: u64,
    /// Files per model shape (`KINDS` order).
    kinds: [u64; 4],
    /// Per costed structure: each sampled file's median ns per lookup.
    ns: [Vec<f64>; COSTED.len()],
    /// Per costed structure: heap bytes over every file of the class.
    heap: [u64; COSTED.len()],
    /// Files whose map could not be read for the memory count.
    unreadable: u64,
}

impl ClassStats {
    fn mean_ns(&self, s: usize) -> Option<f64> {
        let v = &self.ns[s];
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The costed structure with the lowest mean ns on this class, if any was measured.
    fn fastest(&self) -> Option<usize> {
        (0..COSTED.len())
            .filter(|&s| COSTED[s] != CHOSEN)
            .filter_map(|s| self.mean_ns(s).map(|ns| (s, ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, _)| s)
    }

    fn add(&mut self, o: &ClassStats) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.extents += o.extents;
        for (k, n) in self.kinds.iter_mut().zip(o.kinds) {
            *k += n;
        }
        for (ns, other) in self.ns.iter_mut().zip(&o.ns) {
            ns.extend_from_slice(other);
        }
        for (h, other) in self.heap.iter_mut().zip(o.heap) {
            *h += other;
        }
        self.unreadable += o.unreadable;
    }
}

/// What answers a class's lookups: one structure for every class, or the cost-benefit choice
/// of the fastest structure measured for each class (what a Bourbon-style rule would pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// `COSTED[i]` everywhere.
    Fixed(usize),
    /// Per class, the structure with the lowest measured ns.
    FastestPerClass,
}

impl Choice {
    /// Every fixed structure, then the per-class choice.
    fn all() -> impl Iterator<Item = Choice> {
        (0..COSTED.len())
            .map(Choice::Fixed)
            .chain([Choice::FastestPerClass])
    }

    /// Its id in tables.
    fn name(self) -> &'static str {
        match self {
            Choice::Fixed(s) => COSTED[s],
            Choice::FastestPerClass => "per-class-fastest",
        }
    }

    /// The structure it uses for class `c`.
    fn pick(self, c: &ClassStats) -> Option<usize> {
        match self {
            Choice::Fixed(s) => Some(s),
            Choice::FastestPerClass => c.fastest(),
        }
    }
}

/// Expected ns per lookup under `choice` for a query drawn over files with extents (`false`)
/// or over bytes (`true`); `None` where a class with weight has no measurement.
fn expected_ns(classes: &[ClassStats], choice: Choice, by_bytes: bool) -> Option<f64> {
    let weight = |c: &ClassStats| if by_bytes { c.bytes } else { c.files } as f64;
    let costed: Vec<(&ClassStats, &Class)> = classes
        .iter()
        .zip(CLASSES)
        .filter(|(c, k)| k.min > 0 && weight(c) > 0.0)
        .collect();
    let total: f64 = costed.iter().map(|(c, _)| weight(c)).sum();
    if total == 0.0 {
        return None;
    }
    let mut sum = 0.0;
    for (c, _) in costed {
        sum += weight(c) * c.mean_ns(choice.pick(c)?)?;
    }
    Some(sum / total)
}

/// Heap bytes of every map under `choice`.
fn heap_bytes(classes: &[ClassStats], choice: Choice) -> u64 {
    classes
        .iter()
        .filter_map(|c| choice.pick(c).map(|s| c.heap[s]))
        .sum()
}

/// Measures one population.
fn measure(ctx: &Ctx<'_>, pop: &Population<'_>) -> Vec<ClassStats> {
    let mut classes = vec![ClassStats::default(); CLASSES.len()];
    let mut members: Vec<Vec<&crate::support::images::FileInfo>> = vec![Vec::new(); CLASSES.len()];
    for f in pop.files {
        let k = class_index(u64::from(f.extents));
        let c = &mut classes[k];
        c.files += 1;
        c.bytes += f.size;
        c.extents += u64::from(f.extents);
        if let Some(i) = KINDS.iter().position(|&kind| kind == f.kind) {
            c.kinds[i] += 1;
        }
        members[k].push(f);
    }
    let build = |d: &Dataset, name: &str| {
        if name == CHOSEN {
            return crate::support::race::chosen(d);
        }
        STRUCTURES
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.make(d))
    };
    for (k, files) in members.iter_mut().enumerate() {
        if CLASSES[k].min == 0 || files.is_empty() {
            continue;
        }
        ctx.bar.set_message(format!(
            "population of {}: {} files of {} extents",
            pop.name,
            files.len(),
            CLASSES[k].label
        ));
        files.sort_by_key(|f| (f.extents, f.ino));
        let n = ctx.scale.population_samples.min(files.len()).max(1);
        // Evenly spread over the class, by extent count: the first, the last, and between.
        let sampled: Vec<usize> = (0..n)
            .map(|i| {
                if n == 1 {
                    files.len() / 2
                } else {
                    i * (files.len() - 1) / (n - 1)
                }
            })
            .collect();
        for (i, f) in files.iter().enumerate() {
            let extents = match pop.extents(f) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %Chain(e.as_ref()), "population: map not read");
                    classes[k].unreadable += 1;
                    continue;
                }
            };
            let d = Dataset {
                name: format!("{}:{}", pop.name, f.path),
                source: if pop.is_live() {
                    Source::Live
                } else {
                    Source::Image
                },
                model: pop.pack.get(f.ino).map(|e| e.model.clone()),
                file: None,
                extents,
            };
            let built: Vec<_> = COSTED.iter().map(|s| build(&d, s)).collect();
            for (s, b) in built.iter().enumerate() {
                if let Some(b) = b {
                    classes[k].heap[s] += b.heap_bytes as u64;
                }
            }
            if !sampled.contains(&i) {
                continue;
            }
            let present: Vec<(usize, &dyn predictor::ExtentIndex)> = built
                .iter()
                .enumerate()
                .filter_map(|(s, b)| b.as_ref().map(|b| (s, b.index.as_ref())))
                .collect();
            let contenders: Vec<&dyn predictor::ExtentIndex> =
                present.iter().map(|(_, ix)| *ix).collect();
            let batches: Vec<Vec<u32>> = (0..2)
                .map(|seed| {
                    predictor::synth::uniform_queries(
                        &d.extents,
                        ctx.scale.population_lookup.batch,
                        u64::from(f.ino) * 2 + seed,
                    )
                })
                .collect();
            let samples = race(&contenders, &batches, &ctx.scale.population_lookup);
            for ((s, _), mut v) in present.iter().zip(samples) {
                if let Some(sum) = Summary::of(&mut v) {
                    classes[k].ns[*s].push(sum.median);
                }
            }
        }
    }
    classes
}

/// Runs the population experiment over every image of the run and the live scan.
pub fn run(ctx: &Ctx<'_>) -> Result<Section> {
    let mut pops: Vec<Population<'_>> = ctx.images.iter().map(Population::image).collect();
    pops.extend(ctx.live.map(Population::live));
    let measured: Vec<(&str, Vec<ClassStats>)> =
        pops.iter().map(|p| (p.name, measure(ctx, p))).collect();
    // The run's files together (one population in a live run).
    let all = sum_classes(&measured);
    let all_name = if measured.len() == 1 {
        measured[0].0.to_string()
    } else {
        "all files of this run".to_string()
    };

    let mut classes_t = Table::new(FIG8_POPULATION);
    let mut cost_t = Table::new(FIG8_POPULATION_COST);
    let mut expected_t = Table::new(FIG8_EXPECTED_COST);
    let mut rows: Vec<(&str, &[ClassStats])> =
        measured.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    if measured.len() > 1 {
        rows.push((all_name.as_str(), all.as_slice()));
    }
    for (name, classes) in &rows {
        push_class_rows(ctx, name, classes, &mut classes_t, &mut cost_t);
        push_expected_rows(ctx, name, classes, &mut expected_t);
    }

    save_figure(ctx, &all, &all_name)?;
    let body = body(&rows, ctx.scale.population_samples);
    let summary = summary(&all_name, &all);
    let skipped = unreadable(&measured);
    ctx.bar.inc(1);
    Ok(Section {
        title: "The population: files by extent count".into(),
        body,
        figures: vec![FIG8_POPULATION.into()],
        tables: vec![classes_t, cost_t, expected_t],
        skipped,
        summary,
    })
}

/// The classes of all populations added up.
fn sum_classes(measured: &[(&str, Vec<ClassStats>)]) -> Vec<ClassStats> {
    let mut all = vec![ClassStats::default(); CLASSES.len()];
    for (_, classes) in measured {
        for (a, c) in all.iter_mut().zip(classes) {
            a.add(c);
        }
    }
    all
}

/// Files, bytes and extents over all classes.
fn totals(classes: &[ClassStats]) -> (u64, u64, u64) {
    classes.iter().fold((0, 0, 0), |a, c| {
        (a.0 + c.files, a.1 + c.bytes, a.2 + c.extents)
    })
}

/// Rows of `fig8_population` (each class with files) and `fig8_population_cost` (each costed
/// structure of each class with extents) for population `name`.
fn push_class_rows(
    ctx: &Ctx<'_>,
    name: &str,
    classes: &[ClassStats],
    classes_t: &mut Table,
    cost_t: &mut Table,
) {
    let (files, bytes, extents) = totals(classes);
    for (c, class) in classes.iter().zip(CLASSES).filter(|(c, _)| c.files > 0) {
        let mut row = vec![
            ("population", name.into()),
            ("class", class.label.into()),
            ("min_extents", class.min.into()),
            ("max_extents", class.max.into()),
            ("files", c.files.into()),
            ("bytes", c.bytes.into()),
            ("extents", c.extents.into()),
            ("files_share", ratio(c.files as f64, files as f64).into()),
            ("bytes_share", ratio(c.bytes as f64, bytes as f64).into()),
            (
                "extents_share",
                ratio(c.extents as f64, extents as f64).into(),
            ),
        ];
        for (k, col) in [
            "model_empty",
            "model_single",
            "model_linear",
            "model_piecewise",
        ]
        .into_iter()
        .enumerate()
        {
            row.push((col, c.kinds[k].into()));
        }
        classes_t.push(row);
        if class.min == 0 {
            continue;
        }
        for (s, structure) in COSTED.iter().enumerate() {
            let Some(ns) = c.mean_ns(s) else { continue };
            let mut row = vec![
                ("population", name.into()),
                ("class", class.label.into()),
                ("structure", (*structure).into()),
                ("sampled_files", c.ns[s].len().into()),
                ("median_ns", ns.into()),
                ("heap_bytes", c.heap[s].into()),
                (
                    "bytes_per_extent",
                    ratio(c.heap[s] as f64, c.extents as f64).into(),
                ),
            ];
            row.extend(ctx.machine_cols());
            cost_t.push(row);
        }
    }
}

/// Rows of `fig8_expected_cost`: each choice's expected cost over population `name`.
fn push_expected_rows(ctx: &Ctx<'_>, name: &str, classes: &[ClassStats], expected_t: &mut Table) {
    let (files, _, extents) = totals(classes);
    for choice in Choice::all() {
        let (Some(per_file), Some(per_byte)) = (
            expected_ns(classes, choice, false),
            expected_ns(classes, choice, true),
        ) else {
            continue;
        };
        let heap = heap_bytes(classes, choice);
        let mut row = vec![
            ("population", name.into()),
            ("structure", choice.name().into()),
            ("files", files.into()),
            ("extents", extents.into()),
            ("per_file_ns", per_file.into()),
            ("per_byte_ns", per_byte.into()),
            ("heap_bytes", heap.into()),
            (
                "bytes_per_extent",
                ratio(heap as f64, extents as f64).into(),
            ),
        ];
        row.extend(ctx.machine_cols());
        expected_t.push(row);
    }
}

/// Figure 8: the run's files together.
fn save_figure(ctx: &Ctx<'_>, all: &[ClassStats], all_name: &str) -> Result<()> {
    let fig = Figure {
        title: format!("Fig. 8: the population by extent count ({all_name})"),
        footer: ctx.footer(),
        panels: vec![Panel::Bars(share_panel(all)), Panel::Bars(cost_panel(all))],
    };
    fig.save(ctx.fig_dir, FIG8_POPULATION)?;
    Ok(())
}

/// The classes with files, by index in `CLASSES`.
fn shown_classes(all: &[ClassStats]) -> Vec<(usize, &ClassStats)> {
    all.iter()
        .enumerate()
        .filter(|(_, c)| c.files > 0)
        .collect()
}

fn class_label((k, c): &(usize, &ClassStats)) -> String {
    format!("{} ({} files)", CLASSES[*k].label, c.files)
}

fn bars(label: &str, k: usize, values: Vec<Option<f64>>) -> Bars {
    Bars {
        label: label.into(),
        color: color(k),
        values,
        notes: Vec::new(),
    }
}

/// Each class's share of the files, bytes and extents.
fn share_panel(all: &[ClassStats]) -> BarPanel {
    let shown = shown_classes(all);
    let (files, bytes, extents) = totals(all);
    let share = |f: &dyn Fn(&ClassStats) -> u64, total: u64| -> Vec<Option<f64>> {
        shown
            .iter()
            .map(|(_, c)| Some(100.0 * ratio(f(c) as f64, total as f64)))
            .collect()
    };
    BarPanel {
        title: "share of files, bytes and extents per class".into(),
        value_desc: "% of the population".into(),
        log: false,
        fmt: Fmt::Plain,
        categories: shown.iter().map(class_label).collect(),
        series: vec![
            bars("files", 0, share(&|c| c.files, files)),
            bars("bytes", 1, share(&|c| c.bytes, bytes)),
            bars("extents", 2, share(&|c| c.extents, extents)),
        ],
        stacked: false,
        value_labels: false,
    }
}

/// Each costed structure's mean ns per lookup per class.
fn cost_panel(all: &[ClassStats]) -> BarPanel {
    let shown = shown_classes(all);
    // Empty files have no lookups: the cost panel starts at one extent.
    let costed: Vec<(usize, &ClassStats)> = shown
        .iter()
        .copied()
        .filter(|(k, _)| CLASSES[*k].min > 0)
        .collect();
    let cost_series: Vec<Bars> = COSTED
        .iter()
        .enumerate()
        .filter_map(|(s, name)| {
            let st = STRUCTURES.iter().find(|x| x.name == *name)?;
            Some(bars(
                st.label,
                st.color,
                costed.iter().map(|(_, c)| c.mean_ns(s)).collect(),
            ))
        })
        .collect();
    BarPanel {
        title: "ns per lookup (warm-alone), mean over sampled files".into(),
        value_desc: "ns per lookup (log)".into(),
        log: true,
        fmt: Fmt::Plain,
        categories: costed.iter().map(class_label).collect(),
        series: cost_series,
        stacked: false,
        value_labels: false,
    }
}

/// Populations with files whose extent map could not be read, as skipped entries.
fn unreadable(measured: &[(&str, Vec<ClassStats>)]) -> Vec<(String, String)> {
    measured
        .iter()
        .map(|(name, classes)| (name, classes.iter().map(|c| c.unreadable).sum::<u64>()))
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| {
            (
                format!("fig 8: {n} file(s) of {name}"),
                "extent map not readable (see the warnings): left out of the timing and the memory count".to_string(),
            )
        })
        .collect()
}

/// The headline bullet: the whole population's expected lookup cost and memory against the
/// kernel's structure.
fn summary(name: &str, all: &[ClassStats]) -> Vec<String> {
    let files: u64 = all.iter().map(|c| c.files).sum();
    if files == 0 {
        return Vec::new();
    }
    let one = all.get(1).map_or(0, |c| c.files);
    let bytes: u64 = all.iter().map(|c| c.bytes).sum();
    let tail_bytes: u64 = all
        .iter()
        .zip(CLASSES)
        .filter(|(_, k)| k.min > 100)
        .map(|(c, _)| c.bytes)
        .sum();
    let idx = |n: &str| COSTED.iter().position(|s| *s == n).unwrap_or(0);
    let (l, kern) = (Choice::Fixed(idx("learned")), Choice::Fixed(idx(KERNEL)));
    let compact = Choice::Fixed(idx(predictor::Structure::Compact.name()));
    let heap = |choice| heap_bytes(all, choice);
    let mut line = format!(
        "Population ({name}): {files} files, {:.2}% of them with one extent; files with more than 100 extents hold {:.1}% of the bytes.",
        100.0 * ratio(one as f64, files as f64),
        100.0 * ratio(tail_bytes as f64, bytes as f64),
    );
    if let (Some(lf), Some(kf), Some(lb), Some(kb)) = (
        expected_ns(all, l, false),
        expected_ns(all, kern, false),
        expected_ns(all, l, true),
        expected_ns(all, kern, true),
    ) {
        let _ = write!(
            line,
            " A lookup about a random file costs {lf:.1} ns with the learned index and {kf:.1} ns with the kernel's iext tree (32 B records), {:.2}x its time; about a random byte, {lb:.1} and {kb:.1} ns, {:.2}x (`warm-alone`, per-class means of sampled files).",
            ratio(lf, kf),
            ratio(lb, kb)
        );
    }
    let extents: u64 = all.iter().map(|c| c.extents).sum();
    let _ = write!(
        line,
        " Every map in memory: learned index {} B ({:.1} B/extent), iext tree {} B ({:.1} B/extent), {:.2}x its memory.",
        heap(l),
        ratio(heap(l) as f64, extents as f64),
        heap(kern),
        ratio(heap(kern) as f64, extents as f64),
        ratio(heap(l) as f64, heap(kern) as f64)
    );
    if let (Some(cf), Some(cb), Some(kf), Some(kb)) = (
        expected_ns(all, compact, false),
        expected_ns(all, compact, true),
        expected_ns(all, kern, false),
        expected_ns(all, kern, true),
    ) {
        let _ = write!(
            line,
            " The compact learned index: {cf:.1} ns about a random file ({:.2}x iext's time, `warm-alone`), {cb:.1} ns about a random byte ({:.2}x), in {} B ({:.1} B/extent, {:.2}x iext's memory).",
            ratio(cf, kf),
            ratio(cb, kb),
            heap(compact),
            ratio(heap(compact) as f64, extents as f64),
            ratio(heap(compact) as f64, heap(kern) as f64)
        );
    }
    let chosen = Choice::Fixed(idx(CHOSEN));
    if let (Some(cf), Some(cb), Some(kf), Some(kb)) = (
        expected_ns(all, chosen, false),
        expected_ns(all, chosen, true),
        expected_ns(all, kern, false),
        expected_ns(all, kern, true),
    ) {
        let (time, memory) = (ratio(cf, kf), ratio(heap(chosen) as f64, heap(kern) as f64));
        let _ = write!(
            line,
            " The per-file choice (`--tier chosen`): {cf:.1} ns about a random file ({time:.2}x iext's time, `warm-alone`), {cb:.1} ns about a random byte ({:.2}x), in {} B ({memory:.2}x iext's memory; bar: no more time per random file than iext and at most half its memory: {}).",
            ratio(cb, kb),
            heap(chosen),
            met(time <= 1.0 && memory <= 0.5)
        );
    }
    let best = Choice::FastestPerClass;
    if let (Some(bf), Some(bb)) = (expected_ns(all, best, false), expected_ns(all, best, true)) {
        let picks: Vec<String> = all
            .iter()
            .zip(CLASSES)
            .filter(|(c, k)| k.min > 0 && c.files > 0)
            .filter_map(|(c, k)| c.fastest().map(|s| format!("{} {}", k.label, COSTED[s])))
            .collect();
        let _ = write!(
            line,
            " Picking the fastest structure per class ({}) costs {bf:.1} ns about a random file and {bb:.1} ns about a random byte, in {} B.",
            picks.join(", "),
            heap(best)
        );
    }
    vec![line]
}

/// The section's text: what was measured, then per population the classes and the expected
/// costs.
fn body(rows: &[(&str, &[ClassStats])], samples: usize) -> String {
    let mut md = format!(
        "Every regular file, grouped by the number of extents in its map. For each class: files, \
         bytes (file sizes), extents, the model shape training gave its files (`empty`, `single`, \
         `linear`, `piecewise`), and the ns per lookup of each structure: up to {samples} files \
         per class, spread over its extent counts, each raced alone on uniform queries over that \
         file (regime `warm-alone`), averaged over the sampled files. The expected cost \
         weighs each class by its share of files (a query about a random file with extents) or of \
         bytes (a query about a random byte). Heap bytes are summed over every file.\n"
    );
    let idx = |n: &str| COSTED.iter().position(|s| *s == n).unwrap_or(0);
    for (name, classes) in rows {
        let _ = write!(
            md,
            "\n**{name}**\n\n| extents | files | bytes | extents in class | models | learned ns | compact ns | chosen ns | iext32 ns | iext16 ns | BTreeMap ns | fastest | learned B/ext | compact B/ext | chosen B/ext | iext32 B/ext |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n"
        );
        for (c, class) in classes.iter().zip(CLASSES).filter(|(c, _)| c.files > 0) {
            let models: Vec<String> = KINDS
                .iter()
                .zip(c.kinds)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{} {n}", kind_name(*k)))
                .collect();
            let ns = |s: &str| c.mean_ns(idx(s)).map_or("-".into(), |v| format!("{v:.1}"));
            let bpe = |s: &str| {
                if c.extents == 0 {
                    "-".into()
                } else {
                    format!("{:.1}", ratio(c.heap[idx(s)] as f64, c.extents as f64))
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                class.label,
                c.files,
                c.bytes,
                c.extents,
                models.join(", "),
                ns("learned"),
                ns(predictor::Structure::Compact.name()),
                ns(CHOSEN),
                ns(predictor::Structure::Iext32.name()),
                ns(predictor::Structure::Iext16.name()),
                ns("btree"),
                c.fastest().map_or("-", |s| COSTED[s]),
                bpe("learned"),
                bpe(predictor::Structure::Compact.name()),
                bpe(CHOSEN),
                bpe(predictor::Structure::Iext32.name()),
            );
        }
        let _ = write!(
            md,
            "\n| structure | expected ns, query over files | expected ns, query over bytes | heap bytes, every map |\n|---|---:|---:|---:|\n"
        );
        for choice in Choice::all() {
            let f = expected_ns(classes, choice, false);
            let b = expected_ns(classes, choice, true);
            let heap = heap_bytes(classes, choice);
            let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {heap} |",
                choice.name(),
                fmt(f),
                fmt(b)
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_classes_keeps_every_structure() {
        let mut a = ClassStats::default();
        let mut b = ClassStats {
            files: 2,
            ..ClassStats::default()
        };
        for (s, (ns, heap)) in b.ns.iter_mut().zip(&mut b.heap).enumerate() {
            *ns = vec![s as f64 + 1.0];
            *heap = 10 * s as u64 + 1;
        }
        a.add(&b);
        a.add(&b);
        assert_eq!(a.files, 4);
        for (s, name) in COSTED.iter().enumerate() {
            assert_eq!(a.ns[s].len(), 2, "{name}");
            assert_eq!(a.heap[s], 2 * (10 * s as u64 + 1), "{name}");
        }
    }

    #[test]
    fn expected_cost_weighs_classes_by_files_and_bytes() {
        let mut classes = vec![ClassStats::default(); CLASSES.len()];
        // 3 empty files (never queried), 9 one-extent files of 1 byte at 10 ns, 1 file of
        // 1000 extents and 91 bytes at 50 ns.
        classes[0].files = 3;
        classes[1] = ClassStats {
            files: 9,
            bytes: 9,
            ..ClassStats::default()
        };
        classes[1].ns[0] = vec![10.0];
        classes[4] = ClassStats {
            files: 1,
            bytes: 91,
            ..ClassStats::default()
        };
        classes[4].ns[0] = vec![40.0, 60.0];
        let by_files = expected_ns(&classes, Choice::Fixed(0), false).unwrap();
        let by_bytes = expected_ns(&classes, Choice::Fixed(0), true).unwrap();
        assert!(
            (by_files - (9.0 * 10.0 + 50.0) / 10.0).abs() < 1e-9,
            "{by_files}"
        );
        assert!(
            (by_bytes - (9.0 * 10.0 + 91.0 * 50.0) / 100.0).abs() < 1e-9,
            "{by_bytes}"
        );
        // Per class, the fastest: structure 1 is faster on the 1000-extent class only.
        classes[1].ns[1] = vec![20.0];
        classes[4].ns[1] = vec![30.0];
        assert_eq!(
            (classes[1].fastest(), classes[4].fastest()),
            (Some(0), Some(1))
        );
        let best = expected_ns(&classes, Choice::FastestPerClass, false).unwrap();
        assert!((best - (9.0 * 10.0 + 30.0) / 10.0).abs() < 1e-9, "{best}");
        classes[1].heap = [5, 50, 0, 0, 0, 0];
        classes[4].heap = [70, 7, 0, 0, 0, 0];
        assert_eq!(heap_bytes(&classes, Choice::FastestPerClass), 5 + 7);
        assert_eq!(heap_bytes(&classes, Choice::Fixed(0)), 5 + 70);
        // A class with weight but no measurement leaves the expectation unknown.
        classes[5].files = 1;
        assert_eq!(expected_ns(&classes, Choice::Fixed(0), false), None);
        assert_eq!(expected_ns(&classes, Choice::FastestPerClass, false), None);
    }
}
