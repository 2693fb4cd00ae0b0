//! In-inode extended attributes: just enough to find `system.data`, the overflow of inline data.

use crate::error::CorruptKind;
use crate::le::{u16_at, u32_at, u8_at};

const XATTR_MAGIC: u32 = 0xEA02_0000;
const ENTRY_HEADER: usize = 16;
/// Name index of the `system.` namespace.
const INDEX_SYSTEM: u8 = 7;

/// The value of attribute `system.<name>` in an inode's extra area, if present and in bounds.
/// Entries are walked in order; each one moves the cursor forward by at least 16 bytes, so the
/// walk ends within the area whatever the bytes say.
pub(crate) fn find_system<'a>(
    area: &'a [u8],
    name: &[u8],
) -> Result<Option<&'a [u8]>, CorruptKind> {
    if area.len() < 4 || u32_at(area, 0) != XATTR_MAGIC {
        return Ok(None);
    }
    let entries = &area[4..];
    let mut off = 0usize;
    while off + ENTRY_HEADER <= entries.len() {
        let e = &entries[off..];
        let name_len = usize::from(u8_at(e, 0));
        let name_index = u8_at(e, 1);
        if name_len == 0 && name_index == 0 && u32_at(e, 0) == 0 {
            break; // end-of-entries marker
        }
        let value_offs = usize::from(u16_at(e, 2));
        let value_inum = u32_at(e, 4);
        let value_size = u32_at(e, 8) as usize;
        let entry_name = e
            .get(ENTRY_HEADER..ENTRY_HEADER + name_len)
            .ok_or(CorruptKind::XattrEntry { offset: off })?;
        if name_index == INDEX_SYSTEM && entry_name == name {
            if value_inum != 0 {
                return Err(CorruptKind::InlineDataInEaInode);
            }
            // Values are addressed from the first entry.
            let value = entries
                .get(value_offs..value_offs.saturating_add(value_size))
                .ok_or(CorruptKind::XattrValue {
                    offset: value_offs,
                    size: value_size,
                })?;
            return Ok(Some(value));
        }
        off += (ENTRY_HEADER + name_len + 3) & !3;
    }
    Ok(None)
}
