// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF tier: fuse-iomap's iomap_begin(nodeid, pos, count) answered in the kernel by the
 * file's learned model, with the same fixed-point arithmetic, window and verification as the
 * userspace learned index (predictor/src/index/learned.rs), so both give the same mapping.
 *
 * Mainline has no fuse_iomap_bpf_ops struct_ops to attach this to, so it is an XDP program run
 * by BPF_PROG_TEST_RUN (real in-kernel execution, verified and JIT-compiled): the packet names
 * a range of QUERIES slots, and the program writes one ANSWERS slot per query. XDP because its
 * test run takes `repeat` and reports the kernel-measured duration.
 *
 * Rebuild with scripts/build-bpf.sh (CI checks the committed object matches this source).
 */
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_query);
	__uint(max_entries, 1);
} QUERIES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct iomap_bpf_answer);
	__uint(max_entries, 1);
} ANSWERS SEC(".maps");

/* Runs so far on this CPU: rotates the query slot in latency runs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u32);
	__uint(max_entries, 1);
} RUNS SEC(".maps");

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
	if (!f) {
		fall_back(a, IOMAP_BPF_NO_MODEL, probes);
		return;
	}
	u64 pos = qr->pos, count = qr->count;
	/* Where the mapping stops: i_size for reads, nowhere for reports. */
	u64 limit = (qr->opflags & IOMAP_BPF_OP_REPORT) ? ~0ULL : f->size;
	u32 bits = f->blkbits & 31;
	u64 lblk = pos >> bits;
	if (count == 0 || pos >= limit || lblk > 0xffffffffULL || f->ext_count == 0) {
		fall_back(a, IOMAP_BPF_BAD_QUERY, probes);
		return;
	}
	u32 q = (u32)lblk;

	/* The file's first extent: a block before it is in the hole that extent ends. */
	u32 at = f->ext_first;
	struct iomap_bpf_extent *e = bpf_map_lookup_elem(&EXTENTS, &at);
	if (!e) {
		fall_back(a, IOMAP_BPF_MAP_ERROR, probes);
		return;
	}
	probes++;
	u64 run_end; /* end in bytes of the extent or hole holding pos */
	if (q < e->lblk) {
		run_end = (u64)e->lblk << bits;
	} else {
		u32 lo = 0, hi = f->ext_count - 1;
		if (!(flags & IOMAP_BPF_RUN_FULL_SEARCH)) {
			int st = model_window(f, q, &lo, &hi, &probes);
			if (st != IOMAP_BPF_HANDLED) {
				fall_back(a, st, probes);
				return;
			}
		}
		int err = 0;
		u32 below = extent_upper_bound(f->ext_first, lo, hi + 1, q, &probes, &err) - lo;
		if (err) {
			fall_back(a, IOMAP_BPF_MAP_ERROR, probes);
			return;
		}
		/* Verify: extent j starts at or before q, and the next one (if any) after q. */
		if (below == 0) {
			fall_back(a, IOMAP_BPF_MISSED, probes);
			return;
		}
		u32 j = lo + below - 1;
		u64 next_start = ~0ULL; /* no next extent: the hole after the last one is unbounded */
		if (j + 1 < f->ext_count) {
			at = f->ext_first + j + 1;
			struct iomap_bpf_extent *n = bpf_map_lookup_elem(&EXTENTS, &at);
			if (!n) {
				fall_back(a, IOMAP_BPF_MAP_ERROR, probes);
				return;
			}
			probes++;
			if (n->lblk <= q) {
				fall_back(a, IOMAP_BPF_MISSED, probes);
				return;
			}
			next_start = (u64)n->lblk << bits;
		}
		at = f->ext_first + j;
		e = bpf_map_lookup_elem(&EXTENTS, &at);
		if (!e) {
			fall_back(a, IOMAP_BPF_MAP_ERROR, probes);
			return;
		}
		u64 start = e->lblk, end = start + e->len;
		if (q < end) {
			/* Mapped (or unwritten): the loader checked (pblk + len) << bits fits 64 bits. */
			u64 pblk = e->pblk & ~IOMAP_BPF_UNWRITTEN;
			a->addr = (pblk << bits) + (pos - (start << bits));
			a->type = (e->pblk & IOMAP_BPF_UNWRITTEN) ? IOMAP_BPF_UNWRITTEN_TYPE
								  : IOMAP_BPF_MAPPED;
			run_end = end << bits;
		} else {
			run_end = next_start;
		}
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

static __always_inline int answer_slot(u32 slot, u32 flags)
{
	struct iomap_bpf_query *qr = bpf_map_lookup_elem(&QUERIES, &slot);
	struct iomap_bpf_answer *a = bpf_map_lookup_elem(&ANSWERS, &slot);
	if (!qr || !a)
		return 1;
	answer(qr, a, flags);
	return 0;
}

struct loop_ctx {
	u32 base;
	u32 flags;
};

static long answer_nth(u32 i, void *data)
{
	struct loop_ctx *c = data;
	return answer_slot(c->base + i, c->flags);
}

SEC("xdp")
int iomap_begin(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct iomap_bpf_run *run = data;
	if ((void *)(run + 1) > data_end)
		return XDP_ABORTED;
	struct loop_ctx c = { .base = run->first, .flags = run->flags };
	u32 n = run->n;
	if (run->mask) {
		u32 zero = 0;
		u32 *runs = bpf_map_lookup_elem(&RUNS, &zero);
		if (!runs)
			return XDP_ABORTED;
		c.base += *runs & run->mask;
		*runs += 1;
	}
	/* One query (an iomap_begin call) without the loop helper; batches through bpf_loop,
	 * which the verifier checks once whatever n is. */
	if (n == 1)
		return answer_slot(c.base, c.flags) ? XDP_ABORTED : XDP_PASS;
	if (bpf_loop(n, answer_nth, &c, 0) < 0)
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
