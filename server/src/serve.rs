//! `server serve`: answers batches of `iomap_begin` queries on a Unix socket (format in
//! [`predictor::wire`]), one thread per connection, every query through the shared tier stack.

use std::io::{BufReader, BufWriter, ErrorKind, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use predictor::error::Chain;
use predictor::{Query, QueryError};

use bpf::TierChoice;

use crate::image;
use crate::signals;
use crate::stats::{Counter, Stats};
use predictor::wire::{self, BeginIn, HeaderStatus, Reply, Status, WireError};

/// Arguments of `server serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = help())]
pub struct ServeArgs {
    /// The ext4 image, read-only.
    image: PathBuf,
    /// Model pack trained on this image. Without it the learned tier declines every query
    /// (the compact tier fits its lines at load).
    #[arg(long, value_name = "PACK")]
    models: Option<PathBuf>,
    /// Unix socket to listen on (a stale socket file is replaced; a live one is an error).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Tier stack that answers.
    #[arg(long, value_parser = image::tier_parser(), default_value = "learned")]
    tier: TierChoice,
    /// Answer each batch with the BPF program first, in one in-kernel run, and the predictor's
    /// userspace tiers for what it falls back on (same as --tier bpf; needs CAP_BPF, and
    /// without it the userspace tiers answer alone).
    #[arg(long, conflicts_with = "tier")]
    bpf: bool,
    /// Check every predictor (and BPF) answer against the B-tree; mismatches are counted in
    /// the stats.
    #[arg(long)]
    audit: bool,
    /// Write counters and latency histograms here at exit (and on SIGUSR1), as JSON.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Connections served at once; more are answered "busy" and closed.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_clients: usize,
    /// Close a connection that sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_timeout: u64,
}

/// The `--help` epilogue: the protocol (from its own code tables) and how to stop the service.
fn help() -> String {
    format!(
        "{}\nCtrl-C or SIGTERM stops the service and removes the socket; SIGUSR1 writes \
         --stats-json.\nClient: server query --socket PATH --ino N --pos BYTES",
        wire::summary()
    )
}

/// Runs `server serve` until SIGINT / SIGTERM.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let tier = if args.bpf { TierChoice::BPF } else { args.tier };
    let loaded = image::open(&args.image, args.models.as_deref(), tier, args.audit)?;
    let stats = Arc::new(Stats::new(&loaded)?);
    let listener = bind(&args.socket)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (stop, socket) = (stop.clone(), args.socket.clone());
        let (stats, dump) = (stats.clone(), args.stats_json.clone());
        signals::spawn(
            move |_| {
                stop.store(true, Ordering::SeqCst);
                // Wake the accept loop with a connection of our own.
                let _ = UnixStream::connect(&socket);
            },
            move || write_stats(&stats, dump.as_deref()),
        )?;
    }
    tracing::info!(socket = %args.socket.display(), tier = tier.name(), "serving iomap queries");
    let active = Arc::new(AtomicUsize::new(0));
    let idle = Duration::from_secs(args.idle_timeout.max(1));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        stats.add(Counter::Connections, 1);
        if active.load(Ordering::SeqCst) >= args.max_clients {
            let _ = conn.write_all(&wire::reply_header(HeaderStatus::Busy, 0));
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (stats, active) = (stats.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                let _ = conn.set_read_timeout(Some(idle));
                if let Err(e) = serve_connection(&stats, conn) {
                    tracing::debug!(error = %e, "connection ended");
                }
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a connection thread");
        }
    }
    if let Err(e) = std::fs::remove_file(&args.socket) {
        tracing::warn!(socket = %args.socket.display(), error = %e, "could not remove the socket");
    }
    write_stats(&stats, args.stats_json.as_deref());
    Ok(())
}

fn write_stats(stats: &Stats, path: Option<&Path>) {
    if let Some(path) = path {
        match stats.write(path) {
            Ok(()) => tracing::info!(path = %path.display(), "stats written"),
            Err(e) => tracing::error!(path = %path.display(), error = %e, "writing stats"),
        }
    }
}

/// Binds the socket, replacing a stale socket file but never a live one or another file.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{}: exists and is not a socket; not replacing it",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "{}: another server is listening on this socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))
}

/// Answers batches until the peer closes, times out or sends a bad header.
fn serve_connection(stats: &Stats, conn: UnixStream) -> Result<(), WireError> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = BufWriter::new(conn);
    loop {
        let queries = match wire::read_request(&mut reader) {
            Ok(Some(q)) => q,
            Ok(None) => return Ok(()),
            Err(WireError::Header(status)) => {
                stats.add(Counter::BadMessages, 1);
                tracing::debug!(?status, "bad message; closing the connection");
                writer.write_all(&wire::reply_header(status, 0))?;
                writer.flush()?;
                return Err(WireError::Header(status));
            }
            Err(WireError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Ok(()); // idle timeout
            }
            Err(e) => return Err(e),
        };
        let replies = answer_batch(stats, &queries);
        let errors = replies.iter().filter(|r| r.status != 0).count() as u64;
        stats.add(Counter::Batches, 1);
        stats.add(Counter::Records, replies.len() as u64);
        stats.add(Counter::RecordErrors, errors);
        wire::write_reply(&mut writer, &replies)?;
    }
}

/// The replies to a batch: the malformed records refused, the rest answered together (with
/// the BPF tier, in one program run).
pub fn answer_batch(stats: &Stats, queries: &[BeginIn]) -> Vec<Reply> {
    let checked: Vec<Result<Query, Status>> = queries.iter().map(BeginIn::check).collect();
    let valid: Vec<Query> = checked.iter().filter_map(|c| c.ok()).collect();
    let mut results = stats.query_many(&valid).into_iter();
    checked
        .iter()
        .map(|c| match c {
            Err(status) => Reply::error(*status),
            Ok(_) => match results.next() {
                Some(Ok((m, kind))) => Reply::mapped(&m, kind),
                Some(Err(e)) => {
                    tracing::trace!(error = %Chain(&e), "query refused");
                    Reply::error(status_of(&e))
                }
                None => Reply::error(Status::Corrupt),
            },
        })
        .collect()
}

/// The wire status of a query error.
pub fn status_of(e: &QueryError) -> Status {
    match e {
        QueryError::ZeroCount { .. } => Status::Malformed,
        QueryError::PastEof { .. } => Status::PastEof,
        QueryError::BlockOutOfRange { .. } => Status::OutOfRange,
        QueryError::UnknownInode { .. } => Status::UnknownInode,
        QueryError::InlineData { .. } => Status::InlineData,
        QueryError::Unavailable { .. }
        | QueryError::Inconsistent { .. }
        | QueryError::Ondisk { .. } => Status::Corrupt,
    }
}
