//! Experiment 5: where the time of one 4 KiB read goes: the tier lookup (a full
//! `TierStack::query`, mapping included) against a 4 KiB pread of the image and a whole read
//! through each mount (from experiment 6's random-read run), and the same lookup in the kernel
//! as a BPF program.

use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use predictor::error::Chain;
use predictor::synth::Rng;
use predictor::{Models, Query, StackOptions, Tier, TierStack};

use super::endtoend::EndToEnd;
use super::registry::FIG5_READ_PATH;
use super::{Ctx, Section};
use crate::support::images::{FileInfo, LoadedImage};
use crate::support::mounts::{ours, FUSE2FS, KERNEL};
use crate::support::plot::{color, BarPanel, Bars, Figure, Fmt, Panel};
use crate::support::table::Table;
use crate::support::timing::Summary;

/// One component's latency.
struct Part {
    component: String,
    what: &'static str,
    ns: Summary,
}

/// The BPF tier's parts: the program's run in the kernel on random blocks of `f` (kernel
/// time per run, 31 passes of 4096 fresh random blocks) and the wall time of one-query test runs from user
/// space, `calls` of them; `Err` says why not (no CAP_BPF, say).
fn bpf_parts(
    img: &LoadedImage,
    f: &FileInfo,
    predictor: &TierStack,
    calls: usize,
) -> std::result::Result<Vec<Part>, String> {
    use bpf::timing::{block_queries, one_pass, syscall_samples};
    use bpf::{load_stack, Limits};
    let msg = |e: bpf::BpfError| Chain(&e).to_string();
    let tier = load_stack(predictor, Limits::default()).map_err(msg)?;
    if predictor.learned(f.ino).is_none() {
        return Err(format!("{}:{} has no active model", img.name, f.path));
    }
    let bs = predictor.block_size();
    let blocks = f.size.div_ceil(u64::from(bs)).max(1);
    let mut rng = Rng::new(12);
    let mut random_blocks = || -> Vec<u32> {
        (0..4096)
            .map(|_| u32::try_from(rng.below(blocks)).unwrap_or(0))
            .collect()
    };
    // One pass over fresh random blocks per sample (each query once), like the userspace rows.
    let ino = u64::from(f.ino);
    let mut runs = (0..31)
        .map(|_| one_pass(&tier, ino, bs, &random_blocks(), 0))
        .collect::<Result<Vec<f64>, _>>()
        .map_err(msg)?;
    let mut parts = Vec::new();
    if let Some(ns) = Summary::of(&mut runs) {
        parts.push(Part {
            component: "BPF program run: learned model in the kernel".into(),
            what: "BPF_PROG_TEST_RUN kernel time per run, 1 query per run (passes of 4096 queries)",
            ns,
        });
    }
    let queries = block_queries(ino, bs, &random_blocks());
    let mut wall = syscall_samples(&tier, &queries, calls).map_err(msg)?;
    if let Some(ns) = Summary::of(&mut wall) {
        parts.push(Part {
            component: "BPF test-run syscall, 1 query".into(),
            what: "wall time of one BPF_PROG_TEST_RUN from user space",
            ns,
        });
    }
    Ok(parts)
}

/// Runs experiment 5 on file `f` of `img`.
pub fn run(ctx: &Ctx<'_>, img: &LoadedImage, f: &FileInfo, e2e: &EndToEnd) -> Result<Section> {
    ctx.bar.set_message("fig 5: where the time of a read goes");
    let stacks = build_stacks(img)?;
    // The pread offsets continue the lookups' random stream.
    let mut rng = Rng::new(11);
    let mut parts = race_lookups(ctx, f, &stacks, &mut rng);
    parts.extend(pread_part(ctx, img, &mut rng)?);
    let (mount_parts, mut skipped) = mount_read_parts(e2e);
    parts.extend(mount_parts);
    // The same lookup in the kernel: the BPF program's run (kernel-timed), and what one
    // test-run syscall from user space costs (what the server pays without struct_ops).
    match bpf_parts(img, f, &stacks[0].1, ctx.scale.preads) {
        Ok(p) => parts.extend(p),
        Err(e) => skipped.push(("fig 5: BPF program run".into(), e)),
    }

    let (t, mut body) = table_and_body(ctx, img, f, &parts);
    let summary = summary(&parts);
    for line in &summary {
        body.push_str(&format!("\n{line}\n"));
    }
    save_figure(ctx, img, f, &parts)?;
    ctx.bar.inc(1);
    Ok(Section {
        title: "5. Where the time of one read goes".into(),
        body,
        figures: vec![FIG5_READ_PATH.into()],
        tables: vec![t],
        skipped,
        summary,
    })
}

/// The stacks whose lookups are timed; the learned one first (the BPF program is built from it).
fn build_stacks(img: &LoadedImage) -> Result<Vec<(&'static str, TierStack)>> {
    [
        ("learned", Tier::Learned),
        ("btree", Tier::Btree),
        ("ondisk", Tier::Ondisk),
    ]
    .into_iter()
    .map(|(name, tier)| {
        let models = if tier == Tier::Learned {
            Models::Pack(&img.pack)
        } else {
            Models::None
        };
        TierStack::build(Arc::clone(&img.fs), tier, models, StackOptions::default())
            .map(|(s, _)| (name, s))
            .with_context(|| format!("building the {name} stack of {}", img.path.display()))
    })
    .collect()
}

/// Tier lookups, raced batch by batch like figure 1.
fn race_lookups(
    ctx: &Ctx<'_>,
    f: &FileInfo,
    stacks: &[(&'static str, TierStack)],
    rng: &mut Rng,
) -> Vec<Part> {
    let batch = ctx.scale.lookup.batch;
    let batches: Vec<Vec<u64>> = (0..ctx.scale.query_batches)
        .map(|_| (0..batch).map(|_| rng.below(f.size.max(1))).collect())
        .collect();
    let mut samples = vec![Vec::new(); stacks.len()];
    let start = Instant::now();
    for (round, qs) in batches.iter().cycle().enumerate() {
        let b = &ctx.scale.lookup;
        if round >= b.max_rounds || (round >= b.min_rounds && start.elapsed() >= b.time) {
            break;
        }
        for ((_, stack), out) in stacks.iter().zip(&mut samples) {
            let t = Instant::now();
            let mut acc = 0u64;
            for &pos in qs {
                if let Ok((m, _)) = stack.query(Query::read(f.ino, black_box(pos), 4096)) {
                    acc = acc.wrapping_add(m.length);
                }
            }
            black_box(acc);
            out.push(t.elapsed().as_nanos() as f64 / qs.len().max(1) as f64);
        }
    }
    let mut parts = Vec::new();
    for ((name, _), mut s) in stacks.iter().zip(samples) {
        if let Some(ns) = Summary::of(&mut s) {
            parts.push(Part {
                component: format!("tier lookup: {name}"),
                what: "TierStack::query, ns per query (batches)",
                ns,
            });
        }
    }
    parts
}

/// A 4 KiB pread of the image file (in the page cache): the data read itself.
fn pread_part(ctx: &Ctx<'_>, img: &LoadedImage, rng: &mut Rng) -> Result<Option<Part>> {
    let image = std::fs::File::open(&img.path)
        .with_context(|| format!("opening {}", img.path.display()))?;
    let blocks = (image
        .metadata()
        .with_context(|| format!("stat {}", img.path.display()))?
        .len()
        / 4096)
        .max(1);
    let mut buf = vec![0u8; 4096];
    let mut lat = Vec::with_capacity(ctx.scale.preads);
    for i in 0..ctx.scale.preads + 100 {
        let off = rng.below(blocks) * 4096;
        let t = Instant::now();
        image
            .read_at(&mut buf, off)
            .with_context(|| format!("reading {}", img.path.display()))?;
        let ns = t.elapsed().as_nanos() as f64;
        if i >= 100 {
            lat.push(ns.max(1.0));
        }
    }
    Ok(Summary::of(&mut lat).map(|ns| Part {
        component: "pread 4 KiB of the image".into(),
        what: "buffered pread, image in page cache",
        ns,
    }))
}

/// Whole reads through the mounts, from experiment 6, and the mounts it did not measure.
fn mount_read_parts(e2e: &EndToEnd) -> (Vec<Part>, Vec<(String, String)>) {
    let mut parts = Vec::new();
    let mut skipped = Vec::new();
    for sys in [
        ours("learned"),
        ours("btree"),
        ours("ondisk"),
        FUSE2FS.to_string(),
        KERNEL.to_string(),
    ] {
        match e2e.random(&sys) {
            Some(r) => {
                if let Some(ns) = r.latencies.summary() {
                    parts.push(Part {
                        component: format!("read 4 KiB via {sys}"),
                        what: "O_DIRECT pread through the mount (fig 6 run)",
                        ns,
                    });
                }
            }
            None => skipped.push((
                format!("fig 5: read via {sys}"),
                "not measured in fig 6 (see its reasons)".to_string(),
            )),
        }
    }
    (parts, skipped)
}

/// The `fig5_read_path` table and the section's text with its markdown table of the parts.
fn table_and_body(
    ctx: &Ctx<'_>,
    img: &LoadedImage,
    f: &FileInfo,
    parts: &[Part],
) -> (Table, String) {
    let mut t = Table::new(FIG5_READ_PATH);
    let mut body = format!(
        "One 4 KiB read of `{}:{}` ({} extents), broken into parts. Tier lookups are full \
         `TierStack::query` calls (model or tree, verification, byte mapping) at random offsets, \
         timed in batches; the pread is of the image file from the page cache; the reads through \
         the mounts are fio's O_DIRECT reads in figure 6's random run (1 job, completion latency). \
         CPUs not pinned.\n\n| part | median | p99 | samples |\n|---|---:|---:|---:|\n",
        img.name, f.path, f.extents
    );
    for p in parts {
        let mut row = vec![
            ("component", p.component.clone().into()),
            ("measured_as", p.what.into()),
            ("median_ns", p.ns.median.into()),
            ("p99_ns", p.ns.p99.into()),
            ("samples", p.ns.samples.into()),
        ];
        row.extend(ctx.machine_cols());
        t.push(row);
        body.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            p.component,
            Fmt::Nanos.format(p.ns.median),
            Fmt::Nanos.format(p.ns.p99),
            p.ns.samples
        ));
    }
    (t, body)
}

/// The lookup's share of a read, in user space and in the kernel (also appended to the body).
fn summary(parts: &[Part]) -> Vec<String> {
    let get = |c: &str| parts.iter().find(|p| p.component == c).map(|p| p.ns.median);
    let mut summary = Vec::new();
    if let (Some(l), Some(r)) = (
        get("tier lookup: learned"),
        get(&format!("read 4 KiB via {}", ours("learned"))),
    ) {
        let line = format!(
            "Read path: the learned lookup is {:.3}% of a 4 KiB read through our mount ({} of {}).",
            100.0 * l / r.max(1e-9),
            Fmt::Nanos.format(l),
            Fmt::Nanos.format(r)
        );
        summary.push(line);
    }
    if let (Some(k), Some(sys), Some(r)) = (
        get("BPF program run: learned model in the kernel"),
        get("BPF test-run syscall, 1 query"),
        get(&format!("read 4 KiB via {}", ours("learned"))),
    ) {
        let line = format!(
            "In the kernel: the BPF learned-model run takes {} per lookup (test-run harness included), \
             {:.2}% of a FUSE read round trip through our mount ({}); reached from user space by \
             one test-run syscall it costs {}.",
            Fmt::Nanos.format(k),
            100.0 * k / r.max(1e-9),
            Fmt::Nanos.format(r),
            Fmt::Nanos.format(sys)
        );
        summary.push(line);
    }
    summary
}

/// Figure 5: median and p99 of every part.
fn save_figure(ctx: &Ctx<'_>, img: &LoadedImage, f: &FileInfo, parts: &[Part]) -> Result<()> {
    let fig = Figure {
        title: format!(
            "Fig. 5: where the time of one 4 KiB read goes ({}:{})",
            img.name, f.path
        ),
        footer: ctx.footer(),
        panels: vec![Panel::Bars(BarPanel {
            title: "median and p99 per part".into(),
            value_desc: "time (log)".into(),
            log: true,
            fmt: Fmt::Nanos,
            categories: parts.iter().map(|p| p.component.clone()).collect(),
            series: vec![
                Bars {
                    label: "median".into(),
                    color: color(0),
                    values: parts.iter().map(|p| Some(p.ns.median)).collect(),
                    notes: Vec::new(),
                },
                Bars {
                    label: "p99".into(),
                    color: color(1),
                    values: parts.iter().map(|p| Some(p.ns.p99)).collect(),
                    notes: Vec::new(),
                },
            ],
            stacked: false,
            value_labels: true,
        })],
    };
    fig.save(ctx.fig_dir, FIG5_READ_PATH)?;
    Ok(())
}
