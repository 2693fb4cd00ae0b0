//! `reports readme`: the generated sections of the README and of `results/README.md`, rebuilt
//! from committed files so the numbers they quote are never typed by hand: the README's answer
//! (the run's facts and the first summary lines of the committed demo report, with figure 10),
//! and in `results/README.md` the demo section (the report's whole summary) and the results
//! section from `results/results.json` (criterion, BPF latency, fio, socket load, fuzzing; see
//! [`crate::support::results`]). `--check` says whether both files are what it would write (CI runs it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The line before the demo section.
pub const BEGIN: &str =
    "<!-- reports readme: begin. Generated from reports/demo/report.md by `reports readme`; do not edit. -->";
/// The line after it.
pub const END: &str = "<!-- reports readme: end -->";
/// The line before the README's answer.
pub const ANSWER_BEGIN: &str =
    "<!-- reports readme answer: begin. Generated from reports/demo/report.md by `reports readme`; do not edit. -->";
/// The line after it.
pub const ANSWER_END: &str = "<!-- reports readme answer: end -->";
/// Summary lines of the report the answer quotes: the report puts the upcalls under the cache
/// budget first, then the population, then the compact index against the kernel's tree on the
/// maps the kernel's allocator made.
pub const ANSWER_LINES: usize = 3;
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
    Ok(wrap(&md))
}

/// The README's answer: the run's date, machine and code, the report's first
/// [`ANSWER_LINES`] summary lines verbatim, and figure 10.
pub fn answer(report: &str, report_link: &str) -> Result<String> {
    let facts: Vec<&str> = report
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| {
            ["- **Date**", "- **Machine**", "- **Code**"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    let summary: Vec<&str> = report
        .lines()
        .skip_while(|l| l.trim() != "## Summary")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("- "))
        .take(ANSWER_LINES)
        .collect();
    if facts.is_empty() || summary.is_empty() {
        bail!("the report has no run facts or no summary: is it a `reports demo` report?");
    }
    let dir = Path::new(report_link)
        .parent()
        .map_or_else(String::new, |p| format!("{}/", p.display()));
    let mut md = format!(
        "{ANSWER_BEGIN}\n\nFrom the committed demo run ([`{report_link}`]({report_link})), as its summary states it:\n\n"
    );
    for s in summary {
        let _ = writeln!(md, "{s}");
    }
    let _ = writeln!(md);
    for f in facts {
        let _ = writeln!(md, "{f}");
    }
    let _ = write!(md, "\n![fig. 10]({dir}fig10_cache.png)\n\n{ANSWER_END}");
    Ok(wrap(&md))
}

/// Longest line of generated prose.
pub const WIDTH: usize = 100;

/// `md` with its prose and bullet lines wrapped at spaces to [`WIDTH`] columns (a bullet's
/// continuation indented two spaces, as Markdown reads it); tables, images and markers stay
/// whole, and so does a word longer than the width.
pub fn wrap(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + md.len() / WIDTH);
    for line in md.lines() {
        let keep = line.len() <= WIDTH
            || ["|", "![", "<!--", "#", "```"]
                .iter()
                .any(|p| line.trim_start().starts_with(p));
        if keep {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = if line.starts_with("- ") { "  " } else { "" };
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > WIDTH {
                out.push_str(&current);
                out.push('\n');
                current = indent.to_string();
            } else if !current.is_empty() && current != indent {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    if !md.ends_with('\n') {
        out.pop();
    }
    out
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

/// Rewrites (or, with `check`, compares) the README's answer and `results_doc`'s demo and
/// results sections from `report` and `results`. Returns whether both files already were up to
/// date.
pub fn run(
    readme: &Path,
    results_doc: &Path,
    report: &Path,
    results: &Path,
    check: bool,
) -> Result<bool> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let rep = read(report)?;
    let res = crate::support::results::read(results)?;
    // Each file links the report relative to itself.
    let link = |doc: &Path| relative(report, doc.parent().unwrap_or(Path::new(".")));
    let text = read(readme)?;
    let new_readme = splice_between(
        &text,
        ANSWER_BEGIN,
        ANSWER_END,
        &answer(&rep, &link(readme))?,
    )?;
    let doc = read(results_doc)?;
    let new_doc = splice(&doc, &section(&rep, &link(results_doc))?)?;
    let generated = format!(
        "{RESULTS_BEGIN}\n\n{}\n\n{RESULTS_END}",
        wrap(&crate::support::results::render(&res))
    );
    let new_doc = splice_between(&new_doc, RESULTS_BEGIN, RESULTS_END, &generated)?;
    let same = new_readme == text && new_doc == doc;
    if !check {
        for (path, old, new) in [(readme, &text, &new_readme), (results_doc, &doc, &new_doc)] {
            if old != new {
                std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(same)
}

/// `target` as a link from a file in `from_dir` (both relative to the repository's root).
fn relative(target: &Path, from_dir: &Path) -> String {
    let depth = from_dir
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    format!("{}{}", "../".repeat(depth), target.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_wrap_at_the_width_and_keep_every_word() {
        let long = format!("- **Lead**: {} end", "word ".repeat(60));
        let table = format!("| {} |", "x".repeat(150));
        let md = format!("{long}\n{table}\nshort\n");
        let out = wrap(&md);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 4, "{out}");
        for l in &lines {
            assert!(l.len() <= WIDTH || l.starts_with('|'), "{l:?}");
        }
        assert!(lines[1..]
            .iter()
            .take_while(|l| !l.starts_with('|'))
            .all(|l| l.starts_with("  ")));
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&out), words(&md));
        assert!(out.contains(&table) && out.ends_with("short\n"));
    }

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

    #[test]
    fn the_answer_quotes_the_first_summary_lines_and_links_from_its_file() {
        let a = answer(REPORT, "reports/demo/report.md").unwrap();
        assert!(a.starts_with(ANSWER_BEGIN) && a.ends_with(ANSWER_END));
        assert!(a.contains("- first 1.5x\n- second\n") && a.contains("- **Date**: d"));
        assert!(!a.contains("Command") && !a.contains("not this"));
        assert!(a.contains("(reports/demo/fig10_cache.png)"));
        let five = "# r\n\n- **Date**: d\n\n## Summary\n\n- a\n- b\n- c\n- d\n- e\n";
        assert_eq!(
            answer(five, "r.md").unwrap().matches("\n- ").count(),
            ANSWER_LINES + 1
        );
        let r = Path::new("reports/demo/report.md");
        assert_eq!(relative(r, Path::new("")), "reports/demo/report.md");
        assert_eq!(
            relative(r, Path::new("results")),
            "../reports/demo/report.md"
        );
    }
}
