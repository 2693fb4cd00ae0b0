//! The tables behind the figures: each one written as Parquet (for notebooks) and CSV (for
//! eyes and diff) under `notebooks-data/`. Kept in its own crate so only the binaries that
//! write tables pay for polars.

pub mod trace;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use polars::prelude::{Column, DataFrame, NamedFrom};
use polars::prelude::{CsvWriter, ParquetWriter, SerWriter};

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the directory or file failed.
    #[error("writing {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// polars refused the data or failed to encode it.
    #[error("table {path}")]
    Polars {
        /// The file being written.
        path: PathBuf,
        /// What polars said.
        source: polars::error::PolarsError,
    },
}

/// Builds a table from named columns of equal length.
pub fn frame(columns: Vec<Column>) -> Result<DataFrame, polars::error::PolarsError> {
    DataFrame::new_infer_height(columns)
}

/// Writes `df` as `<dir>/<name>.parquet` and `<dir>/<name>.csv`, creating `dir`.
/// Returns the Parquet path.
pub fn write(dir: &Path, name: &str, df: &mut DataFrame) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let parquet = dir.join(format!("{name}.parquet"));
    let csv = dir.join(format!("{name}.csv"));
    let create = |p: &Path| {
        File::create(p).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    ParquetWriter::new(create(&parquet)?)
        .finish(df)
        .map_err(|source| Error::Polars {
            path: parquet.clone(),
            source,
        })?;
    CsvWriter::new(create(&csv)?)
        .finish(df)
        .map_err(|source| Error::Polars {
            path: csv.clone(),
            source,
        })?;
    Ok(parquet)
}
