//! Trace files: fuzz bytes decoded as rows of a trace table (what `tables::trace` reads out of
//! Parquet; the Parquet decoding itself is the `parquet` crate's) and checked by
//! `livefs::trace::Builder`. A trace that is accepted is replayed (`Trace::check`, which
//! applies every change, shifts included, to the maps) and must survive a to_rows / from rows
//! round trip unchanged. Errors are fine; panics, hangs and huge allocations are the bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livefs::trace::{Builder, Row, Trace};

const KINDS: [&str; 9] = [
    "header", "initial", "query", "map", "unmap", "collapse", "insert", "checkpoint", "teleport",
];

/// 20 bytes a row: kind, seq and ino (one byte each), lblk and len (u32 or, with the flag
/// bits, near the top of the u64 range), pblk (u64), flags.
fn rows(data: &[u8]) -> Vec<(usize, u64, u64, u64, u64, u64, bool)> {
    data.chunks_exact(20)
        .map(|c| {
            let u32_at = |i: usize| u64::from(u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]));
            let flags = c[19];
            let wide = |v: u64, bit: u8| if flags & bit != 0 { u64::MAX - v } else { v };
            let mut pblk = [0u8; 8];
            pblk.copy_from_slice(&c[11..19]);
            (
                usize::from(c[0]) % KINDS.len(),
                u64::from(c[1] % 8),
                u64::from(c[2] % 4),
                wide(u32_at(3), 1),
                wide(u32_at(7), 2),
                u64::from_le_bytes(pblk),
                flags & 4 != 0,
            )
        })
        .collect()
}

fn build(rows: &[Row<'_>]) -> Result<Trace, String> {
    let mut b = Builder::default();
    for (i, r) in rows.iter().enumerate() {
        b.row(i, r)?;
    }
    b.finish()
}

fuzz_target!(|data: &[u8]| {
    let decoded = rows(data);
    let mut table: Vec<Row<'_>> = decoded
        .iter()
        .map(|&(k, seq, ino, lblk, len, pblk, unwritten)| Row {
            kind: KINDS[k],
            seq,
            ino,
            lblk,
            len,
            pblk,
            unwritten,
            note: "",
        })
        .collect();
    // Half the inputs get a well-formed header, so mutations reach the event rows.
    if data.first().is_some_and(|b| b & 1 == 1) {
        table.insert(0, Row { kind: "header", seq: 0, ino: 0, lblk: 0, len: 4096, pblk: 0, unwritten: false, note: "fuzz" });
    }
    let Ok(trace) = build(&table) else {
        return;
    };
    let _ = trace.check();
    let again = build(&trace.to_rows()).expect("a trace's own rows are a trace");
    assert_eq!(again, trace);
});
