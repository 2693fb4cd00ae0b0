//! Trace files: what `write_trace` writes `read_trace` reads back unchanged, and a file that is
//! not a trace (hostile input, like an image) is an error naming the row, never a panic or a
//! trace that replays to a wrong map.

use livefs::trace::{Change, Event, Trace};
use livefs::BlockExtent;
use tables::trace::{read_trace, write_trace, TraceFileError};
use tables::Column;

fn ext(lblk: u32, pblk: u64, len: u32, unwritten: bool) -> BlockExtent {
    BlockExtent {
        lblk,
        pblk,
        len,
        unwritten,
    }
}

fn sample() -> Trace {
    Trace {
        workload: "unit".into(),
        block_size: 4096,
        initial: [
            (12, vec![ext(0, 100, 10, true), ext(20, 300, 4, false)]),
            (13, vec![]),
        ]
        .into(),
        events: vec![
            Event::Query { ino: 12, lblk: 3 },
            Event::Change {
                ino: 12,
                change: Change::Map(ext(3, 500, 2, false)),
            },
            Event::Change {
                ino: 12,
                change: Change::Unmap { lblk: 20, len: 1 },
            },
            Event::Change {
                ino: 13,
                change: Change::Collapse { lblk: 0, len: 1 },
            },
            Event::Change {
                ino: 13,
                change: Change::Insert { lblk: 1, len: 2 },
            },
            Event::Checkpoint {
                ino: 12,
                map: vec![ext(0, 100, 3, true)],
            },
            Event::Checkpoint {
                ino: 13,
                map: vec![],
            },
            Event::Checkpoint {
                ino: 12,
                map: vec![ext(0, 100, 3, true)],
            },
        ],
    }
}

#[test]
fn a_trace_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let t = sample();
    write_trace(&path, &t).unwrap();
    assert_eq!(read_trace(&path).unwrap(), t);
}

/// A row of a trace table: (kind, seq, ino, lblk, len, pblk).
type RowTuple = (&'static str, u64, u64, u64, u64, u64);

/// Writes a table with the trace columns.
fn table(rows: &[RowTuple]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let col = |f: fn(&RowTuple) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
    let frame = tables::frame(vec![
        Column::new("kind", rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new("seq", col(|r| r.1)),
        Column::new("ino", col(|r| r.2)),
        Column::new("lblk", col(|r| r.3)),
        Column::new("len", col(|r| r.4)),
        Column::new("pblk", col(|r| r.5)),
        Column::new("unwritten", vec![false; rows.len()]),
        Column::new("note", vec![""; rows.len()]),
    ])
    .unwrap();
    tables::write(dir.path(), "t", &frame).unwrap();
    dir
}

#[test]
fn rows_that_are_not_a_trace_are_errors_naming_the_row() {
    let header = ("header", 0, 0, 0, 4096, 0);
    let cases: &[(&[RowTuple], usize)] = &[
        (&[("query", 1, 12, 0, 1, 0)], 0),
        (&[("header", 0, 0, 0, 4095, 0)], 0),
        (&[header, ("teleport", 1, 12, 0, 1, 0)], 1),
        (&[header, ("query", 1, 12, 1 << 32, 1, 0)], 1),
        (&[header, ("map", 1, 12, 4_294_967_290, 10, 0)], 1),
        (&[header, ("unmap", 1, 12, u64::MAX, 2, 0)], 1),
        (&[header, ("insert", 1, 12, 5, u64::MAX, 0)], 1),
        (
            &[
                header,
                ("checkpoint", 1, 12, 10, 5, 0),
                ("checkpoint", 1, 12, 12, 5, 0),
            ],
            2,
        ),
    ];
    for (rows, bad_row) in cases {
        let dir = table(rows);
        match read_trace(&dir.path().join("t.parquet")) {
            Err(TraceFileError::Row { row, .. }) => assert_eq!(row, *bad_row, "{rows:?}"),
            other => panic!("{rows:?}: {other:?}"),
        }
    }
}

#[test]
fn a_file_that_is_not_parquet_or_lacks_a_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.parquet");
    match read_trace(&missing) {
        Err(e @ TraceFileError::Open { .. }) => {
            assert!(e.to_string().contains("missing.parquet"), "{e}")
        }
        other => panic!("a missing file gave {other:?}"),
    }
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"PAR1 this is not a table PAR1").unwrap();
    assert!(matches!(
        read_trace(&junk),
        Err(TraceFileError::Format { .. })
    ));
    let narrow = tables::frame(vec![Column::new("kind", vec!["header"])]).unwrap();
    tables::write(dir.path(), "narrow", &narrow).unwrap();
    assert!(matches!(
        read_trace(&dir.path().join("narrow.parquet")),
        Err(TraceFileError::Format { .. })
    ));
    // The trace's columns with one of the wrong type.
    let cols = |seq: tables::Values| {
        let mut c: Vec<Column> = ["kind", "note"]
            .map(|n| Column::new(n, vec!["header"]))
            .into();
        c.push(Column::new("unwritten", vec![false]));
        c.push(Column {
            name: "seq".into(),
            values: seq,
        });
        for n in ["ino", "lblk", "len", "pblk"] {
            c.push(Column::new(n, vec![0u64]));
        }
        tables::frame(c).unwrap()
    };
    tables::write(dir.path(), "typed", &cols(vec![0.5].into())).unwrap();
    assert!(matches!(
        read_trace(&dir.path().join("typed.parquet")),
        Err(TraceFileError::Format { .. })
    ));
    // Every prefix of a good file (a torn write) is an error, never a panic.
    let good = dir.path().join("good.parquet");
    write_trace(&good, &sample()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let torn = dir.path().join("torn.parquet");
    for cut in (0..bytes.len()).step_by(7) {
        std::fs::write(&torn, &bytes[..cut]).unwrap();
        assert!(read_trace(&torn).is_err(), "cut at {cut}");
    }
}

/// Files the `trace_file` fuzz target found making the Parquet decoder panic: each one an error.
#[test]
fn files_the_decoder_panics_on_are_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/decoder-panics");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        match read_trace(&path) {
            Err(TraceFileError::Format { reason, .. }) => {
                assert!(reason.contains("malformed"), "{}: {reason}", path.display())
            }
            other => panic!("{}: {other:?}", path.display()),
        }
        read += 1;
    }
    assert!(
        read >= 1,
        "tests/decoder-panics holds the fuzz target's finds"
    );
}

#[test]
fn the_committed_real_traces_rebuild_to_their_checkpoints() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let t = read_trace(&path).unwrap();
        let done = t
            .check()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            done.checkpoints >= 2 && done.extents > 100,
            "{}: {done:?}",
            path.display()
        );
        assert!(
            done.queries > 1000 && done.changes > 100,
            "{}: {done:?}",
            path.display()
        );
        read += 1;
    }
    assert_eq!(read, 2, "testdata/traces holds the two committed traces");
}
