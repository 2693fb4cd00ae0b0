//! Shared by the server's integration tests: the built binary, mounts of it that always go
//! away, model packs, and timeouts that turn a hung mount into a test failure.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use ext4::Fs;
use imagekit::fuse::FuseMount;
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

pub use imagekit::fuse::{umount, Ended};

/// Whether `dir` is a mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    mounts_at(dir) > 0
}

/// How many mounts are stacked on `dir` (0 if it cannot be resolved).
pub fn mounts_at(dir: &Path) -> usize {
    dir.canonicalize()
        .and_then(|dir| livefs::mountinfo::mounts_on(&dir))
        .unwrap_or(0)
}

/// A running `server mount` ([`imagekit::fuse::FuseMount`]). Dropping it unmounts (lazily as a
/// last resort) and kills the server if it does not exit by itself, so no test leaves a mount
/// behind.
#[derive(Debug)]
pub struct ServerMount {
    pub dir: PathBuf,
    fuse: FuseMount,
}

impl ServerMount {
    /// Starts `server mount IMAGE DIR ARGS...` (stderr in `DIR.log`) and waits (up to 60 s)
    /// until DIR is mounted. If the server exits first, returns how it ended.
    pub fn start(image: &Path, dir: &Path, args: &[&str]) -> Result<Self, Ended> {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut cmd = Command::new(SERVER);
        cmd.arg("mount")
            .arg(image)
            .arg(dir)
            .args(args)
            .env("IOMAP_LOG", "info");
        let log = dir.with_extension("log");
        match FuseMount::start(cmd, dir, &log, "server mount", Duration::from_secs(60)) {
            Ok(fuse) => Ok(Self {
                dir: dir.to_owned(),
                fuse,
            }),
            Err(imagekit::Error::FuseExited { ended, .. }) => Err(ended),
            Err(e) => panic!("{e}"),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.fuse.pid()
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        self.fuse.log()
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.fuse.running()
    }

    /// Unmounts with `umount` and waits for the server to exit by itself.
    pub fn unmount(self) -> Ended {
        self.fuse
            .unmount(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `signal` and waits for the server to unmount and exit by itself.
    pub fn stop_with(mut self, signal: i32) -> Ended {
        self.fuse.signal(signal);
        let ended = self
            .fuse
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!("server did not exit on signal {signal}:\n{}", self.stderr())
            });
        assert!(
            !self.fuse.is_mounted(),
            "still mounted after the server exited"
        );
        ended
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
