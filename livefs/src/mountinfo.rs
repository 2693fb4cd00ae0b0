//! Whether a directory is a mount point, from `/proc/self/mountinfo` (FUSE would happily
//! mount over an existing mount and hide it: `server mount` refuses; `reports` waits for mounts).

use std::path::{Path, PathBuf};

/// The mount points listed in a `mountinfo` text (field 5 of each line, `\ooo` escapes undone).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// Undoes the octal escapes the kernel writes for space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `dir` (canonicalised) is a mount point of this process's mount namespace.
pub fn is_mount_point(dir: &Path) -> std::io::Result<bool> {
    Ok(mounts_on(&dir.canonicalize()?)? > 0)
}

/// How many mounts are stacked on `dir` in this process's mount namespace. `dir` must be
/// canonical already: it is not resolved here, because resolving the mount point of a FUSE
/// server that died fails (`ENOTCONN`) exactly when one wants to find and undo that mount.
pub fn mounts_on(dir: &Path) -> std::io::Result<usize> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mount_points(&text).iter().filter(|m| *m == dir).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mount_points_with_escapes() {
        let text = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
95 22 0:45 / /tmp/a\\040b rw,nosuid shared:50 - fuse.iomap /img.img rw,user_id=0
";
        let m = mount_points(text);
        assert_eq!(m, vec![PathBuf::from("/"), PathBuf::from("/tmp/a b")]);
    }
}
