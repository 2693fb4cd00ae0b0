//! What a measurement ran on: every figure and latency table states it, so numbers from two
//! machines are never compared by accident.

use std::time::{SystemTime, UNIX_EPOCH};

/// The machine, the date and the command of one `reports` run.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo (or "unknown CPU").
    pub cpu_model: String,
    /// CPUs this process may run on (its affinity mask).
    pub cores: usize,
    /// Whether the process was pinned: its affinity mask is narrower than the online CPUs.
    /// `reports` itself never pins (the numbers are those of an ordinary, unpinned process).
    pub pinned: bool,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// UTC date and time of the run, ISO 8601.
    pub date: String,
    /// The exact command line, shell-quoted.
    pub command: String,
    /// /proc/loadavg's 1, 5 and 15 minute load averages when the run started: other work on
    /// the machine (builds, other benchmarks) shows here and makes every number noisier.
    pub load_avg: String,
    /// The code that ran: the git commit of the working directory, if it is a checkout.
    pub commit: Option<String>,
    /// Whether tracked files had no uncommitted changes when the run started.
    pub tree_clean: bool,
}

impl Machine {
    /// Reads the facts of this machine and this process.
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let online = online_cpus();
        let allowed = allowed_cpus().unwrap_or(online);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown kernel".into());
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            cpu_model,
            cores: allowed,
            pinned: allowed < online,
            kernel,
            date: iso_date(secs),
            command: command_line(),
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
            commit: git(&["rev-parse", "HEAD"]).filter(|c| c.len() == 40),
            tree_clean: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| s.is_empty()),
        }
    }

    /// "commit <40 hex> (clean tree)", "commit ... with uncommitted changes", or why none.
    pub fn code(&self) -> String {
        match &self.commit {
            Some(c) if self.tree_clean => format!("commit {c} (clean tree)"),
            Some(c) => format!("commit {c} with uncommitted changes"),
            None => "not run from a git checkout".into(),
        }
    }

    /// One line for captions: "AMD EPYC, 2 cores (not pinned), Linux 6.1, 2025-01-01 12:00 UTC".
    pub fn caption(&self) -> String {
        format!(
            "{}, {} cores ({}), Linux {}, {}",
            self.cpu_model,
            self.cores,
            if self.pinned { "pinned" } else { "not pinned" },
            self.kernel,
            self.date
        )
    }
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn allowed_cpus() -> Option<usize> {
    // SAFETY: cpu_set_t is plain old data; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; `set` is a valid out-pointer of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: `set` was filled by the kernel above.
    (rc == 0).then(|| unsafe { libc::CPU_COUNT(&set) } as usize)
}

/// The command line as a user would type it again (arguments with spaces quoted).
fn command_line() -> String {
    let mut args = std::env::args();
    // Show the binary by its name, not the build directory it happened to run from.
    let bin = args
        .next()
        .map(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "reports".into());
    std::iter::once(bin)
        .chain(args.map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the epoch (civil-from-days, proleptic Gregorian).
pub fn iso_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// The trimmed output of `git ARGS` in the working directory, if git ran and succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(iso_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(iso_date(1_735_689_600 + 3661), "2025-01-01 01:01 UTC");
    }
}
