//! The measurement regimes: how a lookup's time was taken. One name and one meaning each, used
//! by the benches, `reports structures`, the report's figures and tables, the population view,
//! the README and the notebooks, so that every time and ratio printed names the regime it was
//! taken in, and two numbers under one name were taken the same way.

/// A way of timing lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Regime {
    /// One structure alone, one batch of uniform random blocks asked again and again in
    /// changing orders.
    WarmAlone,
    /// Several structures raced in turn on the same uniform random blocks, batch by batch.
    WarmShared,
    /// Each timed lookup after its data was evicted, its code kept warm.
    ColdEvicted,
    /// Each lookup in one of many copies of the structure, as over many files.
    ColdManyFiles,
    /// Batches of consecutive blocks, as a sequential reader asks for them.
    Sequential,
}

impl Regime {
    /// Every regime.
    pub const ALL: [Regime; 5] = [
        Self::WarmAlone,
        Self::WarmShared,
        Self::ColdEvicted,
        Self::ColdManyFiles,
        Self::Sequential,
    ];

    /// Its name everywhere: benchmark ids, tables, figures, prose.
    pub fn name(self) -> &'static str {
        match self {
            Self::WarmAlone => "warm-alone",
            Self::WarmShared => "warm-shared",
            Self::ColdEvicted => "cold-evicted",
            Self::ColdManyFiles => "cold-many-files",
            Self::Sequential => "sequential",
        }
    }

    /// What it measures, in a sentence (the reports and docs quote it).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::WarmAlone => {
                "one structure alone, one batch of uniform random blocks asked again and again \
                 in changing orders: its cache lines stay in the caches (what a mapping cache \
                 sees while one file is read hard)"
            }
            Self::WarmShared => {
                "the structures raced in turn on the same uniform random blocks, batch by \
                 batch: each stays warm but shares the caches with the others, and from about \
                 10^5 extents its batches drift toward cold"
            }
            Self::ColdEvicted => {
                "before every timed lookup a buffer of twice the last-level cache is read and \
                 the same block looked up in a twin of the structure: its data cold, the \
                 lookup's code and the clock warm (an iomap_begin after other work evicted the \
                 mapping cache)"
            }
            Self::ColdManyFiles => {
                "each lookup in one of as many copies of the structure as fill twice the \
                 last-level cache, as lookups spread over many files; successive lookups' misses \
                 overlap"
            }
            Self::Sequential => {
                "batches of consecutive blocks from random starts, as a sequential reader asks \
                 for them: the same few cache lines again and again"
            }
        }
    }

    /// The regime named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Regime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
