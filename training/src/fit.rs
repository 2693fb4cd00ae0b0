//! `training fit`: every regular file -> model -> model pack, plus per-file statistics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use ext4::Fs;
use indicatif::{ProgressBar, ProgressStyle};
use predictor::model::{FitParams, ModelKind, DEFAULT_MAX_WINDOW};
use predictor::train::{self, FileStats, Trained};
use tables::Column;

use crate::SourceArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArg,
    /// Where to write the model pack.
    #[arg(short, long)]
    output: PathBuf,
    /// Largest search window (in extent slots) any model segment may have. Files whose extents
    /// one line cannot predict that well get more segments (PGM-style).
    #[arg(long, default_value_t = DEFAULT_MAX_WINDOW)]
    max_window: u32,
    /// Threads fitting files in parallel (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Also write the per-file statistics table (`<name>-files.parquet` and `.csv`, one row
    /// per file; columns in notebooks-data/README.md) into this directory. Nothing is written
    /// but the pack without it.
    #[arg(long, value_name = "DIR")]
    tables: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let params = FitParams {
        max_window: args.max_window,
        ..FitParams::default()
    };

    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} fitting: {pos} files, {msg} extents [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let extents_done = std::sync::atomic::AtomicU64::new(0);
    let progress = |n| {
        let total = extents_done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        bar.inc(1);
        bar.set_message(total.to_string());
    };
    let (source, trained, skipped) = match (&args.source.image, &args.source.live) {
        (_, Some(live)) => {
            let scan = crate::live::scan(live)?;
            if scan.fs.uuid.is_none() {
                tracing::warn!(
                    "{}: the file system does not tell its UUID; the pack is bound to the zero UUID and fits no image",
                    live.display()
                );
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            let trained = train::train_live(&scan, &params, jobs, &progress);
            (scan.root.clone(), trained, scan.skipped.len())
        }
        (Some(image), None) => {
            let fs =
                Fs::open_path(image).with_context(|| format!("opening {}", image.display()))?;
            bar.enable_steady_tick(Duration::from_millis(200));
            (
                image.clone(),
                train::train(&fs, &params, jobs, &progress),
                0,
            )
        }
        (None, None) => anyhow::bail!("give an image, or --live PATH"),
    };
    bar.finish_and_clear();
    let image = source.as_path();

    for e in &trained.errors {
        tracing::warn!(
            "{}: inode {} {}: {}",
            image.display(),
            e.ino,
            e.path,
            e.error
        );
    }
    trained
        .pack
        .write_file(&args.output)
        .with_context(|| format!("writing the model pack {}", args.output.display()))?;
    print_summary(image, &args.output, &trained, jobs);
    if let Some(dir) = &args.tables {
        let path = write_stats(dir, image, &trained.files)?;
        println!("per-file statistics: {}", path.display());
    }
    if skipped > 0 {
        eprintln!("training fit: {skipped} path(s) could not be read (see warnings above)");
    }
    if !trained.errors.is_empty() {
        eprintln!(
            "training fit: {} file(s) could not be trained (see warnings above); their queries fall to the B-tree and on-disk tiers",
            trained.errors.len()
        );
    }
    if skipped > 0 || !trained.errors.is_empty() {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// The value at quantile `q` of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn print_summary(image: &Path, pack: &Path, t: &Trained, jobs: usize) {
    let extents = t.extents();
    let count = |k: ModelKind| t.files.iter().filter(|f| f.kind == k).count();
    let mut windows: Vec<u64> = t
        .files
        .iter()
        .filter(|f| f.extents > 1)
        .map(|f| f.window_fixed)
        .collect();
    windows.sort_unstable();
    let fit: Duration = t.files.iter().map(|f| f.fit_time).sum();
    let read: Duration = t.files.iter().map(|f| f.read_time).sum();
    let secs = t.elapsed.as_secs_f64().max(1e-9);
    println!("source      {}", image.display());
    println!(
        "pack        {} ({} models)",
        pack.display(),
        t.pack.entries.len()
    );
    println!("files       {} ({} failed)", t.files.len(), t.errors.len());
    println!("extents     {extents}");
    println!(
        "models      {} empty, {} single-extent, {} linear, {} piecewise ({} segments in all)",
        count(ModelKind::Empty),
        count(ModelKind::Single),
        count(ModelKind::Linear),
        count(ModelKind::Piecewise),
        t.files.iter().map(|f| u64::from(f.segments)).sum::<u64>()
    );
    println!(
        "windows     p50 {}  p99 {}  max {} slots (files with 2+ extents, fixed point)",
        quantile(&windows, 0.5),
        quantile(&windows, 0.99),
        windows.last().copied().unwrap_or(0)
    );
    println!(
        "speed       {:.0} extents/s overall ({:.2} s wall, {jobs} jobs); fitting alone {:.0} extents/s per thread, {}",
        extents as f64 / secs,
        secs,
        extents as f64 / fit.as_secs_f64().max(1e-9),
        if read.is_zero() {
            // --live: FIEMAP read the maps before training started.
            "maps read before (FIEMAP)".to_string()
        } else {
            format!("reading {:.0} extents/s", extents as f64 / read.as_secs_f64())
        }
    );
    if let Some(kib) = peak_rss_kib() {
        println!("peak memory {:.1} MiB (resident)", kib as f64 / 1024.0);
    }
}

/// Peak resident memory of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes `<dir>/<stem>-files.{parquet,csv}` (the image's file stem, or the live directory's
/// name): one row per trained file.
fn write_stats(dir: &Path, image: &Path, files: &[FileStats]) -> Result<PathBuf> {
    let stem = image
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let col = |name: &str, v: Vec<u64>| Column::new(name, v);
    let df = tables::frame(vec![
        Column::new("ino", files.iter().map(|f| f.ino).collect::<Vec<_>>()),
        Column::new(
            "path",
            files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        ),
        col("size_bytes", files.iter().map(|f| f.size).collect()),
        Column::new(
            "extents",
            files.iter().map(|f| f.extents).collect::<Vec<_>>(),
        ),
        col("blocks", files.iter().map(|f| f.blocks).collect()),
        Column::new(
            "unwritten_extents",
            files.iter().map(|f| f.unwritten).collect::<Vec<_>>(),
        ),
        Column::new(
            "model_kind",
            files.iter().map(|f| kind_name(f.kind)).collect::<Vec<_>>(),
        ),
        Column::new(
            "segments",
            files.iter().map(|f| f.segments).collect::<Vec<_>>(),
        ),
        col(
            "window_float",
            files.iter().map(|f| f.window_float).collect(),
        ),
        col(
            "window_fixed",
            files.iter().map(|f| f.window_fixed).collect(),
        ),
        col("model_bytes", files.iter().map(|f| f.model_bytes).collect()),
        col(
            "read_ns",
            files
                .iter()
                .map(|f| f.read_time.as_nanos() as u64)
                .collect(),
        ),
        col(
            "fit_ns",
            files.iter().map(|f| f.fit_time.as_nanos() as u64).collect(),
        ),
    ])
    .context("building the statistics table")?;
    Ok(tables::write(dir, &format!("{stem}-files"), &df)?)
}

fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Empty => "empty",
        ModelKind::Single => "single",
        ModelKind::Linear => "linear",
        ModelKind::Piecewise => "piecewise",
    }
}
