//! `reports structures`: the JSON lines have exactly the documented keys and structures, the
//! counted bytes are consistent, and on maps the kernel allocator made (loop mounts, root) the
//! compact learned index holds at most a third of the iext tree's bytes (16-byte records), the
//! floor issue 13 set. Timings are only checked to be positive: numbers live in the reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const KEYS: [&str; 8] = [
    "file",
    "extents",
    "structure",
    "bytes",
    "bytes_per_extent",
    "ns_warm_shared",
    "ns_cold_evicted",
    "ns_sequential",
];

const NAMES: [&str; 7] = [
    "compact", "learned", "iext16", "iext32", "btree", "sorted", "chosen",
];

/// Runs `reports structures IMAGE ARGS --json --quick`; the parsed lines, or the stderr of a
/// failed run.
fn run(image: &Path, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_reports"))
        .arg("structures")
        .arg(image)
        .args(args)
        .args(["--json", "--quick"])
        .output()
        .unwrap_or_else(|e| panic!("running reports: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect())
}

/// Checks every line's shape; returns per file, per structure, the bytes.
fn check(lines: &[serde_json::Value]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut files: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for l in lines {
        let obj = l
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {l}"));
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, KEYS.into_iter().collect(), "keys of {l}");
        let extents = l["extents"].as_u64().unwrap_or(0);
        let bytes = l["bytes"].as_u64().unwrap_or(0);
        let per = l["bytes_per_extent"].as_f64().unwrap_or(-1.0);
        assert!(extents > 0, "{l}");
        assert!((per - bytes as f64 / extents as f64).abs() < 1e-6, "{l}");
        for k in ["ns_warm_shared", "ns_cold_evicted", "ns_sequential"] {
            let v = l[k].as_f64().unwrap_or(-1.0);
            assert!(v.is_finite() && v >= 0.0, "{k} of {l}");
        }
        let structure = l["structure"].as_str().unwrap_or_default().to_string();
        let file = l["file"].as_str().unwrap_or_default().to_string();
        files.entry(file).or_default().insert(structure, bytes);
    }
    for (file, s) in &files {
        let names: BTreeSet<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(names, NAMES.into_iter().collect(), "structures of {file}");
        // The per-file choice never holds more than the kernel's tree (the header aside).
        let header = predictor::index::choose::CHOSEN_HEADER_BYTES as u64;
        let (chosen, tree) = (s["chosen"], s["iext16"]);
        assert!(
            chosen <= tree + header,
            "{file}: chosen {chosen} B, iext16 {tree} B"
        );
    }
    files
}

#[test]
fn json_lines_have_the_documented_shape() {
    let images = imagekit::standard().unwrap_or_else(|e| panic!("test images: {e}"));
    let img = images
        .iter()
        .find(|i| i.name == "frag-4k")
        .unwrap_or_else(|| panic!("no frag-4k image"));
    let all = check(&run(&img.path, &["--min-extents", "1000"]).unwrap_or_else(|e| panic!("{e}")));
    assert!(all.contains_key("/frag-10k"), "files: {:?}", all.keys());
    for (file, s) in &all {
        assert!(s.values().all(|&b| b > 0), "{file}: {s:?}");
    }
    // --path picks exactly the files named.
    let one = check(&run(&img.path, &["--path", "/frag-10k"]).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(one.keys().collect::<Vec<_>>(), ["/frag-10k"]);
    // A missing file and an image without such maps are errors that say what is wrong.
    let err = run(&img.path, &["--path", "/no-such-file"]).expect_err("missing path accepted");
    assert!(err.contains("/no-such-file"), "{err}");
    let err = run(&img.path, &["--min-extents", "4000000000"]).expect_err("nothing to measure");
    assert!(err.contains("no regular file with at least"), "{err}");
}

#[test]
fn compact_holds_a_third_of_iext16_on_kernel_allocator_maps() {
    if !imagekit::root_or_skip("compact_holds_a_third_of_iext16_on_kernel_allocator_maps") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    use imagekit::kernel::Allocated;
    for (pattern, scale) in [
        (Allocated::RandomPunched, 20_000),
        (Allocated::SparseDisk, 10_000),
        (Allocated::Appenders, 4_000),
        (Allocated::Sqlite, 2_000),
    ] {
        let recipe = imagekit::Recipe::Allocated {
            pattern,
            scale,
            seed: 7,
        };
        let image = recipe
            .build(tmp.path())
            .unwrap_or_else(|e| panic!("{}: {e}", recipe.name()))
            .path;
        let all = check(&run(&image, &["--min-extents", "1000"]).unwrap_or_else(|e| panic!("{e}")));
        assert!(!all.is_empty(), "{}: no map of 1000 extents", recipe.name());
        for (file, s) in &all {
            let (c, k) = (s["compact"], s["iext16"]);
            assert!(
                3 * c <= k,
                "{} {file}: compact {c} B against iext16 {k} B",
                recipe.name()
            );
            eprintln!("{} {file}: compact {c} B, iext16 {k} B", recipe.name());
        }
    }
}
