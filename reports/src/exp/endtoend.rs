//! Experiment 6: end-to-end 4 KiB reads of the most fragmented file through the kernel's ext4
//! (loop mount), fuse2fs, and our `server mount` with each tier, by fio ([`crate::support::fio`]):
//! O_DIRECT, one job, a bounded time per run. Whatever cannot run here (not root, no fio or
//! fuse2fs, no server binary) is skipped with the reason in the report.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::registry::FIG6_END_TO_END;
use super::{Ctx, Section};
use crate::support::fio::{DataSpans, Fio, Pattern, ReadRun};
use crate::support::images::{FileInfo, LoadedImage};
use crate::support::mounts::{ours, Systems, FUSE2FS};
use crate::support::plot::{color, BarPanel, Bars, Figure, Fmt, Panel};
use crate::support::rows::met;
use crate::support::table::Table;

/// Tiers our mount is run with, slowest first.
pub const OUR_TIERS: [&str; 3] = ["ondisk", "btree", "learned"];

/// One system's runs.
#[derive(Debug)]
pub struct SystemRuns {
    /// Display name ("kernel ext4 (loop)", "fuse2fs", "ours: learned").
    pub system: String,
    /// Our tier, or "" for the others.
    pub tier: String,
    /// Random and sequential runs.
    pub runs: Vec<(Pattern, ReadRun)>,
}

/// What experiment 6 measured, for experiment 5.
#[derive(Debug, Default)]
pub struct EndToEnd {
    /// Per system.
    pub systems: Vec<SystemRuns>,
}

impl EndToEnd {
    /// The random-read run of `system`.
    pub fn random(&self, system: &str) -> Option<&ReadRun> {
        self.systems
            .iter()
            .find(|s| s.system == system)
            .and_then(|s| {
                s.runs
                    .iter()
                    .find(|(p, _)| *p == Pattern::Random)
                    .map(|(_, r)| r)
            })
    }
}

/// Runs experiment 6 on file `f` of `img`. Every system is mounted at once and the runs go
/// round-robin (each round: every system, random then sequential), so drift in the machine's
/// state (other load, CPU frequency) is spread over all systems instead of favouring one.
pub fn run(ctx: &Ctx<'_>, img: &LoadedImage, f: &FileInfo) -> Result<(Section, EndToEnd)> {
    // Random reads go to written data only (see `DataSpans`); holes read as zeros, which the
    // kernel serves without I/O and a FUSE server after one lookup.
    let extents = img
        .fs
        .inode(f.ino)
        .and_then(|i| img.fs.extents(&i))
        .with_context(|| format!("{}: extents of {}", img.path.display(), f.path))?;
    let data = DataSpans::new(&extents, img.fs.block_size(), f.size);
    let holes = 100.0 * (1.0 - data.bytes().min(f.size) as f64 / f.size.max(1) as f64);
    let (e2e, skipped) = measure(ctx, img, f, &data)?;

    // The median random read through our mount, per tier: what one lookup is a part of.
    let our_reads: Vec<f64> = e2e
        .systems
        .iter()
        .filter(|s| !s.tier.is_empty())
        .filter_map(|s| s.runs.iter().find(|(p, _)| *p == Pattern::Random))
        .filter_map(|(_, r)| r.latencies.summary().map(|s| s.median / 1e3))
        .collect();
    let read_us = match (
        our_reads.iter().copied().reduce(f64::min),
        our_reads.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!(
            "; a random read through our mount took {lo:.1} to {hi:.1} us (median) in this run"
        ),
        _ => String::new(),
    };
    let mut t = Table::new(FIG6_END_TO_END);
    let mut body = format!(
        "4 KiB reads of `{}:{}` ({} extents, {} MiB) by fio (`--bs=4k --direct=1 \
         --ioengine=psync`: O_DIRECT, each read reaches the file system; the image file itself \
         sits in the host page cache), **1 job** (one thread, synchronous `pread`), {:.1} s per system and pattern in {} round-robin rounds over all systems, after a \
         short warm-up. Our mount runs with {} FUSE threads. \
         {holes:.0}% of the file's bytes are holes, which read as zeros without I/O in the kernel: \
         random reads go to 4 KiB-aligned offsets inside written extents only (fio replays a \
         generated I/O log of them); sequential reads (`--rw=read`) run through the whole file, \
         holes included. Latencies are fio's completion latencies. Our three tiers differ only in one lookup per \
         read, which figure 5 sets against the read itself{read_us}, so their throughput \
         differences are mostly run-to-run noise (FUSE wake-ups dominate): compare the medians. The kernel's reads \
         go through the loop device: each becomes a read of the image file by a loop worker thread, \
         which runs where the scheduler puts it: unpinned, a read wakes the other CPU and is \
         woken back from it, and waking an idle virtual CPU is costly under a hypervisor, which \
         is why the kernel's path can read slower than fuse2fs here (compare the pinned column of \
         `reports reads --pin same` in results/README.md, fio and the file system on one CPU). \
         Its extent lookups are not the cost: ext4's extent status cache answers them without \
         walking the tree. \
         With one job a read is in flight at a time, so IOPS x mean latency is the share of the \
         run spent inside reads (the rest is fio's own work between them), and a median below \
         the mean is a tail of slow reads (wake-ups of the other threads on these 2 CPUs).\n\n\
         | system | pattern | MB/s | IOPS | median us | mean us | p99 us | IOPS x mean |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
        img.name,
        f.path,
        f.extents,
        f.size >> 20,
        ctx.scale.e2e_time.as_secs_f64(),
        ctx.scale.e2e_rounds.max(1),
        ctx.scale.server_threads
    );
    for s in &e2e.systems {
        for (pattern, r) in &s.runs {
            let sum = r.latencies.summary();
            let (med, mean, p99) = sum.map_or((0.0, 0.0, 0.0), |s| {
                (s.median / 1e3, s.mean / 1e3, s.p99 / 1e3)
            });
            let busy = r.iops() * mean / 1e6;
            let mut row = vec![
                ("system", s.system.clone().into()),
                ("tier", s.tier.clone().into()),
                ("pattern", pattern.name().into()),
                ("image", img.name.clone().into()),
                ("file", f.path.clone().into()),
                ("extents", f.extents.into()),
                ("jobs", 1u64.into()),
                ("seconds", r.elapsed.as_secs_f64().into()),
                ("reads", r.reads.into()),
                ("mb_per_s", r.mb_per_s().into()),
                ("iops", r.iops().into()),
                ("median_us", med.into()),
                ("mean_us", mean.into()),
                ("p99_us", p99.into()),
            ];
            row.extend(ctx.machine_cols());
            t.push(row);
            body.push_str(&format!(
                "| {} | {} | {:.1} | {:.0} | {med:.1} | {mean:.1} | {p99:.1} | {busy:.2} |\n",
                s.system,
                pattern.name(),
                r.mb_per_s(),
                r.iops(),
            ));
        }
    }
    let speed = |sys: &str| e2e.random(sys).map(ReadRun::mb_per_s);
    let mut summary = vec![format!(
        "End to end, random 4 KiB O_DIRECT reads, 1 job: {}.",
        e2e.systems
            .iter()
            .filter_map(|s| e2e.random(&s.system).map(|r| format!(
                "{} {:.1} MB/s ({:.0} IOPS)",
                s.system,
                r.mb_per_s(),
                r.iops()
            )))
            .collect::<Vec<_>>()
            .join("; ")
    )];
    if let (Some(o), Some(f2)) = (speed(&ours("learned")), speed(FUSE2FS)) {
        let x = o / f2.max(1e-9);
        let line = format!(
            "Random reads: our mount (learned tier) is **{x:.2}x** fuse2fs (bar: at least 2x: {}).",
            met(x >= 2.0)
        );
        body.push_str(&format!("\n{line}\n"));
        summary.push(line);
    }
    let figures = figure(ctx, img, f, &e2e)?;
    Ok((
        Section {
            title: "6. End-to-end read throughput".into(),
            body,
            figures,
            tables: vec![t],
            skipped: skipped
                .into_iter()
                .map(|(w, r)| (format!("fig 6: {w}"), r))
                .collect(),
            summary,
        },
        e2e,
    ))
}

/// Mounts every system and times fio's random and sequential reads of `f` through each, in
/// round-robin rounds; what could not be mounted, and why.
fn measure(
    ctx: &Ctx<'_>,
    img: &LoadedImage,
    f: &FileInfo,
    data: &DataSpans,
) -> Result<(EndToEnd, Vec<(String, String)>)> {
    let mut e2e = EndToEnd::default();
    let tiers = OUR_TIERS.map(String::from);
    let systems = Systems {
        image: &img.path,
        pack: &img.pack_path,
        kernel_mountable: img.kernel_mountable,
        tiers: &tiers,
        server: ctx.server,
        fuse2fs: ctx.fuse2fs,
        threads: ctx.scale.server_threads,
        cpu: None,
    };
    let (mounted, skipped) = match ctx.fio {
        Some(_) => {
            ctx.bar.set_message(format!("fig 6: mounting {}", img.name));
            systems.mount()
        }
        None => (
            Vec::new(),
            vec![(
                "every system".into(),
                "fio not found (Debian package fio)".into(),
            )],
        ),
    };
    let patterns = [Pattern::Random, Pattern::Sequential];
    let rounds = ctx.scale.e2e_rounds.max(1);
    let slice = ctx.scale.e2e_time / rounds;
    let files: Vec<PathBuf> = mounted
        .iter()
        .map(|s| s.mounted.host_path(&f.path))
        .collect();
    let fio = |file, time, seed| Fio {
        fio: ctx.fio.unwrap_or("fio".as_ref()),
        file,
        size: f.size,
        data,
        time,
        jobs: 1,
        cpu: None,
        seed,
    };
    // A short unrecorded run first: mount-time lazy work (inode and directory loads, FUSE
    // lookups, the kernel reading the extent tree) stays out of the numbers.
    for (s, file) in mounted.iter().zip(&files) {
        for p in patterns {
            fio(file, slice / 5, 99)
                .run(p)
                .with_context(|| format!("warming up {}", s.name))?;
        }
    }
    let mut runs: Vec<Vec<Option<ReadRun>>> = vec![vec![None, None]; mounted.len()];
    for round in 0..rounds {
        for ((s, file), out) in mounted.iter().zip(&files).zip(&mut runs) {
            for (k, p) in patterns.into_iter().enumerate() {
                ctx.bar.set_message(format!(
                    "fig 6: round {}/{rounds}, {} reads through {}",
                    round + 1,
                    p.name(),
                    s.name
                ));
                let r = fio(file, slice, u64::from(round) * 2 + k as u64 + 1)
                    .run(p)
                    .with_context(|| format!("reading through {}", s.name))?;
                out[k] = Some(match out[k].take() {
                    Some(prev) => prev.merge(r),
                    None => r,
                });
            }
        }
    }
    for (s, out) in mounted.iter().zip(runs) {
        e2e.systems.push(SystemRuns {
            system: s.name.clone(),
            tier: s.tier.clone(),
            runs: patterns
                .into_iter()
                .zip(out)
                .filter_map(|(p, r)| r.map(|r| (p, r)))
                .collect(),
        });
    }
    drop(mounted);
    ctx.bar.inc(5);

    Ok((e2e, skipped))
}

/// Figure 6: MB/s per system, random and sequential. Its name, if drawn.
fn figure(ctx: &Ctx<'_>, img: &LoadedImage, f: &FileInfo, e2e: &EndToEnd) -> Result<Vec<String>> {
    let mut figures = Vec::new();
    if !e2e.systems.is_empty() {
        let categories: Vec<String> = e2e.systems.iter().map(|s| s.system.clone()).collect();
        let panels = [Pattern::Random, Pattern::Sequential]
            .iter()
            .enumerate()
            .map(|(k, p)| {
                Panel::Bars(BarPanel {
                    title: format!("{} 4 KiB reads, O_DIRECT, 1 job", p.name()),
                    value_desc: "MB/s".into(),
                    log: false,
                    fmt: Fmt::Plain,
                    categories: categories.clone(),
                    series: vec![Bars {
                        label: String::new(),
                        color: color(k),
                        values: e2e
                            .systems
                            .iter()
                            .map(|s| {
                                s.runs
                                    .iter()
                                    .find(|(q, _)| q == p)
                                    .map(|(_, r)| r.mb_per_s())
                            })
                            .collect(),
                        notes: e2e
                            .systems
                            .iter()
                            .map(|s| {
                                s.runs.iter().find(|(q, _)| q == p).map_or_else(
                                    String::new,
                                    |(_, r)| {
                                        format!(
                                            "{:.0} MB/s, {:.0}k IOPS",
                                            r.mb_per_s(),
                                            r.iops() / 1e3
                                        )
                                    },
                                )
                            })
                            .collect(),
                    }],
                    stacked: false,
                    value_labels: true,
                })
            })
            .collect();
        let fig = Figure {
            title: format!(
                "Fig. 6: end-to-end read throughput on {}:{} ({} extents)",
                img.name, f.path, f.extents
            ),
            footer: ctx.footer(),
            panels,
        };
        fig.save(ctx.fig_dir, FIG6_END_TO_END)?;
        figures.push(FIG6_END_TO_END.into());
    }
    Ok(figures)
}
