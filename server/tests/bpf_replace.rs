//! The BPF tier under change, run for real in the kernel (as root; skipped otherwise, a failure
//! under `IOMAP_REQUIRE_ALL`): a file's form is replaced while lookups run, and every answer
//! must be exactly the old form's or the new form's, never a mix and never another file's;
//! a file's map replayed change by change (map, unmap, collapse, insert) must answer exactly
//! what the map says after every change.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bpf::abi::{Answer, BeginIn};
use bpf::{BpfFile, BpfTier, Limits, Replaced, Skip, Spare, Status};
use ext4::{BlockMap, Extent};
use livefs::trace::{Change, FileMap};
use livefs::BlockExtent;
use predictor::index::extents_of;
use predictor::synth::Rng;
use predictor::{LearnedForm, LearnedIndex, Lookup, Mapping, Query, Request};

use common::{root_or_skip, synthetic};

const BS: u32 = 4096;

/// What the program must answer to `q` on a file of `size` bytes whose blocks map as `probe`
/// says: the mapping, or `None` where the query is refused (count 0, a read past EOF).
fn expected(q: Query, size: u64, probe: impl Fn(u32) -> Lookup) -> Option<Mapping> {
    let r = Request::new(q, size, BS).ok()?;
    r.mapping(probe(r.lblk()).found()?).ok()
}

/// Queries of inode `ino` at random blocks below `end`, reads and reports, random offsets and
/// counts.
fn queries(ino: u32, end: u64, n: usize, rng: &mut Rng) -> Vec<Query> {
    (0..n)
        .map(|i| {
            let pos = rng.below(end) * u64::from(BS) + rng.below(u64::from(BS));
            let count = 1 + rng.below(1 << 22);
            if i % 2 == 0 {
                Query::read(ino, pos, count)
            } else {
                Query::report(ino, pos, count)
            }
        })
        .collect()
}

/// One form of the flipped file: its map in one storage (records or packed), and its size.
struct Form {
    size: u64,
    index: LearnedIndex,
}

impl Form {
    fn new(exts: &[Extent], records: bool) -> Self {
        let size = exts.last().map_or(0, |e| e.end() * u64::from(BS)) * 3 / 4;
        let index = if records {
            LearnedIndex::learned(exts)
        } else {
            LearnedIndex::new(exts)
        };
        Self {
            size,
            index: index.unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn file(&self, ino: u64) -> BpfFile<'_> {
        BpfFile {
            ino,
            size: self.size,
            block_size: BS,
            index: &self.index,
        }
    }

    fn expect(&self, q: Query) -> Option<Mapping> {
        expected(q, self.size, |b| self.index.probe(b))
    }
}

/// The order the flipper publishes the forms in (cycled): every kind of step, packed to packed
/// (and plain), records to records, and both moves between the storages.
const ORDER: [usize; 10] = [0, 1, 2, 3, 4, 2, 0, 3, 1, 4];

/// What the readers counted.
#[derive(Default)]
struct Counts {
    answers: AtomicU64,
    neighbour: AtomicU64,
    /// Answers of the flipped file at queries where the forms answer differently.
    telling: AtomicU64,
    /// Batches that ran while at most one flip was under way.
    tight: AtomicU64,
    batches: AtomicU64,
}

/// The flipper and the readers: `started` is the step being published (form
/// `ORDER[step % 10]`), `done` the last one published.
#[derive(Default)]
struct Race {
    started: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    counts: Counts,
}

/// One query batch source: the inputs, the queries and each query's answer under each form.
type Batch<'a> = (&'a [BeginIn], &'a [Query], &'a [Vec<Option<Mapping>>]);

impl Race {
    /// A reader: batches of 4096 queries from `first` on, until told to stop; each answer
    /// checked against the forms published while its batch ran.
    fn read(&self, tier: &BpfTier, (input, qs, want): Batch<'_>, first: usize) {
        let mut at = first;
        while !self.stop.load(SeqCst) {
            let range = at % qs.len()..(at % qs.len() + 4096).min(qs.len());
            at += 4096 * 3 + 1;
            let lo = self.done.load(SeqCst);
            let answers = tier
                .answer(&input[range.clone()], 0)
                .unwrap_or_else(|e| panic!("{e}"));
            let hi = self.started.load(SeqCst);
            let valid: Vec<usize> = (lo..=hi).map(|k| ORDER[k as usize % ORDER.len()]).collect();
            check_batch(
                &qs[range.clone()],
                &want[range],
                &answers,
                &valid,
                &self.counts,
            );
            self.counts.tight.fetch_add(u64::from(hi <= lo + 1), SeqCst);
            self.counts.batches.fetch_add(1, SeqCst);
        }
    }

    /// The flipper: publishes inode 1's forms in ORDER for 12 s (at least 100 steps, at most
    /// 2000), ends on the form the load put in and stops the readers; each replacement's time.
    fn flip(&self, tier: &BpfTier, forms: &[Form]) -> Vec<Duration> {
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut times = Vec::new();
        let mut step = 0u64;
        while (step < 2000 && (Instant::now() < deadline || step < 100))
            || ORDER[step as usize % ORDER.len()] != 0
        {
            step += 1;
            self.started.store(step, SeqCst);
            let t = Instant::now();
            let form = &forms[ORDER[step as usize % ORDER.len()]];
            let r = tier.replace(form.file(1)).unwrap_or_else(|e| panic!("{e}"));
            times.push(t.elapsed());
            assert_eq!(r, Replaced::Loaded, "step {step}");
            self.done.store(step, SeqCst);
        }
        self.stop.store(true, SeqCst);
        times
    }
}

#[test]
fn a_file_replaced_while_lookups_run_answers_its_old_or_new_form_only() {
    if !root_or_skip("a_file_replaced_while_lookups_run_answers_its_old_or_new_form_only") {
        return;
    }
    // Five forms of inode 1 (different maps, sizes and storages), and a neighbour, inode 2.
    let a = synthetic(20_000, 1, 10, 1_000_000);
    let b = synthetic(15_000, 2, 100, 5_000_000);
    let c = synthetic(6, 3, 50, 9_000_000);
    let forms = [
        Form::new(&a, false),
        Form::new(&b, false),
        Form::new(&a, true),
        Form::new(&b, true),
        Form::new(&c, false),
    ];
    let kinds: Vec<LearnedForm> = forms.iter().map(|f| f.index.form()).collect();
    assert_eq!(
        kinds,
        [
            LearnedForm::Packed,
            LearnedForm::Packed,
            LearnedForm::Records,
            LearnedForm::Records,
            LearnedForm::Plain
        ]
    );
    let d = synthetic(10_000, 4, 0, 20_000_000);
    let neighbour = Form::new(&d, true);
    let limits = Limits {
        spare: Spare {
            percent: 100,
            slots: 1 << 16,
            files: 2,
        },
        ..Limits::default()
    };
    let tier = BpfTier::load(&[forms[0].file(1), neighbour.file(2)], limits)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tier.report().files, 2, "{:?}", tier.report());
    eprintln!("verifier: {}", tier.report().verifier);
    let room_at_load = tier.room();

    // Queries: seven of the flipped file to one of the neighbour, and what each form answers.
    let mut rng = Rng::new(7);
    let end = a
        .last()
        .map_or(0, |e| e.end())
        .max(b.last().map_or(0, |e| e.end()))
        + 10;
    let mut qs = queries(1, end, 7 * 4096, &mut rng);
    qs.extend(queries(
        2,
        d.last().map_or(0, |e| e.end()) + 10,
        4096,
        &mut rng,
    ));
    // Interleaved (Fisher-Yates), so every batch has both files' queries.
    for i in (1..qs.len()).rev() {
        qs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let want: Vec<Vec<Option<Mapping>>> = qs
        .iter()
        .map(|&q| match q.ino {
            1 => forms.iter().map(|f| f.expect(q)).collect(),
            _ => vec![neighbour.expect(q)],
        })
        .collect();
    let input: Vec<BeginIn> = qs.iter().map(|&q| BeginIn::of(q)).collect();

    let race = Race::default();
    let mut flip_times = Vec::new();
    std::thread::scope(|s| {
        for r in 0..3 {
            let (race, tier, batch) = (&race, &tier, (&input[..], &qs[..], &want[..]));
            s.spawn(move || race.read(tier, batch, r * 4096));
        }
        flip_times = race.flip(&tier, &forms);
    });
    let counts = &race.counts;
    let flips = flip_times.len();
    flip_times.sort_unstable();
    let answers = counts.answers.load(SeqCst);
    let neighbour = counts.neighbour.load(SeqCst);
    let telling = counts.telling.load(SeqCst);
    let (tight, batches) = (counts.tight.load(SeqCst), counts.batches.load(SeqCst));
    eprintln!(
        "{flips} flips (median {:?}, max {:?}), {answers} answers of the flipped file checked \
         ({telling} where the forms differ), {neighbour} of its neighbour; {tight} of {batches} \
         batches saw at most one flip",
        flip_times[flips / 2],
        flip_times[flips - 1]
    );
    assert!(flips >= 100, "{flips} flips");
    assert!(answers > 1_000_000, "{answers} answers checked");
    assert!(neighbour > 100_000, "{neighbour} neighbour answers checked");
    assert!(
        telling * 2 > answers,
        "{telling} of {answers} answers tell the forms apart"
    );
    assert!(
        tight * 2 > batches,
        "{tight} of {batches} batches saw at most one flip"
    );
    // Every old form's slots were given back: the maps hold what they held at load.
    assert_eq!(tier.room(), room_at_load);
}

/// Checks one batch's answers: the neighbour's are exactly its mapping; the flipped file's
/// are exactly what one of the `valid` forms (those published while the batch ran) answers.
fn check_batch(
    qs: &[Query],
    want: &[Vec<Option<Mapping>>],
    answers: &[Answer],
    valid: &[usize],
    counts: &Counts,
) {
    assert_eq!(answers.len(), qs.len());
    let (mut n, mut neighbour, mut telling) = (0, 0, 0);
    for ((q, w), a) in qs.iter().zip(want).zip(answers) {
        let got = a.mapping();
        if q.ino == 2 {
            assert_eq!(got, w[0], "neighbour {q:?}: {a:?}");
            neighbour += 1;
            continue;
        }
        assert!(
            valid.iter().any(|&f| w[f] == got),
            "{q:?}: {a:?} ({:?}) is none of forms {valid:?}: {:?}",
            a.status(),
            valid.iter().map(|&f| w[f]).collect::<Vec<_>>()
        );
        // A fallback is the form's own (a refused query, a miss), never a lookup that found no
        // header or slots outside the file's (NO_MODEL, MAP_ERROR).
        assert!(
            got.is_some() || matches!(a.status(), Status::BadQuery | Status::Missed),
            "{q:?}: {a:?}"
        );
        telling += u64::from(w.iter().any(|x| *x != w[0]));
        n += 1;
    }
    counts.answers.fetch_add(n, SeqCst);
    counts.neighbour.fetch_add(neighbour, SeqCst);
    counts.telling.fetch_add(telling, SeqCst);
}

/// Answers of `tier` to `qs`, panicking on a run error.
fn run(tier: &BpfTier, qs: &[Query]) -> Vec<Answer> {
    let input: Vec<BeginIn> = qs.iter().map(|&q| BeginIn::of(q)).collect();
    tier.answer(&input, 0).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts every answer to `qs` is `form`'s (or, without a form, a NO_MODEL fallback); how
/// many were checked.
fn assert_answers(tier: &BpfTier, qs: &[Query], form: Option<&Form>) -> usize {
    for (q, a) in qs.iter().zip(run(tier, qs)) {
        match form {
            Some(f) => assert_eq!(a.mapping(), f.expect(*q), "{q:?}: {a:?}"),
            None => assert_eq!(a.status(), Status::NoModel, "{q:?}: {a:?}"),
        }
    }
    qs.len()
}

#[test]
fn replacements_that_do_not_fit_remove_the_old_form_and_say_why() {
    if !root_or_skip("replacements_that_do_not_fit_remove_the_old_form_and_say_why") {
        return;
    }
    let a = synthetic(3_000, 1, 0, 1_000_000);
    let b = synthetic(2_000, 2, 0, 2_000_000);
    let (ca, cb, la) = (
        Form::new(&a, false),
        Form::new(&b, false),
        Form::new(&a, true),
    );
    let mut rng = Rng::new(3);
    let qa = queries(1, a.last().map_or(0, |e| e.end()) + 5, 20_000, &mut rng);
    let qn = queries(2, b.last().map_or(0, |e| e.end()) + 5, 20_000, &mut rng);

    // No room kept: a replacement cannot be written beside the old form; the old form goes
    // (it no longer describes the file) and the neighbour stays. (Without room kept, and with
    // inodes this dense, the headers are in the array by inode number, CFILES_BY_INO: this
    // half removes and publishes there, the half with room in the CFILES hash.)
    let tier = BpfTier::load(&[ca.file(1), cb.file(2)], Limits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = tier.replace(cb.file(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(r, Replaced::Skipped(Skip::NoRoom(_))), "{r:?}");
    assert_answers(&tier, &qa, None);
    assert_answers(&tier, &qn, Some(&cb));
    // The records form of the same map takes several times the packed one's words: no room
    // for it either, beside the neighbour's packed form, so that goes too.
    let r = tier.replace(la.file(2)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, Replaced::Skipped(Skip::NoRoom("WORDS")));
    assert_answers(&tier, &qn, None);
    // With the file gone, its slots are free: it loads again.
    assert_eq!(tier.replace(ca.file(1)).ok(), Some(Replaced::Loaded));
    assert_answers(&tier, &qa, Some(&ca));

    // Room kept: replacements, a file added, removals, an unloadable form. The records form
    // takes two words an extent in WORDS, beside the packed forms loaded: room for it.
    let limits = Limits {
        spare: Spare {
            percent: 100,
            slots: 16_000,
            files: 1,
        },
        ..Limits::default()
    };
    let tier = BpfTier::load(&[ca.file(1), cb.file(2)], limits).unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for form in [&cb, &la, &ca, &la] {
        assert_eq!(tier.replace(form.file(1)).ok(), Some(Replaced::Loaded));
        checked += assert_answers(&tier, &qa, Some(form));
        checked += assert_answers(&tier, &qn, Some(&cb));
    }
    assert_eq!(tier.remove(1).ok(), Some(true));
    assert_eq!(tier.remove(1).ok(), Some(false));
    checked += assert_answers(&tier, &qa, None);
    // A new inode takes the free entry.
    assert_eq!(tier.replace(ca.file(3)).ok(), Some(Replaced::Loaded));
    let q3: Vec<Query> = qa.iter().map(|q| Query { ino: 3, ..*q }).collect();
    checked += assert_answers(&tier, &q3, Some(&ca));
    // A form the program cannot take (no extents) removes the old one.
    let empty = LearnedIndex::new(&[]).unwrap_or_else(|e| panic!("{e}"));
    let file = BpfFile {
        index: &empty,
        ..cb.file(2)
    };
    assert_eq!(
        tier.replace(file).ok(),
        Some(Replaced::Skipped(Skip::NoExtents))
    );
    checked += assert_answers(&tier, &qn, None);
    assert!(checked > 200_000, "{checked}");
}

/// The file map's answer for block `q`: its extent, or the hole up to the next one.
fn block_map(map: &FileMap, q: u32) -> Lookup {
    let q64 = u64::from(q);
    Lookup::Found(match map.find(q64) {
        Some((s, len, pblk, unwritten)) => BlockMap::Mapped(Extent {
            lblk: s as u32,
            len: len as u32,
            pblk,
            unwritten,
        }),
        None => BlockMap::Hole {
            next: map.next_start(q64).map(|n| n as u32),
        },
    })
}

/// A random change to a map of about `end` blocks: allocations (some unwritten), punches,
/// collapses and inserts, as a server sees them.
fn change(rng: &mut Rng, end: u64, fresh: &mut u64) -> Change {
    let at = rng.below(end.max(1) + 100);
    match rng.below(10) {
        0..=4 => {
            let len = 1 + rng.below(64);
            *fresh += len + rng.below(100);
            Change::Map(BlockExtent {
                lblk: at as u32,
                pblk: *fresh,
                len: len as u32,
                unwritten: rng.chance(30),
            })
        }
        5..=7 => Change::Unmap {
            lblk: at,
            len: 1 + rng.below(400),
        },
        8 => Change::Collapse {
            lblk: at,
            len: 1 + rng.below(50),
        },
        _ => Change::Insert {
            lblk: at,
            len: 1 + rng.below(50),
        },
    }
}

#[test]
fn a_map_replayed_change_by_change_answers_exactly_after_every_change() {
    if !root_or_skip("a_map_replayed_change_by_change_answers_exactly_after_every_change") {
        return;
    }
    let start: Vec<BlockExtent> = synthetic(4_000, 5, 0, 1_000_000)
        .iter()
        .map(|e| BlockExtent {
            lblk: e.lblk,
            pblk: e.pblk,
            len: e.len,
            unwritten: e.unwritten,
        })
        .collect();
    let mut map = FileMap::from_extents(&start);
    let neighbour = Form::new(&synthetic(1_000, 6, 0, 30_000_000), false);
    let first = LearnedIndex::new(&extents_of(&map)).unwrap_or_else(|e| panic!("{e}"));
    let size = |m: &FileMap| m.end() * u64::from(BS) * 9 / 10;
    fn file(ino: u64, size: u64, c: &LearnedIndex) -> BpfFile<'_> {
        BpfFile {
            ino,
            size,
            block_size: BS,
            index: c,
        }
    }
    let limits = Limits {
        spare: Spare {
            percent: 200,
            slots: 1 << 14,
            files: 0,
        },
        ..Limits::default()
    };
    let tier = BpfTier::load(&[file(1, size(&map), &first), neighbour.file(2)], limits)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng::new(11);
    let (mut fresh, mut checked, mut applied) = (50_000_000u64, 0u64, 0);
    let mut neighbour_qs = queries(2, 5_000, 500, &mut rng);
    for step in 0..300 {
        let ch = change(&mut rng, map.end(), &mut fresh);
        if map.apply(&ch).is_err() {
            continue; // an insert that would shift blocks past 2^32 - 1
        }
        applied += 1;
        let exts = extents_of(&map);
        let ix = LearnedIndex::new(&exts).unwrap_or_else(|e| panic!("step {step}: {e}"));
        let r = tier
            .replace(file(1, size(&map), &ix))
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
        assert_eq!(r, Replaced::Loaded, "step {step}: {ch:?}");
        // Random blocks, and the edges of some extents.
        let mut qs = queries(1, map.end() + 50, 1_500, &mut rng);
        for e in exts.iter().step_by(exts.len() / 100 + 1) {
            for b in [
                u64::from(e.lblk).saturating_sub(1),
                u64::from(e.lblk),
                e.end() - 1,
                e.end(),
            ] {
                qs.push(Query::report(1, b * u64::from(BS), 1 << 20));
            }
        }
        let sz = size(&map);
        for (q, a) in qs.iter().zip(run(&tier, &qs)) {
            let want = expected(*q, sz, |b| block_map(&map, b));
            assert_eq!(a.mapping(), want, "step {step} after {ch:?}: {q:?}: {a:?}");
        }
        checked += qs.len() as u64;
        neighbour_qs.rotate_left(1);
        checked += assert_answers(&tier, &neighbour_qs[..100], Some(&neighbour)) as u64;
    }
    eprintln!("{applied} changes replayed, {checked} answers checked, 0 wrong");
    assert!(applied > 250, "{applied}");
    assert!(checked > 500_000, "{checked}");
}
