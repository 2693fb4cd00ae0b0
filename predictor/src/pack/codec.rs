//! The pack's byte layout: encoding, and decoding that trusts nothing.
//!
//! ```text
//! header, 64 bytes:
//!   0  magic "IOMPACK\0"      8  version u32          12 flags u32 (0)
//!   16 image uuid [16]        32 block size u32       36 max_window u32
//!   40 created u64 (unix s)   48 file length u64      56 entry count u32   60 reserved u32
//! entry, 28 bytes, then its segments (the learned index's lines over its line extents):
//!   0 ino u32   4 generation u32   8 fingerprint u64   16 line extent count u32
//!   20 model kind u8   21 flags u8 (0)   22 reserved [2]   24 segment count u32
//! segment, 56 bytes:
//!   0 first_idx u32   4 first_key u32   8 slope f64   16 intercept f64   24 e_lo u32   28 e_hi u32
//!   32 fixed slope u64   40 fixed intercept i64   48 fixed e_lo u32   52 fixed e_hi u32
//! trailer: xxh3-64 of every byte before it, u64
//! ```
//! All little-endian. Extents are not stored: the reader rebuilds them from the image and
//! compares their fingerprint.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use super::error::FormatError;
use super::{Pack, PackEntry, PackHeader};
use crate::model::{FixedLine, Line, Model, ModelKind, Segment};

/// Identifies a model pack.
pub const MAGIC: [u8; 8] = *b"IOMPACK\0";
/// Format version this crate writes, and the only one it reads: versions 1 and 2 held a
/// second model per file (over every extent), which no structure uses any more.
pub const VERSION: u32 = 3;

const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 28;
const SEGMENT_LEN: usize = 56;
const TRAILER_LEN: usize = 8;

pub(super) fn encode(pack: &Pack) -> Vec<u8> {
    let entry_len = |e: &PackEntry| ENTRY_LEN + e.model.segments.len() * SEGMENT_LEN;
    let len = HEADER_LEN + pack.entries.values().map(entry_len).sum::<usize>() + TRAILER_LEN;
    let mut out = Vec::with_capacity(len);
    let h = &pack.header;
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&h.uuid);
    out.extend_from_slice(&h.block_size.to_le_bytes());
    out.extend_from_slice(&h.max_window.to_le_bytes());
    out.extend_from_slice(&h.created.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    // OK to narrow: entries are keyed by u32 inode numbers, so there are at most 2^32 of them,
    // and a pack that large could not be built in memory anyway.
    out.extend_from_slice(&(pack.entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for e in pack.entries.values() {
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&e.generation.to_le_bytes());
        out.extend_from_slice(&e.fingerprint.to_le_bytes());
        out.extend_from_slice(&e.model.extent_count.to_le_bytes());
        out.extend_from_slice(&[e.model.kind() as u8, 0, 0, 0]);
        encode_segments(&e.model.segments, &mut out);
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A segment count, then the segments.
fn encode_segments(segments: &[Segment], out: &mut Vec<u8>) {
    // OK to narrow: segments start at distinct u32 extent indices.
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for s in segments {
        out.extend_from_slice(&s.first_idx.to_le_bytes());
        out.extend_from_slice(&s.first_key.to_le_bytes());
        out.extend_from_slice(&s.line.slope.to_le_bytes());
        out.extend_from_slice(&s.line.intercept.to_le_bytes());
        out.extend_from_slice(&s.line.e_lo.to_le_bytes());
        out.extend_from_slice(&s.line.e_hi.to_le_bytes());
        out.extend_from_slice(&s.fixed.slope.to_le_bytes());
        out.extend_from_slice(&s.fixed.intercept.to_le_bytes());
        out.extend_from_slice(&s.fixed.e_lo.to_le_bytes());
        out.extend_from_slice(&s.fixed.e_hi.to_le_bytes());
    }
}

/// A cursor over checked bytes: every read is bounds-checked and names its offset.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    ino: Option<u32>,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, offset: usize, what: impl Into<String>) -> FormatError {
        FormatError::Corrupt {
            offset: offset as u64,
            ino: self.ino,
            what: what.into(),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let b = self
            .buf
            .get(self.pos..self.pos + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| self.corrupt(self.pos, "counts run past the end of the pack"))?;
        self.pos += N;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, FormatError> {
        self.take().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, FormatError> {
        self.take().map(f64::from_le_bytes)
    }

    /// Reads a count of records of `size` bytes each, refusing counts the remaining bytes
    /// cannot hold (so a hostile count never drives an allocation).
    fn count(&mut self, size: usize, what: &str) -> Result<usize, FormatError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let room = self.buf.len().saturating_sub(self.pos) / size;
        if n > room {
            return Err(self.corrupt(
                at,
                format!("{what} count {n} exceeds the {room} that fit in the file"),
            ));
        }
        Ok(n)
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Pack, FormatError> {
    let len = bytes.len() as u64;
    let truncated = |need: usize| FormatError::Truncated {
        len,
        need: need as u64,
    };
    // Magic and version first, so a newer pack is reported as newer whatever its layout.
    let magic = bytes.get(..8).ok_or(truncated(12))?;
    if magic != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let mut r = Reader {
        buf: bytes,
        pos: 8,
        ino: None,
    };
    let version = r.u32().map_err(|_| truncated(12))?;
    if version > VERSION {
        return Err(FormatError::NewerVersion {
            found: version,
            supported: VERSION,
        });
    }
    if version == 0 {
        return Err(r.corrupt(8, "format version 0"));
    }
    if version < VERSION {
        return Err(FormatError::OlderVersion {
            found: version,
            supported: VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(truncated(HEADER_LEN + TRAILER_LEN));
    }
    r.pos = 48;
    let file_len = r.u64()?;
    if file_len > len {
        return Err(FormatError::Truncated {
            len,
            need: file_len,
        });
    }
    if file_len < len {
        return Err(r.corrupt(
            48,
            format!(
                "{} bytes after the end the header gives ({file_len})",
                len - file_len
            ),
        ));
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let (body, trailer) = bytes.split_at(body_end);
    let stored = u64::from_le_bytes(
        trailer
            .try_into()
            .map_err(|_| truncated(HEADER_LEN + TRAILER_LEN))?,
    );
    let computed = xxh3_64(body);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }

    // From here the bytes are as written; what follows guards against a writer that lied.
    let mut r = Reader {
        buf: body,
        pos: 12,
        ino: None,
    };
    let flags = r.u32()?;
    if flags != 0 {
        return Err(r.corrupt(12, format!("unknown flags {flags:#x}")));
    }
    let uuid = r.take::<16>()?;
    let block_size = r.u32()?;
    let max_window = r.u32()?;
    let created = r.u64()?;
    r.pos = 56;
    let count = r.count(ENTRY_LEN, "entry")?;
    r.pos = HEADER_LEN;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let e = decode_entry(&mut r)?;
        let at = r.pos;
        if entries.insert(e.ino, e).is_some() {
            return Err(r.corrupt(at, "duplicate inode"));
        }
    }
    if r.pos != body.len() {
        return Err(r.corrupt(r.pos, "bytes after the last entry"));
    }
    Ok(Pack {
        header: PackHeader {
            uuid,
            block_size,
            max_window,
            created,
        },
        entries,
        path: None,
    })
}

fn decode_entry(r: &mut Reader<'_>) -> Result<PackEntry, FormatError> {
    let start = r.pos;
    r.ino = None;
    let ino = r.u32()?;
    r.ino = Some(ino);
    let generation = r.u32()?;
    let fingerprint = r.u64()?;
    let extent_count = r.u32()?;
    let kind_at = r.pos;
    let kind =
        ModelKind::from_u8(r.u8()?).ok_or_else(|| r.corrupt(kind_at, "unknown model kind"))?;
    let flags_at = r.pos;
    let flags = r.u8()?;
    if flags != 0 {
        return Err(r.corrupt(flags_at, format!("unknown entry flags {flags:#x}")));
    }
    r.take::<2>()?;
    let model = Model {
        extent_count,
        segments: decode_segments(r)?,
    };
    model
        .check_shape()
        .map_err(|e| r.corrupt(start, e.to_string()))?;
    if model.kind() != kind {
        return Err(r.corrupt(
            kind_at,
            format!(
                "model kind {kind:?} but the segments make {:?}",
                model.kind()
            ),
        ));
    }
    Ok(PackEntry {
        ino,
        generation,
        fingerprint,
        model,
    })
}

/// A segment count, then the segments (the count checked against the bytes left).
fn decode_segments(r: &mut Reader<'_>) -> Result<Vec<Segment>, FormatError> {
    let nseg = r.count(SEGMENT_LEN, "segment")?;
    let mut segments = Vec::with_capacity(nseg);
    for _ in 0..nseg {
        segments.push(Segment {
            first_idx: r.u32()?,
            first_key: r.u32()?,
            line: Line {
                slope: r.f64()?,
                intercept: r.f64()?,
                e_lo: r.u32()?,
                e_hi: r.u32()?,
            },
            fixed: FixedLine {
                slope: r.u64()?,
                intercept: r.i64()?,
                e_lo: r.u32()?,
                e_hi: r.u32()?,
            },
        });
    }
    Ok(segments)
}
