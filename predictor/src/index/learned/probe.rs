//! The packed form's lookup: the directory bucket, the piece, the line's window, the answer.

use super::*;
use crate::index::{search_lines, span_lines};

impl Packed {
    /// The piece holding `q` and `q`'s distance into it, both probes' first step; or the
    /// answer without a piece: a hole before the first key or past the last extent, a miss
    /// where the directory has no piece for `q` (which a well-formed index never has).
    #[inline(always)]
    fn locate(&self, q: u32) -> Result<(&Piece, u32), Lookup> {
        if q < self.first_key {
            return Err(Lookup::Found(BlockMap::Hole {
                next: Some(self.first_key),
            }));
        }
        // Past the last extent (a file's tail hole up to its size): answered here, not after
        // a window search that can only land on the last extent and step past it.
        if q > self.last_block {
            return Err(Lookup::Found(BlockMap::Hole { next: None }));
        }
        let piece = match &*self.pieces {
            // A map of one piece (most small files): the piece without the directory, so its
            // loads do not wait on working out a bucket from `q` (a lookup on a small map is
            // its dependency chain: `docs/decisions.md`, "Small maps"). Which arm is the
            // file's: predicted.
            [one] => {
                keep_branch();
                one
            }
            _ => self.piece(q).ok_or(Lookup::Missed)?,
        };
        Ok((piece, q - piece.first_key))
    }

    /// The piece holding `q` (`q >= first_key`).
    #[inline(always)]
    pub(super) fn piece(&self, q: u32) -> Option<&Piece> {
        let last = self.buckets.len().checked_sub(1)?;
        let mut b = (u64::from(q - self.first_key) >> self.shift) as usize;
        if b > last {
            // Only past the last bucket's first block: predicted.
            keep_branch();
            b = last;
        }
        // The next bucket is where a query past this bucket's piece finds its piece (below);
        // asked for now, a cold lookup's two bucket lines arrive together.
        prefetch(self.buckets.as_ptr().wrapping_add(b + 1));
        let bucket = self.buckets.get(b)?;
        if q <= bucket.piece.last_block {
            return Some(&bucket.piece);
        }
        // q is past the bucket's first piece, in a piece starting inside the bucket. Where
        // only one starts there (the directory is sized so that holds for nearly all the
        // span), that piece holds the next bucket's first block: the next bucket, the
        // adjacent cache line, has a copy of it. Checked inline: a search call here cost a
        // sequential scan a third of its time on a map of 10^6 extents.
        if let Some(next) = self.buckets.get(b + 1) {
            if next.piece.first_key <= q && q <= next.piece.last_block {
                return Some(&next.piece);
            }
        }
        self.piece_after(q, b, bucket.index as usize + 1)
    }

    /// The piece holding `q`, which lies past bucket `b`'s piece (the pieces before `from`)
    /// and before the next bucket's (`q` is below the next bucket's first block, which that
    /// piece holds, and was not in it): a search among the pieces in between, out of line so
    /// that the common path does not keep registers for it.
    #[cold]
    #[inline(never)]
    pub(super) fn piece_after(&self, q: u32, b: usize, from: usize) -> Option<&Piece> {
        let to = self
            .buckets
            .get(b + 1)
            .map_or(self.pieces.len(), |n| n.index as usize);
        let rest = self.pieces.get(from..to)?;
        let k = rest.partition_point(|p| p.first_key <= q).checked_sub(1)?;
        rest.get(k)
    }

    /// Cache lines a lookup of `q` reads: none outside the extents' span; the bucket; the next
    /// bucket where `q` is past the bucket's piece; a binary search of the piece array where it
    /// is past that one too; then nothing more for a run, and for a line the block header with
    /// the window's keys (two lines with two-byte keys, three with four-byte ones) and the
    /// record.
    pub(super) fn lines_read(&self, q: u32) -> u32 {
        if q < self.first_key || q > self.last_block {
            return 0;
        }
        let Some(last) = self.buckets.len().checked_sub(1) else {
            return 0;
        };
        let b = ((u64::from(q - self.first_key) >> self.shift) as usize).min(last);
        let Some(bucket) = self.buckets.get(b) else {
            return 0;
        };
        let (mut lines, piece) = if q <= bucket.piece.last_block {
            (1, Some(&bucket.piece))
        } else {
            match self.buckets.get(b + 1) {
                Some(n) if n.piece.first_key <= q && q <= n.piece.last_block => (2, Some(&n.piece)),
                next => {
                    let from = bucket.index as usize + 1;
                    let to = next.map_or(self.pieces.len(), |n| n.index as usize);
                    let searched =
                        search_lines(to.saturating_sub(from), std::mem::size_of::<Piece>());
                    (2 + searched, self.piece_after(q, b, from))
                }
            }
        };
        lines += match piece.map(|p| &p.body) {
            Some(Body::Line(Stored::Packed(l))) => match l.kw {
                KeyWidth::U16 => 3,
                KeyWidth::U32 => 4,
            },
            // The window's keys (WINDOW of 4 bytes) and the answer's record.
            Some(Body::Line(Stored::Records(r))) => {
                span_lines(0, r.count().min(WINDOW as u32) as usize * 4) + 1
            }
            Some(Body::Run(_)) | None => 0,
        };
        lines
    }

    /// [`Self::probe`] for the records storage, whose line pieces are all records: their
    /// search first and inline, a run's arithmetic after it, and no packed block decoder in
    /// the way (one body of code per storage, each laid out for its own common path).
    #[inline(always)]
    pub(super) fn probe_records(&self, q: u32) -> Lookup {
        let (piece, d) = match self.locate(q) {
            Ok(at) => at,
            Err(answer) => return answer,
        };
        match &piece.body {
            Body::Line(Stored::Records(r)) => r.find(&self.bytes, q, d, piece),
            Body::Run(r) => run_find(piece, r, q, d),
            // Not built in this storage; answered all the same.
            Body::Line(Stored::Packed(_)) => self.probe_cold(q),
        }
    }

    /// [`Self::probe`] out of line.
    #[cold]
    #[inline(never)]
    fn probe_cold(&self, q: u32) -> Lookup {
        self.probe(q)
    }

    #[inline(always)]
    pub(super) fn probe(&self, q: u32) -> Lookup {
        let (piece, d) = match self.locate(q) {
            Ok(at) => at,
            Err(answer) => return answer,
        };
        match &piece.body {
            Body::Run(r) => run_find(piece, r, q, d),
            Body::Line(Stored::Packed(l)) => {
                let Some((hit, slot)) = l.find(&self.bytes, q, d) else {
                    return Lookup::Missed;
                };
                let Hit { key, len, .. } = hit;
                // Verify on the stored starts: start[j] <= q < start[j + 1]. Inside the
                // extent that holds (extents do not overlap, so the next one starts at or
                // after its end), and the next start is not even looked at. (`find` counted
                // the keys at or below `q`, so the extent starts at or before it: only the
                // end is compared.)
                debug_assert!(key <= q);
                if q.wrapping_sub(key) < len {
                    return Lookup::Found(BlockMap::Mapped(l.extent_at(&self.bytes, &hit)));
                }
                let next = l.next_start(&self.bytes, slot, piece.end());
                if next.is_some_and(|n| n <= q) {
                    return Lookup::Missed;
                }
                Lookup::Found(BlockMap::Hole { next })
            }
            Body::Line(Stored::Records(r)) => r.find(&self.bytes, q, d, piece),
        }
    }

    pub(super) fn extents(&self) -> Vec<Extent> {
        let mut out = Vec::new();
        for piece in self.pieces.iter() {
            match piece.body {
                Body::Run(r) => out.extend((0..r.count).map(|i| Extent {
                    lblk: piece.first_key + i * r.step,
                    pblk: r.pblk.wrapping_add(r.pstep.wrapping_mul(u64::from(i))),
                    len: r.len,
                    unwritten: r.unwritten,
                })),
                Body::Line(Stored::Packed(l)) => {
                    out.extend((0..l.count() as usize).map(|j| l.extent(&self.bytes, j)))
                }
                Body::Line(Stored::Records(r)) => out.extend(r.extents(&self.bytes)),
            }
        }
        out
    }
}

/// The answer for `q` in the run `r` of `piece` (`d = q - piece.first_key`): arithmetic alone.
#[inline(always)]
fn run_find(piece: &Piece, r: &Run, q: u32, d: u32) -> Lookup {
    // step > 0: a run's extents do not overlap.
    let i = (d / r.step).min(r.count - 1);
    let lblk = piece.first_key + i * r.step;
    let e = Extent {
        lblk,
        pblk: r.pblk.wrapping_add(r.pstep.wrapping_mul(u64::from(i))),
        len: r.len,
        unwritten: r.unwritten,
    };
    let next = if i + 1 < r.count {
        Some(lblk + r.step)
    } else {
        piece.end()
    };
    Lookup::Found(resolve(q, Some(e), next))
}
