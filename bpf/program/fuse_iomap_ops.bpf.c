// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF tier as fuse-iomap would run it: the lookup of iomap_lookup.h as the iomap_begin hook
 * of the posted patches' fuse_iomap_bpf_ops (see fuse_iomap_ops.h), so a kernel carrying them
 * answers mappings from the learned (or compact) index without an upcall. Mainline cannot load
 * this object (it has neither the struct_ops type nor the kfunc); CI builds it
 * (scripts/build-bpf.sh --check) so the source keeps compiling against that interface.
 *
 * To try it on such a kernel: open the object with libbpf, set the struct_ops map's `fuse_fd`
 * to the server's /dev/fuse descriptor and `iomap_dev` (rodata) to the device cookie the server
 * registered the image under, fill CFILES, PIECES, CBUCKETS and WORDS as bpf/src/tier.rs does,
 * load, and attach the struct_ops link. Whatever the program
 * cannot answer (no model, a miss, a query that would write) falls back to the server.
 */
#include "iomap_lookup.h"
#include "fuse_iomap_ops.h"

#include <bpf/bpf_tracing.h>

/* The device cookie of the image the mappings point into. */
const volatile __u32 iomap_dev = FUSE_IOMAP_DEV_NULL;

SEC("struct_ops/iomap_begin")
enum fuse_iomap_bpf_ret BPF_PROG(predictor_iomap_begin, struct fuse_bpf_inode *fbi, __u64 pos,
				 __u64 count, __u32 opflags, struct fuse_iomap_begin_out *outarg)
{
	if (opflags & IOMAP_BPF_OP_WRITING)
		return FIB_FALLBACK;
	struct iomap_bpf_query q = {
		.opflags = opflags,
		.ino = fuse_bpf_inode_orig_ino(fbi),
		.pos = pos,
		.count = count,
	};
	struct iomap_bpf_answer a = {};
	answer(&q, &a);
	if (a.status != IOMAP_BPF_HANDLED)
		return FIB_FALLBACK;
	outarg->read.offset = a.offset;
	outarg->read.length = a.length;
	outarg->read.addr = a.addr;
	outarg->read.type = a.type;
	outarg->read.flags = 0;
	outarg->read.dev = a.type == IOMAP_BPF_HOLE ? FUSE_IOMAP_DEV_NULL : iomap_dev;
	outarg->write.offset = a.offset;
	outarg->write.length = a.length;
	outarg->write.addr = IOMAP_BPF_NULL_ADDR;
	outarg->write.type = FUSE_IOMAP_TYPE_PURE_OVERWRITE;
	outarg->write.flags = 0;
	outarg->write.dev = FUSE_IOMAP_DEV_NULL;
	return FIB_HANDLED;
}

SEC(".struct_ops.link")
struct fuse_iomap_bpf_ops iomap_predictor_ops = {
	.iomap_begin = (void *)predictor_iomap_begin,
	.name = "iomap_predictor",
};

char LICENSE[] SEC("license") = "Dual MIT/GPL";
