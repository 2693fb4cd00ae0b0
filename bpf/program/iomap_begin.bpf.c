// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF tier as the loader runs it: the lookup of iomap_lookup.h in an XDP program driven by
 * BPF_PROG_TEST_RUN (real in-kernel execution, verified and JIT-compiled): the packet names a
 * range of QUERIES slots, and the program writes one ANSWERS slot per query. XDP because its
 * test run takes `repeat` and reports the kernel-measured duration. Mainline has no
 * fuse_iomap_bpf_ops struct_ops to attach the lookup to; fuse_iomap_ops.bpf.c attaches it there
 * for kernels with the posted fuse-iomap patches.
 *
 * Rebuild with scripts/build-bpf.sh (CI checks the committed object matches this source).
 */
#include "iomap_lookup.h"

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

/* Answers QUERIES[slot] into ANSWERS[slot]; 1 if the slot is outside the maps. */
static __always_inline int answer_slot(u32 slot, u32 flags)
{
	struct iomap_bpf_query *qr = bpf_map_lookup_elem(&QUERIES, &slot);
	struct iomap_bpf_answer *a = bpf_map_lookup_elem(&ANSWERS, &slot);
	if (!qr || !a)
		return 1;
	if (flags & IOMAP_BPF_RUN_NOOP) {
		/* The harness alone: the query read, an empty answer written. */
		answer_nothing(qr, a);
		return 0;
	}
	return answer(qr, a) ? 1 : 0;
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
