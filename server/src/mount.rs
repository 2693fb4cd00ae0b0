//! `server mount`: checks everything that can be checked before mounting, mounts the image
//! read-only with fuser, serves until unmounted or interrupted, and writes the stats at the end.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use parking_lot::Mutex;

use crate::fusefs::{ImageFs, STATS_NAME};
use crate::image;
use crate::signals;
use crate::stats::Stats;
use bpf::TierChoice;
use livefs::mountinfo;

/// Arguments of `server mount`.
#[derive(clap::Args, Debug)]
#[command(after_help = format!("\
Serves IMAGE read-only at MOUNTPOINT in the foreground until `umount MOUNTPOINT`, Ctrl-C or
SIGTERM (a second Ctrl-C exits at once; a busy mount is detached lazily). Every block mapping of
a file read is answered by the chosen tier stack, one lookup per contiguous run.

Stats (per-tier answered/declined/missed counters, lookup-latency percentiles in ns, audit
mismatches, read counters), as JSON:
  cat MOUNTPOINT/{STATS_NAME}     while mounted (a hidden file: not listed, always current)
  kill -USR1 <pid>                 writes --stats-json while mounted
  --stats-json FILE                written at unmount

As root the mount needs nothing but /dev/fuse (mount(2) directly). As another user it needs
`fusermount3` (Debian package fuse3) on PATH, and `user_allow_other` in /etc/fuse.conf for
--allow-other.

Example:
  server mount disk.img /mnt/disk --models disk.pack --audit --stats-json stats.json"))]
pub struct MountArgs {
    /// The ext4 image, opened read-only.
    image: PathBuf,
    /// An existing directory that is not already a mount point (its contents are hidden while
    /// mounted).
    mountpoint: PathBuf,
    /// Model pack trained on this image (by `training fit`). Without it the learned tier
    /// declines every query and the B-tree answers; the compact tier fits its lines at mount.
    #[arg(long, value_name = "PACK")]
    models: Option<PathBuf>,
    /// Tier stack that maps file blocks (learned falls back to btree, then ondisk).
    #[arg(long, value_parser = image::tier_parser(), default_value = "learned")]
    tier: TierChoice,
    /// Check every predictor (and BPF) answer against the B-tree; mismatches are counted in
    /// the stats.
    #[arg(long)]
    audit: bool,
    /// Write the stats here as JSON at unmount (and on SIGUSR1).
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// FUSE worker threads (each with its own /dev/fuse descriptor).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Let other users than the one mounting use the mount (FUSE's allow_other).
    #[arg(long)]
    allow_other: bool,
}

/// Runs `server mount` until the filesystem is unmounted.
pub fn run(args: &MountArgs) -> anyhow::Result<()> {
    check_mountpoint(&args.mountpoint)?;
    let loaded = image::open(&args.image, args.models.as_deref(), args.tier, args.audit)?;
    let stats = Arc::new(Stats::new(&loaded)?);
    let image_file = std::fs::File::open(&args.image)
        .with_context(|| format!("image {}", args.image.display()))?;
    let filesystem = ImageFs::new(loaded.fs.clone(), stats.clone(), image_file);

    let unmounter: Arc<Mutex<Option<SessionUnmounter>>> = Arc::default();
    let stop_requested = Arc::new(AtomicBool::new(false));
    let mountpoint = args.mountpoint.canonicalize()?;
    {
        let (unmounter, stop_requested) = (unmounter.clone(), stop_requested.clone());
        let (stats, dump, mp) = (stats.clone(), args.stats_json.clone(), mountpoint.clone());
        let (stats2, dump2) = (stats.clone(), dump.clone());
        signals::spawn(
            move |n| {
                if n > 1 {
                    tracing::warn!("second stop signal: exiting without waiting for the session");
                    write_stats(&stats, dump.as_deref());
                    std::process::exit(1);
                }
                stop_requested.store(true, Ordering::SeqCst);
                if let Some(u) = unmounter.lock().as_mut() {
                    unmount(u, &mp);
                }
            },
            move || write_stats(&stats2, dump2.as_deref()),
        )?;
    }

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(args.image.display().to_string()),
        MountOption::Subtype("iomap-predictor".into()),
        // The kernel checks permission bits as ext4 would (no `access` upcalls).
        MountOption::DefaultPermissions,
        // The image is untrusted input: its device nodes and setuid bits mean nothing here.
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    config.acl = if args.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(usize::from(args.threads));
    config.clone_fd = true;

    let mut session = Session::new(filesystem, &mountpoint, &config)
        .with_context(|| format!("mounting on {}", mountpoint.display()))?;
    *unmounter.lock() = Some(session.unmount_callable());
    if stop_requested.load(Ordering::SeqCst) {
        // A signal came while mounting.
        if let Some(u) = unmounter.lock().as_mut() {
            unmount(u, &mountpoint);
        }
    }
    tracing::info!(
        image = %args.image.display(),
        mountpoint = %mountpoint.display(),
        tier = args.tier.name(),
        files = loaded.report.files,
        models_active = loaded.report.models_active,
        "mounted; `umount {}` or Ctrl-C to stop",
        mountpoint.display()
    );
    let result = session.run();
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    write_stats(&stats, args.stats_json.as_deref());
    result.context("FUSE session")
}

/// Refuses a mount point that does not exist, is not a directory or is already mounted on.
fn check_mountpoint(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            anyhow::anyhow!(
                "mount point {}: {e} (a dead FUSE mount is still there: `umount -l` it)",
                dir.display()
            )
        } else {
            anyhow::anyhow!("mount point {}: {e}", dir.display())
        }
    })?;
    if !meta.is_dir() {
        bail!("mount point {}: not a directory", dir.display());
    }
    if mountinfo::is_mount_point(dir).with_context(|| {
        format!(
            "mount point {}: checking /proc/self/mountinfo",
            dir.display()
        )
    })? {
        bail!(
            "mount point {}: already in use (something is mounted there; unmount it first)",
            dir.display()
        );
    }
    Ok(())
}

/// Unmounts; if the mount is busy (open files, a shell inside), detaches it lazily so it
/// disappears now and the session ends when the last user lets go.
fn unmount(u: &mut SessionUnmounter, mountpoint: &Path) {
    match u.unmount() {
        Ok(()) => tracing::info!("unmounting"),
        Err(e) => {
            tracing::warn!(error = %e, "unmount failed; detaching lazily (umount -l)");
            let Ok(c) = CString::new(mountpoint.as_os_str().as_bytes()) else {
                return;
            };
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                let e = std::io::Error::last_os_error();
                tracing::error!(error = %e, "lazy unmount failed; run `umount -l {}`", mountpoint.display());
            }
        }
    }
}

fn write_stats(stats: &Stats, path: Option<&Path>) {
    if let Some(path) = path {
        match stats.write(path) {
            Ok(()) => tracing::info!(path = %path.display(), "stats written"),
            Err(e) => tracing::error!(path = %path.display(), error = %e, "writing stats"),
        }
    }
}
