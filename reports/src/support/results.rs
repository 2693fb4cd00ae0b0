//! The results file (`results/results.json`): the measurements the README quotes besides the
//! demo, with where and from which commit they came (gathered by `reports results`,
//! [`crate::cmd::results`]), and their rendering into the README (`reports readme`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use predictor::Structure as Id;
use serde::{Deserialize, Serialize};

use predictor::regime::Regime;

use crate::support::rows::met;
pub use crate::support::rows::{BpfLatencyRow as BpfRow, LoadRow, ReadRow};

/// Where `scripts/results.sh` and `reports readme` keep the results.
pub const DEFAULT_FILE: &str = "results/results.json";

/// Everything the README's results section shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    /// Where and from which code the numbers came.
    pub provenance: Provenance,
    /// Criterion lookup medians.
    pub lookup: Vec<LookupRow>,
    /// `reports bpf-latency` rows.
    pub bpf_latency: Vec<BpfRow>,
    /// `reports load` runs.
    pub load: Vec<LoadRow>,
    /// fio runs of `reports reads`.
    pub reads: Vec<ReadRow>,
    /// Fuzz targets.
    pub fuzz: Vec<FuzzRow>,
    /// `reports huge` sizes.
    #[serde(default)]
    pub huge: Vec<crate::support::huge::Row>,
}

/// The machine and code of a results run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Provenance {
    /// The command that produced the file.
    pub command: String,
    /// Git commit (40 hex) of the measured code, if run from a checkout.
    pub commit: Option<String>,
    /// Whether the checkout had no uncommitted changes.
    pub tree_clean: bool,
    /// CPU, cores, kernel and date.
    pub machine: String,
    /// Load averages (1, 5, 15 min) when the results were collected.
    pub load_avg: String,
}

/// One criterion benchmark: median ns per query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupRow {
    /// Criterion group (`lookup/N`, `real/IMAGE:PATH (N extents)`).
    pub group: String,
    /// Structure (criterion function id).
    pub structure: String,
    /// Regime ([`Regime::name`]: `warm-alone`, `sequential`, `cold-many-files`).
    pub stream: String,
    /// Median ns per query.
    pub ns: f64,
}

/// One fuzz target's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FuzzRow {
    /// cargo-fuzz target.
    pub target: String,
    /// Seconds run.
    pub seconds: f64,
    /// Inputs executed.
    pub execs: u64,
    /// Coverage (libFuzzer `cov`).
    pub cov: Option<u64>,
    /// Corpus files after the run.
    pub corpus: u64,
    /// Crash or hang artifacts (0: no finding).
    pub artifacts: u64,
    /// cargo-fuzz exit status.
    pub exit: i32,
}

/// Reads a results file.
pub fn read(path: &Path) -> Result<Results> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The structures of the lookup tables, in column order, with their README names.
const STRUCTURES: [(&str, &str); 7] = [
    (Id::Learned.name(), "learned"),
    (Id::Compact.name(), "compact"),
    (Id::Iext16.name(), "iext16"),
    (Id::Iext32.name(), "iext32"),
    (Id::Btree.name(), "BTreeMap"),
    (Id::Sorted.name(), "sorted array"),
    (Id::RangeMap.name(), "RangeMap"),
];

/// The criterion regimes, in row order.
const STREAMS: [Regime; 3] = [Regime::WarmAlone, Regime::ColdManyFiles, Regime::Sequential];

/// `x` with about three significant digits.
fn ns(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// `base / x` as a speed-up ("1.23x": faster than the base above 1).
fn speedup(base: Option<f64>, x: Option<f64>) -> String {
    match (base, x) {
        (Some(b), Some(x)) if x > 0.0 && b.is_finite() && x.is_finite() => format!("{:.2}x", b / x),
        _ => "-".into(),
    }
}

/// `1000000` as `10^6`, other sizes as they are (the README's notation; the report's dataset
/// names use `datasets::count_label`'s `1e6`).
fn size_label(n: u64) -> String {
    match n {
        v if v >= 1000 && 10u64.pow(v.ilog10()) == v => format!("10^{}", v.ilog10()),
        v => v.to_string(),
    }
}

/// The README section (without its marker lines).
pub fn render(r: &Results) -> String {
    let mut md = String::new();
    let p = &r.provenance;
    let code = match &p.commit {
        Some(c) if p.tree_clean => format!("commit `{c}` (clean tree)"),
        Some(c) => format!("commit `{c}` with uncommitted changes"),
        None => "code outside a git checkout".into(),
    };
    let _ = writeln!(
        md,
        "Measured by `{}` from {code}, on {}; load average {} when collected. Medians of one \
         run: compare rows within it.\n",
        p.command, p.machine, p.load_avg
    );
    render_lookup(&mut md, &r.lookup);
    render_bpf(&mut md, &r.bpf_latency);
    render_reads(&mut md, &r.reads, &r.load);
    render_huge(&mut md, &r.huge);
    render_fuzz(&mut md, &r.fuzz);
    md.trim_end().to_string()
}

fn render_huge(md: &mut String, rows: &[crate::support::huge::Row]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**One file of 10^7 and 10^8 extents** (`reports huge`, pinned with `taskset -c 1`): a \
         map drawn from the steps of a kernel-made one, the compact learned index and iext16 \
         built in the same run (bytes counted by the allocator), lookups raced `warm-shared` \
         and `cold-evicted`, a sample of both structures' answers checked against binary \
         search; the BPF tier loads the compact form or declines it with a reason.\n\n\
         | extents | compact B/ext | iext16 B/ext | ratio | build (extents/s) | warm-shared \
         compact / iext16 ns | cold-evicted compact / iext16 ns | BPF | wrong |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|---:|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.3} ({}) | {:.2e} ({}) | {} / {} ({}) | {} / {} ({}) | {} | {} |",
            r.extents,
            r.compact.bytes_per_extent,
            r.iext16.bytes_per_extent,
            r.bytes_ratio,
            met(r.bars.bytes_quarter),
            r.compact.build_rate,
            met(r.bars.build),
            ns(r.compact.warm_shared_ns),
            ns(r.iext16.warm_shared_ns),
            met(r.bars.warm_shared),
            ns(r.compact.cold_evicted_ns),
            ns(r.iext16.cold_evicted_ns),
            met(r.bars.cold_evicted),
            if r.bpf.reason.is_empty() {
                r.bpf.status.clone()
            } else {
                format!("{}: {}", r.bpf.status, r.bpf.reason)
            },
            r.compact.wrong + r.iext16.wrong + r.bpf.wrong(),
        );
    }
    let _ = writeln!(
        md,
        "\nBars: compact at most 1/4 of iext16's bytes, lookups at least as fast as iext16's \
         in both regimes, build at least 5*10^6 extents/s, the BPF tier serves or declines with \
         a reason; 0 wrong.\n"
    );
}

fn render_lookup(md: &mut String, rows: &[LookupRow]) {
    let get = |group: &str, s: &str, stream: &str| {
        rows.iter()
            .find(|r| r.group == group && r.structure == s && r.stream == stream)
            .map(|r| r.ns)
    };
    let mut sizes: Vec<(u64, &str)> = rows
        .iter()
        .filter_map(|r| {
            let n = r.group.strip_prefix("lookup/")?;
            Some((n.parse().ok()?, n))
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let _ = writeln!(
        md,
        "**Lookup** (`cargo bench -p benches --bench lookup`), median ns per lookup over batches \
         of queries (`benches::BATCH`), synthetic allocator-like maps (irregular gaps and \
         lengths), release build, in three regimes (`predictor::regime`): **{}**: {}; **{}**: \
         {} (copies capped for tiny maps, `benches::MAX_COLD_COPIES`); **{}**: {}. Speed-ups \
         are against `iext16`, the kernel's in-core extent tree with XFS's 16-byte records \
         (fuse-iomap caches in the same tree with 32-byte records, `iext32`), in the same \
         regime; above 1 means faster.\n",
        Regime::WarmAlone,
        Regime::WarmAlone.meaning(),
        Regime::ColdManyFiles,
        Regime::ColdManyFiles.meaning(),
        Regime::Sequential,
        Regime::Sequential.meaning(),
    );
    let mut header = "| extents | queries |".to_string();
    let mut rule = "|---|---|".to_string();
    for (_, name) in STRUCTURES {
        let _ = write!(header, " {name} |");
        rule.push_str("---:|");
    }
    header.push_str(" learned vs iext16 | compact vs iext16 |");
    rule.push_str("---:|---:|");
    let _ = writeln!(md, "{header}\n{rule}");
    for &(size, n) in &sizes {
        let group = format!("lookup/{n}");
        for regime in STREAMS {
            let stream = regime.name();
            let mut line = format!("| {} | {stream} |", size_label(size));
            for (id, _) in STRUCTURES {
                let _ = write!(
                    line,
                    " {} |",
                    get(&group, id, stream).map_or("-".into(), ns)
                );
            }
            let base = get(&group, Id::Iext16.name(), stream);
            let _ = writeln!(
                md,
                "{line} {} | {} |",
                speedup(base, get(&group, Id::Learned.name(), stream)),
                speedup(base, get(&group, Id::Compact.name(), stream))
            );
        }
    }
    let mut real: Vec<&str> = rows
        .iter()
        .filter(|r| r.group.starts_with("real/"))
        .map(|r| r.group.as_str())
        .collect();
    real.dedup();
    if !real.is_empty() {
        let _ = writeln!(
            md,
            "\nOn real maps: the most fragmented file of each standard test image, and every \
             file of at least 10^3 extents of the demo's images made by the kernel allocator \
             (the `imagekit::Recipe::Allocated` of `Recipe::DEMO`, built when the script runs as root). Same \
             regimes; the on-disk walk reads the image's tree blocks from the page cache (no \
             `cold-many-files` row). ns per lookup:\n\n\
             | file | regime | learned | compact | iext16 | BTreeMap | on-disk walk | compact vs iext16 |\n\
             |---|---|---:|---:|---:|---:|---:|---:|"
        );
        for g in real {
            for regime in STREAMS {
                let stream = regime.name();
                let cell = |s: &str| get(g, s, stream).map_or("-".into(), ns);
                let _ = writeln!(
                    md,
                    "| {} | {stream} | {} | {} | {} | {} | {} | {} |",
                    g.trim_start_matches("real/"),
                    cell(Id::Learned.name()),
                    cell(Id::Compact.name()),
                    cell(Id::Iext16.name()),
                    cell(Id::Btree.name()),
                    cell(Id::Ondisk.name()),
                    speedup(
                        get(g, Id::Iext16.name(), stream),
                        get(g, Id::Compact.name(), stream)
                    )
                );
            }
        }
    }
    md.push('\n');
}

fn render_bpf(md: &mut String, rows: &[BpfRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**The BPF tier** (`reports bpf-latency --synthetic ...`, pinned with `taskset -c 1`): \
         kernel-measured ns per `BPF_PROG_TEST_RUN` run, one query per run, median of rounds \
         of runs rotating over a set of uniform queries (`warm-alone`: the runs repeat the \
         same set); \
         the harness alone is a run that reads its query and answers nothing; the syscall is \
         the wall time of one test run from user space, as `mount --tier bpf` pays it. \
         Userspace columns time the same queries on the same maps (`warm-alone`).\n\n\
         | extents | BPF, model | harness alone | one test-run syscall | \
         userspace learned | userspace iext16 | userspace BTreeMap |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            size_label(r.extents as u64),
            ns(r.bpf_model_ns),
            ns(r.bpf_noop_ns),
            ns(r.bpf_syscall_ns),
            ns(r.user_learned_ns),
            r.user_iext16_ns.map_or("-".into(), ns),
            ns(r.user_btree_ns)
        );
    }
    md.push('\n');
    render_bpf_compact(md, rows);
}

/// The bar on the BPF lookup: the compact form in the program, the harness taken off, within
/// this many times the userspace compact lookup.
pub const BPF_BAR: f64 = 1.5;

/// The compact form in the program against the same lookup in userspace, both ways userspace
/// can run it: independent lookups (a loop overlaps their cache misses) and one at a time
/// (as the program's runs and `iomap_begin` calls come).
fn render_bpf_compact(md: &mut String, rows: &[BpfRow]) {
    let rows: Vec<_> = rows
        .iter()
        .filter_map(|r| Some((r, r.bpf_compact_ns?, r.user_compact_ns?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "The compact learned index (packed storage) in the program and in userspace, same maps \
         and queries, same run; the program's time with the harness taken off, over the \
         userspace lookup's, and the bar: at most {BPF_BAR}x.\n\n\
         | extents | BPF, compact | BPF minus harness | userspace, independent | \
         ratio | userspace, one at a time | ratio | bar |\n\
         |---|---:|---:|---:|---:|---:|---:|---|"
    );
    for (r, bpf, user) in rows {
        let net = bpf - r.bpf_noop_ns;
        let chained = r.user_compact_chained_ns;
        let ratio = |u: f64| format!("{:.2}x", net / u);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            size_label(r.extents as u64),
            ns(bpf),
            ns(net),
            ns(user),
            ratio(user),
            chained.map_or("-".into(), ns),
            chained.map_or("-".into(), ratio),
            met(net <= BPF_BAR * user)
        );
    }
    md.push('\n');
}

fn render_reads(md: &mut String, reads: &[ReadRow], load: &[LoadRow]) {
    if !reads.is_empty() {
        let secs = reads.first().map_or(0.0, |r| r.seconds);
        let _ = writeln!(
            md,
            "**End to end** (`reports reads`): fio 4 KiB `O_DIRECT` reads of \
             `/punched-100k` (the demo's punched file, image file in the host page cache; random \
             reads inside its written data, sequential ones through the whole file), \
             {secs:.0} s per run, read IOPS; pinned: fio and the file system on CPU 0 \
             (`--pin same`), with the median completion latency.\n\n\
             | path | random, 1 job | random, 4 jobs | sequential, 1 job | random, 1 job, pinned (p50) |\n\
             |---|---:|---:|---:|---:|"
        );
        let mut paths: Vec<&str> = Vec::new();
        for r in reads {
            if !paths.contains(&r.path.as_str()) {
                paths.push(&r.path);
            }
        }
        for p in paths {
            let find = |rw: &str, jobs: u32, pin: &str| {
                reads
                    .iter()
                    .find(|r| r.path == p && r.rw == rw && r.jobs == jobs && r.pin == pin)
            };
            let iops =
                |r: Option<&ReadRow>| r.map_or("-".into(), |r| format!("{:.1}k", r.iops / 1e3));
            let pinned = find("randread", 1, "same").map_or("-".into(), |r| {
                format!("{:.1}k ({:.1} us)", r.iops / 1e3, r.p50_us)
            });
            let _ = writeln!(
                md,
                "| {p} | {} | {} | {} | {pinned} |",
                iops(find("randread", 1, "none")),
                iops(find("randread", 4, "none")),
                iops(find("read", 1, "none")),
            );
        }
        md.push('\n');
    }
    for l in load {
        let _ = writeln!(
            md,
            "`reports load` against `server serve` (same image and file, {} client(s), batches of \
             {}, {:.0} s): {:.0}k queries/s, {} errors.",
            l.clients,
            l.batch,
            l.seconds,
            l.qps / 1e3,
            l.errors
        );
    }
    if !load.is_empty() {
        md.push('\n');
    }
}

fn render_fuzz(md: &mut String, rows: &[FuzzRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Fuzzing** (`scripts/fuzz.sh`, cargo-fuzz on nightly, seeds generated, not \
         committed):\n\n| target | seconds | inputs run | coverage | corpus | findings | exit |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| `{}` | {:.0} | {} | {} | {} | {} | {} |",
            r.target,
            r.seconds,
            r.execs,
            r.cov.map_or("-".into(), |c| c.to_string()),
            r.corpus,
            r.artifacts,
            r.exit
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ratios_are_labelled() {
        assert_eq!(size_label(1_000_000), "10^6");
        assert_eq!(size_label(10), "10");
        assert_eq!(speedup(Some(20.0), Some(10.0)), "2.00x");
        assert_eq!(speedup(None, Some(10.0)), "-");
        assert_eq!(ns(123.4), "123");
        assert_eq!(ns(12.34), "12.3");
        assert_eq!(ns(1.234), "1.23");
    }
}
