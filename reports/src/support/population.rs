//! The files a run measures, as a population: every regular file of an image or of a live
//! scan, grouped into classes by extent count. On a working machine nearly every file has one
//! extent; the learned tier only matters in the tail, and these classes show how long it is.

use anyhow::{anyhow, Context, Result};
use ext4::Extent;
use predictor::Pack;

use crate::support::images::{FileInfo, LoadedImage};
use crate::support::live::LiveSet;

/// A class of files by extent count: `min..=max` extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// Label in tables and figures.
    pub label: &'static str,
    /// Fewest extents in the class.
    pub min: u64,
    /// Most extents in the class.
    pub max: u64,
}

/// The classes, in order: empty files, one extent, then decades up to more than 10^6.
pub const CLASSES: &[Class] = &[
    Class {
        label: "0",
        min: 0,
        max: 0,
    },
    Class {
        label: "1",
        min: 1,
        max: 1,
    },
    Class {
        label: "2-10",
        min: 2,
        max: 10,
    },
    Class {
        label: "11-100",
        min: 11,
        max: 100,
    },
    Class {
        label: "101-10^3",
        min: 101,
        max: 1_000,
    },
    Class {
        label: "10^3-10^4",
        min: 1_001,
        max: 10_000,
    },
    Class {
        label: "10^4-10^5",
        min: 10_001,
        max: 100_000,
    },
    Class {
        label: "10^5-10^6",
        min: 100_001,
        max: 1_000_000,
    },
    Class {
        label: ">10^6",
        min: 1_000_001,
        max: u64::MAX,
    },
];

/// The index in [`CLASSES`] of the class of a file with `extents` extents.
pub fn class_index(extents: u64) -> usize {
    CLASSES
        .iter()
        .position(|c| (c.min..=c.max).contains(&extents))
        .unwrap_or(CLASSES.len() - 1) // never taken: the last class is unbounded above
}

/// Where a population's files and their extent maps are.
pub enum Maps<'a> {
    /// An image: extents are read from its extent trees.
    Image(&'a LoadedImage),
    /// A live scan: extents are in memory.
    Live(&'a LiveSet),
}

/// One population: the regular files of an image or of a live scan.
pub struct Population<'a> {
    /// Name in tables (the image's, or `live:PATH`).
    pub name: &'a str,
    /// Every file, with its model's facts.
    pub files: &'a [FileInfo],
    /// The models in use.
    pub pack: &'a Pack,
    maps: Maps<'a>,
}

impl<'a> Population<'a> {
    /// The population of `img`.
    pub fn image(img: &'a LoadedImage) -> Self {
        Self {
            name: &img.name,
            files: &img.files,
            pack: &img.pack,
            maps: Maps::Image(img),
        }
    }

    /// The population of a live scan.
    pub fn live(set: &'a LiveSet) -> Self {
        Self {
            name: &set.name,
            files: &set.files,
            pack: &set.pack,
            maps: Maps::Live(set),
        }
    }

    /// Whether its maps come from a live scan (else from an image).
    pub fn is_live(&self) -> bool {
        matches!(self.maps, Maps::Live(_))
    }

    /// The extent map of `f`.
    pub fn extents(&self, f: &FileInfo) -> Result<Vec<Extent>> {
        match &self.maps {
            Maps::Image(img) => {
                let what = || format!("{}: inode {} ({})", img.path.display(), f.ino, f.path);
                let inode = img.fs.inode(f.ino).with_context(what)?;
                img.fs.extents(&inode).with_context(what)
            }
            Maps::Live(set) => set
                .extents(f.ino)
                .map(<[Extent]>::to_vec)
                .ok_or_else(|| anyhow!("{}: inode {} ({}) has no map", set.name, f.ino, f.path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_count_once() {
        for n in [
            0,
            1,
            2,
            10,
            11,
            100,
            101,
            1000,
            1001,
            10_000,
            1_000_000,
            1_000_001,
            u64::MAX,
        ] {
            let hits = CLASSES
                .iter()
                .filter(|c| (c.min..=c.max).contains(&n))
                .count();
            assert_eq!(hits, 1, "{n}");
        }
        assert_eq!(CLASSES[class_index(1)].label, "1");
        assert_eq!(CLASSES[class_index(5000)].label, "10^3-10^4");
        assert_eq!(CLASSES[class_index(2_000_000)].label, ">10^6");
        for w in CLASSES.windows(2) {
            assert_eq!(w[0].max + 1, w[1].min);
        }
    }
}
