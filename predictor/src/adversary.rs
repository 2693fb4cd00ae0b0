//! Adversarial extent maps: maps an unprivileged user can give one file on ext4, searched for
//! the ones that cost each learned structure the most.
//!
//! # What a user controls
//! A user who can write a file chooses, by `fallocate` (unwritten extents), `pwrite` (written
//! extents) and `fallocate(PUNCH_HOLE)`, which logical blocks are allocated, in which order,
//! with which flag, and where the holes are. The allocator chooses the physical blocks; the
//! user only influences it: allocating in logical order gets physically contiguous runs,
//! writing another file (or another part of this one) in between makes it jump, writing
//! several regions round-robin interleaves them, writing from the end backwards lays the file
//! out in descending order. ext4 bounds the rest: an extent holds at most
//! [`MAX_INIT_LEN`] blocks (written) or [`MAX_UNINIT_LEN`] (unwritten), logical blocks are
//! below 2^32, physical blocks below 2^48, and logically and physically adjacent extents of
//! one flag merge.
//!
//! # The generator
//! A [`Genome`] is a seed and a list of [`Phase`]s. The map is laid out in logical order, the
//! phases taken in turn (each for its `count` extents) until the map has the asked number of
//! extents: per extent a hole before it (with `hole_percent` chance, log-uniform below
//! `2^gap_bits` blocks), a length (log-uniform below `2^len_bits`, at most the ext4 limit),
//! a flag (`unwritten_percent`), and a physical start from the phase's [`Place`]. Extents that
//! would merge on ext4 are merged. [`realise`] is deterministic in the genome.
//!
//! # The search
//! [`search`] maximises one [`Objective`] (a structure's bytes per extent, segments per
//! extent, fitting work per extent or cache lines per lookup): random genomes first, then
//! hill-climbing from the best by mutating one phase parameter, adding, removing or
//! duplicating a phase, or drawing a new seed; a mutant replaces the best when it scores at
//! least as high. Everything is drawn from one seeded [`Rng`], so a search is the same on
//! every machine and [`worst_maps`] regenerates the same named datasets from its seed.

use ext4::Extent;

use crate::index::{ExtentIndex, LearnedIndex, Storage};
use crate::model::{fit_work, FitParams};
use crate::synth::Rng;

/// Longest written (initialised) ext4 extent, in blocks.
pub const MAX_INIT_LEN: u32 = 32768;
/// Longest unwritten ext4 extent, in blocks.
pub const MAX_UNINIT_LEN: u32 = 32767;
/// ext4's physical block numbers are 48 bits.
pub const PBLK_LIMIT: u64 = 1 << 48;

/// Where the allocator puts a phase's extents, as the user's write pattern steers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// Right after the previous extent's physical end: allocation in logical order.
    Contiguous,
    /// A forward jump of up to `2^bits` blocks before each extent (other files written in
    /// between; large jumps: another block group).
    Jump {
        /// Log2 of the largest jump.
        bits: u8,
    },
    /// `ways` regions written round-robin: each extent lands `ways - 1` extents' worth of
    /// blocks after the previous one.
    Interleave {
        /// Regions written in turn (at least 2).
        ways: u8,
    },
    /// The phase written back to front: physical starts descend as logical ones ascend.
    Reverse,
    /// Anywhere in the 48-bit space (a fragmented disk, free space found where it is).
    Scatter,
}

/// A stretch of the map with one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phase {
    /// Extents this phase lays out each time it is taken.
    pub count: u32,
    /// Log2 of the largest hole.
    pub gap_bits: u8,
    /// Chance of a hole before an extent, in percent.
    pub hole_percent: u8,
    /// Log2 of the largest extent length (at most 15: the ext4 limit).
    pub len_bits: u8,
    /// Chance of an unwritten extent, in percent.
    pub unwritten_percent: u8,
    /// Physical placement.
    pub place: Place,
}

/// A generator of one map: its seed and its phases (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Genome {
    /// Seed of the draws within the phases.
    pub seed: u64,
    /// The phases, taken in turn.
    pub phases: Vec<Phase>,
}

/// Largest number of phases a genome keeps.
pub const MAX_PHASES: usize = 8;

fn random_place(rng: &mut Rng) -> Place {
    match rng.below(5) {
        0 => Place::Contiguous,
        // OK to narrow: below 41 plus 1.
        1 => Place::Jump {
            bits: 1 + rng.below(40) as u8,
        },
        // OK to narrow: below 15 plus 2.
        2 => Place::Interleave {
            ways: 2 + rng.below(15) as u8,
        },
        3 => Place::Reverse,
        _ => Place::Scatter,
    }
}

impl Phase {
    /// A random phase.
    pub fn random(rng: &mut Rng) -> Self {
        // OK to narrow: every draw is below 256.
        Self {
            count: 1 + rng.below(256) as u32,
            gap_bits: rng.below(24) as u8,
            hole_percent: rng.below(101) as u8,
            len_bits: 1 + rng.below(15) as u8,
            unwritten_percent: rng.below(101) as u8,
            place: random_place(rng),
        }
    }

    /// The phase with one parameter redrawn.
    fn mutated(mut self, rng: &mut Rng) -> Self {
        let fresh = Self::random(rng);
        match rng.below(6) {
            0 => self.count = fresh.count,
            1 => self.gap_bits = fresh.gap_bits,
            2 => self.hole_percent = fresh.hole_percent,
            3 => self.len_bits = fresh.len_bits,
            4 => self.unwritten_percent = fresh.unwritten_percent,
            _ => self.place = fresh.place,
        }
        self
    }
}

impl Genome {
    /// A random genome of one to four phases.
    pub fn random(rng: &mut Rng) -> Self {
        let phases = (0..1 + rng.below(4)).map(|_| Phase::random(rng)).collect();
        Self {
            seed: rng.next_u64(),
            phases,
        }
    }

    /// One mutation of this genome.
    pub fn mutated(&self, rng: &mut Rng) -> Self {
        let mut g = self.clone();
        // OK to narrow: a phase index.
        let at = rng.below(g.phases.len() as u64) as usize;
        match rng.below(8) {
            0 => g.seed = rng.next_u64(),
            1 if g.phases.len() < MAX_PHASES => g.phases.insert(at, Phase::random(rng)),
            2 if g.phases.len() > 1 => {
                g.phases.remove(at);
            }
            3 if g.phases.len() < MAX_PHASES => {
                if let Some(&p) = g.phases.get(at) {
                    g.phases.insert(at, p.mutated(rng));
                }
            }
            _ => {
                if let Some(p) = g.phases.get_mut(at) {
                    *p = p.mutated(rng);
                }
            }
        }
        g
    }
}

/// The map `genome` describes, of `extents` extents (fewer where the 32-bit logical block
/// space runs out first), within ext4's limits, extents that ext4 would merge merged.
pub fn realise(genome: &Genome, extents: usize) -> Vec<Extent> {
    let mut rng = Rng::new(genome.seed);
    let mut out: Vec<Extent> = Vec::with_capacity(extents);
    let mut lblk = 0u64;
    let mut cursor = 1u64 << 20;
    let phases: Vec<Phase> = genome
        .phases
        .iter()
        .copied()
        .filter(|p| p.count > 0)
        .collect();
    if phases.is_empty() {
        return out;
    }
    'fill: for phase in phases.iter().cycle() {
        // A reversed phase lays its extents back to front from a cursor this far ahead.
        let mut reverse_from = None;
        for _ in 0..phase.count {
            if out.len() >= extents {
                break 'fill;
            }
            if !out.is_empty() && rng.chance(u64::from(phase.hole_percent)) {
                lblk += u64::from(log_below(&mut rng, phase.gap_bits));
            }
            let unwritten = rng.chance(u64::from(phase.unwritten_percent));
            let limit = if unwritten {
                MAX_UNINIT_LEN
            } else {
                MAX_INIT_LEN
            };
            let len = log_below(&mut rng, phase.len_bits.min(15)).clamp(1, limit);
            if lblk + u64::from(len) > ext4::MAX_LBLK {
                break 'fill;
            }
            let len64 = u64::from(len);
            let pblk = match phase.place {
                Place::Contiguous => cursor,
                Place::Jump { bits } => cursor + u64::from(log_below(&mut rng, bits.min(40))),
                Place::Interleave { ways } => cursor + len64 * u64::from(ways.max(2) - 1),
                // Each extent right before the previous one's start, from a top far enough
                // ahead of the cursor for a whole phase (at most 2^8 extents of 2^15 blocks).
                Place::Reverse => match reverse_from {
                    Some(top) => top,
                    None => {
                        cursor += 1 << 24;
                        cursor
                    }
                }
                .saturating_sub(len64),
                Place::Scatter => rng.below(PBLK_LIMIT - (1 << 20)),
            }
            .min(PBLK_LIMIT - 1 - len64);
            if let Place::Reverse = phase.place {
                reverse_from = Some(pblk);
            } else {
                cursor = pblk + len64;
            }
            if cursor >= PBLK_LIMIT - (1 << 32) {
                cursor = 1 << 20;
            }
            // OK to narrow: lblk + len <= MAX_LBLK < 2^32, checked above.
            let e = Extent {
                lblk: lblk as u32,
                pblk,
                len,
                unwritten,
            };
            lblk += len64;
            match out.last_mut() {
                Some(p)
                    if p.end() == u64::from(e.lblk)
                        && p.pblk + u64::from(p.len) == e.pblk
                        && p.unwritten == e.unwritten
                        && p.len + e.len <= limit =>
                {
                    p.len += e.len
                }
                _ => out.push(e),
            }
        }
    }
    out
}

/// 0 for `bits == 0`, else log-uniform in `[1, 2^bits)`.
fn log_below(rng: &mut Rng, bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        rng.log_uniform(u32::from(bits))
    }
}

/// What a search maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Objective {
    /// The compact index's heap bytes per extent.
    CompactBytes,
    /// The compact index's pieces (lines and runs) per 1000 extents.
    CompactPieces,
    /// The compact index's cache lines per lookup (the cost model of [`crate::index::choose`]).
    CompactLines,
    /// The learned index's heap bytes per extent.
    LearnedBytes,
    /// The learned index's segments per 1000 extents.
    LearnedSegments,
    /// The learned index's cache lines per lookup.
    LearnedLines,
    /// Keys visited by fitting ([`fit_work`]) per extent, the compact index's and the learned
    /// index's fits together.
    FitWork,
}

impl Objective {
    /// Every objective, in this order.
    pub const ALL: [Objective; 7] = [
        Self::CompactBytes,
        Self::CompactPieces,
        Self::CompactLines,
        Self::LearnedBytes,
        Self::LearnedSegments,
        Self::LearnedLines,
        Self::FitWork,
    ];

    /// Name, also the dataset's name after `adv-`.
    pub fn name(self) -> &'static str {
        match self {
            Self::CompactBytes => "compact-bytes",
            Self::CompactPieces => "compact-pieces",
            Self::CompactLines => "compact-lines",
            Self::LearnedBytes => "learned-bytes",
            Self::LearnedSegments => "learned-segments",
            Self::LearnedLines => "learned-lines",
            Self::FitWork => "fit-work",
        }
    }

    /// The score of `exts` (0 for a map a structure cannot be built from).
    pub fn score(self, exts: &[Extent]) -> f64 {
        let n = exts.len().max(1) as f64;
        let params = FitParams::default();
        match self {
            Self::CompactBytes | Self::CompactPieces | Self::CompactLines => {
                let Ok(c) = LearnedIndex::new(exts) else {
                    return 0.0;
                };
                match self {
                    Self::CompactBytes => c.heap_bytes() as f64 / n,
                    Self::CompactPieces => {
                        let s = c.shape();
                        (s.lines + s.runs) as f64 * 1000.0 / n
                    }
                    _ => crate::index::choose::lookup_lines(exts, |q| c.lines_read(q)),
                }
            }
            Self::LearnedBytes | Self::LearnedSegments | Self::LearnedLines => {
                let Ok(l) = LearnedIndex::with_storage(exts, &params, Storage::Records) else {
                    return 0.0;
                };
                match self {
                    Self::LearnedBytes => l.heap_bytes() as f64 / n,
                    Self::LearnedSegments => l.segment_count() as f64 * 1000.0 / n,
                    _ => crate::index::choose::lookup_lines(exts, |q| l.lines_read(q)),
                }
            }
            Self::FitWork => fit_work_per_extent(exts),
        }
    }
}

/// Keys visited by fitting the compact index and the learned index over `exts`, per extent.
pub fn fit_work_per_extent(exts: &[Extent]) -> f64 {
    let before = fit_work();
    let built = LearnedIndex::new(exts).is_ok() && LearnedIndex::learned(exts).is_ok();
    if !built {
        return 0.0;
    }
    (fit_work() - before) as f64 / exts.len().max(1) as f64
}

/// How much a search tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Extents per map.
    pub extents: usize,
    /// Random genomes drawn first.
    pub random: usize,
    /// Hill-climbing mutations after them.
    pub climb: usize,
}

impl Budget {
    /// The report's budget.
    pub const REPORT: Budget = Budget {
        extents: 4096,
        random: 128,
        climb: 256,
    };
    /// Toy scale, for tests.
    pub const QUICK: Budget = Budget {
        extents: 600,
        random: 6,
        climb: 6,
    };
}

/// The worst map a search found for one objective.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its name as a dataset (`adv-` and the objective's name).
    pub name: String,
    /// What was maximised.
    pub objective: Objective,
    /// The generator of the map.
    pub genome: Genome,
    /// The map.
    pub extents: Vec<Extent>,
    /// Its score.
    pub score: f64,
    /// Genomes scored.
    pub tried: usize,
}

/// Random genomes then hill-climbing (module documentation), seeded: the same `seed` and
/// `budget` give the same map.
pub fn search(objective: Objective, seed: u64, budget: Budget) -> Found {
    let mut rng = Rng::new(seed ^ 0xad5e_7a11);
    let score = |g: &Genome| objective.score(&realise(g, budget.extents));
    let mut best = Genome::random(&mut rng);
    let mut best_score = score(&best);
    let mut tried = 1;
    for _ in 1..budget.random {
        let g = Genome::random(&mut rng);
        let s = score(&g);
        tried += 1;
        if s > best_score {
            (best, best_score) = (g, s);
        }
    }
    for _ in 0..budget.climb {
        let g = best.mutated(&mut rng);
        let s = score(&g);
        tried += 1;
        if s >= best_score {
            (best, best_score) = (g, s);
        }
    }
    Found {
        name: format!("adv-{}", objective.name()),
        objective,
        extents: realise(&best, budget.extents),
        genome: best,
        score: best_score,
        tried,
    }
}

/// The worst map of every objective, searched from `seed` (each objective from its own
/// derived seed): the report's named adversarial datasets.
pub fn worst_maps(seed: u64, budget: Budget) -> Vec<Found> {
    Objective::ALL
        .iter()
        .enumerate()
        .map(|(k, &o)| search(o, seed.wrapping_add(k as u64), budget))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::check_extents;

    #[test]
    fn realised_maps_are_valid_ext4_maps() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let g = Genome::random(&mut rng);
            let exts = realise(&g, 500);
            check_extents(&exts).unwrap();
            for (i, e) in exts.iter().enumerate() {
                let limit = if e.unwritten {
                    MAX_UNINIT_LEN
                } else {
                    MAX_INIT_LEN
                };
                assert!(e.len >= 1 && e.len <= limit, "{g:?} extent {i}: {e:?}");
                assert!(
                    e.pblk + u64::from(e.len) <= PBLK_LIMIT,
                    "{g:?} extent {i}: {e:?}"
                );
            }
            // Nothing left that ext4 would have merged.
            for w in exts.windows(2) {
                let [a, b] = w else { unreachable!() };
                let merges = a.end() == u64::from(b.lblk)
                    && a.pblk + u64::from(a.len) == b.pblk
                    && a.unwritten == b.unwritten
                    && a.len + b.len
                        <= if a.unwritten {
                            MAX_UNINIT_LEN
                        } else {
                            MAX_INIT_LEN
                        };
                assert!(!merges, "{g:?}: {a:?} {b:?} would merge");
            }
        }
    }

    #[test]
    fn search_is_deterministic_and_climbs() {
        let a = search(Objective::CompactBytes, 3, Budget::QUICK);
        let b = search(Objective::CompactBytes, 3, Budget::QUICK);
        assert_eq!(a.genome, b.genome);
        assert_eq!(a.extents, b.extents);
        assert_eq!(a.tried, Budget::QUICK.random + Budget::QUICK.climb);
        let first = Objective::CompactBytes.score(&realise(
            &Genome::random(&mut Rng::new(3 ^ 0xad5e_7a11)),
            Budget::QUICK.extents,
        ));
        assert!(a.score >= first);
    }
}
