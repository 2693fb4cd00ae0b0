//! The Markdown report: machine, command, headline numbers, then one section per experiment
//! with its figure, its key numbers and the tables behind it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::Section;
use crate::support::machine::Machine;

/// Everything the report needs besides the sections.
pub struct Meta<'a> {
    /// Machine, date, command.
    pub machine: &'a Machine,
    /// Where the tables went (as given on the command line).
    pub tables_dir: &'a Path,
    /// One line per image: what it is.
    pub images: Vec<String>,
    /// Summary bullets (the headline numbers).
    pub summary: Vec<String>,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// `--quick`.
    pub quick: bool,
}

/// Writes `dir/report.md`.
pub fn write(dir: &Path, meta: &Meta<'_>, sections: &[Section]) -> Result<std::path::PathBuf> {
    let mut md = String::new();
    let m = meta.machine;
    let _ = writeln!(md, "# iomap-predictor: experiment report\n");
    if meta.quick {
        let _ = writeln!(md, "> **--quick run**: every experiment at toy scale, for tests. The numbers are not meaningful.\n");
    }
    let _ = writeln!(
        md,
        "- **Command**: `{}`\n- **Code**: {}\n- **Date**: {}\n- **Machine**: {}, {} cores ({}), Linux {}\n- **Load average at start** (1, 5, 15 min): {} (above 0 means other work shared the CPUs and adds noise)\n- **Run time**: {:.0} s\n- **Tables** (Parquet + CSV, columns in `notebooks-data/README.md`): `{}`\n",
        m.command,
        m.code(),
        m.date,
        m.cpu_model,
        m.cores,
        if m.pinned { "CPUs pinned" } else { "CPUs not pinned" },
        m.kernel,
        m.load_avg,
        meta.elapsed_s,
        meta.tables_dir.display()
    );
    let _ = writeln!(md, "## Images\n");
    for i in &meta.images {
        let _ = writeln!(md, "- {i}");
    }
    let _ = writeln!(md, "\n## Summary\n");
    for s in &meta.summary {
        let _ = writeln!(md, "- {s}");
    }
    let _ = writeln!(md);
    for s in sections {
        let _ = writeln!(md, "## {}\n", s.title);
        for f in &s.figures {
            let _ = writeln!(md, "![{f}]({f}.png)\n\n([SVG]({f}.svg))\n");
        }
        let _ = writeln!(md, "{}", s.body.trim_end());
        if !s.tables.is_empty() {
            let names: Vec<String> = s.tables.iter().map(|t| format!("`{}`", t.name)).collect();
            let _ = writeln!(md, "\nTables: {}.", names.join(", "));
        }
        let _ = writeln!(md);
    }
    let skipped: Vec<&(String, String)> = sections.iter().flat_map(|s| &s.skipped).collect();
    if !skipped.is_empty() {
        let _ = writeln!(
            md,
            "## Not measured in this run\n\n| what | why |\n|---|---|"
        );
        for (what, why) in skipped {
            let _ = writeln!(
                md,
                "| {what} | {} |",
                why.replace('|', "/").replace('\n', " ")
            );
        }
        let _ = writeln!(md);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
