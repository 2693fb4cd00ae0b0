//! ext4's CRC32C as the kernel computes it (`ext4_chksum`): the raw CRC update from a seed,
//! without the final inversion that the usual crc32c API applies.

/// `crc32c_le(seed, data)` as the kernel and e2fsprogs compute metadata checksums.
pub(crate) fn ext4_crc(seed: u32, data: &[u8]) -> u32 {
    // crc32c_append(c, d) = !raw(!c, d), so raw(seed, d) = !crc32c_append(!seed, d).
    !crc32c::crc32c_append(!seed, data)
}

/// Per-inode checksum seed: the filesystem seed extended by the inode number and generation.
pub(crate) fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let s = ext4_crc(fs_seed, &ino.to_le_bytes());
    ext4_crc(s, &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_standard_crc32c_with_inversions() {
        // Standard CRC32C of "123456789" is 0xE3069283.
        assert_eq!(!ext4_crc(!0, b"123456789"), 0xE306_9283);
    }
}
