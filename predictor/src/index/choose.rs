//! The per-file choice: for one file's map, the structure to keep among the learned forms and
//! the kernel's iext tree, by a stated rule over counted bytes and a counted lookup cost, so
//! that no map, whoever shaped it, costs more than the kernel's tree would.
//!
//! # The rule
//! 1. The **reference** is the kernel's tree: [`XfsIextIndex`] (16-byte records), or
//!    [`FuseIextIndex`] (32-byte records) for a map the 16-byte record cannot hold.
//! 2. The **candidates** are the reference, the compact index ([`LearnedIndex`]) and the
//!    learned index ([`LearnedIndex`], default fit); a candidate is *eligible* if it holds at
//!    most the reference's bytes, each counted as the choice keeps it: its fields in a box and
//!    its heap ([`boxed_bytes`]), nothing for a map of at most one extent, which the header
//!    holds (the reference always is eligible).
//! 3. Each eligible candidate's **lookup cost** is the mean number of cache lines a lookup
//!    reads (`lines_read` of each structure) over [`COST_QUERIES`] uniform blocks of the map's
//!    span drawn with [`COST_SEED`]: counted, not timed, so the choice is the same on every
//!    machine and every run.
//! 4. The **choice** is the eligible candidate of fewest bytes among those whose cost is within
//!    [`SLACK_PERCENT`] (10%) of the cheapest eligible cost; ties go to the lower cost, then to
//!    the order above.
//!
//! So by construction the chosen structure holds at most the reference's bytes and its counted
//! cost is at most 1.1 times the reference's. Cache lines stand for time because a lookup's
//! time is its chain of dependent loads when cold, and the lines it touches bound what it
//! evicts and what it must find in cache when warm; a model that counted instructions would
//! favour the iext tree's short scans on small maps a little more.

use ext4::Extent;

use super::{ExtentIndex, FuseIextIndex, LearnedIndex, Lookup, Storage, XfsIextIndex};
use crate::model::ModelError;

/// Uniform blocks the lookup cost is averaged over.
pub const COST_QUERIES: usize = 256;
/// Seed of those blocks.
pub const COST_SEED: u64 = 0xc057;
/// The slack of the rule: candidates within this share of the cheapest cost are equal.
pub const SLACK_PERCENT: u64 = 10;
/// The per-file header every choice costs beside the structure's bytes: the inline
/// [`ChosenIndex`] (its tag and a map of at most one extent; every structure is boxed). The
/// same for every file and every choice, so it does not enter the rule.
pub const CHOSEN_HEADER_BYTES: usize = std::mem::size_of::<ChosenIndex>();

/// What a structure costs kept boxed behind the header: its own fields and its heap.
pub fn boxed_bytes<T: ExtentIndex>(index: &T) -> usize {
    std::mem::size_of::<T>() + index.heap_bytes()
}

/// The structures the rule chooses among: [`Structure::Iext16`] (or [`Structure::Iext32`]),
/// [`Structure::Compact`] and [`Structure::Learned`].
pub use super::Structure;

/// One candidate's counted costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costed {
    /// Which structure.
    pub structure: Structure,
    /// Its bytes behind the per-file header ([`boxed_bytes`]).
    pub bytes: usize,
    /// Mean cache lines per lookup (the cost model).
    pub lines: f64,
}

/// The outcome of the rule for one map.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The chosen candidate.
    pub chosen: Costed,
    /// The reference tree's costs.
    pub reference: Costed,
}

/// The chosen structure, built. Each structure is boxed, so the per-file header
/// ([`CHOSEN_HEADER_BYTES`]) is small whatever the choice: most files of a real population have
/// one extent, and a header as large as the largest structure's fields would cost them more
/// than the kernel's tree. A map of at most one extent (the compact index's one-extent form)
/// is kept in the header itself, with no box.
#[derive(Debug, Clone)]
pub enum ChosenIndex {
    /// A map of at most one extent, held inline: the compact index's smallest form.
    Small(Option<Extent>),
    /// iext tree, 16-byte records.
    Iext16(Box<XfsIextIndex>),
    /// iext tree, 32-byte records.
    Iext32(Box<FuseIextIndex>),
    /// Compact learned index.
    Compact(Box<LearnedIndex>),
    /// Learned index.
    Learned(Box<LearnedIndex>),
}

impl ChosenIndex {
    /// Which structure this is.
    pub fn structure(&self) -> Structure {
        match self {
            Self::Small(_) | Self::Compact(_) => Structure::Compact,
            Self::Iext16(_) => Structure::Iext16,
            Self::Iext32(_) => Structure::Iext32,
            Self::Learned(_) => Structure::Learned,
        }
    }

    /// Cache lines a lookup of `q` reads (the cost model).
    pub fn lines_read(&self, q: u32) -> u32 {
        match self {
            Self::Small(_) => 0,
            Self::Iext16(t) => t.lines_read(q),
            Self::Iext32(t) => t.lines_read(q),
            Self::Compact(c) => c.lines_read(q),
            Self::Learned(l) => l.lines_read(q),
        }
    }
}

impl ExtentIndex for ChosenIndex {
    #[inline]
    fn find(&self, lblk: u32) -> Lookup {
        match self {
            Self::Small(e) => super::learned::one_extent(e.as_ref(), lblk),
            Self::Iext16(t) => t.find(lblk),
            Self::Iext32(t) => t.find(lblk),
            Self::Compact(c) => c.probe(lblk),
            Self::Learned(l) => l.probe(lblk),
        }
    }

    /// The bytes behind the header: the boxed structure's fields and heap (none for a map
    /// held inline).
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Small(_) => 0,
            Self::Iext16(t) => boxed_bytes(t.as_ref()),
            Self::Iext32(t) => boxed_bytes(t.as_ref()),
            Self::Compact(c) => boxed_bytes(c.as_ref()),
            Self::Learned(l) => boxed_bytes(l.as_ref()),
        }
    }
}

/// Mean cache lines per lookup of `index` over the cost model's queries for `exts`.
pub fn lookup_lines(exts: &[Extent], lines_read: impl Fn(u32) -> u32) -> f64 {
    let queries = crate::synth::uniform_queries(exts, COST_QUERIES, COST_SEED);
    let total: u64 = queries.iter().map(|&q| u64::from(lines_read(q))).sum();
    total as f64 / queries.len().max(1) as f64
}

/// Every candidate for `exts`, built, with its costs, in the rule's order (the reference
/// first). A structure that cannot hold the map is left out; a map that no tree can hold
/// (a physical block at or past 2^63, not an ext4 map) or that is not a valid map is an error.
pub fn candidates(exts: &[Extent]) -> Result<Vec<(Costed, ChosenIndex)>, ModelError> {
    let mut out = Vec::with_capacity(3);
    let mut push = |ix: ChosenIndex| {
        let costed = Costed {
            structure: ix.structure(),
            bytes: ix.heap_bytes(),
            lines: lookup_lines(exts, |q| ix.lines_read(q)),
        };
        out.push((costed, ix));
    };
    match XfsIextIndex::new(exts) {
        Ok(t) => push(ChosenIndex::Iext16(Box::new(t))),
        Err(_) => match FuseIextIndex::new(exts) {
            Ok(t) => push(ChosenIndex::Iext32(Box::new(t))),
            Err(super::IextError::Extents(e)) => return Err(e),
            Err(super::IextError::Unfit { index, .. }) => {
                return Err(ModelError::BadExtents {
                    index,
                    what: "no iext record holds it",
                })
            }
        },
    }
    // A map of at most one extent (most files) is the compact index's one-extent form, held
    // in the header: nothing to build.
    let compact = match exts {
        [] | [_] => None,
        _ => Some(LearnedIndex::new(exts)?),
    };
    // The lines are fitted once: the records form is built from the packed form's model (the
    // lines do not depend on the storage), fitted again only where the packed form kept none.
    let learned = match compact.as_ref().and_then(LearnedIndex::model) {
        Some(model) => LearnedIndex::with_model(exts, &model, Storage::Records)?,
        None => LearnedIndex::learned(exts)?,
    };
    push(match compact {
        None => ChosenIndex::Small(exts.first().copied()),
        Some(c) => ChosenIndex::Compact(Box::new(c)),
    });
    push(ChosenIndex::Learned(Box::new(learned)));
    Ok(out)
}

/// Applies the rule (module documentation) to costed candidates, the reference first.
/// Returns the index of the chosen one (0, the reference, if the list is that alone).
pub fn rule(candidates: &[Costed]) -> usize {
    let Some(reference) = candidates.first() else {
        return 0;
    };
    let eligible = |c: &&Costed| c.bytes <= reference.bytes;
    let cheapest = candidates
        .iter()
        .filter(eligible)
        .map(|c| c.lines)
        .fold(f64::INFINITY, f64::min);
    let bound = cheapest * (100 + SLACK_PERCENT) as f64 / 100.0;
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| eligible(c) && c.lines <= bound)
        .min_by(|(i, a), (j, b)| {
            a.bytes
                .cmp(&b.bytes)
                .then(a.lines.total_cmp(&b.lines))
                .then(i.cmp(j))
        })
        .map_or(0, |(i, _)| i)
}

/// The structure the rule chooses for `exts`, built, with the costs behind the choice.
pub fn choose_index(exts: &[Extent]) -> Result<(Chosen, ChosenIndex), ModelError> {
    let built = candidates(exts)?;
    let costs: Vec<Costed> = built.iter().map(|(c, _)| *c).collect();
    let k = rule(&costs);
    let reference = costs.first().copied().ok_or(ModelError::BadExtents {
        index: 0,
        what: "no reference tree",
    })?;
    let Some((chosen, index)) = built.into_iter().nth(k) else {
        return Err(ModelError::BadExtents {
            index: 0,
            what: "no candidate chosen",
        });
    };
    // Nothing but the chosen structure outlives the call, so the allocator's count around it
    // is that structure's memory.
    Ok((Chosen { chosen, reference }, index))
}

/// [`choose_index`] without the built structure: the name and bytes of the choice.
pub fn choose(exts: &[Extent]) -> Result<Chosen, ModelError> {
    choose_index(exts).map(|(c, _)| c)
}
