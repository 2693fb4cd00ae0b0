//! Opening an image and its model pack and building the tier stack: the one start-up path of
//! every command, so each refuses a missing image, an unparsable image or a pack for another
//! image with the same message, before doing anything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ext4::Fs;
use predictor::error::Chain;
use predictor::stack::BuildReport;
use predictor::{
    FrontTier, Mapping, Models, Pack, Query, QueryError, StackOptions, Tier, TierKind, TierStack,
};

use bpf::{BpfTier, TierChoice};

/// The `--tier` option of every command: the choices of [`TierChoice::all`], each value with
/// its help line, and the earlier names of [`Tier::ALIASES`] accepted.
pub fn tier_parser() -> impl clap::builder::TypedValueParser<Value = TierChoice> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let values = TierChoice::all().map(|t| {
        let aliases = Tier::ALIASES
            .iter()
            .filter(|(_, a)| TierChoice::from(*a) == t)
            .map(|(name, _)| *name);
        PossibleValue::new(t.name()).help(t.help()).aliases(aliases)
    });
    PossibleValuesParser::new(values).try_map(|name: String| name.parse::<TierChoice>())
}

/// Why an image could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The image file does not exist or cannot be opened (the error names the path).
    #[error(transparent)]
    Open(ext4::Error),
    /// The image cannot be read as ext2/3/4.
    #[error("image {path}")]
    Image {
        /// The image path.
        path: PathBuf,
        /// What the ext4 reader said.
        source: ext4::Error,
    },
    /// The model pack cannot be read, is corrupt, or belongs to another image.
    #[error(transparent)]
    Pack(#[from] predictor::PackError),
    /// The tier stack refused the pack (another image's UUID or block size).
    #[error(transparent)]
    Build(#[from] predictor::BuildError),
}

/// An image being served: its filesystem, the tier stack over it and the BPF tier in front.
#[derive(Debug)]
pub struct Served {
    /// The image path as given.
    pub path: PathBuf,
    /// The filesystem (shared with the stack's on-disk tier).
    pub fs: Arc<Fs>,
    /// The tier stack over every regular file.
    pub stack: Arc<TierStack>,
    /// What building the stack found.
    pub report: BuildReport,
    /// The tier choice.
    pub tier: TierChoice,
    /// Whether learned answers are audited against the B-tree.
    pub audit: bool,
    /// Whether a model pack was given.
    pub has_models: bool,
    /// The BPF tier in front of the stack (`--tier bpf`), if it could be loaded.
    pub bpf: Option<Arc<BpfTier>>,
    /// Why the BPF tier was asked for and could not be loaded.
    pub bpf_error: Option<String>,
}

impl Served {
    /// The tier in front of the stack: the BPF program, if loaded.
    pub fn front(&self) -> Option<&dyn FrontTier> {
        self.bpf.as_deref().map(|b| b as &dyn FrontTier)
    }

    /// The mappings `queries` ask for: the BPF tier first if loaded, then the stack (one
    /// program run for the batch).
    pub fn query_many(&self, queries: &[Query]) -> Vec<Result<(Mapping, TierKind), QueryError>> {
        self.stack.resolve(self.front(), queries)
    }

    /// The mapping `query` asks for (see [`Served::query_many`]).
    pub fn query(&self, query: Query) -> Result<(Mapping, TierKind), QueryError> {
        self.stack.resolve_one(self.front(), query)
    }
}

/// Opens `image`, reads `models` (if any) and builds the stack of `tier`.
pub fn open(
    image: &Path,
    models: Option<&Path>,
    tier: impl Into<TierChoice>,
    audit: bool,
) -> Result<Served, OpenError> {
    let tier = tier.into();
    let fs = Fs::open_path(image).map_err(|source| match source {
        e @ ext4::Error::Open { .. } => OpenError::Open(e),
        source => OpenError::Image {
            path: image.to_owned(),
            source,
        },
    })?;
    let fs = Arc::new(fs);
    let pack = models.map(Pack::read_file).transpose()?;
    let source = match &pack {
        Some(p) => Models::Pack(p),
        None => {
            if tier.stack.learned() {
                tracing::warn!(
                    "no --models given: the learned tier declines every query and the B-tree \
                     answers"
                );
            }
            Models::None
        }
    };
    let (stack, report) = TierStack::build(fs.clone(), tier.stack, source, StackOptions { audit })?;
    log_report(image, tier.stack, &report);
    let (bpf, bpf_error) = if tier.in_kernel {
        load_bpf(&stack)
    } else {
        (None, None)
    };
    Ok(Served {
        path: image.to_owned(),
        fs,
        stack: Arc::new(stack),
        report,
        tier,
        audit,
        has_models: pack.is_some(),
        bpf,
        bpf_error,
    })
}

/// Loads the BPF tier over the stack's learned (or compact) indexes. A failure (no CAP_BPF, a
/// kernel that refuses the program) is logged with its cause and leaves the userspace tiers
/// serving.
fn load_bpf(stack: &TierStack) -> (Option<Arc<BpfTier>>, Option<String>) {
    match bpf::load_stack(stack, bpf::Limits::default()) {
        Ok(t) => {
            t.report().log();
            (Some(Arc::new(t)), None)
        }
        Err(e) => {
            let msg = Chain(&e).to_string();
            tracing::error!("BPF tier unavailable, the userspace tiers answer alone: {msg}");
            (None, Some(msg))
        }
    }
}

/// Logs what the build found: a summary, and each per-file problem at debug level (a corrupt
/// image can have thousands).
fn log_report(image: &Path, tier: Tier, r: &BuildReport) {
    // What a file whose model is not usable gets: the compact tier fits its lines at load,
    // the learned tier leaves the file to the next tier.
    let instead = if tier.compact() {
        "the compact tier fits those files' lines at load"
    } else {
        "those files use the next tier"
    };
    tracing::debug!(
        image = %image.display(),
        files = r.files,
        extents = r.extents,
        models_active = r.models_active,
        models_stale = r.models_stale.len(),
        models_invalid = r.models_invalid.len(),
        load_errors = r.load_errors.len(),
        walk_errors = r.walk_errors.len(),
        ms = r.elapsed.as_millis() as u64,
        "tier stack built"
    );
    if !r.models_stale.is_empty() {
        tracing::warn!(
            inodes = ?r.models_stale.iter().take(10).collect::<Vec<_>>(),
            count = r.models_stale.len(),
            "stale models (file changed since training): {instead}"
        );
    }
    // A corrupt image can have thousands of these: the first few, then a count.
    const SHOWN: usize = 10;
    for (ino, e) in r.models_invalid.iter().take(SHOWN) {
        tracing::warn!(ino, error = %e, "model unusable: {instead}");
    }
    for (ino, e) in r.load_errors.iter().take(SHOWN) {
        tracing::warn!(ino, error = %e, "extents not loaded: lookups for this file walk the image");
    }
    for e in r.walk_errors.iter().take(SHOWN) {
        tracing::warn!(error = %e, "directory not read: its subtree is not served");
    }
    let hidden = [
        r.models_invalid.len(),
        r.load_errors.len(),
        r.walk_errors.len(),
    ]
    .into_iter()
    .map(|n| n.saturating_sub(SHOWN))
    .sum::<usize>();
    if hidden > 0 {
        tracing::warn!("{hidden} more per-file problems not shown (IOMAP_LOG=debug lists them)");
        for (ino, e) in r.load_errors.iter().skip(SHOWN) {
            tracing::debug!(ino, error = %e, "extents not loaded");
        }
        for e in r.walk_errors.iter().skip(SHOWN) {
            tracing::debug!(error = %e, "directory not read");
        }
        for (ino, e) in r.models_invalid.iter().skip(SHOWN) {
            tracing::debug!(ino, error = %e, "model unusable");
        }
    }
}
