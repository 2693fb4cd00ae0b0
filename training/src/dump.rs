//! `training dump`: print extent maps, as JSON lines or as `debugfs -R "ex"` leaf lines.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ext4::{Extent, Fs, Inode, InodeKind};
use predictor::error::Chain;

use crate::SourceArg;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per file.
    Jsonl,
    /// The leaf lines of `debugfs -R "ex PATH"`.
    Debugfs,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArg,
    /// Only this file (absolute path inside the image).
    #[arg(long, conflicts_with_all = ["ino", "live"])]
    path: Option<String>,
    /// Only this inode number.
    #[arg(long, conflicts_with = "live")]
    ino: Option<u32>,
    /// Output format (`debugfs` only for images).
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

/// One file to print.
struct Target {
    path: Option<String>,
    inode: Inode,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let image = match (&args.source.image, &args.source.live) {
        (_, Some(live)) => return run_live(live, args.format),
        (Some(image), None) => image,
        (None, None) => bail!("give an image, or --live PATH"),
    };
    let fs = Fs::open_path(image).with_context(|| format!("opening {}", image.display()))?;
    let mut failures = 0usize;
    let targets = if let Some(path) = &args.path {
        let inode = fs
            .lookup_path(path)
            .with_context(|| format!("{}: {path}", image.display()))?;
        vec![Target {
            path: Some(path.clone()),
            inode,
        }]
    } else if let Some(ino) = args.ino {
        let inode = fs
            .inode(ino)
            .with_context(|| format!("{}: inode {ino}", image.display()))?;
        let (entries, _) = fs.walk();
        let path = entries
            .into_iter()
            .find(|e| e.inode.ino == ino)
            .map(|e| e.path);
        vec![Target { path, inode }]
    } else {
        let (entries, errors) = fs.walk();
        for e in &errors {
            tracing::warn!("{}: {}", image.display(), Chain(e));
        }
        failures += errors.len();
        let mut seen = std::collections::HashSet::new();
        entries
            .into_iter()
            .filter(|e| e.inode.kind == InodeKind::File && seen.insert(e.inode.ino))
            .map(|e| Target {
                path: Some(e.path),
                inode: e.inode,
            })
            .collect()
    };
    if args.path.is_some() || args.ino.is_some() {
        if let Some(t) = targets.first() {
            if !matches!(
                t.inode.kind,
                InodeKind::File | InodeKind::Dir | InodeKind::Symlink
            ) {
                bail!(
                    "inode {} is a {:?}, which has no extent map",
                    t.inode.ino,
                    t.inode.kind
                );
            }
        }
    }

    let many = targets.len() > 1 || (args.path.is_none() && args.ino.is_none());
    let mut out = BufWriter::new(io::stdout().lock());
    for t in &targets {
        let printed = match args.format {
            Format::Jsonl => fs
                .extents(&t.inode)
                .map(|ext| write_json(&mut out, t, &ext)),
            Format::Debugfs => fs.extent_leaves(&t.inode).map(|leaves| {
                write_debugfs(
                    &mut out,
                    &fs,
                    t,
                    leaves.as_deref().unwrap_or_default(),
                    many,
                )
            }),
        };
        match printed {
            Ok(io) => io.context("writing to stdout")?,
            Err(e) => {
                failures += 1;
                tracing::warn!(
                    "{}: {}: {}",
                    image.display(),
                    t.path.as_deref().unwrap_or("?"),
                    Chain(&e)
                );
            }
        }
    }
    out.flush().context("writing to stdout")?;
    if failures > 0 {
        eprintln!("training dump: {failures} file(s) or directories could not be read (see warnings above)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `dump --live`: every regular file under `path`, as JSON lines with absolute paths.
fn run_live(path: &std::path::Path, format: Format) -> Result<ExitCode> {
    if format != Format::Jsonl {
        bail!("--format debugfs prints an image's extent-tree leaves; a live dump is jsonl only");
    }
    let scan = crate::live::scan(path)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for f in &scan.files {
        let extents = f
            .extents
            .iter()
            .map(|e| (e.lblk, e.pblk, e.len, e.unwritten));
        let path = f.path.to_string_lossy();
        let line = JsonFile {
            ino: f.ino,
            path: Some(&path),
            size: f.size,
            extents: extents.collect(),
        };
        line.write(&mut out).context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    if !scan.skipped.is_empty() {
        eprintln!(
            "training dump: {} path(s) could not be read (see warnings above)",
            scan.skipped.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `--format jsonl`, fields in this order (the same for images and live maps).
#[derive(serde::Serialize)]
struct JsonFile<'a> {
    ino: u64,
    path: Option<&'a str>,
    size: u64,
    /// `[lblk, pblk, len, unwritten]`
    extents: Vec<(u32, u64, u32, bool)>,
}

impl JsonFile<'_> {
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)
    }
}

fn write_json(out: &mut impl Write, t: &Target, extents: &[Extent]) -> io::Result<()> {
    JsonFile {
        ino: u64::from(t.inode.ino),
        path: t.path.as_deref(),
        size: t.inode.size,
        extents: extents
            .iter()
            .map(|e| (e.lblk, e.pblk, e.len, e.unwritten))
            .collect(),
    }
    .write(out)
}

/// Digits of `n` in decimal (`int_log10(n) + 1` in debugfs).
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Leaf lines as `debugfs -R "ex"` prints them: column widths follow the file's size in blocks
/// and the filesystem's block count, at least 5.
fn write_debugfs(
    out: &mut impl Write,
    fs: &Fs,
    t: &Target,
    leaves: &[Vec<Extent>],
    many: bool,
) -> io::Result<()> {
    let bs = u64::from(fs.block_size());
    let lw = digits(t.inode.size.div_ceil(bs)).max(5);
    let pw = digits(fs.superblock().blocks_count).max(5);
    let depth = fs.extent_depth(&t.inode).ok().flatten().unwrap_or(0);
    if many {
        // Separates files when dumping a whole image; a single file prints exactly the
        // lines debugfs prints for it (less its index nodes).
        writeln!(
            out,
            "# {} (inode {})",
            t.path.as_deref().unwrap_or("?"),
            t.inode.ino
        )?;
    }
    writeln!(
        out,
        "Level Entries {:>w1$} {:>w2$} Length Flags",
        "Logical",
        "Physical",
        w1 = lw * 2 + 3,
        w2 = pw * 2 + 3
    )?;
    for leaf in leaves {
        for (i, e) in leaf.iter().enumerate() {
            let last = e.end() - 1;
            let plast = e.pblk + u64::from(e.len) - 1;
            writeln!(
                out,
                "{depth:2}/{depth:2} {:3}/{:3} {:lw$} - {last:lw$} {:pw$} - {plast:pw$} {:6} {}",
                i + 1,
                leaf.len(),
                e.lblk,
                e.pblk,
                e.len,
                if e.unwritten { "Uninit" } else { "" },
            )?;
        }
    }
    Ok(())
}
