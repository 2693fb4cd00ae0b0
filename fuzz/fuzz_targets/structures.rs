//! Every lookup structure over a fuzzed extent map, each answer checked against the sorted
//! array: the learned index in both storages (fitted, and again from its own model with fuzzed
//! lines, as a hostile or broken pack would give it), both iext layouts, the B-tree,
//! the range map and the per-file choice. A structure built from a true model must answer
//! exactly; one built from fuzzed lines may miss, never answer wrong. The chosen structure
//! holds at most the kernel tree's bytes.
#![no_main]

use ext4::Extent;
use libfuzzer_sys::fuzz_target;
use predictor::index::choose::{boxed_bytes, choose_index};
use predictor::index::{check_extents, XfsIextIndex};
use predictor::{
    BTreeIndex, ExtentIndex, FuseIextIndex, LearnedIndex, Lookup, RangeMapIndex, SortedIndex,
    Storage, Structure,
};

/// Bytes per fuzzed extent: gap before it (u16, scaled by a per-map shift), length (u16),
/// physical start (u32, scaled), flags (bit 0 unwritten, bit 1 physical adjacent to the
/// previous extent).
const REC: usize = 9;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// The map the bytes describe (valid by construction; cut at the end of the block space).
fn map(data: &[u8]) -> (Vec<Extent>, &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let gap_shift = u32::from(head & 0x0f);
    let phys_shift = u32::from(head >> 4);
    let n = (rest.len() / REC).min(4096);
    let (recs, tail) = rest.split_at(n * REC);
    let mut out: Vec<Extent> = Vec::with_capacity(n);
    let mut at = 0u64;
    for r in recs.chunks_exact(REC) {
        let gap = u64::from(u16_at(r, 0)) << gap_shift;
        let len = u32::from(u16_at(r, 2)).clamp(1, 32768);
        let flags = r[8];
        let lblk = if out.is_empty() { gap } else { at + gap };
        if lblk + u64::from(len) > ext4::MAX_LBLK {
            break;
        }
        let pblk = match out.last() {
            Some(p) if flags & 2 != 0 => p.pblk + u64::from(p.len),
            _ => u64::from(u32::from_le_bytes([r[4], r[5], r[6], r[7]])) << phys_shift,
        };
        out.push(Extent {
            lblk: lblk as u32,
            pblk,
            len,
            unwritten: flags & 1 != 0,
        });
        at = lblk + u64::from(len);
    }
    (out, tail)
}

fn blocks(exts: &[Extent], tail: &[u8]) -> Vec<u32> {
    let mut q: Vec<u32> = tail
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    q.extend([0, 1, u32::MAX]);
    for e in exts.iter().take(512) {
        q.extend([e.lblk, e.lblk.wrapping_sub(1), (e.end() - 1) as u32]);
        q.push(u32::try_from(e.end()).unwrap_or(u32::MAX));
    }
    q
}

fuzz_target!(|data: &[u8]| {
    let (exts, tail) = map(data);
    check_extents(&exts).expect("the decoder makes valid maps");
    let queries = blocks(&exts, tail);
    let reference = SortedIndex::new(exts.clone());

    let mut exact: Vec<(&str, Box<dyn ExtentIndex>)> = vec![
        (Structure::Btree.name(), Box::new(BTreeIndex::new(&exts))),
        (
            Structure::RangeMap.name(),
            Box::new(RangeMapIndex::new(&exts)),
        ),
        (
            Structure::Iext32.name(),
            Box::new(FuseIextIndex::new(&exts).expect("iext32 holds any map")),
        ),
    ];
    let tree = XfsIextIndex::new(&exts).ok();
    if let Some(t) = &tree {
        exact.push((Structure::Iext16.name(), Box::new(t.clone())));
    }
    let compact = LearnedIndex::new(&exts).expect("compact builds any map");
    let model = compact.model();
    exact.push((Structure::Compact.name(), Box::new(compact)));
    exact.push((
        Structure::Learned.name(),
        Box::new(LearnedIndex::learned(&exts).expect("learned fits any map")),
    ));
    let (chosen, index) = choose_index(&exts).expect("a choice for any map");
    if let Some(t) = &tree {
        assert!(chosen.chosen.bytes <= boxed_bytes(t), "{chosen:?}");
    }
    exact.push(("chosen", Box::new(index)));

    // Both storages from the packed form's lines, then from fuzzed ones.
    let mut from_lines: Vec<Box<dyn ExtentIndex>> = Vec::new();
    let storages = [Storage::Packed, Storage::Records];
    if let Some(mut m) = model {
        for storage in storages {
            if let Ok(c) = LearnedIndex::with_model(&exts, &m, storage) {
                exact.push(("learned index (its model)", Box::new(c)));
            }
        }
        for (k, s) in m.segments.iter_mut().enumerate() {
            let b = |i: usize| u64::from(*tail.get((k * 4 + i) % tail.len().max(1)).unwrap_or(&0));
            s.fixed.slope ^= b(0) << (b(1) % 40);
            s.fixed.intercept = s.fixed.intercept.wrapping_add((b(2) as i64 - 128) << 12);
            s.fixed.e_lo = s.fixed.e_lo.wrapping_add((b(3) % 4) as u32);
        }
        for storage in storages {
            if let Ok(c) = LearnedIndex::with_model(&exts, &m, storage) {
                from_lines.push(Box::new(c));
            }
        }
    }

    for &q in &queries {
        let want = reference.find(q);
        for (name, s) in &exact {
            assert_eq!(s.find(q), want, "{name} at block {q}");
        }
        for s in &from_lines {
            let got = s.find(q);
            assert!(
                got == want || got == Lookup::Missed,
                "learned index with fuzzed lines at block {q}: {got:?}, want {want:?}"
            );
        }
    }
});
