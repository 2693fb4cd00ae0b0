//! `reports load`: drives a running `server serve` with random queries from several clients and
//! prints queries per second and round-trip latency percentiles, for measuring the socket
//! service (docs/design.md section 7).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::rows::{LoadRow, Percentiles};
use anyhow::{bail, Context};
use ext4::{Fs, InodeKind};
use hdrhistogram::Histogram;

use predictor::wire::{self, BeginIn};

/// Arguments of `reports load`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Prints one JSON object: clients, batch, seconds, queries, qps, errors, and the round-trip
latency of one batch (send to full reply) in microseconds: p50, p90, p99, max.

Example (pin the service and the clients to CPUs to compare runs):
  taskset -c 0 server serve disk.img --models disk.pack --socket /tmp/s &
  taskset -c 1 reports load disk.img --socket /tmp/s --clients 1 --batch 1 --path /big")]
pub struct Args {
    /// The served image (read here only to pick files and positions).
    image: PathBuf,
    /// The service's Unix socket.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Concurrent client connections, one thread each.
    #[arg(long, value_name = "N", default_value_t = 1)]
    clients: u16,
    /// Queries per message.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(wire::MAX_RECORDS)))]
    batch: u32,
    /// How long to run.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    seconds: f64,
    /// Query only this file (else every regular file with data, uniformly).
    #[arg(long, value_name = "P")]
    path: Option<String>,
    /// Bytes per query (the `count` of `iomap_begin`).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    count: u64,
}

/// One client's tallies.
struct ClientResult {
    queries: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// Runs `reports load`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let fs = Fs::open_path(&args.image)?;
    let files: Vec<(u64, u64)> = match &args.path {
        Some(p) => {
            let i = fs
                .lookup_path(p)
                .with_context(|| args.image.display().to_string())?;
            vec![(u64::from(i.ino), i.size)]
        }
        None => fs
            .walk()
            .0
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File && e.inode.size > 0)
            .filter(|e| !e.inode.has_inline_data())
            .map(|e| (u64::from(e.inode.ino), e.inode.size))
            .collect(),
    };
    if files.is_empty() || files.iter().any(|f| f.1 == 0) {
        bail!("{}: no file with data to query", args.image.display());
    }
    let empty = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let duration = Duration::from_secs_f64(args.seconds.max(0.01));
    let results: Vec<anyhow::Result<ClientResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let (files, empty) = (&files, empty.clone());
                s.spawn(move || client(args, files, empty, duration, u64::from(c)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client panicked")))
            })
            .collect()
    });
    let mut total = empty;
    let (mut queries, mut errors) = (0, 0);
    for r in results {
        let r = r?;
        queries += r.queries;
        errors += r.errors;
        total.add(&r.latency)?;
    }
    let us = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    let out = LoadRow {
        clients: args.clients,
        batch: args.batch,
        seconds: duration.as_secs_f64(),
        queries,
        qps: (queries as f64 / duration.as_secs_f64()).round(),
        errors,
        batch_latency_us: Percentiles {
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            max: total.max() as f64 / 1000.0,
        },
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// One client: random batches until `duration` has passed.
fn client(
    args: &Args,
    files: &[(u64, u64)],
    mut latency: Histogram<u64>,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<ClientResult> {
    let mut conn = UnixStream::connect(&args.socket)
        .with_context(|| format!("connecting to {}", args.socket.display()))?;
    // xorshift64*: enough randomness for positions, no dependency.
    let mut state =
        0x9E37_79B9_7F4A_7C15u64 ^ (seed.wrapping_add(1)).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut next = move |below: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
    };
    let (mut queries, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let mut batch = Vec::with_capacity(args.batch as usize);
    while start.elapsed() < duration {
        batch.clear();
        for _ in 0..args.batch {
            let (ino, size) = files[next(files.len() as u64) as usize];
            batch.push(BeginIn::report(ino, next(size), args.count));
        }
        let msg = wire::encode_request(&batch)?;
        let t = Instant::now();
        std::io::Write::write_all(&mut conn, &msg)?;
        let replies = wire::read_reply(&mut conn, batch.len())?;
        latency.saturating_record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        queries += replies.len() as u64;
        errors += replies.iter().filter(|r| r.status != 0).count() as u64;
    }
    Ok(ClientResult {
        queries,
        errors,
        latency,
    })
}
