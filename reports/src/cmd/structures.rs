//! `reports structures`: the race of [`crate::support::race`] on chosen files of an image, one
//! row per file and structure.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ext4::{Extent, Fs};
use predictor::error::Chain;
use predictor::regime::Regime;

use crate::support::datasets::{Dataset, ImageFile, Source};
use crate::support::race::{measure_with, Effort, Evictor, Row};

/// The command's arguments (`reports structures`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The ext4 image, opened read-only.
    pub image: PathBuf,
    /// A file to measure (absolute path in the image); repeat for more. Default: every regular
    /// file with at least --min-extents extents.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Smallest extent count measured when no --path is given.
    #[arg(long, default_value_t = 1000)]
    pub min_extents: usize,
    /// One JSON object per line (keys: file, extents, structure, bytes, bytes_per_extent,
    /// ns_warm_shared, ns_cold_evicted, ns_sequential) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Toy scale (a few samples; numbers are not meaningful).
    #[arg(long)]
    pub quick: bool,
}

/// `reports structures`: measures the chosen files of an image and prints one row per file and
/// structure.
pub fn run(args: &Args) -> Result<()> {
    let fs = std::sync::Arc::new(
        Fs::open_path(&args.image).with_context(|| format!("opening {}", args.image.display()))?,
    );
    let files = chosen_files(&fs, args)?;
    if files.is_empty() {
        anyhow::bail!(
            "{}: no regular file with at least {} extents (give --path or a lower --min-extents)",
            args.image.display(),
            args.min_extents
        );
    }
    let effort = if args.quick {
        Effort::quick()
    } else {
        Effort::full()
    };
    let evictor = Evictor::new()?;
    tracing::info!(
        bytes = evictor.bytes(),
        "eviction buffer for the cold regime"
    );
    let bar = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !args.json {
        println!(
            "{:<32} {:>9} {:<16} {:>12} {:>7} {:>12} {:>12} {:>12}  form",
            "file",
            "extents",
            "structure",
            "bytes",
            "B/ext",
            Regime::WarmShared.name(),
            Regime::ColdEvicted.name(),
            Regime::Sequential.name()
        );
    }
    for (path, inode, extents) in files {
        bar.set_message(path.clone());
        let d = Dataset {
            name: path.clone(),
            source: Source::Image,
            extents,
            file: Some(ImageFile {
                fs: fs.clone(),
                inode,
            }),
            model: None,
        };
        for r in measure_with(&d, &path, &effort, &evictor, true) {
            bar.suspend(|| print_row(&r, args.json));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

fn print_row(r: &Row, json: bool) {
    crate::support::rows::print_row(r, json, |r| {
        format!(
            "{:<32} {:>9} {:<16} {:>12} {:>7.2} {:>12.1} {:>12.1} {:>12.1}  {}\n",
            r.file,
            r.extents,
            r.structure,
            r.bytes,
            r.bytes_per_extent,
            r.ns_warm_shared,
            r.ns_cold_evicted,
            r.ns_sequential,
            r.form
        )
    });
}

/// The files named by `--path`, or every regular file with at least `min_extents` extents.
fn chosen_files(fs: &Fs, args: &Args) -> Result<Vec<(String, ext4::Inode, Vec<Extent>)>> {
    if !args.paths.is_empty() {
        return args
            .paths
            .iter()
            .map(|p| {
                let ctx = || format!("{}: {p}", args.image.display());
                let inode = fs.lookup_path(p).with_context(ctx)?;
                let extents = fs.extents(&inode).with_context(ctx)?;
                Ok((p.clone(), inode, extents))
            })
            .collect();
    }
    let (files, errors) = predictor::train::regular_files(fs);
    for e in &errors {
        tracing::warn!(ino = e.ino, path = %e.path, error = %e.error, "file skipped");
    }
    let mut out = Vec::new();
    for (path, inode) in files {
        match fs.extents(&inode) {
            Ok(e) if e.len() >= args.min_extents => out.push((path, inode, e)),
            Ok(_) => {}
            Err(e) => tracing::warn!(path, error = %Chain(&e), "extents unreadable; file skipped"),
        }
    }
    Ok(out)
}
