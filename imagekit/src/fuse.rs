//! A FUSE file system served by a child process (our `server mount`, fuse2fs, any other), for
//! the server's tests and the reports' end-to-end reads: started, waited for until its mount
//! appears in `/proc/self/mountinfo` ([`livefs::mountinfo`]), and never left behind: dropping it
//! unmounts (lazily as a last resort) and kills the server if it does not exit by itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::error::Ended;
use crate::error::{io_err, tail, Error, Result};

/// A running FUSE server and its mount.
#[derive(Debug)]
pub struct FuseMount {
    /// The mount point, canonical (see [`livefs::mountinfo::mounts_on`]).
    mountpoint: PathBuf,
    /// The server's stderr.
    log: PathBuf,
    /// What was started, for messages.
    what: String,
    child: Option<Child>,
    /// Mounts stacked on the mount point before ours: ours is up while there are more.
    before: usize,
    /// Whether our mount is (or was) up: only then does drop unmount.
    mounted: bool,
    /// A directory holding the mount point and the log, removed after the unmount (fields
    /// drop after `Drop::drop`).
    _scratch: Option<tempfile::TempDir>,
}

/// How often the mount table and the child are polled.
const POLL: Duration = Duration::from_millis(20);

impl FuseMount {
    /// Runs `cmd`, a FUSE server that mounts on `mountpoint` (an existing directory) and stays
    /// in the foreground, with its stderr in `log`, and waits up to `limit` for the mount. If
    /// the server exits first: [`Error::FuseExited`] with how it ended.
    pub fn start(
        cmd: Command,
        mountpoint: &Path,
        log: &Path,
        what: &str,
        limit: Duration,
    ) -> Result<Self> {
        Self::start_owning(cmd, mountpoint, log, what, limit, None)
    }

    /// [`Self::start`] in a fresh temporary directory, removed after the unmount: `make` gets
    /// the mount point (`DIR/mnt`) and returns the command; the log is `DIR/server.log`.
    pub fn in_scratch(
        make: impl FnOnce(&Path) -> Command,
        what: &str,
        limit: Duration,
    ) -> Result<Self> {
        let tmp = std::env::temp_dir();
        let scratch = tempfile::Builder::new()
            .prefix("imagekit-fuse-")
            .tempdir()
            .map_err(io_err("creating a temporary directory in", &tmp))?;
        let mnt = scratch.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(io_err("creating mount point", &mnt))?;
        let log = scratch.path().join("server.log");
        Self::start_owning(make(&mnt), &mnt, &log, what, limit, Some(scratch))
    }

    fn start_owning(
        mut cmd: Command,
        mountpoint: &Path,
        log: &Path,
        what: &str,
        limit: Duration,
        scratch: Option<tempfile::TempDir>,
    ) -> Result<Self> {
        let mountpoint = mountpoint
            .canonicalize()
            .map_err(io_err("resolving mount point", mountpoint))?;
        let before = mounts_on(&mountpoint);
        let log_file = std::fs::File::create(log).map_err(io_err("creating", log))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: format!("{cmd:?}"),
                source,
            })?;
        // From here on, dropping `m` on an early return kills the child.
        let mut m = Self {
            mountpoint,
            log: log.to_owned(),
            what: what.to_owned(),
            child: Some(child),
            before,
            mounted: false,
            _scratch: scratch,
        };
        let deadline = Instant::now() + limit;
        while !m.is_mounted() {
            if let Some(ended) = m.try_ended() {
                let what = m.what.clone();
                return Err(Error::FuseExited { what, ended });
            }
            if Instant::now() >= deadline {
                return Err(m.error(format!("did not mount within {limit:?}")));
            }
            std::thread::sleep(POLL);
        }
        m.mounted = true;
        Ok(m)
    }

    /// The mount point (canonical).
    #[must_use]
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The host path of `path` inside the mounted file system.
    #[must_use]
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.mountpoint.join(path.trim_start_matches('/'))
    }

    /// The server's process id (0 once it has been reaped).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the server wrote to stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines the server wrote to stderr, on one line.
    #[must_use]
    pub fn log_tail(&self) -> String {
        tail(&self.log())
    }

    /// Whether our mount is on the mount point now.
    #[must_use]
    pub fn is_mounted(&self) -> bool {
        mounts_on(&self.mountpoint) > self.before
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How the server ended, if it has (once: the child is reaped).
    pub fn try_ended(&mut self) -> Option<Ended> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(Ended {
            status,
            stderr: self.log(),
        })
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Ended> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.try_ended() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to the server (while it has not been reaped).
    pub fn signal(&self, signal: i32) {
        if let Ok(pid) = i32::try_from(self.pid()) {
            if pid > 0 {
                // SAFETY: kill has no memory preconditions; the pid is our unreaped child's.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// Unmounts with `umount` (not lazily) and waits up to `limit` for the server to exit by
    /// itself, as it does once unmounted.
    pub fn unmount(mut self, limit: Duration) -> Result<Ended> {
        if !umount(&self.mountpoint, false) {
            return Err(self.error("could not be unmounted (umount failed)".into()));
        }
        self.mounted = false;
        self.wait_exit(limit)
            .ok_or_else(|| self.error(format!("did not exit within {limit:?} of umount")))
    }

    fn error(&self, reason: String) -> Error {
        Error::Fuse {
            what: self.what.clone(),
            reason,
            log_tail: self.log_tail(),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if !self.mounted {
            self.kill();
            return;
        }
        if self.is_mounted() && !umount(&self.mountpoint, false) {
            tracing::warn!(what = %self.what, "umount failed; detaching lazily");
            umount(&self.mountpoint, true);
        }
        if self.child.is_some() && self.wait_exit(Duration::from_secs(5)).is_none() {
            tracing::warn!(what = %self.what, pid = self.pid(), "did not exit after unmount; killing it");
            self.kill();
        }
        // A server killed with its mount still up leaves the mount dead (ENOTCONN).
        if self.is_mounted() {
            umount(&self.mountpoint, true);
        }
    }
}

/// Mounts on `dir` (canonical); 0 if the mount table cannot be read.
fn mounts_on(dir: &Path) -> usize {
    livefs::mountinfo::mounts_on(dir).unwrap_or(0)
}

/// Runs `umount [-l] dir`, quietly; whether it succeeded.
pub fn umount(dir: &Path, lazy: bool) -> bool {
    let Ok(program) = crate::tool("umount") else {
        return false;
    };
    let mut cmd = Command::new(program);
    if lazy {
        cmd.arg("-l");
    }
    cmd.arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_before_mounting_says_how_it_ended() {
        let make = |_: &Path| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "echo no such image >&2; exit 3"]);
            cmd
        };
        match FuseMount::in_scratch(make, "sh", Duration::from_secs(10)) {
            Err(Error::FuseExited { what, ended }) => {
                assert_eq!(what, "sh");
                assert_eq!(ended.status.code(), Some(3));
                assert_eq!(ended.log_tail(), "no such image");
            }
            other => panic!("expected FuseExited, got {other:?}"),
        }
    }

    #[test]
    fn a_server_that_never_mounts_times_out_and_is_killed() {
        let make = |_: &Path| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            cmd
        };
        let start = Instant::now();
        let err = FuseMount::in_scratch(make, "sleep", Duration::from_millis(200))
            .expect_err("sleep mounts nothing");
        assert!(err.to_string().contains("did not mount within"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the child was waited for"
        );
    }
}
