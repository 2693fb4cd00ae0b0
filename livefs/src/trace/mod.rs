//! Traces of what a workload asks of a file's map and how the map changes, recorded from the
//! kernel's own ext4 tracepoints on a mounted file system (`record`), and checked: the changes,
//! applied to the maps at the start, must give exactly what FIEMAP answers at every checkpoint.
//!
//! What the events are, in the kernel's terms (fs/ext4/extents_status.c, inode.c, extents.c):
//! - a **query** is `ext4_es_lookup_extent_enter`: every `ext4_map_blocks` call (a read, a
//!   write, a fault, readahead) first asks the extent-status tree where block `lblk` lives.
//!   That is the question fuse-iomap's `iomap_begin` asks the server, one per mapping call;
//! - a **map** change is `ext4_es_insert_extent` with a written or unwritten status: blocks
//!   allocated, converted from unwritten to written, or read from the extent tree into the
//!   status cache (then it restates what the map already says, which replays as no change);
//!   with the hole status it says the range is a hole;
//! - an **unmap** is `ext4_es_remove_extent`: punch, truncate, zero range;
//! - a **collapse** or **insert** range (`ext4_collapse_range`, `ext4_insert_range`) shifts
//!   every block after the range; the status-cache removal to the end of the file that follows
//!   it inside the kernel is part of the shift, not a second change (see `parse`).
//!
//! The file system is mounted with `nodelalloc`, so every allocation is made, and traced, when
//! the write happens: no delayed extents (fuse4fs allocates at `iomap_begin` time too).

mod parse;
mod record;
mod rows;

use std::collections::BTreeMap;

pub use parse::{parse_trace, ParseError, ParsedTrace};
pub use record::{RecordError, Recorder};
pub use rows::{Builder, Row};

use crate::BlockExtent;

/// One past the last block an extent map holds (ext4's `EXT_MAX_BLOCKS`).
pub const MAX_BLOCKS: u64 = u32::MAX as u64;

/// How a file's map changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// These blocks now map here (allocated, converted, or restated).
    Map(BlockExtent),
    /// These blocks are now a hole.
    Unmap {
        /// First block.
        lblk: u64,
        /// Blocks.
        len: u64,
    },
    /// The blocks `[lblk, lblk + len)` are removed and every block after them moves `len`
    /// blocks down (`FALLOC_FL_COLLAPSE_RANGE`).
    Collapse {
        /// First block removed.
        lblk: u64,
        /// Blocks removed.
        len: u64,
    },
    /// Every block from `lblk` moves `len` blocks up, leaving a hole (`FALLOC_FL_INSERT_RANGE`).
    Insert {
        /// First block moved.
        lblk: u64,
        /// Blocks inserted.
        len: u64,
    },
}

/// One event of a trace, for the file `ino`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The workload asked where block `lblk` lives.
    Query {
        /// Inode.
        ino: u64,
        /// Logical block.
        lblk: u32,
    },
    /// The map changed.
    Change {
        /// Inode.
        ino: u64,
        /// How.
        change: Change,
    },
    /// FIEMAP's map of the file at this point (the workload paused, its data synced).
    Checkpoint {
        /// Inode.
        ino: u64,
        /// The map, merged ([`merged`]).
        map: Vec<BlockExtent>,
    },
}

impl Event {
    /// The inode the event is about.
    #[must_use]
    pub fn ino(&self) -> u64 {
        match self {
            Self::Query { ino, .. } | Self::Change { ino, .. } | Self::Checkpoint { ino, .. } => {
                *ino
            }
        }
    }
}

/// A recorded trace: the maps at the start, then the events in the order the kernel made them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// What ran (a built-in workload's name, or the command).
    pub workload: String,
    /// File-system block size in bytes.
    pub block_size: u32,
    /// Each traced file's map when tracing started (merged), by inode. Files created during the
    /// trace start empty.
    pub initial: BTreeMap<u64, Vec<BlockExtent>>,
    /// The events.
    pub events: Vec<Event>,
}

/// Why a trace does not rebuild to its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A checkpoint's map differs from the replayed one.
    #[error("inode {ino}, checkpoint at event {event}: FIEMAP has {fiemap} where the replayed changes give {replayed}")]
    Differs {
        /// Inode.
        ino: u64,
        /// Index of the checkpoint event.
        event: usize,
        /// FIEMAP's first differing extent (or "nothing").
        fiemap: String,
        /// The replayed map's extent there (or "nothing").
        replayed: String,
    },
    /// A change cannot be applied (a shift past the last block).
    #[error("inode {ino}, event {event}: {reason}")]
    Change {
        /// Inode.
        ino: u64,
        /// Index of the event.
        event: usize,
        /// What is wrong.
        reason: String,
    },
}

/// What [`Trace::check`] compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    /// Checkpoint maps compared.
    pub checkpoints: usize,
    /// Extents in them.
    pub extents: usize,
    /// Changes applied.
    pub changes: usize,
    /// Queries in the trace.
    pub queries: usize,
}

impl Trace {
    /// Replays every change on the initial maps and compares each checkpoint with the replayed
    /// map, failing at the first difference.
    pub fn check(&self) -> Result<Checked, CheckError> {
        let mut maps: BTreeMap<u64, FileMap> = self
            .initial
            .iter()
            .map(|(ino, m)| (*ino, FileMap::from_extents(m)))
            .collect();
        let mut done = Checked::default();
        for (event, e) in self.events.iter().enumerate() {
            let ino = e.ino();
            match e {
                Event::Query { .. } => done.queries += 1,
                Event::Change { change, .. } => {
                    maps.entry(ino)
                        .or_default()
                        .apply(change)
                        .map_err(|reason| CheckError::Change { ino, event, reason })?;
                    done.changes += 1;
                }
                Event::Checkpoint { map, .. } => {
                    let replayed = maps.get(&ino).map(FileMap::extents).unwrap_or_default();
                    if let Some((f, r)) = first_difference(map, &replayed) {
                        return Err(CheckError::Differs {
                            ino,
                            event,
                            fiemap: f,
                            replayed: r,
                        });
                    }
                    done.checkpoints += 1;
                    done.extents += map.len();
                }
            }
        }
        Ok(done)
    }
}

fn first_difference(a: &[BlockExtent], b: &[BlockExtent]) -> Option<(String, String)> {
    let show = |e: Option<&BlockExtent>| {
        e.map_or("nothing".to_string(), |e| {
            format!(
                "[{}, +{}) at {}{}",
                e.lblk,
                e.len,
                e.pblk,
                if e.unwritten { " unwritten" } else { "" }
            )
        })
    };
    let n = a.len().max(b.len());
    (0..n)
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| (show(a.get(i)), show(b.get(i))))
}

/// Joins extents that continue each other (logically and physically, same written state):
/// FIEMAP and the replayed changes may cut one run at different places (ext4 caps an extent's
/// length, the status cache joins), and a map is the blocks, not the cuts.
#[must_use]
pub fn merged(extents: &[BlockExtent]) -> Vec<BlockExtent> {
    let mut out: Vec<BlockExtent> = Vec::with_capacity(extents.len());
    for e in extents {
        if let Some(last) = out.last_mut() {
            let len = u64::from(last.len);
            if u64::from(last.lblk) + len == u64::from(e.lblk)
                && last.pblk + len == e.pblk
                && last.unwritten == e.unwritten
                && len + u64::from(e.len) <= u64::from(u32::MAX)
            {
                last.len += e.len;
                continue;
            }
        }
        out.push(*e);
    }
    out
}

/// A file's map as it changes: extents by first block, never overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMap {
    by_start: BTreeMap<u64, (u64, u64, bool)>, // start -> (len, pblk, unwritten)
}

impl FileMap {
    /// The map holding `extents` (merged).
    #[must_use]
    pub fn from_extents(extents: &[BlockExtent]) -> Self {
        let mut m = Self::default();
        for e in merged(extents).iter() {
            m.by_start
                .insert(u64::from(e.lblk), (u64::from(e.len), e.pblk, e.unwritten));
        }
        m
    }

    /// The extents, sorted and merged.
    #[must_use]
    pub fn extents(&self) -> Vec<BlockExtent> {
        let raw: Vec<BlockExtent> = self
            .by_start
            .iter()
            .map(|(&s, &(len, pblk, unwritten))| BlockExtent {
                lblk: s as u32,
                pblk,
                len: len as u32,
                unwritten,
            })
            .collect();
        merged(&raw)
    }

    /// The extent holding block `q`, if any: `(start, len, pblk, unwritten)`.
    #[must_use]
    pub fn find(&self, q: u64) -> Option<(u64, u64, u64, bool)> {
        let (&s, &(len, pblk, unw)) = self.by_start.range(..=q).next_back()?;
        (q < s + len).then_some((s, len, pblk, unw))
    }

    /// The extents starting at or after block `q`, in order: `(start, len, pblk, unwritten)`.
    pub fn extents_from(&self, q: u64) -> impl Iterator<Item = (u64, u64, u64, bool)> + '_ {
        self.by_start
            .range(q..)
            .map(|(&s, &(len, pblk, unw))| (s, len, pblk, unw))
    }

    /// The extents with a block in `[lo, hi)`, in order: `(start, len, pblk, unwritten)`.
    pub fn meeting(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, u64, bool)> + '_ {
        let first = self.find(lo).map_or(lo, |(s, ..)| s).min(hi);
        self.by_start
            .range(first..hi)
            .map(|(&s, &(len, pblk, unw))| (s, len, pblk, unw))
    }

    /// One past the last mapped block (0 for an empty map).
    #[must_use]
    pub fn end(&self) -> u64 {
        self.by_start
            .last_key_value()
            .map_or(0, |(&s, &(len, _, _))| s + len)
    }

    /// Where the first extent after block `q` starts.
    #[must_use]
    pub fn next_start(&self, q: u64) -> Option<u64> {
        self.by_start.range(q + 1..).next().map(|(&s, _)| s)
    }

    /// Whether `change` would change the map: a map change may restate what the map already
    /// says (the status cache filled from the extent tree), and an unmap may name a hole.
    #[must_use]
    pub fn would_change(&self, change: &Change) -> bool {
        match *change {
            Change::Map(e) => {
                let (s, len) = (u64::from(e.lblk), u64::from(e.len));
                !self.find(s).is_some_and(|(at, n, pblk, unw)| {
                    at + n >= s + len && pblk + (s - at) == e.pblk && unw == e.unwritten
                })
            }
            Change::Unmap { lblk, len } => {
                self.find(lblk).is_some()
                    || self
                        .next_start(lblk)
                        .is_some_and(|n| n < lblk.saturating_add(len))
            }
            Change::Collapse { .. } | Change::Insert { .. } => true,
        }
    }

    /// Applies one change. Fails on a shift that would move a block past [`MAX_BLOCKS`].
    pub fn apply(&mut self, change: &Change) -> Result<(), String> {
        match *change {
            Change::Map(e) => {
                let (s, len) = (u64::from(e.lblk), u64::from(e.len));
                self.unmap(s, len);
                if len > 0 {
                    self.by_start.insert(s, (len, e.pblk, e.unwritten));
                    self.join(s + len);
                    self.join(s);
                }
            }
            Change::Unmap { lblk, len } => self.unmap(lblk, len),
            Change::Collapse { lblk, len } => {
                self.unmap(lblk, len);
                let moved: Vec<_> = self
                    .by_start
                    .split_off(&lblk.saturating_add(len))
                    .into_iter()
                    .collect();
                for (s, v) in moved {
                    self.by_start.insert(s - len, v);
                }
                self.join(lblk);
            }
            Change::Insert { lblk, len } => {
                self.cut(lblk);
                let moved: Vec<_> = self.by_start.split_off(&lblk).into_iter().collect();
                for (s, v) in moved {
                    if s.checked_add(v.0)
                        .and_then(|e| e.checked_add(len))
                        .is_none_or(|e| e > MAX_BLOCKS)
                    {
                        return Err(format!(
                            "inserting {len} blocks at {lblk} moves block {s} past block 2^32 - 1"
                        ));
                    }
                    self.by_start.insert(s + len, v);
                }
            }
        }
        Ok(())
    }

    /// Joins the extent starting at `at` to the one before it if it continues it (logically,
    /// physically, same written state), so the map stays merged, as [`Self::extents`] gives it.
    fn join(&mut self, at: u64) {
        let Some(&(len, pblk, unw)) = self.by_start.get(&at) else {
            return;
        };
        let Some((&ps, &(plen, ppblk, punw))) = self.by_start.range(..at).next_back() else {
            return;
        };
        if ps + plen == at
            && ppblk + plen == pblk
            && punw == unw
            && plen + len <= u64::from(u32::MAX)
        {
            self.by_start.remove(&at);
            self.by_start.insert(ps, (plen + len, ppblk, punw));
        }
    }

    /// Splits the extent holding `at` (if it starts before it) so an extent starts at `at`.
    fn cut(&mut self, at: u64) {
        if let Some((s, len, pblk, unw)) = self.find(at) {
            if s < at {
                let head = at - s;
                self.by_start.insert(s, (head, pblk, unw));
                self.by_start.insert(at, (len - head, pblk + head, unw));
            }
        }
    }

    /// Makes `[lblk, lblk + len)` a hole.
    fn unmap(&mut self, lblk: u64, len: u64) {
        let end = lblk.saturating_add(len);
        if len == 0 {
            return;
        }
        self.cut(lblk);
        self.cut(end);
        let inside: Vec<u64> = self.by_start.range(lblk..end).map(|(&s, _)| s).collect();
        for s in inside {
            self.by_start.remove(&s);
        }
    }
}

#[cfg(test)]
mod tests;
