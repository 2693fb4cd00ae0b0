//! One `reports` run from start to end: images -> training -> experiments -> tables, figures
//! and the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use imagekit::Recipe;
use indicatif::{ProgressBar, ProgressStyle};
use predictor::error::Chain;

use crate::exp::registry::{self, RUN, SKIPPED};
use crate::exp::report;
use crate::exp::{self, Ctx, Scale, Section};
use crate::support::datasets::{self, Dataset, SYNTH_SEED};
use crate::support::images::{self, LoadedImage};
use crate::support::live;
use crate::support::machine::Machine;
use crate::support::mounts::{find_tool, ours};
use crate::support::table::Table;

/// What to run on.
#[derive(Debug, Clone)]
pub enum Input {
    /// The built-in demo images (built in a temporary directory).
    Demo,
    /// A user's image, with its model pack if one is given.
    Image {
        /// The ext4 image.
        path: PathBuf,
        /// A model pack trained on it.
        models: Option<PathBuf>,
    },
    /// The files of a mounted file system (a file, or a directory's tree), read by FIEMAP.
    Live {
        /// The file or directory.
        path: PathBuf,
    },
}

/// Where results go and how much to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report and figures.
    pub out: PathBuf,
    /// Tables.
    pub tables: PathBuf,
    /// Toy scale.
    pub quick: bool,
    /// Our server binary, if given explicitly.
    pub server: Option<PathBuf>,
    /// Keep the scratch directory (images, packs) instead of deleting it.
    pub keep: bool,
}

/// An image to load.
struct Spec {
    name: String,
    path: PathBuf,
    models: Option<PathBuf>,
    readable: bool,
    kernel_mountable: bool,
    note: String,
}

/// A scratch directory: tmpfs (/dev/shm) when it has room, so building and reading images
/// never waits on a disk; else the system's temporary directory.
fn scratch() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = |dir: &Path| {
        tempfile::Builder::new()
            .prefix("iomap-reports-")
            .tempdir_in(dir)
    };
    if shm.is_dir() && free_bytes(shm).is_some_and(|b| b >= 6 << 30) {
        if let Ok(d) = builder(shm) {
            return Ok(d);
        }
    }
    builder(&std::env::temp_dir()).context("creating a scratch directory")
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    (rc == 0).then(|| avail.saturating_mul(frsize))
}

/// Runs everything and writes the report; returns its path.
pub fn run(input: &Input, opts: &Options) -> Result<PathBuf> {
    let start = Instant::now();
    let machine = Machine::detect();
    let scale = if opts.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let work = scratch()?;
    let work_path = work.path().to_path_buf();
    let bar = ProgressBar::new(2).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut skipped: Vec<(String, String)> = Vec::new();

    // 1. Images. 2. Train every image (or scan the live file system).
    let specs = match input {
        Input::Demo => demo_specs(&scale, &work_path, &bar, &mut skipped)?,
        Input::Image { path, models } => vec![Spec {
            name: path
                .file_stem()
                .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned()),
            note: format!("{} (given with --image)", path.display()),
            path: path.clone(),
            models: models.clone(),
            readable: true,
            kernel_mountable: true,
        }],
        Input::Live { .. } => Vec::new(),
    };
    bar.inc(1);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let loaded = train(&specs, &work_path, jobs, &bar)?;
    let live = scan_live(input, jobs, &bar, &mut skipped)?;

    // 3. Datasets of figure 1: the most fragmented file of every image (of every extent-count
    // class of a live scan), and synthetic maps. Then the experiments.
    let sets = fig1_datasets(&loaded, live.as_ref(), &scale)?;
    // fig 1 datasets, fig 2, 3, 4, 6 (5 systems), 5, 7, 8, 9, 10, report.
    bar.inc_length(sets.len() as u64 + 1 + 1 + 1 + 5 + 1 + 1 + 1 + 1 + 1 + 1);
    let server = find_tool("server", opts.server.as_deref());
    let fuse2fs = find_tool("fuse2fs", None);
    let fio = find_tool("fio", None);
    let ctx = Ctx {
        machine: &machine,
        scale: &scale,
        images: &loaded,
        live: live.as_ref(),
        fig_dir: &opts.out,
        work_dir: &work_path,
        demo: matches!(input, Input::Demo),
        bar: &bar,
        server: server.as_deref(),
        fuse2fs: fuse2fs.as_deref(),
        fio: fio.as_deref(),
    };
    let (mut sections, bpf_unavailable) = experiments(&ctx, sets, &mut skipped)?;

    // 4. Tables, report.
    bar.set_message("writing tables and the report");
    let elapsed = start.elapsed().as_secs_f64();
    let all_skipped: Vec<(String, String)> = skipped
        .iter()
        .cloned()
        .chain(sections.iter().flat_map(|s| s.skipped.iter().cloned()))
        .collect();
    write_tables(opts, &machine, elapsed, &all_skipped, &sections)?;
    // The report lists the early skips too.
    if !skipped.is_empty() {
        sections.push(Section {
            title: "Set-up notes".into(),
            body: "Some inputs could not be prepared; see the list below.".into(),
            skipped,
            ..Section::default()
        });
    }
    // A tier that could not run comes first: every number after it lacks that tier's rows.
    let summary: Vec<String> = bpf_unavailable
        .iter()
        .map(|why| {
            format!(
                "**The BPF tier could not run on this machine**, so every BPF row of this report \
                 is \"not measured\" (see the set-up notes): {why}"
            )
        })
        .chain(sections.iter().flat_map(|s| s.summary.iter().cloned()))
        .collect();
    let meta = report::Meta {
        machine: &machine,
        tables_dir: &opts.tables,
        images: image_lines(&loaded, &specs, live.as_ref()),
        summary,
        elapsed_s: elapsed,
        quick: opts.quick,
    };
    let path = report::write(&opts.out, &meta, &sections)?;
    bar.inc(1);
    bar.finish_and_clear();
    if opts.keep {
        let kept = work.keep();
        eprintln!(
            "kept the scratch directory (images, packs): {}",
            kept.display()
        );
    }
    Ok(path)
}

// The demo's kernel-allocated maps (`imagekit::DEMO_SEED`) and its synthetic maps are drawn
// from one seed, as when the pipeline passed SYNTH_SEED to the kernel's recipes itself.
const _: () = assert!(SYNTH_SEED == imagekit::DEMO_SEED);

/// The demo's images ([`Scale::recipes`]): the debugfs-built ones in parallel, then, as root,
/// the kernel-made ones one by one (each one that fails or cannot be built is skipped, and the
/// report says why).
fn demo_specs(
    scale: &Scale,
    work_path: &Path,
    bar: &ProgressBar,
    skipped: &mut Vec<(String, String)>,
) -> Result<Vec<Spec>> {
    let (kernel, debugfs): (Vec<Recipe>, Vec<Recipe>) =
        scale.recipes.iter().partition(|r| r.needs_root());
    bar.set_message("building the demo images (mke2fs, debugfs)");
    let built = imagekit::build_many(&debugfs, work_path).context("building the demo images")?;
    let mut specs: Vec<Spec> = built.into_iter().map(spec_of).collect();
    for recipe in kernel {
        let name = recipe.name();
        if !imagekit::kernel::is_root() {
            skipped.push((
                format!("{name} image (made by the kernel)"),
                "needs root for a loop mount".into(),
            ));
            continue;
        }
        bar.set_message(format!("building {name} through the kernel (loop mount)"));
        match recipe.build(work_path) {
            Ok(img) => specs.push(spec_of(img)),
            Err(e) => skipped.push((format!("{name} image"), Chain(&e).to_string())),
        }
    }
    Ok(specs)
}

/// What the run needs to know of a built image.
fn spec_of(img: imagekit::Image) -> Spec {
    Spec {
        name: img.name,
        note: img.description,
        path: img.path,
        models: None,
        readable: img.recipe.written(),
        kernel_mountable: img.kernel_mountable,
    }
}

/// Loads and trains every image.
fn train(
    specs: &[Spec],
    work_path: &Path,
    jobs: usize,
    bar: &ProgressBar,
) -> Result<Vec<LoadedImage>> {
    bar.inc_length(specs.len() as u64);
    let mut loaded: Vec<LoadedImage> = Vec::new();
    for s in specs {
        bar.set_message(format!("training {}", s.name));
        let counter = AtomicU64::new(0);
        let what = format!("training {}", s.name);
        let on = images::extent_counter(&counter, bar, &what);
        let mut img = images::load(
            &s.name,
            &s.path,
            s.models.as_deref(),
            &work_path.join("packs"),
            jobs,
            &on,
        )?;
        img.readable = s.readable;
        img.kernel_mountable =
            s.kernel_mountable && u64::from(img.fs.block_size()) <= imagekit::kernel::page_size();
        loaded.push(img);
        bar.inc(1);
    }
    Ok(loaded)
}

/// The live file system of a `--live` run, scanned and trained.
fn scan_live(
    input: &Input,
    jobs: usize,
    bar: &ProgressBar,
    skipped: &mut Vec<(String, String)>,
) -> Result<Option<live::LiveSet>> {
    Ok(match input {
        Input::Live { path } => {
            bar.set_message(format!("scanning {}", path.display()));
            let counter = AtomicU64::new(0);
            let what = format!("training {}", path.display());
            let on = images::extent_counter(&counter, bar, &what);
            let set = live::load(
                path,
                jobs,
                &mut |p| {
                    bar.set_message(format!(
                        "scanning {}: {} files, {} extents, {} skipped",
                        path.display(),
                        p.files,
                        p.extents,
                        p.skipped
                    ));
                },
                &on,
            )?;
            if set.skipped > 0 {
                skipped.push((
                    format!("{} path(s) under {}", set.skipped, path.display()),
                    "could not be read (permissions, vanished files, delayed allocation; the warnings name each)".into(),
                ));
            }
            Some(set)
        }
        _ => None,
    })
}

/// Figure 1's datasets.
fn fig1_datasets(
    loaded: &[LoadedImage],
    live: Option<&live::LiveSet>,
    scale: &Scale,
) -> Result<Vec<Dataset>> {
    let mut sets: Vec<Dataset> = Vec::new();
    for img in loaded {
        if let Some(d) = datasets::most_fragmented(img)? {
            sets.push(d);
        }
    }
    if let Some(l) = live {
        sets.extend(datasets::live_files(l));
    }
    sets.extend(
        scale
            .synthetic_sizes
            .iter()
            .map(|&n| datasets::synthetic(n)),
    );
    Ok(sets)
}

/// Every experiment, in the report's order ([`registry::EXPERIMENTS`]); and why the BPF tier
/// could not run, if it could not.
///
/// They run in the order their inputs need: figure 1's cells feed the headline and the memory
/// figure; the end-to-end reads feed the read path, and their upcall round trip the cache
/// section. Those inputs are explicit arguments: each is one value from one experiment, and a
/// shared results struct would hide which experiment reads what.
fn experiments(
    ctx: &Ctx<'_>,
    sets: Vec<Dataset>,
    skipped: &mut Vec<(String, String)>,
) -> Result<(Vec<Section>, Option<String>)> {
    let live = ctx.live;
    let mut ran = Ran::default();
    ran.add("population", exp::population::run(ctx)?)?;
    ran.add("compact", exp::compact::run(ctx, &sets)?)?;
    ran.add("adversarial", exp::adversarial::run(ctx)?)?;
    let measured = exp::latency::measure(ctx, &sets);
    skipped.extend(measured.skipped.iter().cloned());
    drop(sets); // the 10^7-extent maps are large; later experiments build their own
    ran.add("headline", exp::headline::section(&measured.cells))?;
    ran.add("latency", exp::latency::section(ctx, &measured)?)?;

    let frag = ctx.fragmented();
    // Why the experiments that need an image file cannot run.
    let no_image = if live.is_some() {
        "a live run has no image: nothing to walk on disk, mount or read end to end"
    } else {
        "no image file with extents"
    };
    let live_frag = live.and_then(datasets::live_most_fragmented);
    match (frag, live_frag) {
        (Some((img, f)), _) => {
            let d = datasets::file_dataset(img, f.ino, &f.path)?;
            ran.add("cdf", exp::cdf::run(ctx, &d)?)?;
        }
        (None, Some(d)) => ran.add("cdf", exp::cdf::run(ctx, &d)?)?,
        (None, None) => {
            skipped.push(("fig 2".into(), "no file with extents".into()));
            ctx.bar.inc(1);
        }
    }
    if live.is_some() {
        skipped.push(("fig 3 (tier shares, audit)".into(), no_image.into()));
        ctx.bar.inc(1);
    } else {
        ran.add("accuracy", exp::accuracy::run(ctx)?)?;
    }
    ran.add("memory", exp::memory::run(ctx, &measured.cells)?)?;
    let e2e = match frag {
        Some((img, f)) => {
            let (s, e) = exp::endtoend::run(ctx, img, f)?;
            ran.add("endtoend", s)?;
            ran.add("readpath", exp::readpath::run(ctx, img, f, &e)?)?;
            Some(e)
        }
        None => {
            skipped.push(("fig 5, fig 6".into(), no_image.into()));
            ctx.bar.inc(6);
            None
        }
    };
    // The cache section runs after figure 6, which measures the price of an upcall.
    let round_trip = e2e
        .as_ref()
        .and_then(|e| e.random(&ours("learned")))
        .and_then(|r| r.latencies.summary())
        .map(|s| s.median);
    ran.add("cache", exp::cache::run(ctx, round_trip)?)?;
    ran.add("training", exp::training::run(ctx)?)?;
    Ok((ran.in_report_order(), measured.bpf_unavailable))
}

/// The sections run so far, each with its place in [`registry::EXPERIMENTS`].
#[derive(Default)]
struct Ran(Vec<(usize, Section)>);

impl Ran {
    /// Keeps experiment `id`'s section, once its figures and tables are the registry's: a name
    /// the registry does not list would be a file no test or document knows of.
    fn add(&mut self, id: &str, section: Section) -> Result<()> {
        let (place, e) = registry::find(id)
            .with_context(|| format!("experiment {id} is not in exp::registry::EXPERIMENTS"))?;
        for fig in &section.figures {
            anyhow::ensure!(
                e.figures.contains(&fig.as_str()),
                "experiment {id} saved figure {fig}, which the registry does not list"
            );
        }
        for t in &section.tables {
            anyhow::ensure!(
                e.tables.contains(&t.name.as_str()),
                "experiment {id} wrote table {}, which the registry does not list",
                t.name
            );
        }
        self.0.push((place, section));
        Ok(())
    }

    /// The sections in the registry's order.
    fn in_report_order(mut self) -> Vec<Section> {
        self.0.sort_by_key(|(place, _)| *place);
        self.0.into_iter().map(|(_, s)| s).collect()
    }
}

/// Every section's tables, the skipped list and the run's facts, under `opts.tables`.
fn write_tables(
    opts: &Options,
    machine: &Machine,
    elapsed: f64,
    skipped: &[(String, String)],
    sections: &[Section],
) -> Result<()> {
    let mut extra = Table::new(SKIPPED);
    for (what, why) in skipped {
        extra.push(vec![
            ("what", what.clone().into()),
            ("why", why.clone().into()),
        ]);
    }
    let mut run_table = Table::new(RUN);
    run_table.push(vec![
        ("command", machine.command.clone().into()),
        ("commit", machine.commit.clone().unwrap_or_default().into()),
        ("tree_clean", machine.tree_clean.into()),
        ("date", machine.date.clone().into()),
        ("cpu_model", machine.cpu_model.clone().into()),
        ("cores", machine.cores.into()),
        ("cpus_pinned", machine.pinned.into()),
        ("kernel", machine.kernel.clone().into()),
        ("load_avg_at_start", machine.load_avg.clone().into()),
        ("quick", opts.quick.into()),
        ("seconds", elapsed.into()),
    ]);
    for t in sections
        .iter()
        .flat_map(|s| &s.tables)
        .chain([&extra, &run_table])
    {
        t.write(&opts.tables)
            .with_context(|| format!("writing table {} under {}", t.name, opts.tables.display()))?;
    }
    Ok(())
}

/// One line per image (and the live file system) for the report's header.
fn image_lines(
    loaded: &[LoadedImage],
    specs: &[Spec],
    live: Option<&live::LiveSet>,
) -> Vec<String> {
    loaded
        .iter()
        .zip(specs)
        .map(|(i, s)| {
            format!(
                "`{}`: {} ({} files, {} extents, {} files not trainable, {} B blocks, models {})",
                i.name,
                s.note,
                i.files.len(),
                i.training.extents,
                i.training.errors,
                i.fs.block_size(),
                if i.pack_given { format!("from {}", i.pack_path.display()) } else { "trained in this run".into() }
            )
        })
        .chain(live.iter().map(|l| {
            format!(
                "`{}`: the regular files under {} on a mounted file system, read by FIEMAP ({} files, {} extents, {} paths not readable, {} files not trainable, {} B blocks, models trained in this run)",
                l.name,
                l.root.display(),
                l.files.len(),
                l.training.extents,
                l.skipped,
                l.training.errors,
                l.block_size
            )
        }))
        .collect()
}
