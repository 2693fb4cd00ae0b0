// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF tier's lookup: fuse-iomap's iomap_begin(ino, pos, count, opflags) answered in the
 * kernel by the file's learned model, with the same fixed-point arithmetic, window and
 * verification as the userspace learned index (predictor/src/index/learned.rs), so both give the
 * same mapping; or, for files loaded in the compact form (CFILES), by the compact learned
 * index's own pieces and packed blocks (predictor/src/index/compact.rs), with the same
 * arithmetic again. `answer()` is the one entry; two programs call it:
 *
 * - iomap_begin.bpf.c: an XDP program run by BPF_PROG_TEST_RUN (mainline has no fuse-iomap
 *   struct_ops): what the loader (bpf/src/) loads, the tests check and the reports time;
 * - fuse_iomap_ops.bpf.c: the same lookup as the iomap_begin hook of the posted fuse-iomap
 *   patches' fuse_iomap_bpf_ops (built in CI; it loads only on kernels carrying them).
 */
#ifndef IOMAP_LOOKUP_H
#define IOMAP_LOOKUP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "iomap_begin.h"

typedef __u64 u64;
typedef __s64 s64;
typedef __u32 u32;

/* max_entries of every map below is set by the loader before loading; 1 is a placeholder. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct iomap_bpf_file);
	__uint(max_entries, 1);
} FILES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_seg);
	__uint(max_entries, 1);
} SEGS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_bucket);
	__uint(max_entries, 1);
} RADIX SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_extent);
	__uint(max_entries, 1);
} EXTENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct iomap_bpf_cfile);
	__uint(max_entries, 1);
} CFILES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_piece);
	__uint(max_entries, 1);
} PIECES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_cbucket);
	__uint(max_entries, 1);
} CBUCKETS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, 1);
} WORDS SEC(".maps");



/* First index in [lo, hi) of the file's extents whose start is > q (hi if none). At most 33
 * halvings cover any u32 range; a window of IOMAP_BPF_MAX_WINDOW takes 11. */
static __always_inline u32 extent_upper_bound(u32 base, u32 lo, u32 hi, u32 q, u32 *probes,
					      int *err)
{
	for (int i = 0; i < 33 && lo < hi; i++) {
		u32 mid = lo + ((hi - lo) >> 1);
		u32 at = base + mid;
		struct iomap_bpf_extent *e = bpf_map_lookup_elem(&EXTENTS, &at);
		if (!e) {
			*err = 1;
			return lo;
		}
		(*probes)++;
		if (e->lblk <= q)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index (relative to the file) of the last segment starting at or before q (q >= the first
 * segment's start): the radix bucket of q narrows the segment starts to search, then a binary
 * search over them, as predictor's RadixTable::segment does. */
static __always_inline u32 segment_of(const struct iomap_bpf_file *f, u32 q, u32 *probes,
				      int *err)
{
	u32 lo = 0, hi = f->seg_count;
	if (f->radix_buckets) {
		u64 b = (u32)(q - f->radix_base) >> (f->radix_shift & 31);
		if (b > f->radix_buckets - 1)
			b = f->radix_buckets - 1;
		u32 at = f->radix_first + (u32)b;
		struct iomap_bpf_bucket *k = bpf_map_lookup_elem(&RADIX, &at);
		if (!k) {
			*err = 1;
			return 0;
		}
		(*probes)++;
		lo = k->lo;
		hi = k->hi < f->seg_count ? k->hi : f->seg_count;
	}
	for (int i = 0; i < 33 && lo < hi; i++) {
		u32 mid = lo + ((hi - lo) >> 1);
		u32 at = f->seg_first + mid;
		struct iomap_bpf_seg *s = bpf_map_lookup_elem(&SEGS, &at);
		if (!s) {
			*err = 1;
			return 0;
		}
		(*probes)++;
		if (s->first_key <= q)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : 0;
}

static __always_inline s64 clamp(s64 v, s64 lo, s64 hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The extent window [*lo, *hi] (relative to the file) the model gives for q: the fixed-point
 * line of predictor::model::FixedLine::predict and the clamp of model::clamp_window. */
static __always_inline int model_window(const struct iomap_bpf_file *f, u32 q, u32 *lo, u32 *hi,
					u32 *probes)
{
	int err = 0;
	u32 s = f->seg_first + segment_of(f, q, probes, &err);
	if (err)
		return IOMAP_BPF_MAP_ERROR;
	struct iomap_bpf_seg *seg = bpf_map_lookup_elem(&SEGS, &s);
	if (!seg)
		return IOMAP_BPF_MAP_ERROR;
	u64 d = (u32)(q - seg->first_key);
	/* Wrapping multiply, then arithmetic shifts: the same bits as the Rust evaluation. */
	s64 p = ((s64)((seg->slope * d) >> 16) + seg->intercept) >> 16;
	s64 first = seg->first, last = seg->last;
	s64 l = clamp(p - (s64)seg->e_lo - 1, first, last);
	s64 h = clamp(p + (s64)seg->e_hi, first, last);
	if (h - l + 1 > IOMAP_BPF_MAX_WINDOW)
		return IOMAP_BPF_WINDOW;
	*lo = (u32)l;
	*hi = (u32)h;
	return IOMAP_BPF_HANDLED;
}

/* FALLBACK with the reason `status`, after `probes` map reads. */
static __always_inline void fall_back(struct iomap_bpf_answer *a, int status, u32 probes)
{
	a->status = status;
	a->probes = probes;
}

/* What a file's index says about block q: the last extent starting at or before q (if any)
 * and where the next extent starts, verified (predictor's index::resolve takes it from here). */
struct found {
	u64 start;     /* the extent, in blocks */
	u64 end;
	u64 pblk;      /* without the flag */
	u64 next;      /* start of the next extent, ~0: none */
	u32 unwritten;
	u32 has;       /* 0: q is before the first extent */
};

/* The learned index's answer (FILES, SEGS, RADIX, EXTENTS). */
static __always_inline int learned_find(const struct iomap_bpf_file *f, u32 q, u32 flags,
					struct found *fd, u32 *probes)
{
	/* The file's first extent: a block before it is in the hole that extent ends. */
	u32 at = f->ext_first;
	struct iomap_bpf_extent *e = bpf_map_lookup_elem(&EXTENTS, &at);
	if (!e)
		return IOMAP_BPF_MAP_ERROR;
	(*probes)++;
	if (q < e->lblk) {
		fd->has = 0;
		fd->next = e->lblk;
		return IOMAP_BPF_HANDLED;
	}
	u32 lo = 0, hi = f->ext_count - 1;
	if (!(flags & IOMAP_BPF_RUN_FULL_SEARCH)) {
		int st = model_window(f, q, &lo, &hi, probes);
		if (st != IOMAP_BPF_HANDLED)
			return st;
	}
	int err = 0;
	u32 below = extent_upper_bound(f->ext_first, lo, hi + 1, q, probes, &err) - lo;
	if (err)
		return IOMAP_BPF_MAP_ERROR;
	/* Verify: extent j starts at or before q, and the next one (if any) after q. */
	if (below == 0)
		return IOMAP_BPF_MISSED;
	u32 j = lo + below - 1;
	fd->next = ~0ULL; /* no next extent: the hole after the last one is unbounded */
	if (j + 1 < f->ext_count) {
		at = f->ext_first + j + 1;
		struct iomap_bpf_extent *n = bpf_map_lookup_elem(&EXTENTS, &at);
		if (!n)
			return IOMAP_BPF_MAP_ERROR;
		(*probes)++;
		if (n->lblk <= q)
			return IOMAP_BPF_MISSED;
		fd->next = n->lblk;
	}
	at = f->ext_first + j;
	e = bpf_map_lookup_elem(&EXTENTS, &at);
	if (!e)
		return IOMAP_BPF_MAP_ERROR;
	fd->has = 1;
	fd->start = e->lblk;
	fd->end = (u64)e->lblk + e->len;
	fd->pblk = e->pblk & ~IOMAP_BPF_UNWRITTEN;
	fd->unwritten = (e->pblk & IOMAP_BPF_UNWRITTEN) != 0;
	return IOMAP_BPF_HANDLED;
}

/* The little-endian 8 bytes at byte `at` of WORDS (unaligned: two words when it straddles). */
static __always_inline int bytes_at(u64 at, u64 *out, u32 *probes)
{
	if (at >> 35)
		return -1;
	u32 i = at >> 3, sh = (at & 7) * 8;
	u64 *w = bpf_map_lookup_elem(&WORDS, &i);
	if (!w)
		return -1;
	(*probes)++;
	u64 v = *w >> sh;
	if (sh) {
		i++;
		u64 *w1 = bpf_map_lookup_elem(&WORDS, &i);
		if (!w1)
			return -1;
		v |= *w1 << (64 - sh);
	}
	*out = v;
	return 0;
}

/* The `w`-bit field (w <= 56) at bit `bit` of WORDS. */
static __always_inline int field_at(u64 bit, u32 w, u64 *out, u32 *probes)
{
	u64 v;
	if (bytes_at(bit >> 3, &v, probes))
		return -1;
	*out = (v >> (bit & 7)) & ((1ULL << (w & 63)) - 1);
	return 0;
}

/* Key offset r of the block at byte `at`: 2 or 4 bytes. */
static __always_inline int key_at(const struct iomap_bpf_piece *p, u64 at, u32 r, u64 *out,
				  u32 *probes)
{
	u64 v;
	u32 kb = p->key_bytes == 2 ? 2 : 4;
	if (bytes_at(at + IOMAP_BPF_COMPACT_HEAD + (u64)r * kb, &v, probes))
		return -1;
	*out = kb == 2 ? (v & 0xffff) : (v & 0xffffffffULL);
	return 0;
}

/* The piece holding q (q >= first_key), as compact's Packed::piece finds it: q's bucket names
 * the piece holding the bucket's first block; past its end, the pieces starting inside the
 * bucket are searched. */
static __always_inline struct iomap_bpf_piece *piece_of(const struct iomap_bpf_cfile *cf,
							 u32 q, u32 *probes)
{
	u64 b = (u64)(u32)(q - cf->first_key) >> (cf->shift & 63);
	if (b > cf->buckets - 1)
		b = cf->buckets - 1;
	u32 at = cf->bucket_first + (u32)b;
	struct iomap_bpf_cbucket *k = bpf_map_lookup_elem(&CBUCKETS, &at);
	if (!k)
		return NULL;
	(*probes)++;
	u32 idx = k->piece;
	at = cf->piece_first + idx;
	struct iomap_bpf_piece *p = bpf_map_lookup_elem(&PIECES, &at);
	if (!p)
		return NULL;
	(*probes)++;
	if (q < p->end_key || p->end_key == IOMAP_BPF_NO_KEY)
		return p;
	/* The last piece starting at or before q among those after idx, up to the next bucket's. */
	u32 lo = idx + 1, hi = cf->pieces;
	if (b + 1 < cf->buckets) {
		at = cf->bucket_first + (u32)b + 1;
		struct iomap_bpf_cbucket *n = bpf_map_lookup_elem(&CBUCKETS, &at);
		if (!n)
			return NULL;
		(*probes)++;
		if (n->piece + 1 < hi)
			hi = n->piece + 1;
	}
	u32 from = lo;
	for (int i = 0; i < 33 && lo < hi; i++) {
		u32 mid = lo + ((hi - lo) >> 1);
		at = cf->piece_first + mid;
		struct iomap_bpf_piece *m = bpf_map_lookup_elem(&PIECES, &at);
		if (!m)
			return NULL;
		(*probes)++;
		if (m->first_key <= q)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == from)
		return NULL;
	at = cf->piece_first + lo - 1;
	return bpf_map_lookup_elem(&PIECES, &at);
}

/* A line piece's answer for q (d = q - first_key), as compact's Line::find: predict, clamp
 * to the window, pick the block, count the key slots at most q among the WINDOW covering the
 * window (a binary search over them here: they are sorted), verify, decode the record. */
static __always_inline int line_find(const struct iomap_bpf_cfile *cf,
				     const struct iomap_bpf_piece *p, u32 q, u32 d,
				     struct found *fd, u32 *probes)
{
	u64 bytes = cf->byte_first;
	s64 pred = ((s64)((p->slope * (u64)d) >> 16) + p->intercept) >> 16;
	s64 last = (s64)p->count - 1;
	u64 lo = clamp(pred - (s64)p->e_lo - 1, 0, last);
	u64 hi = clamp(pred + (s64)p->e_hi, 0, last);
	u64 base = lo & ~(u64)(IOMAP_BPF_COMPACT_BLOCK - 1);
	u64 at = p->off + (lo / IOMAP_BPF_COMPACT_BLOCK) * p->block;
	u64 head;
	if (hi / IOMAP_BPF_COMPACT_BLOCK != lo / IOMAP_BPF_COMPACT_BLOCK) {
		u64 next_at = p->off + (hi / IOMAP_BPF_COMPACT_BLOCK) * p->block;
		if (bytes_at(bytes + next_at, &head, probes))
			return IOMAP_BPF_MAP_ERROR;
		if ((u32)head <= q) {
			base = hi & ~(u64)(IOMAP_BPF_COMPACT_BLOCK - 1);
			at = next_at;
		}
	}
	if (bytes_at(bytes + at, &head, probes))
		return IOMAP_BPF_MAP_ERROR;
	u32 key0 = (u32)head;
	if (q < key0)
		return IOMAP_BPF_MISSED;
	u64 qd = q - key0;
	/* Below the padding (all ones), so padding is never counted. */
	u64 pad = p->key_bytes == 2 ? 0xffff : 0xffffffffULL;
	if (qd > pad - 1)
		qd = pad - 1;
	u64 s = lo > base ? lo - base : 0;
	if (s > IOMAP_BPF_COMPACT_BLOCK - IOMAP_BPF_COMPACT_WINDOW)
		s = IOMAP_BPF_COMPACT_BLOCK - IOMAP_BPF_COMPACT_WINDOW;
	u32 l = 0, h = IOMAP_BPF_COMPACT_WINDOW;
	for (int i = 0; i < 6 && l < h; i++) {
		u32 m = (l + h) >> 1;
		u64 k;
		if (key_at(p, bytes + at, (u32)s + m, &k, probes))
			return IOMAP_BPF_MAP_ERROR;
		if (k <= qd)
			l = m + 1;
		else
			h = m;
	}
	/* No counted key at most q: the answer lies before the window (a wrong line). Slot s - 1
	 * was never compared with q, so it is not an answer either. */
	if (l == 0)
		return IOMAP_BPF_MISSED;
	u32 r = (u32)s + l - 1;
	u64 j = base + r;
	u64 k;
	if (key_at(p, bytes + at, r, &k, probes))
		return IOMAP_BPF_MAP_ERROR;
	u64 next = p->end_key == IOMAP_BPF_NO_KEY ? ~0ULL : p->end_key;
	if (j + 1 < p->count) {
		u64 n;
		if (r + 1 < IOMAP_BPF_COMPACT_BLOCK) {
			if (key_at(p, bytes + at, r + 1, &n, probes))
				return IOMAP_BPF_MAP_ERROR;
			next = (u32)(key0 + (u32)n);
		} else {
			u64 n_at = p->off + ((j + 1) / IOMAP_BPF_COMPACT_BLOCK) * p->block;
			if (bytes_at(bytes + n_at, &n, probes))
				return IOMAP_BPF_MAP_ERROR;
			next = (u32)n;
		}
	}
	/* Verify: q < start[j + 1]. */
	if (next <= q)
		return IOMAP_BPF_MISSED;
	u64 d0, len, dd, flag = 0;
	if (bytes_at(bytes + at + 8, &d0, probes))
		return IOMAP_BPF_MAP_ERROR;
	u64 bit = (bytes + at + p->recs) * 8 + (u64)r * p->wr;
	if (field_at(bit, p->wl, &len, probes) || field_at(bit + p->wl, p->wd, &dd, probes))
		return IOMAP_BPF_MAP_ERROR;
	if (p->unw == 2 && field_at(bit + p->wl + p->wd, 1, &flag, probes))
		return IOMAP_BPF_MAP_ERROR;
	u32 start = key0 + (u32)k;
	u32 elen = (u32)(head >> 32) + (u32)len;
	dd += d0;
	fd->has = 1;
	fd->start = start;
	fd->end = (u64)start + elen;
	fd->pblk = p->phys ? dd : (u64)start + dd;
	fd->unwritten = p->unw == 1 || (p->unw == 2 && flag);
	fd->next = next;
	return IOMAP_BPF_HANDLED;
}

/* The compact index's answer (CFILES, PIECES, CBUCKETS, WORDS). */
static __always_inline int compact_find(const struct iomap_bpf_cfile *cf, u32 q, struct found *fd,
					u32 *probes)
{
	if (cf->form == IOMAP_BPF_FORM_PLAIN) {
		/* Extents with start <= q: a binary search over the 16-byte records. */
		u32 lo = 0, hi = cf->count;
		u64 w;
		for (int i = 0; i < 33 && lo < hi; i++) {
			u32 mid = lo + ((hi - lo) >> 1);
			if (bytes_at(cf->byte_first + (u64)mid * 16, &w, probes))
				return IOMAP_BPF_MAP_ERROR;
			if ((u32)w <= q)
				lo = mid + 1;
			else
				hi = mid;
		}
		fd->next = ~0ULL;
		if (lo < cf->count) {
			if (bytes_at(cf->byte_first + (u64)lo * 16, &w, probes))
				return IOMAP_BPF_MAP_ERROR;
			fd->next = (u32)w;
		}
		if (lo == 0) {
			fd->has = 0;
			return IOMAP_BPF_HANDLED;
		}
		u64 pblk;
		if (bytes_at(cf->byte_first + (u64)(lo - 1) * 16, &w, probes) ||
		    bytes_at(cf->byte_first + (u64)(lo - 1) * 16 + 8, &pblk, probes))
			return IOMAP_BPF_MAP_ERROR;
		fd->has = 1;
		fd->start = (u32)w;
		fd->end = fd->start + (w >> 32);
		fd->pblk = pblk & ~IOMAP_BPF_UNWRITTEN;
		fd->unwritten = (pblk & IOMAP_BPF_UNWRITTEN) != 0;
		return IOMAP_BPF_HANDLED;
	}
	if (cf->form != IOMAP_BPF_FORM_PACKED)
		return IOMAP_BPF_MAP_ERROR;
	if (q < cf->first_key) {
		fd->has = 0;
		fd->next = cf->first_key;
		return IOMAP_BPF_HANDLED;
	}
	struct iomap_bpf_piece *p = piece_of(cf, q, probes);
	if (!p)
		return IOMAP_BPF_MAP_ERROR;
	u32 d = q - p->first_key;
	if (p->kind == IOMAP_BPF_PIECE_LINE)
		return line_find(cf, p, q, d, fd, probes);
	if (p->kind != IOMAP_BPF_PIECE_RUN || p->step == 0 || p->count == 0)
		return IOMAP_BPF_MAP_ERROR;
	/* A run: arithmetic alone. */
	u32 i = d / p->step;
	if (i > p->count - 1)
		i = p->count - 1;
	u32 lblk = p->first_key + i * p->step;
	fd->has = 1;
	fd->start = lblk;
	fd->end = (u64)lblk + p->len;
	fd->pblk = p->pblk + p->pstep * i;
	fd->unwritten = p->unw != 0;
	if (i + 1 < p->count)
		fd->next = lblk + p->step;
	else
		fd->next = p->end_key == IOMAP_BPF_NO_KEY ? ~0ULL : p->end_key;
	return IOMAP_BPF_HANDLED;
}

/* Answers one query into *a: the mapping from pos to the end of its extent or hole, clipped
 * to pos + count and, for reads, to i_size (predictor::Request::mapping), or a fallback
 * status. A report query (IOMAP_BPF_OP_REPORT) is answered past i_size too. */
static __always_inline void answer(const struct iomap_bpf_query *qr, struct iomap_bpf_answer *a,
				   u32 flags)
{
	u32 probes = 0;
	a->offset = qr->pos;
	a->length = 0;
	a->addr = IOMAP_BPF_NULL_ADDR;
	a->type = IOMAP_BPF_HOLE;
	if (flags & IOMAP_BPF_RUN_NOOP) {
		fall_back(a, IOMAP_BPF_NO_MODEL, probes);
		return;
	}
	u64 ino = qr->ino;
	struct iomap_bpf_file *f = bpf_map_lookup_elem(&FILES, &ino);
	struct iomap_bpf_cfile *cf = NULL;
	u64 size;
	u32 blkbits;
	if (f) {
		size = f->size;
		blkbits = f->blkbits;
	} else {
		cf = bpf_map_lookup_elem(&CFILES, &ino);
		if (!cf) {
			fall_back(a, IOMAP_BPF_NO_MODEL, probes);
			return;
		}
		size = cf->size;
		blkbits = cf->blkbits;
	}
	u64 pos = qr->pos, count = qr->count;
	/* Where the mapping stops: i_size for reads, nowhere for reports. */
	u64 limit = (qr->opflags & IOMAP_BPF_OP_REPORT) ? ~0ULL : size;
	u32 bits = blkbits & 31;
	u64 lblk = pos >> bits;
	if (count == 0 || pos >= limit || lblk > 0xffffffffULL || (f && f->ext_count == 0)) {
		fall_back(a, IOMAP_BPF_BAD_QUERY, probes);
		return;
	}
	u32 q = (u32)lblk;
	struct found fd = {};
	int st = f ? learned_find(f, q, flags, &fd, &probes)
		   : cf ? compact_find(cf, q, &fd, &probes) : IOMAP_BPF_MAP_ERROR;
	if (st != IOMAP_BPF_HANDLED) {
		fall_back(a, st, probes);
		return;
	}
	u64 run_end; /* end in bytes of the extent or hole holding pos */
	if (fd.has && q < fd.end) {
		/* Mapped (or unwritten): the loader checked (pblk + len) << bits fits 64 bits. */
		a->addr = (fd.pblk << bits) + (pos - (fd.start << bits));
		a->type = fd.unwritten ? IOMAP_BPF_UNWRITTEN_TYPE : IOMAP_BPF_MAPPED;
		run_end = fd.end << bits;
	} else {
		run_end = fd.next == ~0ULL ? ~0ULL : fd.next << bits;
	}
	u64 stop = pos + count < pos ? ~0ULL : pos + count;
	if (run_end < stop)
		stop = run_end;
	if (limit < stop)
		stop = limit;
	a->length = stop - pos;
	a->probes = probes;
	a->status = IOMAP_BPF_HANDLED;
}

#endif
