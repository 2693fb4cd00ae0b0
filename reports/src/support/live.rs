//! A live file system measured without an image: its files' extent maps read through FIEMAP
//! (`livefs`), trained like an image's. There is no image to walk or mount, so the lookup,
//! memory, training and population experiments run on it and the others say why they cannot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ext4::Extent;
use predictor::model::FitParams;
use predictor::train::FileMap;
use predictor::Pack;

use crate::support::images::{file_infos, FileInfo, TrainingRun};

/// The files of a live scan, trained.
#[derive(Debug)]
pub struct LiveSet {
    /// Name in tables: `live:PATH`.
    pub name: String,
    /// The scanned path, absolute.
    pub root: PathBuf,
    /// The file system's block size (the unit of every extent).
    pub block_size: u32,
    /// Every file's map, by inode number.
    maps: HashMap<u32, FileMap>,
    /// The models (as `training fit --live` would write them).
    pub pack: Pack,
    /// Regular files with their model's facts, by inode number.
    pub files: Vec<FileInfo>,
    /// The training run.
    pub training: TrainingRun,
    /// Paths the scan could not read.
    pub skipped: usize,
}

impl LiveSet {
    /// The extents of file `ino`.
    pub fn extents(&self, ino: u32) -> Option<&[Extent]> {
        self.maps.get(&ino).map(|m| m.extents.as_slice())
    }
}

/// Scans `path` and trains its files on `jobs` threads. `on_scan` hears the scan's running
/// totals, `on_extents` the extents of each file as training finishes it.
pub fn load(
    path: &Path,
    jobs: usize,
    on_scan: &mut dyn FnMut(&livefs::Progress),
    on_extents: &(dyn Fn(u64) + Sync),
) -> Result<LiveSet> {
    let scan = livefs::scan(path, on_scan)
        .with_context(|| format!("reading the extent maps under {}", path.display()))?;
    let (maps, unusable) = predictor::train::live_maps(&scan);
    let (root, fs, skipped) = (scan.root.clone(), scan.fs, scan.skipped.len());
    drop(scan); // the maps hold the extents now
    let trained = predictor::train::train_maps(
        &maps,
        fs.uuid.unwrap_or_default(),
        fs.block_size,
        &FitParams::default(),
        jobs,
        on_extents,
    );
    for e in unusable.iter().chain(&trained.errors) {
        tracing::warn!(path = %e.path, error = %e.error, "file not trained");
    }
    let files = file_infos(&trained.files, &trained.pack);
    Ok(LiveSet {
        name: format!("live:{}", root.display()),
        root,
        block_size: fs.block_size,
        maps: maps.into_iter().map(|m| (m.ino, m)).collect(),
        training: TrainingRun {
            files: trained.files.len(),
            extents: trained.extents(),
            elapsed: trained.elapsed,
            jobs,
            errors: trained.errors.len() + unusable.len(),
        },
        skipped,
        pack: trained.pack,
        files,
    })
}
