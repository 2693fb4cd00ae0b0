//! Mounting an image three ways for end-to-end reads: the kernel's ext4 (loop, read-only),
//! fuse2fs, and our `server mount` with a chosen tier. Each mount is undone on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

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

/// Whether `dir` is a mount point now (it appears as one in /proc/self/mountinfo).
fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    // Field 5 is the mount point (spaces escaped as \040; ours have none).
    info.lines().any(|l| l.split(' ').nth(4) == Some(&want))
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

    /// `fuse2fs -f -o ro,fakeroot IMAGE MNT` (`-f`: stay in the foreground as our child).
    pub fn fuse2fs(fuse2fs: &Path, image: &Path) -> Result<Self> {
        let dir = tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        let mut cmd = Command::new(fuse2fs);
        cmd.arg(image).arg(&mnt).args(["-f", "-o", "ro,fakeroot"]);
        Self::start(cmd, dir, "fuse2fs")
    }

    /// `server mount IMAGE MNT --models PACK --tier TIER --threads N`.
    pub fn ours(
        server: &Path,
        image: &Path,
        pack: &Path,
        tier: &str,
        threads: u16,
    ) -> Result<Self> {
        let dir = tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        let mut cmd = Command::new(server);
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
    fn log_tail(&self) -> String {
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

/// A scratch directory holding the mount point and the server's log.
fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("reports-mnt-")
        .tempdir()
        .context("creating a temporary mount directory")
}
