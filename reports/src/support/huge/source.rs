//! The synthetic map of `reports huge`: extents drawn one step at a time from the steps of a map
//! the kernel's allocator made.
//!
//! A step is what separates an extent from the one before it: the hole before it (gap), its
//! length, and where it starts on disk relative to the previous extent's physical end (jump),
//! with its unwritten flag. The source map's steps are an empirical joint distribution; the
//! synthetic map draws its steps from it independently, with replacement (a bootstrap). That
//! keeps each step's gap, length and jump together, as the allocator made them, and keeps
//! nothing of their order: simple, and stated in the output.
//!
//! `predictor::synth::allocator_like` is not used as the source where the kernel can be asked:
//! its distributions are fixed by hand (log-uniform lengths and gaps, a fifth of the extents
//! jumping anywhere), not measured, and its strides (up to 256 blocks) would not fit 10^8
//! extents into the 32-bit logical block space. Without root (no loop mount) it is the
//! fallback source, and the output says so.

use anyhow::{Context, Result};
use ext4::Extent;
use imagekit::kernel::Allocated;
use predictor::synth::Rng;

/// Physical blocks stay below this (4 PiB of 4 KiB blocks): a jump below block 0 or past it
/// wraps around, so the walk of 10^8 signed jumps stays where every structure (iext16's 52-bit
/// records, the BPF program's 64-bit byte addresses) can hold it.
const PHYS_TOP: i64 = 1 << 40;

/// Where the first extent's physical blocks start.
const PHYS_START: i64 = 1 << 20;

/// One extent relative to the one before it.
#[derive(Debug, Clone, Copy)]
struct Step {
    gap: u32,
    len: u32,
    jump: i64,
    unwritten: bool,
}

/// The steps a synthetic map is drawn from, and where they came from.
pub struct Source {
    /// In words, for the output (`kernel appenders: 13500 steps of 4 files`).
    pub name: String,
    steps: Vec<Step>,
}

/// The allocation pattern (`imagekit::kernel::Allocated`) whose kernel-made map the steps come
/// from, as a command-line value.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Pattern {
    /// Four files appended in turn with fsync (no holes; jumps over the other files' blocks).
    Appenders,
    /// A fallocated file with random holes punched (unwritten extents of irregular lengths).
    RandomPunched,
    /// Random writes into a sparse 16 GiB file (long holes; too long for 10^8 extents).
    SparseDisk,
    /// An SQLite database under fsynced transactions (needs the sqlite3 shell).
    Sqlite,
}

impl Pattern {
    fn allocated(self) -> Allocated {
        match self {
            Self::Appenders => Allocated::Appenders,
            Self::RandomPunched => Allocated::RandomPunched,
            Self::SparseDisk => Allocated::SparseDisk,
            Self::Sqlite => Allocated::Sqlite,
        }
    }
}

impl Source {
    /// The steps of every file of the pattern's image (at `scale`, by default the demo's), made
    /// by the kernel on a loop mount; or, without root, those of `allocator_like`.
    pub fn new(pattern: Pattern, scale: Option<u32>, seed: u64) -> Result<Self> {
        if !imagekit::kernel::is_root() {
            tracing::warn!(
                "not root: no loop mount for a kernel-made map; steps from \
                 predictor::synth::allocator_like (fixed distributions, not measured)"
            );
            let mut steps = Vec::new();
            push_steps(&predictor::synth::allocator_like(100_000, seed), &mut steps);
            return Ok(Self {
                name: format!(
                    "allocator_like (fixed distributions, not root): {} steps",
                    steps.len()
                ),
                steps,
            });
        }
        let pattern = pattern.allocated();
        let scale = scale
            .or_else(|| imagekit::Recipe::demo_scale(pattern))
            .unwrap_or(5_000);
        let dir = tempfile::tempdir().context("a scratch directory for the kernel's image")?;
        let start = std::time::Instant::now();
        let made = imagekit::Recipe::Allocated {
            pattern,
            scale,
            seed,
        };
        let image = made
            .build(dir.path())
            .with_context(|| format!("making the {} image", pattern.name()))?
            .path;
        let fs =
            ext4::Fs::open_path(&image).with_context(|| format!("opening {}", image.display()))?;
        let (files, errors) = predictor::train::regular_files(&fs);
        for e in &errors {
            tracing::warn!(path = %e.path, error = %e.error, "file of the source image skipped");
        }
        let mut steps = Vec::new();
        let mut used = 0;
        for (path, inode) in &files {
            let exts = fs
                .extents(inode)
                .with_context(|| format!("{}: {path}", image.display()))?;
            used += usize::from(exts.len() > 1);
            push_steps(&exts, &mut steps);
        }
        tracing::info!(
            recipe = pattern.name(),
            scale,
            steps = steps.len(),
            secs = start.elapsed().as_secs_f64(),
            "source map made by the kernel"
        );
        if steps.is_empty() {
            anyhow::bail!(
                "the {} image has no map of two extents or more",
                pattern.name()
            );
        }
        Ok(Self {
            name: format!(
                "kernel {} (scale {scale}): {} steps of {used} files",
                pattern.name(),
                steps.len()
            ),
            steps,
        })
    }

    /// Mean blocks per step (gap plus length): how far `n` extents reach.
    pub fn mean_stride(&self) -> f64 {
        let sum: u64 = self
            .steps
            .iter()
            .map(|s| u64::from(s.gap) + u64::from(s.len))
            .sum();
        sum as f64 / self.steps.len().max(1) as f64
    }

    /// `n` extents drawn step by step, straight into one vector of exactly `n` (no copies: at
    /// 10^8 extents one is 2.4 GB). The map stops early, with a warning, where the next extent
    /// would pass the 32-bit logical block space.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Vec<Extent>> {
        let mut out: Vec<Extent> = Vec::new();
        out.try_reserve_exact(n)
            .with_context(|| format!("memory for {n} extents"))?;
        let mut rng = Rng::new(seed);
        let (mut lblk, mut pend) = (0u64, PHYS_START);
        let count = self.steps.len() as u64;
        for _ in 0..n {
            // OK to narrow: below(count) < count, a usize.
            let Some(s) = self.steps.get(rng.below(count) as usize) else {
                break;
            };
            let start = lblk + u64::from(s.gap);
            if start + u64::from(s.len) > ext4::MAX_LBLK {
                tracing::warn!(
                    asked = n,
                    made = out.len(),
                    "the 32-bit logical block space is full: a shorter map"
                );
                break;
            }
            let pblk = (pend + s.jump).rem_euclid(PHYS_TOP);
            // OK to narrow: start + len <= MAX_LBLK < 2^32 was checked; pblk is in [0, 2^40).
            out.push(Extent {
                lblk: start as u32,
                pblk: pblk as u64,
                len: s.len,
                unwritten: s.unwritten,
            });
            lblk = start + u64::from(s.len);
            pend = pblk + i64::from(s.len);
        }
        Ok(out)
    }
}

/// The steps between consecutive extents of `exts` (the first extent has no step before it).
fn push_steps(exts: &[Extent], out: &mut Vec<Step>) {
    for w in exts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let Ok(gap) = u32::try_from(u64::from(b.lblk).saturating_sub(a.end())) else {
            continue;
        };
        // OK to narrow: physical blocks of a real image are far below 2^63.
        let jump = b.pblk as i64 - (a.pblk + u64::from(a.len)) as i64;
        out.push(Step {
            gap,
            len: b.len,
            jump,
            unwritten: b.unwritten,
        });
    }
}
