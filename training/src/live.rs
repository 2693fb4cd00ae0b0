//! Scanning a live file system with a progress line, shared by `dump --live` and `fit --live`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Scans `path` ([`livefs::scan`], which logs every skipped path with its cause) showing files,
/// extents and skipped paths as it goes.
pub fn scan(path: &Path) -> Result<livefs::Scan> {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} scanning {prefix}: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(path.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    let scan = livefs::scan(path, &mut |p| {
        bar.set_message(format!(
            "{} files, {} extents, {} skipped",
            p.files, p.extents, p.skipped
        ));
    });
    bar.finish_and_clear();
    scan.with_context(|| format!("reading the extent maps under {}", path.display()))
}
