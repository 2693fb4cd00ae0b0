//! Training a whole image: every regular file's extent map -> a model -> a pack entry.
//!
//! Shared by the `training` binary, the server's tests and `reports`, so one image is always
//! trained the same way. Files are independent; `jobs` threads take them from a shared
//! counter, largest first, so one huge file does not finish last on an idle pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ext4::{Fs, Inode, InodeKind};

use crate::fingerprint::fingerprint;
use crate::model::{fit_extents, FitParams, ModelKind};
use crate::pack::{Pack, PackEntry};

/// What training found for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStats {
    /// Inode number.
    pub ino: u32,
    /// One path of the file.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// Extents in its map.
    pub extents: u32,
    /// Blocks mapped (written and unwritten).
    pub blocks: u64,
    /// Unwritten extents.
    pub unwritten: u32,
    /// The model's shape.
    pub kind: ModelKind,
    /// Segments in the model.
    pub segments: u32,
    /// Largest window of the `f64` lines, in extent slots.
    pub window_float: u64,
    /// Largest window of the fixed-point lines (what lookups and BPF search).
    pub window_fixed: u64,
    /// Heap bytes of the model.
    pub model_bytes: u64,
    /// Time to read the extents from the image.
    pub read_time: Duration,
    /// Time to fit the model.
    pub fit_time: Duration,
}

/// Why one file could not be trained; the others are not affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Inode number.
    pub ino: u32,
    /// One path of the file.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// The result of training an image.
#[derive(Debug)]
pub struct Trained {
    /// Models of every file that could be trained.
    pub pack: Pack,
    /// Per-file statistics, by inode number.
    pub files: Vec<FileStats>,
    /// Files that could not be trained (corrupt extents, ...), and directories that could not
    /// be walked (ino 0).
    pub errors: Vec<FileError>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Trained {
    /// Extents over all trained files.
    pub fn extents(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.extents)).sum()
    }
}

/// The regular files of an image, each once (hard links share an inode), with one path each.
pub fn regular_files(fs: &Fs) -> (Vec<(String, Inode)>, Vec<FileError>) {
    let (entries, walk_errors) = fs.walk();
    let mut seen = std::collections::HashSet::new();
    let files = entries
        .into_iter()
        .filter(|e| e.inode.kind == InodeKind::File && seen.insert(e.inode.ino))
        .map(|e| (e.path, e.inode))
        .collect();
    let errors = walk_errors
        .iter()
        .map(|e| FileError {
            ino: e.ino().unwrap_or(0),
            path: String::new(),
            error: e.to_string(),
        })
        .collect();
    (files, errors)
}

/// Trains every regular file of `fs` on `jobs` threads (at least one). `progress` is called
/// with the number of extents of each file as it finishes.
pub fn train(fs: &Fs, params: &FitParams, jobs: usize, progress: &(dyn Fn(u64) + Sync)) -> Trained {
    let start = Instant::now();
    let sb = fs.superblock();
    let (mut files, mut errors) = regular_files(fs);
    // Largest first (by blocks the inode owns: known without reading the extent tree).
    files.sort_by_key(|(_, inode)| std::cmp::Reverse(inode.blocks_512));
    let next = AtomicUsize::new(0);
    let done = Mutex::new((Vec::with_capacity(files.len()), Vec::new(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                let mut local = (Vec::new(), Vec::new(), Vec::new());
                while let Some((path, inode)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match train_file(fs, path, inode, params) {
                        Ok((entry, stats)) => {
                            progress(u64::from(stats.extents));
                            local.0.push(entry);
                            local.1.push(stats);
                        }
                        Err(error) => {
                            progress(0);
                            local.2.push(FileError {
                                ino: inode.ino,
                                path: path.clone(),
                                error,
                            });
                        }
                    }
                }
                if let Ok(mut d) = done.lock() {
                    d.0.append(&mut local.0);
                    d.1.append(&mut local.1);
                    d.2.append(&mut local.2);
                }
            });
        }
    });
    let (entries, mut stats, mut file_errors) =
        done.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut pack = Pack::new(sb.uuid, sb.block_size, params.max_window);
    for e in entries {
        pack.insert(e);
    }
    stats.sort_by_key(|s| s.ino);
    file_errors.sort_by_key(|e| e.ino);
    errors.append(&mut file_errors);
    Trained {
        pack,
        files: stats,
        errors,
        elapsed: start.elapsed(),
    }
}

/// Reads one file's extents and fits its model. Inline-data files have no block map and get
/// an empty model (every query on them goes to the ext4 reader).
fn train_file(
    fs: &Fs,
    path: &str,
    inode: &Inode,
    params: &FitParams,
) -> Result<(PackEntry, FileStats), String> {
    let t0 = Instant::now();
    let extents = fs.extents(inode).map_err(|e| e.to_string())?;
    let read_time = t0.elapsed();
    let t1 = Instant::now();
    let (model, _) = fit_extents(&extents, params).map_err(|e| e.to_string())?;
    let fit_time = t1.elapsed();
    let stats = FileStats {
        ino: inode.ino,
        path: path.to_string(),
        size: inode.size,
        extents: model.extent_count,
        blocks: extents.iter().map(|e| u64::from(e.len)).sum(),
        unwritten: extents.iter().filter(|e| e.unwritten).count() as u32,
        kind: model.kind(),
        segments: model.segments.len() as u32,
        window_float: model
            .segments
            .iter()
            .map(|s| s.line.window())
            .max()
            .unwrap_or(0),
        window_fixed: model.max_window(),
        model_bytes: model.heap_bytes() as u64,
        read_time,
        fit_time,
    };
    let entry = PackEntry {
        ino: inode.ino,
        generation: inode.generation,
        fingerprint: fingerprint(&extents),
        model,
    };
    Ok((entry, stats))
}
