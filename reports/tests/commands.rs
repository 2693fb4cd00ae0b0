//! The measurement commands of `reports` other than the report itself (`reads`, `load`,
//! `bpf-latency`, which `scripts/results.sh` runs for the README) on a standard test image:
//! each prints JSON lines with the keys `reports results` reads back, for every system, pattern
//! and job count asked, and with self-consistent numbers. Timings are only checked to be
//! positive and ordered: numbers live in the reports. `reads` and `bpf-latency` need root (loop
//! and FUSE mounts, BPF); `load` needs the `server` binary beside `reports` (`cargo test
//! --workspace` builds it). Under `IOMAP_REQUIRE_ALL` (CI) a skip is a failure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predictor::FitParams;

/// A standard image the kernel mounts, its most fragmented file, and a model pack trained on it
/// (written into `dir`).
fn image_with_pack(dir: &Path) -> (PathBuf, String, PathBuf) {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let (img, file) = images
        .iter()
        .filter(|i| i.kernel_mountable)
        .flat_map(|i| i.specs.iter().map(move |s| (i, s)))
        .filter_map(|(i, s)| Some((i, s, *s.extents.as_ref()?.start())))
        .max_by_key(|&(_, _, n)| n)
        .map(|(i, s, _)| (i, s.path.clone()))
        .expect("a kernel-mountable standard image with a fragmented file");
    let fs = ext4::Fs::open_path(&img.path).unwrap_or_else(|e| panic!("{e}"));
    let pack = dir.join("image.pack");
    predictor::train::train(&fs, &FitParams::default(), 1, &|_| ())
        .pack
        .write_file(&pack)
        .unwrap_or_else(|e| panic!("writing the pack: {e}"));
    (img.path.clone(), file, pack)
}

/// Runs `reports ARGS`; its stdout as JSON lines.
fn reports(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_reports"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running reports: {e}"));
    assert!(
        out.status.success(),
        "reports {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn reads_runs_fio_through_every_system_pattern_and_job_count() {
    if !imagekit::root_or_skip("reads_runs_fio_through_every_system_pattern_and_job_count") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (image, file, pack) = image_with_pack(tmp.path());
    let image = image.to_string_lossy().into_owned();
    let pack = pack.to_string_lossy().into_owned();
    let lines = reports(&[
        "reads",
        &image,
        "--path",
        &file,
        "--models",
        &pack,
        "--tiers",
        "ondisk,learned",
        "--seconds",
        "0.3",
        "--jobs",
        "1,2",
        "--pin",
        "split",
    ]);
    let want: BTreeSet<String> = [
        "path", "rw", "jobs", "pin", "seconds", "iops", "mb_per_s", "p50_us", "p99_us",
    ]
    .map(String::from)
    .into();
    let mut runs = BTreeSet::new();
    for l in &lines {
        assert_eq!(keys(l), want, "{l}");
        assert_eq!(l["pin"], "split", "{l}");
        let (iops, mb, p50, p99) = (
            num(l, "iops"),
            num(l, "mb_per_s"),
            num(l, "p50_us"),
            num(l, "p99_us"),
        );
        assert!(iops > 0.0 && p50 > 0.0 && p99 >= p50, "{l}");
        // Every read is 4 KiB: the byte rate is the read rate times 4096.
        let mb_from_iops = iops * 4096.0 / 1e6;
        assert!((mb - mb_from_iops).abs() <= 0.02 * mb_from_iops, "{l}");
        runs.insert((
            l["path"].as_str().unwrap_or_default().to_string(),
            l["rw"].as_str().unwrap_or_default().to_string(),
            num(l, "jobs") as u32,
        ));
    }
    let mut expected = BTreeSet::new();
    for path in [
        "kernel ext4 (loop)",
        "fuse2fs",
        "ours: ondisk",
        "ours: learned",
    ] {
        for rw in ["randread", "read"] {
            for jobs in [1, 2] {
                expected.insert((path.to_string(), rw.to_string(), jobs));
            }
        }
    }
    assert_eq!(runs, expected);
    assert_eq!(lines.len(), expected.len(), "one line per run");
}

/// The `server` binary `reports` would use: the one built beside it.
fn server_binary() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_BIN_EXE_reports")).with_file_name("server");
    bin.is_file().then_some(bin)
}

/// Stops the service when the test ends, however it ends.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn load_drives_the_socket_service_without_errors() {
    let Some(server) = server_binary() else {
        imagekit::skip(
            "load_drives_the_socket_service_without_errors",
            "no `server` binary beside `reports` (cargo build -p server)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (image, file, pack) = image_with_pack(tmp.path());
    let socket = tmp.path().join("iomap.sock");
    let _serve = Serve(
        Command::new(server)
            .arg("serve")
            .arg(&image)
            .arg("--models")
            .arg(&pack)
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting server serve: {e}")),
    );
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the socket did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let image = image.to_string_lossy().into_owned();
    let socket = socket.to_string_lossy().into_owned();
    for path in [None, Some(file.as_str())] {
        let mut args = vec![
            "load",
            &image,
            "--socket",
            &socket,
            "--clients",
            "2",
            "--batch",
            "16",
            "--seconds",
            "0.3",
        ];
        if let Some(p) = path {
            args.extend(["--path", p]);
        }
        let lines = reports(&args);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert_eq!(num(l, "clients"), 2.0);
        assert_eq!(num(l, "batch"), 16.0);
        assert_eq!(num(l, "errors"), 0.0, "{l}");
        let queries = num(l, "queries");
        assert!(queries > 0.0 && queries % 16.0 == 0.0, "whole batches: {l}");
        assert!(num(l, "qps") > 0.0, "{l}");
        let lat = &l["batch_latency_us"];
        let (p50, p90, p99, max) = (
            num(lat, "p50"),
            num(lat, "p90"),
            num(lat, "p99"),
            num(lat, "max"),
        );
        assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{l}");
    }
}

#[test]
fn bpf_latency_times_the_program_beside_userspace() {
    if !imagekit::root_or_skip("bpf_latency_times_the_program_beside_userspace") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (image, _, pack) = image_with_pack(tmp.path());
    let quick = ["--rounds", "1", "--repeat", "2000", "--queries", "256"];
    let synthetic = reports(&[&["bpf-latency", "--synthetic", "1000,20000"], &quick[..]].concat());
    let on_image = reports(
        &[
            &["bpf-latency", &image.to_string_lossy(), "--models"],
            &[&*pack.to_string_lossy(), "--files", "1"][..],
            &quick[..],
        ]
        .concat(),
    );
    assert_eq!(synthetic.len(), 2, "{synthetic:?}");
    assert_eq!(on_image.len(), 1, "{on_image:?}");
    for (l, n) in synthetic.iter().zip([1000u32, 20000]) {
        assert_eq!(l["dataset"], format!("synthetic-{n}"), "{l}");
        assert_eq!(num(l, "extents"), f64::from(n), "{l}");
    }
    for l in synthetic.iter().chain(&on_image) {
        for key in [
            "bpf_noop_ns",
            "bpf_model_ns",
            "bpf_syscall_ns",
            "user_learned_ns",
            "user_iext16_ns",
            "user_btree_ns",
        ] {
            assert!(num(l, key) > 0.0, "{key}: {l}");
        }
        // The harness alone is part of every program run.
        assert!(num(l, "bpf_noop_ns") <= num(l, "bpf_model_ns"), "{l}");
        assert!(
            num(l, "queries") > 0.0 && num(l, "bpf_probes") >= 1.0,
            "{l}"
        );
    }
    for l in &on_image {
        assert!(l["ino"].as_u64().is_some(), "{l}");
    }
}

/// `reports cache` replays the committed real traces (no root needed): every structure at every
/// budget answers every query of every traced file, with no stale answer, and the learned tier
/// never makes more upcalls than fuse-iomap's cache on the same file and budget.
#[test]
fn cache_replays_the_committed_traces_without_a_stale_answer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces");
    let traces: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert_eq!(traces.len(), 2, "the two committed traces");
    let mut args = vec!["cache", "--json", "--budget", "4K,256K"];
    args.extend(traces.iter().map(String::as_str));
    let rows = reports(&args);
    let want: BTreeSet<String> = [
        "trace",
        "file",
        "extents",
        "budget",
        "structure",
        "queries",
        "upcalls",
        "stale",
        "peak_bytes",
        "update_ns_p99",
    ]
    .map(String::from)
    .into();
    let mut by_key: std::collections::BTreeMap<(String, u64, u64, String), (f64, f64)> =
        Default::default();
    for r in &rows {
        assert!(want.is_subset(&keys(r)), "{r}");
        assert_eq!(num(r, "stale"), 0.0, "{r}");
        assert!(num(r, "queries") >= 1000.0, "{r}");
        let key = (
            r["trace"].as_str().unwrap().to_string(),
            num(r, "file") as u64,
            num(r, "budget") as u64,
            r["structure"].as_str().unwrap().to_string(),
        );
        by_key.insert(key, (num(r, "upcalls"), num(r, "queries")));
    }
    // Both traces, one file each, two budgets, five structures.
    assert_eq!(rows.len(), 2 * 2 * 5, "{rows:?}");
    for ((trace, file, budget, s), (upcalls, _)) in &by_key {
        if s == "learned-cache" {
            let fuse = by_key[&(trace.clone(), *file, *budget, "fuse-cache".into())].0;
            assert!(
                *upcalls <= fuse,
                "{trace} inode {file} at {budget}: learned {upcalls} > fuse {fuse}"
            );
        }
    }
}

/// `reports cache --bpf` (root): the committed traces replayed through the BPF tier in the
/// kernel, the file's compact form replaced after its map changes; every answer of the program
/// is the map's at that moment.
#[test]
fn the_bpf_tier_replays_the_committed_traces_without_a_wrong_answer() {
    if !imagekit::root_or_skip("the_bpf_tier_replays_the_committed_traces_without_a_wrong_answer") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces");
    let traces: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["cache", "--json", "--budget", "256K", "--bpf"];
    args.extend(traces.iter().map(String::as_str));
    let rows = reports(&args);
    let in_kernel: Vec<_> = rows
        .iter()
        .filter(|r| r.get("answered").is_some())
        .collect();
    assert_eq!(in_kernel.len(), 2, "one traced file per trace: {rows:?}");
    let (mut answered, mut replaced) = (0.0, 0.0);
    for r in in_kernel {
        assert_eq!(num(r, "wrong"), 0.0, "{r}");
        answered += num(r, "answered");
        replaced += num(r, "replacements");
    }
    // "0 wrong" means something only if the program answered, on maps that changed.
    assert!(
        answered >= 5_000.0 && replaced >= 500.0,
        "{answered} answers, {replaced} replacements"
    );
}

/// `reports huge` at a toy size: one JSON object per size with every key, both structures'
/// sampled answers checked with none wrong, and (as root) the BPF tier serving the file with
/// every answer of the program checked; without root it says the tier is unavailable.
#[test]
fn huge_checks_a_sample_of_answers_with_none_wrong() {
    let rows = reports(&[
        "huge",
        "--extents",
        "100000",
        "--scale",
        "500",
        "--quick",
        "--json",
    ]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    let want: BTreeSet<String> = [
        "extents_asked",
        "extents",
        "source",
        "span_blocks",
        "generate_s",
        "compact_form",
        "compact",
        "iext16",
        "bytes_ratio",
        "bpf",
        "bars",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(r), want);
    assert_eq!(num(r, "extents"), 100_000.0, "{r}");
    for s in ["compact", "iext16"] {
        let b = &r[s];
        assert_eq!(num(b, "checked"), 1_000_000.0, "{b}");
        assert_eq!(num(b, "wrong"), 0.0, "{b}");
        for k in ["bytes", "build_rate", "warm_shared_ns", "cold_evicted_ns"] {
            assert!(num(b, k) > 0.0, "{s}.{k}: {b}");
        }
    }
    let bpf = &r["bpf"];
    let status = bpf["status"].as_str().unwrap_or_default();
    if imagekit::kernel::is_root() {
        assert_eq!(status, "served", "{bpf}");
        let answered: f64 = bpf["attempts"]
            .as_array()
            .unwrap_or_else(|| panic!("no attempts: {bpf}"))
            .iter()
            .map(|a| {
                assert_eq!(num(a, "wrong"), 0.0, "{a}");
                num(a, "answered")
            })
            .sum();
        assert_eq!(answered, 100_000.0, "{bpf}");
        assert_eq!(r["bars"]["bpf"], serde_json::Value::Bool(true), "{r}");
    } else {
        assert_eq!(status, "unavailable", "{bpf}");
        imagekit::skip(
            "huge_checks_a_sample_of_answers_with_none_wrong (its BPF part)",
            "not root",
        );
    }
}
