//! Little-endian field readers over byte slices whose length the caller has already checked.
//!
//! Each on-disk structure checks its buffer length once in its `from_bytes`; after that, fields
//! at fixed offsets inside that length are read with these helpers. They still return 0 rather
//! than panic when handed a short slice, so a missed length check cannot crash the reader.

pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Joins the `lo` and `hi` halves that ext4 splits 48- and 64-bit values into.
pub(crate) fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}
