//! The committed demo report must come from the code as it is: it records the commit it was
//! built from, built from a clean tree, and no file that feeds it (the readers, the tiers, the
//! server and BPF program, the experiments, the test-image builder) may have changed since.
//! When this fails, regenerate: `bash scripts/demo.sh`, then `reports readme`.

use std::path::Path;
use std::process::Command;

/// What feeds the report: every source file under these, tests and Markdown left out.
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
    assert_eq!(
        git(&repo, &["rev-parse", "--is-shallow-repository"]),
        "false",
        "a shallow clone cannot tell what changed since the report's commit"
    );
    git(&repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")]);
    let mut args = vec!["diff", "--name-only", commit, "HEAD", "--"];
    args.extend_from_slice(FEEDS);
    let changed: Vec<String> = git(&repo, &args)
        .lines()
        .filter(|p| !p.ends_with(".md") && !p.split('/').any(|c| c == "tests"))
        .map(str::to_string)
        .collect();
    assert!(
        changed.is_empty(),
        "the committed demo report was built at {commit}; code that feeds it changed since: {changed:?}. \
         Regenerate it (bash scripts/demo.sh) and the README's demo section (reports readme)."
    );
}
