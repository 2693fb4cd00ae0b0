//! Shared by the server's integration tests: the built binary, mounts of it that always go
//! away, model packs, and timeouts that turn a hung mount into a test failure.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ext4::Fs;
use predictor::model::FitParams;
use predictor::pack::Pack;

/// The `server` binary under test.
pub const SERVER: &str = env!("CARGO_BIN_EXE_server");

pub use imagekit::root_or_skip;

/// `n` extents with gaps and random lengths, some unwritten, from block `first`, physically at
/// `base` plus about three times the logical block (the BPF tier tests' maps).
pub fn synthetic(n: usize, seed: u64, first: u32, base: u64) -> Vec<ext4::Extent> {
    let mut rng = predictor::synth::Rng::new(seed);
    let mut lblk = first;
    (0..n)
        .map(|i| {
            let len = 1 + rng.below(8) as u32;
            let e = ext4::Extent {
                lblk,
                pblk: base + 3 * u64::from(lblk) + rng.below(5),
                len,
                unwritten: i % 7 == 3,
            };
            lblk += len + rng.below(3) as u32;
            e
        })
        .collect()
}

/// The model pack `training fit` would write for `fs`.
pub fn build_pack(fs: &Fs) -> Pack {
    let trained = predictor::train::train(fs, &FitParams::default(), 2, &|_| ());
    assert!(trained.errors.is_empty(), "training: {:?}", trained.errors);
    trained.pack
}

/// Writes the pack of `image` to `path`.
pub fn write_pack(image: &Path, path: &Path) -> Pack {
    let fs = Fs::open_path(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let pack = build_pack(&fs);
    pack.write_file(path)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    pack
}

/// Runs `umount [-l] dir`; whether it succeeded.
pub fn umount(dir: &Path, lazy: bool) -> bool {
    let mut cmd = Command::new("umount");
    if lazy {
        cmd.arg("-l");
    }
    cmd.arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `dir` is a mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    mounts_at(dir) > 0
}

/// How many mounts are stacked on `dir`.
pub fn mounts_at(dir: &Path) -> usize {
    let (Ok(dir), Ok(text)) = (
        dir.canonicalize(),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return 0;
    };
    livefs::mountinfo::mount_points(&text)
        .iter()
        .filter(|m| **m == dir)
        .count()
}

/// How `server mount` ended.
#[derive(Debug)]
pub struct Ended {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// A running `server mount`. Dropping it unmounts (lazily as a last resort) and kills the
/// server if it does not exit by itself, so no test leaves a mount behind.
#[derive(Debug)]
pub struct ServerMount {
    pub dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// Whether this server's mount is (or was) up: only then does drop unmount `dir`.
    mounted: bool,
}

impl ServerMount {
    /// Starts `server mount IMAGE DIR ARGS...` and waits (up to 60 s) until DIR is mounted.
    /// If the server exits first, returns how it ended.
    pub fn start(image: &Path, dir: &Path, args: &[&str]) -> Result<Self, Ended> {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let before = mounts_at(dir);
        let log = dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(SERVER)
            .arg("mount")
            .arg(image)
            .arg(dir)
            .args(args)
            .env("IOMAP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {SERVER}: {e}"));
        let mut m = ServerMount {
            dir: dir.to_owned(),
            child: Some(child),
            log,
            mounted: false,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if mounts_at(dir) > before {
                m.mounted = true;
                return Ok(m);
            }
            if let Some(ended) = m.try_ended() {
                return Err(ended);
            }
            assert!(
                Instant::now() < deadline,
                "server did not mount {} within 60 s:\n{}",
                dir.display(),
                m.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn try_ended(&mut self) -> Option<Ended> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(Ended {
            status,
            stderr: self.stderr(),
        })
    }

    /// Waits up to `limit` for the server to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<Ended> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(e) = self.try_ended() {
                return Some(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Unmounts with `umount` and waits for the server to exit by itself.
    pub fn unmount(mut self) -> Ended {
        assert!(
            umount(&self.dir, false),
            "umount {} failed",
            self.dir.display()
        );
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("server did not exit after umount:\n{}", self.stderr()))
    }

    /// Sends `signal` and waits for the server to unmount and exit by itself.
    pub fn stop_with(mut self, signal: i32) -> Ended {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.pid() as i32, signal) };
        let ended = self.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| {
            panic!("server did not exit on signal {signal}:\n{}", self.stderr())
        });
        assert!(
            !is_mounted(&self.dir),
            "still mounted after the server exited"
        );
        ended
    }
}

impl Drop for ServerMount {
    fn drop(&mut self) {
        if !self.mounted {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            return;
        }
        if is_mounted(&self.dir) && !umount(&self.dir, false) {
            umount(&self.dir, true);
        }
        if self.child.is_some() && self.wait_exit(Duration::from_secs(5)).is_none() {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if is_mounted(&self.dir) {
            umount(&self.dir, true);
        }
    }
}

/// Runs `f` on a thread and waits up to `limit`; on timeout calls `abort` (which must unblock
/// `f`: kill the server, unmount lazily) and panics. A hung FUSE request would otherwise hang
/// the test forever.
pub fn with_timeout<T: Send + 'static>(
    what: &str,
    limit: Duration,
    abort: impl FnOnce(),
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => {
            let _ = handle.join();
            v
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => {
            abort();
            let _ = handle.join();
            panic!("{what}: no answer within {limit:?} (the mount hung)");
        }
    }
}

/// Kills process `pid` and lazily unmounts `dir`: what unblocks readers of a hung mount.
pub fn kill_and_detach(pid: u32, dir: &Path) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    umount(dir, true);
}

/// Runs the server with `args` to completion (for commands that end by themselves).
pub fn run_server(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(SERVER)
        .args(args)
        .env("IOMAP_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running {SERVER}: {e}"))
}

/// The stats JSON the server wrote (at exit, or on SIGUSR1).
pub fn stats_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// The number at `path` (a list of object keys) in a stats JSON.
pub fn num(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v}"))
}
