//! Answers read back from `debugfs`, a reader we did not write.
//!
//! Each function runs debugfs read-only (`-R` for one request, `-f SCRIPT` for batches, since
//! each debugfs start costs milliseconds) and parses what it prints. The formats parsed, as
//! printed by e2fsprogs 1.47:
//!
//! * `ex PATH`: a header `Level Entries Logical Physical Length Flags`, then one line per tree
//!   entry. Index entries: `L/ D  i/ n  lblk - lblk_end  child  len`; leaf entries (level == D,
//!   the tree depth): `D/ D  i/ n  lblk - lblk_end  pblk - pblk_end  len [Uninit]`. Columns are
//!   padded with `%*llu`, so they are split on blanks after turning each `/` into a blank.
//!   A file that is not extent-mapped gives `PATH: does not uses extent block maps` on stderr.
//! * `stat PATH`: `Inode: N   Type: T   Mode: 0644   Flags: 0x80000`, `Generation: G ...`,
//!   `User: .. Size: S`, `Links: L   Blockcount: B`, then `EXTENTS:` or `BLOCKS:` and one line of
//!   comma-separated `(lblk[-lblk_end][[u]]):pblk[-pblk_end]` runs with metadata entries
//!   `(ETBn)`, `(IND)`, `(DIND)`, `(TIND)`; or `Fast link dest: "T"`; or
//!   `Size of inline data: N`.
//! * `bmap PATH LBLK`: the physical block, `P (uninit)` for an unwritten one, `0` for a hole.
//! * `ls -p DIR`: `/ino/mode/uid/gid/name/size/` per entry (size empty for directories);
//!   unused slots are printed too, as `/0/000000/0/0//0/`.

use std::collections::VecDeque;
use std::path::Path;

use crate::cmd::{self, debugfs_path, split_sections, Output};
use crate::error::{cut, io_err, Error, Result};

/// One leaf extent (or, for block-mapped files, one run of physically contiguous blocks), in
/// file-system blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OracleExtent {
    /// First logical block.
    pub lblk: u32,
    /// First physical block.
    pub pblk: u64,
    /// Number of blocks (at least 1).
    pub len: u32,
    /// True for an unwritten (preallocated, reads as zeros) extent.
    pub unwritten: bool,
}

impl OracleExtent {
    /// One past the last logical block, as u64 so that it cannot overflow.
    #[must_use]
    pub fn lblk_end(&self) -> u64 {
        u64::from(self.lblk) + u64::from(self.len)
    }

    /// One past the last physical block.
    #[must_use]
    pub fn pblk_end(&self) -> u64 {
        self.pblk + u64::from(self.len)
    }
}

/// Merges neighbours that continue each other logically and physically and have the same
/// written/unwritten state, so that maps from different oracles (the extent tree, a block map
/// walk, the kernel's FIEMAP, which may split or join differently) compare equal when they
/// describe the same blocks. Sorts first.
#[must_use]
pub fn normalize(extents: &[OracleExtent]) -> Vec<OracleExtent> {
    let mut sorted = extents.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<OracleExtent> = Vec::with_capacity(sorted.len());
    for e in sorted {
        if let Some(last) = out.last_mut() {
            let merged_len = u64::from(last.len) + u64::from(e.len);
            if last.lblk_end() == u64::from(e.lblk)
                && last.pblk_end() == e.pblk
                && last.unwritten == e.unwritten
            {
                if let Ok(len) = u32::try_from(merged_len) {
                    last.len = len;
                    continue;
                }
            }
        }
        out.push(e);
    }
    out
}

/// One index entry of an extent tree (a line of `ex` above the leaf level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Tree level of the node holding this entry (0 = the root in the inode).
    pub level: u16,
    /// First logical block covered.
    pub lblk: u32,
    /// Block number of the child node.
    pub child: u64,
}

/// An extent tree as `debugfs -R "ex PATH"` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtentTree {
    /// Tree depth (0: the extents sit in the inode).
    pub depth: u16,
    /// The leaf extents, in the order debugfs printed them (ascending `lblk`).
    pub extents: Vec<OracleExtent>,
    /// The index entries, top-down in walk order.
    pub index: Vec<IndexEntry>,
}

/// What kind of inode a directory entry points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// A mode whose type bits are none of the above.
    Unknown,
}

impl FileKind {
    /// The kind encoded in the type bits (`S_IFMT`) of an inode mode.
    #[must_use]
    pub fn from_mode(mode: u32) -> Self {
        match mode & 0o170_000 {
            0o100_000 => Self::File,
            0o040_000 => Self::Dir,
            0o120_000 => Self::Symlink,
            0o020_000 => Self::CharDev,
            0o060_000 => Self::BlockDev,
            0o010_000 => Self::Fifo,
            0o140_000 => Self::Socket,
            _ => Self::Unknown,
        }
    }
}

/// One path in the image, from `ls -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleFile {
    /// Absolute path inside the image (`/` for the root).
    pub path: String,
    /// Inode number.
    pub ino: u32,
    /// Kind from the mode bits.
    pub kind: FileKind,
    /// Full mode (type and permission bits).
    pub mode: u32,
    /// `i_size` (debugfs does not print it for directories: `None` there).
    pub size: Option<u64>,
}

/// The fields of `debugfs -R "stat PATH"` that tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleStat {
    /// Inode number.
    pub ino: u32,
    /// Kind, from the `Type:` field.
    pub kind: FileKind,
    /// Permission bits (the `Mode:` field, which omits the type).
    pub perm: u32,
    /// `i_flags`.
    pub flags: u32,
    /// `i_generation`.
    pub generation: u32,
    /// `i_size`.
    pub size: u64,
    /// `i_links_count`.
    pub links: u32,
    /// `i_blocks` as printed (512-byte units unless huge_file says otherwise).
    pub blockcount: u64,
    /// Target of a fast symlink (stored in the inode).
    pub fast_link_target: Option<String>,
    /// Size of the inline data area, for inodes with inline data.
    pub inline_size: Option<u64>,
    /// Data runs from the `EXTENTS:` or `BLOCKS:` list, metadata blocks left out. `None` when
    /// the inode has neither list (inline data, fast symlinks, devices).
    pub runs: Option<Vec<OracleExtent>>,
    /// Metadata blocks from the same list: extent tree blocks (`ETBn`) or indirect blocks
    /// (`IND`, `DIND`, `TIND`), as (label, block).
    pub metadata_blocks: Vec<(String, u64)>,
}

/// `EXT4_EXTENTS_FL`.
pub const EXTENTS_FL: u32 = 0x0008_0000;
/// `EXT4_INLINE_DATA_FL`.
pub const INLINE_DATA_FL: u32 = 0x1000_0000;

impl OracleStat {
    /// Whether the inode maps its blocks with an extent tree.
    #[must_use]
    pub fn uses_extents(&self) -> bool {
        self.flags & EXTENTS_FL != 0
    }

    /// Whether the inode keeps its data in the inode (inline_data feature).
    #[must_use]
    pub fn has_inline_data(&self) -> bool {
        self.flags & INLINE_DATA_FL != 0
    }
}

/// The answer of `bmap` for a mapped block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bmap {
    /// Physical block.
    pub pblk: u64,
    /// True when the block lies in an unwritten extent.
    pub unwritten: bool,
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers.

struct Ctx<'a> {
    command: &'a str,
    image: &'a Path,
}

impl Ctx<'_> {
    fn parse_err(&self, reason: impl Into<String>, line: &str) -> Error {
        Error::Parse {
            command: self.command.to_owned(),
            image: self.image.to_owned(),
            reason: reason.into(),
            line: cut(line),
        }
    }

    fn debugfs_err(&self, stderr: &str) -> Error {
        Error::Debugfs {
            command: self.command.to_owned(),
            image: self.image.to_owned(),
            stderr: cut(stderr),
        }
    }
}

fn parse_num<T: std::str::FromStr>(
    ctx: &Ctx<'_>,
    token: &str,
    what: &str,
    line: &str,
) -> Result<T> {
    token
        .parse()
        .map_err(|_| ctx.parse_err(format!("expected {what}, found {token:?}"), line))
}

/// Parses the lines of one `ex` answer.
fn parse_ex(ctx: &Ctx<'_>, lines: &[&str]) -> Result<ExtentTree> {
    let mut tree = ExtentTree::default();
    for &line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("Level") {
            continue;
        }
        let spaced = trimmed.replace('/', " ");
        let t: Vec<&str> = spaced.split_whitespace().collect();
        if t.len() < 9 || t[5] != "-" {
            return Err(ctx.parse_err(
                "an extent line has at least 9 columns: L/D i/n a - b ...",
                line,
            ));
        }
        let level: u16 = parse_num(ctx, t[0], "a level", line)?;
        let depth: u16 = parse_num(ctx, t[1], "a depth", line)?;
        tree.depth = depth;
        let lblk: u64 = parse_num(ctx, t[4], "a logical block", line)?;
        let lblk_last: u64 = parse_num(ctx, t[6], "a logical block", line)?;
        let lblk32 =
            u32::try_from(lblk).map_err(|_| ctx.parse_err("logical block beyond 2^32", line))?;
        if level == depth {
            // Leaf: lblk - lblk_last  pblk - pblk_last  len  [Uninit]
            if t.len() < 11 || t[8] != "-" {
                return Err(ctx.parse_err("a leaf line has: a - b p - q len [Uninit]", line));
            }
            let pblk: u64 = parse_num(ctx, t[7], "a physical block", line)?;
            let pblk_last: u64 = parse_num(ctx, t[9], "a physical block", line)?;
            let len: u32 = parse_num(ctx, t[10], "a length", line)?;
            let unwritten = match t.get(11) {
                None => false,
                Some(&"Uninit") => true,
                Some(other) => {
                    return Err(ctx.parse_err(format!("unknown extent flag {other:?}"), line))
                }
            };
            let consistent = len > 0
                && lblk_last.checked_sub(lblk) == Some(u64::from(len) - 1)
                && pblk_last.checked_sub(pblk) == Some(u64::from(len) - 1);
            if !consistent {
                return Err(ctx.parse_err("extent ends do not agree with its length", line));
            }
            tree.extents.push(OracleExtent {
                lblk: lblk32,
                pblk,
                len,
                unwritten,
            });
        } else {
            let child: u64 = parse_num(ctx, t[7], "a child block", line)?;
            tree.index.push(IndexEntry {
                level,
                lblk: lblk32,
                child,
            });
        }
    }
    Ok(tree)
}

/// Parses `(a-b[u]):p-q` style entries of a stat `EXTENTS:` / `BLOCKS:` line.
/// Data runs and labelled metadata blocks of one block list.
type Runs = (Vec<OracleExtent>, Vec<(String, u64)>);

fn parse_runs(ctx: &Ctx<'_>, line: &str) -> Result<Runs> {
    let mut runs = Vec::new();
    let mut meta = Vec::new();
    for entry in line.split(", ").map(str::trim).filter(|e| !e.is_empty()) {
        let body = entry
            .strip_prefix('(')
            .ok_or_else(|| ctx.parse_err("a block run starts with '('", entry))?;
        let (logical, physical) = body
            .split_once("):")
            .ok_or_else(|| ctx.parse_err("a block run has the form (L):P", entry))?;
        if logical.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let block: u64 = parse_num(ctx, physical, "a metadata block", entry)?;
            meta.push((logical.to_owned(), block));
            continue;
        }
        let (logical, unwritten) = match logical.strip_suffix("[u]") {
            Some(l) => (l, true),
            None => (logical, false),
        };
        let (a, b) = match logical.split_once('-') {
            Some((a, b)) => (a, b),
            None => (logical, logical),
        };
        let (p, q) = match physical.split_once('-') {
            Some((p, q)) => (p, q),
            None => (physical, physical),
        };
        let a: u64 = parse_num(ctx, a, "a logical block", entry)?;
        let b: u64 = parse_num(ctx, b, "a logical block", entry)?;
        let p: u64 = parse_num(ctx, p, "a physical block", entry)?;
        let q: u64 = parse_num(ctx, q, "a physical block", entry)?;
        let len = b
            .checked_sub(a)
            .filter(|&d| q.checked_sub(p) == Some(d))
            .and_then(|d| u32::try_from(d + 1).ok())
            .ok_or_else(|| ctx.parse_err("run ends do not agree", entry))?;
        let lblk =
            u32::try_from(a).map_err(|_| ctx.parse_err("logical block beyond 2^32", entry))?;
        runs.push(OracleExtent {
            lblk,
            pblk: p,
            len,
            unwritten,
        });
    }
    Ok((runs, meta))
}

/// Value of `Key:` in a stat line (first occurrence), e.g. `field(line, "Size:")`.
fn field<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| {
        let mut tokens = line.split_whitespace();
        while let Some(tok) = tokens.next() {
            if tok == key {
                return tokens.next();
            }
        }
        None
    })
}

fn parse_stat(ctx: &Ctx<'_>, lines: &[&str]) -> Result<OracleStat> {
    let first = lines.first().copied().unwrap_or("");
    let need = |key: &str| {
        field(lines, key).ok_or_else(|| ctx.parse_err(format!("stat output lacks {key}"), first))
    };
    let ino: u32 = parse_num(ctx, need("Inode:")?, "an inode number", first)?;
    let kind = match need("Type:")? {
        "regular" => FileKind::File,
        "directory" => FileKind::Dir,
        "symlink" => FileKind::Symlink,
        "FIFO" => FileKind::Fifo,
        "socket" => FileKind::Socket,
        "character" => FileKind::CharDev,
        "block" => FileKind::BlockDev,
        _ => FileKind::Unknown,
    };
    let perm_text = need("Mode:")?;
    let perm =
        u32::from_str_radix(perm_text, 8).map_err(|_| ctx.parse_err("Mode: is octal", first))?;
    let flags_text = need("Flags:")?;
    let flags = flags_text
        .strip_prefix("0x")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| ctx.parse_err("Flags: is 0x-hex", first))?;
    let generation = parse_num(ctx, need("Generation:")?, "a generation", first)?;
    let size = parse_num(ctx, need("Size:")?, "a size", first)?;
    let links = parse_num(ctx, need("Links:")?, "a link count", first)?;
    let blockcount = parse_num(ctx, need("Blockcount:")?, "a block count", first)?;
    let mut fast_link_target = None;
    let mut inline_size = None;
    let mut runs = None;
    let mut metadata_blocks = Vec::new();
    let mut iter = lines.iter();
    while let Some(&line) = iter.next() {
        if let Some(rest) = line.strip_prefix("Fast link dest: ") {
            let target = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(rest);
            fast_link_target = Some(target.to_owned());
        } else if let Some(rest) = line.strip_prefix("Size of inline data: ") {
            inline_size = Some(parse_num(ctx, rest.trim(), "an inline size", line)?);
        } else if line == "EXTENTS:" || line == "BLOCKS:" {
            let list = iter.next().copied().unwrap_or("");
            let list = if list.starts_with("TOTAL:") { "" } else { list };
            let (r, m) = parse_runs(ctx, list)?;
            runs = Some(r);
            metadata_blocks = m;
        }
    }
    Ok(OracleStat {
        ino,
        kind,
        perm,
        flags,
        generation,
        size,
        links,
        blockcount,
        fast_link_target,
        inline_size,
        runs,
        metadata_blocks,
    })
}

fn parse_bmap(ctx: &Ctx<'_>, lines: &[&str]) -> Result<Option<Bmap>> {
    let line = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .ok_or_else(|| ctx.parse_err("bmap printed nothing", ""))?;
    let (num, unwritten) = match line.strip_suffix("(uninit)") {
        Some(n) => (n.trim(), true),
        None => (line, false),
    };
    let pblk: u64 = parse_num(ctx, num, "a physical block", line)?;
    Ok((pblk != 0).then_some(Bmap { pblk, unwritten }))
}

/// Runs a read-only batch and returns its sections; `complaints` are what debugfs printed on
/// stderr (the caller decides whether they are fatal).
fn batch(image: &Path, script: &str) -> Result<(Output, String)> {
    let file = tempfile::Builder::new()
        .prefix("imagekit-oracle-")
        .suffix(".debugfs")
        .tempfile()
        .map_err(io_err(
            "creating a temporary script in",
            std::env::temp_dir(),
        ))?;
    cmd::debugfs_script(image, script, file.path(), false)
}

/// The one debugfs runner of the oracles: runs `commands` in one read-only batch and parses
/// each command's output section with `parse`, which gets the command's index, a context
/// naming the command (so errors say which path), the section's lines, and what debugfs
/// printed on stderr for the whole batch (the parser decides whether that is fatal for its
/// section).
fn each_command<T>(
    image: &Path,
    commands: &[String],
    parse: impl Fn(usize, &Ctx<'_>, &[&str], &str) -> Result<T>,
) -> Result<Vec<T>> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let script: String = commands.iter().map(|c| format!("{c}\n")).collect();
    let (out, complaints) = batch(image, &script)?;
    let text = out.stdout_text();
    let sections = split_sections(&text);
    if sections.len() != commands.len() {
        let run = Ctx {
            command: &out.command,
            image,
        };
        if !complaints.is_empty() {
            return Err(run.debugfs_err(&complaints));
        }
        return Err(run.parse_err(
            format!(
                "expected {} echoed commands, found {}",
                commands.len(),
                sections.len()
            ),
            text.lines().next().unwrap_or(""),
        ));
    }
    sections
        .iter()
        .enumerate()
        .map(|(i, (command, lines))| parse(i, &Ctx { command, image }, lines, &complaints))
        .collect()
}

/// Whether a section printed nothing.
fn blank(lines: &[&str]) -> bool {
    lines.iter().all(|l| l.trim().is_empty())
}

// ---------------------------------------------------------------------------------------------
// Public oracles.

/// The extent tree of `path` from `debugfs -R "ex PATH" IMAGE`: depth, leaf extents and index
/// entries. Fails for a file that is not extent-mapped (block map, inline data, fast symlink).
pub fn extent_tree(image: &Path, path: &str) -> Result<ExtentTree> {
    let command = format!("ex {}", debugfs_path(path)?);
    let mut trees = each_command(image, &[command], |_, ctx, lines, complaints| {
        // One command: whatever debugfs complained about is about it.
        if !complaints.is_empty() {
            return Err(ctx.debugfs_err(complaints));
        }
        parse_ex(ctx, lines)
    })?;
    trees.pop().ok_or_else(|| Error::Unexpected {
        image: image.to_owned(),
        path: path.to_owned(),
        reason: "ex gave no answer".into(),
    })
}

/// Leaf extents of `path`, whatever maps its blocks:
/// * extent-mapped: the leaves of `debugfs -R "ex PATH"` (as stored, not merged);
/// * block-mapped (ext2/ext3 style): the runs of the `BLOCKS:` list of `stat`, which debugfs
///   already merges into maximal physically contiguous runs;
/// * inline data, fast symlinks, devices: no extents (empty).
pub fn extents(image: &Path, path: &str) -> Result<Vec<OracleExtent>> {
    let mut all = extents_many(image, &[path])?;
    Ok(all.pop().unwrap_or_default())
}

/// [`extents`] for many paths in one or two debugfs runs (one `ex` per path, then one `stat`
/// for the paths that are not extent-mapped). The result is in the order of `paths`.
pub fn extents_many(image: &Path, paths: &[&str]) -> Result<Vec<Vec<OracleExtent>>> {
    let commands = paths
        .iter()
        .map(|p| Ok(format!("ex {}", debugfs_path(p)?)))
        .collect::<Result<Vec<_>>>()?;
    // An extent-mapped file always gets the header line, even with no extents; the others
    // (block maps, inline data) print nothing and are asked with `stat`.
    let mut result = each_command(image, &commands, |_, ctx, lines, _| {
        if lines.iter().any(|l| l.starts_with("Level")) {
            Ok(Some(parse_ex(ctx, lines)?.extents))
        } else {
            Ok(None)
        }
    })?;
    let others: Vec<usize> = (0..paths.len()).filter(|&i| result[i].is_none()).collect();
    if !others.is_empty() {
        let other_paths: Vec<&str> = others.iter().map(|&i| paths[i]).collect();
        let stats = stat_many(image, &other_paths)?;
        for (&i, stat) in others.iter().zip(stats) {
            if stat.uses_extents() {
                // `ex` printed nothing for an extent-mapped inode: that is debugfs failing.
                return Err(Error::Unexpected {
                    image: image.to_owned(),
                    path: paths[i].to_owned(),
                    reason: "extent-mapped, but `ex` printed no tree".into(),
                });
            }
            result[i] = Some(stat.runs.unwrap_or_default());
        }
    }
    Ok(result.into_iter().map(Option::unwrap_or_default).collect())
}

/// `debugfs -R "stat PATH"`, parsed.
pub fn stat(image: &Path, path: &str) -> Result<OracleStat> {
    let mut all = stat_many(image, &[path])?;
    all.pop().ok_or_else(|| Error::Unexpected {
        image: image.to_owned(),
        path: path.to_owned(),
        reason: "stat gave no answer".into(),
    })
}

/// [`stat`] for many paths in one debugfs run, in the order of `paths`.
pub fn stat_many(image: &Path, paths: &[&str]) -> Result<Vec<OracleStat>> {
    let commands = paths
        .iter()
        .map(|p| Ok(format!("stat {}", debugfs_path(p)?)))
        .collect::<Result<Vec<_>>>()?;
    each_command(image, &commands, |_, ctx, lines, complaints| {
        if blank(lines) {
            return Err(ctx.debugfs_err(complaints));
        }
        parse_stat(ctx, lines)
    })
}

/// `debugfs -R "bmap PATH LBLK"`: the physical block of logical block `lblk`, or `None` for a
/// hole.
pub fn bmap(image: &Path, path: &str, lblk: u32) -> Result<Option<Bmap>> {
    Ok(bmap_many(image, path, &[lblk])?.pop().flatten())
}

/// [`bmap`] for many logical blocks of one file in one debugfs run, in the order of `lblks`.
pub fn bmap_many(image: &Path, path: &str, lblks: &[u32]) -> Result<Vec<Option<Bmap>>> {
    let quoted = debugfs_path(path)?;
    let commands: Vec<String> = lblks.iter().map(|b| format!("bmap {quoted} {b}")).collect();
    each_command(image, &commands, |_, ctx, lines, complaints| {
        if blank(lines) {
            return Err(ctx.debugfs_err(complaints));
        }
        parse_bmap(ctx, lines)
    })
}

fn parse_ls_line(ctx: &Ctx<'_>, dir: &str, line: &str) -> Result<Option<OracleFile>> {
    // /ino/mode/uid/gid/name/size/  -- a name cannot hold '/', so six fields.
    let Some(body) = line.strip_prefix('/').and_then(|b| b.strip_suffix('/')) else {
        return Err(ctx.parse_err(
            "an `ls -p` line looks like /ino/mode/uid/gid/name/size/",
            line,
        ));
    };
    let fields: Vec<&str> = body.split('/').collect();
    let [ino, mode, _uid, _gid, name, size] = fields.as_slice() else {
        return Err(ctx.parse_err("an `ls -p` line has six fields", line));
    };
    let ino: u32 = parse_num(ctx, ino, "an inode number", line)?;
    // debugfs also prints unused slots (inode 0, e.g. the empty blocks of lost+found).
    if *name == "." || *name == ".." || ino == 0 {
        return Ok(None);
    }
    let mode = u32::from_str_radix(mode, 8).map_err(|_| ctx.parse_err("mode is octal", line))?;
    let size = if size.is_empty() {
        None
    } else {
        Some(parse_num(ctx, size, "a size", line)?)
    };
    let path = if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    };
    Ok(Some(OracleFile {
        path,
        ino,
        kind: FileKind::from_mode(mode),
        mode,
        size,
    }))
}

/// Every path in the image (the root `/` first, then breadth first, each directory's entries in
/// on-disk order), from `ls -p` run on each directory: one debugfs run per tree level.
/// Hard links appear once per name. `.` and `..` are left out.
pub fn list_files(image: &Path) -> Result<Vec<OracleFile>> {
    let mut out = vec![OracleFile {
        path: "/".into(),
        ino: 2,
        kind: FileKind::Dir,
        mode: 0o040_755,
        size: None,
    }];
    let mut level: VecDeque<String> = VecDeque::from([String::from("/")]);
    while !level.is_empty() {
        let dirs: Vec<String> = level.drain(..).collect();
        let commands = dirs
            .iter()
            .map(|d| Ok(format!("ls -p {}", debugfs_path(d)?)))
            .collect::<Result<Vec<_>>>()?;
        let listed = each_command(image, &commands, |i, ctx, lines, complaints| {
            let entries: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with('/'))
                .collect();
            // Every directory has at least "." and "..": nothing means debugfs failed.
            if entries.is_empty() {
                return Err(ctx.debugfs_err(complaints));
            }
            let parsed: Result<Vec<Option<OracleFile>>> = entries
                .into_iter()
                .map(|l| parse_ls_line(ctx, &dirs[i], l))
                .collect();
            Ok(parsed?.into_iter().flatten().collect::<Vec<_>>())
        })?;
        for file in listed.into_iter().flatten() {
            if file.kind == FileKind::Dir {
                level.push_back(file.path.clone());
            }
            out.push(file);
        }
    }
    Ok(out)
}

/// The contents of `path` as debugfs reads them (`cat`): holes and unwritten extents read as
/// zeros, up to `i_size`. Mind the size: a sparse file near 2^32 blocks is terabytes.
///
/// debugfs 1.47 `cat` prints the whole inline-data area (60 bytes or more) of an inline file
/// whatever its `i_size`; the output is cut to `i_size` (from `stat`) for such files.
pub fn read_file(image: &Path, path: &str) -> Result<Vec<u8>> {
    let request = format!("cat {}", debugfs_path(path)?);
    let (out, complaints) = cmd::debugfs_request(image, &request)?;
    if !complaints.is_empty() {
        return Err(Error::Debugfs {
            command: out.command,
            image: image.to_owned(),
            stderr: cut(&complaints),
        });
    }
    let mut data = out.stdout;
    let st = stat(image, path)?;
    if st.has_inline_data() {
        data.truncate(usize::try_from(st.size).unwrap_or(usize::MAX));
    }
    Ok(data)
}

/// The feature names of the file system (`debugfs -R features`), e.g. `extent`, `64bit`.
pub fn features(image: &Path) -> Result<Vec<String>> {
    let (out, complaints) = cmd::debugfs_request(image, "features")?;
    let text = out.stdout_text();
    let ctx = Ctx {
        command: &out.command,
        image,
    };
    if !complaints.is_empty() {
        return Err(ctx.debugfs_err(&complaints));
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem features:"))
        .ok_or_else(|| ctx.parse_err("no `Filesystem features:` line", text.trim()))?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

/// Runs `e2fsck -fn IMAGE` (check only, change nothing) and returns whether it found the
/// file system clean, with its output for the error message when it did not.
pub fn fsck(image: &Path) -> Result<(bool, String)> {
    let mut cmd = std::process::Command::new(cmd::tool("e2fsck")?);
    cmd.arg("-fn").arg(image);
    let out = cmd::run(cmd)?;
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    match out.code {
        Some(0) => Ok((true, text)),
        Some(1..=4) => Ok((false, cut(&text))),
        _ => Err(Error::Failed {
            command: out.command,
            image: image.to_owned(),
            status: out.status,
            stderr: cut(&text),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            command: "test",
            image: Path::new("test.img"),
        }
    }

    #[test]
    fn parses_ex_leaf_and_index_lines() {
        let lines = [
            "Level Entries       Logical        Physical Length Flags",
            " 0/ 1   1/  1     0 - 65535  75332           65536",
            " 1/ 1   1/ 42     0 -     0   7986 -   7986      1 ",
            " 1/ 1 100/340 1000 -  1752  7440 -  8192    753 Uninit",
            " 1/ 1   3/  3 4294967294 - 4294967294  4395 -  4395      1 ",
        ];
        let tree = parse_ex(&ctx(), &lines).unwrap();
        assert_eq!(tree.depth, 1);
        assert_eq!(
            tree.index,
            vec![IndexEntry {
                level: 0,
                lblk: 0,
                child: 75332
            }]
        );
        assert_eq!(tree.extents.len(), 3);
        assert_eq!(
            tree.extents[1],
            OracleExtent {
                lblk: 1000,
                pblk: 7440,
                len: 753,
                unwritten: true
            }
        );
        assert_eq!(tree.extents[2].lblk, 4_294_967_294);
    }

    #[test]
    fn rejects_inconsistent_ex_line() {
        let lines = [" 0/ 0   1/  1     0 -     9  4385 -  4390     10 "];
        assert!(parse_ex(&ctx(), &lines).is_err());
    }

    #[test]
    fn parses_stat_block_lists() {
        let (runs, meta) = parse_runs(
            &ctx(),
            "(0-11):4899-4910, (IND):4911, (12-267):4912-5167, (16843019):5209, (1000-1752[u]):7440-8192",
        )
        .unwrap();
        assert_eq!(meta, vec![("IND".to_owned(), 4911)]);
        assert_eq!(runs.len(), 4);
        assert_eq!(
            runs[2],
            OracleExtent {
                lblk: 16_843_019,
                pblk: 5209,
                len: 1,
                unwritten: false
            }
        );
        assert!(runs[3].unwritten);
    }

    #[test]
    fn parses_bmap_answers() {
        assert_eq!(parse_bmap(&ctx(), &["0"]).unwrap(), None);
        assert_eq!(
            parse_bmap(&ctx(), &["6345 (uninit)"]).unwrap(),
            Some(Bmap {
                pblk: 6345,
                unwritten: true
            })
        );
    }

    #[test]
    fn normalize_merges_only_true_continuations() {
        let e = |lblk, pblk, len, unwritten| OracleExtent {
            lblk,
            pblk,
            len,
            unwritten,
        };
        let merged = normalize(&[
            e(10, 110, 5, false),
            e(0, 100, 10, false),
            e(15, 200, 1, false),
        ]);
        assert_eq!(merged, vec![e(0, 100, 15, false), e(15, 200, 1, false)]);
        let kept = normalize(&[e(0, 100, 10, false), e(10, 110, 5, true)]);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn parses_ls_lines() {
        let f = parse_ls_line(&ctx(), "/d", "/15/120777/0/0/l/2/")
            .unwrap()
            .unwrap();
        assert_eq!(f.path, "/d/l");
        assert_eq!(f.kind, FileKind::Symlink);
        assert_eq!(f.size, Some(2));
        let d = parse_ls_line(&ctx(), "/", "/14/040755/0/0/d//")
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.path.as_str(), d.kind, d.size),
            ("/d", FileKind::Dir, None)
        );
        assert!(parse_ls_line(&ctx(), "/", "/2/040755/0/0/.//")
            .unwrap()
            .is_none());
        assert!(parse_ls_line(&ctx(), "/", "/0/000000/0/0//0/")
            .unwrap()
            .is_none());
    }
}
