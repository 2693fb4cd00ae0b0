//! A trace as rows of one table, and back: what a trace file stores (`tables::trace` encodes
//! the rows as Parquet columns). Reading checks every row: a trace file is hostile input.
//!
//! | field | meaning |
//! |---|---|
//! | `kind` | `header`, `initial`, `query`, `map`, `unmap`, `collapse`, `insert`, `checkpoint` |
//! | `seq` | the event's number; the rows of one map (`initial`, `checkpoint`) share it |
//! | `ino` | inode (`header`: 0) |
//! | `lblk` | first logical block (`query`: the block asked for) |
//! | `len` | blocks (`header`: the block size in bytes; 0 in a map row: the map is empty) |
//! | `pblk` | first physical block (`map`, map rows) |
//! | `unwritten` | allocated but not written (`map`, map rows) |
//! | `note` | `header`: the workload; otherwise empty |

use super::{Change, Event, Trace, MAX_BLOCKS};
use crate::BlockExtent;

impl Trace {
    /// The trace as rows, header first.
    #[must_use]
    pub fn to_rows(&self) -> Vec<Row<'_>> {
        let row = |kind, seq, ino, lblk, len, pblk, unwritten| Row {
            kind,
            seq,
            ino,
            lblk,
            len,
            pblk,
            unwritten,
            note: "",
        };
        let mut out = vec![Row {
            note: &self.workload,
            ..row("header", 0, 0, 0, self.block_size.into(), 0, false)
        }];
        let map = |out: &mut Vec<Row<'_>>, kind, seq, ino, m: &[BlockExtent]| {
            if m.is_empty() {
                out.push(row(kind, seq, ino, 0, 0, 0, false));
            }
            for e in m {
                out.push(row(
                    kind,
                    seq,
                    ino,
                    e.lblk.into(),
                    e.len.into(),
                    e.pblk,
                    e.unwritten,
                ));
            }
        };
        let mut seq = 1;
        for (ino, m) in &self.initial {
            map(&mut out, "initial", seq, *ino, m);
            seq += 1;
        }
        for e in &self.events {
            match e {
                Event::Query { ino, lblk } => {
                    out.push(row("query", seq, *ino, (*lblk).into(), 1, 0, false))
                }
                Event::Change { ino, change } => out.push(match *change {
                    Change::Map(x) => row(
                        "map",
                        seq,
                        *ino,
                        x.lblk.into(),
                        x.len.into(),
                        x.pblk,
                        x.unwritten,
                    ),
                    Change::Unmap { lblk, len } => row("unmap", seq, *ino, lblk, len, 0, false),
                    Change::Collapse { lblk, len } => {
                        row("collapse", seq, *ino, lblk, len, 0, false)
                    }
                    Change::Insert { lblk, len } => row("insert", seq, *ino, lblk, len, 0, false),
                }),
                Event::Checkpoint { ino, map: m } => map(&mut out, "checkpoint", seq, *ino, m),
            }
            seq += 1;
        }
        out
    }
}

/// One row of a trace table (see the module documentation for what each field holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    #[allow(missing_docs)]
    pub kind: &'a str,
    #[allow(missing_docs)]
    pub seq: u64,
    #[allow(missing_docs)]
    pub ino: u64,
    #[allow(missing_docs)]
    pub lblk: u64,
    #[allow(missing_docs)]
    pub len: u64,
    #[allow(missing_docs)]
    pub pblk: u64,
    #[allow(missing_docs)]
    pub unwritten: bool,
    #[allow(missing_docs)]
    pub note: &'a str,
}

/// Assembles a [`Trace`] row by row, checking each; a map's rows are gathered until its `seq`
/// ends.
#[derive(Default)]
pub struct Builder {
    trace: Option<Trace>,
    open: Option<(&'static str, u64, u64, Vec<BlockExtent>)>, // kind, seq, ino, extents
}

impl Builder {
    /// Takes row number `row` (0-based; row 0 must be the header).
    pub fn row(&mut self, row: usize, r: &Row) -> Result<(), String> {
        if row == 0 {
            if r.kind != "header" {
                return Err("the first row is not the header".into());
            }
            let block_size = u32::try_from(r.len)
                .ok()
                .filter(|b| b.is_power_of_two() && (1024..=65536).contains(b));
            let block_size = block_size
                .ok_or_else(|| format!("block size {} is not a power of two in 1-64 KiB", r.len))?;
            self.trace = Some(Trace {
                workload: r.note.to_string(),
                block_size,
                ..Trace::default()
            });
            return Ok(());
        }
        if let Some((kind, seq, ino, _)) = &self.open {
            if (*kind, *seq, *ino) != (r.kind, r.seq, r.ino) {
                self.close()?;
            }
        }
        let trace = self.trace.as_mut().ok_or("no header")?;
        let block = |lblk: u64, len: u64| -> Result<(u32, u32), String> {
            match (u32::try_from(lblk), u32::try_from(len)) {
                (Ok(a), Ok(n)) if lblk + len <= MAX_BLOCKS => Ok((a, n)),
                _ => Err(format!("blocks [{lblk}, +{len}) past block 2^32 - 1")),
            }
        };
        let ino = r.ino;
        let event = match r.kind {
            "initial" | "checkpoint" => {
                let kind = if r.kind == "initial" {
                    "initial"
                } else {
                    "checkpoint"
                };
                let open = self
                    .open
                    .get_or_insert_with(|| (kind, r.seq, ino, Vec::new()));
                if r.len > 0 {
                    let (lblk, len) = block(r.lblk, r.len)?;
                    if open
                        .3
                        .last()
                        .is_some_and(|p| u64::from(p.lblk) + u64::from(p.len) > r.lblk)
                    {
                        return Err("a map's extents out of order or overlapping".into());
                    }
                    open.3.push(BlockExtent {
                        lblk,
                        pblk: r.pblk,
                        len,
                        unwritten: r.unwritten,
                    });
                }
                return Ok(());
            }
            "query" => Event::Query {
                ino,
                lblk: block(r.lblk, 1)?.0,
            },
            "map" => {
                let (lblk, len) = block(r.lblk, r.len)?;
                Event::Change {
                    ino,
                    change: Change::Map(BlockExtent {
                        lblk,
                        pblk: r.pblk,
                        len,
                        unwritten: r.unwritten,
                    }),
                }
            }
            "unmap" | "collapse" | "insert" => {
                if r.lblk.checked_add(r.len).is_none_or(|end| end > MAX_BLOCKS) {
                    return Err(format!(
                        "blocks [{}, +{}) past block 2^32 - 1",
                        r.lblk, r.len
                    ));
                }
                let (lblk, len) = (r.lblk, r.len);
                let change = match r.kind {
                    "unmap" => Change::Unmap { lblk, len },
                    "collapse" => Change::Collapse { lblk, len },
                    _ => Change::Insert { lblk, len },
                };
                Event::Change { ino, change }
            }
            other => return Err(format!("unknown kind {other:?}")),
        };
        trace.events.push(event);
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let Some((kind, _, ino, map)) = self.open.take() else {
            return Ok(());
        };
        let trace = self.trace.as_mut().ok_or("no header")?;
        if kind == "initial" {
            if !trace.events.is_empty() || trace.initial.insert(ino, map).is_some() {
                return Err(format!(
                    "initial map of inode {ino} after the events or twice"
                ));
            }
        } else {
            trace.events.push(Event::Checkpoint { ino, map });
        }
        Ok(())
    }

    /// The trace, once every row is in.
    pub fn finish(mut self) -> Result<Trace, String> {
        self.close()?;
        self.trace.ok_or_else(|| "no header row".into())
    }
}
