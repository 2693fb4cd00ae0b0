// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The BPF interface of the posted fuse-iomap patches, as this program uses it, declared here
 * from reading the series (no kernel or libfuse header is copied):
 *
 * - "fuse: enable fuse servers to upload BPF programs to handle iomap requests" and the
 *   opaque-inode follow-up, Darrick J. Wong, linux-fsdevel, 23 Feb 2026
 *   (lore.kernel.org/linux-fsdevel/177188736816.3938194.8820121397606069778.stgit@frogsfrogsfrogs):
 *   struct_ops `fuse_iomap_bpf_ops` with an `iomap_begin` hook taking the inode (opaque), pos,
 *   count, opflags and the reply to fill, returning FALLBACK (ask the server) or HANDLED; the
 *   kfunc `fuse_bpf_inode_orig_ino` giving the inode number the server reported;
 * - the fuse-iomap uapi of the same series (`struct fuse_iomap_io`, `fuse_iomap_begin_out`
 *   with the read mapping first, then the write mapping) and libfuse's iomap constants
 *   (`FUSE_IOMAP_TYPE_PURE_OVERWRITE` 255, `FUSE_IOMAP_DEV_NULL` 0).
 *
 * Only what fuse_iomap_ops.bpf.c needs is declared; libbpf matches struct_ops members by name
 * against the running kernel's BTF, so the order and the members left out do not matter there.
 * If the series changes, this file is the one place to follow it.
 */
#ifndef FUSE_IOMAP_OPS_H
#define FUSE_IOMAP_OPS_H

#include <linux/types.h>

/* What the hook did: FALLBACK sends the request to the server as if there were no hook. */
enum fuse_iomap_bpf_ret {
	FIB_FALLBACK = 0,
	FIB_HANDLED = 1,
};

/* The kernel's FUSE inode, opaque to BPF programs. */
struct fuse_bpf_inode;

/* One mapping: the 32-byte record predictor::FuseIomapIo lays out for userspace. */
struct fuse_iomap_io {
	__u64 offset; /* file offset of the mapping, bytes */
	__u64 length; /* bytes */
	__u64 addr;   /* device offset, bytes; ~0 (no address) for holes */
	__u16 type;   /* FUSE_IOMAP_TYPE_* (HOLE 0, MAPPED 2, UNWRITTEN 3, as IOMAP_BPF_*) */
	__u16 flags;  /* FUSE_IOMAP_F_* */
	__u32 dev;    /* device cookie the server registered, FUSE_IOMAP_DEV_NULL for none */
};

/* iomap_begin's reply: where to read from, and where writes go. */
struct fuse_iomap_begin_out {
	struct fuse_iomap_io read;
	struct fuse_iomap_io write;
};

/* The write mapping is the read mapping (nothing to allocate or copy). */
#define FUSE_IOMAP_TYPE_PURE_OVERWRITE 255
#define FUSE_IOMAP_DEV_NULL 0U

/* The hooks a FUSE server registers on its connection (`fuse_fd`, its /dev/fuse descriptor,
 * set by the loader before loading). Only iomap_begin is used here. */
struct fuse_iomap_bpf_ops {
	enum fuse_iomap_bpf_ret (*iomap_begin)(struct fuse_bpf_inode *fbi, __u64 pos, __u64 count,
					       __u32 opflags, struct fuse_iomap_begin_out *outarg);
	int fuse_fd;
	char name[16];
};

/* The inode number the server gave the kernel for this inode (its `attr.ino`): for our
 * server, the ext4 inode number, the key of CFILES. */
extern __u64 fuse_bpf_inode_orig_ino(const struct fuse_bpf_inode *fbi) __ksym;

#endif
