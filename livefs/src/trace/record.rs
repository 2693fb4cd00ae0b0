//! Recording a trace: a tracefs instance of our own (its own ring buffer, so nothing another
//! tracer set up is touched), ext4's tracepoints enabled for one device, FIEMAP maps of every
//! file at the start and at each checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::parse::{parse_trace, ParseError, CHECKPOINT_MARK};
use super::{merged, Event, Trace};
use crate::BlockExtent;

/// Where tracefs is mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The tracepoints a trace reads (see the module documentation of `trace`).
pub const EVENTS: [&str; 6] = [
    "ext4_es_lookup_extent_enter",
    "ext4_es_insert_extent",
    "ext4_es_remove_extent",
    "ext4_collapse_range",
    "ext4_insert_range",
    "ext4_evict_inode",
];

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// tracefs is not there.
    #[error("tracefs is not mounted at {TRACEFS} (as root: mount -t tracefs nodev {TRACEFS})")]
    NoTracefs,
    /// A tracefs file could not be read or written (not root, no ext4 tracepoints, ...).
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The ring buffer overflowed: the trace would miss events, so there is no trace.
    #[error("the trace lost {lost} events (ring buffer overrun; record with a larger buffer)")]
    Lost {
        /// Events lost, over every CPU.
        lost: u64,
    },
    /// Reading the maps failed.
    #[error(transparent)]
    Map(#[from] crate::Error),
    /// The traced text could not be read.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The mount is not ext4, or a file could not be mapped.
    #[error("{0}")]
    Unusable(String),
}

/// A recording in progress on the ext4 file system mounted at `mount`.
pub struct Recorder {
    instance: PathBuf,
    mount: PathBuf,
    dev: (u32, u32),
    block_size: u32,
    workload: String,
    initial: BTreeMap<u64, Vec<BlockExtent>>,
    checkpoints: Vec<BTreeMap<u64, Vec<BlockExtent>>>,
}

impl Recorder {
    /// Maps every file under `mount`, then starts tracing its device into a ring buffer of
    /// `buffer_kib` KiB per CPU. Needs root.
    pub fn start(mount: &Path, workload: &str, buffer_kib: u64) -> Result<Self, RecordError> {
        if !Path::new(TRACEFS).join("instances").is_dir() {
            return Err(RecordError::NoTracefs);
        }
        let meta = std::fs::metadata(mount).map_err(io("reading", mount))?;
        let dev = (libc_major(meta.dev()), libc_minor(meta.dev()));
        let fs = crate::file_system(mount)?;
        remove_orphans();
        let instance = Path::new(TRACEFS)
            .join("instances")
            .join(format!("{INSTANCE_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&instance)
            .map_err(io("creating the tracefs instance", &instance))?;
        let mut r = Self {
            instance,
            mount: mount.to_path_buf(),
            dev,
            block_size: fs.block_size,
            workload: workload.to_string(),
            initial: BTreeMap::new(),
            checkpoints: Vec::new(),
        };
        r.set("buffer_size_kb", &buffer_kib.to_string())?;
        r.set("trace_clock", "global")?;
        let kernel_dev = (u64::from(dev.0) << 20) | u64::from(dev.1);
        for e in EVENTS {
            r.set(
                &format!("events/ext4/{e}/filter"),
                &format!("dev == {kernel_dev}"),
            )?;
            r.set(&format!("events/ext4/{e}/enable"), "1")?;
        }
        r.initial = r.maps()?;
        r.set("tracing_on", "1")?;
        Ok(r)
    }

    /// Syncs the file system, marks the point in the trace and maps every file (tracing paused
    /// meanwhile, so FIEMAP's own lookups are not in the trace).
    pub fn checkpoint(&mut self) -> Result<(), RecordError> {
        self.sync()?;
        let n = self.checkpoints.len();
        self.set("trace_marker", &format!("{CHECKPOINT_MARK}{n}"))?;
        self.set("tracing_on", "0")?;
        let maps = self.maps()?;
        self.checkpoints.push(maps);
        self.set("tracing_on", "1")
    }

    /// Takes a last checkpoint, stops, and reads the trace: an error if any event was lost.
    pub fn finish(mut self) -> Result<Trace, RecordError> {
        self.checkpoint()?;
        self.set("tracing_on", "0")?;
        let lost = self.lost()?;
        if lost > 0 {
            return Err(RecordError::Lost { lost });
        }
        let path = self.instance.join("trace");
        let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
        let parsed = parse_trace(&text, self.dev, self.block_size)?;
        let mut events = Vec::with_capacity(parsed.events.len());
        let mut queued = parsed.events.into_iter();
        let mut taken = 0;
        for (at, n) in parsed.checkpoints {
            events.extend(queued.by_ref().take(at - taken));
            taken = at;
            let maps = usize::try_from(n)
                .ok()
                .and_then(|n| self.checkpoints.get(n));
            let Some(maps) = maps else {
                return Err(RecordError::Unusable(format!(
                    "the trace has checkpoint {n}, which this recording did not take"
                )));
            };
            events.extend(maps.iter().map(|(&ino, map)| Event::Checkpoint {
                ino,
                map: map.clone(),
            }));
        }
        events.extend(queued);
        Ok(Trace {
            workload: std::mem::take(&mut self.workload),
            block_size: self.block_size,
            initial: std::mem::take(&mut self.initial),
            events,
        })
    }

    fn set(&self, file: &str, value: &str) -> Result<(), RecordError> {
        let path = self.instance.join(file);
        std::fs::write(&path, value).map_err(io("writing", &path))
    }

    fn sync(&self) -> Result<(), RecordError> {
        let dir = File::open(&self.mount).map_err(io("opening", &self.mount))?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(io("syncing", &self.mount)(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Every regular file's map, merged, by inode.
    fn maps(&self) -> Result<BTreeMap<u64, Vec<BlockExtent>>, RecordError> {
        self.sync()?;
        let scan = crate::scan(&self.mount, &mut |_| {})?;
        if let Some(e) = scan.skipped.first() {
            return Err(RecordError::Unusable(format!(
                "a file could not be mapped: {e}"
            )));
        }
        Ok(scan
            .files
            .iter()
            .map(|f| (f.ino, merged(&f.extents)))
            .collect())
    }

    /// Events lost over every CPU's buffer.
    fn lost(&self) -> Result<u64, RecordError> {
        let dir = self.instance.join("per_cpu");
        let mut lost = 0;
        for cpu in std::fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let stats = cpu.map_err(io("reading", &dir))?.path().join("stats");
            let text = std::fs::read_to_string(&stats).map_err(io("reading", &stats))?;
            for line in text.lines() {
                if let Some(n) = line
                    .strip_prefix("overrun:")
                    .or_else(|| line.strip_prefix("dropped events:"))
                {
                    lost += n.trim().parse::<u64>().map_err(|_| {
                        RecordError::Unusable(format!(
                            "{}: unreadable line {line:?}",
                            stats.display()
                        ))
                    })?;
                }
            }
        }
        Ok(lost)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        remove_instance(&self.instance);
    }
}

/// Names of our tracefs instances, followed by the recording process's id.
const INSTANCE_PREFIX: &str = "iomap-predictor-";

/// Removes a tracefs instance (its ring buffers are freed with it).
fn remove_instance(instance: &Path) {
    // Disable the events first: an instance with enabled events cannot be removed.
    for e in EVENTS {
        let _ = std::fs::write(instance.join(format!("events/ext4/{e}/enable")), "0");
    }
    if let Err(e) = std::fs::remove_dir(instance) {
        tracing::warn!(instance = %instance.display(), error = %e, "removing the tracefs instance");
    }
}

/// Removes the instances of recordings whose process is gone (killed before it could clean
/// up): each holds a ring buffer per CPU.
fn remove_orphans() {
    let Ok(dir) = std::fs::read_dir(Path::new(TRACEFS).join("instances")) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(INSTANCE_PREFIX));
        if pid.is_some_and(|p| p.parse::<u32>().is_ok() && !Path::new("/proc").join(p).exists()) {
            tracing::info!(instance = %entry.path().display(), "removing an orphaned tracefs instance");
            remove_instance(&entry.path());
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordError {
    let path = path.to_path_buf();
    move |source| RecordError::Io { what, path, source }
}

/// `major(dev)` as glibc encodes `st_dev`.
fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// `minor(dev)` as glibc encodes `st_dev`.
fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}
