//! Mounting an image three ways for end-to-end reads: the kernel's ext4 (loop, read-only),
//! fuse2fs, and our `server mount` with a chosen tier. Each mount is undone on drop.
//! [`Systems::mount`] mounts every one that can run here (experiment 6 and `reports reads`
//! share it), and says why each other one cannot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use predictor::error::Chain;

/// Display name of the kernel mount.
pub const KERNEL: &str = "kernel ext4 (loop)";
/// Display name of fuse2fs.
pub const FUSE2FS: &str = "fuse2fs";

/// Display name of our mount with `tier`.
pub fn ours(tier: &str) -> String {
    format!("ours: {tier}")
}

/// A mounted system: kept alive (mounted) while its reads run, unmounted on drop.
#[derive(Debug)]
pub enum Mounted {
    /// The kernel's ext4 on a loop device.
    Kernel(imagekit::kernel::LoopMount),
    /// fuse2fs or our server.
    Fuse(FuseMount),
}

impl Mounted {
    /// The host path of `path` inside the mounted image.
    pub fn host_path(&self, path: &str) -> PathBuf {
        match self {
            Mounted::Kernel(m) => m.host_path(path),
            Mounted::Fuse(m) => m.host_path(path),
        }
    }

    /// What the FUSE server last wrote to stderr (for an error that came through it).
    pub fn log_tail(&self) -> String {
        match self {
            Mounted::Kernel(_) => "(the kernel's mount logs to the kernel log)".into(),
            Mounted::Fuse(m) => m.log_tail(),
        }
    }
}

/// One mounted system.
#[derive(Debug)]
pub struct System {
    /// Display name ([`KERNEL`], [`FUSE2FS`], [`ours`]).
    pub name: String,
    /// Our tier, or "" for the others.
    pub tier: String,
    /// The mount.
    pub mounted: Mounted,
}

/// What to mount for end-to-end reads of one image.
#[derive(Debug, Clone)]
pub struct Systems<'a> {
    /// The image, mounted read-only by each system.
    pub image: &'a Path,
    /// The model pack our mounts load.
    pub pack: &'a Path,
    /// Whether this kernel can mount the image's block size.
    pub kernel_mountable: bool,
    /// Our tiers, one mount each.
    pub tiers: &'a [String],
    /// The `server` binary, if there is one.
    pub server: Option<&'a Path>,
    /// The `fuse2fs` binary, if there is one.
    pub fuse2fs: Option<&'a Path>,
    /// FUSE threads of our server.
    pub threads: u16,
    /// Pin the FUSE servers (fuse2fs, ours) to this CPU.
    pub cpu: Option<usize>,
}

impl Systems<'_> {
    /// Mounts every system that can run here, the kernel first, then fuse2fs, then our tiers;
    /// the others are returned with the reason, as `(name, why)`.
    pub fn mount(&self) -> (Vec<System>, Vec<(String, String)>) {
        let root = imagekit::kernel::is_root();
        let fuse_dev = Path::new("/dev/fuse").exists();
        let not_root = || Err("not root (reports mounts file systems as root only)".to_string());
        let fuse_err = |r: Result<FuseMount>| r.map(Mounted::Fuse).map_err(|e| format!("{e:#}"));
        // (name, our tier or "", the mount or why not), in mounting order.
        let mut attempts: Vec<(String, String, Result<Mounted, String>)> = Vec::new();
        let kernel = if !root {
            Err("needs root for a loop mount".to_string())
        } else if !self.kernel_mountable {
            Err("this kernel cannot mount the image's block size".to_string())
        } else {
            imagekit::kernel::LoopMount::new(self.image)
                .map(Mounted::Kernel)
                .map_err(|e| format!("loop mount failed: {}", Chain(&e)))
        };
        attempts.push((KERNEL.into(), String::new(), kernel));
        let fuse2fs = match self.fuse2fs {
            None => Err("fuse2fs not found (Debian package fuse2fs)".to_string()),
            Some(_) if !fuse_dev => Err("/dev/fuse is missing".to_string()),
            Some(_) if !root => not_root(),
            Some(bin) => fuse_err(FuseMount::fuse2fs(bin, self.image, self.cpu)),
        };
        attempts.push((FUSE2FS.into(), String::new(), fuse2fs));
        for tier in self.tiers {
            let m = match self.server {
                None => Err(
                    "no `server` binary next to `reports` or on PATH (build it: cargo \
                             build --release -p server)"
                        .to_string(),
                ),
                Some(_) if !fuse_dev => Err("/dev/fuse is missing".to_string()),
                Some(_) if !root => not_root(),
                Some(bin) => fuse_err(FuseMount::ours(
                    bin,
                    self.image,
                    self.pack,
                    tier,
                    self.threads,
                    self.cpu,
                )),
            };
            attempts.push((ours(tier), tier.clone(), m));
        }
        let mut mounted = Vec::new();
        let mut skipped = Vec::new();
        for (name, tier, m) in attempts {
            match m {
                Ok(m) => mounted.push(System {
                    name,
                    tier,
                    mounted: m,
                }),
                Err(why) => skipped.push((name, why)),
            }
        }
        (mounted, skipped)
    }
}

/// Finds an executable: `explicit` if given, else `name` next to this binary (same build
/// profile), else on PATH (and the sbin directories, where e2fsprogs lives).
pub fn find_tool(name: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    sibling
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join(name)))
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(|d| Path::new(d).join(name)))
        .find(|p| p.is_file())
}

/// Whether `dir` is a mount point now.
fn is_mounted(dir: &Path) -> bool {
    livefs::mountinfo::is_mount_point(dir).unwrap_or(false)
}

/// A FUSE file system served by a child process until dropped.
#[derive(Debug)]
pub struct FuseMount {
    /// Holds the mount point and the log; removed after the unmount (fields drop after `drop`).
    _dir: tempfile::TempDir,
    mountpoint: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    what: String,
}

impl FuseMount {
    /// Runs `cmd` (which must mount on `dir` and stay in the foreground) and waits up to 15 s
    /// for the mount to appear.
    fn start(mut cmd: Command, dir: tempfile::TempDir, what: &str) -> Result<Self> {
        let mountpoint = dir.path().join("mnt");
        let log = dir.path().join("server.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let mut m = Self {
            _dir: dir,
            mountpoint,
            child: Some(child),
            log,
            what: what.to_string(),
        };
        let start = Instant::now();
        while !is_mounted(&m.mountpoint) {
            if let Some(c) = m.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    m.child = None;
                    bail!("{what} exited ({status}) before mounting: {}", m.log_tail());
                }
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("{what} did not mount within 15 s: {}", m.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(m)
    }

    /// `fuse2fs -f -o ro,fakeroot IMAGE MNT` (`-f`: stay in the foreground as our child),
    /// pinned to `cpu` if given.
    pub fn fuse2fs(fuse2fs: &Path, image: &Path, cpu: Option<usize>) -> Result<Self> {
        let dir = tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        let mut cmd = pinned(fuse2fs, cpu);
        cmd.arg(image).arg(&mnt).args(["-f", "-o", "ro,fakeroot"]);
        Self::start(cmd, dir, "fuse2fs")
    }

    /// `server mount IMAGE MNT --models PACK --tier TIER --threads N`, pinned to `cpu` if
    /// given.
    pub fn ours(
        server: &Path,
        image: &Path,
        pack: &Path,
        tier: &str,
        threads: u16,
        cpu: Option<usize>,
    ) -> Result<Self> {
        let dir = tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        let mut cmd = pinned(server, cpu);
        cmd.arg("mount")
            .arg(image)
            .arg(&mnt)
            .arg("--models")
            .arg(pack)
            .args(["--tier", tier, "--threads", &threads.to_string()])
            .env("IOMAP_LOG", "warn");
        Self::start(cmd, dir, &format!("server mount --tier {tier}"))
    }

    /// The host path of `path` inside the mounted image.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.mountpoint.join(path.trim_start_matches('/'))
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        if lines.is_empty() {
            "(no output)".into()
        } else {
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let ok = Command::new("umount")
                .arg(&self.mountpoint)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                tracing::warn!(what = %self.what, "umount failed; detaching lazily");
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            // The server exits once unmounted; give it a moment, then stop the child we started.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::warn!(what = %self.what, pid = child.id(), "did not exit after unmount; killing it");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program`, run under `taskset -c CPU` (util-linux) when `cpu` is given: the process and
/// every thread it starts stay on that CPU.
fn pinned(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A scratch directory holding the mount point and the server's log.
fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("reports-mnt-")
        .tempdir()
        .context("creating a temporary mount directory")
}
