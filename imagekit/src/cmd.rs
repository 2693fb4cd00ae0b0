//! Running the external tools (mke2fs, e2fsck, debugfs, mount) and collecting their output.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{cut, io_err, Error, Result};

/// Finds a program in `PATH`, then in `/usr/sbin` and `/sbin` (a non-root `PATH` often lacks
/// them, and e2fsprogs lives there).
pub fn tool(name: &str) -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::ToolMissing {
            tool: name.to_owned(),
        })
}

/// A command line as text, for error messages and logs.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote_for_display(arg));
    }
    out
}

fn quote_for_display(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=,:^+@%".contains(c))
    {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What a finished process printed.
pub(crate) struct Output {
    /// The command line, for later error messages.
    pub command: String,
    /// stdout, raw.
    pub stdout: Vec<u8>,
    /// stderr, lossily decoded.
    pub stderr: String,
    /// Whether the exit status was 0.
    pub success: bool,
    /// The exit status as text.
    pub status: String,
    /// The exit code, if the process exited (rather than being killed).
    pub code: Option<i32>,
}

impl Output {
    /// stdout as text (lossy: debugfs prints names as raw bytes).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` to completion with no stdin and the C locale, capturing both streams.
pub(crate) fn run(mut cmd: Command) -> Result<Output> {
    cmd.env("LC_ALL", "C")
        .env("LANG", "C")
        .env("DEBUGFS_PAGER", "__none__")
        .env("PAGER", "__none__")
        .stdin(Stdio::null());
    let command = describe(&cmd);
    let started = std::time::Instant::now();
    let out = cmd.output().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    tracing::debug!(%command, ms = started.elapsed().as_millis() as u64, status = %out.status, "ran");
    Ok(Output {
        command,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
        status: out.status.to_string(),
        code: out.status.code(),
    })
}

/// Runs `cmd` and fails unless it exits with one of `ok_codes`.
pub(crate) fn run_checked(cmd: Command, image: &Path, ok_codes: &[i32]) -> Result<Output> {
    let out = run(cmd)?;
    if !out.code.is_some_and(|c| ok_codes.contains(&c)) {
        return Err(Error::Failed {
            command: out.command,
            image: image.to_owned(),
            status: out.status,
            stderr: cut(&format!(
                "{}{}",
                out.stderr,
                String::from_utf8_lossy(&out.stdout)
            )),
        });
    }
    Ok(out)
}

/// stderr of debugfs without its version banner (`debugfs 1.47.0 (5-Feb-2023)`), which it always
/// prints. Whatever is left is an error message: debugfs reports failed requests only there and
/// still exits 0 for `-R`.
pub(crate) fn debugfs_complaints(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| {
            let banner = line
                .strip_prefix("debugfs ")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            !banner && !line.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one read-only debugfs request (`debugfs -R REQUEST IMAGE`) and returns the output with
/// complaints separated; the caller decides which complaints are fatal.
pub(crate) fn debugfs_request(image: &Path, request: &str) -> Result<(Output, String)> {
    let mut cmd = Command::new(tool("debugfs")?);
    cmd.arg("-R").arg(request).arg(image);
    let out = run(cmd)?;
    if !out.success {
        return Err(Error::Failed {
            command: out.command.clone(),
            image: image.to_owned(),
            status: out.status.clone(),
            stderr: cut(&out.stderr),
        });
    }
    let complaints = debugfs_complaints(&out.stderr);
    Ok((out, complaints))
}

/// Runs a debugfs script (`debugfs [-w] -f SCRIPT IMAGE`). The script is written to
/// `script_path` first, so that a failure can be reproduced by hand.
pub(crate) fn debugfs_script(
    image: &Path,
    script: &str,
    script_path: &Path,
    writable: bool,
) -> Result<(Output, String)> {
    std::fs::write(script_path, script).map_err(io_err("writing debugfs script", script_path))?;
    let mut cmd = Command::new(tool("debugfs")?);
    if writable {
        cmd.arg("-w");
    }
    cmd.arg("-f").arg(script_path).arg(image);
    let out = run(cmd)?;
    let complaints = debugfs_complaints(&out.stderr);
    // With -f, debugfs exits 1 when some command failed; either signal is an error for writes.
    if !out.success && complaints.is_empty() {
        return Err(Error::Failed {
            command: out.command.clone(),
            image: image.to_owned(),
            status: out.status.clone(),
            stderr: cut(&out.stderr),
        });
    }
    Ok((out, complaints))
}

/// Quotes a path inside an image for a debugfs command line. debugfs splits its arguments on
/// blanks and honours double quotes, so any path without `"` or a newline can be passed.
pub(crate) fn debugfs_path(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        return Err(Error::BadPath {
            path: path.to_owned(),
            reason: "paths inside an image must be absolute",
        });
    }
    if path.contains(['"', '\n', '\r']) {
        return Err(Error::BadPath {
            path: path.to_owned(),
            reason: "debugfs cannot take a double quote or a newline in a path",
        });
    }
    if path.contains(char::is_whitespace) {
        Ok(format!("\"{path}\""))
    } else {
        Ok(path.to_owned())
    }
}

/// Quotes a host path for a debugfs script (`write SRC DEST`).
pub(crate) fn debugfs_host_path(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| Error::BadPath {
        path: path.to_string_lossy().into_owned(),
        reason: "host path is not UTF-8",
    })?;
    if text.contains(['"', '\n', '\r']) {
        return Err(Error::BadPath {
            path: text.to_owned(),
            reason: "debugfs cannot take a double quote or a newline in a path",
        });
    }
    if text.contains(char::is_whitespace) {
        Ok(format!("\"{text}\""))
    } else {
        Ok(text.to_owned())
    }
}

/// Splits the stdout of a `debugfs -f` run into one section per script command. debugfs echoes
/// each command as `debugfs: COMMAND` before its output; nothing that a query prints starts
/// with that prefix (`ls -p` lines start with `/`, `bmap` with a digit, `ex` and `stat` with a
/// capital letter or a blank).
pub(crate) fn split_sections(stdout: &str) -> Vec<(&str, Vec<&str>)> {
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(command) = line.strip_prefix("debugfs: ") {
            sections.push((command, Vec::new()));
        } else if let Some(last) = sections.last_mut() {
            last.1.push(line);
        }
    }
    sections
}
