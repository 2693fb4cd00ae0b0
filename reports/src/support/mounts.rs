//! Mounting an image three ways for end-to-end reads: the kernel's ext4 (loop, read-only),
//! fuse2fs, and our `server mount` with a chosen tier. Each mount is undone on drop.
//! [`Systems::mount`] mounts every one that can run here (experiment 6 and `reports reads`
//! share it), and says why each other one cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use imagekit::fuse::FuseMount;
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
    /// fuse2fs or our server ([`imagekit::fuse::FuseMount`]).
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
            Some(bin) => fuse_err(fuse2fs(bin, self.image, self.cpu)),
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
                Some(bin) => fuse_err(ours_mount(
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

/// How long a FUSE server may take to mount.
const MOUNT_LIMIT: Duration = Duration::from_secs(15);

/// `fuse2fs -f -o ro,fakeroot IMAGE MNT` (`-f`: stay in the foreground as our child), pinned
/// to `cpu` if given.
pub fn fuse2fs(fuse2fs: &Path, image: &Path, cpu: Option<usize>) -> Result<FuseMount> {
    let command = |mnt: &Path| {
        let mut cmd = pinned(fuse2fs, cpu);
        cmd.arg(image).arg(mnt).args(["-f", "-o", "ro,fakeroot"]);
        cmd
    };
    Ok(FuseMount::in_scratch(command, "fuse2fs", MOUNT_LIMIT)?)
}

/// `server mount IMAGE MNT --models PACK --tier TIER --threads N`, pinned to `cpu` if given.
pub fn ours_mount(
    server: &Path,
    image: &Path,
    pack: &Path,
    tier: &str,
    threads: u16,
    cpu: Option<usize>,
) -> Result<FuseMount> {
    let command = |mnt: &Path| {
        let mut cmd = pinned(server, cpu);
        cmd.arg("mount")
            .arg(image)
            .arg(mnt)
            .arg("--models")
            .arg(pack)
            .args(["--tier", tier, "--threads", &threads.to_string()])
            .env("IOMAP_LOG", "warn");
        cmd
    };
    let what = format!("server mount --tier {tier}");
    Ok(FuseMount::in_scratch(command, &what, MOUNT_LIMIT)?)
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
