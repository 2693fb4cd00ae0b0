/* The BPF tier's data layout, shared by the program (iomap_lookup.h and its two entry points)
 * and the loader (bpf/src/abi.rs mirrors every struct with #[repr(C)]; bpf/tests/abi_layout.rs
 * compares every member's offset with the object's BTF).
 *
 * Every array-map element is a multiple of 8 bytes: the kernel rounds array elements up to 8,
 * and the loader writes the arrays through mmap (BPF_F_MMAPABLE), so the element size must be
 * the stride. All indices are u32 (array maps are u32-indexed); all arithmetic is integer.
 */
#ifndef IOMAP_BEGIN_H
#define IOMAP_BEGIN_H

#include <linux/types.h>

/* One extent as a 16-byte record, like an XFS in-core record: the records of a small file's
 * plain array, little-endian in WORDS (predictor::RECORD_BYTES). A records line piece keeps the
 * same extent as a key (lblk, in its key column) and a 12-byte record (len, then pblk with the
 * flag; predictor::KEYED_RECORD_BYTES). */
#define IOMAP_BPF_UNWRITTEN (1ULL << 63)
#define IOMAP_BPF_RECORD 16
#define IOMAP_BPF_KEYED_RECORD 12
struct iomap_bpf_extent {
	__u32 lblk;  /* first logical block */
	__u32 len;   /* blocks */
	__u64 pblk;  /* first physical block (< 2^48), IOMAP_BPF_UNWRITTEN if never written */
};

/* The learned index (predictor's LearnedIndex, index/learned/), in either storage: CFILES,
 * PIECES, CBUCKETS and WORDS hold the same pieces, directory and stored extents (packed blocks,
 * or key columns beside 12-byte records) the userspace lookup reads. */
#define IOMAP_BPF_COMPACT_BLOCK 64  /* extents per packed block (learned::BLOCK) */
#define IOMAP_BPF_COMPACT_WINDOW 32 /* slots a window may take (learned::WINDOW) */
#define IOMAP_BPF_COMPACT_HEAD 16   /* bytes of a block header (learned::BLOCK_HEADER_BYTES) */
#define IOMAP_BPF_NO_KEY 0xffffffffU /* end_key of a file's last piece */

/* WORDS holds every file's bytes as one run of 8-byte words, IOMAP_BPF_WORDS_VALUE of them
 * (4 KiB) a map value: one lookup reaches a whole packed block or a window of keys (two
 * when it straddles two values), which the program then reads with loads inside the value. */
#define IOMAP_BPF_WORDS_VALUE 512
struct iomap_bpf_words {
	__u64 w[IOMAP_BPF_WORDS_VALUE];
};

#define IOMAP_BPF_FORM_PLAIN 1  /* struct iomap_bpf_extent records in WORDS, searched whole */
#define IOMAP_BPF_FORM_PACKED 2 /* pieces (over packed blocks, records, or none: runs) */

/* CFILES (hash, key: inode number as u64): a file's learned index. */
struct iomap_bpf_cfile {
	__u64 size;         /* i_size in bytes */
	__u32 word_first;   /* the file's bytes start at this word of WORDS */
	__u32 words;        /* and take this many words: every read stays inside them */
	__u32 blkbits;      /* log2(block size), 10..16 */
	__u32 form;         /* IOMAP_BPF_FORM_* */
	__u32 count;        /* PLAIN: extents (>= 1) */
	__u32 first_key;    /* PACKED: start of the first extent; buckets count from here */
	__u32 shift;        /* PACKED: bits dropped from q - first_key to get a bucket */
	__u32 bucket_first; /* PACKED: the file's first bucket in CBUCKETS */
	__u32 buckets;      /* PACKED: buckets (>= 1) */
	__u32 piece_first;  /* PACKED: the file's first piece in PIECES */
	__u32 pieces;       /* PACKED: pieces (>= 1) */
	__u32 pad;
};

/* PIECES (array): an arithmetic run, a line over packed blocks or a line over records
 * (learned::PieceLayout). A piece answers first_key <= q < end_key. */
#define IOMAP_BPF_PIECE_RUN 0
#define IOMAP_BPF_PIECE_LINE 1
#define IOMAP_BPF_PIECE_RECORDS 2
struct iomap_bpf_piece {
	__u32 first_key;
	__u32 end_key;   /* IOMAP_BPF_NO_KEY for the last piece */
	__u32 kind;      /* IOMAP_BPF_PIECE_* */
	__u32 count;     /* extents */
	__u64 slope;     /* LINE, RECORDS: the fixed-point line, predicting the piece-local index */
	__s64 intercept;
	__u32 e_lo;
	__u32 e_hi;
	__u32 off;       /* LINE: byte offset of the first block in the file's bytes; RECORDS: of
			  * the key column (count u32 logical starts) */
	__u32 block;     /* LINE: bytes of a block; RECORDS: byte offset of the records (12 bytes
			  * each: len u32, pblk | IOMAP_BPF_UNWRITTEN u64) */
	__u16 recs;      /* LINE: byte offset of the record column in a block */
	__u8 key_bytes;  /* LINE: 2 or 4 (unused slots: all ones) */
	__u8 wl;         /* LINE: bits of a record's length excess, */
	__u8 wd;         /*       physical excess, */
	__u8 wr;         /*       and whole record */
	__u8 unw;        /* LINE: 0 none unwritten, 1 all, 2 a bit per record; RUN: 0 or 1 */
	__u8 phys;       /* LINE: the physical field is pblk (1) or pblk - lblk (0) */
	__u32 step;      /* RUN: logical step */
	__u32 len;       /* RUN: every extent's length */
	__u64 pblk;      /* RUN: first extent's physical block */
	__u64 pstep;     /* RUN: physical step (wrapping) */
};

/* CBUCKETS (array): per directory bucket, the piece holding the bucket's first block
 * (relative to the file). */
struct iomap_bpf_cbucket {
	__u32 piece;
	__u32 pad;
};

/* WORDS (array of struct iomap_bpf_words): every file's bytes, little-endian, 8 to a word; a
 * file's words are word_first.. of the run of all values' words. */

/* QUERIES (array): one iomap_begin call, laid out as fuse_iomap_begin_in. */
struct iomap_bpf_query {
	__u32 opflags;  /* FUSE_IOMAP_OP_*: only REPORT changes a read-only answer */
	__u32 reserved;
	__u64 ino;
	__u64 pos;
	__u64 count;
};

/* FUSE_IOMAP_OP_REPORT (FIEMAP, SEEK_DATA/SEEK_HOLE): map past i_size too. Without it (reads)
 * a pos at or past i_size falls back and mappings stop at i_size. */
#define IOMAP_BPF_OP_REPORT (1U << 2)
/* The FUSE_IOMAP_OP_* bits asking for a writable mapping (WRITE, ZERO, OVERWRITE_ONLY,
 * UNSHARE, ATOMIC): a read-only server leaves them to its upcall, which refuses them. */
#define IOMAP_BPF_OP_WRITING ((1U << 0) | (1U << 1) | (1U << 6) | (1U << 7) | (1U << 9))

/* ANSWERS (array): the mapping (fuse_iomap_io's fields) or why the program fell back. */
struct iomap_bpf_answer {
	__u64 offset;
	__u64 length;
	__u64 addr;    /* IOMAP_BPF_NULL_ADDR for holes */
	__u16 type;    /* IOMAP_HOLE 0, IOMAP_MAPPED 2, IOMAP_UNWRITTEN 3 */
	__u16 status;  /* enum iomap_bpf_status */
	__u32 probes;  /* map reads */
};

#define IOMAP_BPF_NULL_ADDR (~0ULL)
#define IOMAP_BPF_HOLE 0
#define IOMAP_BPF_MAPPED 2
#define IOMAP_BPF_UNWRITTEN_TYPE 3

/* What the program did with a query: HANDLED, or the reason for FALLBACK. */
enum iomap_bpf_status {
	IOMAP_BPF_HANDLED = 0,
	IOMAP_BPF_NO_MODEL = 1,   /* inode not in CFILES */
	IOMAP_BPF_BAD_QUERY = 2,  /* count 0, a read at or past EOF, block beyond 2^32 - 1 */
	/* 3 was a window over the old layout's bound: no longer given. */
	IOMAP_BPF_MISSED = 4,     /* candidate failed verification */
	IOMAP_BPF_MAP_ERROR = 5,  /* inconsistent maps: an index outside the file's own slots or
				   * a map, a range wrapping past 2^32, a count of zero, a piece
				   * not holding the block */
	IOMAP_BPF_NOT_RUN = 0xffff, /* written by the loader before a run; never by the program */
};

/* The packet of one BPF_PROG_TEST_RUN: which queries to answer. */
struct iomap_bpf_run {
	__u32 first; /* first QUERIES slot */
	__u32 n;     /* queries to answer, from first (+ rotation) */
	__u32 mask;  /* rotation: start at first + (per-CPU run counter & mask); 0 = none */
	__u32 flags; /* IOMAP_BPF_RUN_* */
};

#define IOMAP_BPF_RUN_NOOP 1 /* read the query, write an empty answer: run overhead */

#endif
