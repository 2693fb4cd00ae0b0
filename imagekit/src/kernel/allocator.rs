//! The images whose maps the kernel makes ([`crate::Recipe::Punched`],
//! [`crate::Recipe::Allocated`]): a fresh ext4 loop-mounted read-write, files made through
//! system calls, unmounted. Needs root.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{fresh_rw_mount, interleave_small_allocations, LoopMount};
use crate::error::{io_err, Error, Result};
use crate::Rng;

/// Block size of every kernel-made image.
const BS: u64 = 4096;

/// Makes `image`: a 4 KiB-block ext4 image whose file `/punched` has exactly `extents`
/// unwritten extents, made by the kernel: `fallocate` of `2 * extents` blocks on a read-write
/// loop mount, then a hole punched in every other block. Nothing is written but metadata, so
/// 10^6 extents take seconds and the (sparse) image stays small. Returns the mke2fs command.
pub(crate) fn punched(image: &Path, extents: u32) -> Result<String> {
    let blocks = u64::from(extents) * 2;
    // Room for the file's blocks, its extent tree (12 bytes an extent) and the rest.
    let fs_bytes = (blocks + blocks / 64 + 65_536) * BS;
    let (mount, mkfs) = fresh_rw_mount(image, fs_bytes)?;
    let (file, path) = create(&mount, "/punched")?;
    let len = i64::try_from(blocks * BS).map_err(|_| Error::Unexpected {
        image: image.to_owned(),
        path: "/punched".into(),
        reason: format!("{extents} extents is too many"),
    })?;
    fallocate(&file, &path, 0, 0, len)?;
    for b in (1..blocks).step_by(2) {
        punch(&file, &path, b, 1)?;
    }
    file.sync_all().map_err(io_err("syncing", &path))?;
    drop(file);
    mount.unmount()?;
    Ok(mkfs)
}

/// A map the kernel's allocator makes, on a read-write loop mount of a fresh 4 KiB-block ext4
/// image: irregular gaps and lengths, as real workloads leave them (unlike the regular
/// every-other-block punch of [`crate::Recipe::Punched`], which one line predicts exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allocated {
    /// `/random-punched`: a fallocated file with holes of 1 to 8 blocks punched at random
    /// gaps of 1 to 16 blocks: `scale` unwritten extents of irregular lengths.
    RandomPunched,
    /// `/append-0` .. `/append-3`: four files appended in turn, 1 to 8 blocks of random data
    /// at a time, each append `fsync`ed, with the allocator's stream and group-preallocation
    /// knobs set so the appends interleave on disk (a log directory, a mail spool). The first
    /// two append `scale` times, to the end, so every append of theirs lands among the
    /// other's; the third stops after half the turns and the fourth after a fifth
    /// ([`APPENDS_DIVISOR`]), so one image holds real allocator maps of several sizes, the
    /// smallest about `scale / 5` extents.
    Appenders,
    /// `/sparse-disk`: a 16 GiB sparse file (a VM disk) with `scale` writes of 1 to 16 blocks
    /// of random data at random block offsets, then one `fsync` (delayed allocation places
    /// them).
    SparseDisk,
    /// `/database.sqlite`: an SQLite database (the `sqlite3` shell, rollback journal,
    /// `synchronous=FULL`) under `scale` transactions of 1 to 4 inserts of 0.5 to 20 KB blobs,
    /// one in three also deleting a row: every commit writes, fsyncs and deletes its journal,
    /// so the database's growth interleaves with the journals' blocks (allocator knobs as for
    /// the appenders).
    Sqlite,
}

/// The appenders' four files: file `k` appends in the first `scale / APPENDS_DIVISOR[k]` of the
/// recipe's `scale` turns.
pub const APPENDS_DIVISOR: [u32; 4] = [1, 1, 2, 5];

impl Allocated {
    /// Every recipe.
    pub const ALL: [Allocated; 4] = [
        Self::RandomPunched,
        Self::Appenders,
        Self::SparseDisk,
        Self::Sqlite,
    ];

    /// Short name (image file stem and dataset prefix; [`crate::Recipe::name`]).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RandomPunched => "kernel-random-punched",
            Self::Appenders => "kernel-appenders",
            Self::SparseDisk => "kernel-sparse-disk",
            Self::Sqlite => "kernel-sqlite",
        }
    }

    /// One line on what the image holds.
    #[must_use]
    pub fn description(self, scale: u32) -> String {
        match self {
            Self::RandomPunched => format!("4 KiB blocks, /random-punched: fallocated, then {scale} holes of 1-8 blocks punched at random gaps of 1-16 blocks by the kernel (unwritten extents; reads are zeros)"),
            Self::Appenders => {
                let [a, b, c, d] = APPENDS_DIVISOR.map(|k| scale / k);
                format!("4 KiB blocks, /append-0..3: four files appended in turn, {a}, {b}, {c} and {d} times (1-8 blocks of data, fsync after each), allocator knobs set so the appends interleave")
            }
            Self::SparseDisk => format!("4 KiB blocks, /sparse-disk: a 16 GiB sparse file with {scale} writes of 1-16 blocks at random offsets, placed by delayed allocation"),
            Self::Sqlite => format!("4 KiB blocks, /database.sqlite: an SQLite database after {scale} fsynced transactions of 1-4 inserts of 0.5-20 KB blobs (one in three with a delete), rollback journal"),
        }
    }

    /// The files the image holds.
    #[must_use]
    pub fn files(self) -> Vec<String> {
        match self {
            Self::RandomPunched => vec!["/random-punched".into()],
            Self::Appenders => (0..4).map(|i| format!("/append-{i}")).collect(),
            Self::SparseDisk => vec!["/sparse-disk".into()],
            Self::Sqlite => vec!["/database.sqlite".into()],
        }
    }

    /// Whether its files hold written data (worth reading end to end).
    #[must_use]
    pub fn written(self) -> bool {
        !matches!(self, Self::RandomPunched)
    }
}

/// Writes `buf` at byte `offset` of `file`, all of it.
fn pwrite_all(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
        .map_err(io_err("writing", path))
}

/// Creates (or truncates) `name` on the mount, open for reading and writing.
fn create(mount: &LoopMount, name: &str) -> Result<(File, PathBuf)> {
    let path = mount.host_path(name);
    std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map(|f| (f, path.clone()))
        .map_err(io_err("creating", &path))
}

/// `fallocate(file, mode, offset, len)`.
fn fallocate(file: &File, path: &Path, mode: i32, offset: i64, len: i64) -> Result<()> {
    // SAFETY: `file` is open for writing for the duration of the call.
    if unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, len) } != 0 {
        let action = if mode == 0 {
            "fallocate"
        } else {
            "punching a hole in"
        };
        return Err(io_err(action, path)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Punches `blocks` blocks from block `at`, keeping the size.
fn punch(file: &File, path: &Path, at: u64, blocks: u64) -> Result<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    fallocate(file, path, mode, (at * BS) as i64, (blocks * BS) as i64)
}

/// Makes `image` ([`Allocated`]) through the kernel with `scale` operations and the seed
/// `seed`. Returns the mke2fs command.
pub(crate) fn allocated(image: &Path, pattern: Allocated, scale: u32, seed: u64) -> Result<String> {
    let n = u64::from(scale);
    // Room for the data (at most 16 blocks an operation, four files for the appenders), the
    // extent trees and the rest.
    let data_blocks = match pattern {
        Allocated::RandomPunched => n * 25,
        Allocated::Appenders => n * 4 * 8,
        Allocated::SparseDisk => n * 16,
        Allocated::Sqlite => n * 24,
    };
    let fs_bytes = (data_blocks + data_blocks / 16 + 65_536) * BS;
    let (mount, mkfs) = fresh_rw_mount(image, fs_bytes)?;
    let mut rng = Rng::new(seed);
    match pattern {
        Allocated::RandomPunched => random_punched(&mount, &mut rng, n, data_blocks)?,
        Allocated::Appenders => appenders(&mount, &mut rng, n)?,
        Allocated::SparseDisk => sparse_disk(&mount, &mut rng, n)?,
        Allocated::Sqlite => sqlite(&mount, &mut rng, n, image)?,
    }
    mount.unmount()?;
    Ok(mkfs)
}

/// [`Allocated::RandomPunched`]: `data_blocks` fallocated, then `n` random holes.
fn random_punched(mount: &LoopMount, rng: &mut Rng, n: u64, data_blocks: u64) -> Result<()> {
    let (file, path) = create(mount, "/random-punched")?;
    let len = i64::try_from(data_blocks * BS).map_err(|_| Error::Unexpected {
        image: mount.image().to_owned(),
        path: String::new(),
        reason: format!("fallocate: {n} operations is too many"),
    })?;
    fallocate(&file, &path, 0, 0, len)?;
    let mut at = 0u64;
    for _ in 0..n {
        at += rng.range(1, 16);
        let hole = rng.range(1, 8);
        if at + hole >= data_blocks {
            break;
        }
        punch(&file, &path, at, hole)?;
        at += hole;
    }
    file.sync_all().map_err(io_err("syncing", &path))
}

/// [`Allocated::Appenders`]: four files appended in turn, each append fsynced.
fn appenders(mount: &LoopMount, rng: &mut Rng, n: u64) -> Result<()> {
    interleave_small_allocations(mount)?;
    let files: Vec<(File, PathBuf)> = (0..4)
        .map(|i| create(mount, &format!("/append-{i}")))
        .collect::<Result<_>>()?;
    let turns = APPENDS_DIVISOR.map(|k| n / u64::from(k));
    let mut ends = [0u64; 4];
    let mut buf = vec![0u8; 8 * BS as usize];
    for t in 0..n {
        for (k, (file, path)) in files.iter().enumerate() {
            if t >= turns[k] {
                continue;
            }
            let len = (rng.range(1, 8) * BS) as usize;
            rng.fill(&mut buf[..len]);
            pwrite_all(file, path, &buf[..len], ends[k])?;
            ends[k] += len as u64;
            file.sync_data().map_err(io_err("fsync of", path))?;
        }
    }
    Ok(())
}

/// [`Allocated::SparseDisk`]: `n` random writes into a 16 GiB sparse file, one fsync.
fn sparse_disk(mount: &LoopMount, rng: &mut Rng, n: u64) -> Result<()> {
    let (file, path) = create(mount, "/sparse-disk")?;
    let size = 16u64 << 30;
    file.set_len(size).map_err(io_err("sizing", &path))?;
    let mut buf = vec![0u8; 16 * BS as usize];
    for _ in 0..n {
        let blocks = rng.range(1, 16);
        let at = rng.below(size / BS - blocks);
        let len = (blocks * BS) as usize;
        rng.fill(&mut buf[..len]);
        pwrite_all(&file, &path, &buf[..len], at * BS)?;
    }
    file.sync_all().map_err(io_err("syncing", &path))
}

/// [`Allocated::Sqlite`]: `n` transactions run by the `sqlite3` shell, some deleting an earlier
/// row.
fn sqlite(mount: &LoopMount, rng: &mut Rng, n: u64, image: &Path) -> Result<()> {
    interleave_small_allocations(mount)?;
    let mut sql = format!("{}{}", crate::sqlite::JOURNAL, crate::sqlite::TABLE);
    let mut rows = 0u64;
    for _ in 0..n {
        crate::sqlite::insert_rows(&mut sql, rng, &mut rows);
        if rows > 10 && rng.range(1, 3) == 1 {
            let row = rng.range(1, rows);
            sql.push_str(&format!("DELETE FROM t WHERE id={row};\n"));
        }
        sql.push_str("COMMIT;\n");
    }
    crate::sqlite::run(&mount.host_path("/database.sqlite"), &sql, image)
}
