//! The images a run measures: opened, trained (always: training cost is an experiment), and
//! given the model pack the tiers use (the trained one, or the user's `--models`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ext4::Fs;
use predictor::model::{FitParams, ModelKind};
use predictor::Pack;

/// What a run knows about one file of an image.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Inode number.
    pub ino: u32,
    /// One path of the file.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// Extents in its map.
    pub extents: u32,
    /// Shape of the model in use.
    pub kind: ModelKind,
    /// Segments of the model in use.
    pub segments: u32,
    /// Largest fixed-point window of the model in use, in extent slots.
    pub window: u64,
    /// Heap bytes of the model.
    pub model_bytes: u64,
}

/// How long training the image took.
#[derive(Debug, Clone, Copy)]
pub struct TrainingRun {
    /// Files trained.
    pub files: usize,
    /// Extents over those files.
    pub extents: u64,
    /// Wall time of `predictor::train::train` (reading extents and fitting).
    pub elapsed: Duration,
    /// Threads.
    pub jobs: usize,
    /// Files that could not be trained.
    pub errors: usize,
}

/// An image, opened and trained.
#[derive(Debug)]
pub struct LoadedImage {
    /// Short name (file stem, or the demo kind's name).
    pub name: String,
    /// The image file.
    pub path: PathBuf,
    /// The open image.
    pub fs: Arc<Fs>,
    /// The models the tiers use.
    pub pack: Pack,
    /// Where that pack is on disk (what `server mount --models` reads).
    pub pack_path: PathBuf,
    /// Whether the pack came from `--models` rather than from training in this run.
    pub pack_given: bool,
    /// Regular files with their model's facts, by inode number.
    pub files: Vec<FileInfo>,
    /// The training run of this image.
    pub training: TrainingRun,
    /// Whether its files hold written data worth reading end to end (kernel-punched images
    /// have only unwritten extents: every read is zeros without I/O).
    pub readable: bool,
    /// Whether this kernel can mount it (block size at most the page size).
    pub kernel_mountable: bool,
}

/// Opens `path`, trains it on `jobs` threads, and takes its models from `models` (a pack
/// file) or from the training; the pack in use is written to `pack_dir` when trained.
/// `on_extents` is told the extents of each file as training finishes it.
pub fn load(
    name: &str,
    path: &Path,
    models: Option<&Path>,
    pack_dir: &Path,
    jobs: usize,
    on_extents: &(dyn Fn(u64) + Sync),
) -> Result<LoadedImage> {
    let fs =
        Fs::open_path(path).with_context(|| format!("opening the image {}", path.display()))?;
    let fs = Arc::new(fs);
    // A given pack is checked before training, so a wrong one fails in a second.
    let given = match models {
        Some(p) => {
            let pack = Pack::read_file(p)
                .with_context(|| format!("reading the model pack {}", p.display()))?;
            pack.check_image(fs.superblock().uuid, fs.block_size())
                .with_context(|| {
                    format!(
                        "model pack {} does not fit image {}",
                        p.display(),
                        path.display()
                    )
                })?;
            Some((pack, p.to_path_buf()))
        }
        None => None,
    };
    let params = FitParams::default();
    let trained = predictor::train::train(&fs, &params, jobs, on_extents);
    for e in &trained.errors {
        tracing::warn!(image = %path.display(), ino = e.ino, path = %e.path, error = %e.error, "file not trained");
    }
    let training = TrainingRun {
        files: trained.files.len(),
        extents: trained.extents(),
        elapsed: trained.elapsed,
        jobs,
        errors: trained.errors.len(),
    };
    let (pack, pack_path, pack_given) = match given {
        Some((pack, p)) => (pack, p, true),
        None => {
            std::fs::create_dir_all(pack_dir)
                .with_context(|| format!("creating {}", pack_dir.display()))?;
            let p = pack_dir.join(format!("{name}.pack"));
            trained
                .pack
                .write_file(&p)
                .with_context(|| format!("writing the model pack {}", p.display()))?;
            (trained.pack, p, false)
        }
    };
    let files = file_infos(&trained.files, &pack);
    Ok(LoadedImage {
        name: name.to_string(),
        path: path.to_path_buf(),
        fs,
        pack,
        pack_path,
        pack_given,
        files,
        training,
        readable: true,
        kernel_mountable: true,
    })
}

/// What a run knows of each trained file, with the facts of the model in use: `pack`'s
/// (a given pack's, when there is one), else the training's.
pub fn file_infos(trained: &[predictor::train::FileStats], pack: &Pack) -> Vec<FileInfo> {
    trained
        .iter()
        .map(|f| {
            let m = pack.get(f.ino).map(|e| &e.model);
            FileInfo {
                ino: f.ino,
                path: f.path.clone(),
                size: f.size,
                extents: f.extents,
                kind: m.map_or(f.kind, |m| m.kind()),
                segments: m.map_or(f.segments, |m| m.segments.len() as u32),
                window: m.map_or(f.window_fixed, |m| m.max_window()),
                model_bytes: m.map_or(f.model_bytes, |m| m.heap_bytes() as u64),
            }
        })
        .collect()
}

/// A progress callback counting extents into `counter` and showing the total on `bar`.
pub fn extent_counter<'a>(
    counter: &'a AtomicU64,
    bar: &'a indicatif::ProgressBar,
    what: &'a str,
) -> impl Fn(u64) + Sync + 'a {
    move |n| {
        let total = counter.fetch_add(n, Ordering::Relaxed) + n;
        bar.set_message(format!("{what}: {total} extents trained"));
    }
}

/// Name of a model shape in tables.
pub fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Empty => "empty",
        ModelKind::Single => "single",
        ModelKind::Linear => "linear",
        ModelKind::Piecewise => "piecewise",
    }
}
