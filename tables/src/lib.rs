//! The tables behind the figures: each one written as Parquet (for notebooks) and CSV (for
//! eyes and diff) under `notebooks-data/`. Kept in its own crate so only the binaries that
//! write tables pay for the Parquet encoder.
//!
//! A table is a few named columns of numbers, text or flags, a few thousand rows at most:
//! written through the `parquet` crate's column writers (one row group, Snappy pages), with no
//! dataframe library between, and as CSV by hand (RFC 4180 quoting).

mod csv;
mod parquet_file;
pub mod trace;

use std::path::{Path, PathBuf};

/// The values of one column, all of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Text (Parquet `BYTE_ARRAY` annotated `STRING`).
    Str(Vec<String>),
    /// Floating point (`DOUBLE`).
    F64(Vec<f64>),
    /// Unsigned integers (`INT64` annotated unsigned 64-bit, as pandas and polars read them).
    U64(Vec<u64>),
    /// Flags (`BOOLEAN`).
    Bool(Vec<bool>),
}

impl Values {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Values::Str(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::U64(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<String>> for Values {
    fn from(v: Vec<String>) -> Self {
        Values::Str(v)
    }
}
impl From<Vec<&str>> for Values {
    fn from(v: Vec<&str>) -> Self {
        Values::Str(v.into_iter().map(str::to_string).collect())
    }
}
impl From<Vec<f64>> for Values {
    fn from(v: Vec<f64>) -> Self {
        Values::F64(v)
    }
}
impl From<Vec<u64>> for Values {
    fn from(v: Vec<u64>) -> Self {
        Values::U64(v)
    }
}
/// Narrow counts (inode numbers, extent counts) widen to the one unsigned column type.
impl From<Vec<u32>> for Values {
    fn from(v: Vec<u32>) -> Self {
        Values::U64(v.into_iter().map(u64::from).collect())
    }
}
impl From<Vec<bool>> for Values {
    fn from(v: Vec<bool>) -> Self {
        Values::Bool(v)
    }
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name, as the notebooks read it.
    pub name: String,
    /// Its values.
    pub values: Values,
}

impl Column {
    /// A column named `name` holding `values`.
    pub fn new(name: &str, values: impl Into<Values>) -> Self {
        Self {
            name: name.to_string(),
            values: values.into(),
        }
    }
}

/// Named columns of equal length, with distinct names.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    columns: Vec<Column>,
    height: usize,
}

impl Frame {
    /// The columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.height
    }
}

/// Why a table could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Columns of different lengths, or two columns of one name.
    #[error("table columns do not line up: {0}")]
    Shape(String),
    /// Creating the directory or file failed.
    #[error("writing {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Parquet encoder refused the data.
    #[error("writing {path} as Parquet")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// What the encoder said.
        source: parquet::errors::ParquetError,
    },
}

/// Builds a table from named columns of equal length.
pub fn frame(columns: Vec<Column>) -> Result<Frame, Error> {
    let height = columns.first().map_or(0, |c| c.values.len());
    for (i, c) in columns.iter().enumerate() {
        if c.values.len() != height {
            return Err(Error::Shape(format!(
                "column {} has {} rows, column {} has {height}",
                c.name,
                c.values.len(),
                columns[0].name
            )));
        }
        if columns[..i].iter().any(|d| d.name == c.name) {
            return Err(Error::Shape(format!("two columns named {}", c.name)));
        }
    }
    Ok(Frame { columns, height })
}

/// Writes `frame` as `<dir>/<name>.parquet` and `<dir>/<name>.csv`, creating `dir`.
/// Returns the Parquet path.
pub fn write(dir: &Path, name: &str, frame: &Frame) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let parquet = dir.join(format!("{name}.parquet"));
    parquet_file::write(&parquet, frame)?;
    let csv = dir.join(format!("{name}.csv"));
    std::fs::write(&csv, csv::encode(frame)).map_err(|source| Error::Io { path: csv, source })?;
    Ok(parquet)
}
