#!/usr/bin/env bash
# Fuzzes the ext4 reader, the model-pack reader and the trace readers with cargo-fuzz (libFuzzer, nightly) for a
# bounded time per target, then prints execs and coverage per target. Not part of `cargo test`;
# a crash it finds becomes a regression test in the crate whose reader it broke.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default 150 s, all seven targets
#
# With JSON=FILE, each target's result is also appended to FILE as one JSON object (target,
# seconds, execs, cov, ft, corpus, artifacts, exit): what `scripts/results.sh` collects.
#
# Seeds are generated here into fuzz/work/ and fuzz/corpus/ (git-ignored), never committed:
#   superblock   the e2fsprogs corpus images (gunzipped, cut to 1 MiB; libFuzzer reads the
#                first max_len = 256 KiB) and small mkfs images
#   extent_tree  /frag's i_block + leaf blocks from the template image (below)
#   directory    /dir's block + /hdir's dx root from the template image
#   pack         model packs written by `training fit` for the small images
#   trace_rows   random rows (the target decodes any bytes as trace rows)
#   trace_file   the committed real traces (testdata/traces, Parquet)
#   structures   random bytes (the target decodes any bytes as an extent map and queries)
# The template image (fuzz/work/template.img: 4 MiB, 1 KiB blocks, no metadata_csum so patched
# bytes reach the parsers) is what the extent_tree and directory targets patch with fuzz bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-150}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(superblock extent_tree directory pack trace_rows trace_file structures)
CORPUS_SRC=${IOMAP_CORPUS:-testdata/e2fsprogs}
WORK=fuzz/work
JOBS=${FUZZ_JOBS:-1}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || bash scripts/install-deps.sh

mkdir -p "$WORK" fuzz/artifacts
for t in "${TARGETS[@]}"; do mkdir -p "fuzz/corpus/$t"; done

# --- seed images -------------------------------------------------------------------------
# mkimg NAME SIZE_KIB MKFS_OPTS...: a small image with a few files written by debugfs.
mkimg() {
    local name=$1 size=$2
    shift 2
    local img="$WORK/$name.img"
    [ -s "$img" ] && return 0
    rm -f "$img"
    mkfs.ext4 -q -F -b 1024 -O ^has_journal "$@" "$img" "${size}K" >/dev/null
    head -c 300000 /dev/urandom >"$WORK/data.bin"
    head -c 70 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/long.txt"
    {
        echo "write $WORK/data.bin frag"
        # Punch every other block: ~150 extents, a depth-1 extent tree with 1 KiB blocks.
        for b in $(seq 0 2 292); do echo "punch frag $b $b"; done
        echo "write $WORK/data.bin big"
        echo "write /dev/null empty"
        echo "mkdir dir"
        for i in 1 2 3 4 5; do echo "write /dev/null dir/f$i"; done
        echo "symlink dir/fast /big"
        echo "symlink dir/slow /$(cat "$WORK/long.txt")/x"
        echo "mkdir hdir"
        for i in $(seq -w 1 400); do echo "write /dev/null hdir/f0$i"; done
    } >"$WORK/$name.debugfs"
    debugfs -w -f "$WORK/$name.debugfs" "$img" >/dev/null 2>&1
    # Index the big directory (htree) and make the image consistent.
    e2fsck -fyD "$img" >/dev/null 2>&1 || true
}
mkimg template 4096 -O ^metadata_csum
mkimg csum 2048
mkimg ext2 1024 -t ext2 -O ^dir_index
mkimg noextent 2048 -O ^extent,^64bit,^metadata_csum

# --- seed corpora --------------------------------------------------------------------------
cut_to() { head -c "$2" "$1"; }
for t in "${TARGETS[@]}"; do
    c="fuzz/corpus/$t"
    case $t in
        superblock)
            for img in "$WORK"/{template,csum,ext2,noextent}.img; do
                cut_to "$img" 1048576 >"$c/mk-$(basename "$img")"
            done
            if [ -d "$CORPUS_SRC" ]; then
                for gz in "$CORPUS_SRC"/*.img.gz; do
                    out="$c/e2fs-$(basename "$gz" .gz)"
                    [ -s "$out" ] || { gunzip -c "$gz" | head -c 1048576 >"$out"; } || true
                done
            fi
            ;;
        extent_tree)
            # /frag's i_block then its leaves, as the target lays them out.
            python3 - "$WORK/template.img" "$c/seed-frag" <<'PY'
import struct, subprocess, sys
img, out = sys.argv[1], sys.argv[2]
data = open(img, 'rb').read()
imap = subprocess.run(['debugfs', '-R', 'imap /frag', img], capture_output=True, text=True).stdout
blk = int(imap.split('located at block ')[1].split(',')[0])
off = int(imap.split('offset ')[1].split()[0], 16)
base = blk * 1024 + off + 40
ib = data[base:base + 60]
seed = bytearray(ib)
for i in range(struct.unpack_from('<H', ib, 2)[0]):
    lo, hi = struct.unpack_from('<IH', ib, 12 + 12 * i + 4)
    leaf = (hi << 32 | lo) * 1024
    seed += data[leaf:leaf + 1024]
open(out, 'wb').write(seed)
PY
            ;;
        directory)
            python3 - "$WORK/template.img" "$c/seed-dirs" <<'PY'
import subprocess, sys
img, out = sys.argv[1], sys.argv[2]
data = open(img, 'rb').read()
seed = b''
for d in ('/dir', '/hdir'):
    bm = subprocess.run(['debugfs', '-R', f'bmap {d} 0', img], capture_output=True, text=True).stdout
    b = int(bm.split()[0])
    seed += data[b * 1024:(b + 1) * 1024]
open(out, 'wb').write(seed)
PY
            ;;
        pack)
            for img in "$WORK"/{template,csum,ext2,noextent}.img; do
                p="$c/$(basename "$img" .img).pack"
                [ -s "$p" ] || cargo run -q -p training -- fit "$img" -o "$p" \
                    --max-window 4 >/dev/null 2>&1 || echo "fit failed for $img"
            done
            ;;
        trace_file)
            cp testdata/traces/*.parquet "$c/"
            ;;
        trace_rows | structures)
            [ -s "$c/seed-random" ] || head -c 2000 /dev/urandom >"$c/seed-random"
            ;;
    esac
done

# --- run -----------------------------------------------------------------------------------
declare -A MAXLEN=([superblock]=262144 [extent_tree]=8192 [directory]=2048 [pack]=65536 [trace_rows]=8192 [trace_file]=65536 [structures]=8192)
export IOMAP_FUZZ_TEMPLATE="$PWD/$WORK/template.img"
for t in "${TARGETS[@]}"; do cargo +nightly fuzz build -O "$t" >&2; done
summary=""
for t in "${TARGETS[@]}"; do
    log="$WORK/$t.log"
    echo "== $t: ${SECS}s" >&2
    PAR=()
    [ "$JOBS" -gt 1 ] && PAR=(-fork="$JOBS")
    set +e
    cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="${MAXLEN[$t]}" -timeout=10 \
        -print_final_stats=1 "${PAR[@]}" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
    cov=$(grep -ho 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -ho 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    units=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
    line="$t: execs=$execs cov=${cov:-?} ft=${ft:-?} corpus=$units artifacts=$crashes exit=$rc (log $log)"
    echo "$line" >&2
    summary+="$line"$'\n'
    if [ -n "${JSON:-}" ]; then
        printf '{"target":"%s","seconds":%s,"execs":%s,"cov":%s,"ft":%s,"corpus":%s,"artifacts":%s,"exit":%s}\n' \
            "$t" "$SECS" "${execs:-0}" "${cov:-null}" "${ft:-null}" "$units" "$crashes" "$rc" >>"$JSON"
    fi
done
echo "== summary (${SECS}s per target)"
printf '%s' "$summary"
