//! Experiment 3: how wide the models' error windows are over all files of every image, and
//! which tier answers lookups when a server runs the learned stack (with the pack, audited
//! against the B-tree, and without a pack).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result};
use predictor::error::Chain;
use predictor::stack::StackStats;
use predictor::synth::Rng;
use predictor::{Models, Query, StackOptions, Tier, TierKind, TierStack};

use super::registry::{FIG3_ACCURACY, FIG3_ERROR_WINDOWS, FIG3_TIER_SHARES};
use super::{ratio, Ctx, Section};
use crate::support::images::{kind_name, LoadedImage};
use crate::support::plot::{color, BarPanel, Bars, Figure, Fmt, Panel};
use crate::support::table::Table;
use bpf::{load_stack, Limits};
use predictor::FrontTier;

/// Histogram bins of the largest window of a file's model, by upper bound (slots).
const BINS: [(u64, &str); 8] = [
    (2, "2"),
    (4, "3-4"),
    (8, "5-8"),
    (16, "9-16"),
    (32, "17-32"),
    (64, "33-64"),
    (128, "65-128"),
    (u64::MAX, "> 128"),
];

/// Category of a file in the histogram: no line (a map kept plain, or all arithmetic runs:
/// no model to search with) or its window's bin.
fn bin(segments: u32, window: u64) -> usize {
    if segments == 0 {
        return 0;
    }
    1 + BINS
        .iter()
        .position(|(hi, _)| window <= *hi)
        .unwrap_or(BINS.len() - 1)
}

/// Query streams of the tier-share runs.
#[derive(Debug, Clone, Copy)]
enum Stream {
    /// A random file (each equally likely), a random offset in it.
    Files,
    /// A random byte of all file data (big files get most queries, as reads would).
    Bytes,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Files => "file-uniform",
            Stream::Bytes => "byte-uniform",
        }
    }
}

/// `(ino, pos)` queries over the files of `img` with data.
fn queries(img: &LoadedImage, stream: Stream, n: usize, seed: u64) -> Vec<(u32, u64)> {
    let files: Vec<(u32, u64)> = img
        .files
        .iter()
        .filter(|f| f.size > 0)
        .map(|f| (f.ino, f.size))
        .collect();
    if files.is_empty() {
        return Vec::new();
    }
    let mut rng = Rng::new(seed);
    let mut cum = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for &(_, size) in &files {
        total += size;
        cum.push(total);
    }
    (0..n)
        .map(|_| match stream {
            Stream::Files => {
                let (ino, size) = files[rng.below(files.len() as u64) as usize];
                (ino, rng.below(size))
            }
            Stream::Bytes => {
                let b = rng.below(total);
                let i = cum.partition_point(|&c| c <= b).min(files.len() - 1);
                let (ino, size) = files[i];
                (ino, b - (cum[i] - size))
            }
        })
        .collect()
}

/// Runs experiment 3.
pub fn run(ctx: &Ctx<'_>) -> Result<Section> {
    ctx.bar.set_message("fig 3: error windows and tier shares");
    let mut skipped = Vec::new();
    let (windows, hist) = error_windows(ctx);
    let (scenarios, stale_note) = scenarios(ctx, &mut skipped);
    let mut body = intro(&stale_note);
    let shares = measure_tier_shares(ctx, scenarios)?;
    body.push_str(&shares.rows);
    let summary = summary(&shares);
    let TierShares {
        table,
        categories,
        values,
        bpf_unavailable,
        ..
    } = shares;
    save_figure(ctx, &hist, categories, values)?;
    body.push_str(&window_summary(ctx));
    if let Some(e) = bpf_unavailable {
        skipped.push(("fig 3: pack+bpf scenario".into(), e));
    }
    ctx.bar.inc(1);
    Ok(Section {
        title: "3. Accuracy: error windows and tier shares".into(),
        body,
        figures: vec![FIG3_ACCURACY.into()],
        tables: vec![windows, table],
        skipped,
        summary,
    })
}

/// The `fig3_error_windows` table, and per image the count of files in each histogram bin.
fn error_windows(ctx: &Ctx<'_>) -> (Table, Vec<Vec<u64>>) {
    let mut windows = Table::new(FIG3_ERROR_WINDOWS);
    let mut hist = vec![vec![0u64; BINS.len() + 1]; ctx.images.len()];
    for (k, img) in ctx.images.iter().enumerate() {
        for f in img.files.iter().filter(|f| f.extents > 0) {
            hist[k][bin(f.segments, f.window)] += 1;
            windows.push(vec![
                ("image", img.name.clone().into()),
                ("ino", f.ino.into()),
                ("path", f.path.clone().into()),
                ("extents", f.extents.into()),
                ("model_kind", kind_name(f.kind).into()),
                ("segments", f.segments.into()),
                ("max_window", f.window.into()),
                ("model_bytes", f.model_bytes.into()),
            ]);
        }
    }
    (windows, hist)
}

/// One tier-share run: an image, the name of its models, the file system it reads (the image's
/// own, or its stale copy), and whether the stack has the image's pack (and audits it).
type Scenario<'a> = (&'a LoadedImage, &'static str, Arc<ext4::Fs>, bool);

/// The tier-share runs, and the sentence of the text about the stale copy (empty without one).
/// Pushes to `skipped` why the stale copy could not be made.
fn scenarios<'a>(
    ctx: &Ctx<'a>,
    skipped: &mut Vec<(String, String)>,
) -> (Vec<Scenario<'a>>, String) {
    // Scenarios: every image with its pack (audited) and without; and, on the demo image with
    // the most files, a copy in which every 10th file was changed after training, so its pack
    // entry is stale and the B-tree must answer for it.
    // With "+bpf", the BPF program answers first (4096 queries per test run) and the learned
    // stack takes what it falls back on.
    let mut scenarios: Vec<Scenario<'a>> = Vec::new();
    for img in ctx.images {
        scenarios.push((img, "pack", Arc::clone(&img.fs), true));
        scenarios.push((img, "pack+bpf", Arc::clone(&img.fs), true));
        scenarios.push((img, "none", Arc::clone(&img.fs), false));
    }
    let mut stale_note = String::new();
    if let Some(img) = ctx
        .images
        .iter()
        .filter(|_| ctx.demo)
        .max_by_key(|i| i.files.len())
    {
        match stale_copy(ctx.work_dir, img) {
            Ok((fs, changed)) => {
                stale_note = format!(
                    " The `stale` rows use a copy of `{}` in which {changed} of its {} files were \
                     changed after training (one block punched), so their pack entries no longer \
                     match and the B-tree answers for them.",
                    img.name,
                    img.files.len()
                );
                scenarios.push((img, "stale", Arc::clone(&fs), true));
                scenarios.push((img, "stale+bpf", fs, true));
            }
            Err(e) => skipped.push(("fig 3: stale-pack scenario".into(), format!("{e:#}"))),
        }
    }
    (scenarios, stale_note)
}

/// The text before the tier-share table, and the table's header.
fn intro(stale_note: &str) -> String {
    format!(
        "Every regular file's model is trained with the default window bound ({} slots); its window \
         is the largest fixed-point window `e_lo + e_hi + 2` over its segments. Single-extent files \
         need no search. Tier shares: the learned stack (learned index -> BTreeMap -> on-disk walk) \
         answers 4 KiB `iomap_begin` queries, with the image's pack and audit mode on (every learned \
         answer re-computed by the B-tree), and without a pack (every query declined by the learned \
         tier). In the `pack+bpf` and `stale+bpf` rows the BPF program (the same models, in the kernel) answers first \
         and the stack answers what it falls back on.{stale_note}\n\n| image | models | stream | queries | BPF answered | learned answered | declined | missed | BTreeMap answered | on-disk answered | errors | audit mismatches |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        predictor::model::DEFAULT_MAX_WINDOW,
    )
}

/// Tiers of the stacked share bars, bottom to top.
const SHARE_TIERS: [TierKind; 4] = [
    TierKind::Front,
    TierKind::Learned,
    TierKind::Btree,
    TierKind::Ondisk,
];

/// What the tier-share runs hand to the text, the figure and the summary.
struct TierShares {
    /// The `fig3_tier_shares` table: one row per run and tier.
    table: Table,
    /// The runs' markdown table rows.
    rows: String,
    /// One bar per run: "image / models / stream".
    categories: Vec<String>,
    /// Per tier of [`SHARE_TIERS`], its share of the answers of each run.
    values: Vec<Vec<Option<f64>>>,
    /// Who answered the byte-uniform queries of each run with a pack, for the summary.
    headline: Vec<String>,
    /// Learned and BPF answers audited, and of those how many mismatched.
    audit: (u64, u64),
    /// Why the BPF program could not be loaded (its runs are left out), if so.
    bpf_unavailable: Option<String>,
}

/// Queries the learned stack of every scenario with both streams.
fn measure_tier_shares(ctx: &Ctx<'_>, scenarios: Vec<Scenario<'_>>) -> Result<TierShares> {
    let mut shares = TierShares {
        table: Table::new(FIG3_TIER_SHARES),
        rows: String::new(),
        categories: Vec::new(),
        values: vec![Vec::new(); SHARE_TIERS.len()],
        headline: Vec::new(),
        audit: (0, 0),
        bpf_unavailable: None,
    };
    for (img, models_name, fs, with_pack) in scenarios {
        let models = if with_pack {
            Models::Pack(&img.pack)
        } else {
            Models::None
        };
        let (stack, _) =
            TierStack::build(fs, Tier::Learned, models, StackOptions { audit: with_pack })
                .with_context(|| format!("building the learned stack of {}", img.path.display()))?;
        let in_kernel = if !models_name.ends_with(BPF_SUFFIX) {
            None
        } else if shares.bpf_unavailable.is_some() {
            continue;
        } else {
            match load_stack(&stack, Limits::default()) {
                Ok(t) => Some(t),
                Err(e) => {
                    shares.bpf_unavailable = Some(Chain(&e).to_string());
                    continue;
                }
            }
        };
        for stream in [Stream::Files, Stream::Bytes] {
            stack.reset_stats();
            let qs: Vec<Query> = queries(img, stream, ctx.scale.tier_queries, 5)
                .into_iter()
                .map(|(ino, pos)| Query::read(ino, pos, 4096))
                .collect();
            let front = in_kernel.as_ref().map(|t| t as &dyn FrontTier);
            let errors = stack
                .resolve(front, &qs)
                .iter()
                .filter(|r| r.is_err())
                .count() as u64;
            let run = ShareRun {
                img,
                models_name,
                with_pack,
                in_kernel: in_kernel.is_some(),
                stream,
                n: qs.len() as u64,
                errors,
            };
            shares.record(&run, &stack.stats());
        }
    }
    Ok(shares)
}

/// One stream's run of a scenario, as [`TierShares::record`] labels it.
struct ShareRun<'a> {
    img: &'a LoadedImage,
    models_name: &'static str,
    with_pack: bool,
    /// The BPF program answered first.
    in_kernel: bool,
    stream: Stream,
    /// Queries asked.
    n: u64,
    /// Queries that failed.
    errors: u64,
}

impl TierShares {
    /// Adds the counters `st` of `run` to the table, text, figure and summary.
    fn record(&mut self, run: &ShareRun<'_>, st: &StackStats) {
        let &ShareRun {
            img,
            models_name,
            with_pack,
            in_kernel,
            stream,
            n,
            errors,
        } = run;
        for kind in TierKind::ALL {
            let ts = st.tier(kind);
            self.table.push(vec![
                ("image", img.name.clone().into()),
                ("models", models_name.into()),
                ("stream", stream.name().into()),
                ("queries", n.into()),
                ("errors", errors.into()),
                ("tier", kind.name().into()),
                ("answered", ts.answered.into()),
                ("declined", ts.declined.into()),
                ("missed", ts.missed.into()),
                ("answered_share", ratio(ts.answered as f64, n as f64).into()),
                ("audit_checked", st.audit_checked.into()),
                ("audit_mismatches", st.audit_mismatches.into()),
            ]);
        }
        let l = st.tier(TierKind::Learned);
        self.audit.0 += st.audit_checked;
        self.audit.1 += st.audit_mismatches;
        let b = st.tier(TierKind::Front).answered;
        if with_pack && matches!(stream, Stream::Bytes) {
            let (who, count) = if in_kernel {
                ("BPF", b)
            } else {
                ("learned", l.answered)
            };
            self.headline.push(format!(
                "{} ({models_name}) {:.1}% {who}",
                img.name,
                100.0 * ratio(count as f64, n as f64)
            ));
        }
        self.rows.push_str(&format!(
            "| {} | {models_name} | {} | {n} | {b} ({:.1}%) | {} ({:.1}%) | {} | {} | {} | {} | {errors} | {} of {} |\n",
            img.name,
            stream.name(),
            100.0 * ratio(b as f64, n as f64),
            l.answered,
            100.0 * ratio(l.answered as f64, n as f64),
            l.declined,
            l.missed,
            st.tier(TierKind::Btree).answered,
            st.tier(TierKind::Ondisk).answered,
            st.audit_mismatches,
            st.audit_checked,
        ));
        self.categories
            .push(format!("{} / {models_name} / {}", img.name, stream.name()));
        for (v, kind) in self.values.iter_mut().zip(SHARE_TIERS) {
            v.push(Some(ratio(st.tier(kind).answered as f64, n as f64)));
        }
    }
}

/// Figure 3: the window histogram beside the stacked tier shares.
fn save_figure(
    ctx: &Ctx<'_>,
    hist: &[Vec<u64>],
    categories: Vec<String>,
    values: Vec<Vec<Option<f64>>>,
) -> Result<()> {
    let fig = Figure {
        title: "Fig. 3: model error windows over all files, and tier shares of the learned stack"
            .into(),
        footer: ctx.footer(),
        panels: vec![
            Panel::Bars(window_panel(ctx, hist)),
            Panel::Bars(share_panel(categories, values)),
        ],
    };
    fig.save(ctx.fig_dir, FIG3_ACCURACY)?;
    Ok(())
}

/// Files per window bin, one series per image (log scale).
fn window_panel(ctx: &Ctx<'_>, hist: &[Vec<u64>]) -> BarPanel {
    let mut cats = vec!["no line (plain array or runs)".to_string()];
    cats.extend(BINS.iter().map(|(_, l)| format!("window {l}")));
    BarPanel {
        title: "files by largest model window (slots)".into(),
        value_desc: "files (log)".into(),
        log: true,
        fmt: Fmt::Count,
        categories: cats,
        series: ctx
            .images
            .iter()
            .enumerate()
            .map(|(k, img)| Bars {
                label: img.name.clone(),
                color: color(k),
                values: hist[k]
                    .iter()
                    .map(|&c| (c > 0).then_some(c as f64))
                    .collect(),
                notes: Vec::new(),
            })
            .collect(),
        stacked: false,
        value_labels: true,
    }
}

/// Who answered each run's queries, stacked by tier.
fn share_panel(categories: Vec<String>, values: Vec<Vec<Option<f64>>>) -> BarPanel {
    BarPanel {
        title: "who answered 4 KiB iomap queries".into(),
        value_desc: "share of queries answered".into(),
        log: false,
        fmt: Fmt::Percent,
        categories,
        series: SHARE_TIERS
            .iter()
            .zip(values)
            .enumerate()
            .map(|(i, (kind, values))| Bars {
                label: tier_label(*kind).into(),
                color: color(tier_color(i)),
                values,
                notes: Vec::new(),
            })
            .collect(),
        stacked: true,
        value_labels: false,
    }
}

/// The markdown table of how many files need how wide a search, per image.
fn window_summary(ctx: &Ctx<'_>) -> String {
    let mut md = String::from("\n| image | files with extents | single extent | window <= 8 | window <= 32 | largest window |\n|---|---:|---:|---:|---:|---:|\n");
    for img in ctx.images {
        let fs: Vec<_> = img.files.iter().filter(|f| f.extents > 0).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            img.name,
            fs.len(),
            fs.iter().filter(|f| f.extents == 1).count(),
            fs.iter().filter(|f| f.extents > 1 && f.window <= 8).count(),
            fs.iter()
                .filter(|f| f.extents > 1 && f.window <= 32)
                .count(),
            fs.iter().map(|f| f.window).max().unwrap_or(0)
        ));
    }
    md
}

/// The summary line: tier shares with a pack, and the audit's count.
fn summary(shares: &TierShares) -> Vec<String> {
    vec![format!(
        "Tier shares with the pack, and with a pack gone stale for every 10th file (byte-uniform 4 KiB queries): {}. Audit: {} mismatches in {} checked learned and BPF answers.",
        shares.headline.join("; "),
        shares.audit.1,
        shares.audit.0
    )]
}

/// Copies `img` (sparse) into `work` and changes every 10th file with data after training
/// (punches its first block with debugfs), so the pack's entries for those files are stale.
/// Returns the opened copy and how many files changed.
fn stale_copy(work: &Path, img: &LoadedImage) -> Result<(Arc<ext4::Fs>, usize)> {
    let copy = work.join(format!("{}-stale.img", img.name));
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(&img.path)
        .arg(&copy)
        .status()
        .context("running cp")?;
    anyhow::ensure!(
        status.success(),
        "cp {} {} failed: {status}",
        img.path.display(),
        copy.display()
    );
    let changed: Vec<&str> = img
        .files
        .iter()
        .filter(|f| f.extents > 0 && f.size > u64::from(img.fs.block_size()))
        .step_by(10)
        .map(|f| f.path.as_str())
        .collect();
    let script = work.join(format!("{}-stale.debugfs", img.name));
    let text: String = changed.iter().map(|p| format!("punch {p} 0 0\n")).collect();
    std::fs::write(&script, text).with_context(|| format!("writing {}", script.display()))?;
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&copy)
        .output()
        .context("running debugfs (e2fsprogs)")?;
    anyhow::ensure!(
        out.status.success(),
        "debugfs -w -f {} {} failed: {}",
        script.display(),
        copy.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let fs = ext4::Fs::open_path(&copy).with_context(|| format!("opening {}", copy.display()))?;
    Ok((Arc::new(fs), changed.len()))
}

fn tier_label(k: TierKind) -> &'static str {
    match k {
        TierKind::Learned => "learned index",
        TierKind::Btree => "BTreeMap",
        TierKind::Ondisk => "on-disk walk",
        TierKind::Sorted => "sorted array",
        TierKind::RangeMap => "rangemap",
        TierKind::Iext => "iext tree",
        TierKind::Compact => "compact learned index",
        TierKind::Front => "BPF program",
    }
}

/// Same colours as the structures in figure 1 (BPF, learned, BTreeMap, on-disk walk).
fn tier_color(i: usize) -> usize {
    [6, 0, 3, 7][i.min(3)]
}

/// Ends the names of the scenarios with the BPF tier in front of the stack.
const BPF_SUFFIX: &str = "+bpf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins() {
        assert_eq!(bin(0, 0), 0);
        assert_eq!(bin(5, 2), 1);
        assert_eq!(bin(5, 3), 2);
        assert_eq!(bin(5, 32), 5);
        assert_eq!(bin(5, 1000), BINS.len());
    }
}
