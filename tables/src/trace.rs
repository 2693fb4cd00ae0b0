//! A recorded trace ([`livefs::trace::Trace`]) as a Parquet file, and back.
//!
//! One row per event, in order, with the columns
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `kind` | string | `header`, `initial`, `query`, `map`, `unmap`, `collapse`, `insert`, `checkpoint` |
//! | `seq` | u64 | the event's number; the rows of one map (`initial`, `checkpoint`) share it |
//! | `ino` | u64 | inode (`header`: 0) |
//! | `lblk` | u64 | first logical block (`query`: the block asked for) |
//! | `len` | u64 | blocks (`header`: the block size in bytes; 0 in a map row: the map is empty) |
//! | `pblk` | u64 | first physical block (`map`, map rows) |
//! | `unwritten` | bool | allocated but not written (`map`, map rows) |
//! | `note` | string | `header`: the workload; otherwise empty |
//!
//! The first row is the header. A trace file is read like any input: every row is checked
//! (known kind, blocks inside an extent map's 32-bit range, map rows in order and apart) and a
//! bad one is an error naming its row.

use std::fs::File;
use std::path::{Path, PathBuf};

use livefs::trace::{Change, Event, Trace, MAX_BLOCKS};
use livefs::BlockExtent;
use polars::prelude::{Column, ParquetReader, ParquetWriter, SerReader};

/// Why a trace file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// Opening or creating the file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// polars could not read or write it as Parquet with these columns.
    #[error("{path}: not a trace table")]
    Polars {
        /// The file.
        path: PathBuf,
        /// What polars said.
        source: polars::error::PolarsError,
    },
    /// A row is not a trace event.
    #[error("{path}, row {row}: {reason}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 0-based row.
        row: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Default)]
struct Rows {
    kind: Vec<&'static str>,
    seq: Vec<u64>,
    ino: Vec<u64>,
    lblk: Vec<u64>,
    len: Vec<u64>,
    pblk: Vec<u64>,
    unwritten: Vec<bool>,
    note: Vec<String>,
}

impl Rows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &'static str,
        seq: u64,
        ino: u64,
        lblk: u64,
        len: u64,
        pblk: u64,
        unwritten: bool,
    ) {
        self.kind.push(kind);
        self.seq.push(seq);
        self.ino.push(ino);
        self.lblk.push(lblk);
        self.len.push(len);
        self.pblk.push(pblk);
        self.unwritten.push(unwritten);
        self.note.push(String::new());
    }

    fn map(&mut self, kind: &'static str, seq: u64, ino: u64, map: &[BlockExtent]) {
        if map.is_empty() {
            self.push(kind, seq, ino, 0, 0, 0, false);
        }
        for e in map {
            self.push(
                kind,
                seq,
                ino,
                e.lblk.into(),
                e.len.into(),
                e.pblk,
                e.unwritten,
            );
        }
    }
}

/// Writes `trace` to `path` as Parquet.
pub fn write_trace(path: &Path, trace: &Trace) -> Result<(), TraceFileError> {
    let mut r = Rows::default();
    r.push("header", 0, 0, 0, trace.block_size.into(), 0, false);
    r.note[0] = trace.workload.clone();
    let mut seq = 1;
    for (ino, map) in &trace.initial {
        r.map("initial", seq, *ino, map);
        seq += 1;
    }
    for e in &trace.events {
        match e {
            Event::Query { ino, lblk } => r.push("query", seq, *ino, (*lblk).into(), 1, 0, false),
            Event::Change { ino, change } => match *change {
                Change::Map(x) => r.push(
                    "map",
                    seq,
                    *ino,
                    x.lblk.into(),
                    x.len.into(),
                    x.pblk,
                    x.unwritten,
                ),
                Change::Unmap { lblk, len } => r.push("unmap", seq, *ino, lblk, len, 0, false),
                Change::Collapse { lblk, len } => {
                    r.push("collapse", seq, *ino, lblk, len, 0, false)
                }
                Change::Insert { lblk, len } => r.push("insert", seq, *ino, lblk, len, 0, false),
            },
            Event::Checkpoint { ino, map } => r.map("checkpoint", seq, *ino, map),
        }
        seq += 1;
    }
    let polars = |source| TraceFileError::Polars {
        path: path.to_path_buf(),
        source,
    };
    let mut df = crate::frame(vec![
        Column::new("kind".into(), r.kind),
        Column::new("seq".into(), r.seq),
        Column::new("ino".into(), r.ino),
        Column::new("lblk".into(), r.lblk),
        Column::new("len".into(), r.len),
        Column::new("pblk".into(), r.pblk),
        Column::new("unwritten".into(), r.unwritten),
        Column::new("note".into(), r.note),
    ])
    .map_err(polars)?;
    let file = File::create(path).map_err(|source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetWriter::new(file).finish(&mut df).map_err(polars)?;
    Ok(())
}

/// Reads a trace written by [`write_trace`], checking every row.
pub fn read_trace(path: &Path) -> Result<Trace, TraceFileError> {
    let polars = |source| TraceFileError::Polars {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let df = ParquetReader::new(file).finish().map_err(polars)?;
    let kind = df.column("kind").and_then(Column::str).map_err(polars)?;
    let note = df.column("note").and_then(Column::str).map_err(polars)?;
    let unwritten = df
        .column("unwritten")
        .and_then(Column::bool)
        .map_err(polars)?;
    let num = |name: &str| df.column(name).and_then(Column::u64).map_err(polars);
    let (seq, ino, lblk, len, pblk) = (
        num("seq")?,
        num("ino")?,
        num("lblk")?,
        num("len")?,
        num("pblk")?,
    );
    let mut b = Builder::default();
    for row in 0..df.height() {
        let bad = |reason: String| TraceFileError::Row {
            path: path.to_path_buf(),
            row,
            reason,
        };
        let field = |v: &polars::prelude::UInt64Chunked, name: &str| {
            v.get(row).ok_or_else(|| bad(format!("`{name}` is empty")))
        };
        let r = RowValues {
            kind: kind.get(row).ok_or_else(|| bad("`kind` is empty".into()))?,
            seq: field(seq, "seq")?,
            ino: field(ino, "ino")?,
            lblk: field(lblk, "lblk")?,
            len: field(len, "len")?,
            pblk: field(pblk, "pblk")?,
            unwritten: unwritten.get(row).unwrap_or(false),
            note: note.get(row).unwrap_or(""),
        };
        b.row(row, &r).map_err(bad)?;
    }
    b.finish().map_err(|reason| TraceFileError::Row {
        path: path.to_path_buf(),
        row: df.height(),
        reason,
    })
}

struct RowValues<'a> {
    kind: &'a str,
    seq: u64,
    ino: u64,
    lblk: u64,
    len: u64,
    pblk: u64,
    unwritten: bool,
    note: &'a str,
}

/// Assembles a [`Trace`] row by row; a map's rows are gathered until its `seq` ends.
#[derive(Default)]
struct Builder {
    trace: Option<Trace>,
    open: Option<(&'static str, u64, u64, Vec<BlockExtent>)>, // kind, seq, ino, extents
}

impl Builder {
    fn row(&mut self, row: usize, r: &RowValues) -> Result<(), String> {
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

    fn finish(mut self) -> Result<Trace, String> {
        self.close()?;
        self.trace.ok_or_else(|| "no header row".into())
    }
}
