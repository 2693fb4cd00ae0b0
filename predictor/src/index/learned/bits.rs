//! The packed form's byte-level codec: fields at bit offsets, key columns of 2 or 4 bytes, and
//! the count of window keys at or below a query (SSE2 where there is SSE2), which the records
//! storage's key column shares.

use super::*;

/// Bits needed to store values `0..=v`.
pub(super) fn bits_for(v: u128) -> u32 {
    128 - v.leading_zeros()
}

/// The little-endian 8 bytes at byte `at` (0 past the end, which the padding makes unreachable
/// for a well-formed index).
#[inline(always)]
pub(super) fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The low `w` bits set (`w <= 63`).
#[inline(always)]
pub(super) fn mask(w: u32) -> u64 {
    (1u64 << w) - 1
}

/// Reads the `w`-bit field (`w <= MAX_FIELD_BITS`) at bit `bit`.
#[inline(always)]
pub(super) fn field(bytes: &[u8], bit: usize, w: u8) -> u64 {
    // w <= 56, so the shift is in range; w == 0 masks everything.
    (word(bytes, bit / 8) >> (bit % 8)) & mask(u32::from(w))
}

/// How a line piece stores its key offsets (a key minus its block's first key): byte-aligned,
/// so a window of them is compared with `q` by vector instructions rather than a walk over
/// bit fields (which measured twice the instructions of the iext tree's lookup). Two bytes
/// where every block of the piece spans less than 2^16 - 1 blocks (every kernel-allocator map
/// measured: offsets of 9 to 12 bits), four otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyWidth {
    U16,
    U32,
}

impl KeyWidth {
    /// The narrowest width for a piece whose largest in-block key offset is `max`. The
    /// all-ones value of each width is kept for the padding of a last, partial block.
    pub(super) fn for_offsets(max: u32) -> Self {
        if max < u32::from(u16::MAX) {
            Self::U16
        } else {
            Self::U32
        }
    }

    pub(super) fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    /// Byte offset of the record column within a block whose keys are this wide: after the
    /// header and the [`BLOCK`] key slots.
    #[inline(always)]
    pub(super) fn recs(self) -> usize {
        HEAD + BLOCK * self.bytes()
    }

    /// The padding of unused slots: above every offset, and above every `q` offset once
    /// clamped (see [`Self::count_at_most`]).
    pub(super) fn padding(self) -> u32 {
        match self {
            Self::U16 => u32::from(u16::MAX),
            Self::U32 => u32::MAX,
        }
    }

    /// Offsets `r` and `r + 1` of the key column at byte `col`, in one load (the second is
    /// meaningless for `r = BLOCK - 1`).
    #[inline(always)]
    pub(super) fn pair(self, bytes: &[u8], col: usize, r: usize) -> (u32, u32) {
        let w = word(bytes, col + r * self.bytes());
        match self {
            Self::U16 => (u32::from(w as u16), u32::from((w >> 16) as u16)),
            Self::U32 => (w as u32, (w >> 32) as u32),
        }
    }

    /// Offset `r` of the key column at byte `col`.
    #[inline(always)]
    pub(super) fn get(self, bytes: &[u8], col: usize, r: usize) -> u32 {
        let w = word(bytes, col + r * self.bytes());
        match self {
            Self::U16 => w as u16 as u32,
            Self::U32 => w as u32,
        }
    }

    /// How many of the [`WINDOW`] offsets from slot `s` of the key column at byte `col` are at
    /// most `qd` (0 if the column is not there, which a well-formed index never asks).
    #[inline(always)]
    pub(super) fn count_at_most(self, bytes: &[u8], col: usize, s: usize, qd: u32) -> usize {
        let from = col + s * self.bytes();
        // Clamped below the padding: every real offset is below it, so the count of real
        // offsets is unchanged and padding is never counted.
        let qd = qd.min(self.padding() - 1);
        match self {
            Self::U16 => match bytes.get(from..).and_then(<[u8]>::first_chunk) {
                Some(w) => count_u16(w, qd as u16),
                None => 0,
            },
            Self::U32 => match bytes
                .get(from..)
                .and_then(<[u8]>::first_chunk::<{ 4 * WINDOW }>)
            {
                Some(w) => count_u32(w, qd),
                None => 0,
            },
        }
    }
}

/// Little-endian `u16`s of `w` at most `qd`, for sorted `w`: they are a prefix, so the count is
/// the run of low ones in a mask with one bit per slot. On x86-64, SSE2 (part of the
/// architecture's baseline) compares eight slots at once and `movemask` gathers the bits: about
/// 15 instructions and a short dependency chain where the portable sum, which LLVM vectorises
/// but finishes with an emulated popcount, takes some 40.
#[inline(always)]
pub(super) fn count_u16(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        count_u16_sse2(w, qd)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        count_u16_portable(w, qd)
    }
}

/// [`count_u16`] in SSE2, which the x86-64 baseline has: compiled in without a
/// `target_feature` attribute, so it inlines into the lookup (a call, with the spills around
/// it, cost some 20 instructions).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn count_u16_sse2(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
        _mm_set1_epi16, _mm_setzero_si128, _mm_subs_epu16,
    };
    const _: () = assert!(WINDOW == 32, "four compares of eight slots");
    // SAFETY: SSE2 is on in this build (the cfg above), which is all these intrinsics ask;
    // the loads are bytes 16k..16k + 16 of the 64-byte array (k < 4), unaligned.
    let (lo, hi) = unsafe {
        let q = _mm_set1_epi16(qd as i16);
        // Slots 8k..8k+8: all ones where the slot is at most q (saturating slot - q is zero).
        // One load per eight slots (building the vector from two 8-byte words took three).
        let at_most = |k: usize| -> __m128i {
            debug_assert!(k < 4);
            let v = _mm_loadu_si128(w.as_ptr().add(16 * k).cast());
            _mm_cmpeq_epi16(_mm_subs_epu16(v, q), _mm_setzero_si128())
        };
        // Sixteen slots a time, one byte each (signed saturation keeps 0 and -1), one bit each.
        (
            _mm_movemask_epi8(_mm_packs_epi16(at_most(0), at_most(1))) as u32,
            _mm_movemask_epi8(_mm_packs_epi16(at_most(2), at_most(3))) as u32,
        )
    };
    (lo | hi << 16).trailing_ones() as usize
}

/// [`count_u16`] without vector intrinsics (other architectures; and the x86-64 version's
/// reference in the tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(super) fn count_u16_portable(w: &[u8; 2 * WINDOW], qd: u16) -> usize {
    let mut n = 0u16;
    for c in w.chunks_exact(2) {
        n += u16::from(u16::from_le_bytes([c[0], c[1]]) <= qd);
    }
    usize::from(n)
}

/// Little-endian `u32`s of `w` at most `q` (whole four-byte keys only): the keys of a records
/// piece's key column, and the four-byte key offsets of a packed piece whose blocks span 2^16
/// blocks or more. One count for both storages. Sorted or not, the result is the number of keys
/// at most `q`.
#[inline(always)]
pub(super) fn count_u32(w: &[u8], q: u32) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        count_u32_sse2(w, q)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        count_u32_portable(w, q)
    }
}

/// [`count_u32`] in SSE2, compiled in without a `target_feature` attribute so it inlines: four
/// keys per load and compare. SSE2 has no unsigned compare, so both sides have their top bit
/// flipped and are compared as signed; each key above `q` subtracts one from its lane.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn count_u32_sse2(w: &[u8], q: u32) -> usize {
    use std::arch::x86_64::{
        _mm_add_epi32, _mm_cmpgt_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_set1_epi32,
        _mm_setzero_si128, _mm_shuffle_epi32, _mm_sub_epi32, _mm_xor_si128,
    };
    let groups = w.chunks_exact(16);
    // Tested first: for a whole window (a length known at the call) the test folds away with
    // the tail, where the count of an empty tail stayed an out-of-line call (with the
    // lookup's registers spilled around it) on every records lookup.
    let tail = match groups.remainder() {
        [] => 0,
        rest => count_u32_portable(rest, q),
    };
    let counted = groups.len() * 4;
    // SAFETY: SSE2 is on in this build (the cfg above), which is all these intrinsics ask; each
    // load is one 16-byte chunk of `w`, unaligned.
    let above = unsafe {
        let bias = _mm_set1_epi32(i32::MIN);
        let qv = _mm_xor_si128(_mm_set1_epi32(q as i32), bias);
        let mut acc = _mm_setzero_si128();
        for g in groups {
            let keys = _mm_xor_si128(_mm_loadu_si128(g.as_ptr().cast()), bias);
            // -1 where a key is above q: subtracting counts them.
            acc = _mm_sub_epi32(acc, _mm_cmpgt_epi32(keys, qv));
        }
        let acc = _mm_add_epi32(acc, _mm_shuffle_epi32::<0b01_00_11_10>(acc));
        let acc = _mm_add_epi32(acc, _mm_shuffle_epi32::<0b10_11_00_01>(acc));
        // At most w.len() / 4 keys: a small non-negative count.
        _mm_cvtsi128_si32(acc) as u32 as usize
    };
    counted - above + tail
}

/// [`count_u32`] over a whole window of sorted keys all below 2^31 (every logical block of a
/// file under 8 TiB at 4 KiB blocks): compared as signed numbers as they are, with `q` clamped
/// to the largest (every key is at most it, as at most any larger `q`), so the eight groups
/// skip the sign flip [`count_u32_sse2`] needs. The keys above `q` are a suffix of the sorted
/// window, so the count is where that suffix starts: the compares narrowed to one bit per key
/// and the lowest set bit found, a shorter chain after the compares than summing lanes (a warm
/// lookup's time is that chain: measured in `docs/decisions.md`). Unsorted keys (which a
/// records piece never holds) give some slot within the window, which verification rejects.
#[inline(always)]
pub(super) fn count_u31(w: &[u8; 4 * WINDOW], q: u32) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{
            _mm_cmpgt_epi32, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_packs_epi32,
            _mm_set1_epi32,
        };
        const _: () = assert!(WINDOW == 32, "eight compares of four keys");
        // OK to narrow: clamped to i32::MAX.
        let q = q.min(i32::MAX as u32) as i32;
        // SAFETY: SSE2 is on in this build (the cfg above), which is all these intrinsics
        // ask; the loads are bytes 16k..16k + 16 of the 128-byte array (k < 8), unaligned.
        let above = unsafe {
            let qv = _mm_set1_epi32(q);
            let above = |k: usize| {
                debug_assert!(k < 8);
                _mm_cmpgt_epi32(_mm_loadu_si128(w.as_ptr().add(16 * k).cast()), qv)
            };
            // Keys 0-15 and 16-31 as one byte each, in order (saturating packs keep -1 and 0).
            let lo = _mm_packs_epi16(
                _mm_packs_epi32(above(0), above(1)),
                _mm_packs_epi32(above(2), above(3)),
            );
            let hi = _mm_packs_epi16(
                _mm_packs_epi32(above(4), above(5)),
                _mm_packs_epi32(above(6), above(7)),
            );
            (_mm_movemask_epi8(lo) as u32 as u64) | ((_mm_movemask_epi8(hi) as u32 as u64) << 16)
        };
        // No key above q: all WINDOW are at most it.
        (above | 1 << WINDOW).trailing_zeros() as usize
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        count_u32_portable(w, q)
    }
}

/// [`count_u32`] without vector intrinsics (other architectures, a short tail; and the x86-64
/// version's reference in the tests).
#[inline(always)]
pub(super) fn count_u32_portable(w: &[u8], q: u32) -> usize {
    w.chunks_exact(4)
        .map(|c| usize::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) <= q))
        .sum()
}

/// ORs `v` (< 2^w, w <= 56) into the field at bit `bit` (zero there before).
pub(super) fn put(bytes: &mut [u8], bit: usize, v: u64) {
    let at = bit / 8;
    if let Some(b) = bytes.get_mut(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        let word = u64::from_le_bytes(word) | (v << (bit % 8));
        b.copy_from_slice(&word.to_le_bytes());
    }
}
