//! What a running server counts: the tier stack's own per-tier counters, a lookup-latency
//! histogram per tier (`hdrhistogram`), and event counters (reads, bytes, batches, errors),
//! rendered as one JSON object.
//!
//! Recording must not serialise the FUSE worker threads on one lock: each thread records into
//! its own stripe of histograms (a thread picks a stripe once, round robin), so two threads
//! share a mutex only when there are more threads than stripes, and reading the stats merges
//! the stripes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use predictor::{FrontTier, Mapping, Query, QueryError, TierKind, TierStack};
use serde::Serialize;

use crate::image::Served;

/// Histogram stripes; more than the worker threads a mount or service normally runs.
const STRIPES: usize = 16;
/// Largest latency a histogram holds exactly (10 s); longer ones are clamped to it.
const MAX_NS: u64 = 10_000_000_000;

/// Event counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// FUSE reads answered.
    Reads,
    /// Bytes returned by FUSE reads.
    ReadBytes,
    /// Of those, bytes zero-filled (holes, unwritten extents).
    ZeroBytes,
    /// FUSE reads that failed (EIO).
    ReadErrors,
    /// Reads of files the tier stack does not map (inline data, or not found by its walk),
    /// served by the ext4 reader directly.
    DirectReads,
    /// `lseek(SEEK_DATA / SEEK_HOLE)` answered.
    Seeks,
    /// Socket connections accepted.
    Connections,
    /// Socket batches answered.
    Batches,
    /// Socket records answered (with or without a mapping).
    Records,
    /// Socket records answered with an error status.
    RecordErrors,
    /// Socket messages refused for a bad header (the connection was closed).
    BadMessages,
}

impl Counter {
    const ALL: [Counter; 11] = [
        Counter::Reads,
        Counter::ReadBytes,
        Counter::ZeroBytes,
        Counter::ReadErrors,
        Counter::DirectReads,
        Counter::Seeks,
        Counter::Connections,
        Counter::Batches,
        Counter::Records,
        Counter::RecordErrors,
        Counter::BadMessages,
    ];

    fn name(self) -> &'static str {
        match self {
            Counter::Reads => "reads",
            Counter::ReadBytes => "read_bytes",
            Counter::ZeroBytes => "zero_bytes",
            Counter::ReadErrors => "read_errors",
            Counter::DirectReads => "direct_reads",
            Counter::Seeks => "seeks",
            Counter::Connections => "connections",
            Counter::Batches => "batches",
            Counter::Records => "records",
            Counter::RecordErrors => "record_errors",
            Counter::BadMessages => "bad_messages",
        }
    }
}

/// Facts about the served image that the stats repeat.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// Image path.
    pub image: String,
    /// Tier stack choice.
    pub tier: &'static str,
    /// Audit mode.
    pub audit: bool,
    /// Whether a model pack was loaded.
    pub models: bool,
    /// What building the stack found.
    pub build: BuildJson,
    /// The BPF tier, when asked for (`--tier bpf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfJson>,
}

/// The BPF tier's load report, or why it is not running.
#[derive(Debug, Clone, Serialize)]
pub struct BpfJson {
    /// Whether the program is loaded and answering first.
    pub loaded: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files in the program's maps.
    pub files: usize,
    /// Extents in the program's maps.
    pub extents: u64,
    /// Files with an active model that the program did not take (they fall back).
    pub skipped: usize,
    /// Bytes of map memory.
    pub map_bytes: u64,
}

/// The build report, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct BuildJson {
    /// Regular files loaded.
    pub files: usize,
    /// Extents loaded.
    pub extents: u64,
    /// Files with an active model.
    pub models_active: usize,
    /// Files without a model.
    pub models_untrained: usize,
    /// Files whose model is stale.
    pub models_stale: usize,
    /// Files whose model is unusable.
    pub models_invalid: usize,
    /// Inline-data files.
    pub inline_files: usize,
    /// Files whose extents could not be loaded.
    pub load_errors: usize,
    /// Directories that could not be read.
    pub walk_errors: usize,
    /// Build time in milliseconds.
    pub ms: u64,
    /// Heap bytes of the learned models.
    pub model_bytes: u64,
    /// Heap bytes of the learned index's keys and records.
    pub learned_index_bytes: u64,
    /// Heap bytes of the in-memory fallback (or only) structure.
    pub index_bytes: u64,
    /// Whether `index_bytes` was counted by the allocator (always, in the `server` binary)
    /// rather than estimated.
    pub index_bytes_counted: bool,
    /// Files per structure the per-file rule chose (`--tier chosen`; absent otherwise).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub chosen: std::collections::BTreeMap<&'static str, usize>,
}

impl Meta {
    /// The facts of a loaded image.
    pub fn of(loaded: &Served) -> Self {
        let r = &loaded.report;
        let m = loaded.stack.memory();
        Self {
            image: loaded.path.display().to_string(),
            tier: loaded.tier.name(),
            audit: loaded.audit,
            models: loaded.has_models,
            build: BuildJson {
                files: r.files,
                extents: r.extents,
                models_active: r.models_active,
                models_untrained: r.models_untrained,
                models_stale: r.models_stale.len(),
                models_invalid: r.models_invalid.len(),
                inline_files: r.inline_files,
                load_errors: r.load_errors.len(),
                walk_errors: r.walk_errors.len(),
                ms: r.elapsed.as_millis() as u64,
                model_bytes: m.model_bytes,
                learned_index_bytes: m.record_bytes,
                index_bytes: m.index_bytes,
                index_bytes_counted: m.counted,
                chosen: r.chosen.clone(),
            },
            bpf: loaded.tier.in_kernel.then(|| {
                let r = loaded.bpf.as_ref().map(|b| b.report());
                BpfJson {
                    loaded: r.is_some(),
                    error: loaded.bpf_error.clone(),
                    files: r.map_or(0, |r| r.files),
                    extents: r.map_or(0, |r| r.extents),
                    skipped: r.map_or(0, |r| r.skipped.len()),
                    map_bytes: r.map_or(0, |r| r.map_bytes),
                }
            }),
        }
    }
}

/// Latency percentiles of one tier, in nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyJson {
    /// Lookups recorded.
    pub count: u64,
    /// Fastest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

/// One tier's counters and latencies.
#[derive(Debug, Clone, Serialize)]
pub struct TierJson {
    /// Queries this tier answered.
    pub answered: u64,
    /// Queries it could not try (no usable model).
    pub declined: u64,
    /// Queries it tried but failed verification.
    pub missed: u64,
    /// Latency of the whole stack query for the lookups this tier answered.
    pub latency_ns: LatencyJson,
}

/// The stats document.
#[derive(Debug, Clone, Serialize)]
pub struct StatsJson {
    /// The served image.
    #[serde(flatten)]
    pub meta: Meta,
    /// Seconds since the server started serving.
    pub uptime_s: f64,
    /// Per tier, by name ([`TierKind::name`]; `front` is the BPF program).
    pub tiers: BTreeMap<&'static str, TierJson>,
    /// Learned and BPF answers re-checked with the in-memory structure (`--audit`).
    pub audit_checked: u64,
    /// Of those, how many differed (must be 0).
    pub audit_mismatches: u64,
    /// Event counters.
    pub counters: BTreeMap<&'static str, u64>,
}

type Stripe = [Mutex<Histogram<u64>>; TierKind::ALL.len()];

/// Counters and histograms of one server.
#[derive(Debug)]
pub struct Stats {
    meta: Meta,
    stack: Arc<TierStack>,
    /// The tier in front of the stack (the BPF program), if loaded.
    front: Option<Arc<dyn FrontTier>>,
    started: Instant,
    stripes: Vec<Stripe>,
    counters: [AtomicU64; Counter::ALL.len()],
    /// An empty histogram with the bounds of all the others.
    empty: Histogram<u64>,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
}

impl Stats {
    /// Stats for the stack of `loaded`. Fails only if hdrhistogram rejects the constant bounds.
    pub fn new(loaded: &Served) -> Result<Self, hdrhistogram::CreationError> {
        // 1 ns .. 10 s at 2 significant digits: about 28 KiB per histogram.
        let empty = Histogram::new_with_bounds(1, MAX_NS, 2)?;
        Ok(Self {
            meta: Meta::of(loaded),
            stack: loaded.stack.clone(),
            front: loaded.bpf.clone().map(|b| b as Arc<dyn FrontTier>),
            started: Instant::now(),
            stripes: (0..STRIPES)
                .map(|_| std::array::from_fn(|_| Mutex::new(empty.clone())))
                .collect(),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            empty,
        })
    }

    /// The tier stack these stats watch.
    pub fn stack(&self) -> &TierStack {
        &self.stack
    }

    /// Asks the stack (the tier in front first, if loaded) for the mapping `query` asks for,
    /// timing the lookup into the histogram of the tier that answered.
    pub fn query(&self, query: Query) -> Result<(Mapping, TierKind), QueryError> {
        let start = Instant::now();
        let result = self
            .resolve(&[query])
            .pop()
            .unwrap_or(Err(QueryError::UnknownInode { ino: query.ino }));
        self.record(&result, start.elapsed().as_nanos());
        result
    }

    /// [`Stats::query`] for a batch: with a front tier, one run of it answers the whole batch,
    /// and each query is recorded with the batch's time divided by its size.
    pub fn query_many(&self, queries: &[Query]) -> Vec<Result<(Mapping, TierKind), QueryError>> {
        if self.front.is_none() {
            return queries.iter().map(|&q| self.query(q)).collect();
        }
        let start = Instant::now();
        let results = self.resolve(queries);
        let each = start.elapsed().as_nanos() / queries.len().max(1) as u128;
        for r in &results {
            self.record(r, each);
        }
        results
    }

    fn resolve(&self, queries: &[Query]) -> Vec<Result<(Mapping, TierKind), QueryError>> {
        self.stack.resolve(self.front.as_deref(), queries)
    }

    fn record(&self, result: &Result<(Mapping, TierKind), QueryError>, ns: u128) {
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        if let Ok((_, kind)) = result {
            let stripe = STRIPE.with(|s| *s);
            self.stripes[stripe][*kind as usize]
                .lock()
                .saturating_record(ns.max(1));
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Relaxed);
    }

    /// A snapshot of everything.
    pub fn snapshot(&self) -> StatsJson {
        let stack = self.stack.stats();
        let mut merged: [Histogram<u64>; TierKind::ALL.len()] =
            std::array::from_fn(|_| self.empty.clone());
        for stripe in &self.stripes {
            for (into, h) in merged.iter_mut().zip(stripe) {
                // Same bounds everywhere: adding cannot fail; ignore it if it ever did.
                let _ = into.add(&*h.lock());
            }
        }
        let tiers = TierKind::ALL
            .iter()
            .map(|&k| {
                let t = stack.tier(k);
                let h = &merged[k as usize];
                let latency_ns = if h.is_empty() {
                    LatencyJson::default()
                } else {
                    LatencyJson {
                        count: h.len(),
                        min: h.min(),
                        mean: (h.mean() * 10.0).round() / 10.0,
                        p50: h.value_at_quantile(0.5),
                        p90: h.value_at_quantile(0.9),
                        p99: h.value_at_quantile(0.99),
                        p999: h.value_at_quantile(0.999),
                        max: h.max(),
                    }
                };
                (
                    k.name(),
                    TierJson {
                        answered: t.answered,
                        declined: t.declined,
                        missed: t.missed,
                        latency_ns,
                    },
                )
            })
            .collect();
        StatsJson {
            meta: self.meta.clone(),
            uptime_s: (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            tiers,
            audit_checked: stack.audit_checked,
            audit_mismatches: stack.audit_mismatches,
            counters: Counter::ALL
                .iter()
                .map(|&c| (c.name(), self.counters[c as usize].load(Relaxed)))
                .collect(),
        }
    }

    /// The snapshot as pretty JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.snapshot())
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    /// Writes the JSON to `path` atomically (a temporary file renamed over it), so a reader
    /// never sees half a file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }
}
