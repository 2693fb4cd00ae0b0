//! Every lookup structure the experiments compare, in one list. Adding one (the BPF tier, an
//! iext-style B-tree) is one line in [`STRUCTURES`] plus its build function.

use predictor::index::iext::{FuseRec, IextIndex, IextRecord, XfsRec};
use predictor::model::FitParams;
use predictor::{BTreeIndex, ExtentIndex, LearnedIndex, OnDiskIndex, RangeMapIndex, SortedIndex};

use crate::datasets::Dataset;

/// A structure built over one dataset.
pub struct Built {
    /// The structure.
    pub index: Box<dyn ExtentIndex>,
    /// Model segments (learned structures; 0 for the others).
    pub segments: usize,
    /// Largest search window in extent slots (learned structures; 0 for the others).
    pub max_window: u64,
    /// Heap bytes of the model alone (learned structures; 0 for the others).
    pub model_bytes: usize,
}

impl Built {
    fn plain(index: impl ExtentIndex + 'static) -> Option<Self> {
        Some(Self {
            index: Box::new(index),
            segments: 0,
            max_window: 0,
            model_bytes: 0,
        })
    }

    fn learned(ix: LearnedIndex, max_window: u64) -> Option<Self> {
        Some(Self {
            segments: ix.segment_count(),
            max_window,
            model_bytes: ix.model_bytes(),
            index: Box::new(ix),
        })
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

/// The structures, baseline (`btree`) included; figures draw them in this order.
#[rustfmt::skip]
pub const STRUCTURES: &[Structure] = &[
    Structure { name: "learned", label: "learned index (window <= 32)", in_figure: true, color: 0, build: learned_default },
    Structure { name: "learned-w8", label: "learned index (window <= 8)", in_figure: false, color: 8, build: |d| learned_fit(d, 8) },
    Structure { name: "learned-w128", label: "learned index (window <= 128)", in_figure: false, color: 9, build: |d| learned_fit(d, 128) },
    Structure { name: "btree", label: "BTreeMap", in_figure: true, color: 3, build: |d| Built::plain(BTreeIndex::new(&d.extents)) },
    Structure { name: "iext-fuse", label: "kernel-style iext tree (32 B fuse_iomap_io records)", in_figure: true, color: 4, build: |d| iext::<FuseRec>(d) },
    Structure { name: "iext-xfs", label: "kernel-style iext tree (16 B xfs records)", in_figure: false, color: 5, build: |d| iext::<XfsRec>(d) },
    Structure { name: "rangemap", label: "rangemap::RangeMap", in_figure: true, color: 1, build: |d| Built::plain(RangeMapIndex::new(&d.extents)) },
    Structure { name: "sorted", label: "sorted array (binary search)", in_figure: true, color: 2, build: |d| Built::plain(SortedIndex::new(d.extents.clone())) },
    Structure { name: "ondisk", label: "on-disk extent-tree walk", in_figure: true, color: 7, build: ondisk },
];

/// The baseline every speed-up is relative to.
pub const BASELINE: &str = "btree";

/// The learned index as a server would run it: the pack's model for image files (trained by
/// `predictor::train` with the default window), a default fit for synthetic maps.
fn learned_default(d: &Dataset) -> Option<Built> {
    match &d.model {
        Some(model) => match LearnedIndex::new(&d.extents, model) {
            Ok(ix) => Built::learned(ix, model.max_window()),
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %e, "pack model unusable; fitting afresh");
                learned_fit(d, FitParams::default().max_window)
            }
        },
        None => learned_fit(d, FitParams::default().max_window),
    }
}

/// A learned index fitted with window bound `max_window`.
fn learned_fit(d: &Dataset, max_window: u32) -> Option<Built> {
    let params = FitParams {
        max_window,
        ..FitParams::default()
    };
    match predictor::model::fit_extents(&d.extents, &params) {
        Ok((model, _)) => match LearnedIndex::new(&d.extents, &model) {
            Ok(ix) => Built::learned(ix, model.max_window()),
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %e, "learned index build failed");
                None
            }
        },
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "fit failed");
            None
        }
    }
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
