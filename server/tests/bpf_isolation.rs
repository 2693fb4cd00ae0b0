//! Files kept apart in the BPF tier's maps, run for real in the kernel (as root; skipped
//! otherwise, a failure under `IOMAP_REQUIRE_ALL`): files of both storages (records and packed)
//! and the small forms (plain array, one extent) are loaded into the one map set, then one
//! file's slots or header are made inconsistent or hostile (random bytes, indices into other
//! files' slots, ranges past the arrays' ends or wrapping past 2^32, counts of zero, huge
//! shifts), one corruption at a time. After each, every file is queried at many blocks: every
//! other file must answer exactly as before, and the corrupted file must answer its own exact
//! mapping or fall back, never with another file's blocks.

mod common;

use std::collections::BTreeMap;

use bpf::abi::{Answer, BeginIn};
use bpf::form::Entry;
use bpf::{BpfFile, BpfTier, Limits, Status};
use ext4::Extent;
use predictor::synth::Rng;
use predictor::{ExtentIndex, LearnedForm, LearnedIndex, Mapping, Query, Request, SortedIndex};

use common::{root_or_skip, synthetic};

const BS: u32 = 4096;

/// `n` extents of `len` blocks every `step` blocks from `lblk`, physically `pstep` apart from
/// `pblk`: an arithmetic run, which the compact form stores as a run piece.
fn run(lblk: u32, n: u32, step: u32, len: u32, pblk: u64, pstep: u64) -> Vec<Extent> {
    (0..n)
        .map(|i| Extent {
            lblk: lblk + i * step,
            pblk: pblk + pstep * u64::from(i),
            len,
            unwritten: step == 11,
        })
        .collect()
}

/// A map of lines and runs: random extents, then runs with random stretches between them.
fn mixed(seed: u64, base: u64) -> Vec<Extent> {
    let mut exts = synthetic(6_000, seed, 3, base);
    for (n, step) in [(300u32, 7u32), (64, 11), (200, 5)] {
        let at = exts.last().map_or(0, |e| e.lblk + e.len + 4);
        exts.extend(run(at, n, step, 4, base + 40_000_000, 9));
        let at = exts.last().map_or(0, |e| e.lblk + e.len + 2);
        exts.extend(synthetic(1_500, seed + u64::from(n), at, base));
    }
    exts
}

/// One loaded file: its extents (the reference answers), its index and its queries.
struct Loaded {
    ino: u64,
    size: u64,
    sorted: SortedIndex,
    /// The learned index, in the records storage or the packed one.
    index: LearnedIndex,
    queries: Vec<Query>,
    input: Vec<BeginIn>,
    /// Each query's mapping per the file's extents (`None`: the query is refused).
    want: Vec<Option<Mapping>>,
}

impl Loaded {
    fn new(ino: u64, exts: Vec<Extent>, records: bool, rng: &mut Rng) -> Self {
        let size = exts.last().map_or(0, |e| e.end() * u64::from(BS)) * 4 / 5;
        let index = if records {
            LearnedIndex::learned(&exts)
        } else {
            LearnedIndex::new(&exts)
        }
        .unwrap_or_else(|e| panic!("{e}"));
        // Every extent's edges (a sample of them for big maps) and random blocks, reads and
        // reports, before the first extent and past the last.
        let end = exts.last().map_or(0, |e| e.end()) + 5;
        let stride = (exts.len() / 400).max(1);
        let mut blocks: Vec<u64> = exts
            .iter()
            .step_by(stride)
            .flat_map(|e| {
                let (s, x) = (u64::from(e.lblk), e.end());
                [s.saturating_sub(1), s, x - 1, x]
            })
            .collect();
        blocks.extend([0, 1, 2]);
        blocks.extend((0..800).map(|_| rng.below(end)));
        let queries: Vec<Query> = blocks
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let pos = b * u64::from(BS) + rng.below(u64::from(BS));
                let count = 1 + rng.below(1 << 22);
                if i % 2 == 0 {
                    Query::read(ino as u32, pos, count)
                } else {
                    Query::report(ino as u32, pos, count)
                }
            })
            .collect();
        let sorted = SortedIndex::new(exts);
        let want = queries
            .iter()
            .map(|&q| {
                let r = Request::new(q, size, BS).ok()?;
                r.mapping(sorted.find(r.lblk()).found()?).ok()
            })
            .collect();
        Self {
            ino,
            size,
            sorted,
            index,
            input: queries.iter().map(|&q| BeginIn::of(q)).collect(),
            queries,
            want,
        }
    }

    fn file(&self) -> BpfFile<'_> {
        BpfFile {
            ino: self.ino,
            size: self.size,
            block_size: BS,
            index: &self.index,
        }
    }

    /// Whether physical block `p` lies in one of the file's extents.
    fn owns_block(&self, p: u64) -> bool {
        let exts = self.sorted.extents();
        let i = exts.partition_point(|e| e.pblk <= p);
        i > 0 && p < exts[i - 1].pblk + u64::from(exts[i - 1].len)
    }
}

/// What a corruption may do to the corrupted file's answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// It changed only what the lookup searches with (buckets, ranges, shifts): the file
    /// answers exactly or falls back.
    ExactOrFallback,
    /// It changed the file's own mapping data (pieces, packed bytes, records): the file may
    /// answer wrongly from its own slots, but never with another file's blocks.
    OwnOrFallback,
}

#[derive(Default)]
struct Counts {
    answers: u64,
    /// Answers checked, per form of the file asked.
    per_form: BTreeMap<&'static str, u64>,
    victim_exact: u64,
    victim_fallback: u64,
    victim_other: u64,
    /// Corruptions applied, per map.
    per_map: BTreeMap<&'static str, u64>,
    /// Fallback statuses of corrupted files, by name.
    statuses: BTreeMap<&'static str, u64>,
}

fn is_fallback(s: Status) -> bool {
    matches!(
        s,
        Status::NoModel | Status::BadQuery | Status::Missed | Status::MapError
    )
}

/// Queries every file; checks the answers with `victim` corrupted as `expect` says. The
/// victim's fallbacks.
fn check_all(
    tier: &BpfTier,
    files: &[Loaded],
    victim: Option<(u64, Expect)>,
    what: &str,
    counts: &mut Counts,
) -> u64 {
    let mut fallbacks = 0;
    for f in files {
        let answers: Vec<Answer> = tier
            .answer(&f.input, 0)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(answers.len(), f.queries.len());
        for ((q, want), a) in f.queries.iter().zip(&f.want).zip(&answers) {
            counts.answers += 1;
            *counts.per_form.entry(f.index.form().name()).or_default() += 1;
            let status = a.status();
            let exact = match want {
                Some(m) => a.mapping() == Some(*m),
                None => status == Status::BadQuery,
            };
            match victim {
                Some((v, expect)) if v == f.ino => {
                    if exact {
                        counts.victim_exact += 1;
                        continue;
                    }
                    if is_fallback(status) {
                        counts.victim_fallback += 1;
                        *counts.statuses.entry(status.name()).or_default() += 1;
                        fallbacks += 1;
                        continue;
                    }
                    assert_eq!(
                        expect,
                        Expect::OwnOrFallback,
                        "{what}: inode {} {q:?}: {a:?}, want {want:?}",
                        f.ino
                    );
                    assert_eq!(status, Status::Handled, "{what}: {q:?}: {a:?}");
                    counts.victim_other += 1;
                    if let Some(addr) = a.mapping().and_then(|m| m.addr) {
                        let p = addr / u64::from(BS);
                        for o in files.iter().filter(|o| o.ino != f.ino) {
                            assert!(
                                !o.owns_block(p),
                                "{what}: inode {} answered with inode {}'s block {p}: {q:?} {a:?}",
                                f.ino,
                                o.ino
                            );
                        }
                    }
                }
                _ => assert!(
                    exact,
                    "{what}: inode {} (not corrupted) {q:?}: {a:?}, want {want:?}",
                    f.ino
                ),
            }
        }
    }
    fallbacks
}

/// A file's slot ranges: (array, first, count).
fn ranges(c: &Entry) -> Vec<(&'static str, u32, u32)> {
    vec![
        ("WORDS", c.word_first, c.words),
        ("PIECES", c.piece_first, c.pieces),
        ("CBUCKETS", c.bucket_first, c.buckets),
    ]
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The corrupter: applies one corruption, checks every file, restores.
struct Bench<'a> {
    tier: &'a BpfTier,
    files: &'a [Loaded],
    counts: Counts,
    /// Capacity of each array.
    capacity: BTreeMap<&'static str, u32>,
}

impl Bench<'_> {
    fn header(&self, ino: u64) -> Entry {
        self.tier
            .test_hook_header(ino)
            .unwrap_or_else(|| panic!("inode {ino} has no header"))
    }

    /// Rewrites slots `(array, index, new bytes)` of `ino`'s form, checks, restores them.
    fn slots(
        &mut self,
        ino: u64,
        what: &str,
        expect: Expect,
        writes: &[(&'static str, usize, Vec<u8>)],
    ) -> u64 {
        let saved: Vec<Vec<u8>> = writes
            .iter()
            .map(|(a, i, _)| {
                self.tier
                    .test_hook_slot(a, *i)
                    .unwrap_or_else(|| panic!("{what}: no slot {a}[{i}]"))
            })
            .collect();
        for (a, i, b) in writes {
            assert!(self.tier.test_hook_set_slot(a, *i, b), "{what}: {a}[{i}]");
        }
        if let Some((a, _, _)) = writes.first() {
            *self.counts.per_map.entry(a).or_default() += 1;
        }
        let fallbacks = check_all(
            self.tier,
            self.files,
            Some((ino, expect)),
            what,
            &mut self.counts,
        );
        for ((a, i, _), b) in writes.iter().zip(&saved) {
            assert!(self.tier.test_hook_set_slot(a, *i, b), "{what}: restoring");
        }
        fallbacks
    }

    /// Publishes `entry` as `ino`'s header, checks, restores the header.
    fn header_as(&mut self, ino: u64, what: &str, entry: Entry) -> u64 {
        let saved = self.header(ino);
        self.tier
            .test_hook_set_header(ino, entry)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        *self.counts.per_map.entry("CFILES").or_default() += 1;
        let fallbacks = check_all(
            self.tier,
            self.files,
            Some((ino, Expect::ExactOrFallback)),
            what,
            &mut self.counts,
        );
        self.tier
            .test_hook_set_header(ino, saved)
            .unwrap_or_else(|e| panic!("{what}: restoring: {e}"));
        fallbacks
    }

    /// `k` random slots of each of `ino`'s ranges filled with random bytes.
    fn random_bytes(&mut self, ino: u64, k: usize, rng: &mut Rng) {
        for (array, first, count) in ranges(&self.header(ino)) {
            if count == 0 {
                continue;
            }
            let expect = match array {
                "CBUCKETS" => Expect::ExactOrFallback,
                _ => Expect::OwnOrFallback,
            };
            for round in 0..3 {
                let writes: Vec<_> = (0..k)
                    .map(|_| {
                        let i = first as usize + rng.below(u64::from(count)) as usize;
                        let len = self.tier.test_hook_slot(array, i).map_or(0, |b| b.len());
                        let bytes = (0..len).map(|_| rng.below(256) as u8).collect();
                        (array, i, bytes)
                    })
                    .collect();
                let what = format!("inode {ino}: random bytes in {k} of its {array} ({round})");
                self.slots(ino, &what, expect, &writes);
            }
        }
    }

    /// Indices in `ino`'s buckets and pieces pointing past its own slots (into the
    /// next file's, or past the array), and zero or huge values. Each must fall back where it
    /// is read, never read the other slots.
    fn hostile_indices(&mut self, ino: u64) {
        let header = self.header(ino);
        let c = header;
        if c.form == bpf::abi::FORM_PACKED {
            {
                // Buckets naming pieces past the file's.
                for idx in [c.pieces, c.pieces + 1, c.pieces + 100, u32::MAX] {
                    let writes: Vec<_> = (c.bucket_first..c.bucket_first + c.buckets)
                        .map(|b| {
                            let mut bytes = vec![0u8; 8];
                            put_u32(&mut bytes, 0, idx);
                            ("CBUCKETS", b as usize, bytes)
                        })
                        .collect();
                    let what = format!("inode {ino}: every bucket names piece {idx}");
                    let n = self.slots(ino, &what, Expect::ExactOrFallback, &writes);
                    assert!(n > 0, "{what}: never fell back");
                }
                // Pieces' keys moved: a run or line asked for a block outside its keys.
                for p in c.piece_first..c.piece_first + c.pieces {
                    let mut bytes = self.tier.test_hook_slot("PIECES", p as usize).unwrap();
                    let (first, end) = (u32_at(&bytes, 0), u32_at(&bytes, 4));
                    let kind = u32_at(&bytes, 8);
                    for (nf, ne) in [
                        (first.saturating_add(3), end),
                        (first, first.saturating_add(1)),
                    ] {
                        put_u32(&mut bytes, 0, nf);
                        put_u32(&mut bytes, 4, ne);
                        let what =
                            format!("inode {ino}: PIECES[{p}] (kind {kind}) keys {nf}..{ne}");
                        self.slots(
                            ino,
                            &what,
                            Expect::OwnOrFallback,
                            &[("PIECES", p as usize, bytes.clone())],
                        );
                    }
                }
                // Line pieces' blocks moved or grown: a block read as one span of WORDS values
                // (one lookup, two across a value's end) starting at the file's last bytes or
                // past them, or longer than a value. What the span cannot hold falls back.
                let off_at = std::mem::offset_of!(bpf::abi::Piece, off);
                let block_at = std::mem::offset_of!(bpf::abi::Piece, block);
                let value = (bpf::abi::WORDS_VALUE * 8) as u32;
                let bytes_end = c.words.saturating_mul(8);
                for p in c.piece_first..c.piece_first + c.pieces {
                    let saved = self.tier.test_hook_slot("PIECES", p as usize).unwrap();
                    if u32_at(&saved, 8) != bpf::abi::PIECE_LINE {
                        continue;
                    }
                    let (off, block) = (u32_at(&saved, off_at), u32_at(&saved, block_at));
                    for (nf, nb, must_fall_back) in [
                        (off, value - 8, false),
                        (off, value - 7, true),
                        (off, value, true),
                        (off, u32::MAX, true),
                        (0, value - 8, false),
                        (bytes_end.saturating_sub(9), block, false),
                        (bytes_end.saturating_sub(1), block, true),
                        (bytes_end, block, true),
                        (u32::MAX, block, true),
                    ] {
                        let mut bytes = saved.clone();
                        put_u32(&mut bytes, off_at, nf);
                        put_u32(&mut bytes, block_at, nb);
                        let what = format!("inode {ino}: PIECES[{p}] blocks at {nf} of {nb} bytes");
                        let n = self.slots(
                            ino,
                            &what,
                            Expect::OwnOrFallback,
                            &[("PIECES", p as usize, bytes)],
                        );
                        if must_fall_back {
                            assert!(n > 0, "{what}: never fell back");
                        }
                    }
                }
                self.hostile_records(ino, &c);
            }
        }
    }

    /// Records line pieces moved, grown or widened: the window's keys (and the one after them)
    /// are read as one span of WORDS values, and the answer's record as another, starting at the
    /// file's last bytes or past them, past the piece's keys or records, or a window wider than
    /// the program counts. What a span cannot hold, and a window over the bound, fall back.
    fn hostile_records(&mut self, ino: u64, c: &Entry) {
        let off_at = std::mem::offset_of!(bpf::abi::Piece, off);
        let recs_at = std::mem::offset_of!(bpf::abi::Piece, block);
        let count_at = std::mem::offset_of!(bpf::abi::Piece, count);
        let e_lo_at = std::mem::offset_of!(bpf::abi::Piece, e_lo);
        let e_hi_at = std::mem::offset_of!(bpf::abi::Piece, e_hi);
        let bytes_end = c.words.saturating_mul(8);
        let mut pieces = 0;
        for p in c.piece_first..c.piece_first + c.pieces {
            let saved = self.tier.test_hook_slot("PIECES", p as usize).unwrap();
            if u32_at(&saved, 8) != bpf::abi::PIECE_RECORDS {
                continue;
            }
            pieces += 1;
            let (off, count) = (u32_at(&saved, off_at), u32_at(&saved, count_at));
            let recs = u32_at(&saved, recs_at);
            // (keys at, records at, count, e_lo, e_hi, expect, must fall back)
            let (e_lo, e_hi) = (u32_at(&saved, e_lo_at), u32_at(&saved, e_hi_at));
            let own = Expect::OwnOrFallback;
            let exact = Expect::ExactOrFallback;
            for (no, nr, nc, nl, nh, expect, must_fall_back) in [
                (off, recs, count, 15, 15, exact, false),
                (off, recs, count, 16, 15, exact, true),
                (off, recs, count, u32::MAX, u32::MAX, exact, true),
                (off, recs, count, u32::MAX, 0, exact, true),
                (
                    off,
                    recs,
                    count.saturating_add(1000),
                    e_lo,
                    e_hi,
                    own,
                    false,
                ),
                (off, recs, u32::MAX, e_lo, e_hi, own, false),
                (0, recs, count, e_lo, e_hi, own, false),
                (
                    bytes_end.saturating_sub(24),
                    recs,
                    count,
                    e_lo,
                    e_hi,
                    own,
                    true,
                ),
                (
                    bytes_end.saturating_sub(8),
                    recs,
                    count,
                    e_lo,
                    e_hi,
                    own,
                    true,
                ),
                (bytes_end, recs, count, e_lo, e_hi, own, true),
                (u32::MAX - 15, recs, count, e_lo, e_hi, own, true),
                // The records moved: onto the keys, to the file's last bytes, past them.
                (off, off, count, e_lo, e_hi, own, false),
                (off, 0, count, e_lo, e_hi, own, false),
                (
                    off,
                    bytes_end.saturating_sub(8),
                    count,
                    e_lo,
                    e_hi,
                    own,
                    true,
                ),
                (off, bytes_end, count, e_lo, e_hi, own, true),
                (off, u32::MAX - 7, count, e_lo, e_hi, own, true),
            ] {
                let mut bytes = saved.clone();
                put_u32(&mut bytes, off_at, no);
                put_u32(&mut bytes, recs_at, nr);
                put_u32(&mut bytes, count_at, nc);
                put_u32(&mut bytes, e_lo_at, nl);
                put_u32(&mut bytes, e_hi_at, nh);
                let what = format!(
                    "inode {ino}: records PIECES[{p}] keys at {no}, records at {nr}, {nc} \
                     records, window {nl}+{nh}"
                );
                let n = self.slots(ino, &what, expect, &[("PIECES", p as usize, bytes)]);
                if must_fall_back {
                    assert!(n > 0, "{what}: never fell back");
                }
                *self.counts.per_map.entry("PIECES(records)").or_default() += 1;
            }
        }
        let records = self
            .files
            .iter()
            .any(|f| f.ino == ino && f.index.form() == predictor::LearnedForm::Records);
        assert_eq!(records, pieces > 0, "inode {ino}: {pieces} records pieces");
    }

    /// `ino`'s header with ranges past the arrays' ends or wrapping past 2^32, counts of zero,
    /// huge shifts, and index-only fields naming other files' slots.
    fn hostile_headers(&mut self, ino: u64, other: Option<Entry>) {
        let header = self.header(ino);
        let mut entries: Vec<(String, Entry)> = Vec::new();
        {
            {
                let c = header;
                let cap = |a| self.capacity[a];
                let mut push = |what: &str, g: bpf::abi::CFile| entries.push((what.to_string(), g));
                push("words 0", bpf::abi::CFile { words: 0, ..c });
                push("count 0", bpf::abi::CFile { count: 0, ..c });
                push(
                    "count huge",
                    bpf::abi::CFile {
                        count: u32::MAX,
                        ..c
                    },
                );
                push("form 7", bpf::abi::CFile { form: 7, ..c });
                for first in [u32::MAX, u32::MAX - c.words / 2, cap("WORDS")] {
                    push(
                        &format!("word_first {first}"),
                        bpf::abi::CFile {
                            word_first: first,
                            ..c
                        },
                    );
                }
                if c.form == bpf::abi::FORM_PACKED {
                    push("pieces 0", bpf::abi::CFile { pieces: 0, ..c });
                    push("buckets 0", bpf::abi::CFile { buckets: 0, ..c });
                    for first in [u32::MAX, u32::MAX - c.pieces / 2, cap("PIECES")] {
                        push(
                            &format!("piece_first {first}"),
                            bpf::abi::CFile {
                                piece_first: first,
                                ..c
                            },
                        );
                    }
                    for (first, n) in [
                        (u32::MAX, 4),
                        (u32::MAX - 2, 8),
                        (cap("CBUCKETS"), 4),
                        (0, u32::MAX),
                    ] {
                        push(
                            &format!("buckets {first}+{n}"),
                            bpf::abi::CFile {
                                bucket_first: first,
                                buckets: n,
                                ..c
                            },
                        );
                    }
                    for shift in [31, 32, 63, 64, u32::MAX, 0] {
                        push(&format!("shift {shift}"), bpf::abi::CFile { shift, ..c });
                    }
                    for key in [0, c.first_key + 7, c.first_key + 1000, u32::MAX] {
                        push(
                            &format!("first_key {key}"),
                            bpf::abi::CFile {
                                first_key: key,
                                ..c
                            },
                        );
                    }
                    if let Some(o) = other {
                        push(
                            "another file's buckets",
                            bpf::abi::CFile {
                                bucket_first: o.bucket_first,
                                buckets: o.buckets,
                                shift: o.shift,
                                ..c
                            },
                        );
                    }
                }
            }
        }
        for (what, e) in entries {
            self.header_as(ino, &format!("inode {ino}: header with {what}"), e);
        }
    }
}

#[test]
fn a_file_with_corrupt_slots_or_header_never_answers_with_another_files_data() {
    if !root_or_skip("a_file_with_corrupt_slots_or_header_never_answers_with_another_files_data") {
        return;
    }
    let mut rng = Rng::new(41);
    // Physically apart: file k's blocks from (k + 1) * 2^36.
    let base = |k: u64| (k + 1) << 36;
    let files = vec![
        Loaded::new(1, synthetic(20_000, 1, 10, base(1)), true, &mut rng),
        Loaded::new(2, synthetic(40, 2, 0, base(2)), true, &mut rng),
        Loaded::new(3, mixed(3, base(3)), false, &mut rng),
        Loaded::new(4, synthetic(6, 4, 2, base(4)), false, &mut rng),
        Loaded::new(5, synthetic(1, 5, 9, base(5)), false, &mut rng),
        Loaded::new(6, mixed(6, base(6)), false, &mut rng),
        Loaded::new(7, mixed(7, base(7)), true, &mut rng),
    ];
    let forms: Vec<_> = files.iter().map(|f| f.index.form()).collect();
    assert_eq!(
        forms,
        [
            LearnedForm::Records,
            LearnedForm::Records,
            LearnedForm::Packed,
            LearnedForm::Plain,
            LearnedForm::One,
            LearnedForm::Packed,
            LearnedForm::Records,
        ]
    );
    for f in &files {
        if f.ino != 2 && matches!(f.index.form(), LearnedForm::Packed | LearnedForm::Records) {
            let shape = f.index.shape();
            assert!(shape.lines >= 3, "inode {}: {shape:?}", f.ino);
            assert!(f.ino == 1 || shape.runs >= 3, "inode {}: {shape:?}", f.ino);
        }
    }
    let bpf_files: Vec<BpfFile<'_>> = files.iter().map(Loaded::file).collect();
    let tier = BpfTier::load(&bpf_files, Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    let r = tier.report();
    assert_eq!(r.files, files.len(), "{r:?}");
    assert_eq!(
        (r.record_files, r.packed_files, r.plain_files),
        (3, 2, 2),
        "{r:?}"
    );
    // The big records file has a directory of several buckets (a lookup past its bucket's piece
    // searches the pieces).
    let h = tier
        .test_hook_header(1)
        .unwrap_or_else(|| panic!("inode 1: no header"));
    assert!(h.form == bpf::abi::FORM_PACKED && h.buckets > 1, "{h:?}");
    let capacity = tier.room().into_iter().map(|(n, _, c)| (n, c)).collect();
    let mut bench = Bench {
        tier: &tier,
        files: &files,
        counts: Counts::default(),
        capacity,
    };
    check_all(&tier, &files, None, "before", &mut bench.counts);

    let inos: Vec<u64> = files.iter().map(|f| f.ino).collect();
    for &ino in &inos {
        bench.random_bytes(ino, 1, &mut rng);
        bench.random_bytes(ino, 8, &mut rng);
        bench.hostile_indices(ino);
        // Another file with pieces, whose index-only slots the header may name.
        let other = inos
            .iter()
            .filter(|&&o| o != ino)
            .map(|&o| bench.header(o))
            .find(|o| o.form == bpf::abi::FORM_PACKED);
        bench.hostile_headers(ino, other);
    }
    // Everything restored: every file answers exactly again.
    check_all(&tier, &files, None, "after", &mut bench.counts);

    let c = &bench.counts;
    eprintln!(
        "answers {}; corrupted files: {} exact, {} fallbacks {:?}, {} own wrong answers; \
         corruptions per map {:?}; answers per form {:?}",
        c.answers,
        c.victim_exact,
        c.victim_fallback,
        c.statuses,
        c.victim_other,
        c.per_map,
        c.per_form
    );
    assert!(c.answers > 1_000_000, "{}", c.answers);
    for form in ["records", "packed", "plain-array", "one-extent"] {
        let n = c.per_form.get(form).copied().unwrap_or(0);
        assert!(n > 50_000, "{form}: only {n} answers checked");
    }
    for map in ["CFILES", "PIECES", "PIECES(records)", "CBUCKETS", "WORDS"] {
        let n = c.per_map.get(map).copied().unwrap_or(0);
        assert!(n >= 6, "{map}: only {n} corruptions");
    }
    assert!(c.victim_fallback > 10_000, "{}", c.victim_fallback);
    assert!(c.statuses.get("map_error").copied().unwrap_or(0) > 1_000);
}
