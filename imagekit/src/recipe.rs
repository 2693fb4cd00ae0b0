//! [`Recipe`]: the one name of every image the project builds, whoever builds it (mke2fs and
//! debugfs, or the kernel through a loop mount), and the lists of them ([`Recipe::STANDARD`],
//! [`Recipe::DEMO`]).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::error::{io_err, Result};
use crate::kernel::{self, Allocated};
use crate::{kinds, Image, Kind};

/// The seed of the demo's kernel-allocated maps (the same as the reports' synthetic maps and
/// the benches' `MAP_SEED`).
pub const DEMO_SEED: u64 = 42;

/// One image the project builds, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipe {
    /// A file system mke2fs and debugfs build from seeded random contents, by kind (no root
    /// needed; the same files on every machine).
    Debugfs(Kind),
    /// A map the kernel's allocator makes on a read-write loop mount of a fresh 4 KiB-block
    /// ext4 (root): the allocation `pattern` run for `scale` operations with random numbers
    /// from `seed`.
    Allocated {
        /// What the files go through.
        pattern: Allocated,
        /// How many operations (see [`Allocated`] for what one is).
        scale: u32,
        /// Seed of the operations' random numbers.
        seed: u64,
    },
    /// A 4 KiB-block image whose file `/punched` has exactly `extents` unwritten extents made
    /// by the kernel (root): `fallocate`, then a hole punched in every other block. The regular
    /// pattern one line predicts exactly; only for lookups and training, its reads are zeros.
    Punched {
        /// Extents of `/punched`.
        extents: u32,
    },
}

/// Shorthand for the lists below.
const fn debugfs(kind: Kind) -> Recipe {
    Recipe::Debugfs(kind)
}

/// Shorthand for the demo's kernel-allocated maps.
const fn demo_allocated(pattern: Allocated, scale: u32) -> Recipe {
    Recipe::Allocated {
        pattern,
        scale,
        seed: DEMO_SEED,
    }
}

impl Recipe {
    /// The images of [`crate::standard`], the slowest first (they are built in parallel).
    pub const STANDARD: &'static [Recipe] = &[
        debugfs(Kind::Frag1k),
        debugfs(Kind::HtreeNoCsum),
        debugfs(Kind::Ext1k),
        debugfs(Kind::Frag4k),
        debugfs(Kind::Ext4k),
        debugfs(Kind::Bigalloc),
        debugfs(Kind::No64bit),
        debugfs(Kind::NoFlexBg),
        debugfs(Kind::MetaBg),
        debugfs(Kind::Ext4_64k),
        debugfs(Kind::Ext3_1k),
        debugfs(Kind::Ext3_4k),
        debugfs(Kind::Inline),
    ];

    /// The images of `reports demo`, in report order: the debugfs mix (a punched file of about
    /// 10^5 extents, a tree of 2000 files, a depth-3 tree on 1 KiB blocks, unwritten extents),
    /// then, as root, the kernel-punched file of 10^6 extents and the kernel-allocated maps,
    /// from about 10^3 (the appenders' smallest file) to 10^6 extents.
    pub const DEMO: &'static [Recipe] = &[
        debugfs(Kind::DemoPunched),
        debugfs(Kind::DemoTree),
        debugfs(Kind::DemoDepth3),
        debugfs(Kind::DemoUnwritten),
        Recipe::Punched { extents: 1_000_000 },
        demo_allocated(Allocated::RandomPunched, 1_000_000),
        demo_allocated(Allocated::Appenders, 5_000),
        demo_allocated(Allocated::SparseDisk, 30_000),
        demo_allocated(Allocated::Sqlite, 5_000),
    ];

    /// The recipe named `name` in [`Self::STANDARD`] or [`Self::DEMO`].
    #[must_use]
    pub fn named(name: &str) -> Option<Recipe> {
        Self::STANDARD
            .iter()
            .chain(Self::DEMO)
            .copied()
            .find(|r| r.name() == name)
    }

    /// The operations the demo runs the kernel-allocated `pattern` for ([`Self::DEMO`]).
    #[must_use]
    pub fn demo_scale(pattern: Allocated) -> Option<u32> {
        Self::DEMO.iter().find_map(|r| match *r {
            Recipe::Allocated {
                pattern: p, scale, ..
            } if p == pattern => Some(scale),
            _ => None,
        })
    }

    /// Short id: the image's file stem and the dataset name in reports (`ext4-1k`,
    /// `kernel-appenders`, `kernel-punched-1e6`).
    #[must_use]
    pub fn name(&self) -> String {
        match *self {
            Recipe::Debugfs(kind) => kind.name().to_owned(),
            Recipe::Allocated { pattern, .. } => pattern.name().to_owned(),
            Recipe::Punched { extents } => {
                format!("kernel-punched-{}", count_label(u64::from(extents)))
            }
        }
    }

    /// One line on what the image holds.
    #[must_use]
    pub fn description(&self) -> String {
        match *self {
            Recipe::Debugfs(kind) => kind.description().to_owned(),
            Recipe::Allocated { pattern, scale, .. } => pattern.description(scale),
            Recipe::Punched { extents } => format!(
                "4 KiB blocks, /punched: {extents} unwritten extents made by the kernel \
                 (fallocate, then a hole punched in every other block); only for lookups and \
                 training, its reads are zeros"
            ),
        }
    }

    /// The debugfs kind, if mke2fs and debugfs build it.
    #[must_use]
    pub fn kind(&self) -> Option<Kind> {
        match *self {
            Recipe::Debugfs(kind) => Some(kind),
            _ => None,
        }
    }

    /// Whether building it needs root (a loop mount).
    #[must_use]
    pub fn needs_root(&self) -> bool {
        !matches!(self, Recipe::Debugfs(_))
    }

    /// Whether its files hold written data (worth reading end to end): not so for the maps
    /// of unwritten extents.
    #[must_use]
    pub fn written(&self) -> bool {
        match *self {
            Recipe::Debugfs(_) => true,
            Recipe::Allocated { pattern, .. } => pattern.written(),
            Recipe::Punched { .. } => false,
        }
    }

    /// Builds the image as `DIR/NAME.img` (replacing an old one). A debugfs image's source
    /// files go to a scratch directory removed at the end (kept as `DIR/NAME.work/`, with the
    /// debugfs script as `DIR/NAME.debugfs`, when `IMAGEKIT_KEEP` is set); the kernel's images
    /// need root ([`crate::Error::NotRoot`] otherwise).
    pub fn build(&self, dir: &Path) -> Result<Image> {
        match *self {
            Recipe::Debugfs(kind) => kinds::build(kind, dir),
            Recipe::Punched { extents } => {
                self.build_by_kernel(dir, vec!["/punched".into()], |path| {
                    kernel::punched(path, extents)
                })
            }
            Recipe::Allocated {
                pattern,
                scale,
                seed,
            } => self.build_by_kernel(dir, pattern.files(), |path| {
                kernel::allocated(path, pattern, scale, seed)
            }),
        }
    }

    /// Builds a kernel-made image with `make` (which returns its mke2fs command line).
    fn build_by_kernel(
        &self,
        dir: &Path,
        files: Vec<String>,
        make: impl FnOnce(&Path) -> Result<String>,
    ) -> Result<Image> {
        std::fs::create_dir_all(dir).map_err(io_err("creating image directory", dir))?;
        let name = self.name();
        let _span = tracing::info_span!("build", image = %name).entered();
        let started = Instant::now();
        let path = dir.join(format!("{name}.img"));
        let mkfs_command = make(&path)?;
        Ok(Image {
            name,
            recipe: *self,
            path,
            block_size: 4096,
            files,
            specs: Vec::new(),
            description: self.description(),
            mkfs_command,
            kernel_mountable: 4096 <= kernel::page_size(),
            build_time: started.elapsed(),
        })
    }
}

/// `n` as dataset names write it: `1e6` for a power of ten, else the digits.
#[must_use]
pub fn count_label(n: u64) -> String {
    let (mut k, mut exp) = (n, 0);
    while k >= 10 && k % 10 == 0 {
        k /= 10;
        exp += 1;
    }
    if k == 1 && exp > 0 {
        format!("1e{exp}")
    } else {
        n.to_string()
    }
}

/// Recipes, each with its index in the caller's list.
type Numbered = Vec<(usize, Recipe)>;

/// Builds several images in `dir`, in the order of `recipes` (the first failure is returned):
/// the debugfs ones on as many threads as there are CPUs (mke2fs and debugfs are
/// single-threaded), then the kernel's one at a time (each fills a loop device and the page
/// cache; in parallel they would only wait for each other).
pub fn build_many(recipes: &[Recipe], dir: &Path) -> Result<Vec<Image>> {
    let (debugfs, kernel): (Numbered, Numbered) = recipes
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, r)| !r.needs_root());
    let mut done = build_parallel(&debugfs, dir);
    done.extend(kernel.into_iter().map(|(i, r)| (i, r.build(dir))));
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Builds `recipes` (each with its index) on worker threads; the results with their indices.
fn build_parallel(recipes: &[(usize, Recipe)], dir: &Path) -> Vec<(usize, Result<Image>)> {
    let workers = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, recipes.len().max(1));
    let next = AtomicUsize::new(0);
    let mut done = Vec::with_capacity(recipes.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while let Some(&(i, recipe)) = recipes.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        mine.push((i, recipe.build(dir)));
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(mine) => done.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_again() {
        let all: Vec<Recipe> = Recipe::STANDARD
            .iter()
            .chain(Recipe::DEMO)
            .copied()
            .collect();
        let mut names: Vec<String> = all.iter().map(Recipe::name).collect();
        for r in &all {
            assert_eq!(Recipe::named(&r.name()), Some(*r));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "names are unique");
        assert_eq!(Recipe::DEMO[4].name(), "kernel-punched-1e6");
        assert_eq!(Recipe::demo_scale(Allocated::Appenders), Some(5_000));
    }

    #[test]
    fn count_labels() {
        assert_eq!(count_label(1), "1");
        assert_eq!(count_label(10), "1e1");
        assert_eq!(count_label(100_000), "1e5");
        assert_eq!(count_label(40_000), "40000");
    }
}
