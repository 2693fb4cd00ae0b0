//! `server`: an ext4 image served read-only over FUSE (`mount`), iomap queries over a Unix
//! socket (`serve`) and one query at a time (`query`), every block mapping answered by the
//! learned tier stack.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use server::{bpf_command, mount, query, serve};

/// Serves an ext4 image read-only, answering every block mapping with a learned model per file
/// (verified; a B-tree and the on-disk extent tree behind it).
///
/// Every command opens the image read-only; nothing is ever written to it. Logs go to stderr;
/// set IOMAP_LOG (e.g. IOMAP_LOG=debug) for more or less.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the mapping of one file range as JSON (in-process, or from `serve` via --socket).
    Query(query::QueryArgs),
    /// Mount the image read-only with FUSE, in the foreground, until unmounted or interrupted.
    Mount(mount::MountArgs),
    /// Answer batches of iomap queries on a Unix socket, until interrupted.
    Serve(serve::ServeArgs),
    /// The BPF tier: check the in-kernel program against the userspace learned index.
    Bpf(bpf_command::BpfArgs),
}

/// Log filter when IOMAP_LOG is unset. fuser's session warns "Failed to umount" at the end of
/// every session ended by an outside `umount` (it tries once more); that one is noise.
const DEFAULT_LOG: &str = "warn,server=info,fuser::session=error";

/// Every allocation counted, so the structures' bytes in the stats are measured, not estimated
/// (`predictor::stack::MemoryReport::counted`).
#[global_allocator]
static ALLOC: predictor::alloc::Counting = predictor::alloc::Counting;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IOMAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Query(args) => query::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bpf(args) => bpf_command::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
