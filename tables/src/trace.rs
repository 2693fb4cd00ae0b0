//! A recorded trace ([`livefs::trace::Trace`]) as a Parquet file, and back.
//!
//! One row per event, in order: the rows of `livefs::trace::Trace::to_rows` (what each column
//! holds is documented there), as the columns `kind` (string), `seq`, `ino`, `lblk`, `len`,
//! `pblk` (u64), `unwritten` (bool) and `note` (string). A trace file is read like any input:
//! every row is checked by `livefs::trace::Builder`, and a bad one is an error naming its row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use livefs::trace::{Builder, Row, Trace};

use crate::parquet_file::{self, Read};
use crate::{Column, Error};

/// Why a trace file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// Writing the file failed.
    #[error("writing trace {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: Error,
    },
    /// The file cannot be opened.
    #[error("opening trace {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not Parquet, or not a table with the trace's columns.
    #[error("{path}: not a trace table: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
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

/// Writes `trace` to `path` as Parquet.
pub fn write_trace(path: &Path, trace: &Trace) -> Result<(), TraceFileError> {
    let rows = trace.to_rows();
    let col_u64 = |name: &str, f: fn(&Row) -> u64| {
        Column::new(name, rows.iter().map(f).collect::<Vec<u64>>())
    };
    let failed = |source| TraceFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let frame = crate::frame(vec![
        Column::new("kind", rows.iter().map(|r| r.kind).collect::<Vec<_>>()),
        col_u64("seq", |r| r.seq),
        col_u64("ino", |r| r.ino),
        col_u64("lblk", |r| r.lblk),
        col_u64("len", |r| r.len),
        col_u64("pblk", |r| r.pblk),
        Column::new(
            "unwritten",
            rows.iter().map(|r| r.unwritten).collect::<Vec<_>>(),
        ),
        Column::new("note", rows.iter().map(|r| r.note).collect::<Vec<_>>()),
    ])
    .map_err(failed)?;
    parquet_file::write(path, &frame).map_err(failed)
}

/// Reads a trace written by [`write_trace`], checking every row. Columns may be nullable (as
/// other writers make them): a null `unwritten` is false, a null `note` empty, and a null
/// anywhere else an error naming the row.
pub fn read_trace(path: &Path) -> Result<Trace, TraceFileError> {
    let format = |reason: String| TraceFileError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| TraceFileError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut columns: HashMap<String, Read> = parquet_file::read(file)
        .map_err(|e| format(e.to_string()))?
        .into_iter()
        .collect();
    let mut take = |name: &str| {
        columns
            .remove(name)
            .ok_or_else(|| format(format!("no column `{name}`")))
    };
    let (Read::Str(kind), Read::Str(note), Read::Bool(unwritten)) =
        (take("kind")?, take("note")?, take("unwritten")?)
    else {
        return Err(format(
            "`kind`, `note` or `unwritten` has the wrong type".into(),
        ));
    };
    let mut num = |name: &str| match take(name)? {
        Read::U64(v) => Ok(v),
        _ => Err(format(format!(
            "`{name}` is not an unsigned integer column"
        ))),
    };
    let (seq, ino, lblk, len, pblk) = (
        num("seq")?,
        num("ino")?,
        num("lblk")?,
        num("len")?,
        num("pblk")?,
    );
    let height = kind.len();
    if [
        note.len(),
        unwritten.len(),
        seq.len(),
        ino.len(),
        lblk.len(),
        len.len(),
        pblk.len(),
    ]
    .iter()
    .any(|&n| n != height)
    {
        return Err(format("columns of different lengths".into()));
    }
    let mut b = Builder::default();
    for row in 0..height {
        let bad = |reason: String| TraceFileError::Row {
            path: path.to_path_buf(),
            row,
            reason,
        };
        let field =
            |v: &[Option<u64>], name: &str| v[row].ok_or_else(|| bad(format!("`{name}` is empty")));
        let r = Row {
            kind: kind[row]
                .as_deref()
                .ok_or_else(|| bad("`kind` is empty".into()))?,
            seq: field(&seq, "seq")?,
            ino: field(&ino, "ino")?,
            lblk: field(&lblk, "lblk")?,
            len: field(&len, "len")?,
            pblk: field(&pblk, "pblk")?,
            unwritten: unwritten[row].unwrap_or(false),
            note: note[row].as_deref().unwrap_or(""),
        };
        b.row(row, &r).map_err(bad)?;
    }
    b.finish().map_err(|reason| TraceFileError::Row {
        path: path.to_path_buf(),
        row: height,
        reason,
    })
}
