//! A line piece over records beside a key column (the `records` storage): the same fitted line
//! and window as a packed line piece, over the file's extents kept whole. No packing to undo:
//! the window search counts the piece's logical starts in place, four to a vector compare, and
//! reads the one record of the answer.

use super::*;

/// A line piece whose `count` extents lie in the bytes as [`RecordsLayout`] says: the logical
/// starts (`u32`) from byte `keys`, then the rest of each extent as a 12-byte record (length
/// `u32`, physical start with the unwritten flag in its top bit `u64`) from byte `recs`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecLine {
    /// The line and its window, as a packed line piece holds them.
    pub(super) win: Window,
    /// Byte offset of the key column.
    keys: u32,
    /// Byte offset of the records (right after the key column).
    recs: u32,
    /// Every key is below 2^31 (see [`count_u31`]).
    low: bool,
}

impl RecLine {
    /// Extents in the piece.
    pub(super) fn count(&self) -> u32 {
        self.win.count()
    }

    /// Byte offset of its key column.
    pub(super) fn keys(&self) -> u32 {
        self.keys
    }

    /// Byte offset of its records.
    pub(super) fn recs(&self) -> u32 {
        self.recs
    }

    /// Every extent of the piece, in order.
    pub(super) fn extents<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = Extent> + 'b {
        let n = self.count() as usize;
        let (keys, recs) = (self.keys as usize, self.recs as usize);
        let keys = bytes.get(keys..keys + n * KEY).unwrap_or(&[]);
        let recs = bytes.get(recs..recs + n * REC).unwrap_or(&[]);
        keys.chunks_exact(KEY)
            .zip(recs.chunks_exact(REC))
            .map(|(k, r)| record_extent(key_of(k), r))
    }

    /// The answer for `q` in `piece`, whose body this is (`d = q - first_key`): the
    /// window's keys counted against `q` (branch-free: [`WINDOW`] of them, four a compare), the candidate verified on the stored starts, `start[j] <= q < start[j + 1]`, or
    /// a miss. Only the answer's record is read, and the next key only for a query past its
    /// extent (it is in the same load as the found key).
    #[inline(always)]
    pub(super) fn find(&self, bytes: &[u8], q: u32, d: u32, piece: &Piece) -> Lookup {
        let last = self.win.last as usize;
        let n = last + 1;
        let keys = self.keys as usize;
        // The WINDOW keys from the window's first slot, moved back to end at the piece's end:
        // they cover the window (at most WINDOW slots), and keys are sorted, so the count of
        // those at most q is the answer's slot + 1 from there. A fixed count (eight compares of
        // four, unrolled: no loop, no branch on the data); a piece shorter than that counts all
        // its keys, out of line. (Which of the two is the piece's: the branch is predicted.)
        let (s, below) = match n.checked_sub(WINDOW) {
            Some(back) => {
                // The window's first slot, clamped to the piece and moved back to `back` in one
                // clamp. OK to narrow: 0 <= s <= back.
                let s = self.win.first_slot(d).clamp(0, back as i64) as usize;
                let Some(w) = bytes
                    .get(keys + s * KEY..)
                    .and_then(<[u8]>::first_chunk::<{ KEY * WINDOW }>)
                else {
                    return Lookup::Missed;
                };
                // Which count is the piece's: predicted.
                let below = if self.low {
                    count_u31(w, q)
                } else {
                    count_u32(w, q)
                };
                (s, below)
            }
            None => match bytes.get(keys..keys + n * KEY) {
                Some(w) => (0, count_short(w, q)),
                None => return Lookup::Missed,
            },
        };
        // The answer's record is read once the count is known; the lines of the counted keys'
        // records are asked for now, so that a cold lookup's record miss overlaps its keys'
        // miss instead of following it.
        let first = bytes.as_ptr().wrapping_add(self.recs as usize + s * REC);
        for line in 0..=WINDOW * REC / 64 {
            prefetch(first.wrapping_add(line * 64));
        }
        // None at most q: the answer lies before the window, a wrong line.
        if below == 0 {
            return Lookup::Missed;
        }
        let j = s + below - 1;
        // Its key and the next one in one load (past the last key: the first record's bytes, not
        // used), and its record: one bounds check each.
        let pair = bytes
            .get(keys + j * KEY..)
            .and_then(<[u8]>::first_chunk::<8>)
            .map_or(0, |b| u64::from_le_bytes(*b));
        let key = pair as u32;
        let Some(rec) = bytes
            .get(self.recs as usize + j * REC..)
            .and_then(<[u8]>::first_chunk::<REC>)
        else {
            return Lookup::Missed;
        };
        // The length alone first: the physical start is read for a hit only.
        let len = rec.first_chunk().map_or(0, |b| u32::from_le_bytes(*b));
        if q.wrapping_sub(key) < len && key <= q {
            return Lookup::Found(BlockMap::Mapped(record_extent(key, rec)));
        }
        // The piece's end only here, in a hole past the last extent: asked before the search
        // (an `Option` made from the piece up front), it had the compiler lay the whole search
        // out twice, once per outcome.
        let next = if j < last {
            Some((pair >> 32) as u32)
        } else {
            piece.end()
        };
        if key > q || next.is_some_and(|n| n <= q) {
            return Lookup::Missed;
        }
        Lookup::Found(BlockMap::Hole { next })
    }
}

/// [`count_u32`] over the keys of a piece shorter than [`WINDOW`], out of the common path.
#[inline(never)]
fn count_short(w: &[u8], q: u32) -> usize {
    count_u32(w, q)
}

/// Bytes of a key of the key column.
const KEY: usize = 4;

/// Bytes of a record beside the key column.
const REC: usize = KEYED_RECORD_BYTES;

/// The key at the start of `k` (at least 4 bytes; 0 else, which no caller passes).
fn key_of(k: &[u8]) -> u32 {
    k.first_chunk().map_or(0, |k| u32::from_le_bytes(*k))
}

/// The extent of key `key` and 12-byte record `r`.
fn record_extent(key: u32, r: &[u8]) -> Extent {
    let len = r.first_chunk().map_or(0, |b| u32::from_le_bytes(*b));
    let p = r
        .get(4..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |b| u64::from_le_bytes(*b));
    Extent {
        lblk: key,
        pblk: p & !UNWRITTEN_BIT,
        len,
        unwritten: p & UNWRITTEN_BIT != 0,
    }
}

/// Appends `exts` (one line piece) to `bytes` as a key column and its records; `None` if a
/// physical block does not fit a record or the bytes pass `u32` offsets.
pub(super) fn record_line(
    exts: &[Extent],
    line: FixedLine,
    bytes: &mut Vec<u8>,
) -> Option<RecLine> {
    let win = Window::new(line, u32::try_from(exts.len()).ok()?)?;
    let keys = u32::try_from(bytes.len()).ok()?;
    let recs = u32::try_from(bytes.len() + exts.len() * KEY).ok()?;
    // The records' end too (the bytes' padding follows, within the u32 offsets a front tier
    // reads).
    u32::try_from(bytes.len() + exts.len() * (KEY + REC)).ok()?;
    let recs_of = exts.iter().map(PlainRec::of).collect::<Option<Vec<_>>>()?;
    bytes.extend(exts.iter().flat_map(|e| e.lblk.to_le_bytes()));
    for r in recs_of {
        bytes.extend_from_slice(&r.len.to_le_bytes());
        bytes.extend_from_slice(&r.pblk_unwritten.to_le_bytes());
    }
    let low = exts.iter().all(|e| e.lblk <= i32::MAX as u32);
    Some(RecLine {
        win,
        keys,
        recs,
        low,
    })
}
