//! The iomap query protocol of `server serve`: batches of fixed-size little-endian records laid
//! out like the fuse-iomap uapi (`struct fuse_iomap_begin_in` in, `struct fuse_iomap_io` out,
//! from the fuse-iomap patch series for `include/uapi/linux/fuse.h`).
//!
//! ```text
//! request  = header(16) + count x begin_in(32)
//! header   = magic u32 ("IOMQ") | version u16 (1) | flags u16 (0) | count u32 | reserved u32 (0)
//! begin_in = opflags u32 | reserved u32 (0) | ino u64 | pos u64 | count u64
//!
//! reply    = header(16) + count x reply(40)     (count = the request's, or 0 on a header error)
//! header   = magic u32 ("IOMR") | version u16 (1) | status u16 | count u32 | reserved u32 (0)
//! reply    = iomap_io(32) | status u32 | tier u16 | reserved u16
//! iomap_io = offset u64 | length u64 | addr u64 | type u16 | flags u16 | dev u32
//! ```
//!
//! - `ino` is the ext4 inode number (what `stat` reports for it on a kernel mount).
//! - `opflags` are `FUSE_IOMAP_OP_*`; the server is read-only, so a request that would write
//!   (`WRITE`, `ZERO`, `UNSHARE`, `OVERWRITE_ONLY`, `ATOMIC`) gets [`Status::ReadOnly`], and
//!   unknown bits get [`Status::Malformed`]. With `REPORT` (FIEMAP, SEEK_DATA/SEEK_HOLE) the
//!   mapping is the extent map as it is, past `i_size` too (preallocated blocks answer
//!   UNWRITTEN); without it (reads) a `pos` at or past `i_size` gets [`Status::PastEof`] and
//!   mappings stop at `i_size` ([`crate::Op`]).
//! - `type` is `FUSE_IOMAP_TYPE_*` (HOLE 0, MAPPED 2, UNWRITTEN 3); `addr` is
//!   `FUSE_IOMAP_NULL_ADDR` (`u64::MAX`) for holes; `flags` and `dev` are 0. Only the read
//!   mapping of `fuse_iomap_begin_out` is sent: nothing is ever written.
//! - `tier`: 0 none (error), else the [`TierKind::code`] of the structure that answered (7,
//!   `front`, is a tier in front of the stack). [`summary`] lists every code of the protocol
//!   from its tables (the `--help` of `server serve`).
//! - A record that cannot be answered gets a non-zero [`Status`] and a zero mapping; the other
//!   records of the batch and the connection carry on. A bad header gets a reply header with a
//!   non-zero [`HeaderStatus`] and no records, and the server closes that connection (the
//!   stream can no longer be framed); other connections are not affected.

use std::io::{self, Read, Write};

use crate::{FuseIomapIo, Mapping, MappingType, Op, Query, TierKind};

/// Request magic, "IOMQ" in little-endian byte order.
pub const REQUEST_MAGIC: u32 = u32::from_le_bytes(*b"IOMQ");
/// Reply magic, "IOMR".
pub const REPLY_MAGIC: u32 = u32::from_le_bytes(*b"IOMR");
/// Protocol version.
pub const VERSION: u16 = 1;
/// Bytes of a message header.
pub const HEADER_LEN: usize = 16;
/// Bytes of a request record (`sizeof(struct fuse_iomap_begin_in)`).
pub const REQUEST_LEN: usize = 32;
/// Bytes of a reply record (`sizeof(struct fuse_iomap_io)` + status, tier, reserved).
pub const REPLY_LEN: usize = 40;
/// Most records in one message (2 MiB of requests). A header asking for more is refused before
/// anything is allocated for it.
pub const MAX_RECORDS: u32 = 1 << 16;

/// `FUSE_IOMAP_TYPE_HOLE` ([`MappingType::code`] holds the uapi numbers).
pub const TYPE_HOLE: u16 = MappingType::Hole.code();
/// `FUSE_IOMAP_TYPE_MAPPED`.
pub const TYPE_MAPPED: u16 = MappingType::Mapped.code();
/// `FUSE_IOMAP_TYPE_UNWRITTEN`.
pub const TYPE_UNWRITTEN: u16 = MappingType::Unwritten.code();
/// `FUSE_IOMAP_NULL_ADDR`: no address (holes).
pub use crate::NULL_ADDR;

/// `FUSE_IOMAP_OP_*` bits this protocol knows (bits 0..=10).
pub const OP_KNOWN: u32 = (1 << 11) - 1;
/// `FUSE_IOMAP_OP_REPORT` and the writing bits ([`crate::OP_REPORT`], written once there
/// with [`Op::from_opflags`] and [`Op::opflags`]).
pub use crate::{OP_REPORT, OP_WRITING};

/// Per-record result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// The mapping is valid.
    Ok = 0,
    /// The record itself is invalid: non-zero reserved field, inode number over 32 bits, zero
    /// count, unknown opflags.
    Malformed = 1,
    /// No regular file with this inode number in the image.
    UnknownInode = 2,
    /// A read's `pos` is at or past the end of the file.
    PastEof = 3,
    /// The file's data is inline in the inode: there is no block mapping (`IOMAP_INLINE`).
    InlineData = 4,
    /// The opflags ask for a writable mapping; the server is read-only.
    ReadOnly = 5,
    /// `pos` lies beyond logical block 2^32 - 1 (a corrupt inode size).
    OutOfRange = 6,
    /// The image's metadata for this file is corrupt (the on-disk walk failed).
    Corrupt = 7,
}

impl Status {
    /// Every status, by code.
    pub const ALL: [Status; 8] = [
        Status::Ok,
        Status::Malformed,
        Status::UnknownInode,
        Status::PastEof,
        Status::InlineData,
        Status::ReadOnly,
        Status::OutOfRange,
        Status::Corrupt,
    ];

    /// Decodes a status word (unknown values are `None`).
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u32 == v)
    }

    /// A short description for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Malformed => "malformed request record",
            Status::UnknownInode => "no regular file with this inode number",
            Status::PastEof => "position is at or past end of file",
            Status::InlineData => "file data is inline in the inode (no block mapping)",
            Status::ReadOnly => "write mapping asked of a read-only server",
            Status::OutOfRange => "position beyond logical block 2^32-1",
            Status::Corrupt => "corrupt metadata for this file",
        }
    }
}

/// Message-level result in a reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum HeaderStatus {
    /// The batch was read; `count` records follow.
    Ok = 0,
    /// The request did not start with [`REQUEST_MAGIC`].
    BadMagic = 1,
    /// Unsupported protocol version.
    BadVersion = 2,
    /// `count` is over [`MAX_RECORDS`].
    TooMany = 3,
    /// The message ended before its records did.
    Truncated = 4,
    /// Non-zero flags or reserved field.
    BadHeader = 5,
    /// The server has too many clients; try again later.
    Busy = 6,
}

impl HeaderStatus {
    /// Every header status, by code.
    pub const ALL: [HeaderStatus; 7] = [
        HeaderStatus::Ok,
        HeaderStatus::BadMagic,
        HeaderStatus::BadVersion,
        HeaderStatus::TooMany,
        HeaderStatus::Truncated,
        HeaderStatus::BadHeader,
        HeaderStatus::Busy,
    ];

    /// Decodes a header status (unknown values are `None`).
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u16 == v)
    }

    /// A short description for messages.
    pub fn describe(self) -> &'static str {
        match self {
            HeaderStatus::Ok => "ok",
            HeaderStatus::BadMagic => "bad magic",
            HeaderStatus::BadVersion => "bad version",
            HeaderStatus::TooMany => "too many records",
            HeaderStatus::Truncated => "truncated",
            HeaderStatus::BadHeader => "bad header",
            HeaderStatus::Busy => "busy (the connection is then closed)",
        }
    }
}

/// The protocol in a screen of plain text, built from the constants and code tables above (the
/// `--help` of `server serve`), so the codes it lists are the codes the server sends.
pub fn summary() -> String {
    let types: Vec<String> = MappingType::ALL
        .iter()
        .map(|t| format!("{} {}", t.code(), t.name()))
        .collect();
    let tiers: Vec<String> = TierKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.code(), k.name()))
        .collect();
    let status: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("{} {}", *s as u32, s.describe()))
        .collect();
    let header: Vec<String> = HeaderStatus::ALL
        .iter()
        .map(|s| format!("{} {}", *s as u16, s.describe()))
        .collect();
    format!(
        "Protocol (little-endian; the `predictor::wire` module documents it):
  request = header + N x fuse_iomap_begin_in
    header: magic \"IOMQ\" u32 | version u16 = {VERSION} | flags u16 = 0 | N u32 (<= {MAX_RECORDS}) | 0 u32
    record: opflags u32 | 0 u32 | ino u64 | pos u64 | count u64
  reply   = header + N x record
    header: magic \"IOMR\" u32 | version u16 = {VERSION} | status u16 | N u32 | 0 u32
    record: offset u64 | length u64 | addr u64 (u64::MAX: hole) | type u16 | flags u16 |
            dev u32 | status u32 | tier u16 | 0 u16
  opflags: REPORT ({OP_REPORT:#x}) maps past EOF, without it a read; the writing bits
    ({OP_WRITING:#x}) are refused
{}{}{}{}",
        wrapped("type", &types),
        wrapped("tier (the structure that answered; 0 none)", &tiers),
        wrapped("record status", &status),
        wrapped("header status", &header),
    )
}

/// `  label: a, b, c` as lines of at most 96 columns, continuation lines indented.
fn wrapped(label: &str, items: &[String]) -> String {
    let mut out = String::new();
    let mut line = format!("  {label}:");
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        if line.len() + 1 + item.len() + sep.len() > 96 {
            out += &line;
            out.push('\n');
            line = "   ".to_string();
        }
        line += &format!(" {item}{sep}");
    }
    out += &line;
    out.push('\n');
    out
}

/// One query, as `struct fuse_iomap_begin_in`: on the socket (little-endian, [`BeginIn::encode`])
/// and in memory (`repr(C)`, no padding), where it is the in-kernel evaluator's query record too.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BeginIn {
    /// `FUSE_IOMAP_OP_*`.
    pub opflags: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Inode number.
    pub ino: u64,
    /// File byte offset.
    pub pos: u64,
    /// Bytes asked about.
    pub count: u64,
}

// `fuse_iomap_begin_in` is 32 bytes with no padding; the in-kernel evaluator reads it as laid out here.
const _: () = assert!(std::mem::size_of::<BeginIn>() == REQUEST_LEN);

impl BeginIn {
    /// A read-only report query.
    pub fn report(ino: u64, pos: u64, count: u64) -> Self {
        Self {
            opflags: OP_REPORT,
            reserved: 0,
            ino,
            pos,
            count,
        }
    }

    /// The record of `q`.
    pub fn of(q: Query) -> Self {
        Self {
            opflags: q.op.opflags(),
            reserved: 0,
            ino: u64::from(q.ino),
            pos: q.pos,
            count: q.count,
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&self.opflags.to_le_bytes());
        b[4..8].copy_from_slice(&self.reserved.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16..24].copy_from_slice(&self.pos.to_le_bytes());
        b[24..32].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    /// Decodes a record (any bytes decode; [`BeginIn::check`] says whether they make sense).
    pub fn decode(b: &[u8; REQUEST_LEN]) -> Self {
        Self {
            opflags: u32_at(b, 0),
            reserved: u32_at(b, 4),
            ino: u64_at(b, 8),
            pos: u64_at(b, 16),
            count: u64_at(b, 24),
        }
    }

    /// The query this record asks of a read-only tier stack, or why it cannot be asked.
    pub fn check(&self) -> Result<Query, Status> {
        if self.reserved != 0 || self.count == 0 || self.opflags & !OP_KNOWN != 0 {
            return Err(Status::Malformed);
        }
        if self.opflags & OP_WRITING != 0 {
            return Err(Status::ReadOnly);
        }
        let ino = u32::try_from(self.ino).map_err(|_| Status::Malformed)?;
        Ok(Query {
            ino,
            pos: self.pos,
            count: self.count,
            op: Op::from_opflags(self.opflags),
        })
    }
}

/// One answer: `struct fuse_iomap_io` plus the status and the tier that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The mapping: `fuse_iomap_io` ([`FuseIomapIo`], written once in `predictor`); byte
    /// offsets, [`NULL_ADDR`] for holes, flags and device cookie always 0.
    pub io: FuseIomapIo,
    /// Raw status word (see [`Status`]).
    pub status: u32,
    /// Tier code (0 none, then [`TierKind`] + 1).
    pub tier: u16,
}

impl Reply {
    /// The reply for a mapping found by `tier`.
    pub fn mapped(m: &Mapping, tier: TierKind) -> Self {
        Self {
            io: FuseIomapIo::of(m),
            status: Status::Ok as u32,
            tier: tier.code(),
        }
    }

    /// The reply for a record that got no mapping.
    pub fn error(status: Status) -> Self {
        Self {
            io: FuseIomapIo::NONE,
            status: status as u32,
            tier: 0,
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut b = [0u8; REPLY_LEN];
        b[..FuseIomapIo::LEN].copy_from_slice(&self.io.encode());
        b[32..36].copy_from_slice(&self.status.to_le_bytes());
        b[36..38].copy_from_slice(&self.tier.to_le_bytes());
        b
    }

    /// Decodes a record.
    pub fn decode(b: &[u8; REPLY_LEN]) -> Self {
        let mut io = [0u8; FuseIomapIo::LEN];
        io.copy_from_slice(&b[..FuseIomapIo::LEN]);
        Self {
            io: FuseIomapIo::decode(&io),
            status: u32_at(b, 32),
            tier: u16_at(b, 36),
        }
    }

    /// The mapping type's name (`HOLE`, `MAPPED`, `UNWRITTEN`), if known.
    pub fn type_name(&self) -> Option<&'static str> {
        MappingType::from_code(self.io.kind).map(MappingType::name)
    }

    /// The tier that answered, if any.
    pub fn tier_kind(&self) -> Option<TierKind> {
        TierKind::from_code(self.tier)
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection between messages (not an error for a server).
    #[error("connection closed")]
    Closed,
    /// The header is invalid; the stream cannot be framed any more.
    #[error("bad message header: {0:?}")]
    Header(HeaderStatus),
    /// The peer refused our message with this status.
    #[error("the server refused the batch: {0:?}")]
    Refused(HeaderStatus),
    /// The reply does not answer the request (wrong count or magic).
    #[error("reply does not match the request: {0}")]
    Mismatch(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Encodes a request header.
pub fn request_header(count: u32) -> [u8; HEADER_LEN] {
    header(REQUEST_MAGIC, 0, count)
}

/// Encodes a reply header.
pub fn reply_header(status: HeaderStatus, count: u32) -> [u8; HEADER_LEN] {
    header(REPLY_MAGIC, status as u16, count)
}

fn header(magic: u32, word: u16, count: u32) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..4].copy_from_slice(&magic.to_le_bytes());
    b[4..6].copy_from_slice(&VERSION.to_le_bytes());
    b[6..8].copy_from_slice(&word.to_le_bytes());
    b[8..12].copy_from_slice(&count.to_le_bytes());
    b
}

/// Checks a request header and returns its record count.
pub fn decode_request_header(b: &[u8; HEADER_LEN]) -> Result<u32, HeaderStatus> {
    if u32_at(b, 0) != REQUEST_MAGIC {
        return Err(HeaderStatus::BadMagic);
    }
    if u16_at(b, 4) != VERSION {
        return Err(HeaderStatus::BadVersion);
    }
    if u16_at(b, 6) != 0 || u32_at(b, 12) != 0 {
        return Err(HeaderStatus::BadHeader);
    }
    let count = u32_at(b, 8);
    if count > MAX_RECORDS {
        return Err(HeaderStatus::TooMany);
    }
    Ok(count)
}

/// Checks a reply header and returns its status and record count.
pub fn decode_reply_header(b: &[u8; HEADER_LEN]) -> Result<(HeaderStatus, u32), WireError> {
    if u32_at(b, 0) != REPLY_MAGIC || u16_at(b, 4) != VERSION {
        return Err(WireError::Mismatch("bad reply magic or version".into()));
    }
    let status = HeaderStatus::from_u16(u16_at(b, 6))
        .ok_or_else(|| WireError::Mismatch(format!("unknown header status {}", u16_at(b, 6))))?;
    Ok((status, u32_at(b, 8)))
}

/// The bytes of a whole request message. A batch of more than [`MAX_RECORDS`] is refused here,
/// as the server would refuse it.
pub fn encode_request(queries: &[BeginIn]) -> Result<Vec<u8>, WireError> {
    let count = u32::try_from(queries.len())
        .ok()
        .filter(|&c| c <= MAX_RECORDS)
        .ok_or(WireError::Header(HeaderStatus::TooMany))?;
    let mut out = Vec::with_capacity(HEADER_LEN + queries.len() * REQUEST_LEN);
    out.extend_from_slice(&request_header(count));
    for q in queries {
        out.extend_from_slice(&q.encode());
    }
    Ok(out)
}

/// Reads one request message from a server's connection. `Ok(None)` when the peer closed the
/// connection cleanly before a header; a bad or truncated message is `Err(Header(..))` (the
/// caller answers it with that status and closes).
pub fn read_request(r: &mut impl Read) -> Result<Option<Vec<BeginIn>>, WireError> {
    let mut h = [0u8; HEADER_LEN];
    match read_full(r, &mut h)? {
        0 => return Ok(None),
        n if n < HEADER_LEN => return Err(WireError::Header(HeaderStatus::Truncated)),
        _ => {}
    }
    let count = decode_request_header(&h).map_err(WireError::Header)?;
    // count <= MAX_RECORDS, checked above: this allocation is bounded.
    let mut out = Vec::with_capacity(count as usize);
    let mut rec = [0u8; REQUEST_LEN];
    for _ in 0..count {
        if read_full(r, &mut rec)? < REQUEST_LEN {
            return Err(WireError::Header(HeaderStatus::Truncated));
        }
        out.push(BeginIn::decode(&rec));
    }
    Ok(Some(out))
}

/// Writes a reply message.
pub fn write_reply(w: &mut impl Write, replies: &[Reply]) -> io::Result<()> {
    // Replies answer a request of at most MAX_RECORDS records.
    let count = u32::try_from(replies.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + replies.len() * REPLY_LEN);
    out.extend_from_slice(&reply_header(HeaderStatus::Ok, count));
    for r in replies {
        out.extend_from_slice(&r.encode());
    }
    w.write_all(&out)?;
    w.flush()
}

/// Reads a reply message to a request of `expected` records.
pub fn read_reply(r: &mut impl Read, expected: usize) -> Result<Vec<Reply>, WireError> {
    let mut h = [0u8; HEADER_LEN];
    match read_full(r, &mut h)? {
        0 => return Err(WireError::Closed),
        n if n < HEADER_LEN => return Err(WireError::Mismatch("truncated reply header".into())),
        _ => {}
    }
    let (status, count) = decode_reply_header(&h)?;
    if status != HeaderStatus::Ok {
        return Err(WireError::Refused(status));
    }
    if count as usize != expected {
        return Err(WireError::Mismatch(format!(
            "{count} replies to {expected} requests"
        )));
    }
    let mut out = Vec::with_capacity(expected);
    let mut rec = [0u8; REPLY_LEN];
    for _ in 0..count {
        if read_full(r, &mut rec)? < REPLY_LEN {
            return Err(WireError::Mismatch("truncated reply record".into()));
        }
        out.push(Reply::decode(&rec));
    }
    Ok(out)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    x.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_summary_lists_every_code_from_its_table() {
        let text = summary();
        for s in Status::ALL {
            assert!(
                text.contains(&format!("{} {}", s as u32, s.describe())),
                "{s:?}"
            );
        }
        for s in HeaderStatus::ALL {
            assert!(
                text.contains(&format!("{} {}", s as u16, s.describe())),
                "{s:?}"
            );
        }
        for k in TierKind::ALL {
            assert!(
                text.contains(&format!("{} {}", k.code(), k.name())),
                "{k:?}"
            );
        }
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");
    }
    use super::*;
    use std::io::Cursor;

    fn sample() -> Vec<BeginIn> {
        vec![
            BeginIn::report(12, 0, u64::MAX),
            BeginIn {
                opflags: 1 << 4,
                reserved: 0,
                ino: u64::from(u32::MAX),
                pos: 1 << 40,
                count: 4096,
            },
        ]
    }

    #[test]
    fn request_round_trip() {
        let qs = sample();
        let bytes = encode_request(&qs).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 2 * REQUEST_LEN);
        let back = read_request(&mut Cursor::new(&bytes)).unwrap().unwrap();
        assert_eq!(back, qs);
        // Two messages back to back, then a clean close.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let mut c = Cursor::new(two);
        assert_eq!(read_request(&mut c).unwrap().unwrap(), qs);
        assert_eq!(read_request(&mut c).unwrap().unwrap(), qs);
        assert!(read_request(&mut c).unwrap().is_none());
    }

    #[test]
    fn reply_round_trip() {
        let m = Mapping {
            offset: 4096,
            length: 8192,
            addr: Some(1 << 33),
            kind: MappingType::Unwritten,
        };
        let hole = Mapping {
            offset: 0,
            length: 1,
            addr: None,
            kind: MappingType::Hole,
        };
        let rs = vec![
            Reply::mapped(&m, TierKind::Learned),
            Reply::mapped(&hole, TierKind::Ondisk),
            Reply::error(Status::PastEof),
        ];
        let mut buf = Vec::new();
        write_reply(&mut buf, &rs).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 3 * REPLY_LEN);
        let back = read_reply(&mut Cursor::new(&buf), 3).unwrap();
        assert_eq!(back, rs);
        assert_eq!(back[0].tier_kind(), Some(TierKind::Learned));
        assert_eq!(back[0].type_name(), Some("UNWRITTEN"));
        assert_eq!(back[1].io.addr, NULL_ADDR);
        assert_eq!(back[1].tier_kind(), Some(TierKind::Ondisk));
        assert_eq!(back[2].tier_kind(), None);
        assert_eq!(Status::from_u32(back[2].status), Some(Status::PastEof));
        // A reply with the wrong count is not taken for the answer.
        assert!(matches!(
            read_reply(&mut Cursor::new(&buf), 2),
            Err(WireError::Mismatch(_))
        ));
    }

    #[test]
    fn truncated_messages() {
        let bytes = encode_request(&sample()).unwrap();
        for cut in 1..bytes.len() {
            let r = read_request(&mut Cursor::new(&bytes[..cut]));
            assert!(
                matches!(r, Err(WireError::Header(HeaderStatus::Truncated))),
                "cut at {cut}: {r:?}"
            );
        }
        let mut buf = Vec::new();
        write_reply(&mut buf, &[Reply::error(Status::Corrupt)]).unwrap();
        for cut in 1..buf.len() {
            assert!(read_reply(&mut Cursor::new(&buf[..cut]), 1).is_err());
        }
    }

    #[test]
    fn oversized_and_bad_headers() {
        // A count over the bound is refused from the header alone, before any allocation.
        let h = request_header(MAX_RECORDS + 1);
        assert!(matches!(
            read_request(&mut Cursor::new(&h)),
            Err(WireError::Header(HeaderStatus::TooMany))
        ));
        let h = request_header(u32::MAX);
        assert_eq!(decode_request_header(&h), Err(HeaderStatus::TooMany));
        assert_eq!(
            decode_request_header(&request_header(MAX_RECORDS)),
            Ok(MAX_RECORDS)
        );
        let too_many = vec![BeginIn::report(1, 0, 1); MAX_RECORDS as usize + 1];
        assert!(encode_request(&too_many).is_err());

        let mut bad = request_header(1);
        bad[0] ^= 1;
        assert_eq!(decode_request_header(&bad), Err(HeaderStatus::BadMagic));
        let mut bad = request_header(1);
        bad[4] = 9;
        assert_eq!(decode_request_header(&bad), Err(HeaderStatus::BadVersion));
        let mut bad = request_header(1);
        bad[13] = 1;
        assert_eq!(decode_request_header(&bad), Err(HeaderStatus::BadHeader));
        // An empty batch is valid.
        assert_eq!(decode_request_header(&request_header(0)), Ok(0));
    }

    #[test]
    fn record_checks() {
        assert_eq!(
            BeginIn::report(12, 0, 1).check(),
            Ok(Query::report(12, 0, 1))
        );
        let read = BeginIn::of(Query::read(12, 5, 1));
        assert_eq!(read.opflags, 0);
        assert_eq!(read.check(), Ok(Query::read(12, 5, 1)));
        let mut q = BeginIn::report(12, 0, 1);
        q.reserved = 1;
        assert_eq!(q.check(), Err(Status::Malformed));
        assert_eq!(BeginIn::report(12, 0, 0).check(), Err(Status::Malformed));
        assert_eq!(
            BeginIn::report(1 << 32, 0, 1).check(),
            Err(Status::Malformed)
        );
        let mut q = BeginIn::report(12, 0, 1);
        q.opflags = 1 << 20;
        assert_eq!(q.check(), Err(Status::Malformed));
        q.opflags = 1; // FUSE_IOMAP_OP_WRITE
        assert_eq!(q.check(), Err(Status::ReadOnly));
        // FAULT | DIRECT without REPORT: a read.
        q.opflags = (1 << 3) | (1 << 4);
        assert_eq!(q.check().map(|q| q.op), Ok(Op::Read));
    }

    #[test]
    fn layout_matches_the_uapi() {
        // fuse_iomap_begin_in: opflags@0, reserved@4, attr_ino@8, pos@16, count@24.
        let q = BeginIn {
            opflags: 0x0403_0201,
            reserved: 0,
            ino: 0x1111,
            pos: 0x2222,
            count: 0x3333,
        };
        let b = q.encode();
        assert_eq!(&b[0..4], &[1, 2, 3, 4]);
        assert_eq!(b[8], 0x11);
        assert_eq!(b[16], 0x22);
        assert_eq!(b[24], 0x33);
        // fuse_iomap_io: offset@0, length@8, addr@16, type@24, flags@26, dev@28.
        let r = Reply::error(Status::UnknownInode).encode();
        assert_eq!(&r[16..24], &[0xFF; 8]);
        assert_eq!(r[32], 2);
    }
}
