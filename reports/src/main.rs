//! `reports`: runs the experiments of DESIGN section 7 (lookup latency, accuracy, memory,
//! read path, end-to-end reads, training cost) and writes figures, tables and a Markdown report.

mod bpf;
mod datasets;
mod exp;
mod images;
mod machine;
mod mounts;
mod pipeline;
mod plot;
mod reads;
mod report;
mod structures;
mod table;
mod timing;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use pipeline::{Input, Options};

/// Measures learned extent lookups against B-trees and the on-disk walk, and writes a report.
///
/// Each run trains models for its images, times every lookup structure side by side, reads
/// files end to end through the kernel, fuse2fs and our FUSE mount (where it can), and writes
/// figures (PNG + SVG) with a Markdown report, plus the tables behind them (Parquet + CSV).
/// Logs go to stderr; set IOMAP_LOG (e.g. IOMAP_LOG=debug) for more.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every experiment on the built-in demo images (built in seconds in a temporary
    /// directory: 2000 ordinary files, a file with 10^5 extents, unwritten extents, a depth-3
    /// tree on 1 KiB blocks; plus a kernel-made file of 10^6 extents when run as root).
    ///
    /// Takes about two minutes in release mode: cargo run --release -p reports -- demo
    /// Our FUSE mount is measured when a `server` binary sits next to `reports` (build both:
    /// cargo build --release -p server -p reports); fuse2fs and the kernel mount need root.
    Demo(Common),
    /// Run every experiment on your own ext4 image (opened read-only).
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct Common {
    /// Directory for report.md and the figures.
    #[arg(short, long, default_value = "reports/demo")]
    output: PathBuf,
    /// Directory for the tables (Parquet + CSV; columns in notebooks-data/README.md).
    #[arg(long, default_value = "notebooks-data/demo")]
    tables: PathBuf,
    /// Toy scale: every experiment, table and figure in seconds (for tests; numbers are not
    /// meaningful).
    #[arg(long)]
    quick: bool,
    /// The `server` binary for the FUSE experiments (default: next to this binary, or on PATH).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Keep the scratch directory with the images and model packs (its path is printed).
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The ext4 image to measure, opened read-only.
    #[arg(long, value_name = "IMAGE")]
    image: PathBuf,
    /// A model pack trained on IMAGE (by `training fit`); without it the image is trained here.
    #[arg(long, value_name = "PACK")]
    models: Option<PathBuf>,
    /// Directory for report.md and the figures.
    #[arg(short, long)]
    output: PathBuf,
    /// Directory for the tables (default: OUTPUT/tables).
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Toy scale (seconds).
    #[arg(long)]
    quick: bool,
    /// The `server` binary for the FUSE experiments (default: next to this binary, or on PATH).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Keep the scratch directory with the model pack (its path is printed).
    #[arg(long)]
    keep: bool,
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
    let (input, opts) = match cli.command {
        Command::Demo(c) => (
            Input::Demo,
            Options {
                out: c.output,
                tables: c.tables,
                quick: c.quick,
                server: c.server,
                keep: c.keep,
            },
        ),
        Command::Run(r) => (
            Input::Image {
                path: r.image,
                models: r.models,
            },
            Options {
                tables: r.tables.unwrap_or_else(|| r.output.join("tables")),
                out: r.output,
                quick: r.quick,
                server: r.server,
                keep: r.keep,
            },
        ),
    };
    match pipeline::run(&input, &opts) {
        Ok(report) => {
            println!("report: {}", report.display());
            println!("tables: {}", opts.tables.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reports: {}", predictor::error::chain_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
