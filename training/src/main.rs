//! `training`: image -> extent maps -> fitted models -> model pack.

mod dump;
mod fit;
mod live;
mod record;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Learns per-file models of an ext4 image's extent maps.
///
/// Every command opens the image read-only; nothing is ever written to it.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the extent map of every regular file (or of one file).
    ///
    /// `jsonl` prints one object per file:
    /// {"ino":12,"path":"/big","size":67108864,"extents":[[lblk,pblk,len,unwritten],...]}
    /// (blocks of the file system's block size). `debugfs` prints the leaf lines of
    /// `debugfs -R "ex PATH"` (same columns and widths, index nodes left out) so the two can be
    /// diffed. With --live, the maps of files on a mounted file system, in the same JSON lines
    /// with absolute paths.
    Dump(dump::Args),
    /// Fit a model to every regular file and write a model pack.
    ///
    /// Each file gets the learned tier's model and the compact tier's lines (fitted over the
    /// extents between arithmetic runs), so neither tier fits at mount.
    ///
    /// Prints a summary (files, extents, model kinds, window sizes, speed, peak memory); with
    /// --tables, also writes per-file statistics as a table (Parquet + CSV). With --live, fits
    /// the files of a mounted file system; on ext4 the pack then fits that file system's image.
    Fit(fit::Args),
    /// Record a trace of a workload on ext4 from the kernel's tracepoints (root).
    ///
    /// Runs a built-in workload on a fresh ext4 image (or --command on your own ext4 mounted at
    /// --mount, with nodelalloc) and records, per file and in order, the mapping queries it
    /// makes (ext4's extent-status lookups) and every change of its map (allocation,
    /// unwritten-to-written conversion, punch, collapse, insert, truncate), plus FIEMAP's maps
    /// at the start and at checkpoints. The changes must rebuild every checkpoint's map
    /// exactly, and no event may be lost, or there is no trace. Written as Parquet; replayed
    /// by `reports cache`.
    Record(record::Args),
}

/// Where the extent maps come from: an image, or a live (mounted) file system.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct SourceArg {
    /// The ext2/3/4 image file (or block device), opened read-only.
    image: Option<PathBuf>,
    /// Instead of an image: a file on a mounted file system, or a directory whose regular
    /// files are all read (one file system: mounts below it are not entered, symbolic links
    /// are not followed; unreadable files are reported and skipped). Read through the FIEMAP
    /// ioctl, read-only: no file is opened for writing.
    #[arg(long, value_name = "PATH")]
    live: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IOMAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump::run(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Record(args) => record::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("training: {e:#}");
            ExitCode::FAILURE
        }
    }
}
