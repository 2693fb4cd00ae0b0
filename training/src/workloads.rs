//! The built-in workloads `training record` traces: each reads and writes, on a fresh ext4
//! mounted `nodelalloc`, the way the kernel-allocator images' recipes (imagekit's `Allocated`)
//! build their files, with checkpoints between phases. Reads that stand for a program's I/O
//! path use `O_DIRECT` where the program would (a VM's disk, a downloaded file checked), so each
//! read asks for its mapping instead of finding the page cache.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use imagekit::Rng;
use livefs::trace::Recorder;

const BS: u64 = 4096;

/// A built-in workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// A VM's disk image: a sparse 4 GiB file written at random (1-16 blocks, direct I/O),
    /// then read at random with a quarter as many writes mixed in.
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

impl Workload {
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
            Self::VmDisk => n * 16 * 2,
            Self::FallocatePunch => n * 16 * 2,
            Self::Appenders => n * 4 * 8,
            Self::Torrent => n * 16,
            Self::Sqlite => n * 30,
        };
        (data_blocks + data_blocks / 8 + 65_536) * BS
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
    o.open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn write_at(f: &File, path: &Path, buf: &[u8], block: u64) -> Result<()> {
    f.write_all_at(buf, block * BS)
        .with_context(|| format!("writing block {block} of {}", path.display()))
}

fn read_at(f: &File, path: &Path, buf: &mut [u8], block: u64) -> Result<()> {
    // A short read (past EOF) is fine: the mapping was asked all the same.
    f.read_at(buf, block * BS)
        .map(drop)
        .with_context(|| format!("reading block {block} of {}", path.display()))
}

fn fallocate(f: &File, path: &Path, mode: i32, block: u64, blocks: u64) -> Result<()> {
    let (off, len) = ((block * BS) as libc::off_t, (blocks * BS) as libc::off_t);
    // SAFETY: fallocate on a descriptor `f` owns.
    if unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!(
            "fallocate mode {mode:#x} of blocks [{block}, +{blocks}) of {}: {e}",
            path.display()
        );
    }
    Ok(())
}

fn vm_disk(dir: &Path, rec: &mut Recorder, n: u64, rng: &mut Rng) -> Result<()> {
    let path = dir.join("disk.img");
    let f = open(&path, true)?;
    let blocks = (4u64 << 30) / BS;
    f.set_len(blocks * BS).context("sizing the disk")?;
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
    for _ in 0..n {
        io(rng, true)?;
    }
    rec.checkpoint()?;
    for i in 0..n * 2 {
        io(rng, i % 8 == 0)?;
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
            f.sync_data()
                .with_context(|| format!("fsync of {}", paths[k].display()))?;
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
    f.set_len(n * PIECE * BS).context("sizing the download")?;
    let mut order: Vec<u64> = (0..n).collect();
    shuffle(&mut order, rng);
    let mut buf = vec![0u8; (PIECE * BS) as usize];
    for (i, &p) in order.iter().enumerate() {
        rng.fill(&mut buf);
        write_at(&f, &path, &buf, p * PIECE)?;
        if i % 64 == 63 {
            f.sync_data().context("fsync of the download")?;
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
    let mut sql = String::from(
        "PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);\n",
    );
    let mut rows = 0u64;
    for _ in 0..n {
        sql.push_str("BEGIN;\n");
        for _ in 0..rng.range(1, 4) {
            rows += 1;
            sql.push_str(&format!(
                "INSERT INTO t(v) VALUES (randomblob({}));\n",
                rng.range(500, 20_000)
            ));
        }
        sql.push_str("COMMIT;\n");
    }
    run_sqlite(&db, &sql)?;
    rec.checkpoint()?;
    let mut sql = String::from("PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n");
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
    run_sqlite(&db, &sql)
}

fn run_sqlite(db: &Path, sql: &str) -> Result<()> {
    use std::io::Write;
    let tool = imagekit::tool("sqlite3")?;
    let mut child = std::process::Command::new(tool)
        .arg("-bail")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting sqlite3")?;
    child
        .stdin
        .take()
        .context("sqlite3's stdin")?
        .write_all(sql.as_bytes())
        .context("feeding sqlite3")?;
    let status = child.wait().context("waiting for sqlite3")?;
    if !status.success() {
        bail!("sqlite3 on {} failed: {status}", db.display());
    }
    Ok(())
}
