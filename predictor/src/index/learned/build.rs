//! Building the packed form: the map cut into arithmetic runs and stretches, lines fitted (or
//! taken from a model) over the stretches, their extents packed into blocks, the directory.

use super::*;

/// Length of the arithmetic run starting at `exts[0]` (1 if `exts[1]` breaks it).
pub(super) fn run_len(exts: &[Extent]) -> usize {
    let [a, b, ..] = exts else {
        return exts.len();
    };
    let step = b.lblk - a.lblk;
    let pstep = b.pblk.wrapping_sub(a.pblk);
    1 + exts
        .windows(2)
        .take_while(|w| {
            let (x, y) = (&w[0], &w[1]);
            y.lblk - x.lblk == step
                && y.pblk.wrapping_sub(x.pblk) == pstep
                && y.len == a.len
                && x.len == a.len
                && y.unwritten == a.unwritten
                && x.unwritten == a.unwritten
        })
        .count()
}

impl Packed {
    /// `None` when a field does not pack (the caller keeps a plain array).
    pub(super) fn new(
        exts: &[Extent],
        lines: Lines<'_>,
        storage: Storage,
    ) -> Result<Option<Self>, ModelError> {
        let cuts = cut(exts);
        if let Lines::Model(model) = lines {
            // The model describes the line extents: every stretch's, in order.
            let keys: Vec<u32> = cuts
                .iter()
                .filter_map(|c| exts.get(c.stretch()?))
                .flatten()
                .map(|e| e.lblk)
                .collect();
            model.check_keys(&keys)?;
        }
        // Pieces: runs of RUN_MIN or more, and lines over the stretches between them.
        let mut pieces = Vec::new();
        let mut store = Store::new(storage);
        // Line extents before the current stretch (where its segments start in a model).
        let mut offset = 0u32;
        for c in &cuts {
            let Some(part) = exts.get(c.range()) else {
                return Ok(None);
            };
            let Cut::Stretch(_) = c else {
                pieces.extend(run_piece(part));
                continue;
            };
            let segments = match lines {
                Lines::Fit(params) => fit_stretch(part, params)?,
                Lines::Model(model) => stretch_segments(model, offset, part)?,
            };
            if !line_pieces(part, &segments, &mut pieces, &mut store)? {
                return Ok(None);
            }
            // Fewer than 2^32 extents in all (checked by the caller).
            offset += part.len() as u32;
        }
        for k in 1..pieces.len() {
            pieces[k - 1].last_block = pieces[k].first_key - 1;
        }
        let first_key = exts.first().map_or(0, |e| e.lblk);
        let last_key = exts.last().map_or(0, |e| e.lblk);
        // OK to narrow: an extent ends at most at 2^32 (checked), and is at least a block long.
        let last_block = exts
            .last()
            .map_or(0, |e| (e.end() - 1).min(u64::from(u32::MAX)) as u32);
        let mut bytes = store.bytes;
        bytes.extend_from_slice(&[0; 8]);
        let (shift, buckets) = directory(
            &pieces,
            first_key,
            last_key,
            bytes.len() + std::mem::size_of_val::<[Piece]>(&pieces),
        );
        Ok(Some(Self {
            storage,
            first_key,
            last_block,
            shift,
            buckets,
            pieces: pieces.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        }))
    }

    /// The widest window of its line pieces, in extent slots (0 without any).
    pub(super) fn max_window(&self) -> u64 {
        self.pieces
            .iter()
            .filter_map(|p| p.body.window())
            .map(|w| w.fixed().window())
            .max()
            .unwrap_or(0)
    }

    /// The line pieces' lines as one model over the line extents (every stretch's, in order):
    /// each segment's index and intercept count from the first line extent.
    pub(super) fn model(&self) -> Model {
        let mut segments = Vec::new();
        let mut first_idx = 0u32;
        for piece in self.pieces.iter() {
            let Some(win) = piece.body.window() else {
                continue;
            };
            let (mut fixed, count) = (win.fixed(), win.count());
            fixed.intercept = fixed
                .intercept
                .wrapping_add(i64::from(first_idx) << FIXED_INTERCEPT_SHIFT);
            segments.push(Segment {
                first_idx,
                first_key: piece.first_key,
                line: fixed.to_float(),
                fixed,
            });
            first_idx += count;
        }
        Model {
            extent_count: first_idx,
            segments,
        }
    }
}

/// A file's line pieces' extents while the form is built: `bytes` in `storage`'s layout.
#[derive(Debug)]
pub(super) struct Store {
    storage: Storage,
    bytes: Vec<u8>,
}

impl Store {
    pub(super) fn new(storage: Storage) -> Self {
        Self {
            storage,
            bytes: Vec::new(),
        }
    }

    /// The body of a line piece over `exts`, its extents stored; `None` if they do not fit
    /// the storage (a field too wide to pack, a physical block past a record's).
    fn body(&mut self, exts: &[Extent], line: FixedLine) -> Option<Body> {
        match self.storage {
            Storage::Packed => {
                pack_line(exts, line, &mut self.bytes).map(|l| Body::Line(Stored::Packed(l)))
            }
            Storage::Records => {
                record_line(exts, line, &mut self.bytes).map(|r| Body::Line(Stored::Records(r)))
            }
        }
    }
}

/// Appends one line piece per segment of `stretch` (extents between runs; segment indices and
/// lines count from its first extent), its extents in `store`. `false` if they do not fit it.
pub(super) fn line_pieces(
    stretch: &[Extent],
    segments: &[Segment],
    pieces: &mut Vec<Piece>,
    store: &mut Store,
) -> Result<bool, ModelError> {
    let n = stretch.len();
    for (s, seg) in segments.iter().enumerate() {
        let end = segments.get(s + 1).map_or(n, |t| t.first_idx as usize);
        let Some(exts) = stretch.get(seg.first_idx as usize..end) else {
            return Ok(false);
        };
        // The line predicts an index into `stretch`; moving its intercept down by the
        // segment's first index makes it predict the piece-local index, exactly (the shift is
        // added before the floor), with the same bounds.
        let mut line = seg.fixed;
        line.intercept = line
            .intercept
            .wrapping_sub(i64::from(seg.first_idx) << FIXED_INTERCEPT_SHIFT);
        let Some(body) = store.body(exts, line) else {
            return Ok(false);
        };
        pieces.push(Piece {
            first_key: seg.first_key,
            last_block: EVERY_BLOCK,
            body,
        });
    }
    Ok(true)
}

/// The lines of one stretch (extents between runs), fitted with `params`; segment indices and
/// lines count from the stretch's first extent.
fn fit_stretch(stretch: &[Extent], params: &FitParams) -> Result<Vec<Segment>, ModelError> {
    let keys: Vec<u32> = stretch.iter().map(|e| e.lblk).collect();
    // A lookup counts WINDOW key slots: no line may need more.
    let params = FitParams {
        max_window: params.max_window.min(WINDOW as u32),
        ..*params
    };
    Ok(fit(&keys, &params)?.0.segments)
}

/// [`LearnedIndex::fit_lines`].
pub(super) fn fit_lines(exts: &[Extent], params: &FitParams) -> Result<Model, ModelError> {
    check_extents(exts)?;
    if u32::try_from(exts.len()).is_err() {
        return Err(ModelError::TooMany(exts.len()));
    }
    if exts.len() <= PLAIN_MAX {
        return Ok(Model::default());
    }
    let mut segments = Vec::new();
    // Line extents before the current stretch: where its segments start in the model.
    let mut offset = 0u32;
    for c in &cut(exts) {
        let (Cut::Stretch(_), Some(part)) = (c, exts.get(c.range())) else {
            continue;
        };
        for mut seg in fit_stretch(part, params)? {
            // As Packed::model re-bases a piece's line: by the stretch's first line extent,
            // and the float line the fixed one's value (what a pack stores).
            seg.first_idx += offset;
            seg.fixed.intercept = seg
                .fixed
                .intercept
                .wrapping_add(i64::from(offset) << FIXED_INTERCEPT_SHIFT);
            seg.line = seg.fixed.to_float();
            segments.push(seg);
        }
        // Fewer than 2^32 extents in all (checked above).
        offset += part.len() as u32;
    }
    Ok(Model {
        extent_count: offset,
        segments,
    })
}

/// Where a packed form's lines come from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lines<'a> {
    /// Fitted over each stretch, window at most [`WINDOW`].
    Fit(&'a FitParams),
    /// Given: a model over the line extents, as [`LearnedIndex::model`] gives (from a pack).
    Model(&'a Model),
}

/// The segments of `model` over `stretch`, whose first extent is line extent `offset`,
/// counted from the stretch's start. A stretch must start a segment (lines never span a run),
/// and every window must fit the lookup's [`WINDOW`] slots.
pub(super) fn stretch_segments(
    model: &Model,
    offset: u32,
    stretch: &[Extent],
) -> Result<Vec<Segment>, ModelError> {
    let (len, first_key) = (stretch.len(), stretch.first().map(|e| e.lblk));
    let from = model.segments.partition_point(|s| s.first_idx < offset);
    let to = model
        .segments
        .partition_point(|s| (s.first_idx as usize) < offset as usize + len);
    let bad = |segment, what| ModelError::BadSegment { segment, what };
    let segments = model.segments.get(from..to).unwrap_or(&[]);
    match segments.first() {
        Some(s) if s.first_idx == offset && Some(s.first_key) == first_key => {}
        _ => return Err(bad(from, "a stretch between runs does not start a segment")),
    }
    segments
        .iter()
        .enumerate()
        .map(|(k, s)| {
            if s.fixed.window() > WINDOW as u64 {
                return Err(bad(from + k, "window wider than the compact lookup's"));
            }
            let mut s = *s;
            s.first_idx -= offset;
            s.fixed.intercept = s
                .fixed
                .intercept
                .wrapping_sub(i64::from(offset) << FIXED_INTERCEPT_SHIFT);
            Ok(s)
        })
        .collect()
}

/// The piece of an arithmetic run (`None` for fewer than two extents, which no cut makes).
pub(super) fn run_piece(run: &[Extent]) -> Option<Piece> {
    let (a, b) = (run.first()?, run.get(1)?);
    Some(Piece {
        first_key: a.lblk,
        last_block: EVERY_BLOCK,
        body: Body::Run(Run {
            step: b.lblk - a.lblk,
            len: a.len,
            pblk: a.pblk,
            pstep: b.pblk.wrapping_sub(a.pblk),
            // Fewer than 2^32 extents in all (checked by the caller).
            count: run.len() as u32,
            unwritten: a.unwritten,
        }),
    })
}

/// A stretch of a map: an arithmetic run (stored as one), or the extents between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cut {
    Run(std::ops::Range<usize>),
    Stretch(std::ops::Range<usize>),
}

impl Cut {
    pub(super) fn range(&self) -> std::ops::Range<usize> {
        match self {
            Cut::Run(r) | Cut::Stretch(r) => r.clone(),
        }
    }

    /// The range, if this is a stretch (the extents a model's lines cover).
    pub(super) fn stretch(&self) -> Option<std::ops::Range<usize>> {
        match self {
            Cut::Stretch(r) => Some(r.clone()),
            Cut::Run(_) => None,
        }
    }
}

/// `exts` cut into runs of at least [`RUN_MIN`] extents and the (non-empty) stretches between
/// them, in order.
pub(super) fn cut(exts: &[Extent]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let (mut stretch_start, mut i) = (0, 0);
    while let Some(rest) = exts.get(i..).filter(|r| r.len() >= 2) {
        let len = run_len(rest);
        if len < RUN_MIN {
            i += 1;
            continue;
        }
        if stretch_start < i {
            cuts.push(Cut::Stretch(stretch_start..i));
        }
        cuts.push(Cut::Run(i..i + len));
        i += len;
        stretch_start = i;
    }
    if stretch_start < exts.len() {
        cuts.push(Cut::Stretch(stretch_start..exts.len()));
    }
    cuts
}

/// Packs `exts` (one line piece) into blocks appended to `bytes`; `None` if a field is wider
/// than [`MAX_FIELD_BITS`] or the bytes pass 4 GiB (offsets are `u32`).
pub(super) fn pack_line(exts: &[Extent], line: FixedLine, bytes: &mut Vec<u8>) -> Option<Line> {
    // The piece's widths: the widest of its blocks, for each way of storing the physical
    // field; the narrower one is used.
    let (mut max_off, mut wl, mut wd) = (0u32, 0u32, [0u32; 2]);
    let modes = [Phys::FromLogical, Phys::Absolute];
    for chunk in exts.chunks(BLOCK) {
        let (first, last) = (chunk.first()?, chunk.last()?);
        let (l0, l1) = (
            chunk.iter().map(|e| e.len).min()?,
            chunk.iter().map(|e| e.len).max()?,
        );
        max_off = max_off.max(last.lblk - first.lblk);
        wl = wl.max(bits_for(u128::from(l1 - l0)));
        for (w, mode) in wd.iter_mut().zip(modes) {
            let d0 = chunk.iter().map(|e| mode.of(e)).min()?;
            let d1 = chunk.iter().map(|e| mode.of(e)).max()?;
            *w = (*w).max(bits_for(u128::try_from(d1 - d0).ok()?));
        }
    }
    let (wd, phys) = if wd[1] < wd[0] {
        (wd[1], Phys::Absolute)
    } else {
        (wd[0], Phys::FromLogical)
    };
    if wl.max(wd) > MAX_FIELD_BITS {
        return None;
    }
    let unwritten = exts.iter().filter(|e| e.unwritten).count();
    let unw = match unwritten {
        0 => 0,
        u if u == exts.len() => 1,
        _ => 2,
    };
    // OK to narrow: each width is at most MAX_FIELD_BITS.
    let l = Line::new(
        line,
        u32::try_from(exts.len()).ok()?,
        u32::try_from(bytes.len()).ok()?,
        KeyWidth::for_offsets(max_off),
        [wl as u8, wd as u8],
        unw,
        phys,
    )?;
    let (kw, rw) = (l.kw.bytes(), usize::from(l.wr));
    for chunk in exts.chunks(BLOCK) {
        let at = bytes.len();
        let first = chunk.first()?;
        let len0 = chunk.iter().map(|e| e.len).min()?;
        let d0 = chunk.iter().map(|e| phys.of(e)).min()?;
        // A full block plus write slack, trimmed below.
        bytes.resize(at + usize::from(l.block) + 8, 0);
        bytes[at..at + 4].copy_from_slice(&first.lblk.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&len0.to_le_bytes());
        // Two's complement: pblk = (lblk +) d0 + excess, wrapping, is exact.
        bytes[at + 8..at + 16].copy_from_slice(&(d0 as u64).to_le_bytes());
        let keys = at + HEAD;
        let recs = (at + l.recs()) * 8;
        // Unused slots of a last, partial block hold the padding, which no count includes.
        let offsets = chunk
            .iter()
            .map(|e| e.lblk - first.lblk)
            .chain(std::iter::repeat(l.kw.padding()));
        for (r, off) in offsets.take(BLOCK).enumerate() {
            put(bytes, (keys + r * kw) * 8, u64::from(off));
        }
        for (r, e) in chunk.iter().enumerate() {
            let bit = recs + r * rw;
            put(bytes, bit, u64::from(e.len - len0));
            put(
                bytes,
                bit + usize::from(l.wl),
                u64::try_from(phys.of(e) - d0).ok()?,
            );
            if l.fm == 1 {
                put(bytes, bit + usize::from(l.wf), u64::from(e.unwritten));
            }
        }
        // The last block keeps its whole key column (a count reads WINDOW slots from any
        // slot up to BLOCK - WINDOW) but only the records it has: nothing follows it within
        // the piece, and a record read past them is never asked for.
        let recs_len = (chunk.len() * rw).div_ceil(8);
        bytes.truncate(at + l.recs() + recs_len);
    }
    Some(l)
}

/// The directory: a shift and, per bucket, the piece holding the bucket's first block.
///
/// One bucket per piece (rounded up to a power of two), enough where the pieces spread evenly
/// over the span; doubled (to at most [`MAX_BUCKETS_PER_PIECE`] per piece) while more than
/// `span >> FAR_SHARE_SHIFT` blocks lie in pieces that neither their bucket nor the next one
/// copies ([`Packed::piece`] searches the piece array there), as long as the directory stays
/// within `>> DIRECTORY_SHARE_SHIFT` of itself plus `other_bytes`. Kernel maps are uneven: the
/// random-punched file of 10^6 extents has its 200-odd line pieces in the punched part of its
/// span, and at one bucket per piece a fifth of the span lay in such pieces.
pub(super) fn directory(
    pieces: &[Piece],
    first_key: u32,
    last_key: u32,
    other_bytes: usize,
) -> (u32, Box<[Bucket]>) {
    let span = u64::from(last_key - first_key);
    let span_bits = 64 - span.leading_zeros();
    let build = |nb: usize| {
        let shift = span_bits.saturating_sub(nb.trailing_zeros());
        let buckets: Box<[Bucket]> = (0..nb)
            .filter_map(|b| {
                let start = bucket_start(first_key, b, shift);
                let n = pieces.partition_point(|p| u64::from(p.first_key) <= start);
                let index = n.saturating_sub(1);
                Some(Bucket {
                    piece: *pieces.get(index)?,
                    index: index as u32,
                })
            })
            .collect();
        (shift, buckets)
    };
    let fits = |nb: usize| {
        let bytes = nb * std::mem::size_of::<Bucket>();
        bytes <= (other_bytes + bytes) >> DIRECTORY_SHARE_SHIFT
    };
    let first = pieces.len().next_power_of_two();
    let mut best = build(first);
    let mut nb = first;
    while nb < first * MAX_BUCKETS_PER_PIECE
        && far_blocks(&best.1, best.0, first_key, last_key) > span >> FAR_SHARE_SHIFT
        && fits(nb * 2)
    {
        nb *= 2;
        best = build(nb);
    }
    best
}

/// The first block of bucket `b` (of a directory over blocks from `first_key`, `2^shift`
/// blocks a bucket), widened: the buckets past the map's last block start beyond `u32`.
pub(super) fn bucket_start(first_key: u32, b: usize, shift: u32) -> u64 {
    u64::from(first_key) + ((b as u64) << shift)
}

/// Blocks of `first_key..=last_key` in no piece that their bucket or the next bucket copies.
pub(super) fn far_blocks(buckets: &[Bucket], shift: u32, first_key: u32, last_key: u32) -> u64 {
    let end = u64::from(last_key) + 1;
    let mut far = 0;
    for (b, bucket) in buckets.iter().enumerate() {
        let start = bucket_start(first_key, b, shift);
        let stop = (start + (1u64 << shift)).min(end);
        if start >= stop {
            break;
        }
        // Blocks of [start, stop) inside piece p.
        let covered = |p: &Piece| {
            let lo = u64::from(p.first_key).max(start);
            let hi = (u64::from(p.last_block) + 1).min(stop);
            hi.saturating_sub(lo)
        };
        let mut near = covered(&bucket.piece);
        if let Some(next) = buckets.get(b + 1).filter(|n| n.index != bucket.index) {
            near += covered(&next.piece);
        }
        far += (stop - start) - near.min(stop - start);
    }
    far
}
