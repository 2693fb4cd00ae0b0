//! `reports readme`: the README's generated sections, rebuilt from committed files so the
//! numbers the README quotes are never typed by hand: the demo section from the committed demo
//! report, the results section from `results/results.json` (criterion, BPF latency, fio,
//! socket load, fuzzing; see [`crate::results`]). `--check` says whether the README is what it
//! would write (CI runs it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The line before the demo section.
pub const BEGIN: &str =
    "<!-- reports readme: begin. Generated from reports/demo/report.md by `reports readme`; do not edit. -->";
/// The line after it.
pub const END: &str = "<!-- reports readme: end -->";
/// The line before the results section.
pub const RESULTS_BEGIN: &str =
    "<!-- reports readme results: begin. Generated from results/results.json by `reports readme`; do not edit. -->";
/// The line after it.
pub const RESULTS_END: &str = "<!-- reports readme results: end -->";

/// The generated section: the run's facts (command, date, machine, load, run time) and the
/// report's summary bullets, verbatim, with figures 8 and 1. `report_link` is the report's
/// path as the README links it.
pub fn section(report: &str, report_link: &str) -> Result<String> {
    let facts: Vec<&str> = report
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("- **"))
        .filter(|l| !l.starts_with("- **Tables**"))
        .collect();
    let summary: Vec<&str> = report
        .lines()
        .skip_while(|l| l.trim() != "## Summary")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("- "))
        .collect();
    if facts.is_empty() || summary.is_empty() {
        bail!("the report has no run facts or no summary: is it a `reports demo` report?");
    }
    let dir = Path::new(report_link)
        .parent()
        .map_or_else(String::new, |p| format!("{}/", p.display()));
    let mut md =
        format!("{BEGIN}\n\nThe committed demo run ([`{report_link}`]({report_link})):\n\n");
    for f in facts {
        let _ = writeln!(md, "{f}");
    }
    let _ = write!(
        md,
        "\n![fig. 8]({dir}fig8_population.png)\n\n![fig. 1]({dir}fig1_lookup_latency.png)\n\nIts summary, as the report states it:\n\n"
    );
    for s in summary {
        let _ = writeln!(md, "{s}");
    }
    let _ = write!(md, "\n{END}");
    Ok(md)
}

/// `readme` with the demo section replaced by `generated` (which carries its marker lines);
/// fails without the two marker lines.
pub fn splice(readme: &str, generated: &str) -> Result<String> {
    splice_between(readme, BEGIN, END, generated)
}

/// `readme` with the text from the line `begin` to the line `end` (both included) replaced by
/// `generated`.
fn splice_between(readme: &str, begin: &str, end: &str, generated: &str) -> Result<String> {
    let (Some(b), Some(e)) = (readme.find(begin), readme.find(end)) else {
        bail!("the README has no generated section (the lines {begin:?} ... {end:?})");
    };
    if e < b {
        bail!("the README's generated section ends before it begins");
    }
    Ok(format!(
        "{}{generated}{}",
        &readme[..b],
        &readme[e + end.len()..]
    ))
}

/// Rewrites (or, with `check`, compares) the README's generated sections from `report` and
/// `results`. Returns whether the README already was up to date.
pub fn run(readme: &Path, report: &Path, results: &Path, check: bool) -> Result<bool> {
    let text =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let rep =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let res = crate::results::read(results)?;
    // The README links the report relative to itself.
    let base = readme.parent().unwrap_or(Path::new("."));
    let link = report
        .strip_prefix(base)
        .unwrap_or(report)
        .to_string_lossy()
        .into_owned();
    let new = splice(&text, &section(&rep, &link)?)?;
    let generated = format!(
        "{RESULTS_BEGIN}\n\n{}\n\n{RESULTS_END}",
        crate::results::render(&res)
    );
    let new = splice_between(&new, RESULTS_BEGIN, RESULTS_END, &generated)?;
    let same = new == text;
    if !check && !same {
        std::fs::write(readme, &new).with_context(|| format!("writing {}", readme.display()))?;
    }
    Ok(same)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "# r\n\n- **Command**: `reports demo`\n- **Date**: d\n- **Tables** (x): `t`\n\n## Images\n\n- i\n\n## Summary\n\n- first 1.5x\n- second\n\n## Headline\n\n- not this\n";

    #[test]
    fn the_section_quotes_facts_and_summary_and_splices_between_markers() {
        let s = section(REPORT, "reports/demo/report.md").unwrap();
        assert!(s.contains("- **Command**: `reports demo`") && s.contains("- **Date**: d"));
        assert!(!s.contains("Tables") && !s.contains("not this"));
        assert!(s.contains("- first 1.5x\n- second\n"));
        assert!(s.contains("(reports/demo/fig8_population.png)"));
        let readme = format!("top\n{BEGIN}\nold 9.9x\n{END}\nbottom\n");
        let new = splice(&readme, &s).unwrap();
        assert!(new.starts_with("top\n") && new.ends_with("\nbottom\n"));
        assert!(!new.contains("old 9.9x") && new.contains("first 1.5x"));
        // Splicing again changes nothing.
        assert_eq!(splice(&new, &s).unwrap(), new);
        assert!(splice("no markers", &s).is_err());
        assert!(section("# empty", "r.md").is_err());
    }
}
