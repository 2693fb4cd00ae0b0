//! Every lookup structure the experiments compare, in one list. Adding one is one line in
//! [`STRUCTURES`] plus its build function (the BPF rows are measured by [`crate::support::in_kernel`]).

use predictor::index::iext::{FuseRec, IextIndex, IextRecord, XfsRec};
use predictor::model::FitParams;
use predictor::Structure as Id;
use predictor::{
    BTreeIndex, ExtentIndex, LearnedForm, LearnedIndex, LearnedShape, OnDiskIndex, RangeMapIndex,
    SortedIndex, Storage,
};

use crate::support::datasets::{Dataset, Source};
use crate::support::timing::Summary;

// The BPF rows are measured by crate::support::in_kernel; their ids live here, with every other
// structure id, so that the list below does not reach up into the measuring code.
/// Structure id of the program evaluating the learned index (records storage).
pub const BPF_MODEL: &str = "bpf";
/// Structure id of the harness alone.
pub const BPF_NOOP: &str = "bpf-noop";
/// Structure id of the program evaluating the compact learned index.
pub const BPF_COMPACT: &str = "bpf-compact";

/// One measured cell: a structure on a dataset under a stream.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Dataset name.
    pub dataset: String,
    /// Image or synthetic.
    pub source: Source,
    /// Extents of the dataset.
    pub extents: usize,
    /// Structure id.
    pub structure: &'static str,
    /// Stream.
    pub stream: &'static str,
    /// ns per lookup over the timed batches.
    pub ns: Summary,
    /// Heap bytes of the structure.
    pub heap_bytes: usize,
    /// Model segments (learned structures).
    pub segments: usize,
    /// Largest window (learned structures).
    pub max_window: u64,
    /// Heap bytes of the model alone (learned structures).
    pub model_bytes: usize,
    /// Time to build the structure, in ms.
    pub build_ms: f64,
}

/// A structure built over one dataset.
pub struct Built {
    /// The structure.
    pub index: Box<dyn ExtentIndex>,
    /// Heap bytes it holds, counted by the allocator while it was built ([`Structure::make`]).
    pub heap_bytes: usize,
    /// Model segments (learned structures; 0 for the others).
    pub segments: usize,
    /// Largest search window in extent slots (learned structures; 0 for the others).
    pub max_window: u64,
    /// Heap bytes of the model alone (learned structures; 0 for the others).
    pub model_bytes: usize,
    /// The exact form the compact learned index chose for this map and its make-up (no heap:
    /// the bytes above are counted while this is built); `None` for the others.
    pub compact: Option<(LearnedForm, LearnedShape)>,
    /// The structure the per-file choice chose (the `chosen` row); `None` for the others.
    pub chosen: Option<&'static str>,
}

impl Built {
    /// The compact index's form in words (`packed: 205 lines, 20 runs of 320 extents`); empty
    /// for the other structures.
    pub fn form(&self) -> String {
        if let Some(name) = self.chosen {
            return format!("chose {name}");
        }
        self.compact
            .map_or_else(String::new, |(f, s)| form_of(f, s))
    }

    fn plain(index: impl ExtentIndex + 'static) -> Option<Self> {
        Some(Self {
            index: Box::new(index),
            heap_bytes: 0,
            segments: 0,
            max_window: 0,
            model_bytes: 0,
            compact: None,
            chosen: None,
        })
    }

    /// Either storage of the learned index: its pieces (lines and runs), widest window, model
    /// bytes and form.
    fn learned(ix: LearnedIndex) -> Option<Self> {
        let s = ix.shape();
        Some(Self {
            heap_bytes: 0,
            segments: s.runs + s.lines,
            max_window: ix.max_window(),
            model_bytes: ix.model_bytes(),
            compact: Some((ix.form(), s)),
            chosen: None,
            index: Box::new(ix),
        })
    }
}

/// The compact index's form in words (`packed: 205 lines, 20 runs of 320 extents`).
pub fn form_of(form: LearnedForm, s: LearnedShape) -> String {
    match form {
        LearnedForm::Packed | LearnedForm::Records => format!(
            "{}: {} lines, {} runs of {} extents",
            form.name(),
            s.lines,
            s.runs,
            s.run_extents
        ),
        f => f.name().to_string(),
    }
}

/// One structure of the comparison.
pub struct Structure {
    /// Id in tables (`learned`, `btree`, ...).
    pub name: &'static str,
    /// Legend text.
    pub label: &'static str,
    /// Drawn in the figures (variants only in the tables and the headline table).
    pub in_figure: bool,
    /// Palette index of its colour in every figure.
    pub color: usize,
    /// Builds it over a dataset; `None` where it does not apply (the on-disk walk needs an
    /// image) or the build failed (logged).
    pub build: fn(&Dataset) -> Option<Built>,
}

impl Structure {
    /// Builds it over `d`, with the heap bytes it keeps counted by the allocator
    /// (`predictor::alloc`, the global allocator of `reports`), not estimated.
    pub fn make(&self, d: &Dataset) -> Option<Built> {
        let (bytes, built) = predictor::alloc::counted(|| (self.build)(d));
        built.map(|b| Built {
            heap_bytes: bytes,
            ..b
        })
    }
}

/// The structures, baseline (`btree`) included; figures draw them in this order.
#[rustfmt::skip]
pub const STRUCTURES: &[Structure] = &[
    Structure { name: Id::Learned.name(), label: Id::Learned.label(), in_figure: true, color: 0, build: learned_default },
    Structure { name: Id::Compact.name(), label: Id::Compact.label(), in_figure: true, color: 10, build: compact },
    Structure { name: "learned-w8", label: "learned index (window <= 8)", in_figure: false, color: 8, build: |d| learned_fit(d, 8) },
    Structure { name: Id::Btree.name(), label: Id::Btree.label(), in_figure: true, color: 3, build: |d| Built::plain(BTreeIndex::new(&d.extents)) },
    Structure { name: Id::Iext32.name(), label: Id::Iext32.label(), in_figure: true, color: 4, build: |d| iext::<FuseRec>(d) },
    Structure { name: Id::Iext16.name(), label: Id::Iext16.label(), in_figure: false, color: 5, build: |d| iext::<XfsRec>(d) },
    Structure { name: Id::RangeMap.name(), label: Id::RangeMap.label(), in_figure: true, color: 1, build: |d| Built::plain(RangeMapIndex::new(&d.extents)) },
    Structure { name: Id::Sorted.name(), label: Id::Sorted.label(), in_figure: true, color: 2, build: |d| Built::plain(SortedIndex::new(d.extents.clone())) },
    Structure { name: Id::Ondisk.name(), label: Id::Ondisk.label(), in_figure: true, color: 7, build: ondisk },
    // Measured in the kernel (crate::support::in_kernel), not raced in user space: no userspace build.
    Structure { name: crate::support::structures::BPF_MODEL, label: "BPF program in the kernel (learned model)", in_figure: true, color: 6, build: |_| None },
    Structure { name: crate::support::structures::BPF_NOOP, label: "BPF test-run harness alone (no lookup)", in_figure: false, color: 6, build: |_| None },
    Structure { name: crate::support::structures::BPF_COMPACT, label: "BPF program in the kernel (compact learned index)", in_figure: true, color: 11, build: |_| None },
];

/// The baseline every speed-up is relative to.
pub const BASELINE: &str = Id::Btree.name();

/// The learned index over records as a server would run it: the pack's lines for image files
/// (trained by `predictor::train` with the default window), a default fit for synthetic maps.
/// The BPF tier's cells load this same index into the kernel.
pub fn learned_index(d: &Dataset) -> Option<LearnedIndex> {
    learned_with(d, Storage::Records)
}

/// The learned index over `storage`, with the pack's lines where it has them for this map.
fn learned_with(d: &Dataset, storage: Storage) -> Option<LearnedIndex> {
    if let Some(model) = &d.model {
        match LearnedIndex::with_model(&d.extents, model, storage) {
            Ok(ix) => return Some(ix),
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %e, "pack model unusable; fitting afresh")
            }
        }
    }
    fit_index(d, FitParams::default().max_window, storage)
}

fn learned_default(d: &Dataset) -> Option<Built> {
    Built::learned(learned_index(d)?)
}

/// A learned index over `storage` fitted with window bound `max_window`.
fn fit_index(d: &Dataset, max_window: u32, storage: Storage) -> Option<LearnedIndex> {
    let params = FitParams {
        max_window,
        ..FitParams::default()
    };
    match LearnedIndex::with_storage(&d.extents, &params, storage) {
        Ok(ix) => Some(ix),
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "learned index build failed");
            None
        }
    }
}

fn learned_fit(d: &Dataset, max_window: u32) -> Option<Built> {
    Built::learned(fit_index(d, max_window, Storage::Records)?)
}

/// The compact learned index: the learned index over packed blocks, with the pack's lines for
/// image files.
fn compact(d: &Dataset) -> Option<Built> {
    Built::learned(learned_with(d, Storage::Packed)?)
}

/// The on-disk walk of an image file; none for synthetic maps (there is no tree to walk).
fn ondisk(d: &Dataset) -> Option<Built> {
    let f = d.file.as_ref()?;
    Built::plain(OnDiskIndex::new(f.fs.clone(), f.inode.clone()))
}

/// The kernel-style extent tree with record layout `R` (a record layout that cannot hold an
/// extent, e.g. a physical block past its bits, makes it inapplicable to the dataset).
fn iext<R: IextRecord + 'static>(d: &Dataset) -> Option<Built> {
    match IextIndex::<R>::new(&d.extents) {
        Ok(ix) => Built::plain(ix),
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "iext tree not built");
            None
        }
    }
}
