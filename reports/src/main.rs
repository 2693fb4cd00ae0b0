//! `reports`: runs the experiments of docs/design.md section 7 (lookup latency, accuracy, memory,
//! read path, end-to-end reads, training cost) and writes figures, tables and a Markdown report.

mod cmd;
mod exp;
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use cmd::pipeline::{Input, Options};
use cmd::{
    adversarial, bpf_latency, cache, huge, load, pipeline, readme, reads, results, structures,
};

/// Every allocation is counted, so each structure's bytes in the tables are measured, not
/// estimated (`structures::Structure::make`).
#[global_allocator]
static ALLOC: predictor::alloc::Counting = predictor::alloc::Counting;

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
    /// tree on 1 KiB blocks; as root also a kernel-made file of 10^6 extents and maps made by
    /// the kernel's allocator: random punches, interleaved appenders, a sparse disk, an SQLite
    /// database).
    ///
    /// Takes about two minutes in release mode (about four as root, 2 cores):
    /// cargo run --release -p reports -- demo
    /// Our FUSE mount is measured when a `server` binary sits next to `reports` (build both:
    /// cargo build --release -p server -p reports); fuse2fs and the kernel mount need root.
    Demo(Common),
    /// Run every experiment on your own ext4 image (opened read-only), or the lookup, memory,
    /// training and population experiments on the files of a mounted file system (--live).
    Run(RunArgs),
    /// Race every lookup structure (compact, learned, iext16, iext32, btree, sorted)
    /// and the per-file choice (chosen: the structure the cost rule picks, named in its form)
    /// on chosen files of an ext4 image (opened read-only): heap bytes counted by the
    /// allocator, median ns per lookup in the regimes warm-shared (uniform queries, the
    /// structures in turn), cold-evicted (caches evicted by reading twice the last-level cache
    /// before each lookup, the lookup's code warmed by the same lookup in a second build of the
    /// structure) and sequential.
    Structures(structures::Args),
    /// Drive a running `server serve` with random iomap queries from several clients over its
    /// Unix socket; prints queries per second and batch round-trip latency as JSON.
    Load(load::Args),
    /// Time lookups in the BPF program (in the kernel, BPF_PROG_TEST_RUN) beside the userspace
    /// learned index, iext tree and BTreeMap on the same files and queries; one JSON object
    /// per file. Needs root.
    BpfLatency(bpf_latency::Args),
    /// Read one file of an image with fio (4 KiB, O_DIRECT, random and sequential) through the
    /// kernel's ext4, fuse2fs and our FUSE mount with each tier; one JSON object per run.
    /// Needs root.
    Reads(reads::Args),
    /// Rewrite the generated sections: the README's answer (the committed demo report's first
    /// summary lines and run facts) and, in results/README.md, the report's whole summary and
    /// the results from results/results.json, so no number is quoted by hand; --check only
    /// says whether both are up to date (exit 1 if not).
    Readme(ReadmeArgs),
    /// Gather the measurements of `scripts/results.sh` (criterion's lookup bench, `reports
    /// bpf-latency`, `reports load`, `reports reads`, fuzz.sh) into results/results.json, with the commit
    /// and machine they came from; `reports readme` renders them into the README.
    Results(results::Args),
    /// Replay traces recorded by `training record` through fuse-iomap's mapping cache and the
    /// learned tier, per file and per cache budget: upcalls per 10^6 mapping queries, bytes
    /// held, cost of a map change, and stale answers (every answer is checked against the map
    /// at that moment; any stale answer fails the command).
    Cache(cache::Args),
    /// One file of 10^7 and 10^8 extents (--extents), the most fragmented a regular file gets:
    /// a synthetic map drawn from the steps (gaps, lengths, physical jumps) of a map the
    /// kernel's allocator made, through the compact learned index and the kernel-style iext
    /// tree (16-byte records): build rate, heap bytes counted by the allocator, uniform lookups
    /// warm and cold (as `reports structures` races them), a sample of answers checked; then
    /// the compact form loaded into the BPF program's u32-indexed maps, or declined with the
    /// loader's reason. Prints Markdown (or --json, one object per size) with the bars met or
    /// not met. 10^8 needs about 7 GB of memory and two minutes; the BPF part needs root.
    ///
    /// cargo build --release -p reports && target/release/reports huge --extents 10000000
    Huge(huge::Args),
    /// The worst extent maps a user can make on ext4 (fallocate, punch and writes on one file,
    /// the allocator steered by write order), searched per objective (a learned structure's
    /// bytes per extent, segments, fitting work, cache lines per lookup; random genomes then
    /// hill-climbing, deterministic in --seed); on each, every structure of `reports
    /// structures` and the per-file choice (`chosen`: the fewest bytes among the structures
    /// within 10% of the cheapest counted lookup cost, never more bytes than iext16) raced
    /// warm-shared, every answer checked against the sorted array.
    ///
    /// cargo build --release -p reports && target/release/reports adversarial
    Adversarial(adversarial::Args),
}

#[derive(Args, Debug)]
struct ReadmeArgs {
    /// The README to rewrite.
    #[arg(long, default_value = "README.md")]
    readme: PathBuf,
    /// The demo report it quotes.
    #[arg(long, default_value = "reports/demo/report.md")]
    report: PathBuf,
    /// The file holding the demo report's whole summary and the results section.
    #[arg(long, default_value = "results/README.md")]
    results_doc: PathBuf,
    /// The results file it quotes (written by `reports results`).
    #[arg(long, default_value = support::results::DEFAULT_FILE)]
    results: PathBuf,
    /// Change nothing; exit 1 if the README differs from what would be written.
    #[arg(long)]
    check: bool,
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
    #[arg(
        long,
        value_name = "IMAGE",
        required_unless_present = "live",
        conflicts_with = "live"
    )]
    image: Option<PathBuf>,
    /// Instead of an image: a file, or a directory whose regular files are all measured, on a
    /// mounted file system (any with FIEMAP: ext4, XFS, btrfs, ...). Maps are read with the
    /// FIEMAP ioctl (read-only; one file system; symbolic links not followed). Runs the
    /// lookup, memory, training and population experiments; there is no image to mount.
    #[arg(long, value_name = "PATH")]
    live: Option<PathBuf>,
    /// A model pack trained on IMAGE (by `training fit`); without it the image is trained here.
    #[arg(long, value_name = "PACK", conflicts_with = "live")]
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
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reports: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; errors go to `main`'s one printer.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    let (input, opts) = match command {
        Command::Readme(r) => return readme(&r),
        // The measurement commands print what they measured and are done.
        Command::Results(a) => return succeeded(results::run(&a)),
        Command::Structures(a) => return succeeded(structures::run(&a)),
        Command::Load(a) => return succeeded(load::run(&a)),
        Command::Reads(a) => return succeeded(reads::run(&a)),
        Command::BpfLatency(a) => return succeeded(bpf_latency::run(&a)),
        Command::Cache(a) => return succeeded(cache::run(&a)),
        Command::Huge(a) => return succeeded(huge::run(&a)),
        Command::Adversarial(a) => return succeeded(adversarial::run(&a)),
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
            match (r.image, r.live) {
                (_, Some(path)) => Input::Live { path },
                (Some(path), None) => Input::Image {
                    path,
                    models: r.models,
                },
                // clap makes one of the two required.
                (None, None) => anyhow::bail!("give --image IMAGE or --live PATH"),
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
    let report = pipeline::run(&input, &opts)?;
    println!("report: {}", report.display());
    println!("tables: {}", opts.tables.display());
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 after a command that returns nothing.
fn succeeded(r: anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    r.map(|()| ExitCode::SUCCESS)
}

/// `reports readme [--check]`.
fn readme(r: &ReadmeArgs) -> anyhow::Result<ExitCode> {
    let up_to_date = readme::run(&r.readme, &r.results_doc, &r.report, &r.results, r.check)?;
    Ok(if up_to_date {
        println!(
            "{} and {} are up to date with {}",
            r.readme.display(),
            r.results_doc.display(),
            r.report.display()
        );
        ExitCode::SUCCESS
    } else if r.check {
        eprintln!(
            "reports readme --check: {} or {} does not quote {}; run `reports readme`",
            r.readme.display(),
            r.results_doc.display(),
            r.report.display()
        );
        ExitCode::FAILURE
    } else {
        println!(
            "rewrote the generated sections of {} and {}",
            r.readme.display(),
            r.results_doc.display()
        );
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn allocations_are_counted() {
        assert!(predictor::alloc::installed());
        let (bytes, v) = predictor::alloc::counted(|| vec![0u64; 1000]);
        assert!(bytes >= 8000, "{bytes}");
        drop(v);
        let (bytes, ()) = predictor::alloc::counted(|| drop(vec![0u8; 1 << 20]));
        assert_eq!(bytes, 0, "a temporary is not kept");
    }
}
