//! The fingerprint of an extent map: how a model pack recognises that a file still has the
//! extents its model was trained on.

use ext4::Extent;
use xxhash_rust::xxh3::Xxh3;

/// xxh3-64 of the extents, each encoded little-endian as `lblk u32, pblk u64, len u32,
/// unwritten u8` (17 bytes), in order.
pub fn fingerprint(exts: &[Extent]) -> u64 {
    const REC: usize = 17;
    const CHUNK: usize = 256;
    let mut h = Xxh3::new();
    let mut buf = [0u8; REC * CHUNK];
    for chunk in exts.chunks(CHUNK) {
        for (e, out) in chunk.iter().zip(buf.chunks_exact_mut(REC)) {
            out[..4].copy_from_slice(&e.lblk.to_le_bytes());
            out[4..12].copy_from_slice(&e.pblk.to_le_bytes());
            out[12..16].copy_from_slice(&e.len.to_le_bytes());
            out[16] = u8::from(e.unwritten);
        }
        h.update(&buf[..chunk.len() * REC]);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_change_changes_the_fingerprint() {
        let exts = crate::synth::allocator_like(1000, 1);
        let f = fingerprint(&exts);
        assert_eq!(f, fingerprint(&exts.clone()));
        for change in 0..4 {
            let mut x = exts.clone();
            let e = &mut x[777];
            match change {
                0 => e.lblk += 1,
                1 => e.pblk += 1,
                2 => e.len += 1,
                _ => e.unwritten = !e.unwritten,
            }
            assert_ne!(f, fingerprint(&x), "change {change}");
        }
        assert_ne!(f, fingerprint(&exts[..999]));
        assert_ne!(fingerprint(&[]), fingerprint(&exts[..1]));
    }
}
