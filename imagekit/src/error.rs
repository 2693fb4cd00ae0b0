//! The one error type of this crate.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;

/// Everything that can go wrong while building an image or asking an oracle.
///
/// Every variant names what was being done: the command line, the image, the path inside the
/// image or on the host, and what the tool said on stderr (cut to a few KiB).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tool from e2fsprogs or util-linux is not installed.
    #[error("`{tool}` not found in PATH, /usr/sbin or /sbin (install e2fsprogs / util-linux)")]
    ToolMissing {
        /// Program name, e.g. `debugfs`.
        tool: String,
    },
    /// The process could not be started at all.
    #[error("could not start `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why `spawn` failed.
        #[source]
        source: io::Error,
    },
    /// The process ran and exited with a failure status.
    #[error("`{command}` on {image} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// The image it worked on.
        image: PathBuf,
        /// The exit status, as text.
        status: String,
        /// What it printed on stderr (cut).
        stderr: String,
    },
    /// debugfs exits 0 even when a request fails; it says so on stderr. This is that case.
    #[error("debugfs reported an error running `{command}` on {image}: {stderr}")]
    Debugfs {
        /// The command line (with the script path for `-f` runs; the script is kept next to the
        /// image while the image's directory lives).
        command: String,
        /// The image.
        image: PathBuf,
        /// stderr without the version banner (cut).
        stderr: String,
    },
    /// A tool printed something this crate does not understand.
    #[error("cannot parse the output of `{command}` on {image}: {reason}; line: {line:?}")]
    Parse {
        /// The command line.
        command: String,
        /// The image.
        image: PathBuf,
        /// What was expected.
        reason: String,
        /// The offending line (cut).
        line: String,
    },
    /// A file-system operation on the host failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, e.g. "creating".
        action: &'static str,
        /// The host path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Loop mounts and some oracles need root.
    #[error("{what} needs root, but the effective uid is {euid}")]
    NotRoot {
        /// What was attempted.
        what: &'static str,
        /// The effective uid.
        euid: u32,
    },
    /// A path that cannot be passed to debugfs (it holds a double quote or a newline, or does
    /// not start with `/`).
    #[error("path {path:?} cannot be passed to debugfs: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// Why not.
        reason: &'static str,
    },
    /// An oracle answered, but the answer breaks an assumption this crate states (for example
    /// a FIEMAP extent that is not block aligned).
    #[error("{image}: {path}: {reason}")]
    Unexpected {
        /// The image, or the mounted file.
        image: PathBuf,
        /// The path inside the image.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// FIEMAP through the kernel failed, or answered a map this crate cannot use (the error
    /// names the file).
    #[error(transparent)]
    Fiemap(livefs::Error),
    /// Recording a trace failed (tracefs, lost events, a file that could not be mapped).
    #[error(transparent)]
    Trace(#[from] livefs::trace::RecordError),
    /// [`crate::standard`] failed (earlier in this process, or now); this is that failure,
    /// shared by every caller.
    #[error(transparent)]
    Standard(Arc<Error>),
    /// A FUSE server ([`crate::fuse::FuseMount`]) exited before its mount appeared.
    #[error("{what} exited ({}) before mounting: {}", .ended.status, .ended.log_tail())]
    FuseExited {
        /// What was started.
        what: String,
        /// How it ended, with everything it wrote to stderr.
        ended: Ended,
    },
    /// A FUSE mount did not come up, go away or end in time.
    #[error("{what} {reason}: {log_tail}")]
    Fuse {
        /// What was started.
        what: String,
        /// What did not happen, e.g. "did not mount within 60 s".
        reason: String,
        /// The last lines the server wrote to stderr.
        log_tail: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cuts tool output to a size that fits in an error message, keeping the start (where the
/// first error is) and saying how much was dropped.
pub(crate) fn cut(text: &str) -> String {
    const MAX: usize = 4000;
    let text = text.trim_end();
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ... ({} more bytes)", &text[..end], text.len() - end)
}

/// Shorthand for an [`Error::Io`].
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// How a FUSE server ended.
#[derive(Debug)]
pub struct Ended {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Ended {
    /// The last lines it wrote to stderr, on one line.
    #[must_use]
    pub fn log_tail(&self) -> String {
        tail(&self.stderr)
    }
}

/// The last five lines of `text`, joined with ` | `.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        "(no output)".into()
    } else {
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}
