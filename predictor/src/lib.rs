//! Extent lookup for iomap: given `(inode, pos, count)`, the mapping `{offset, length, addr,
//! type}` that an `iomap_begin` upcall returns, from the fastest tier that can answer it.
//!
//! - [`mapping`]: the byte mapping, built by one function from a block's [`ext4::BlockMap`],
//!   so every tier's answer is identical by construction once it finds the same extent.
//! - [`index`]: per-file lookup structures behind [`index::ExtentIndex`]: the learned index
//!   (model, window, search, verification), `BTreeMap`, `RangeMap`, sorted array, and the
//!   kernel-style in-core extent tree ([`IextIndex`], as XFS and the fuse-iomap cache keep it).
//! - [`model`]: fitting per-file piecewise-linear models with exact error bounds, in `f64` and
//!   in the fixed point an in-kernel evaluator runs.
//! - [`pack`]: the model pack file.
//! - [`ondisk`]: the on-disk extent-tree walk, the tier every other must equal.
//! - [`stack`]: the tier stack a server queries, with per-tier counters and an audit mode.
//! - [`synth`]: seeded synthetic extent maps and query streams for tests and benches.
//! - [`adversary`]: maps a user can shape on ext4, searched for the worst case of each
//!   learned structure.
//! - [`train`]: training every file of an image (or of a live scan) into a model pack.
//! - [`wire`]: the iomap query socket protocol (`server serve` answers it, `server query` and
//!   `reports load` ask), records laid out like the fuse-iomap uapi.
//! - [`alloc`]: a counting global allocator, so binaries count heap bytes instead of
//!   estimating them.
//!
//! The contract: every answer equals the on-disk answer. The learned index never returns an
//! unverified guess; it declines or misses and the next tier answers.

pub mod adversary;
pub mod alloc;
pub mod cache;
pub mod error;
pub mod fingerprint;
pub mod index;
pub mod mapping;
pub mod model;
pub mod ondisk;
pub mod pack;
pub mod regime;
pub mod stack;
pub mod synth;
pub mod train;
pub mod wire;

pub use error::{BuildError, QueryError};
pub use fingerprint::fingerprint;
pub use index::{
    BTreeIndex, ExtentIndex, FuseIextIndex, IextIndex, LearnedForm, LearnedIndex, LearnedLayout,
    LearnedShape, LineLayout, Lookup, PackedLayout, PieceBody, PieceLayout, RangeMapIndex,
    RecordsLayout, SortedIndex, Storage, Structure, XfsIextIndex, KEYED_RECORD_BYTES, RECORD_BYTES,
};
pub use mapping::{
    FuseIomapIo, Mapping, MappingType, Op, Query, Request, NULL_ADDR, OP_REPORT, OP_WRITING,
};
pub use model::{fit, FitParams, Model};
pub use ondisk::{OnDisk, OnDiskIndex};
pub use pack::{Pack, PackEntry, PackError};
pub use stack::{FrontAnswer, FrontTier, Models, Outcome, StackOptions, Tier, TierKind, TierStack};
