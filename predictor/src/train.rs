//! Training a whole image, or the files of a live file system: every regular file's extent map
//! -> a model -> a pack entry.
//!
//! Shared by the `training` binary, the server's tests and `reports`, so files are always
//! trained the same way whatever their maps came from. Files are independent; `jobs` threads
//! take them from a shared counter, largest first, so one huge file does not finish last on an
//! idle pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ext4::{Extent, Fs, Inode, InodeKind};

use crate::error::Chain;
use crate::fingerprint::fingerprint;
use crate::index::{extent, LearnedIndex};
use crate::model::{FitParams, ModelKind};
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
    /// The model's shape (over the line extents: the map less its arithmetic runs; `Empty`
    /// where the map is kept plain or is all runs).
    pub kind: ModelKind,
    /// Segments in the model (line pieces).
    pub segments: u32,
    /// Largest window of the `f64` lines, in extent slots.
    pub window_float: u64,
    /// Largest window of the fixed-point lines (what lookups search, here and in the kernel).
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
            error: Chain(e).to_string(),
        })
        .collect();
    (files, errors)
}

/// One file's extent map with what a pack entry binds it to, read from any source: an image's
/// extent tree, or a live file system through FIEMAP ([`FileMap::from_live`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMap {
    /// Inode number.
    pub ino: u32,
    /// Inode generation.
    pub generation: u32,
    /// One path of the file.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// The sorted extents.
    pub extents: Vec<Extent>,
}

impl FileMap {
    /// A live file's map. Fails for a file whose inode number does not fit the pack's 32 bits
    /// (ext4's never do; other file systems' may). A file system that does not tell the
    /// generation gets 0, so its pack entries only fit an image whose inodes say 0 too.
    pub fn from_live(f: &livefs::LiveFile) -> Result<Self, FileError> {
        let path = f.path.to_string_lossy().into_owned();
        let ino = u32::try_from(f.ino).map_err(|_| FileError {
            ino: 0,
            path: path.clone(),
            error: format!(
                "inode number {} does not fit the 32 bits a model pack holds (ext4's inode numbers)",
                f.ino
            ),
        })?;
        Ok(Self {
            ino,
            generation: f.generation.unwrap_or(0),
            path,
            size: f.size,
            extents: f.extents.iter().map(extent).collect(),
        })
    }
}

/// Trains every regular file of `fs` on `jobs` threads (at least one). `progress` is called
/// with the number of extents of each file as it finishes.
pub fn train(fs: &Fs, params: &FitParams, jobs: usize, progress: &(dyn Fn(u64) + Sync)) -> Trained {
    let start = Instant::now();
    let sb = fs.superblock();
    let (mut files, errors) = regular_files(fs);
    // Largest first (by blocks the inode owns: known without reading the extent tree).
    files.sort_by_key(|(_, inode)| std::cmp::Reverse(inode.blocks_512));
    let read = |(path, inode): &(String, Inode)| {
        let t0 = Instant::now();
        let extents = fs.extents(inode).map_err(|e| FileError {
            ino: inode.ino,
            path: path.clone(),
            error: Chain(&e).to_string(),
        })?;
        let map = FileMap {
            ino: inode.ino,
            generation: inode.generation,
            path: path.clone(),
            size: inode.size,
            extents,
        };
        Ok((map, t0.elapsed()))
    };
    let parts = in_parallel(&files, jobs, progress, &|f| {
        let (map, read_time) = read(f)?;
        fit_file(&map, read_time, params)
    });
    finish(
        Pack::new(sb.uuid, sb.block_size, params.max_window),
        parts,
        errors,
        start,
    )
}

/// Trains already-read maps (a live scan's, say) for a pack bound to a file system with
/// `uuid` and `block_size`; like [`train`] otherwise (reading time is 0: the maps are read).
pub fn train_maps(
    maps: &[FileMap],
    uuid: [u8; 16],
    block_size: u32,
    params: &FitParams,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Trained {
    let start = Instant::now();
    let mut order: Vec<&FileMap> = maps.iter().collect();
    order.sort_by_key(|m| std::cmp::Reverse(m.extents.len()));
    let parts = in_parallel(&order, jobs, progress, &|m| {
        fit_file(m, Duration::ZERO, params)
    });
    finish(
        Pack::new(uuid, block_size, params.max_window),
        parts,
        Vec::new(),
        start,
    )
}

/// Trains the files of a live scan ([`livefs::scan`]); files that cannot be a pack entry
/// (64-bit inode numbers) are errors of the result, the others train as from an image.
pub fn train_live(
    scan: &livefs::Scan,
    params: &FitParams,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Trained {
    let (maps, errors) = live_maps(scan);
    let mut t = train_maps(
        &maps,
        scan.fs.uuid.unwrap_or_default(),
        scan.fs.block_size,
        params,
        jobs,
        progress,
    );
    t.errors.extend(errors);
    t.errors.sort_by_key(|e| e.ino);
    t
}

/// The maps of a live scan as [`FileMap`]s, one per inode, and the files that cannot be one.
pub fn live_maps(scan: &livefs::Scan) -> (Vec<FileMap>, Vec<FileError>) {
    let mut maps = Vec::with_capacity(scan.files.len());
    let mut errors = Vec::new();
    // A scan lists every path; hard links share an inode, which is one file (its first path,
    // in the scan's name order), as `regular_files` does for an image.
    let mut seen = std::collections::HashSet::new();
    for f in scan.files.iter().filter(|f| seen.insert(f.ino)) {
        match FileMap::from_live(f) {
            Ok(m) => maps.push(m),
            Err(e) => errors.push(e),
        }
    }
    (maps, errors)
}

/// What the worker threads produced: pack entries, statistics, failures.
type Parts = (Vec<PackEntry>, Vec<FileStats>, Vec<FileError>);

/// One file trained: its pack entry and statistics, or why not.
type Outcome = Result<(PackEntry, FileStats), FileError>;

/// Runs `work` over `items` on `jobs` threads (at least one), each thread taking the next item
/// from a shared counter; `progress` hears every file's extent count (0 for a failure).
fn in_parallel<T: Sync>(
    items: &[T],
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
    work: &(dyn Fn(&T) -> Outcome + Sync),
) -> Parts {
    let next = AtomicUsize::new(0);
    let done = Mutex::new((Vec::with_capacity(items.len()), Vec::new(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                let mut local: Parts = (Vec::new(), Vec::new(), Vec::new());
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match work(item) {
                        Ok((entry, stats)) => {
                            progress(u64::from(stats.extents));
                            local.0.push(entry);
                            local.1.push(stats);
                        }
                        Err(e) => {
                            progress(0);
                            local.2.push(e);
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
    done.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Puts the workers' parts into `pack` and the result, sorted by inode number.
fn finish(mut pack: Pack, parts: Parts, mut errors: Vec<FileError>, start: Instant) -> Trained {
    let (entries, mut stats, mut file_errors) = parts;
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

/// Fits one file's model. Inline-data files have no block map and get an empty model (every
/// query on them goes to the ext4 reader).
fn fit_file(map: &FileMap, read_time: Duration, params: &FitParams) -> Outcome {
    let extents = &map.extents;
    let t1 = Instant::now();
    let model = LearnedIndex::fit_lines(extents, params).map_err(|e| FileError {
        ino: map.ino,
        path: map.path.clone(),
        error: e.to_string(),
    })?;
    let fit_time = t1.elapsed();
    let stats = FileStats {
        ino: map.ino,
        path: map.path.clone(),
        size: map.size,
        // Fewer than 2^32 extents: the index checked.
        extents: extents.len() as u32,
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
        ino: map.ino,
        generation: map.generation,
        fingerprint: fingerprint(extents),
        model,
    };
    Ok((entry, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_maps_take_each_inode_once_and_refuse_64_bit_inodes() {
        let file = |path: &str, ino| livefs::LiveFile {
            path: path.into(),
            ino,
            generation: Some(7),
            size: 4096,
            extents: vec![livefs::BlockExtent {
                lblk: 0,
                pblk: 10,
                len: 1,
                unwritten: false,
            }],
        };
        let scan = livefs::Scan {
            root: "/".into(),
            fs: livefs::FileSystemInfo {
                block_size: 4096,
                uuid: None,
                dev: 1,
            },
            // "/b" is a hard link of "/a".
            files: vec![file("/a", 12), file("/b", 12), file("/c", 1 << 40)],
            skipped: Vec::new(),
        };
        let (maps, errors) = live_maps(&scan);
        let got: Vec<(u32, &str, u32)> = maps
            .iter()
            .map(|m| (m.ino, m.path.as_str(), m.generation))
            .collect();
        assert_eq!(got, vec![(12, "/a", 7)]);
        assert_eq!(
            maps[0].extents,
            vec![Extent {
                lblk: 0,
                pblk: 10,
                len: 1,
                unwritten: false
            }]
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].error.contains("32 bits"), "{:?}", errors[0]);
        let trained = train_live(&scan, &FitParams::default(), 1, &|_| ());
        assert_eq!((trained.files.len(), trained.errors.len()), (1, 1));
        assert_eq!(trained.pack.header.uuid, [0; 16]);
    }
}
