// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF tier's lookup: fuse-iomap's iomap_begin(ino, pos, count, opflags) answered in the
 * kernel by the file's learned index (predictor/src/index/learned/), with the same fixed-point
 * arithmetic, window and verification as the userspace lookup, so both give the same mapping.
 * One map set holds every file whatever its storage: the header in CFILES, the pieces (runs,
 * lines over packed blocks, lines over key columns beside 12-byte records) in PIECES, the
 * directory in CBUCKETS and the stored extents (packed blocks, key columns and records, or a
 * small file's plain array of 16-byte records) in WORDS.
 * `answer()` is the one entry; two programs call it:
 *
 * - iomap_begin.bpf.c: an XDP program run by BPF_PROG_TEST_RUN (mainline has no fuse-iomap
 *   struct_ops): what the loader (bpf/src/) loads, the tests check and the reports time;
 * - fuse_iomap_ops.bpf.c: the same lookup as the iomap_begin hook of the posted fuse-iomap
 *   patches' fuse_iomap_bpf_ops (built in CI; it loads only on kernels carrying them).
 *
 * Verification cost. The verifier walks every path of a function with the state it is called
 * in; a lookup written as one inlined function makes it walk the product of every branch of
 * every step (it once took a hair under the 1M-instruction limit and went over on another build
 * of the same kernel). So each step here is a global function (VERIFIED_ONCE): the verifier
 * checks it once, on its own, from its argument types alone, and a call costs it one
 * instruction. The verifier's work is then the sum of the steps', each a few thousand
 * instructions (the loader reads the kernel's count back and a test bounds it). What a global
 * function takes must be checked inside it (pointers may be NULL, scalars are unknown), which is
 * also what keeps files apart: every index a step derives is checked against the file's own
 * slots before it is read, so inconsistent maps give FALLBACK, never another file's mapping.
 *
 * Speed. The searches are branchless (at_most, narrow): BPF has no conditional move, and a
 * binary search's `if` is a coin flip per halving for the branch predictor. A map lookup is
 * the unit of cost, so a lookup takes a packed block, or a line's window of keys, with one
 * (WORDS values are 4 KiB: span_of) and reads it with loads inside the value, and counts the
 * window's key slots in place (count_keys, one count for both storages) instead of searching
 * them.
 */
#ifndef IOMAP_LOOKUP_H
#define IOMAP_LOOKUP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "iomap_begin.h"

typedef __u64 u64;
typedef __s64 s64;
typedef __u32 u32;
typedef __u16 u16;
typedef __u8 u8;

/* A global (non-static), never inlined function: verified once, independently of its callers. */
#define VERIFIED_ONCE __attribute__((noinline))

/* max_entries of every map below is set by the loader before loading; 1 is a placeholder. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct iomap_bpf_cfile);
	__uint(max_entries, 1);
} CFILES SEC(".maps");

/* The same headers in an array indexed by the inode number, when the loader finds the inode
 * numbers dense enough (ext4's are bounded by s_inodes_count) and no replacement room is
 * asked: the verifier inlines an array lookup into a bounds check and an address computation,
 * where a hash lookup is a call that hashes the key and walks a bucket, the largest single
 * cost of a lookup. An empty slot has form 0 (no model). The loader sets headers_by_ino
 * before load; the verifier then drops the path not taken. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, struct iomap_bpf_cfile);
	__uint(max_entries, 1);
} CFILES_BY_INO SEC(".maps");

/* 1: the headers are in CFILES_BY_INO; 0: in CFILES. */
const volatile u32 headers_by_ino = 0;

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

/* Every file's bytes, and one word of padding after the last file's: one run of words,
 * IOMAP_BPF_WORDS_VALUE to a value. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_words);
	__uint(max_entries, 1);
} WORDS SEC(".maps");

/* What a file's index says about block q: the last extent starting at or before q (if any)
 * and where the next extent starts, verified (predictor's index::resolve takes it from here);
 * and the map reads it took. */
struct found {
	u64 start;     /* the extent, in blocks */
	u64 end;
	u64 pblk;      /* without the flag */
	u64 next;      /* start of the next extent, ~0: none */
	u32 unwritten;
	u32 has;       /* 0: q is before the first extent */
	u32 probes;    /* map reads */
	u32 pad;
};

/* A search's failure (a read outside a map or outside the file's slots). */
#define SEARCH_ERROR (-1L)

static __always_inline s64 clamp(s64 v, s64 lo, s64 hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* 1 if key <= q, else 0, computed without a branch: BPF has no conditional move, and a binary
 * search's comparisons are coin flips that a branch would mispredict half the time (the
 * userspace searches compile to cmov). The barrier keeps the compiler from turning the
 * arithmetic back into a branch. Both values are below 2^32. */
static __always_inline u64 at_most(u64 key, u64 q)
{
	u64 le = ((q - key) >> 63) ^ 1;
	barrier_var(le);
	return le;
}

/* One step of a branchless upper-bound search over [*lo, *lo + *n): `le` says whether the key
 * at *lo + *n / 2 is at most q. Keeps the keys after the probe if so, the keys before it if not;
 * the number of steps depends on *n alone. */
static __always_inline void narrow(u32 *lo, u32 *n, u64 le)
{
	u32 half = *n >> 1;
	*lo += (half + 1) & (u32)-le;
	*n = half - ((u32)le & ~*n & 1);
}

/* The fixed-point line of predictor::model::FixedLine::predict at d blocks past its first key:
 * a wrapping multiply, then arithmetic shifts (the same bits as the Rust evaluation). */
static __always_inline s64 predict(u64 slope, s64 intercept, u32 d)
{
	return ((s64)((slope * (u64)d) >> 16) + intercept) >> 16;
}

/* Whether a file's range [first, first + count) of an array lies below 2^32: a range that
 * passes it would wrap to the array's start, where other files' slots are. */
static __always_inline int range_fits(u32 first, u32 count)
{
	return (u64)first + count <= 0x100000000ULL;
}

/* Slot i of a file's range [first, first + count) of an array, in *at: 0 if i < count and the
 * range fits (so first + i is in it), else -1. Every array index a lookup derives, from a
 * header, a bucket, a piece or a search, goes through here (or, for a search, its
 * bounds go through search_fits) before it is read. Only the header's fields meet a constant
 * here: a derived index compared with a constant would make the verifier track it exactly,
 * and walk every search step apart. */
static __always_inline int slot_of(u32 first, u32 count, u64 i, u32 *at)
{
	if (i >= count || !range_fits(first, count))
		return -1;
	*at = first + (u32)i;
	return 0;
}

/* Whether a search over slots [lo, hi) of a file's range [first, first + count) stays inside
 * it: checked once before the search, whose probes then stay in [lo, hi) (narrow keeps them
 * there), so the loop has no check of its own. */
static __always_inline int search_fits(u32 first, u32 count, u32 lo, u32 hi)
{
	return hi <= count && range_fits(first, count);
}

/* ---- The learned index: CFILES, PIECES, CBUCKETS, WORDS ---- */

/* Whether the file's words lie below 2^32: every step that reads words checks it first, so
 * span_of's bounds (relative to the file's bytes) keep every read inside them (the check is not
 * repeated per read: the verifier would then walk every step of a search apart). */
static __always_inline int words_fit(const struct iomap_bpf_cfile *cf)
{
	return range_fits(cf->word_first, cf->words);
}

#define VALUE_BYTES (IOMAP_BPF_WORDS_VALUE * 8)

/* A stretch of a file's bytes as the WORDS values holding it: at most two, since a span is at
 * most a value long. Reads (span_read) take 8 bytes at a byte offset relative to the span's
 * start, anywhere in it: pieces start where the previous one's extents end, so nothing is
 * aligned (a records piece's keys are, at 4 bytes, but a span may still straddle two values). */
struct span {
	const u8 *v0; /* the value holding the span's first byte */
	const u8 *v1; /* the next value if the span reaches into it, else v0 */
	u64 off;      /* the first byte's offset in v0 */
	u64 len;      /* bytes of the span: every read lies inside them */
};

/* The span of the file's bytes [at, at + len), cut short at the end of the file's words (the
 * piece forms end with 8 bytes of padding, so every field read of a block is inside): one
 * WORDS lookup, two when the span straddles values. The caller checked words_fit, so the span
 * is the file's own bytes. */
static __always_inline int span_of(const struct iomap_bpf_cfile *cf, u64 at, u64 len,
				   struct span *sp, u32 *probes)
{
	u64 bytes = (u64)cf->words * 8;
	if (at >= bytes || len > VALUE_BYTES)
		return -1;
	if (len > bytes - at)
		len = bytes - at;
	u64 abs = (u64)cf->word_first * 8 + at;
	u32 c = abs / VALUE_BYTES;
	const u8 *v = bpf_map_lookup_elem(&WORDS, &c);
	if (!v)
		return -1;
	(*probes)++;
	sp->v0 = v;
	sp->v1 = v;
	sp->off = abs % VALUE_BYTES;
	sp->len = len;
	if (sp->off + len > VALUE_BYTES) {
		c++;
		v = bpf_map_lookup_elem(&WORDS, &c);
		if (!v)
			return -1;
		(*probes)++;
		sp->v1 = v;
	}
	return 0;
}

/* The little-endian 8 bytes at byte `rel` of the span: one load inside a value, or across the
 * two values the last word of the first and the first word of the second, shifted together
 * (a file owns whole words, so both are the file's). */
static __always_inline int span_read(const struct span *sp, u64 rel, u64 *out)
{
	if (rel >= sp->len || sp->len - rel < 8)
		return -1;
	u64 o = sp->off + rel;
	if (o <= VALUE_BYTES - 8) {
		*out = *(const u64 *)(sp->v0 + o);
		return 0;
	}
	if (o >= VALUE_BYTES) {
		o -= VALUE_BYTES;
		if (o > VALUE_BYTES - 8)
			return -1;
		*out = *(const u64 *)(sp->v1 + o);
		return 0;
	}
	u32 sh = (u32)(o - (VALUE_BYTES - 8)) * 8; /* 8..56 */
	u64 w0 = *(const u64 *)(sp->v0 + VALUE_BYTES - 8), w1 = *(const u64 *)sp->v1;
	*out = (w0 >> sh) | (w1 << (64 - sh));
	return 0;
}

/* The 8 bytes at byte `at` of the file's bytes. */
static __always_inline int bytes_at(const struct iomap_bpf_cfile *cf, u64 at, u64 *out,
				    u32 *probes)
{
	struct span sp;
	if (span_of(cf, at, 8, &sp, probes))
		return -1;
	return span_read(&sp, 0, out);
}

/* The `w`-bit field (w <= 56) at bit `bit` of the span. */
static __always_inline int field_of(const struct span *sp, u64 bit, u32 w, u64 *out)
{
	u64 v;
	if (span_read(sp, bit >> 3, &v))
		return -1;
	*out = (v >> (bit & 7)) & ((1ULL << (w & 63)) - 1);
	return 0;
}

/* The key (2 or 4 bytes) at byte `rel` of the span. */
static __always_inline int key_at(const struct span *sp, u32 kb, u64 rel, u64 *out)
{
	u64 v;
	if (span_read(sp, rel, &v))
		return -1;
	*out = kb == 2 ? (v & 0xffff) : (v & 0xffffffffULL);
	return 0;
}

/* Key offset r of the block the span starts at: 2 or 4 bytes. */
static __always_inline int key_of(const struct span *sp, u32 kb, u32 r, u64 *out)
{
	return key_at(sp, kb, IOMAP_BPF_COMPACT_HEAD + (u64)r * kb, out);
}

/* The plain form: the file's 16-byte extent records (two words each) in WORDS, searched
 * whole. */
VERIFIED_ONCE int plain_find(const struct iomap_bpf_cfile *cf, u32 q, struct found *fd)
{
	if (!cf || !fd || !words_fit(cf) || cf->count == 0)
		return IOMAP_BPF_MAP_ERROR;
	u32 count = cf->count, lo = 0, hi = count;
	u64 w;
	/* Extents with start <= q. */
	for (int i = 0; i < 33 && lo < hi; i++) {
		u32 mid = lo + ((hi - lo) >> 1);
		if (bytes_at(cf, (u64)mid * 16, &w, &fd->probes))
			return IOMAP_BPF_MAP_ERROR;
		if ((u32)w <= q)
			lo = mid + 1;
		else
			hi = mid;
	}
	fd->next = ~0ULL;
	if (lo < count) {
		if (bytes_at(cf, (u64)lo * 16, &w, &fd->probes))
			return IOMAP_BPF_MAP_ERROR;
		fd->next = (u32)w;
	}
	if (lo == 0) {
		fd->has = 0;
		return IOMAP_BPF_HANDLED;
	}
	u64 pblk;
	struct span sp;
	if (span_of(cf, (u64)(lo - 1) * 16, 16, &sp, &fd->probes) || span_read(&sp, 0, &w) ||
	    span_read(&sp, 8, &pblk))
		return IOMAP_BPF_MAP_ERROR;
	fd->has = 1;
	fd->start = (u32)w;
	fd->end = fd->start + (w >> 32);
	fd->pblk = pblk & ~IOMAP_BPF_UNWRITTEN;
	fd->unwritten = (pblk & IOMAP_BPF_UNWRITTEN) != 0;
	return IOMAP_BPF_HANDLED;
}

/* The piece holding q (q >= first_key), relative to the file, as the userspace Packed::piece
 * finds it: q's bucket names the piece holding the bucket's first block; past its end, the
 * pieces starting inside the bucket are searched. */
VERIFIED_ONCE long piece_of(const struct iomap_bpf_cfile *cf, u32 q, struct found *fd)
{
	if (!cf || !fd || cf->buckets == 0)
		return SEARCH_ERROR;
	u32 pieces = cf->pieces, buckets = cf->buckets, at;
	u64 b = (u64)(u32)(q - cf->first_key) >> (cf->shift & 63);
	if (b > buckets - 1)
		b = buckets - 1;
	if (slot_of(cf->bucket_first, buckets, b, &at))
		return SEARCH_ERROR;
	struct iomap_bpf_cbucket *k = bpf_map_lookup_elem(&CBUCKETS, &at);
	if (!k)
		return SEARCH_ERROR;
	fd->probes++;
	u32 idx = k->piece;
	if (slot_of(cf->piece_first, pieces, idx, &at))
		return SEARCH_ERROR;
	struct iomap_bpf_piece *p = bpf_map_lookup_elem(&PIECES, &at);
	if (!p)
		return SEARCH_ERROR;
	fd->probes++;
	if (q < p->end_key || p->end_key == IOMAP_BPF_NO_KEY)
		return idx;
	/* The last piece starting at or before q among those after idx, up to the next bucket's. */
	u32 lo = idx + 1, hi = pieces;
	if (b + 1 < buckets) {
		if (slot_of(cf->bucket_first, buckets, b + 1, &at))
			return SEARCH_ERROR;
		struct iomap_bpf_cbucket *n = bpf_map_lookup_elem(&CBUCKETS, &at);
		if (!n)
			return SEARCH_ERROR;
		fd->probes++;
		if (n->piece < hi)
			hi = n->piece + 1;
	}
	u32 first = cf->piece_first, from = lo, n = lo < hi ? hi - lo : 0;
	if (!search_fits(first, pieces, lo, hi))
		return SEARCH_ERROR;
	for (int i = 0; i < 33 && n; i++) {
		at = first + lo + (n >> 1);
		struct iomap_bpf_piece *m = bpf_map_lookup_elem(&PIECES, &at);
		if (!m)
			return SEARCH_ERROR;
		fd->probes++;
		narrow(&lo, &n, at_most(m->first_key, q));
	}
	return lo == from ? SEARCH_ERROR : lo - 1;
}

/* The WINDOW key slots a line lookup counts, 2 or 4 bytes each (the memory a count reads):
 * a packed block's key offsets, or a records piece's keys. */
struct key_run {
	u32 k[IOMAP_BPF_COMPACT_WINDOW];
};

/* How many of the window's key offsets are at most qd, as the userspace vector count gives it
 * for sorted keys, in two levels of independent loads: the last slot of each of the first three
 * groups of eight names how many whole groups lie at or below qd, then the one group that may
 * straddle qd is counted slot by slot. Eleven slots compared instead of 32 (each compare is
 * four instructions here, where userspace compares four slots in one), at the cost of one
 * dependent load. Keys that are not sorted (an inconsistent map) give some count within the
 * window, which the caller's verification turns into MISSED. */
#define GROUP 8
_Static_assert(IOMAP_BPF_COMPACT_WINDOW == 4 * GROUP, "a window is four groups");
static __always_inline u64 above(u64 key, u64 qd)
{
	return (qd - key) >> 63; /* 1 if key > qd: both below 2^32 */
}

/* count_keys over the window's slots as an array of T (u16 or u32): g, the whole groups at or
 * below qd, then the slots of group g above it in up; SEARCH_ERROR for a g out of range. */
#define COUNT_TWO_LEVEL(T, w, qd, g, up)                                                    \
	do {                                                                                \
		const T *k_ = (const T *)(w)->k;                                            \
		g = 3 - (above(k_[GROUP - 1], qd) + above(k_[2 * GROUP - 1], qd) +         \
			 above(k_[3 * GROUP - 1], qd));                                    \
		barrier_var(g);                                                             \
		if (g > 3)                                                                  \
			return SEARCH_ERROR;                                                \
		const T *grp_ = k_ + g * GROUP;                                             \
		_Pragma("unroll") for (int i_ = 0; i_ < GROUP; i_++) up += above(grp_[i_], qd); \
	} while (0)

VERIFIED_ONCE long count_keys(const struct key_run *w, u32 kb, u64 qd)
{
	if (!w)
		return SEARCH_ERROR;
	u64 g, up = 0;
	if (kb == 2)
		COUNT_TWO_LEVEL(u16, w, qd, g, up);
	else
		COUNT_TWO_LEVEL(u32, w, qd, g, up);
	return (g + 1) * GROUP - up;
}

/* What keys_searched searches: a span (its two values passed beside), the byte of its first
 * key slot, how many slots, the key bytes and qd. */
struct key_search {
	u64 off;
	u64 len;
	u64 rel;
	u64 qd;
	u32 kb;
	u32 n;
};

/* keys_at_most's binary search, for slots the span's first value does not hold, or fewer than
 * WINDOW of them (a records piece shorter than a window): a global function, so the verifier
 * walks its probes (three ways each in span_read) once. */
VERIFIED_ONCE long keys_searched(const struct iomap_bpf_words *v0,
				 const struct iomap_bpf_words *v1, const struct key_search *ks)
{
	if (!v0 || !v1 || !ks)
		return SEARCH_ERROR;
	struct span sp = { .v0 = (const u8 *)v0, .v1 = (const u8 *)v1, .off = ks->off,
			   .len = ks->len };
	u32 kb = ks->kb == 2 ? 2 : 4, l = 0, n = ks->n;
	u64 qd = ks->qd, rel = ks->rel;
	/* Six halvings cover WINDOW slots; a larger n (the callers never pass one) would stop
	 * short, never read outside the span. */
	for (int i = 0; i < 6 && n; i++) {
		u64 k;
		if (key_at(&sp, kb, rel + (u64)(l + (n >> 1)) * kb, &k))
			return SEARCH_ERROR;
		narrow(&l, &n, at_most(k, qd));
	}
	return l;
}

/* How many of the n (at most WINDOW) sorted key slots from byte `rel` of the span hold a key
 * at most qd: a packed block's offsets (n = WINDOW) or a records piece's keys. Counted in place
 * when they are WINDOW slots the span's first value holds, else a binary search over them. */
static __always_inline long keys_at_most(const struct span *sp, u32 kb, u64 rel, u32 n, u64 qd)
{
	u64 o = sp->off + rel;
	if (n == IOMAP_BPF_COMPACT_WINDOW && rel <= sp->len &&
	    sp->len - rel >= (u64)IOMAP_BPF_COMPACT_WINDOW * kb &&
	    o <= VALUE_BYTES - sizeof(struct key_run))
		return count_keys((const struct key_run *)(sp->v0 + o), kb, qd);
	struct key_search ks = { .off = sp->off, .len = sp->len, .rel = rel, .qd = qd, .kb = kb,
				 .n = n };
	return keys_searched((const struct iomap_bpf_words *)sp->v0,
			     (const struct iomap_bpf_words *)sp->v1, &ks);
}

/* A packed line piece's answer for q, as the userspace Line::find: predict, clamp to the window, pick
 * the block, count the key slots at most q among the WINDOW covering the window, verify,
 * decode the record. The block (and the 8 bytes a read takes past it) is one span: one WORDS
 * lookup, two if it straddles values, then loads inside them. */
VERIFIED_ONCE int line_find(const struct iomap_bpf_cfile *cf, const struct iomap_bpf_piece *p,
			    u32 q, struct found *fd)
{
	if (!cf || !p || !fd || !words_fit(cf) || p->count == 0 || q < p->first_key)
		return IOMAP_BPF_MAP_ERROR;
	u32 *probes = &fd->probes;
	s64 pred = predict(p->slope, p->intercept, q - p->first_key);
	s64 last = (s64)p->count - 1;
	u64 lo = clamp(pred - (s64)p->e_lo - 1, 0, last);
	u64 hi = clamp(pred + (s64)p->e_hi, 0, last);
	u64 base = lo & ~(u64)(IOMAP_BPF_COMPACT_BLOCK - 1);
	u64 at = p->off + (lo / IOMAP_BPF_COMPACT_BLOCK) * p->block;
	u64 head;
	if (hi / IOMAP_BPF_COMPACT_BLOCK != lo / IOMAP_BPF_COMPACT_BLOCK) {
		u64 next_at = p->off + (hi / IOMAP_BPF_COMPACT_BLOCK) * p->block;
		if (bytes_at(cf, next_at, &head, probes))
			return IOMAP_BPF_MAP_ERROR;
		if ((u32)head <= q) {
			base = hi & ~(u64)(IOMAP_BPF_COMPACT_BLOCK - 1);
			at = next_at;
		}
	}
	struct span sp;
	if (span_of(cf, at, (u64)p->block + 8, &sp, probes) || span_read(&sp, 0, &head))
		return IOMAP_BPF_MAP_ERROR;
	u32 key0 = (u32)head;
	if (q < key0)
		return IOMAP_BPF_MISSED;
	u32 kb = p->key_bytes == 2 ? 2 : 4;
	u64 qd = q - key0;
	/* Below the padding (all ones), so padding is never counted. */
	u64 pad = kb == 2 ? 0xffff : 0xffffffffULL;
	if (qd > pad - 1)
		qd = pad - 1;
	u64 s = lo > base ? lo - base : 0;
	if (s > IOMAP_BPF_COMPACT_BLOCK - IOMAP_BPF_COMPACT_WINDOW)
		s = IOMAP_BPF_COMPACT_BLOCK - IOMAP_BPF_COMPACT_WINDOW;
	long l = keys_at_most(&sp, kb, IOMAP_BPF_COMPACT_HEAD + s * kb, IOMAP_BPF_COMPACT_WINDOW, qd);
	if (l < 0 || l > IOMAP_BPF_COMPACT_WINDOW)
		return IOMAP_BPF_MAP_ERROR;
	/* No counted key at most q: the answer lies before the window (a wrong line). Slot s - 1
	 * was never compared with q, so it is not an answer either. */
	if (l == 0)
		return IOMAP_BPF_MISSED;
	u32 r = (u32)s + l - 1;
	u64 j = base + r;
	u64 k;
	if (key_of(&sp, kb, r, &k))
		return IOMAP_BPF_MAP_ERROR;
	/* Verify: start[j] <= q (a count of keys that are not sorted may point past it). */
	if (k > qd)
		return IOMAP_BPF_MISSED;
	u64 next = p->end_key == IOMAP_BPF_NO_KEY ? ~0ULL : p->end_key;
	if (j + 1 < p->count) {
		u64 n;
		if (r + 1 < IOMAP_BPF_COMPACT_BLOCK) {
			if (key_of(&sp, kb, r + 1, &n))
				return IOMAP_BPF_MAP_ERROR;
			next = (u32)(key0 + (u32)n);
		} else {
			u64 n_at = p->off + ((j + 1) / IOMAP_BPF_COMPACT_BLOCK) * p->block;
			if (bytes_at(cf, n_at, &n, probes))
				return IOMAP_BPF_MAP_ERROR;
			next = (u32)n;
		}
	}
	/* Verify: q < start[j + 1]. */
	if (next <= q)
		return IOMAP_BPF_MISSED;
	u64 d0, len, dd, flag = 0;
	if (span_read(&sp, 8, &d0))
		return IOMAP_BPF_MAP_ERROR;
	u64 bit = (u64)p->recs * 8 + (u64)r * p->wr;
	if (field_of(&sp, bit, p->wl, &len) || field_of(&sp, bit + p->wl, p->wd, &dd))
		return IOMAP_BPF_MAP_ERROR;
	if (p->unw == 2 && field_of(&sp, bit + p->wl + p->wd, 1, &flag))
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

/* A records line piece's answer for q, as the userspace RecLine::find: predict, clamp the
 * window to the piece, count the keys at most q among the WINDOW of its key column covering the
 * window (the whole column when it is shorter), verify, answer from the one record found. The
 * keys (and the one after them, for the verification) are one span, the record another: a WORDS
 * lookup each, two if it straddles values. */
VERIFIED_ONCE int records_find(const struct iomap_bpf_cfile *cf, const struct iomap_bpf_piece *p,
			       u32 q, struct found *fd)
{
	if (!cf || !p || !fd || !words_fit(cf) || p->count == 0 || q < p->first_key)
		return IOMAP_BPF_MAP_ERROR;
	/* The window is width + 1 slots: at most the WINDOW a line is fitted with (a wider one is
	 * an inconsistent map). */
	u64 width = (u64)p->e_lo + p->e_hi + 1;
	if (width + 1 > IOMAP_BPF_COMPACT_WINDOW)
		return IOMAP_BPF_MAP_ERROR;
	s64 pred = predict(p->slope, p->intercept, q - p->first_key);
	u64 count = p->count, last = count - 1;
	u64 lo = clamp(pred - (s64)p->e_lo - 1, 0, last);
	/* WINDOW slots from the window's first, moved back to end at the piece's end; they cover
	 * the window (width + 1 slots at most WINDOW). */
	u64 n = count < IOMAP_BPF_COMPACT_WINDOW ? count : IOMAP_BPF_COMPACT_WINDOW;
	u64 s = lo < count - n ? lo : count - n;
	/* The keys and 8 bytes more: the key after them (or, past the last key, the records, which
	 * follow the column and are never used as a key). */
	struct span sp;
	if (span_of(cf, (u64)p->off + s * 4, n * 4 + 8, &sp, &fd->probes))
		return IOMAP_BPF_MAP_ERROR;
	long l = keys_at_most(&sp, 4, 0, (u32)n, q);
	if (l < 0 || l > (long)n)
		return IOMAP_BPF_MAP_ERROR;
	/* No key at most q: the answer lies before the counted ones (a wrong line). */
	if (l == 0)
		return IOMAP_BPF_MISSED;
	u64 j = s + l - 1, start;
	if (key_at(&sp, 4, (u64)(l - 1) * 4, &start))
		return IOMAP_BPF_MAP_ERROR;
	/* Verify: start[j] <= q (a count of keys that are not sorted may point past it). */
	if (start > q)
		return IOMAP_BPF_MISSED;
	/* The record: length, then the physical start and flag, at `block` (the records' offset)
	 * + 12 j. */
	struct span rs;
	u64 head, pblk;
	if (span_of(cf, (u64)p->block + j * IOMAP_BPF_KEYED_RECORD, IOMAP_BPF_KEYED_RECORD, &rs,
		    &fd->probes) ||
	    span_read(&rs, 0, &head) || span_read(&rs, 4, &pblk))
		return IOMAP_BPF_MAP_ERROR;
	u32 len = (u32)head;
	fd->has = 1;
	fd->start = start;
	fd->end = start + len;
	fd->pblk = pblk & ~IOMAP_BPF_UNWRITTEN;
	fd->unwritten = (pblk & IOMAP_BPF_UNWRITTEN) != 0;
	/* Inside the extent: the answer, as userspace gives it without looking further. */
	if (q - start < len)
		return IOMAP_BPF_HANDLED;
	/* In the hole after it: verify q < start[j + 1]. */
	u64 next = p->end_key == IOMAP_BPF_NO_KEY ? ~0ULL : p->end_key;
	if (j < last) {
		if (key_at(&sp, 4, (u64)l * 4, &next))
			return IOMAP_BPF_MAP_ERROR;
	}
	if (next <= q)
		return IOMAP_BPF_MISSED;
	fd->next = next;
	return IOMAP_BPF_HANDLED;
}

/* The learned index's answer for block q of file cf. */
VERIFIED_ONCE int learned_find(const struct iomap_bpf_cfile *cf, u32 q, struct found *fd)
{
	if (!cf || !fd)
		return IOMAP_BPF_MAP_ERROR;
	if (cf->form == IOMAP_BPF_FORM_PLAIN)
		return plain_find(cf, q, fd);
	if (cf->form != IOMAP_BPF_FORM_PACKED)
		return IOMAP_BPF_MAP_ERROR;
	u32 at;
	/* Before the first extent: a hole, as the header's first_key and the first piece agree. */
	if (q < cf->first_key) {
		if (slot_of(cf->piece_first, cf->pieces, 0, &at))
			return IOMAP_BPF_MAP_ERROR;
		struct iomap_bpf_piece *p0 = bpf_map_lookup_elem(&PIECES, &at);
		if (!p0)
			return IOMAP_BPF_MAP_ERROR;
		fd->probes++;
		if (p0->first_key <= q)
			return IOMAP_BPF_MISSED;
		fd->has = 0;
		fd->next = p0->first_key;
		return IOMAP_BPF_HANDLED;
	}
	long idx = piece_of(cf, q, fd);
	if (idx < 0 || slot_of(cf->piece_first, cf->pieces, (u64)idx, &at))
		return IOMAP_BPF_MAP_ERROR;
	struct iomap_bpf_piece *p = bpf_map_lookup_elem(&PIECES, &at);
	if (!p)
		return IOMAP_BPF_MAP_ERROR;
	if (p->kind == IOMAP_BPF_PIECE_LINE)
		return line_find(cf, p, q, fd);
	if (p->kind == IOMAP_BPF_PIECE_RECORDS)
		return records_find(cf, p, q, fd);
	/* A run holds first_key <= q < end_key, as every piece does. */
	if (p->kind != IOMAP_BPF_PIECE_RUN || p->step == 0 || p->count == 0 || q < p->first_key ||
	    (p->end_key != IOMAP_BPF_NO_KEY && q >= p->end_key))
		return IOMAP_BPF_MAP_ERROR;
	/* A run: arithmetic alone. */
	u32 i = (q - p->first_key) / p->step;
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

/* ---- The query ---- */

/* The answer before a lookup: no mapping, NO_MODEL (what a run that looks nothing up leaves). */
static __always_inline void answer_nothing(const struct iomap_bpf_query *qr,
					   struct iomap_bpf_answer *a)
{
	a->offset = qr->pos;
	a->length = 0;
	a->addr = IOMAP_BPF_NULL_ADDR;
	a->type = IOMAP_BPF_HOLE;
	a->probes = 0;
	a->status = IOMAP_BPF_NO_MODEL;
}

/* The file's header, NULL if it has none. By inode: an inode past 2^32 - 1 must not be cut
 * to another file's slot, and a slot of form 0 is empty (or being written: the loader clears
 * form, waits for a grace period, writes the other fields, waits again, then sets form, so a
 * lookup that finds a nonzero form reads one header whole). */
static __always_inline struct iomap_bpf_cfile *header_of(u64 ino)
{
	if (headers_by_ino) {
		if (ino > 0xffffffffULL)
			return NULL;
		u32 k = (u32)ino;
		struct iomap_bpf_cfile *cf = bpf_map_lookup_elem(&CFILES_BY_INO, &k);
		if (!cf || cf->form == 0)
			return NULL;
		return cf;
	}
	return bpf_map_lookup_elem(&CFILES, &ino);
}

/* Answers one query into *a: the mapping from pos to the end of its extent or hole, clipped
 * to pos + count and, for reads, to i_size (predictor::Request::mapping), or a fallback
 * status. A report query (IOMAP_BPF_OP_REPORT) is answered past i_size too. Returns 0, or -1
 * if either pointer is NULL. */
VERIFIED_ONCE int answer(const struct iomap_bpf_query *qr, struct iomap_bpf_answer *a)
{
	if (!qr || !a)
		return -1;
	answer_nothing(qr, a);
	struct iomap_bpf_cfile *cf = header_of(qr->ino);
	if (!cf)
		return 0;
	u64 size = cf->size;
	u32 blkbits = cf->blkbits;
	u64 pos = qr->pos, count = qr->count;
	/* Where the mapping stops: i_size for reads, nowhere for reports. */
	u64 limit = (qr->opflags & IOMAP_BPF_OP_REPORT) ? ~0ULL : size;
	u32 bits = blkbits & 31;
	u64 lblk = pos >> bits;
	if (count == 0 || pos >= limit || lblk > 0xffffffffULL) {
		a->status = IOMAP_BPF_BAD_QUERY;
		return 0;
	}
	u32 q = (u32)lblk;
	struct found fd = {};
	int st = learned_find(cf, q, &fd);
	a->probes = fd.probes;
	if (st != IOMAP_BPF_HANDLED) {
		a->status = st;
		return 0;
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
	a->status = IOMAP_BPF_HANDLED;
	return 0;
}

#endif
