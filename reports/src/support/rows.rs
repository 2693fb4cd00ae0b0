//! The rows the measuring commands print as JSON (`reports bpf-latency`, `reports load`,
//! `reports reads`), one definition each: the command writes them and `reports results` reads
//! them back into `results/results.json`. Fields added later read as their default from older
//! files.

use serde::{Deserialize, Serialize};

/// How every bar line ends: whether the bar was met.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// Prints one measured row: as a JSON line with `--json`, else as `text` makes it.
pub fn print_row<R: serde::Serialize>(r: &R, json: bool, text: impl FnOnce(&R) -> String) {
    if json {
        match serde_json::to_string(r) {
            Ok(s) => println!("{s}"),
            Err(e) => tracing::error!(error = %e, "row not serialised"),
        }
    } else {
        print!("{}", text(r));
    }
}

/// `reports bpf-latency`: one file's numbers, in nanoseconds per lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BpfLatencyRow {
    /// `synthetic-N` for a synthetic map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The file's inode, for an image file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u32>,
    /// Extents of the file.
    pub extents: usize,
    /// Model segments.
    #[serde(default)]
    pub segments: usize,
    /// Largest model window, in extents.
    #[serde(default)]
    pub max_window: u64,
    /// Queries in the rotating set.
    #[serde(default)]
    pub queries: usize,
    /// BPF program run that reads the query and answers nothing (harness overhead).
    pub bpf_noop_ns: f64,
    /// BPF program: model, window search, verification, mapping.
    pub bpf_model_ns: f64,
    /// Wall time of one test-run syscall answering one query, from user space (median of
    /// 2000).
    pub bpf_syscall_ns: f64,
    /// Mean probes (extent and segment reads) per BPF lookup with the model.
    #[serde(default)]
    pub bpf_probes: f64,
    /// Instructions the kernel's verifier processed to accept the program (its limit is
    /// 1,000,000); absent where the kernel does not say.
    #[serde(default)]
    pub verifier_insns: Option<u32>,
    /// Time the kernel took to verify and JIT-compile the program, ms.
    #[serde(default)]
    pub verifier_ms: f64,
    /// The userspace learned index (`LearnedIndex::probe`) on the same queries.
    pub user_learned_ns: f64,
    /// `BTreeMap` (the `btree` tier) on the same queries.
    pub user_btree_ns: f64,
    /// The BPF program evaluating the compact learned index of the same extents, from its
    /// compact maps (absent if the program did not take it).
    #[serde(default)]
    pub bpf_compact_ns: Option<f64>,
    /// The userspace compact learned index on the same queries, looked up independently (a
    /// loop over them: the CPU overlaps one lookup's cache misses with the next's).
    #[serde(default)]
    pub user_compact_ns: Option<f64>,
    /// The same, one lookup at a time: each query waits for the previous answer, as the
    /// program's runs and the kernel's `iomap_begin` calls come.
    #[serde(default)]
    pub user_compact_chained_ns: Option<f64>,
    /// With --baseline: that program's harness, model and compact times, each round timed in
    /// turn with the embedded program's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_noop_ns: Option<f64>,
    /// See `baseline_noop_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_model_ns: Option<f64>,
    /// See `baseline_noop_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_compact_ns: Option<f64>,
    /// The kernel's in-core extent tree design with XFS's 16-byte records (`iext16`), the
    /// structure fuse-iomap caches mappings in, on the same queries; absent if the map does
    /// not fit its records.
    #[serde(default)]
    pub user_iext16_ns: Option<f64>,
}

/// `reports load`: one run against a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRow {
    pub clients: u16,
    pub batch: u32,
    pub seconds: f64,
    /// Queries answered.
    #[serde(default)]
    pub queries: u64,
    pub qps: f64,
    pub errors: u64,
    /// Batch round-trip latency.
    #[serde(default)]
    pub batch_latency_us: Percentiles,
}

/// Batch round-trip latency percentiles, us.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// `reports reads`: one fio run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRow {
    pub path: String,
    pub rw: String,
    pub jobs: u32,
    pub pin: String,
    pub seconds: f64,
    pub iops: f64,
    #[serde(default)]
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}
