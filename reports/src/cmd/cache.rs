//! `reports cache`: the trace replay of [`crate::support::cache`] over the traces given, at
//! each cache budget, printed as a table (or JSON rows); fails on any stale or wrong answer.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::support::cache::{replay, replay_bpf, Row};

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Trace files written by `training record`.
    #[arg(required = true, value_name = "TRACE")]
    pub traces: Vec<PathBuf>,
    /// Cache budgets per file (fuse-iomap's cache_maxbytes: 256 B to 2 MiB; K and M suffixes).
    #[arg(long, value_delimiter = ',', default_value = "64K,256K,2M", value_parser = parse_bytes)]
    pub budget: Vec<u64>,
    /// Files with fewer mapping queries than this are left out.
    #[arg(long, default_value_t = 100)]
    pub min_queries: usize,
    /// One JSON object per trace, file, budget and structure instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A FUSE round trip on your mount, in microseconds (for example the median of 4 KiB
    /// O_DIRECT reads through it): adds the mapping cost per query, lookups plus upcalls at this
    /// price. The demo measures it on its own mount.
    #[arg(long, value_name = "US")]
    pub round_trip_us: Option<f64>,
    /// Also replay every file through the BPF tier in the kernel (root): its compact form
    /// replaced after changes, every answer checked.
    #[arg(long)]
    pub bpf: bool,
}

/// `64K`, `2M` or a number of bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let (n, mul) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1 << 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t => (t, 1),
    };
    let v: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64K, 256K, 2M)"))?;
    v.checked_mul(mul)
        .filter(|b| (256..=2 << 20).contains(b))
        .ok_or_else(|| {
            format!("{s:?}: fuse-iomap's cache_maxbytes lies between 256 bytes and 2 MiB")
        })
}

/// `reports cache`.
pub fn run(args: &Args) -> Result<()> {
    let mut rows = Vec::new();
    let mut in_kernel = Vec::new();
    for path in &args.traces {
        let trace = tables::trace::read_trace(path)?;
        trace.check().with_context(|| {
            format!(
                "{}: the trace does not rebuild its checkpoints",
                path.display()
            )
        })?;
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let name = name.trim_end_matches(".trace").to_string();
        let round_trip = args.round_trip_us.map(|us| us * 1e3);
        rows.extend(replay(
            &name,
            &trace,
            &args.budget,
            args.min_queries,
            round_trip,
        )?);
        if args.bpf {
            in_kernel.extend(
                replay_bpf(&name, &trace, args.min_queries)
                    .with_context(|| format!("{}: replaying through BPF", path.display()))?,
            );
        }
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        for b in &in_kernel {
            println!("{}", serde_json::to_string(b)?);
        }
    } else {
        print!("{}", table(&rows));
        for b in &in_kernel {
            println!(
                "BPF tier, {} inode {}: {} answers, {} wrong, {} fell back, {} forms replaced \
                 ({} could not load)",
                b.trace, b.file, b.answered, b.wrong, b.fell_back, b.replacements, b.skipped
            );
        }
    }
    if let Some(b) = in_kernel.iter().find(|b| b.wrong > 0) {
        bail!(
            "the BPF tier answered {} wrong mappings on {} inode {}",
            b.wrong,
            b.trace,
            b.file
        );
    }
    if let Some(r) = rows.iter().find(|r| r.stale > 0) {
        bail!(
            "{} answered {} stale mappings on {} inode {}",
            r.structure,
            r.stale,
            r.trace,
            r.file
        );
    }
    Ok(())
}

/// A Markdown table of the rows.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| trace | inode | extents | budget | structure | queries | upcalls | upcalls / 10^6 | stale | \
         peak bytes | lookup ns | mapping ns / query | map changes | update ns p50 / p99 / max | \
         update ns mean | rebuild ms max |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} KiB | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} / {} / {} | {:.0} | {:.2} |\n",
            r.trace,
            r.file,
            r.extents,
            r.budget >> 10,
            r.structure,
            r.queries,
            r.upcalls,
            r.upcalls_per_million,
            r.stale,
            r.peak_bytes,
            r.lookup_ns_p50,
            r.mapping_ns_per_query
                .map_or_else(|| "-".to_string(), |n| format!("{n:.0}")),
            r.changes,
            r.update_ns_p50,
            r.update_ns_p99,
            r.update_ns_max,
            r.update_ns_mean,
            r.rebuild_ns_max as f64 / 1e6
        ));
    }
    s
}
