//! Round trip, and every kind of damage giving its own error, never a panic.

use super::codec::VERSION;
use super::*;
use crate::index::{LearnedIndex, Storage};
use crate::model::FitParams;
use crate::synth::allocator_like;

const UUID: [u8; 16] = *b"0123456789abcdef";

fn pack_of(sizes: &[usize]) -> Pack {
    let mut p = Pack::new(UUID, 4096, 8);
    for (i, &n) in sizes.iter().enumerate() {
        let exts = allocator_like(n, i as u64);
        let params = FitParams {
            max_window: 8,
            ..Default::default()
        };
        // Maps of at most PLAIN_MAX extents have no lines: an empty model.
        let model = LearnedIndex::with_storage(&exts, &params, Storage::Records)
            .unwrap()
            .model()
            .unwrap_or_default();
        p.insert(PackEntry {
            ino: 12 + i as u32,
            generation: 7 * i as u32,
            fingerprint: crate::fingerprint(&exts),
            model,
        });
    }
    p
}

/// Re-seals bytes after an edit, as a buggy writer would.
fn reseal(b: &mut [u8]) {
    let n = b.len() - 8;
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..n]);
    b[n..].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn round_trip() {
    let p = pack_of(&[0, 1, 2, 100, 5000]);
    assert!(p.entries.values().any(|e| e.model.segments.len() > 1));
    assert!(p.entries.values().any(|e| e.model.segments.is_empty()));
    let q = Pack::from_bytes(&p.to_bytes()).unwrap();
    assert_eq!(p, q);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.pack");
    p.write_file(&path).unwrap();
    let r = Pack::read_file(&path).unwrap();
    assert_eq!(r.entries, p.entries);
    assert_eq!(r.path.as_deref(), Some(path.as_path()));
    let missing = Pack::read_file(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, PackError::Io { .. }) && missing.to_string().contains("nope"));
}

#[test]
fn every_truncation_is_truncated() {
    let bytes = pack_of(&[1, 3, 40]).to_bytes();
    for len in 0..bytes.len() {
        match Pack::from_bytes(&bytes[..len]) {
            Err(FormatError::Truncated { len: l, need }) => {
                assert!(l == len as u64 && need > l, "len {len}")
            }
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
}

#[test]
fn every_flipped_byte_is_an_error() {
    let bytes = pack_of(&[1, 3, 40]).to_bytes();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            let err = Pack::from_bytes(&b).expect_err("a flipped byte must not load");
            match i {
                0..=7 => assert_eq!(err, FormatError::BadMagic, "byte {i}"),
                // Version: newer, or 0 / other versions caught by the checksum.
                8..=11 => assert!(
                    matches!(
                        err,
                        FormatError::NewerVersion { .. }
                            | FormatError::OlderVersion { .. }
                            | FormatError::Corrupt { .. }
                            | FormatError::Checksum { .. }
                    ),
                    "byte {i}: {err:?}"
                ),
                // The length field: longer than the file, or shorter.
                48..=55 => assert!(
                    matches!(
                        err,
                        FormatError::Truncated { .. } | FormatError::Corrupt { .. }
                    ),
                    "byte {i}: {err:?}"
                ),
                _ => assert!(
                    matches!(err, FormatError::Checksum { .. }),
                    "byte {i}: {err:?}"
                ),
            }
        }
    }
}

#[test]
fn wrong_image_and_future_version() {
    let p = pack_of(&[10]);
    assert!(p.check_image(UUID, 4096).is_ok());
    let mut other = UUID;
    other[3] ^= 1;
    let e = p.check_image(other, 4096).unwrap_err();
    assert!(matches!(e, PackError::WrongImage { .. }), "{e}");
    assert!(matches!(
        p.check_image(UUID, 1024),
        Err(PackError::WrongBlockSize {
            pack: 4096,
            image: 1024,
            ..
        })
    ));
    let mut b = p.to_bytes();
    b[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    assert_eq!(
        Pack::from_bytes(&b),
        Err(FormatError::NewerVersion {
            found: VERSION + 1,
            supported: VERSION
        })
    );
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    let p = pack_of(&[40]);
    let good = p.to_bytes();
    // Entry count (header byte 56) and the entry's segment count (entry byte 24) set huge.
    for at in [56usize, 64 + 24] {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut b);
        match Pack::from_bytes(&b) {
            Err(FormatError::Corrupt { offset, .. }) => assert_eq!(offset, at as u64),
            other => panic!("count at {at}: {other:?}"),
        }
    }
}

#[test]
fn checksummed_nonsense_is_corrupt() {
    let p = pack_of(&[12, 40]);
    let first = p.entries.values().next().map(|e| e.model.segments.len());
    assert_eq!(
        first,
        Some(1),
        "the edits below need a first model of one segment"
    );
    let good = p.to_bytes();
    let edits: [(usize, &[u8]); 4] = [
        (12, &[1, 0, 0, 0]),      // unknown flags
        (64 + 20, &[9]),          // unknown model kind
        (64 + 20, &[3]),          // kind says piecewise, one segment
        (64 + 28, &[1, 0, 0, 0]), // first segment does not start at extent 0
    ];
    for (at, bytes) in edits {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        reseal(&mut b);
        assert!(
            matches!(Pack::from_bytes(&b), Err(FormatError::Corrupt { .. })),
            "edit at {at}"
        );
    }
    // Two entries with the same inode.
    let mut b = good.clone();
    let second = 64 + 28 + 56; // the first entry has one segment
    b.copy_within(64..68, second);
    reseal(&mut b);
    let e = Pack::from_bytes(&b).unwrap_err();
    assert!(
        matches!(&e, FormatError::Corrupt { what, .. } if what.contains("duplicate")),
        "{e:?}"
    );
}

#[test]
fn packs_of_older_versions_are_refused_with_a_reason() {
    // Versions 1 and 2 held a model over every extent (and 2 a second one over the line
    // extents): this reader uses neither, and says to retrain.
    for version in [1u32, 2] {
        let mut b = pack_of(&[1, 3, 40, 5000]).to_bytes();
        b[8..12].copy_from_slice(&version.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            Pack::from_bytes(&b),
            Err(FormatError::OlderVersion {
                found: version,
                supported: VERSION
            })
        );
    }
}

#[test]
fn entry_flags_are_refused() {
    let good = pack_of(&[5000]).to_bytes();
    for flag in [1u8, 2, 0x80] {
        let mut b = good.clone();
        b[64 + 21] = flag;
        reseal(&mut b);
        assert!(
            matches!(
                Pack::from_bytes(&b),
                Err(FormatError::Corrupt { offset: 85, .. })
            ),
            "flag {flag:#x}"
        );
    }
}
