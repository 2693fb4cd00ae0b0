//! Directory entries. Linear directories are a chain of entries per block; hashed (htree)
//! directories keep their entries in leaf blocks of the same shape, and their index blocks
//! look like one empty entry spanning the block, so one linear parser reads both.

use crate::error::CorruptKind;
use crate::le::{u16_at, u32_at, u8_at};

/// Type of a directory entry's target, from the entry's type byte (`filetype` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Symbolic link.
    Symlink,
    /// Not recorded in the entry (no `filetype` feature, or an unknown value): read the inode.
    Unknown,
}

impl FileType {
    fn from_byte(b: u8) -> Self {
        match b {
            1 => FileType::File,
            2 => FileType::Dir,
            3 => FileType::CharDev,
            4 => FileType::BlockDev,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode the name points to.
    pub ino: u32,
    /// The name, raw bytes (ext4 names need not be UTF-8).
    pub name: Vec<u8>,
    /// Type recorded in the entry.
    pub file_type: FileType,
}

impl DirEntry {
    /// The name as UTF-8, with invalid bytes replaced.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
    /// Whether this is `.` or `..`.
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

/// Minimum entry: inode, rec_len, name_len, type, and a 1-byte name rounded up to 4.
const MIN_REC_LEN: usize = 12;

/// Parses the entries of one directory block (or of the inline-data region) into `out`.
/// Every `rec_len` is checked to move forward by at least 12 bytes, stay 4-aligned and stay in
/// the block, so the loop ends within the block. Entries with inode 0 (deleted entries, htree
/// index blocks, the checksum tail) are skipped. Errors give `lblk` (the directory's logical
/// block holding `b`) and the byte offset.
pub(crate) fn parse_block(
    b: &[u8],
    lblk: u64,
    has_filetype: bool,
    out: &mut Vec<DirEntry>,
) -> Result<(), CorruptKind> {
    let mut off = 0usize;
    while off < b.len() {
        if b.len() - off < 8 {
            return Err(CorruptKind::DirentTrailing {
                lblk,
                offset: off,
                len: b.len() - off,
            });
        }
        let e = &b[off..];
        let ino = u32_at(e, 0);
        let mut rec_len = usize::from(u16_at(e, 4));
        // 64 KiB blocks store a full-block rec_len as 65535 or 0 (it does not fit 16 bits).
        if b.len() == 65536 && off == 0 && (rec_len == 65535 || rec_len == 0) {
            rec_len = 65536;
        }
        let name_len = if has_filetype {
            usize::from(u8_at(e, 6))
        } else {
            usize::from(u16_at(e, 6))
        };
        if rec_len < MIN_REC_LEN || rec_len % 4 != 0 || rec_len > e.len() {
            return Err(CorruptKind::DirentRecLen {
                lblk,
                offset: off,
                rec_len,
            });
        }
        if 8 + name_len > rec_len {
            return Err(CorruptKind::DirentNameLen {
                lblk,
                offset: off,
                name_len,
                rec_len,
            });
        }
        if ino != 0 {
            if name_len == 0 {
                return Err(CorruptKind::DirentEmptyName { lblk, offset: off });
            }
            out.push(DirEntry {
                ino,
                name: e[8..8 + name_len].to_vec(),
                file_type: if has_filetype {
                    FileType::from_byte(u8_at(e, 7))
                } else {
                    FileType::Unknown
                },
            });
        }
        off += rec_len;
    }
    Ok(())
}
