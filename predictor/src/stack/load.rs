//! Building a tier stack: walk the image, load each regular file's extents once, build the
//! chosen structures, and attach each file's model if it is still valid for the file.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ext4::{Extent, Fs, Inode, InodeKind};

use super::{FileEntry, MemIndex, StackOptions, Tier, TierStack};
use crate::error::{BuildError, Chain};
use crate::fingerprint::fingerprint;
use crate::index::choose::choose_index;
use crate::index::{
    check_extents, BTreeIndex, FuseIextIndex, LearnedForm, LearnedIndex, RangeMapIndex,
    SortedIndex, Storage,
};
use crate::model::{FitParams, ModelError};
use crate::ondisk::OnDisk;
use crate::pack::{Pack, PackEntry};

/// Where the learned tier's models (and the compact tier's lines) come from.
#[derive(Debug, Clone, Copy)]
pub enum Models<'a> {
    /// None: the learned tier declines every query (it is then a B-tree stack with counters).
    None,
    /// A model pack trained on this image; entries whose file changed are not used.
    Pack(&'a Pack),
    /// Fit every file's model at build time (experiments, tests).
    Fit(FitParams),
}

/// The state of one file's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// The learned tier answers for this file.
    Active {
        /// Segments in the model.
        segments: usize,
    },
    /// No model: the stack runs no learned tier, or the compact tier fitted its lines at
    /// load without a pack (or the file's compact form has none).
    NotUsed,
    /// No model for this file.
    Untrained,
    /// The inode was reused or rewritten since training: generations differ.
    StaleGeneration {
        /// Generation in the pack.
        pack: u32,
        /// Generation in the image.
        image: u32,
    },
    /// The extent map changed since training: fingerprints differ.
    StaleFingerprint {
        /// Fingerprint in the pack.
        pack: u64,
        /// Fingerprint of the image's extents.
        image: u64,
    },
    /// The model does not describe the extents (or could not be fitted).
    Invalid(ModelError),
    /// The file has no block map to model: inline data, or extents that failed to load.
    Unavailable,
}

/// What building a stack found.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Regular files loaded (hard links counted once).
    pub files: usize,
    /// Extents loaded.
    pub extents: u64,
    /// Files whose model is active.
    pub models_active: usize,
    /// Files without a model.
    pub models_untrained: usize,
    /// Files whose pack entry is stale (generation or fingerprint differs).
    pub models_stale: Vec<u32>,
    /// Files whose model could not be used, and why.
    pub models_invalid: Vec<(u32, ModelError)>,
    /// Pack entries for inodes that are not regular files of this image.
    pub pack_unused: usize,
    /// Files with inline data (no block mapping).
    pub inline_files: usize,
    /// Files whose extents could not be loaded (queries on them go to the on-disk tier).
    pub load_errors: Vec<(u32, String)>,
    /// Errors met while walking the directory tree (their subtrees are missing).
    pub walk_errors: Vec<String>,
    /// Wall time of the build.
    pub elapsed: Duration,
    /// Files per structure the per-file rule chose ([`Tier::Chosen`] stacks; empty otherwise),
    /// by structure name.
    pub chosen: BTreeMap<&'static str, usize>,
}

impl TierStack {
    /// Builds a stack over every regular file reachable in `fs`.
    ///
    /// A pack for another image (UUID or block size) is an error; anything wrong with one file
    /// (corrupt extents, stale or invalid model) only affects that file and is in the report.
    pub fn build(
        fs: Arc<Fs>,
        tier: Tier,
        models: Models<'_>,
        opts: StackOptions,
    ) -> Result<(Self, BuildReport), BuildError> {
        let start = Instant::now();
        if let Models::Pack(p) = models {
            p.check_image(fs.superblock().uuid, fs.block_size())?;
        }
        let mut report = BuildReport::default();
        let (entries, walk_errors) = fs.walk();
        report.walk_errors = walk_errors.iter().map(|e| Chain(e).to_string()).collect();
        let mut files = HashMap::new();
        for e in entries
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File)
        {
            let ino = e.inode.ino;
            if files.contains_key(&ino) {
                continue; // another hard link to a file already loaded
            }
            files.insert(ino, load_file(&fs, e.inode, tier, models, &mut report));
        }
        if let Models::Pack(p) = models {
            report.pack_unused = p
                .entries
                .keys()
                .filter(|ino| !files.contains_key(ino))
                .count();
        }
        report.files = files.len();
        report.elapsed = start.elapsed();
        let stack = TierStack {
            tier,
            counted: crate::alloc::installed(),
            block_size: fs.block_size(),
            audit: opts.audit,
            ondisk: OnDisk::new(fs),
            files,
            counters: Default::default(),
        };
        Ok((stack, report))
    }
}

/// Loads one file: its extents (unless the tier is on-disk only), the tier's structure, and
/// its model.
fn load_file(
    fs: &Fs,
    inode: Inode,
    tier: Tier,
    models: Models<'_>,
    report: &mut BuildReport,
) -> FileEntry {
    let model = if tier.learned() {
        ModelStatus::Untrained
    } else {
        ModelStatus::NotUsed
    };
    let mut f = FileEntry {
        inode,
        extents: 0,
        mem_bytes: 0,
        learned: None,
        mem: None,
        model,
        load_error: None,
    };
    if f.inode.has_inline_data() {
        report.inline_files += 1;
        f.model = ModelStatus::Unavailable;
        return f;
    }
    if tier == Tier::Ondisk {
        return f;
    }
    let loaded = fs
        .extents(&f.inode)
        .map_err(|e| Chain(&e).to_string())
        .and_then(|x| check_extents(&x).map(|()| x).map_err(|e| e.to_string()));
    let exts = match loaded {
        Ok(x) => x,
        Err(e) => return unloadable(f, report, e),
    };
    // Counted by the allocator when `alloc::Counting` is installed (servers and reports do);
    // else `MemoryReport` falls back to the structures' own figures.
    let (mem_bytes, mem) = crate::alloc::counted(|| -> Result<_, String> {
        Ok(match tier {
            Tier::Sorted => (MemIndex::Sorted(SortedIndex::new(exts.clone())), None),
            Tier::RangeMap => (MemIndex::RangeMap(RangeMapIndex::new(&exts)), None),
            // Both hold any checked extent map, so these fail only on a map check_extents let
            // through; then the file is served on disk like any unloadable one.
            Tier::Iext => (
                MemIndex::Iext(FuseIextIndex::new(&exts).map_err(|e| e.to_string())?),
                None,
            ),
            Tier::Compact => {
                let (c, status) =
                    compact_for(&f.inode, &exts, models).map_err(|e| e.to_string())?;
                (MemIndex::Compact(c), Some(status))
            }
            Tier::Chosen => {
                let (_, ix) = choose_index(&exts).map_err(|e| e.to_string())?;
                (MemIndex::Chosen(ix), None)
            }
            Tier::Learned | Tier::Btree | Tier::Ondisk => {
                (MemIndex::Btree(BTreeIndex::new(&exts)), None)
            }
        })
    });
    let (mem, compact_status) = match mem {
        Ok(m) => m,
        Err(e) => return unloadable(f, report, e),
    };
    if let MemIndex::Chosen(ix) = &mem {
        *report.chosen.entry(ix.structure().name()).or_default() += 1;
    }
    f.mem_bytes = mem_bytes;
    f.extents = exts.len();
    report.extents += exts.len() as u64;
    f.mem = Some(mem);
    if let Some(status) = compact_status {
        report.count(f.inode.ino, &status);
        f.model = status;
    }
    if tier.learned() {
        let (learned, status) = learned_for(&f.inode, &exts, models);
        report.count(f.inode.ino, &status);
        (f.learned, f.model) = (learned, status);
    }
    f
}

impl BuildReport {
    /// Counts one file's model status.
    fn count(&mut self, ino: u32, status: &ModelStatus) {
        match status {
            ModelStatus::Active { .. } => self.models_active += 1,
            ModelStatus::Untrained => self.models_untrained += 1,
            ModelStatus::StaleGeneration { .. } | ModelStatus::StaleFingerprint { .. } => {
                self.models_stale.push(ino)
            }
            ModelStatus::Invalid(e) => self.models_invalid.push((ino, e.clone())),
            ModelStatus::NotUsed | ModelStatus::Unavailable => {}
        }
    }
}

/// `f` with its map marked unloadable for `why` (its queries go on disk), counted in `report`.
fn unloadable(mut f: FileEntry, report: &mut BuildReport, why: String) -> FileEntry {
    report.load_errors.push((f.inode.ino, why.clone()));
    f.load_error = Some(why);
    f.model = ModelStatus::Unavailable;
    f
}

/// The pack's entry for a file if it still describes the file (same generation, same extent
/// map); else the status that says why not.
fn fresh_entry<'p>(
    inode: &Inode,
    exts: &[Extent],
    pack: &'p Pack,
) -> Result<&'p PackEntry, ModelStatus> {
    let Some(entry) = pack.get(inode.ino) else {
        return Err(ModelStatus::Untrained);
    };
    if entry.generation != inode.generation {
        return Err(ModelStatus::StaleGeneration {
            pack: entry.generation,
            image: inode.generation,
        });
    }
    let image = fingerprint(exts);
    if entry.fingerprint != image {
        return Err(ModelStatus::StaleFingerprint {
            pack: entry.fingerprint,
            image,
        });
    }
    Ok(entry)
}

/// The learned index for a file, if its model is usable.
fn learned_for(
    inode: &Inode,
    exts: &[Extent],
    models: Models<'_>,
) -> (Option<LearnedIndex>, ModelStatus) {
    let built = match models {
        Models::None => return (None, ModelStatus::Untrained),
        Models::Fit(params) => LearnedIndex::with_storage(exts, &params, Storage::Records),
        Models::Pack(pack) => match fresh_entry(inode, exts, pack) {
            Ok(entry) => LearnedIndex::with_model(exts, &entry.model, Storage::Records),
            Err(status) => return (None, status),
        },
    };
    match built {
        Ok(l) => {
            let segments = l.segment_count();
            (Some(l), ModelStatus::Active { segments })
        }
        Err(e) => (None, ModelStatus::Invalid(e)),
    }
}

/// The compact index for a file. Unlike the learned tier's, it is always built (nothing stands
/// behind it but the disk): with the pack's lines when the pack has fresh ones for the file
/// and its packed form uses them (status `Active`; `NotUsed` for the forms without lines),
/// else with lines fitted here, the status saying why (`Untrained`: no entry for the file in
/// the pack; stale or invalid: the pack's lines are not this file's). Without a pack the lines
/// are fitted here (`NotUsed`).
fn compact_for(
    inode: &Inode,
    exts: &[Extent],
    models: Models<'_>,
) -> Result<(LearnedIndex, ModelStatus), ModelError> {
    let status = match models {
        Models::None => return Ok((LearnedIndex::new(exts)?, ModelStatus::NotUsed)),
        Models::Fit(params) => {
            return Ok((
                LearnedIndex::with_storage(exts, &params, Storage::Packed)?,
                ModelStatus::NotUsed,
            ))
        }
        Models::Pack(pack) => match fresh_entry(inode, exts, pack) {
            Ok(PackEntry { model, .. }) => {
                match LearnedIndex::with_model(exts, model, Storage::Packed) {
                    // A form without lines (one extent, a plain array) uses no model.
                    Ok(c) if c.form() != LearnedForm::Packed => {
                        return Ok((c, ModelStatus::NotUsed))
                    }
                    Ok(c) => {
                        let segments = model.segments.len();
                        return Ok((c, ModelStatus::Active { segments }));
                    }
                    Err(e) => ModelStatus::Invalid(e),
                }
            }
            Err(status) => status,
        },
    };
    let c = LearnedIndex::new(exts)?;
    // A form without lines (one extent, a plain array) has no model to miss.
    let status = match status {
        ModelStatus::Untrained if c.form() != LearnedForm::Packed => ModelStatus::NotUsed,
        s => s,
    };
    Ok((c, status))
}
