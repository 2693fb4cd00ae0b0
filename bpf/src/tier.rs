//! Loading the program with its maps filled from learned indexes (either storage), and running
//! queries through `BPF_PROG_TEST_RUN`.

use std::time::{Duration, Instant};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader, VerifierLogLevel};
use parking_lot::Mutex;
use predictor::{LearnedForm, Mapping, MappingType};

use crate::abi::{self, Answer, BeginIn, Run};
use crate::form::{check_file, entry_of, Array, BpfFile, Entry, Skip, ARRAYS};
use crate::mmap::mmap;
use crate::mmap::MmapArray;
use crate::update::{Replaced, Space, Writer};
use crate::BpfError;

/// The compiled program (built from `bpf/program/iomap_begin.bpf.c` by `scripts/build-bpf.sh`).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../program/iomap_begin.bpf.o");
/// The program's name in the object.
const PROGRAM: &str = "iomap_begin";

/// Query slots per region: a batch larger than this is run in pieces.
pub const REGION_SLOTS: usize = 4096;
/// Regions, so this many threads can run batches at once without sharing slots.
const REGIONS: usize = 8;

/// Bounds on the maps, so a huge image cannot make the loader allocate without limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Extents loaded (however stored); files past it are skipped.
    pub max_extents: u32,
    /// Files in CFILES.
    pub max_files: u32,
    /// Room kept free for [`BpfTier::replace`] (none by default: the maps hold what is loaded).
    pub spare: Spare,
}

impl Default for Limits {
    fn default() -> Self {
        // 16 Mi extents = 256 MiB of map memory as records: far beyond the demo and test images.
        Self {
            max_extents: 1 << 24,
            max_files: 1 << 20,
            spare: Spare::default(),
        }
    }
}

/// Room the load keeps free in the maps for replacements ([`BpfTier::replace`]): a new form is
/// written beside the old one before the old one's slots are freed, so a file can be replaced
/// only while the arrays have room for its new form besides everything loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spare {
    /// Free slots in each array, in per cent of the slots the load fills in it.
    pub percent: u32,
    /// Free slots in each array on top of that (room for a storage the load does not fill:
    /// records take WORDS where runs took none).
    pub slots: u32,
    /// Free entries in CFILES on top of `percent` of the loaded ones (files added).
    pub files: u32,
}

impl Spare {
    /// Whether any room is kept.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// `used` plus the room kept beside it, at most `max`.
    fn capacity(&self, used: u64, extra: u32, max: u64) -> u64 {
        let room = used.saturating_mul(u64::from(self.percent)) / 100 + u64::from(extra);
        used.saturating_add(room).min(max)
    }
}

/// What loading found.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Files loaded.
    pub files: usize,
    /// Of those, files whose line pieces store records (the `learned` structure).
    pub record_files: usize,
    /// Files whose line pieces store packed blocks (the `compact` structure).
    pub packed_files: usize,
    /// Files in the one-extent or plain-array form (no model), in WORDS as records.
    pub plain_files: usize,
    /// Extents loaded (every form).
    pub extents: u64,
    /// Of those, extents stored by records line pieces (16 bytes each: a key and a 12-byte
    /// record).
    pub record_extents: u64,
    /// Extents stored in packed blocks.
    pub packed_extents: u64,
    /// Extents answered by arithmetic runs (stored nowhere).
    pub run_extents: u64,
    /// Extents of the plain forms' records.
    pub plain_extents: u64,
    /// Pieces loaded (PIECES).
    pub pieces: u64,
    /// Directory buckets loaded (CBUCKETS).
    pub buckets: u64,
    /// 8-byte words loaded (WORDS): packed blocks and records.
    pub words: u64,
    /// Files not loaded, and why.
    pub skipped: Vec<(u64, Skip)>,
    /// Bytes of map memory for the headers, pieces, buckets and words (the kernel's element
    /// sizes).
    pub map_bytes: u64,
    /// Bytes of map memory kept free for replacements ([`Limits::spare`]).
    pub spare_bytes: u64,
    /// Time to load the object, create the maps and have the program verified and JIT-compiled.
    pub load: Duration,
    /// What verifying the program cost the kernel.
    pub verifier: VerifierStats,
    /// Time to fill the maps.
    pub fill: Duration,
}

/// The kernel verifier's limit on instructions processed per program (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// What verifying the program cost the kernel: the count the verifier prints as "processed N
/// insns" (`bpf_prog_info.verified_insns`, kernels from 5.16) and the time the load took
/// (verification and JIT compilation).
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifierStats {
    /// Instructions the verifier processed (`None`: a kernel that does not say).
    pub processed: Option<u32>,
    /// Time of `BPF_PROG_LOAD`.
    pub time: Duration,
}

impl std::fmt::Display for VerifierStats {
    /// In the verifier's own words: `processed N insns (limit 1000000)`, and the load time.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.processed {
            Some(n) => write!(f, "processed {n} insns (limit {VERIFIER_LIMIT})")?,
            None => write!(
                f,
                "processed ? insns (the kernel does not report verified_insns)"
            )?,
        }
        write!(
            f,
            ", verified and JIT-compiled in {:.1} ms",
            self.time.as_secs_f64() * 1e3
        )
    }
}

impl LoadReport {
    /// Logs the report: a summary, and the first files left out with why.
    pub fn log(&self) {
        tracing::info!(
            files = self.files,
            record_files = self.record_files,
            packed_files = self.packed_files,
            plain_files = self.plain_files,
            extents = self.extents,
            record_extents = self.record_extents,
            packed_extents = self.packed_extents,
            run_extents = self.run_extents,
            pieces = self.pieces,
            words = self.words,
            skipped = self.skipped.len(),
            map_kib = self.map_bytes / 1024,
            load_ms = self.load.as_millis() as u64,
            verifier = %self.verifier,
            fill_ms = self.fill.as_millis() as u64,
            "BPF program loaded"
        );
        for (ino, why) in self.skipped.iter().take(10) {
            tracing::info!(ino, reason = %why, "not loaded into the BPF program: falls back");
        }
    }
}

/// How many of `n` queries a rotating run goes through: the largest power of two at most
/// `min(n, REGION_SLOTS)` (the rotation is a mask), 0 for none.
pub fn rotation_len(n: usize) -> usize {
    match n.min(REGION_SLOTS) {
        0 => 0,
        m => 1 << m.ilog2(),
    }
}

/// What the program did with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Answered.
    Handled,
    /// FALLBACK: no model loaded for the inode.
    NoModel,
    /// FALLBACK: a query the userspace tiers must refuse (count 0, a read past EOF, block too
    /// large).
    BadQuery,
    /// FALLBACK: the candidate failed verification.
    Missed,
    /// FALLBACK: maps inconsistent with each other: an index outside the file's own slots or
    /// outside a map, a range wrapping past 2^32, a count of zero, a piece not holding the
    /// block.
    MapError,
    /// The program did not reach this slot.
    NotRun,
    /// A status the loader does not know.
    Unknown(u16),
}

impl Status {
    /// The status of an answer's raw word.
    pub fn of(raw: u16) -> Self {
        match raw {
            0 => Self::Handled,
            1 => Self::NoModel,
            2 => Self::BadQuery,
            4 => Self::Missed,
            5 => Self::MapError,
            NOT_RUN => Self::NotRun,
            other => Self::Unknown(other),
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::NoModel => "no_model",
            Self::BadQuery => "bad_query",
            Self::Missed => "missed",
            Self::MapError => "map_error",
            Self::NotRun => "not_run",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// `IOMAP_BPF_NOT_RUN`.
const NOT_RUN: u16 = 0xffff;

impl Answer {
    /// What the program did.
    pub fn status(&self) -> Status {
        Status::of(self.status)
    }

    /// The mapping, if the program handled the query and gave a known type.
    pub fn mapping(&self) -> Option<Mapping> {
        if self.status() != Status::Handled {
            return None;
        }
        let kind = MappingType::from_code(self.kind)?;
        let addr = (kind != MappingType::Hole).then_some(self.addr);
        Some(Mapping {
            offset: self.offset,
            length: self.length,
            addr,
            kind,
        })
    }
}

/// The loaded program and its maps.
pub struct BpfTier {
    ebpf: Ebpf,
    queries: MmapArray<BeginIn>,
    answers: MmapArray<Answer>,
    regions: Vec<Mutex<()>>,
    /// What changes the maps after load ([`BpfTier::replace`]), one change at a time.
    writer: Mutex<Writer>,
    report: LoadReport,
}

impl std::fmt::Debug for BpfTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfTier")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// The most slots an array may have: u32-indexed, and WORDS keeps one word of padding after
/// the last file's.
const MAX_SLOTS: u32 = u32::MAX - 1;

/// Decides which files fit and where each goes: the planned files and the slots they take
/// (each array filled from slot 0, in the order of `files`).
fn plan<'a>(
    files: &[BpfFile<'a>],
    limits: Limits,
    report: &mut LoadReport,
) -> (Vec<(BpfFile<'a>, Entry)>, Space) {
    let mut out = Vec::new();
    let mut space = Space::new([MAX_SLOTS; ARRAYS]);
    for f in files {
        let entry = match check_file(f).and_then(|bits| entry_of(f, bits)) {
            Err(skip) => {
                report.skipped.push((f.ino, skip));
                continue;
            }
            Ok(e) => e,
        };
        let shape = f.index.shape();
        let n = shape.extents as u64;
        let full = report.extents + n > u64::from(limits.max_extents.min(1 << 30))
            || out.len() >= limits.max_files as usize;
        let placed = if full { None } else { space.place(entry).ok() };
        let Some(entry) = placed else {
            report.skipped.push((f.ino, Skip::Full(limits.max_extents)));
            continue;
        };
        report.extents += n;
        match f.index.form() {
            LearnedForm::Records => report.record_files += 1,
            LearnedForm::Packed => report.packed_files += 1,
            LearnedForm::Empty | LearnedForm::One | LearnedForm::Plain => {
                report.plain_files += 1;
                report.plain_extents += n;
            }
        }
        report.record_extents += shape.record_extents as u64;
        report.packed_extents += shape.packed_extents as u64;
        report.run_extents += shape.run_extents as u64;
        out.push((*f, entry));
    }
    report.files = out.len();
    report.pieces = space.used(Array::Pieces);
    report.buckets = space.used(Array::CBuckets);
    report.words = space.used(Array::Words);
    let arrays = Array::ALL
        .iter()
        .map(|&a| space.used(a) * a.element_bytes())
        .sum::<u64>();
    let entries = out.len() as u64 * (std::mem::size_of::<abi::CFile>() as u64 + 8);
    // The padding word after the last file's bytes.
    report.map_bytes = arrays + entries + 8;
    (out, space)
}

/// The maps' sizes: what the plan fills, and the room [`Limits::spare`] keeps beside it.
struct Sizes {
    /// Slots per array ([`Array::ALL`] order).
    arrays: [u32; ARRAYS],
    /// Entries of CFILES.
    files: u32,
    /// Slots of CFILES_BY_INO if the headers go there ([`by_ino_slots`]), else 0.
    by_ino: u32,
}

impl Sizes {
    fn of(space: &Space, report: &LoadReport, spare: Spare, by_ino: Option<u32>) -> Self {
        // Array maps need at least one entry; with no files the program answers NO_MODEL.
        let slots = |a: Array| {
            let n = spare.capacity(space.used(a), spare.slots, u64::from(MAX_SLOTS));
            n.max(1) as u32
        };
        let files = spare.capacity(report.files as u64, spare.files, u64::from(u32::MAX));
        Self {
            arrays: Array::ALL.map(slots),
            files: files.max(1) as u32,
            by_ino: by_ino.unwrap_or(0),
        }
    }

    /// WORDS grown to fill its last value (of `words_value` words), but for the padding word:
    /// every word the map holds is then a slot, and a range past the capacity is past the map.
    fn whole_values(&mut self, words_value: u32) {
        let w = &mut self.arrays[Array::Words.index()];
        let whole = (u64::from(*w) + 1).div_ceil(u64::from(words_value)) * u64::from(words_value);
        *w = (whole - 1).min(u64::from(MAX_SLOTS)) as u32;
    }

    /// Bytes of the room kept free.
    fn spare_bytes(&self, space: &Space, report: &LoadReport) -> u64 {
        let arrays = Array::ALL
            .iter()
            .zip(self.arrays)
            .map(|(&a, n)| (u64::from(n) - space.used(a).min(u64::from(n))) * a.element_bytes())
            .sum::<u64>();
        let files = u64::from(self.files).saturating_sub(report.files as u64);
        arrays + files * (std::mem::size_of::<abi::CFile>() as u64 + 8)
    }
}

/// The most slots of CFILES_BY_INO (2^22 headers, 224 MiB): past it the headers stay in the
/// CFILES hash.
const BY_INO_MAX: u64 = 1 << 22;

/// Slots of CFILES_BY_INO (the largest inode loaded + 1) if the headers go there: when no
/// replacement room is asked (a replacement by inode makes the file fall back for a few grace
/// periods, and files added later may have larger inode numbers), the object has that map,
/// and the inode numbers are dense enough (ext4's are bounded by s_inodes_count) that the
/// array takes at most 8 slots per file loaded, plus 4096 (a hash element takes about twice a
/// slot's bytes), and at most [`BY_INO_MAX`]. `None`: the CFILES hash.
fn by_ino_slots(object: &[u8], planned: &[(BpfFile<'_>, Entry)], spare: Spare) -> Option<u32> {
    let slots = planned.iter().map(|(f, _)| f.ino).max()? + 1;
    let dense = slots <= 8 * planned.len() as u64 + 4096 && slots <= BY_INO_MAX;
    (!spare.any() && dense && has_map(object, "CFILES_BY_INO")).then_some(slots as u32)
}

/// Whether the object has a map `name` (the embedded one has them all; another build may be
/// older).
fn has_map(object: &[u8], name: &str) -> bool {
    std::ptr::eq(object, OBJECT)
        || aya_obj::Object::parse(object).is_ok_and(|o| o.maps.contains_key(name))
}

/// Words of the object's WORDS value: [`abi::WORDS_VALUE`] in the embedded program; another
/// build of it (`BpfTier::load_object`, an older one raced against it) may hold fewer, or have
/// no WORDS map at all (then its size does not matter: 1).
fn words_per_value(object: &[u8]) -> Result<u32, BpfError> {
    if std::ptr::eq(object, OBJECT) {
        return Ok(abi::WORDS_VALUE as u32);
    }
    let parsed = aya_obj::Object::parse(object).map_err(|e| BpfError::Object(e.to_string()))?;
    match parsed.maps.get("WORDS").map(|m| m.value_size()) {
        None => Ok(1),
        Some(bytes) if bytes >= 8 && bytes % 8 == 0 => Ok(bytes / 8),
        Some(bytes) => Err(BpfError::Object(format!(
            "the object's WORDS value is {bytes} bytes, not whole words"
        ))),
    }
}

/// Creates the maps at `sizes` and loads the program: the object and what verifying the
/// program cost.
fn load_program(
    object: &[u8],
    sizes: &Sizes,
    words_value: u32,
) -> Result<(Ebpf, VerifierStats), BpfError> {
    let slots = (REGIONS * REGION_SLOTS) as u32;
    let by_ino = u32::from(sizes.by_ino > 0);
    let mut loader = EbpfLoader::new();
    loader
        // A refusal's log is the verifier's reason and statistics, not every instruction.
        .verifier_log_level(VerifierLogLevel::STATS)
        // The headers' map the loader does not fill keeps its placeholder entry.
        .map_max_entries("CFILES", if sizes.by_ino > 0 { 1 } else { sizes.files })
        .map_max_entries("CFILES_BY_INO", sizes.by_ino.max(1))
        .override_global("headers_by_ino", &by_ino, false)
        .map_max_entries("QUERIES", slots)
        .map_max_entries("ANSWERS", slots);
    for (a, n) in Array::ALL.iter().zip(sizes.arrays) {
        // WORDS: one word of padding after the last file's, in values of as many words as
        // the object's WORDS value holds.
        let n = if *a == Array::Words {
            (n + 1).div_ceil(words_value)
        } else {
            n
        };
        loader.map_max_entries(a.name(), n);
    }
    let mut ebpf = loader.load(object).map_err(BpfError::from_load)?;
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| BpfError::Object(format!("no program {PROGRAM} in the object")))?
        .try_into()
        .map_err(|e| BpfError::Object(format!("program {PROGRAM}: {e}")))?;
    let verify = Instant::now();
    program.load().map_err(BpfError::from_program)?;
    let verifier = VerifierStats {
        processed: program
            .info()
            .ok()
            .and_then(|i| i.verified_instruction_count()),
        time: verify.elapsed(),
    };
    Ok((ebpf, verifier))
}

impl BpfTier {
    /// Loads the program and fills its maps with `files` (those that fit; the rest are in the
    /// report's `skipped`).
    pub fn load(files: &[BpfFile<'_>], limits: Limits) -> Result<Self, BpfError> {
        Self::load_object(OBJECT, files, limits)
    }

    /// [`BpfTier::load`] with another build of the program: an ELF object with an XDP program
    /// `iomap_begin` and the maps of `iomap_begin.h` (for trying variants of the program).
    pub fn load_object(
        object: &[u8],
        files: &[BpfFile<'_>],
        limits: Limits,
    ) -> Result<Self, BpfError> {
        let mut report = LoadReport::default();
        let (planned, used) = plan(files, limits, &mut report);
        let words_value = words_per_value(object)?;
        let by_ino = by_ino_slots(object, &planned, limits.spare);
        let mut sizes = Sizes::of(&used, &report, limits.spare, by_ino);
        if let Some(n) = by_ino {
            // The array's slots instead of the hash's entries.
            let header = std::mem::size_of::<abi::CFile>() as u64;
            report.map_bytes =
                report.map_bytes - planned.len() as u64 * (header + 8) + u64::from(n) * header;
        }
        sizes.whole_values(words_value);
        report.spare_bytes = sizes.spare_bytes(&used, &report);
        let start = Instant::now();
        let (mut ebpf, verifier) = load_program(object, &sizes, words_value)?;
        report.verifier = verifier;
        report.load = start.elapsed();

        let start = Instant::now();
        let space = used.resized(sizes.arrays);
        let mut writer = match sizes.by_ino {
            0 => Writer::new(&mut ebpf, space, sizes.files, false)?,
            slots => Writer::new(&mut ebpf, space, slots, true)?,
        };
        writer.fill(&planned)?;
        report.fill = start.elapsed();
        let slots = REGIONS * REGION_SLOTS;
        let queries = mmap(&ebpf, "QUERIES", slots)?;
        let answers = mmap(&ebpf, "ANSWERS", slots)?;
        Ok(Self {
            ebpf,
            queries,
            answers,
            regions: (0..REGIONS).map(|_| Mutex::new(())).collect(),
            writer: Mutex::new(writer),
            report,
        })
    }

    /// Replaces the form of `file.ino` in the program's maps by `file`'s (or loads it, if the
    /// file had none), while lookups may run: every lookup finds the old form or the new one,
    /// whole. The new form goes into free slots, its header is published with one hash-map
    /// update, and the call returns after an RCU grace period, when no lookup can still read
    /// the old form (its slots are then free). A form that cannot be loaded (no room kept by
    /// [`Limits::spare`], a window over the bound, ...) is [`Replaced::Skipped`], and the old
    /// form is removed: it describes a map that no longer is. Replacements are serialised.
    pub fn replace(&self, file: BpfFile<'_>) -> Result<Replaced, BpfError> {
        self.writer.lock().replace(&file)
    }

    /// Removes `ino`'s form (its queries then fall back); whether it had one. Returns after a
    /// grace period, like [`BpfTier::replace`].
    pub fn remove(&self, ino: u64) -> Result<bool, BpfError> {
        self.writer.lock().remove(ino)
    }

    /// Test hook, not an API: `ino`'s header as the loader published it.
    #[doc(hidden)]
    pub fn test_hook_header(&self, ino: u64) -> Option<Entry> {
        self.writer.lock().header(ino)
    }

    /// Test hook, not an API: writes `entry` as `ino`'s header in the program's map whatever it
    /// holds, bypassing every check of the loader; writing
    /// [`BpfTier::test_hook_header`]'s entry back restores it. Returns after a grace period.
    #[doc(hidden)]
    pub fn test_hook_set_header(&self, ino: u64, entry: Entry) -> Result<(), BpfError> {
        self.writer.lock().poke_header(ino, entry)
    }

    /// Test hook, not an API: the raw bytes of slot `i` of the data array `array` ("PIECES",
    /// "CBUCKETS", "WORDS"), read through its mapping.
    #[doc(hidden)]
    pub fn test_hook_slot(&self, array: &str, i: usize) -> Option<Vec<u8>> {
        self.writer.lock().arrays().slot_bytes(array, i)
    }

    /// Test hook, not an API: overwrites slot `i` of the data array `array` with `bytes` (one
    /// element) through its mapping, whatever file it belongs to; false if there is no such
    /// slot or `bytes` is not one element long.
    #[doc(hidden)]
    pub fn test_hook_set_slot(&self, array: &str, i: usize, bytes: &[u8]) -> bool {
        self.writer.lock().arrays().set_slot_bytes(array, i, bytes)
    }

    /// Per array: its name, the slots in use and its capacity.
    pub fn room(&self) -> Vec<(&'static str, u64, u32)> {
        self.writer.lock().room()
    }

    /// What loading found.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    fn program(&self) -> Result<&Xdp, BpfError> {
        self.ebpf
            .program(PROGRAM)
            .ok_or_else(|| BpfError::Object(format!("no program {PROGRAM}")))?
            .try_into()
            .map_err(|e| BpfError::Object(format!("program {PROGRAM}: {e}")))
    }

    /// One test run of the program with packet `run`, `repeat` times; the kernel's mean time
    /// per run.
    fn test_run(&self, run: Run, repeat: u32) -> Result<Duration, BpfError> {
        let packet = run.packet();
        let mut out = [0u8; 64];
        let r = self
            .program()?
            .test_run(TestRunOptions {
                data_in: Some(&packet),
                data_out: Some(&mut out),
                repeat,
                ..Default::default()
            })
            .map_err(|e| BpfError::Run(e.to_string()))?;
        if r.return_value != abi::XDP_PASS {
            return Err(BpfError::Run(format!(
                "program returned {} (a slot outside QUERIES/ANSWERS)",
                r.return_value
            )));
        }
        Ok(r.duration)
    }

    /// Answers `queries` in the kernel, one test run per [`REGION_SLOTS`] queries; `flags` are
    /// the packet's `RUN_*` flags (0 for the lookup).
    pub fn answer(&self, queries: &[BeginIn], flags: u32) -> Result<Vec<Answer>, BpfError> {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(REGION_SLOTS) {
            let (region, _guard) = self.region();
            let first = region * REGION_SLOTS;
            for (i, q) in chunk.iter().enumerate() {
                self.queries.set(first + i, *q);
                self.answers.set(
                    first + i,
                    Answer {
                        status: NOT_RUN,
                        ..Answer::default()
                    },
                );
            }
            // chunk.len() <= REGION_SLOTS and first + REGION_SLOTS <= slots: both fit u32.
            let run = Run {
                first: first as u32,
                n: chunk.len() as u32,
                mask: 0,
                flags,
            };
            self.test_run(run, 1)?;
            out.extend((0..chunk.len()).filter_map(|i| self.answers.get(first + i)));
        }
        Ok(out)
    }

    /// Kernel-measured nanoseconds per program run, each run answering one of `queries` in
    /// turn (the first [`rotation_len`] of them), `repeat` runs: one `iomap_begin` call's cost
    /// in the kernel, as a struct_ops hook would pay it.
    pub fn time_one_per_run(
        &self,
        queries: &[BeginIn],
        flags: u32,
        repeat: u32,
    ) -> Result<f64, BpfError> {
        let n = rotation_len(queries.len());
        if n == 0 {
            return Ok(0.0);
        }
        let (region, _guard) = self.region();
        let first = region * REGION_SLOTS;
        for (i, q) in queries.iter().take(n).enumerate() {
            self.queries.set(first + i, *q);
        }
        let run = Run {
            first: first as u32,
            n: 1,
            mask: (n - 1) as u32,
            flags,
        };
        Ok(self.test_run(run, repeat.max(1))?.as_nanos() as f64)
    }

    /// A free region, or the calling thread's own if all are busy.
    fn region(&self) -> (usize, parking_lot::MutexGuard<'_, ()>) {
        for (i, m) in self.regions.iter().enumerate() {
            if let Some(g) = m.try_lock() {
                return (i, g);
            }
        }
        let i = thread_slot() % REGIONS;
        (i, self.regions[i].lock())
    }
}

fn thread_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Relaxed));
    SLOT.with(|s| *s)
}
