//! `reports bpf-latency`: the BPF tier's lookup latency beside the userspace structures, on the
//! same extents, model and queries, for the files of an image (with its model pack) or for
//! synthetic allocator-like maps. One JSON object per file.
//!
//! BPF times come from the `bpf` crate's [`bpf::timing`] (the kernel's own: `BPF_PROG_TEST_RUN`
//! with `repeat`, one query per run); each figure is the median of `--rounds` such means.
//! Userspace times loop the same queries through the same learned index (records storage), an iext tree with
//! XFS's 16-byte records and a `BTreeMap` of the same extents (regime `warm-alone`: the set is
//! small and repeated).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bpf::abi::RUN_NOOP;
use bpf::timing::{
    block_queries, samples, single_file_in, syscall_samples, SINGLE_BLOCK_SIZE, SINGLE_INO,
};
use bpf::{load_stack_in, BpfTier, Limits};
use ext4::{BlockMap, Extent, Fs};
use predictor::synth::Rng;
use predictor::{
    BTreeIndex, ExtentIndex, LearnedIndex, Lookup, Models, Pack, StackOptions, Tier, TierStack,
    XfsIextIndex,
};

use crate::support::rows::BpfLatencyRow;
use crate::support::timing::Summary;

/// Arguments of `reports bpf-latency`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs root (CAP_BPF). Times are kernel-measured means of one-query program runs (--repeat
runs), median of --rounds; the noop run is the test-run harness's own cost per run;
bpf_syscall_ns is one BPF_PROG_TEST_RUN from user space answering one query. The userspace
figures time the same queries through the same learned index, an iext tree (16-byte records)
and a BTreeMap of the same extents. Pin to one CPU:
  taskset -c 1 reports bpf-latency disk.img --models disk.pack
  taskset -c 1 reports bpf-latency --synthetic 1000,100000,1000000,10000000")]
pub struct Args {
    /// The ext4 image, read-only (or use --synthetic).
    #[arg(required_unless_present = "synthetic", requires = "models")]
    image: Option<PathBuf>,
    /// Model pack trained on this image (by `training fit`).
    #[arg(long, value_name = "PACK")]
    models: Option<PathBuf>,
    /// Time synthetic allocator-like extent maps of these sizes instead (the maps of the
    /// report's figure 1, seed 42), each fitted with the default window.
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        conflicts_with = "image"
    )]
    synthetic: Vec<usize>,
    /// Files to time, by inode [default: the --files files with the most extents].
    #[arg(long, value_name = "N")]
    ino: Vec<u32>,
    /// How many of the largest files to time when no --ino is given.
    #[arg(long, value_name = "N", default_value_t = 3)]
    files: usize,
    /// Queries (uniform random blocks of the file) in the rotating set, at most 4096.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    queries: usize,
    /// Rounds; each figure is the median.
    #[arg(long, value_name = "N", default_value_t = 21)]
    rounds: usize,
    /// Program runs per round.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    repeat: u32,
    /// Also time this build of the program (an ELF object built like
    /// bpf/program/iomap_begin.bpf.o, e.g. from the previous commit), round by round in turn
    /// with the embedded one on the same maps and queries: the `baseline_*` fields.
    #[arg(long, value_name = "FILE.o")]
    baseline: Option<PathBuf>,
}

/// Runs `reports bpf-latency`.
pub fn run(args: &Args) -> Result<()> {
    match (&args.image, &args.models) {
        (Some(image), Some(models)) => run_image(args, image, models),
        _ => run_synthetic(args),
    }
}

/// The largest files of an image, each with its model from the pack.
fn run_image(args: &Args, image: &Path, models: &Path) -> Result<()> {
    let fs = Fs::open_path(image).with_context(|| format!("opening {}", image.display()))?;
    let pack = Pack::read_file(models)
        .with_context(|| format!("reading the model pack {}", models.display()))?;
    let (stack, _) = TierStack::build(
        Arc::new(fs),
        Tier::Learned,
        Models::Pack(&pack),
        StackOptions::default(),
    )
    .with_context(|| format!("{} with {}", image.display(), models.display()))?;
    let object = read_object(args)?;
    let bpf = load_stack_in(None, &stack, Limits::default())?;
    bpf.report().log();
    let base = object
        .as_deref()
        .map(|o| load_stack_in(Some(o), &stack, Limits::default()))
        .transpose()?;
    let inodes: Vec<u32> = if args.ino.is_empty() {
        let mut by_size: Vec<(usize, u32)> = stack
            .inodes()
            .filter(|&i| stack.learned(i).is_some())
            .map(|i| (stack.extent_count(i).unwrap_or(0), i))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        by_size
            .into_iter()
            .take(args.files)
            .map(|(_, i)| i)
            .collect()
    } else {
        args.ino.clone()
    };
    let mut rng = Rng::new(7);
    for ino in inodes {
        let index = stack
            .learned(ino)
            .with_context(|| format!("inode {ino}: no active model in {}", models.display()))?;
        if bpf
            .report()
            .skipped
            .iter()
            .any(|(i, _)| *i == u64::from(ino))
        {
            bail!("inode {ino}: not loaded into the BPF program (see the log)");
        }
        let extents: Vec<Extent> = index.extents();
        let (first, last) = match (extents.first(), extents.last()) {
            (Some(f), Some(l)) => (u64::from(f.lblk), l.end()),
            _ => continue,
        };
        let lblks: Vec<u32> = (0..args.queries.min(4096))
            .map(|_| (first + rng.below(last - first)) as u32)
            .collect();
        let mut row = measure(
            args,
            (&bpf, base.as_ref()),
            u64::from(ino),
            stack.block_size(),
            index,
            &lblks,
        )?;
        row.ino = Some(ino);
        compact(args, object.as_deref(), &extents, &lblks, &mut row)?;
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(())
}

/// Synthetic allocator-like maps, one file each.
fn run_synthetic(args: &Args) -> Result<()> {
    let object = read_object(args)?;
    for &n in &args.synthetic {
        let extents = predictor::synth::allocator_like(n, 42);
        let index = LearnedIndex::learned(&extents)
            .with_context(|| format!("fitting the synthetic map of {n} extents"))?;
        let bpf = single_file_in(None, &index)?;
        if let Some((_, why)) = bpf.report().skipped.first() {
            bail!("synthetic map of {n} extents not loaded: {why}");
        }
        let base = object
            .as_deref()
            .map(|o| single_file_in(Some(o), &index))
            .transpose()?;
        let lblks = predictor::synth::uniform_queries(&extents, args.queries.min(4096), 7);
        let mut row = measure(
            args,
            (&bpf, base.as_ref()),
            SINGLE_INO,
            SINGLE_BLOCK_SIZE,
            &index,
            &lblks,
        )?;
        compact(args, object.as_deref(), &extents, &lblks, &mut row)?;
        row.dataset = Some(format!("synthetic-{n}"));
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(())
}

/// Kernel ns per run of `bpf` and, if given, of `base` (medians over `--rounds`; each round
/// times one program, then the other, so both see the same spells of a noisy machine).
fn race(
    args: &Args,
    (bpf, base): (&BpfTier, Option<&BpfTier>),
    (ino, block_size): (u64, u32),
    lblks: &[u32],
    flags: u32,
) -> Result<(f64, Option<f64>)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        a.extend(samples(bpf, ino, block_size, lblks, flags, 1, args.repeat)?);
        if let Some(base) = base {
            b.extend(samples(
                base,
                ino,
                block_size,
                lblks,
                flags,
                1,
                args.repeat,
            )?);
        }
    }
    Ok((median(&mut a), base.map(|_| median(&mut b))))
}

/// Measures file `ino` (loaded in `bpf`, and in the baseline program if any, with userspace
/// index `index`) on the blocks `lblks` (at most [`bpf::tier::REGION_SLOTS`] are used).
fn measure(
    args: &Args,
    (bpf, base): (&BpfTier, Option<&BpfTier>),
    ino: u64,
    block_size: u32,
    index: &LearnedIndex,
    lblks: &[u32],
) -> Result<BpfLatencyRow> {
    let lblks = &lblks[..lblks.len().min(bpf::tier::REGION_SLOTS)];
    let queries = block_queries(ino, block_size, lblks);
    let file = (ino, block_size);
    let (bpf_noop_ns, baseline_noop_ns) = race(args, (bpf, base), file, lblks, RUN_NOOP)?;
    let (bpf_model_ns, baseline_model_ns) = race(args, (bpf, base), file, lblks, 0)?;
    // One syscall per query, as `serve` and `mount --tier bpf` pay it.
    let bpf_syscall_ns = median(&mut syscall_samples(bpf, &queries, 2000)?);
    let answers = bpf.answer(&queries, 0)?;
    let bpf_probes =
        answers.iter().map(|a| f64::from(a.probes)).sum::<f64>() / answers.len().max(1) as f64;

    let extents: Vec<Extent> = index.extents();
    let btree = BTreeIndex::new(&extents);
    let rounds = args.rounds;
    let user_learned_ns = time_user(lblks, rounds, Order::Independent, |q| index.probe(q));
    let user_btree_ns = time_user(lblks, rounds, Order::Independent, |q| btree.find(q));
    // A map the 16-byte records cannot hold (lengths or addresses over their fields) has no
    // iext16 figure.
    let user_iext16_ns = XfsIextIndex::new(&extents)
        .ok()
        .map(|iext| time_user(lblks, rounds, Order::Independent, |q| iext.find(q)));
    Ok(BpfLatencyRow {
        dataset: None,
        ino: None,
        extents: extents.len(),
        segments: index.segment_count(),
        max_window: index.model().map_or(0, |m| m.max_window()),
        queries: queries.len(),
        bpf_noop_ns,
        bpf_model_ns,
        bpf_syscall_ns,
        bpf_probes,
        verifier_insns: bpf.report().verifier.processed,
        verifier_ms: bpf.report().verifier.time.as_secs_f64() * 1e3,
        user_learned_ns,
        user_btree_ns,
        user_iext16_ns,
        bpf_compact_ns: None,
        user_compact_ns: None,
        user_compact_chained_ns: None,
        baseline_noop_ns,
        baseline_model_ns,
        baseline_compact_ns: None,
    })
}

/// The `--baseline` build of the program, read.
fn read_object(args: &Args) -> Result<Option<Vec<u8>>> {
    args.baseline
        .as_ref()
        .map(|p| {
            std::fs::read(p).with_context(|| format!("reading the BPF object {}", p.display()))
        })
        .transpose()
}

/// The compact learned index (packed storage) of `extents` timed on `lblks` in the kernel (its
/// own one-file program, and the baseline program's) and in userspace, into `row` (absent where it does not
/// load).
fn compact(
    args: &Args,
    object: Option<&[u8]>,
    extents: &[Extent],
    lblks: &[u32],
    row: &mut BpfLatencyRow,
) -> Result<()> {
    let Ok(index) = LearnedIndex::new(extents) else {
        return Ok(());
    };
    let lblks = &lblks[..lblks.len().min(bpf::tier::REGION_SLOTS)];
    let time = |order| time_user(lblks, args.rounds, order, |q| index.find(q));
    row.user_compact_ns = Some(time(Order::Independent));
    row.user_compact_chained_ns = Some(time(Order::Chained));
    let bpf = single_file_in(None, &index)?;
    let base = object
        .map(|o| single_file_in(Some(o), &index))
        .transpose()?;
    if !bpf.report().skipped.is_empty() {
        return Ok(());
    }
    let file = (SINGLE_INO, SINGLE_BLOCK_SIZE);
    let (ns, base_ns) = race(args, (&bpf, base.as_ref()), file, lblks, 0)?;
    row.bpf_compact_ns = Some(ns);
    row.baseline_compact_ns = base_ns;
    Ok(())
}
/// How a timing loop asks its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Each lookup on its own: the CPU overlaps one lookup's cache misses with the next's.
    Independent,
    /// One lookup at a time: each query is xored with a zero taken from the previous answer
    /// (the compiler cannot see it is zero), so no lookup starts before the one before it
    /// ended. The program's runs come one after the other, as `iomap_begin` calls do in the
    /// kernel.
    Chained,
}

/// Median over `rounds` of the mean ns per lookup of `f` over `lblks` (looped to ~1 ms),
/// asked in `order`.
fn time_user(lblks: &[u32], rounds: usize, order: Order, f: impl Fn(u32) -> Lookup) -> f64 {
    if lblks.is_empty() {
        return 0.0;
    }
    let loops = (250_000 / lblks.len()).max(1);
    let zero = black_box(0u32);
    let mut v: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let mut carry = 0u32;
            let start = Instant::now();
            for _ in 0..loops {
                if order == Order::Chained {
                    for &q in lblks {
                        carry = answer_bits(f(q ^ carry)) & zero;
                    }
                } else {
                    for &q in lblks {
                        black_box(f(black_box(q)));
                    }
                }
            }
            let ns = start.elapsed().as_nanos() as f64 / (loops * lblks.len()) as f64;
            black_box(carry);
            ns
        })
        .collect();
    median(&mut v)
}

/// Bits of an answer, for [`Order::Chained`]'s dependency on it.
fn answer_bits(l: Lookup) -> u32 {
    match l {
        Lookup::Found(BlockMap::Mapped(e)) => e.pblk as u32 ^ e.len,
        Lookup::Found(BlockMap::Hole { next }) => next.unwrap_or(1),
        Lookup::Missed | Lookup::Declined => 2,
    }
}

fn median(v: &mut [f64]) -> f64 {
    Summary::of(v).map_or(0.0, |s| s.median)
}
