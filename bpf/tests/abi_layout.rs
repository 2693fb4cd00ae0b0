//! The BPF program's record layout, field by field. Every struct the program shares with the
//! loader (`bpf/program/iomap_begin.h`) is read back from the BTF that clang wrote into the
//! committed object, and each member's name and byte offset is compared with the Rust mirror in
//! `bpf::abi`: two swapped fields of the same size, which the size assertions in
//! `abi.rs` cannot see, fail here. No root or kernel needed: the object is parsed, not loaded.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use bpf::abi;

/// The object the server embeds (`scripts/build-bpf.sh` builds it; CI checks it is the build
/// of its source).
const OBJECT: &[u8] = include_bytes!("../program/iomap_begin.bpf.o");

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// The bytes of ELF64 little-endian section `name`.
fn section<'a>(elf: &'a [u8], name: &str) -> &'a [u8] {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not ELF64 little-endian");
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = usize::from(u16_at(elf, 0x3a));
    let shnum = usize::from(u16_at(elf, 0x3c));
    let shstrndx = usize::from(u16_at(elf, 0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let bytes = |i: usize| {
        let h = header(i);
        let (off, len) = (u64_at(elf, h + 24) as usize, u64_at(elf, h + 32) as usize);
        &elf[off..off + len]
    };
    let names = bytes(shstrndx);
    (0..shnum)
        .find(|&i| {
            let at = u32_at(elf, header(i)) as usize;
            names[at..].split(|&c| c == 0).next() == Some(name.as_bytes())
        })
        .map(bytes)
        .unwrap_or_else(|| panic!("no {name} section in the BPF object"))
}

/// Every struct of a BTF blob: name -> (size, members as (name, byte offset)).
fn btf_structs(btf: &[u8]) -> HashMap<String, (u32, Vec<(String, u32)>)> {
    assert_eq!(u16_at(btf, 0), 0xeb9f, "BTF magic");
    let hdr_len = u32_at(btf, 4) as usize;
    let (type_off, type_len) = (u32_at(btf, 8) as usize, u32_at(btf, 12) as usize);
    let str_off = u32_at(btf, 16) as usize;
    let strings = &btf[hdr_len + str_off..];
    let name = |at: u32| {
        let s = strings[at as usize..]
            .split(|&c| c == 0)
            .next()
            .unwrap_or(&[]);
        String::from_utf8_lossy(s).into_owned()
    };
    let types = &btf[hdr_len + type_off..hdr_len + type_off + type_len];
    let mut out = HashMap::new();
    let mut at = 0;
    while at < types.len() {
        let (name_off, info, size) = (
            u32_at(types, at),
            u32_at(types, at + 4),
            u32_at(types, at + 8),
        );
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        at += 12;
        // Bytes after the common header, by kind (linux/btf.h).
        let extra = match kind {
            1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
            3 => 12,              // ARRAY
            4 | 5 => 12 * vlen,   // STRUCT, UNION
            6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
            15 | 19 => 12 * vlen, // DATASEC, ENUM64
            2 | 7..=12 | 16 | 18 => 0,
            other => panic!("unknown BTF kind {other}"),
        };
        if kind == 4 {
            let bitfields = info >> 31 == 1;
            let members = (0..vlen)
                .map(|i| {
                    let m = at + 12 * i;
                    let bits = u32_at(types, m + 8);
                    let bits = if bitfields { bits & 0x00ff_ffff } else { bits };
                    assert_eq!(bits % 8, 0, "a bit field in a shared struct");
                    (name(u32_at(types, m)), bits / 8)
                })
                .collect();
            out.insert(name(name_off), (size, members));
        }
        at += extra;
    }
    out
}

/// One shared struct: its C name, the Rust mirror's size and (C member name, Rust offset).
/// `struct iomap_bpf_run` is not here: the program only casts the test-run packet to it, so
/// clang emits no BTF for it, and the loader writes that packet byte by byte (`Run::packet`).
/// Nor is `struct iomap_bpf_extent`: the program reads records through spans of WORDS, at the
/// offsets `records_find` and `plain_find` name (lblk 0, len 4, pblk 8); the test below holds
/// the Rust record and the userspace index's record bytes to those offsets.
type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

fn layouts() -> Vec<Layout> {
    use abi::{Answer, BeginIn, CBucket, CFile, Piece, Words};
    vec![
        (
            "iomap_bpf_cfile",
            size_of::<CFile>(),
            vec![
                ("size", offset_of!(CFile, size)),
                ("word_first", offset_of!(CFile, word_first)),
                ("words", offset_of!(CFile, words)),
                ("blkbits", offset_of!(CFile, blkbits)),
                ("form", offset_of!(CFile, form)),
                ("count", offset_of!(CFile, count)),
                ("first_key", offset_of!(CFile, first_key)),
                ("shift", offset_of!(CFile, shift)),
                ("bucket_first", offset_of!(CFile, bucket_first)),
                ("buckets", offset_of!(CFile, buckets)),
                ("piece_first", offset_of!(CFile, piece_first)),
                ("pieces", offset_of!(CFile, pieces)),
                ("pad", offset_of!(CFile, pad)),
            ],
        ),
        (
            "iomap_bpf_piece",
            size_of::<Piece>(),
            vec![
                ("first_key", offset_of!(Piece, first_key)),
                ("end_key", offset_of!(Piece, end_key)),
                ("kind", offset_of!(Piece, kind)),
                ("count", offset_of!(Piece, count)),
                ("slope", offset_of!(Piece, slope)),
                ("intercept", offset_of!(Piece, intercept)),
                ("e_lo", offset_of!(Piece, e_lo)),
                ("e_hi", offset_of!(Piece, e_hi)),
                ("off", offset_of!(Piece, off)),
                ("block", offset_of!(Piece, block)),
                ("recs", offset_of!(Piece, recs)),
                ("key_bytes", offset_of!(Piece, key_bytes)),
                ("wl", offset_of!(Piece, wl)),
                ("wd", offset_of!(Piece, wd)),
                ("wr", offset_of!(Piece, wr)),
                ("unw", offset_of!(Piece, unw)),
                ("phys", offset_of!(Piece, phys)),
                ("step", offset_of!(Piece, step)),
                ("len", offset_of!(Piece, len)),
                ("pblk", offset_of!(Piece, pblk)),
                ("pstep", offset_of!(Piece, pstep)),
            ],
        ),
        (
            "iomap_bpf_cbucket",
            size_of::<CBucket>(),
            vec![
                ("piece", offset_of!(CBucket, piece)),
                ("pad", offset_of!(CBucket, pad)),
            ],
        ),
        (
            "iomap_bpf_words",
            size_of::<Words>(),
            vec![("w", offset_of!(Words, w))],
        ),
        (
            "iomap_bpf_query",
            size_of::<BeginIn>(),
            vec![
                ("opflags", offset_of!(BeginIn, opflags)),
                ("reserved", offset_of!(BeginIn, reserved)),
                ("ino", offset_of!(BeginIn, ino)),
                ("pos", offset_of!(BeginIn, pos)),
                ("count", offset_of!(BeginIn, count)),
            ],
        ),
        (
            "iomap_bpf_answer",
            size_of::<Answer>(),
            vec![
                ("offset", offset_of!(Answer, offset)),
                ("length", offset_of!(Answer, length)),
                ("addr", offset_of!(Answer, addr)),
                ("type", offset_of!(Answer, kind)),
                ("status", offset_of!(Answer, status)),
                ("probes", offset_of!(Answer, probes)),
            ],
        ),
    ]
}

#[test]
fn every_shared_struct_matches_the_compiled_program_field_by_field() {
    let structs = btf_structs(section(OBJECT, ".BTF"));
    for (c_name, rust_size, members) in layouts() {
        let Some((size, theirs)) = structs.get(c_name) else {
            panic!("struct {c_name} is not in the object's BTF");
        };
        assert_eq!(*size as usize, rust_size, "struct {c_name}: size");
        let ours: Vec<(String, u32)> = members
            .iter()
            .map(|&(n, off)| (n.to_string(), off as u32))
            .collect();
        assert_eq!(
            theirs, &ours,
            "struct {c_name}: members (name, byte offset)"
        );
    }
}

/// A record as the program reads it: a plain array's (lblk at byte 0, len at 4, pblk with the
/// unwritten flag at 8, little-endian) as `abi::Extent` lays it out; a records line piece's as
/// its bytes hold it, the bytes the loader copies into WORDS (lblk in the key column at `off`
/// + 4 j, len at `block` + 12 j and pblk with the flag 4 bytes after it).
#[test]
fn a_record_is_the_programs_bytes_in_both_the_mirror_and_the_index_bytes() {
    use std::mem::offset_of;
    assert_eq!(size_of::<abi::Extent>(), abi::RECORD);
    assert_eq!(offset_of!(abi::Extent, lblk), 0);
    assert_eq!(offset_of!(abi::Extent, len), 4);
    assert_eq!(offset_of!(abi::Extent, pblk), 8);
    // A map long and regular enough for line pieces (no runs: the steps vary).
    let exts: Vec<ext4::Extent> = (0..2000u32)
        .map(|i| ext4::Extent {
            lblk: i * 10 + (i % 7),
            len: 3 + i % 2,
            pblk: 1_000_000 + u64::from(i) * 37,
            unwritten: i % 5 == 0,
        })
        .collect();
    let ix = predictor::LearnedIndex::learned(&exts).expect("a learned index");
    let predictor::LearnedLayout::Packed(p) = ix.layout() else {
        panic!("2000 extents in the records storage have pieces");
    };
    let mut checked = 0;
    for piece in &p.pieces {
        let predictor::PieceBody::Records(r) = piece.body else {
            continue;
        };
        for k in 0..r.count as usize {
            let key = u32_at(p.bytes, r.keys as usize + 4 * k);
            let at = r.recs as usize + k * abi::KEYED_RECORD;
            let rec = &p.bytes[at..at + abi::KEYED_RECORD];
            let e = exts
                .iter()
                .find(|e| e.lblk == key)
                .expect("a key is an extent's start");
            assert_eq!(u32_at(rec, 0), e.len);
            let flag = if e.unwritten { abi::UNWRITTEN } else { 0 };
            assert_eq!(u64_at(rec, 4), e.pblk | flag);
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} records checked");
}
