//! The extent maps experiments run on: the most fragmented file of every image, the most
//! fragmented file of every extent-count class of a live scan, and seeded allocator-like
//! synthetic maps (`predictor::synth`) from 1 to 10^7 extents.

use std::sync::Arc;

use anyhow::{Context, Result};
use ext4::{Extent, Fs, Inode};
use predictor::model::Model;

use crate::support::images::{FileInfo, LoadedImage};
use crate::support::live::LiveSet;
use crate::support::population::CLASSES;

/// Seed of every synthetic map (the same maps on every machine, every run).
pub const SYNTH_SEED: u64 = 42;

/// Where a dataset's extents come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A file of an ext4 image.
    Image,
    /// A file of a live file system (FIEMAP).
    Live,
    /// `predictor::synth::allocator_like`.
    Synthetic,
}

impl Source {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Source::Image => "image",
            Source::Live => "live",
            Source::Synthetic => "synthetic",
        }
    }
}

/// A file of an image: what the on-disk walk needs.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// The open image.
    pub fs: Arc<Fs>,
    /// The file's inode.
    pub inode: Inode,
}

/// One extent map to measure.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Column name in tables and figures: `IMAGE:PATH`, `live:PATH` or `synthetic-1e5`.
    pub name: String,
    /// Image file or synthetic.
    pub source: Source,
    /// The sorted extents.
    pub extents: Vec<Extent>,
    /// The file, for image datasets.
    pub file: Option<ImageFile>,
    /// The model the pack holds for the file (image datasets), used by the learned index.
    pub model: Option<Model>,
}

/// `1e5`-style label for a count that is a power of ten, else the number.
pub fn count_label(n: usize) -> String {
    imagekit::count_label(n as u64)
}

/// The synthetic dataset of `n` extents.
pub fn synthetic(n: usize) -> Dataset {
    Dataset {
        name: format!("synthetic-{}", count_label(n)),
        source: Source::Synthetic,
        extents: predictor::synth::allocator_like(n, SYNTH_SEED),
        file: None,
        model: None,
    }
}

/// The most fragmented regular file of `img` (ties: the lowest inode), if it has any file with
/// extents.
pub fn most_fragmented(img: &LoadedImage) -> Result<Option<Dataset>> {
    let Some(best) = img
        .files
        .iter()
        .filter(|f| f.extents > 0)
        .max_by_key(|f| (f.extents, std::cmp::Reverse(f.ino)))
    else {
        return Ok(None);
    };
    file_dataset(img, best.ino, &best.path).map(Some)
}

/// The dataset of file `ino` (at `path`) of `img`.
pub fn file_dataset(img: &LoadedImage, ino: u32, path: &str) -> Result<Dataset> {
    let ctx = || format!("{}: inode {ino} ({path})", img.path.display());
    let inode = img.fs.inode(ino).with_context(ctx)?;
    let extents = img.fs.extents(&inode).with_context(ctx)?;
    Ok(Dataset {
        name: format!("{}:{path}", img.name),
        source: Source::Image,
        model: img.pack.get(ino).map(|e| e.model.clone()),
        file: Some(ImageFile {
            fs: img.fs.clone(),
            inode,
        }),
        extents,
    })
}

/// The most fragmented file of every extent-count class from 2 extents up of a live scan
/// (ties: the lowest inode): real maps across the sizes the scan has.
pub fn live_files(set: &LiveSet) -> Vec<Dataset> {
    CLASSES
        .iter()
        .filter(|c| c.min >= 2)
        .filter_map(|class| {
            let best = set
                .files
                .iter()
                .filter(|f| (class.min..=class.max).contains(&u64::from(f.extents)))
                .max_by_key(|f| (f.extents, std::cmp::Reverse(f.ino)))?;
            live_file(set, best)
        })
        .collect()
}

/// The most fragmented file of a live scan (ties: the lowest inode), if one has extents.
pub fn live_most_fragmented(set: &LiveSet) -> Option<Dataset> {
    let best = set
        .files
        .iter()
        .filter(|f| f.extents > 0)
        .max_by_key(|f| (f.extents, std::cmp::Reverse(f.ino)))?;
    live_file(set, best)
}

/// The dataset of file `f` of a live scan.
fn live_file(set: &LiveSet, f: &FileInfo) -> Option<Dataset> {
    Some(Dataset {
        name: format!("live:{}", f.path),
        source: Source::Live,
        extents: set.extents(f.ino)?.to_vec(),
        file: None,
        model: set.pack.get(f.ino).map(|e| e.model.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(count_label(1), "1");
        assert_eq!(count_label(10), "1e1");
        assert_eq!(count_label(100_000), "1e5");
        assert_eq!(count_label(40_000), "40000");
    }
}
