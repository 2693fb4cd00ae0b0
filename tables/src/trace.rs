//! A recorded trace ([`livefs::trace::Trace`]) as a Parquet file, and back.
//!
//! One row per event, in order: the rows of `livefs::trace::Trace::to_rows` (what each column
//! holds is documented there), as the columns `kind` (string), `seq`, `ino`, `lblk`, `len`,
//! `pblk` (u64), `unwritten` (bool) and `note` (string). A trace file is read like any input:
//! every row is checked by `livefs::trace::Builder`, and a bad one is an error naming its row.

use std::fs::File;
use std::path::{Path, PathBuf};

use livefs::trace::{Builder, Row, Trace};
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

/// Writes `trace` to `path` as Parquet.
pub fn write_trace(path: &Path, trace: &Trace) -> Result<(), TraceFileError> {
    let rows = trace.to_rows();
    let col_u64 = |name: &str, f: fn(&Row) -> u64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<u64>>())
    };
    let polars = |source| TraceFileError::Polars {
        path: path.to_path_buf(),
        source,
    };
    let mut df = crate::frame(vec![
        Column::new(
            "kind".into(),
            rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        ),
        col_u64("seq", |r| r.seq),
        col_u64("ino", |r| r.ino),
        col_u64("lblk", |r| r.lblk),
        col_u64("len", |r| r.len),
        col_u64("pblk", |r| r.pblk),
        Column::new(
            "unwritten".into(),
            rows.iter().map(|r| r.unwritten).collect::<Vec<_>>(),
        ),
        Column::new(
            "note".into(),
            rows.iter().map(|r| r.note).collect::<Vec<_>>(),
        ),
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
        let r = Row {
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
