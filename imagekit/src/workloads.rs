//! The built-in workloads `training record` and the demo trace ([`record`]): each reads and writes, on a fresh ext4
//! mounted `nodelalloc`, the way the kernel-allocator images' recipes (imagekit's `Allocated`)
//! build their files, with checkpoints between phases. Reads that stand for a program's I/O
//! path use `O_DIRECT` where the program would (a VM's disk, a downloaded file checked), so each
//! read asks for its mapping instead of finding the page cache.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use livefs::trace::{Recorder, Trace};

use crate::error::io_err;
use crate::{Error, Result, Rng};

const BS: u64 = 4096;

/// A built-in workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A VM's disk image: a sparse 4 GiB file already written at random (1-16 blocks, before
    /// tracing starts), then read at random, one write (direct I/O) in sixteen: read-heavy.
    VmDisk,
    /// A fallocated file under random punches, zero ranges, collapses, inserts and
    /// re-allocations, with random reads between them.
    FallocatePunch,
    /// Four logs appended in turn (1-8 blocks, fsync each) while a reader reads back random
    /// earlier blocks of each (direct I/O).
    Appenders,
    /// A download in random piece order (16-block pieces, fsync every 64), then every piece
    /// read back in another random order (direct I/O), as a torrent client checks it.
    Torrent,
    /// An SQLite database (the `sqlite3` shell, rollback journal, synchronous=FULL): inserts,
    /// then updates, deletes and queries.
    Sqlite,
}

/// The traces the demo records, with each workload's operations: the read-heavy VM disk and
/// the fallocate/punch file at the largest scale, and the write-heavy ones.
pub const DEMO_TRACES: [(Workload, u32); 5] = [
    (Workload::VmDisk, 20_000),
    (Workload::FallocatePunch, 20_000),
    (Workload::Appenders, 5_000),
    (Workload::Torrent, 5_000),
    (Workload::Sqlite, 5_000),
];

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Self::VmDisk,
        Self::FallocatePunch,
        Self::Appenders,
        Self::Torrent,
        Self::Sqlite,
    ];

    /// One line on what it does.
    pub fn summary(self) -> &'static str {
        match self {
            Self::VmDisk => "a VM disk written at random, then read at random with one write in sixteen (direct I/O)",
            Self::FallocatePunch => "a fallocated file under punches, zero ranges, collapses, inserts, writes and reads",
            Self::Appenders => "four logs appended in turn (fsync each) while a reader reads them back",
            Self::Torrent => "a download written in random piece order, then read back in another",
            Self::Sqlite => "an SQLite database under inserts, then updates, deletes and queries",
        }
    }

    /// Name, as `--workload` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::VmDisk => "vm-disk",
            Self::FallocatePunch => "fallocate-punch",
            Self::Appenders => "appenders",
            Self::Torrent => "torrent",
            Self::Sqlite => "sqlite",
        }
    }

    /// Whether it runs with the allocator knobs under which small allocations of different
    /// files interleave (imagekit's `interleave_small_allocations`), as on a busy machine.
    pub fn interleaves(self) -> bool {
        matches!(self, Self::Appenders | Self::Sqlite)
    }

    /// File-system size that holds the workload's data at `scale` operations.
    pub fn fs_bytes(self, scale: u32) -> u64 {
        let n = u64::from(scale);
        let data_blocks = match self {
            Self::VmDisk => n * 16 * 2 / 2 + n * 16 / 4,
            Self::FallocatePunch => n * 16 * 2,
            Self::Appenders => n * 4 * 8,
            Self::Torrent => n * 16,
            Self::Sqlite => n * 30,
        };
        (data_blocks + data_blocks / 8 + 65_536) * BS
    }

    /// What the workload finds when tracing starts, made in `dir` before it starts.
    pub fn prepare(self, dir: &Path, scale: u32, seed: u64) -> Result<()> {
        let mut rng = Rng::new(seed ^ 0x5eed);
        match self {
            Self::VmDisk => vm_disk_prepare(dir, u64::from(scale.max(1)), &mut rng),
            Self::FallocatePunch | Self::Appenders | Self::Torrent | Self::Sqlite => Ok(()),
        }
    }

    /// Runs the workload in `dir` with `scale` operations per phase, checkpointing `rec`
    /// between phases.
    pub fn run(self, dir: &Path, rec: &mut Recorder, scale: u32, seed: u64) -> Result<()> {
        let mut rng = Rng::new(seed);
        let n = u64::from(scale.max(1));
        match self {
            Self::VmDisk => vm_disk(dir, rec, n, &mut rng),
            Self::FallocatePunch => fallocate_punch(dir, rec, n, &mut rng),
            Self::Appenders => appenders(dir, rec, n, &mut rng),
            Self::Torrent => torrent(dir, rec, n, &mut rng),
            Self::Sqlite => sqlite(dir, rec, n, &mut rng),
        }
    }
}

/// A block-aligned buffer for direct I/O.
struct Aligned {
    bytes: Vec<u8>,
    at: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let bytes = vec![0u8; len + BS as usize];
        let at = bytes.as_ptr().align_offset(BS as usize);
        Self { bytes, at }
    }

    fn get(&mut self, len: usize) -> &mut [u8] {
        &mut self.bytes[self.at..self.at + len]
    }
}

fn open(path: &Path, direct: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).read(true).write(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path).map_err(io_err("opening", path))
}

fn write_at(f: &File, path: &Path, buf: &[u8], block: u64) -> Result<()> {
    f.write_all_at(buf, block * BS)
        .map_err(io_err("writing", path))
}

fn read_at(f: &File, path: &Path, buf: &mut [u8], block: u64) -> Result<()> {
    // A short read (past EOF) is fine: the mapping was asked all the same.
    f.read_at(buf, block * BS)
        .map(drop)
        .map_err(io_err("reading", path))
}

fn fallocate(f: &File, path: &Path, mode: i32, block: u64, blocks: u64) -> Result<()> {
    let (off, len) = ((block * BS) as libc::off_t, (blocks * BS) as libc::off_t);
    // SAFETY: fallocate on a descriptor `f` owns.
    if unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(failed(
            path,
            format!("fallocate mode {mode:#x} of blocks [{block}, +{blocks}): {e}"),
        ));
    }
    Ok(())
}

/// The VM disk as the trace finds it: `n` random writes of 1-16 blocks into a sparse 4 GiB
/// file, made before tracing starts.
fn vm_disk_prepare(dir: &Path, n: u64, rng: &mut Rng) -> Result<()> {
    let path = dir.join("disk.img");
    let f = open(&path, true)?;
    let blocks = (4u64 << 30) / BS;
    f.set_len(blocks * BS).map_err(io_err("sizing", &path))?;
    let mut buf = Aligned::new(16 * BS as usize);
    for _ in 0..n {
        let len = rng.range(1, 16);
        let b = buf.get((len * BS) as usize);
        rng.fill(b);
        write_at(&f, &path, b, rng.below(blocks - len))?;
    }
    f.sync_all().map_err(io_err("syncing", &path))
}

fn vm_disk(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    let path = dir.join("disk.img");
    let f = open(&path, true)?;
    let blocks = (4u64 << 30) / BS;
    let mut buf = Aligned::new(16 * BS as usize);
    let mut io = |rng: &mut Rng, write: bool| -> Result<()> {
        let len = rng.range(1, 16);
        let at = rng.below(blocks - len);
        let b = buf.get((len * BS) as usize);
        if write {
            rng.fill(b);
            write_at(&f, &path, b, at)
        } else {
            read_at(&f, &path, b, at)
        }
    };
    for i in 0..n * 4 {
        io(rng, i % 16 == 0)?;
        if i == n * 2 {
            rec.checkpoint()?;
        }
    }
    Ok(())
}

fn fallocate_punch(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    let path = dir.join("allocated");
    let f = open(&path, false)?;
    let blocks = n * 16;
    fallocate(&f, &path, 0, 0, blocks)?;
    rec.checkpoint()?;
    let keep = libc::FALLOC_FL_KEEP_SIZE;
    let mut buf = vec![0u8; 8 * BS as usize];
    for i in 0..n * 2 {
        let len = rng.range(1, 8);
        let at = rng.below(blocks - len);
        match rng.below(100) {
            0..=29 => fallocate(&f, &path, libc::FALLOC_FL_PUNCH_HOLE | keep, at, len)?,
            30..=39 => fallocate(&f, &path, 0, at, len)?,
            40..=44 => fallocate(&f, &path, libc::FALLOC_FL_ZERO_RANGE, at, len)?,
            45..=46 => fallocate(&f, &path, libc::FALLOC_FL_COLLAPSE_RANGE, at, len)?,
            47..=48 => fallocate(&f, &path, libc::FALLOC_FL_INSERT_RANGE, at, len)?,
            49..=59 => {
                rng.fill(&mut buf[..(len * BS) as usize]);
                write_at(&f, &path, &buf[..(len * BS) as usize], at)?;
            }
            _ => read_at(&f, &path, &mut buf[..(len * BS) as usize], at)?,
        }
        if i % (n / 2).max(1) == 0 && i > 0 {
            rec.checkpoint()?;
        }
    }
    Ok(())
}

fn appenders(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    let paths: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("append-{i}"))).collect();
    let files: Vec<File> = paths
        .iter()
        .map(|p| open(p, false))
        .collect::<Result<_>>()?;
    let readers: Vec<File> = paths.iter().map(|p| open(p, true)).collect::<Result<_>>()?;
    let mut ends = [0u64; 4];
    let mut buf = vec![0u8; 8 * BS as usize];
    let mut rbuf = Aligned::new(8 * BS as usize);
    for t in 0..n {
        for (k, f) in files.iter().enumerate() {
            let len = rng.range(1, 8);
            rng.fill(&mut buf[..(len * BS) as usize]);
            write_at(f, &paths[k], &buf[..(len * BS) as usize], ends[k])?;
            ends[k] += len;
            f.sync_data().map_err(io_err("fsync of", &paths[k]))?;
        }
        let k = rng.below(4) as usize;
        let len = rng.range(1, 8).min(ends[k]);
        read_at(
            &readers[k],
            &paths[k],
            rbuf.get((len * BS) as usize),
            rng.below(ends[k] - len + 1),
        )?;
        if t == n / 2 {
            rec.checkpoint()?;
        }
    }
    Ok(())
}

fn torrent(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    const PIECE: u64 = 16;
    let path = dir.join("download");
    let f = open(&path, false)?;
    f.set_len(n * PIECE * BS).map_err(io_err("sizing", &path))?;
    let mut order: Vec<u64> = (0..n).collect();
    shuffle(&mut order, rng);
    let mut buf = vec![0u8; (PIECE * BS) as usize];
    for (i, &p) in order.iter().enumerate() {
        rng.fill(&mut buf);
        write_at(&f, &path, &buf, p * PIECE)?;
        if i % 64 == 63 {
            f.sync_data().map_err(io_err("fsync of", &path))?;
        }
    }
    rec.checkpoint()?;
    let reader = open(&path, true)?;
    let mut rbuf = Aligned::new((PIECE * BS) as usize);
    shuffle(&mut order, rng);
    for &p in &order {
        read_at(&reader, &path, rbuf.get((PIECE * BS) as usize), p * PIECE)?;
    }
    Ok(())
}

fn shuffle(v: &mut [u64], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

fn sqlite(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    let db = dir.join("database.sqlite");
    let mut sql = format!("{}{}", crate::sqlite::JOURNAL, crate::sqlite::TABLE);
    let mut rows = 0u64;
    for _ in 0..n {
        crate::sqlite::insert_rows(&mut sql, rng, &mut rows);
        sql.push_str("COMMIT;\n");
    }
    crate::sqlite::run(&db, &sql, dir)?;
    rec.checkpoint()?;
    let mut sql = String::from(crate::sqlite::JOURNAL);
    for _ in 0..n {
        let row = rng.range(1, rows);
        match rng.below(3) {
            0 => sql.push_str(&format!(
                "UPDATE t SET v = randomblob({}) WHERE id = {row};\n",
                rng.range(500, 20_000)
            )),
            1 => sql.push_str(&format!("DELETE FROM t WHERE id = {row};\n")),
            _ => sql.push_str(&format!(
                "SELECT length(v) FROM t WHERE id BETWEEN {row} AND {};\n",
                row + 20
            )),
        }
    }
    crate::sqlite::run(&db, &sql, dir)
}

/// A workload step that went wrong, naming the file.
fn failed(path: &Path, reason: String) -> Error {
    Error::Unexpected {
        image: path.to_path_buf(),
        path: String::new(),
        reason,
    }
}

/// Runs `workload` on a fresh ext4 image in `dir`, loop-mounted `nodelalloc`, and records its
/// trace (tracefs ring buffer of `buffer_kib` KiB per CPU): the image is made, prepared,
/// traced, and unmounted. Needs root.
pub fn record(
    dir: &Path,
    workload: Workload,
    scale: u32,
    seed: u64,
    buffer_kib: u64,
) -> Result<Trace> {
    let image = dir.join(format!("{}.img", workload.name()));
    let mount = crate::kernel::fresh_mount_nodelalloc(&image, workload.fs_bytes(scale))?;
    if workload.interleaves() {
        crate::kernel::interleave_small_allocations(&mount)?;
    }
    workload.prepare(mount.path(), scale, seed)?;
    let mut rec = Recorder::start(mount.path(), workload.name(), buffer_kib)?;
    workload.run(mount.path(), &mut rec, scale, seed)?;
    let trace = rec.finish()?;
    mount.unmount()?;
    let _ = std::fs::remove_file(&image);
    Ok(trace)
}
