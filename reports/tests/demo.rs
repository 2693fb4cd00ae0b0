//! Runs `reports demo --quick` end to end into a temporary directory and checks what it wrote:
//! every table has exactly the columns `notebooks-data/README.md` documents, values are
//! plausible (every structure present, latencies positive, counts that add up), and every
//! figure exists as PNG and SVG. Then `reports run --live --quick` on a kernel loop mount of a
//! test image: the live report's population counts the image's files.
//!
//! Needs e2fsprogs (the demo images are built with mke2fs and debugfs); without them the test
//! says so and passes. The FUSE and loop-mount parts run only as root and are skipped (with a
//! reason in the report) otherwise; the live report needs root for its loop mount. Under
//! `IOMAP_REQUIRE_ALL` (CI) any of these skips is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

// The experiments and the names of what they write, as the binary has them.
#[allow(dead_code)] // not every constant is checked by name here
#[path = "../src/exp/registry.rs"]
mod registry;

use registry::EXPERIMENTS;

/// Tables the pipeline writes itself, after the experiments'.
const PIPELINE_TABLES: &[&str] = &[registry::SKIPPED, registry::RUN];

/// Experiments a quick run may skip: end-to-end reads need root or FUSE.
const MAY_SKIP: &[&str] = &["endtoend"];

/// Tables every quick demo run writes: every experiment's but those that may be skipped, and
/// the pipeline's own.
fn always() -> Vec<&'static str> {
    EXPERIMENTS
        .iter()
        .filter(|e| !MAY_SKIP.contains(&e.id))
        .flat_map(|e| e.tables.iter().copied())
        .chain(PIPELINE_TABLES.iter().copied())
        .collect()
}

/// Structures figure 1 must show.
const STRUCTURES: &[&str] = &[
    "learned",
    "learned-w8",
    "compact",
    "btree",
    "iext32",
    "iext16",
    "rangemap",
    "sorted",
    "ondisk",
];

/// A CSV table: header and rows of fields (RFC 4180 quoting, as `tables` writes it).
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Self {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut records = parse_csv(&text).into_iter();
        let header = records.next().unwrap_or_default();
        Self {
            header,
            rows: records.collect(),
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn str(&self, row: &[String], name: &str) -> String {
        row[self.col(name)].clone()
    }

    fn num(&self, row: &[String], name: &str) -> f64 {
        let v = &row[self.col(name)];
        v.parse()
            .unwrap_or_else(|_| panic!("column {name}: {v:?} is not a number"))
    }
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        out.push(row);
    }
    out
}

/// The columns `notebooks-data/README.md` documents, per table: each table is a heading
/// "### `name`" followed by a Markdown table whose first cells are "`column`".
fn documented() -> HashMap<String, Vec<String>> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks-data/README.md");
    let text =
        std::fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            current = h
                .trim()
                .strip_prefix('`')
                .and_then(|s| s.split('`').next())
                .map(str::to_string);
            if let Some(name) = &current {
                out.entry(name.clone()).or_default();
            }
        } else if let (Some(name), Some(rest)) = (&current, line.strip_prefix("| `")) {
            if let Some(col) = rest.split('`').next() {
                out.entry(name.clone()).or_default().push(col.to_string());
            }
        }
    }
    out
}

/// Reads every table under `tables` and checks it has the documented columns, in order, and
/// rows; returns them by name.
fn documented_tables(tables: &Path) -> HashMap<String, Csv> {
    let docs = documented();
    let mut written: HashMap<String, Csv> = HashMap::new();
    for entry in std::fs::read_dir(tables)
        .expect("tables directory")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "csv") {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                path.with_extension("parquet").is_file(),
                "{name}: CSV without Parquet"
            );
            let csv = Csv::read(&path);
            let cols = docs.get(&name).unwrap_or_else(|| {
                panic!("table {name} is not documented in notebooks-data/README.md")
            });
            assert_eq!(
                &csv.header, cols,
                "table {name}: columns differ from notebooks-data/README.md"
            );
            assert!(!csv.rows.is_empty(), "table {name} is empty");
            written.insert(name, csv);
        }
    }
    written
}

/// Every table the registry lists, the pipeline's included, is documented in
/// `notebooks-data/README.md`, and nothing else is: the document and the list are one.
#[test]
fn registry_tables_are_the_documented_ones() {
    let mut listed: Vec<&str> = EXPERIMENTS
        .iter()
        .flat_map(|e| e.tables.iter().copied())
        .chain(PIPELINE_TABLES.iter().copied())
        .collect();
    listed.sort_unstable();
    // `<image>-files` is `training fit`'s table, named after the image: not the report's.
    let mut docs: Vec<String> = documented()
        .into_keys()
        .filter(|name| !name.starts_with('<'))
        .collect();
    docs.sort_unstable();
    assert_eq!(
        listed, docs,
        "exp/registry.rs against notebooks-data/README.md"
    );
}

/// The population tables: per population, class counts add up to its files and extents, the
/// shares to 1, and every class with extents has costs for every structure.
fn check_population(written: &HashMap<String, Csv>) -> HashMap<String, (f64, f64)> {
    let t = &written[registry::FIG8_POPULATION];
    let mut totals: HashMap<String, (f64, f64, f64)> = HashMap::new();
    for r in &t.rows {
        let e = totals.entry(t.str(r, "population")).or_default();
        e.0 += t.num(r, "files");
        e.1 += t.num(r, "extents");
        e.2 += t.num(r, "files_share");
        let kinds: f64 = [
            "model_empty",
            "model_single",
            "model_linear",
            "model_piecewise",
        ]
        .iter()
        .map(|c| t.num(r, c))
        .sum();
        assert_eq!(kinds, t.num(r, "files"), "fig8: models of {r:?}");
        let (lo, hi, n) = (
            t.num(r, "min_extents"),
            t.num(r, "max_extents"),
            t.num(r, "extents"),
        );
        let files = t.num(r, "files");
        assert!(
            n >= lo * files && n <= hi * files,
            "fig8: extents outside the class {r:?}"
        );
    }
    let costs = &written[registry::FIG8_POPULATION_COST];
    for r in &t.rows {
        if t.num(r, "min_extents") == 0.0 {
            continue;
        }
        for s in ["learned", "iext16", "iext32", "btree"] {
            assert!(
                costs
                    .rows
                    .iter()
                    .any(|c| costs.str(c, "population") == t.str(r, "population")
                        && costs.str(c, "class") == t.str(r, "class")
                        && costs.str(c, "structure") == s
                        && costs.num(c, "median_ns") > 0.0
                        && costs.num(c, "sampled_files") >= 1.0),
                "fig8: no cost for {s} on {r:?}"
            );
        }
    }
    let expected = &written[registry::FIG8_EXPECTED_COST];
    for r in &expected.rows {
        let (files, extents, _) = totals[&expected.str(r, "population")];
        assert_eq!(expected.num(r, "files"), files, "fig8 expected: {r:?}");
        assert_eq!(expected.num(r, "extents"), extents, "fig8 expected: {r:?}");
        assert!(expected.num(r, "per_file_ns") > 0.0 && expected.num(r, "per_byte_ns") > 0.0);
        assert!(expected.num(r, "heap_bytes") > 0.0, "fig8 expected: {r:?}");
    }
    totals
        .into_iter()
        .map(|(k, (files, extents, share))| {
            assert!(
                (share - 1.0).abs() < 1e-9,
                "fig8: {k}: file shares add up to {share}"
            );
            (k, (files, extents))
        })
        .collect()
}

fn tool_exists(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(name).is_file())
}

#[test]
fn quick_demo_writes_documented_plausible_tables() {
    if !tool_exists("mke2fs") || !tool_exists("debugfs") {
        imagekit::skip(
            "quick_demo_writes_documented_plausible_tables",
            "mke2fs/debugfs not installed (Debian package e2fsprogs)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let (out, tables) = (dir.path().join("report"), dir.path().join("tables"));
    let status = Command::new(env!("CARGO_BIN_EXE_reports"))
        .args(["demo", "--quick", "-o"])
        .arg(&out)
        .arg("--tables")
        .arg(&tables)
        .status()
        .expect("running reports");
    assert!(status.success(), "reports demo --quick failed: {status}");

    // Every table has the documented columns, in the documented order.
    let written = documented_tables(&tables);
    for name in always() {
        assert!(written.contains_key(name), "table {name} was not written");
    }

    // Figure 1: every structure; latencies positive; p99 >= median; the baseline's speed-up 1.
    let t = &written[registry::FIG1_LOOKUP_LATENCY];
    for s in STRUCTURES {
        assert!(
            t.rows.iter().any(|r| t.str(r, "structure") == *s),
            "fig1: structure {s} missing"
        );
    }
    for r in &t.rows {
        let (med, p99, min) = (
            t.num(r, "median_ns"),
            t.num(r, "p99_ns"),
            t.num(r, "min_ns"),
        );
        assert!(
            min > 0.0 && med >= min && p99 >= med,
            "fig1: bad latencies {r:?}"
        );
        assert!(
            t.num(r, "batches") >= 1.0 && t.num(r, "speedup_vs_btree") > 0.0,
            "fig1: {r:?}"
        );
        if t.str(r, "structure") == "btree" {
            assert!((t.num(r, "speedup_vs_btree") - 1.0).abs() < 1e-9);
        }
        assert_eq!(t.str(r, "cpus_pinned"), "false");
    }
    for d in ["synthetic-1", "synthetic-1e5"] {
        assert!(
            t.rows.iter().any(|r| t.str(r, "dataset") == d),
            "fig1: dataset {d} missing"
        );
    }

    // Figure 2: quantiles in (0, 1], ns positive and non-decreasing per structure.
    let t = &written[registry::FIG2_LATENCY_CDF];
    let mut last: HashMap<String, (f64, f64)> = HashMap::new();
    for r in &t.rows {
        let (s, q, ns) = (t.str(r, "structure"), t.num(r, "quantile"), t.num(r, "ns"));
        assert!(q > 0.0 && q <= 1.0 && ns > 0.0, "fig2: {r:?}");
        if let Some(&(pq, pns)) = last.get(&s) {
            assert!(q > pq && ns >= pns, "fig2: {s} not monotone at {q}");
        }
        last.insert(s, (q, ns));
    }
    for s in ["learned", "btree", "ondisk"] {
        assert!(last.contains_key(s), "fig2: structure {s} missing");
    }

    // Figure 3: per run, answers plus errors add up to the queries; no audit mismatch; no
    // learned answer without a pack.
    let t = &written[registry::FIG3_TIER_SHARES];
    let mut runs: HashMap<(String, String, String), (f64, f64, f64)> = HashMap::new();
    for r in &t.rows {
        let key = (t.str(r, "image"), t.str(r, "models"), t.str(r, "stream"));
        let e = runs
            .entry(key)
            .or_insert((t.num(r, "queries"), t.num(r, "errors"), 0.0));
        e.2 += t.num(r, "answered");
        assert_eq!(
            t.num(r, "audit_mismatches"),
            0.0,
            "fig3: audit mismatch {r:?}"
        );
        if t.str(r, "models") == "none" && t.str(r, "tier") == "learned" {
            assert_eq!(t.num(r, "answered"), 0.0);
        }
    }
    assert!(!runs.is_empty());
    for (k, (queries, errors, answered)) in runs {
        assert!(queries > 0.0, "fig3: {k:?} ran no queries");
        assert_eq!(
            answered + errors,
            queries,
            "fig3: {k:?}: answered + errors != queries"
        );
    }
    let t = &written[registry::FIG3_ERROR_WINDOWS];
    for r in &t.rows {
        // Maps of at most PLAIN_MAX extents are kept plain: no lines, no window.
        let lines = t.num(r, "segments") >= 1.0;
        assert!(t.num(r, "extents") >= 1.0, "fig3 windows: {r:?}");
        assert_eq!(
            lines,
            t.str(r, "model_kind") != "empty",
            "fig3 windows: {r:?}"
        );
        if lines {
            assert!(t.num(r, "max_window") >= 2.0, "fig3 windows: {r:?}");
        } else {
            assert_eq!(t.num(r, "max_window"), 0.0, "fig3 windows: {r:?}");
        }
    }

    // Figure 4: every in-memory structure holds bytes; stack byte counts add up.
    let t = &written[registry::FIG4_BYTES_PER_EXTENT];
    for r in &t.rows {
        assert!(
            t.num(r, "bytes_per_extent") > 0.0 && t.num(r, "heap_bytes") > 0.0,
            "fig4: {r:?}"
        );
    }
    let t = &written[registry::FIG4_STACK_MEMORY];
    for r in &t.rows {
        let parts = ["model_bytes", "record_bytes", "index_bytes"].map(|c| t.num(r, c));
        assert_eq!(
            parts.iter().sum::<f64>(),
            t.num(r, "total_bytes"),
            "fig4 stacks: {r:?}"
        );
    }

    // Figures 5-7: positive times and rates.
    let t = &written[registry::FIG5_READ_PATH];
    assert!(t
        .rows
        .iter()
        .any(|r| t.str(r, "component") == "tier lookup: learned"));
    for r in &t.rows {
        assert!(
            t.num(r, "median_ns") > 0.0 && t.num(r, "p99_ns") >= t.num(r, "median_ns"),
            "fig5: {r:?}"
        );
    }
    if let Some(t) = written.get("fig6_end_to_end") {
        for r in &t.rows {
            assert!(
                t.num(r, "mb_per_s") > 0.0 && t.num(r, "iops") > 0.0 && t.num(r, "reads") > 0.0,
                "fig6: {r:?}"
            );
            assert_eq!(t.num(r, "jobs"), 1.0);
        }
    }
    let t = &written[registry::FIG7_TRAINING];
    assert!(t.rows.iter().any(|r| t.str(r, "source") == "image"));
    for r in &t.rows {
        assert!(
            t.num(r, "extents_per_s") > 0.0 && t.num(r, "seconds") > 0.0,
            "fig7: {r:?}"
        );
    }
    let t = &written[registry::HEADLINE];
    for r in &t.rows {
        assert!(t.num(r, "median_ns") > 0.0, "headline: {r:?}");
    }
    // Figure 8: one population per image, plus the run's files together.
    let pops = check_population(&written);
    assert!(pops.contains_key("all files of this run"), "fig8: {pops:?}");

    // The report and its figures.
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for fig in [
        "fig1_lookup_latency",
        "fig2_latency_cdf",
        "fig3_accuracy",
        "fig4_bytes_per_extent",
        "fig5_read_path",
        "fig7_training",
        "fig8_population",
    ] {
        assert!(
            report.contains(&format!("({fig}.png)")),
            "report does not show {fig}"
        );
        let png = std::fs::read(out.join(format!("{fig}.png"))).expect("PNG written");
        assert!(png.starts_with(b"\x89PNG"), "{fig}.png is not a PNG");
        let svg = std::fs::read_to_string(out.join(format!("{fig}.svg"))).expect("SVG written");
        assert!(svg.contains("<svg"), "{fig}.svg is not an SVG");
    }
    assert!(
        report.contains("Machine"),
        "report does not state the machine"
    );
}

/// `reports run --live` on a kernel loop mount of a test image: the report and its tables are
/// written, documented, and the population is the image's regular files (each path once:
/// the image's inodes have one link each).
#[test]
fn quick_live_report_on_a_mounted_image() {
    if !imagekit::root_or_skip("quick_live_report_on_a_mounted_image") {
        return;
    }
    let images = imagekit::standard().expect("standard images");
    let image = images
        .iter()
        .find(|i| i.name == "frag-4k")
        .expect("the frag-4k standard image");
    let fs = ext4::Fs::open_path(&image.path).expect("opening the image");
    let (files, errors) = predictor::train::regular_files(&fs);
    assert!(errors.is_empty(), "{errors:?}");
    let extents: u64 = files
        .iter()
        .map(|(_, i)| fs.extents(i).expect("extents").len() as u64)
        .sum();
    let mount = imagekit::kernel::LoopMount::new(&image.path).expect("loop mount");
    let root = std::fs::canonicalize(mount.path()).expect("mount point");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (out, tables) = (dir.path().join("report"), dir.path().join("tables"));
    let status = Command::new(env!("CARGO_BIN_EXE_reports"))
        .args(["run", "--quick", "--live"])
        .arg(mount.path())
        .arg("-o")
        .arg(&out)
        .arg("--tables")
        .arg(&tables)
        .status()
        .expect("running reports");
    assert!(status.success(), "reports run --live failed: {status}");
    mount.unmount().expect("unmount");

    let written = documented_tables(&tables);
    for name in [
        "fig1_lookup_latency",
        "fig4_bytes_per_extent",
        "fig7_training",
        "run",
    ] {
        assert!(written.contains_key(name), "table {name} was not written");
    }
    let pops = check_population(&written);
    let name = format!("live:{}", root.display());
    assert_eq!(pops.len(), 1, "{pops:?}");
    assert_eq!(
        pops.get(&name),
        Some(&(files.len() as f64, extents as f64)),
        "{pops:?}"
    );
    let t = &written[registry::FIG1_LOOKUP_LATENCY];
    assert!(
        t.rows.iter().any(|r| t.str(r, "source") == "live"),
        "fig1: no live dataset"
    );
    let t = &written[registry::FIG7_TRAINING];
    assert!(
        t.rows.iter().any(|r| t.str(r, "source") == "live"),
        "fig7: no live run"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        report.contains("(fig8_population.png)"),
        "report does not show fig 8"
    );
    assert!(
        report.contains(&format!("Population ({name})")),
        "no population headline"
    );
}
