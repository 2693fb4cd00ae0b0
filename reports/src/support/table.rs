//! Row-by-row table building on top of the `tables` crate (which writes Parquet + CSV): experiments push rows of named values; columns are checked to agree across rows.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tables::Column;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text.
    S(String),
    /// Floating point.
    F(f64),
    /// Unsigned integer.
    U(u64),
    /// Boolean.
    B(bool),
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::S(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::S(s)
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Self {
        Val::S(s.clone())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::F(v)
    }
}
impl From<u64> for Val {
    fn from(v: u64) -> Self {
        Val::U(v)
    }
}
impl From<usize> for Val {
    fn from(v: usize) -> Self {
        Val::U(v as u64)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::U(u64::from(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::B(v)
    }
}

/// A table being filled.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// File stem: `fig1_lookup_latency` -> `fig1_lookup_latency.{parquet,csv}`.
    pub name: String,
    /// Rows of `(column, value)`, every row with the same columns in the same order.
    pub rows: Vec<Vec<(&'static str, Val)>>,
}

impl Table {
    /// An empty table.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<(&'static str, Val)>) {
        self.rows.push(row);
    }

    /// Writes the table under `dir` (Parquet and CSV); returns the Parquet path. A table with
    /// no rows is not written.
    pub fn write(&self, dir: &Path) -> Result<Option<PathBuf>> {
        let Some(first) = self.rows.first() else {
            return Ok(None);
        };
        let names: Vec<&'static str> = first.iter().map(|(n, _)| *n).collect();
        let mut columns = Vec::with_capacity(names.len());
        for (c, name) in names.iter().enumerate() {
            let cells = self
                .rows
                .iter()
                .enumerate()
                .map(|(r, row)| match row.get(c) {
                    Some((n, v)) if n == name => Ok(v),
                    _ => bail!(
                        "table {}: row {r} does not have column {name} at position {c}",
                        self.name
                    ),
                });
            let cells: Vec<&Val> = cells.collect::<Result<_>>()?;
            let col = match first[c].1 {
                Val::S(_) => Column::new(
                    name,
                    collect(
                        &cells,
                        |v| match v {
                            Val::S(s) => Some(s.clone()),
                            _ => None,
                        },
                        &self.name,
                        name,
                    )?,
                ),
                Val::F(_) => Column::new(
                    name,
                    collect(
                        &cells,
                        |v| match v {
                            Val::F(f) => Some(*f),
                            _ => None,
                        },
                        &self.name,
                        name,
                    )?,
                ),
                Val::U(_) => Column::new(
                    name,
                    collect(
                        &cells,
                        |v| match v {
                            Val::U(u) => Some(*u),
                            _ => None,
                        },
                        &self.name,
                        name,
                    )?,
                ),
                Val::B(_) => Column::new(
                    name,
                    collect(
                        &cells,
                        |v| match v {
                            Val::B(b) => Some(*b),
                            _ => None,
                        },
                        &self.name,
                        name,
                    )?,
                ),
            };
            columns.push(col);
        }
        let frame =
            tables::frame(columns).with_context(|| format!("building table {}", self.name))?;
        let path = tables::write(dir, &self.name, &frame)?;
        Ok(Some(path))
    }
}

fn collect<T>(
    cells: &[&Val],
    get: impl Fn(&Val) -> Option<T>,
    table: &str,
    col: &str,
) -> Result<Vec<T>> {
    cells
        .iter()
        .enumerate()
        .map(|(r, v)| {
            get(v).with_context(|| format!("table {table}: row {r}, column {col} changes type"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Table::new("t");
        t.push(vec![("a", 1u64.into()), ("b", "x".into())]);
        t.push(vec![("a", 2u64.into())]);
        assert!(t.write(dir.path()).is_err());
        let mut t = Table::new("t");
        t.push(vec![("a", 1u64.into())]);
        t.push(vec![("a", 1.5.into())]);
        assert!(t.write(dir.path()).is_err());
    }
}
