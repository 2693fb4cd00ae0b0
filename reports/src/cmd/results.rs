//! `reports results`: the measurements the README quotes besides the demo, gathered into one
//! committed file ([`crate::support::results`]) with where and from which commit they came.
//! `scripts/results.sh` runs the measurements and then this collector; nothing here measures
//! anything.
//!
//! Sources: criterion's lookup bench (`target/criterion/**/new/{benchmark,estimates}.json`),
//! and the JSON lines of `reports bpf-latency`, `reports load`, `reports reads` and
//! `scripts/fuzz.sh` (`JSON=`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize};

use crate::support::machine::Machine;
use crate::support::results::{LookupRow, Provenance, Results, DEFAULT_FILE};

/// Arguments of `reports results`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Criterion's output directory (`$CARGO_TARGET_DIR/criterion`) after
    /// `cargo bench -p benches --bench lookup`.
    #[arg(long, value_name = "DIR")]
    criterion: PathBuf,
    /// The JSON lines of `reports bpf-latency --synthetic ...`.
    #[arg(long, value_name = "FILE")]
    bpf_latency: PathBuf,
    /// The JSON lines of `reports load` runs.
    #[arg(long, value_name = "FILE")]
    load: PathBuf,
    /// The JSON lines of `reports reads` runs.
    #[arg(long, value_name = "FILE")]
    reads: PathBuf,
    /// The JSON lines `scripts/fuzz.sh` appends with `JSON=FILE`.
    #[arg(long, value_name = "FILE")]
    fuzz: PathBuf,
    /// The JSON lines of `reports huge --json` (one per size).
    #[arg(long, value_name = "FILE")]
    huge: Option<PathBuf>,
    /// The results file to write.
    #[arg(long, default_value = DEFAULT_FILE)]
    out: PathBuf,
}

/// Runs `reports results`: reads every source and writes the results file.
pub fn run(args: &Args) -> Result<()> {
    let machine = Machine::detect();
    let results = Results {
        provenance: Provenance {
            command: "bash scripts/results.sh".into(),
            commit: machine.commit.clone(),
            tree_clean: machine.tree_clean,
            machine: machine.caption(),
            load_avg: machine.load_avg.clone(),
        },
        lookup: criterion_rows(&args.criterion)?,
        bpf_latency: json_lines(&args.bpf_latency)?,
        load: json_lines(&args.load)?,
        reads: json_lines(&args.reads)?,
        fuzz: json_lines(&args.fuzz)?,
        huge: match &args.huge {
            Some(p) => json_lines(p)?,
            None => Vec::new(),
        },
    };
    if results.lookup.is_empty() {
        bail!(
            "{}: no criterion results (run `cargo bench -p benches --bench lookup` first)",
            args.criterion.display()
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&results)? + "\n";
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} lookup medians, {} BPF rows, {} load runs, {} fio runs, {} fuzz targets",
        args.out.display(),
        results.lookup.len(),
        results.bpf_latency.len(),
        results.load.len(),
        results.reads.len(),
        results.fuzz.len()
    );
    Ok(())
}

/// One object per non-empty line.
fn json_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// Every `*/new/benchmark.json` under `dir` with its median, in ns per element.
fn criterion_rows(dir: &Path) -> Result<Vec<LookupRow>> {
    #[derive(Deserialize)]
    struct Bench {
        group_id: String,
        function_id: Option<String>,
        value_str: Option<String>,
        throughput: Option<Throughput>,
    }
    #[derive(Deserialize)]
    enum Throughput {
        Elements(u64),
        #[serde(other)]
        Other,
    }
    #[derive(Deserialize)]
    struct Estimates {
        median: Estimate,
    }
    #[derive(Deserialize)]
    struct Estimate {
        point_estimate: f64,
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let mut rows = Vec::new();
    // Symbolic links are not followed (walkdir's default), so a link cycle cannot loop.
    for entry in walkdir::WalkDir::new(dir) {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .into_path();
        let in_new = path.parent().and_then(Path::file_name) == Some("new".as_ref());
        if !in_new || path.file_name() != Some("benchmark.json".as_ref()) {
            continue;
        }
        let b: Bench = serde_json::from_str(&read(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let est_path = path.with_file_name("estimates.json");
        let est: Estimates = serde_json::from_str(&read(&est_path)?)
            .with_context(|| format!("parsing {}", est_path.display()))?;
        let per = match b.throughput {
            Some(Throughput::Elements(n)) if n > 0 => n as f64,
            _ => 1.0,
        };
        rows.push(LookupRow {
            group: b.group_id,
            structure: b.function_id.unwrap_or_default(),
            stream: b.value_str.unwrap_or_default(),
            ns: est.median.point_estimate / per,
        });
    }
    rows.sort_by(|a, b| {
        (&a.group, &a.structure, &a.stream).cmp(&(&b.group, &b.structure, &b.stream))
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::results::{render, Provenance};

    #[test]
    fn criterion_output_is_read_per_element() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("lookup_10/learned/warm-alone/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"lookup/10","function_id":"learned","value_str":"warm-alone","throughput":{"Elements":4096},"full_id":"x","directory_name":"x","title":"x"}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":40960.0,"standard_error":1.0}}"#,
        )
        .unwrap();
        let rows = criterion_rows(dir.path()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].group.as_str(), rows[0].stream.as_str(), rows[0].ns),
            ("lookup/10", "warm-alone", 10.0)
        );
        let r = Results {
            provenance: Provenance {
                command: "c".into(),
                commit: None,
                tree_clean: false,
                machine: "m".into(),
                load_avg: "0".into(),
            },
            lookup: rows,
            bpf_latency: Vec::new(),
            load: Vec::new(),
            reads: Vec::new(),
            fuzz: Vec::new(),
            huge: Vec::new(),
        };
        let md = render(&r);
        assert!(md.contains("| 10 | warm-alone | 10.0 | - |"), "{md}");
    }
}
