//! A frame as a Parquet file and back, through the `parquet` crate's column writers and
//! readers: flat columns only (no nesting), one row group written, any number read.
//!
//! Reading takes hostile files: every failure is an error, values are read in bounded batches
//! (never sized by the row count the file claims), and a column of a type or shape the tables
//! never hold is refused by name.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, IntType, LogicalType, Repetition, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::{Error, Frame, Values};

/// Writes `frame` to `path`: every column `REQUIRED`, Snappy-compressed pages.
pub(crate) fn write(path: &Path, frame: &Frame) -> Result<(), Error> {
    let err = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fields = frame
        .columns()
        .iter()
        .map(|c| field(&c.name, &c.values).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(err)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(err)?;
    let mut group = writer.next_row_group().map_err(err)?;
    for c in frame.columns() {
        let mut col = group
            .next_column()
            .map_err(err)?
            .ok_or_else(|| err(ParquetError::General(format!("no writer for {}", c.name))))?;
        match &c.values {
            Values::Str(v) => {
                let v: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(s.as_str())).collect();
                col.typed::<ByteArrayType>().write_batch(&v, None, None)
            }
            Values::F64(v) => col.typed::<DoubleType>().write_batch(v, None, None),
            Values::U64(v) => {
                // Parquet has no unsigned physical type: the bits go into INT64, and the
                // column's logical type says to read them back unsigned.
                let v: Vec<i64> = v
                    .iter()
                    .map(|&u| i64::from_ne_bytes(u.to_ne_bytes()))
                    .collect();
                col.typed::<Int64Type>().write_batch(&v, None, None)
            }
            Values::Bool(v) => col.typed::<BoolType>().write_batch(v, None, None),
        }
        .map_err(err)?;
        col.close().map_err(err)?;
    }
    group.close().map_err(err)?;
    writer.close().map_err(err)?;
    Ok(())
}

/// The schema field of one column.
fn field(name: &str, values: &Values) -> Result<Type, ParquetError> {
    let (physical, logical) = match values {
        Values::Str(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        Values::F64(_) => (Physical::DOUBLE, None),
        Values::U64(_) => (
            Physical::INT64,
            Some(LogicalType::Integer(IntType {
                bit_width: 64,
                is_signed: false,
            })),
        ),
        Values::Bool(_) => (Physical::BOOLEAN, None),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(logical)
        .build()
}

/// A column read back: one value per row, `None` where the file holds a null.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read {
    /// `BYTE_ARRAY` (text must be UTF-8).
    Str(Vec<Option<String>>),
    /// `INT64`: unsigned when annotated so, else it must not be negative.
    U64(Vec<Option<u64>>),
    /// `BOOLEAN`.
    Bool(Vec<Option<bool>>),
    /// `DOUBLE`.
    F64(Vec<Option<f64>>),
}

/// Values read per call into the column reader: bounds memory whatever the file claims.
const BATCH: usize = 1 << 16;

/// Reads every column of the file at `path`, by name, in schema order.
///
/// The decoder asserts on some malformed pages instead of returning an error (an RLE run whose
/// length runs past ten bytes, found by the `trace_file` fuzz target): a panic inside it is this
/// file's error, not the program's. Nothing outlives the call, so no state is left half-made.
pub(crate) fn read(file: File) -> Result<Vec<(String, Read)>, ParquetError> {
    std::panic::catch_unwind(|| read_columns(file)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(ParquetError::General(format!(
            "malformed file: the decoder gave up ({what})"
        )))
    })
}

fn read_columns(file: File) -> Result<Vec<(String, Read)>, ParquetError> {
    let reader = SerializedFileReader::new(file)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let mut out: Vec<(String, Read)> = Vec::new();
    for col in schema.columns() {
        if col.max_rep_level() > 0 {
            return Err(ParquetError::General(format!(
                "column {} is nested",
                col.name()
            )));
        }
        let empty = match col.physical_type() {
            Physical::BYTE_ARRAY => Read::Str(Vec::new()),
            Physical::INT64 => Read::U64(Vec::new()),
            Physical::BOOLEAN => Read::Bool(Vec::new()),
            Physical::DOUBLE => Read::F64(Vec::new()),
            other => {
                return Err(ParquetError::General(format!(
                    "column {}: type {other} is not one a table holds",
                    col.name()
                )))
            }
        };
        out.push((col.name().to_string(), empty));
    }
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g)?;
        for (i, (name, values)) in out.iter_mut().enumerate() {
            let max_def = schema.column(i).max_def_level();
            let unsigned = matches!(
                schema.column(i).logical_type_ref(),
                Some(LogicalType::Integer(IntType {
                    is_signed: false,
                    ..
                }))
            );
            match (group.get_column_reader(i)?, values) {
                (ColumnReader::ByteArrayColumnReader(r), Read::Str(v)) => {
                    drain::<ByteArrayType, _>(r, max_def, v, |b| b.as_utf8().map(str::to_string))?
                }
                (ColumnReader::Int64ColumnReader(r), Read::U64(v)) => {
                    drain::<Int64Type, _>(r, max_def, v, |x| {
                        if unsigned {
                            Ok(u64::from_ne_bytes(x.to_ne_bytes()))
                        } else {
                            u64::try_from(x).map_err(|_| {
                                ParquetError::General(format!("column {name}: {x} is negative"))
                            })
                        }
                    })?
                }
                (ColumnReader::BoolColumnReader(r), Read::Bool(v)) => {
                    drain::<BoolType, _>(r, max_def, v, Ok)?
                }
                (ColumnReader::DoubleColumnReader(r), Read::F64(v)) => {
                    drain::<DoubleType, _>(r, max_def, v, Ok)?
                }
                _ => {
                    return Err(ParquetError::General(format!(
                        "column {name}: reader and schema disagree"
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// Reads one column chunk to its end, appending a value (or `None` for a null) per row.
fn drain<T: DataType, V>(
    mut reader: ColumnReaderImpl<T>,
    max_def: i16,
    out: &mut Vec<Option<V>>,
    convert: impl Fn(T::T) -> Result<V, ParquetError>,
) -> Result<(), ParquetError> {
    let mut defs: Vec<i16> = Vec::new();
    let mut values: Vec<T::T> = Vec::new();
    loop {
        defs.clear();
        values.clear();
        let levels = (max_def > 0).then_some(&mut defs);
        let (records, _, _) = reader.read_records(BATCH, levels, None, &mut values)?;
        if records == 0 {
            return Ok(());
        }
        let mut values = values.drain(..);
        if max_def == 0 {
            for v in values {
                out.push(Some(convert(v)?));
            }
            continue;
        }
        for &d in &defs {
            if d < max_def {
                out.push(None);
                continue;
            }
            let v = values
                .next()
                .ok_or_else(|| ParquetError::General("fewer values than levels".into()))?;
            out.push(Some(convert(v)?));
        }
    }
}
