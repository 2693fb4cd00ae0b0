//! The headline table, in the shape of Kraska et al.'s Fig. 4 ("The Case for Learned Index
//! Structures"): one row per structure and configuration, one column per dataset, each cell
//! the structure's size and its median lookup time on uniform queries, with the speed-up over
//! the B-tree (`BTreeMap`); a last row gives the learned index's speed-up over the kernel-style
//! iext tree, the structure the kernel's iomap cache actually uses.

use super::latency::baseline_median;
use super::registry::HEADLINE;
use super::{ratio, Section};
use crate::support::structures::Cell;
use crate::support::structures::{BASELINE, STRUCTURES};
use crate::support::table::Table;

/// Bytes in binary units.
pub fn bytes(b: usize) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Builds the headline table from figure 1's uniform-stream cells.
pub fn section(cells: &[Cell]) -> Section {
    let uniform: Vec<&Cell> = cells.iter().filter(|c| c.stream == "uniform").collect();
    let mut datasets: Vec<(&str, usize)> = Vec::new();
    for c in &uniform {
        if !datasets.iter().any(|(d, _)| *d == c.dataset) {
            datasets.push((&c.dataset, c.extents));
        }
    }
    let mut t = Table::new(HEADLINE);
    let mut md = String::from(
        "Uniform random lookups; each cell: heap size of the structure, median ns per lookup, and \
         speed-up over `BTreeMap` on the same dataset in the same run (> 1: faster). Learned rows \
         give their segment count; \"window <= w\" is the bound every segment's search window \
         keeps. The on-disk walk holds no memory (it reads the image).\n\n| structure |",
    );
    for (d, n) in &datasets {
        md.push_str(&format!(" {d} ({n} ext.) |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(datasets.len()));
    md.push('\n');
    for s in STRUCTURES {
        if !uniform.iter().any(|c| c.structure == s.name) {
            continue;
        }
        md.push_str(&format!("| {} |", s.label));
        for (d, _) in &datasets {
            let Some(c) = uniform
                .iter()
                .find(|c| c.structure == s.name && c.dataset == *d)
            else {
                md.push_str(" n/a |");
                continue;
            };
            let base = baseline_median(cells, c).unwrap_or(0.0);
            let speedup = ratio(base, c.ns.median);
            let segs = if c.segments > 0 {
                format!(", {} seg.", c.segments)
            } else {
                String::new()
            };
            let size = if s.name == "ondisk" {
                "0 B (image)".to_string()
            } else {
                bytes(c.heap_bytes)
            };
            let cell = if s.name == BASELINE {
                format!(" {size}<br>{:.1} ns |", c.ns.median)
            } else {
                format!(" {size}{segs}<br>{:.1} ns ({speedup:.2}x) |", c.ns.median)
            };
            md.push_str(&cell);
            t.push(vec![
                ("structure", s.name.into()),
                ("dataset", c.dataset.clone().into()),
                ("extents", c.extents.into()),
                ("heap_bytes", c.heap_bytes.into()),
                ("median_ns", c.ns.median.into()),
                ("p99_ns", c.ns.p99.into()),
                ("speedup_vs_btree", speedup.into()),
                ("segments", c.segments.into()),
                ("max_window", c.max_window.into()),
            ]);
        }
        md.push('\n');
    }
    // The kernel's iomap mapping cache is an iext tree, not a BTreeMap: quote the learned
    // index against that most faithful baseline too.
    let median = |name: &str, d: &str| {
        uniform
            .iter()
            .find(|c| c.structure == name && c.dataset == d)
            .map(|c| c.ns.median)
    };
    md.push_str("| **learned speed-up over the kernel-style iext tree (32 B records)** |");
    for (d, _) in &datasets {
        match (
            median(predictor::Structure::Learned.name(), d),
            median(predictor::Structure::Iext32.name(), d),
        ) {
            (Some(l), Some(i)) => md.push_str(&format!(" **{:.2}x** |", ratio(i, l))),
            _ => md.push_str(" n/a |"),
        }
    }
    md.push('\n');
    Section {
        title: "Headline: learned index vs B-tree (Kraska et al. Fig. 4 layout)".into(),
        body: md,
        figures: Vec::new(),
        tables: vec![t],
        skipped: Vec::new(),
        summary: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_units() {
        assert_eq!(super::bytes(100), "100 B");
        assert_eq!(super::bytes(2048), "2.0 KiB");
        assert_eq!(super::bytes(3 << 20), "3.0 MiB");
    }
}
