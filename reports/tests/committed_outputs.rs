//! The committed outputs must come from the code as it is. Each records the commit it was built
//! from, from a clean tree, and no file that feeds it may have changed since:
//! - the demo report (the readers, the tiers, the server and BPF program, the experiments, the
//!   test-image builder); regenerate with `bash scripts/demo.sh`, then `reports readme`;
//! - `results/results.json` (the same, and the benches, the scripts, the fuzz targets and
//!   `Cargo.lock`); regenerate with `bash scripts/results.sh`.

use std::path::Path;
use std::process::Command;

/// What feeds the demo report: every source file under these, tests and Markdown left out.
const FEEDS: &[&str] = &[
    "ext4/src",
    "livefs/src",
    "predictor/src",
    "server/src",
    "bpf/src",
    "bpf/program",
    "reports/src",
    "reports/assets",
    "imagekit/src",
    "tables/src",
];

/// What feeds `results/results.json`, besides [`FEEDS`].
const RESULTS_FEEDS: &[&str] = &["benches", "scripts", "fuzz/fuzz_targets", "Cargo.lock"];

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("running git (the check needs the repository's history)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_demo_report_comes_from_the_code_as_it_is() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = std::fs::read_to_string(repo.join("reports/demo/report.md"))
        .expect("reports/demo/report.md");
    let code = report
        .lines()
        .find_map(|l| l.strip_prefix("- **Code**: commit "))
        .expect("the report records no commit (a `- **Code**: commit ...` line)");
    let (commit, state) = code.split_once(' ').unwrap_or((code, ""));
    assert_eq!(commit.len(), 40, "not a full commit id: {commit}");
    assert_eq!(
        state, "(clean tree)",
        "the demo was built from a tree with uncommitted changes"
    );
    let changed = changed_since(&repo, commit, FEEDS);
    assert!(
        changed.is_empty(),
        "the committed demo report was built at {commit}; code that feeds it changed since: {changed:?}. \
         Regenerate it (bash scripts/demo.sh) and the README's demo section (reports readme)."
    );
}

/// The files under `feeds` changed between `commit` and HEAD (tests and Markdown left out).
fn changed_since(repo: &Path, commit: &str, feeds: &[&str]) -> Vec<String> {
    assert_eq!(
        git(repo, &["rev-parse", "--is-shallow-repository"]),
        "false",
        "a shallow clone cannot tell what changed since {commit}"
    );
    git(repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")]);
    let mut args = vec!["diff", "--name-only", commit, "HEAD", "--"];
    args.extend_from_slice(feeds);
    git(repo, &args)
        .lines()
        .filter(|p| !p.ends_with(".md") && !p.split('/').any(|c| c == "tests"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_committed_results_come_from_the_code_as_it_is() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text =
        std::fs::read_to_string(repo.join("results/results.json")).expect("results/results.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("results.json is JSON");
    let provenance = &json["provenance"];
    let commit = provenance["commit"]
        .as_str()
        .expect("results.json records no provenance.commit");
    assert_eq!(commit.len(), 40, "not a full commit id: {commit}");
    assert_eq!(
        provenance["tree_clean"].as_bool(),
        Some(true),
        "results.json was measured on a tree with uncommitted changes"
    );
    let feeds: Vec<&str> = FEEDS.iter().chain(RESULTS_FEEDS).copied().collect();
    let changed = changed_since(&repo, commit, &feeds);
    assert!(
        changed.is_empty(),
        "results/results.json was measured at {commit}; code that feeds it changed since: \
         {changed:?}. Re-measure it (bash scripts/results.sh)."
    );
}
