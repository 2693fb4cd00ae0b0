//! The building blocks of images: source files, punch patterns, the mkfs call and the debugfs
//! script.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cmd::{self, debugfs_host_path, debugfs_path};
use crate::error::{io_err, Error, Result};
use crate::oracle::FileKind;
use crate::rng::Rng;
use crate::{FileSpec, Image, Kind, Layout};

/// The last logical block an extent-mapped file can use: ext4 caps `s_maxbytes` at
/// `(2^32 - 1) * block_size`, so blocks `0..=2^32 - 2` are addressable.
pub const MAX_LBLK: u32 = u32::MAX - 1;

/// A file layout made of data segments (written from a sparse source file: the gaps between
/// segments are holes that cost nothing) and single- or few-block punches inside them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pattern {
    /// `(first block, length)` of each written segment, ascending.
    pub segments: Vec<(u64, u64)>,
    /// Inclusive `(first, last)` block ranges to punch afterwards, ascending.
    pub punches: Vec<(u64, u64)>,
    /// Extents the pattern leaves if every kept run is physically contiguous.
    pub extents: usize,
    /// One past the last written block (the file size in blocks).
    pub end: u64,
}

impl Pattern {
    /// The last block that is written and not punched.
    pub fn last_kept(&self) -> Option<u64> {
        let mut last = self.end.checked_sub(1)?;
        for &(a, b) in self.punches.iter().rev() {
            if (a..=b).contains(&last) {
                last = a.checked_sub(1)?;
            }
        }
        Some(last)
    }
}

/// A weighted choice table: `(weight, lo, hi)` picks a value in `lo..=hi` with probability
/// proportional to `weight`.
pub(crate) type Table = [(u64, u64, u64)];

fn pick(rng: &mut Rng, table: &Table) -> u64 {
    let total: u64 = table.iter().map(|t| t.0).sum();
    let mut roll = rng.below(total.max(1));
    for &(weight, lo, hi) in table {
        if roll < weight {
            return rng.range(lo, hi);
        }
        roll -= weight;
    }
    table.last().map_or(1, |t| t.1)
}

/// Distribution of kept runs / holes for fragmented files: mostly single blocks, some longer,
/// so the extent map is irregular but the data written stays near two blocks per extent.
pub(crate) const KEEP: &Table = &[(75, 1, 1), (20, 2, 2), (5, 3, 6)];
/// Holes punched between kept runs.
pub(crate) const HOLE: &Table = &[(85, 1, 1), (12, 2, 2), (3, 3, 8)];
/// Gaps between segments (holes in the source file: free).
pub(crate) const GAP: &Table = &[(50, 1, 64), (40, 65, 4096), (10, 4097, 65536)];

/// An irregular pattern of `target` extents: segments of 20..=2000 extents separated by gaps
/// from [`GAP`], kept runs from `keep`, holes from `hole`. Segment starts are multiples of
/// `align` blocks so that the gaps are real holes in the source file.
pub(crate) fn irregular(
    rng: &mut Rng,
    target: usize,
    align: u64,
    keep: &Table,
    hole: &Table,
) -> Pattern {
    let align = align.max(1);
    let mut p = Pattern::default();
    let mut pos = 0u64;
    while p.extents < target {
        let n = (rng.range(20, 2000) as usize).min(target - p.extents);
        let start = pos;
        for i in 0..n {
            pos += pick(rng, keep);
            if i + 1 < n {
                let h = pick(rng, hole);
                p.punches.push((pos, pos + h - 1));
                pos += h;
            }
        }
        p.segments.push((start, pos - start));
        p.extents += n;
        p.end = pos;
        pos = (pos + pick(rng, GAP)).div_ceil(align) * align;
    }
    p
}

/// `blocks` blocks written, every odd block punched: `blocks / 2` one-block extents in a
/// perfectly regular line.
pub(crate) fn every_other(blocks: u64) -> Pattern {
    Pattern {
        segments: vec![(0, blocks)],
        punches: (1..blocks).step_by(2).map(|b| (b, b)).collect(),
        extents: blocks.div_ceil(2) as usize,
        end: blocks,
    }
}

/// Counts the kept runs of `blocks` blocks after the (possibly overlapping) `punches`.
pub(crate) fn kept_runs(blocks: u64, punches: &[(u64, u64)]) -> usize {
    let mut punched = vec![false; blocks as usize];
    for &(a, b) in punches {
        for blk in a..=b.min(blocks.saturating_sub(1)) {
            punched[blk as usize] = true;
        }
    }
    let mut runs = 0;
    let mut prev = true;
    for &p in &punched {
        if !p && prev {
            runs += 1;
        }
        prev = p;
    }
    runs
}

/// Builds one image: a work directory for sources, the mkfs call, and a debugfs script in four
/// phases (writes, preallocations, punches, late writes) so that punched holes are not
/// refilled by later files unless a recipe wants exactly that.
pub(crate) struct Builder {
    pub name: String,
    pub kind: Kind,
    pub dir: PathBuf,
    pub work: PathBuf,
    pub image: PathBuf,
    pub block_size: u32,
    pub rng: Rng,
    pub writes: Vec<String>,
    pub prealloc: Vec<String>,
    pub punches: Vec<String>,
    pub late: Vec<String>,
    pub specs: Vec<FileSpec>,
    pub mkfs_command: String,
    /// When true, [`Self::mkfs`] leaves metadata_csum off and [`Self::finish`] turns it on with
    /// `tune2fs -O metadata_csum` after the debugfs script: libext2fs recomputes a crc32c in
    /// software for every metadata block it writes, which makes punching 10^5 extents two to
    /// three times slower; tune2fs computes every checksum once at the end.
    pub csum_later: bool,
    sources: usize,
    started: Instant,
}

impl Builder {
    pub fn new(kind: Kind, dir: &Path, block_size: u32) -> Result<Self> {
        let name = kind.name().to_owned();
        let dir = if dir.is_absolute() {
            dir.to_owned()
        } else {
            std::env::current_dir()
                .map_err(io_err("reading the current directory for", dir))?
                .join(dir)
        };
        fs::create_dir_all(&dir).map_err(io_err("creating image directory", &dir))?;
        // Source files are scratch: keep them in memory when there is room, whatever `dir` is.
        let work = match crate::shm_dir() {
            Some(shm) if std::env::var_os("IMAGEKIT_KEEP").is_none() => {
                shm.join(format!("imagekit-work-{}-{name}", std::process::id()))
            }
            _ => dir.join(format!("{name}.work")),
        };
        if work.exists() {
            fs::remove_dir_all(&work).map_err(io_err("removing old work directory", &work))?;
        }
        fs::create_dir_all(&work).map_err(io_err("creating work directory", &work))?;
        Ok(Self {
            image: dir.join(format!("{name}.img")),
            rng: Rng::new(kind.seed()),
            name,
            kind,
            dir,
            work,
            block_size,
            writes: Vec::new(),
            prealloc: Vec::new(),
            punches: Vec::new(),
            late: Vec::new(),
            specs: Vec::new(),
            mkfs_command: String::new(),
            csum_later: false,
            sources: 0,
            started: Instant::now(),
        })
    }

    pub fn bs(&self) -> u64 {
        u64::from(self.block_size)
    }

    /// Where [`Self::mkfs`] takes the `-d` tree from.
    pub fn tree_root(&self) -> PathBuf {
        self.work.join("tree")
    }

    /// A fresh source file name in the work directory.
    pub fn source_path(&mut self) -> PathBuf {
        self.sources += 1;
        self.work.join(format!("src-{}", self.sources))
    }

    /// `mke2fs -F -q -t FS_TYPE -b BS -E lazy init ARGS [-d tree] IMAGE` on a sparse image file
    /// of `bytes` bytes.
    ///
    /// With [`Self::csum_later`], `metadata_csum` in a `-O` list becomes `^metadata_csum`.
    pub fn mkfs(
        &mut self,
        fs_type: &str,
        bytes: u64,
        args: &[&str],
        with_tree: bool,
    ) -> Result<()> {
        let file = File::create(&self.image).map_err(io_err("creating image", &self.image))?;
        file.set_len(bytes)
            .map_err(io_err("sizing image", &self.image))?;
        drop(file);
        let mut mkfs = Command::new(cmd::tool("mke2fs")?);
        mkfs.args(["-F", "-q", "-t", fs_type, "-b"])
            .arg(self.block_size.to_string())
            .args([
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            ]);
        let mut later = false;
        for &arg in args {
            if self.csum_later && arg.split(',').any(|f| f == "metadata_csum") {
                later = true;
                let features: Vec<&str> = arg
                    .split(',')
                    .map(|f| {
                        if f == "metadata_csum" {
                            "^metadata_csum"
                        } else {
                            f
                        }
                    })
                    .collect();
                mkfs.arg(features.join(","));
            } else {
                mkfs.arg(arg);
            }
        }
        self.csum_later = later;
        if with_tree {
            mkfs.arg("-d").arg(self.tree_root());
        }
        mkfs.arg(&self.image);
        let out = cmd::run_checked(mkfs, &self.image, &[0])?;
        self.mkfs_command = out.command;
        Ok(())
    }

    /// `e2fsck -fyD`: rebuilds every directory, which turns the multi-block ones into htrees
    /// (mke2fs -d and debugfs leave directories linear). Exit 1 ("modified") is expected.
    pub fn index_dirs(&self) -> Result<()> {
        let mut fsck = Command::new(cmd::tool("e2fsck")?);
        fsck.arg("-fyD").arg(&self.image);
        cmd::run_checked(fsck, &self.image, &[0, 1]).map(|_| ())
    }

    /// Writes `len` random bytes (no all-zero block) to a new source file.
    pub fn random_source(&mut self, len: u64) -> Result<PathBuf> {
        let path = self.source_path();
        let mut file = File::create(&path).map_err(io_err("creating source", &path))?;
        write_random(
            &mut file,
            &path,
            &mut self.rng,
            len,
            self.block_size as usize,
        )?;
        Ok(path)
    }

    /// A sparse source file: random data in each `(first block, blocks)` segment, holes
    /// elsewhere, `size` bytes long.
    pub fn sparse_source(&mut self, segments: &[(u64, u64)], size: u64) -> Result<PathBuf> {
        let path = self.source_path();
        let mut file = File::create(&path).map_err(io_err("creating source", &path))?;
        let bs = self.bs();
        for &(start, blocks) in segments {
            file.seek(SeekFrom::Start(start * bs))
                .map_err(io_err("seeking in source", &path))?;
            write_random(&mut file, &path, &mut self.rng, blocks * bs, bs as usize)?;
        }
        file.set_len(size).map_err(io_err("sizing source", &path))?;
        Ok(path)
    }

    /// `write SRC PATH` in the write phase.
    pub fn write(&mut self, src: &Path, path: &str) -> Result<()> {
        let line = format!("write {} {}", debugfs_host_path(src)?, debugfs_path(path)?);
        self.writes.push(line);
        Ok(())
    }

    /// Adds the commands of `pattern` for `path`: one write, then the punches.
    pub fn pattern_file(&mut self, path: &str, pattern: &Pattern) -> Result<()> {
        let src = self.sparse_source(&pattern.segments, pattern.end * self.bs())?;
        self.write(&src, path)?;
        let quoted = debugfs_path(path)?;
        for &(a, b) in &pattern.punches {
            self.punches.push(format!("punch {quoted} {a} {b}"));
        }
        Ok(())
    }

    /// An [`irregular`] pattern of `target` extents with the default tables, its segments
    /// aligned to 64 KiB so that the gaps are holes in the host source file.
    pub fn irregular(&mut self, target: usize) -> Pattern {
        let align = (65_536 / self.bs()).max(1);
        irregular(&mut self.rng, target, align, KEEP, HOLE)
    }

    pub fn spec(&mut self, spec: FileSpec) {
        self.specs.push(spec);
    }

    /// Runs the script (if any) and returns the finished image.
    pub fn finish(mut self, description: &str) -> Result<Image> {
        let script: Vec<&String> = self
            .writes
            .iter()
            .chain(&self.prealloc)
            .chain(&self.punches)
            .chain(&self.late)
            .collect();
        if !script.is_empty() {
            let mut text = String::new();
            for line in script {
                text.push_str(line);
                text.push('\n');
            }
            let script_path = self.dir.join(format!("{}.debugfs", self.name));
            let (out, complaints) = cmd::debugfs_script(&self.image, &text, &script_path, true)?;
            if !complaints.is_empty() {
                return Err(Error::Debugfs {
                    command: out.command,
                    image: self.image.clone(),
                    stderr: crate::error::cut(&complaints),
                });
            }
            if std::env::var_os("IMAGEKIT_KEEP").is_none() {
                let _ = fs::remove_file(&script_path);
            }
        }
        if self.csum_later {
            let mut tune = Command::new(cmd::tool("tune2fs")?);
            tune.args(["-O", "metadata_csum"]).arg(&self.image);
            let out = cmd::run_checked(tune, &self.image, &[0])?;
            let said = format!("{}{}", out.stdout_text(), out.stderr);
            if said.contains("e2fsck") {
                return Err(Error::Failed {
                    command: out.command,
                    image: self.image.clone(),
                    status: "asks for e2fsck".into(),
                    stderr: crate::error::cut(&said),
                });
            }
            self.mkfs_command.push_str(" && tune2fs -O metadata_csum");
        }
        if std::env::var_os("IMAGEKIT_KEEP").is_none() {
            fs::remove_dir_all(&self.work)
                .map_err(io_err("removing work directory", &self.work))?;
        }
        let build_time = self.started.elapsed();
        tracing::info!(image = %self.name, ms = build_time.as_millis() as u64, "built");
        Ok(Image {
            name: self.name,
            recipe: crate::Recipe::Debugfs(self.kind),
            path: self.image,
            block_size: self.block_size,
            files: self.specs.iter().map(|s| s.path.clone()).collect(),
            specs: self.specs,
            description: description.to_owned(),
            mkfs_command: self.mkfs_command,
            kernel_mountable: u64::from(self.block_size) <= crate::kernel::page_size(),
            build_time,
        })
    }
}

/// Writes `len` random bytes in 4 MiB chunks, no all-zero `block`.
fn write_random(file: &mut File, path: &Path, rng: &mut Rng, len: u64, block: usize) -> Result<()> {
    const CHUNK: u64 = 4 << 20;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut left = len;
    while left > 0 {
        let n = CHUNK.min(left) as usize;
        rng.fill_no_zero_blocks(&mut buf[..n], block);
        file.write_all(&buf[..n])
            .map_err(io_err("writing source", path))?;
        left -= n as u64;
    }
    Ok(())
}

/// Writes a small file of random content into the host tree.
pub(crate) fn tree_file(root: &Path, rel: &str, rng: &mut Rng, len: usize) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating tree directory", parent))?;
    }
    let mut data = rng.bytes(len);
    if let Some(first) = data.first_mut() {
        *first |= 1;
    }
    fs::write(&path, data).map_err(io_err("writing tree file", &path))
}

pub(crate) fn tree_dir(root: &Path, rel: &str) -> Result<()> {
    let path = root.join(rel);
    fs::create_dir_all(&path).map_err(io_err("creating tree directory", &path))
}

pub(crate) fn tree_symlink(root: &Path, rel: &str, target: &str) -> Result<()> {
    let path = root.join(rel);
    std::os::unix::fs::symlink(target, &path).map_err(io_err("creating symlink", &path))
}

/// A FIFO in the host tree (mke2fs -d copies it as a FIFO inode).
pub(crate) fn tree_fifo(root: &Path, rel: &str) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = root.join(rel);
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::BadPath {
            path: path.to_string_lossy().into_owned(),
            reason: "host path holds a NUL byte",
        })?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) };
    if rc != 0 {
        return Err(io_err("creating FIFO", &path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A regular-file spec with just a size and a layout.
pub(crate) fn file_spec(path: &str, layout: Layout, size: u64, note: &str) -> FileSpec {
    FileSpec {
        path: path.to_owned(),
        kind: FileKind::File,
        layout,
        extents: (size == 0).then_some(0..=0),
        depth: None,
        unwritten: None,
        last_lblk: None,
        size: Some(size),
        note: note.to_owned(),
    }
}
