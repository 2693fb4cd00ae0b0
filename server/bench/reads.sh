#!/usr/bin/env bash
# Random and sequential 4 KiB reads of one file through: the kernel's ext4 (loop, ro), fuse2fs
# (-o ro), and `server mount` with the ondisk, btree, learned and bpf tiers (TIERS="..." to
# choose). fio, O_DIRECT on the
# mounted file (every read reaches the file system, none is served from the mount's page cache);
# the image file itself is read into the host page cache first, so every path reads warm
# bytes and the differences are the mapping and FUSE paths. Not pinned to CPUs unless
# PIN=same (server / fuse2fs and fio all on CPU 0) or PIN=split (server on CPU 0, fio on CPU 1).
# With JSON=FILE, each fio run also appends one JSON object (path, rw, jobs, pin, seconds, iops,
# p50_us, p99_us) to FILE: what `scripts/results.sh` collects for the README.
#
#   bash server/bench/reads.sh IMAGE PATH-IN-IMAGE PACK [SECONDS] [JOBS...]
#   e.g. bash server/bench/reads.sh demo-punched-4k.img /punched-100k punched.pack 8 1 4
#
# Needs root, fio, fuse2fs, and a release build: cargo build --release -p server.
set -euo pipefail
IMAGE=$(realpath "$1"); FILE=${2#/}; PACK=$(realpath "$3"); SECS=${4:-8}; shift $(( $# < 4 ? $# : 4 ))
JOBS=("${@:-1}")
SERVER=${SERVER:-${CARGO_TARGET_DIR:-$(dirname "$0")/../../target}/release/server}
WORK=$(mktemp -d); MNT=$WORK/mnt; mkdir -p "$MNT"
PIN_SERVER=(); PIN_FIO=()
case "${PIN:-}" in
  same) PIN_SERVER=(taskset -c 0); PIN_FIO=(taskset -c 0) ;;
  split) PIN_SERVER=(taskset -c 0); PIN_FIO=(taskset -c 1) ;;
esac
cleanup() { umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_mounted() {
  for _ in $(seq 200); do mountpoint -q "$MNT" && return 0; sleep 0.05; done
  echo "mount did not appear" >&2; return 1
}

SUMMARY=$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)["jobs"][0]["read"]
label, rw, jobs, pin, secs, out = sys.argv[1:]
lat = r["clat_ns"]["percentile"]
p50, p99 = lat["50.000000"] / 1000, lat["99.000000"] / 1000
print(f"{label:22} {rw:9} jobs={jobs}  {r['iops']:9.0f} IOPS  {r['bw'] / 1024:7.1f} MiB/s  "
      f"p50 {p50:6.1f} us  p99 {p99:6.1f} us")
if out:
    with open(out, "a") as f:
        f.write(json.dumps({"path": label, "rw": rw, "jobs": int(jobs), "pin": pin or "none",
                            "seconds": float(secs), "iops": r["iops"], "p50_us": p50,
                            "p99_us": p99}) + "\n")
PY
)

run_fio() { # label
  for rw in randread read; do
    for j in "${JOBS[@]}"; do
      out=$("${PIN_FIO[@]}" fio --name=r --filename="$MNT/$FILE" --rw=$rw --bs=4k --direct=1 \
        --ioengine=psync --runtime="$SECS" --time_based --numjobs="$j" --group_reporting \
        --output-format=json)
      python3 -c "$SUMMARY" "$1" "$rw" "$j" "${PIN:-}" "$SECS" "${JSON:-}" <<<"$out"
    done
  done
}

cat "$IMAGE" >/dev/null   # warm the host page cache with the image

mount -t ext4 -o loop,ro,noload "$IMAGE" "$MNT"
run_fio "kernel ext4 (loop)"
umount "$MNT"

"${PIN_SERVER[@]}" fuse2fs -o ro,fakeroot "$IMAGE" "$MNT" -f 2>"$WORK/fuse2fs.log" &
wait_mounted; run_fio "fuse2fs"; umount "$MNT"; wait

for tier in ${TIERS:-ondisk btree learned bpf}; do
  "${PIN_SERVER[@]}" "$SERVER" mount "$IMAGE" "$MNT" --models "$PACK" --tier $tier \
    --stats-json "$WORK/$tier.json" 2>"$WORK/server.log" &
  wait_mounted; run_fio "server --tier $tier"; umount "$MNT"; wait
  python3 - "$WORK/$tier.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for name, t in s["tiers"].items():
    if t["answered"]:
        l = t["latency_ns"]
        print(f"{'':22} lookups by {name}: {t['answered']}, p50 {l['p50']} ns, p99 {l['p99']} ns")
PY
done
