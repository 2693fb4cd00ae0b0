//! The text tracefs writes for ext4's tracepoints, read back into [`Event`]s.
//!
//! A line is `COMM-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS`, with FIELDS as each event's
//! `print fmt` (`/sys/kernel/tracing/events/ext4/*/format`). The command name may hold any
//! character, so the event is found after the first `TIMESTAMP: ` (digits, a dot, digits).
//! Anything unreadable is an error naming the line: a trace with a line we do not understand
//! would replay to a wrong map.

use std::collections::HashSet;

use super::{Change, Event, MAX_BLOCKS};
use crate::BlockExtent;

/// What the recorder's `trace_marker` writes before a checkpoint, followed by its number.
pub const CHECKPOINT_MARK: &str = "iomap-predictor-checkpoint ";

/// A tracefs line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {reason}: {text}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The line (at most 200 characters of it).
    pub text: String,
}

/// The events of a tracefs text, with where the recorder's checkpoints fall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedTrace {
    /// Queries and changes, in order.
    pub events: Vec<Event>,
    /// `(number of events before it, checkpoint number)` for each checkpoint mark.
    pub checkpoints: Vec<(usize, u64)>,
}

/// Reads the tracefs text of a recording on device `dev` (major, minor) with `block_size`-byte
/// blocks; lines of other devices and events are skipped.
pub fn parse_trace(
    text: &str,
    dev: (u32, u32),
    block_size: u32,
) -> Result<ParsedTrace, ParseError> {
    let mut p = Parser {
        dev: format!("{},{}", dev.0, dev.1),
        block: u64::from(block_size.max(1)),
        shifting: HashSet::new(),
        evicted: HashSet::new(),
        out: ParsedTrace::default(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        p.line(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
            text: line.chars().take(200).collect(),
        })?;
    }
    Ok(p.out)
}

struct Parser {
    dev: String,
    block: u64,
    /// Inodes inside a collapse or insert range: the status-cache removal to the end of the
    /// file that the kernel does next is part of the shift already applied.
    shifting: HashSet<u64>,
    /// Inodes evicted from memory: the removal of their whole status cache that follows
    /// (`ext4_clear_inode`) drops a cache, not blocks.
    evicted: HashSet<u64>,
    out: ParsedTrace,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let Some((event, fields)) = split_event(line) else {
            return Err("no `TIMESTAMP: EVENT:` in it".into());
        };
        if event == "tracing_mark_write" {
            if let Some(n) = fields.trim().strip_prefix(CHECKPOINT_MARK) {
                let n = n
                    .trim()
                    .parse()
                    .map_err(|_| "a checkpoint mark without its number")?;
                self.out.checkpoints.push((self.out.events.len(), n));
            }
            return Ok(());
        }
        let f = Fields::new(fields);
        if f.get("dev")? != self.dev {
            return Ok(());
        }
        let ino: u64 = f.num("ino")?;
        let event = match event {
            "ext4_es_lookup_extent_enter" => {
                self.evicted.remove(&ino);
                Event::Query {
                    ino,
                    lblk: f.num("lblk")?,
                }
            }
            "ext4_es_insert_extent" => {
                self.evicted.remove(&ino);
                match self.inserted(&f, ino)? {
                    Some(change) => Event::Change { ino, change },
                    None => return Ok(()),
                }
            }
            "ext4_es_remove_extent" => {
                let (lblk, len) = f.range("es")?;
                let to_end = lblk.saturating_add(len) >= MAX_BLOCKS;
                if to_end && self.shifting.remove(&ino) {
                    return Ok(());
                }
                if to_end && lblk == 0 && self.evicted.contains(&ino) {
                    return Ok(());
                }
                Event::Change {
                    ino,
                    change: Change::Unmap { lblk, len },
                }
            }
            "ext4_collapse_range" | "ext4_insert_range" => {
                let (lblk, len) = (
                    f.num::<u64>("offset")? / self.block,
                    f.num::<u64>("len")? / self.block,
                );
                self.shifting.insert(ino);
                let change = if event == "ext4_collapse_range" {
                    Change::Collapse { lblk, len }
                } else {
                    Change::Insert { lblk, len }
                };
                Event::Change { ino, change }
            }
            "ext4_evict_inode" => {
                self.evicted.insert(ino);
                return Ok(());
            }
            _ => return Ok(()),
        };
        self.out.events.push(event);
        Ok(())
    }

    /// `ext4_es_insert_extent`'s change: written or unwritten blocks map, a hole unmaps;
    /// delayed blocks (no location yet) cannot be replayed: the recorder mounts `nodelalloc`.
    fn inserted(&self, f: &Fields, _ino: u64) -> Result<Option<Change>, String> {
        let (lblk, len) = f.range("es")?;
        let status = f.get("status").unwrap_or("");
        if status.contains('H') {
            return Ok(Some(Change::Unmap { lblk, len }));
        }
        if status.contains('D') {
            return Err("a delayed extent (mount with nodelalloc to trace)".into());
        }
        if !status.contains('W') && !status.contains('U') {
            return Ok(None);
        }
        let bad = || format!("extent [{lblk}, +{len}) past block 2^32 - 1");
        let start = u32::try_from(lblk).map_err(|_| bad())?;
        let count = u32::try_from(len).map_err(|_| bad())?;
        if lblk + len > MAX_BLOCKS {
            return Err(bad());
        }
        Ok(Some(Change::Map(BlockExtent {
            lblk: start,
            pblk: f.num("mapped")?,
            len: count,
            unwritten: status.contains('U'),
        })))
    }
}

/// `(event name, fields)` of a line.
fn split_event(line: &str) -> Option<(&str, &str)> {
    for (at, _) in line.match_indices(": ") {
        let before = &line[..at];
        let stamp = before.rsplit(' ').next().unwrap_or("");
        let is_stamp = stamp.split_once('.').is_some_and(|(s, us)| {
            !s.is_empty()
                && !us.is_empty()
                && s.bytes().chain(us.bytes()).all(|b| b.is_ascii_digit())
        });
        if !is_stamp {
            continue;
        }
        let rest = &line[at + 2..];
        let (event, fields) = rest
            .split_once(": ")
            .unwrap_or((rest.trim_end_matches(':'), ""));
        // A command name may look like a timestamp too; an event name is an identifier.
        if !event.is_empty()
            && event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Some((event, fields));
        }
    }
    None
}

/// `key value` pairs of an ext4 event's fields.
struct Fields<'a> {
    tokens: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            tokens: text.split_whitespace().collect(),
        }
    }

    fn get(&self, key: &str) -> Result<&'a str, String> {
        self.tokens
            .windows(2)
            .find(|w| w[0] == key)
            .map(|w| w[1])
            .ok_or_else(|| format!("no `{key}` field"))
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let v = self.get(key)?;
        v.parse()
            .map_err(|_| format!("`{key}` is not a number: {v}"))
    }

    /// A `[lblk/len)` range, both non-negative.
    fn range(&self, key: &str) -> Result<(u64, u64), String> {
        let v = self.get(key)?;
        let inner = v
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("`{key}` is not a [lblk/len) range: {v}"))?;
        let (a, b) = inner
            .split_once('/')
            .ok_or_else(|| format!("`{key}` is not a [lblk/len) range: {v}"))?;
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!(
                "`{key}` is not a [lblk/len) range of non-negative numbers: {v}"
            )),
        }
    }
}
