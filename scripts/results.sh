#!/usr/bin/env bash
# Re-measures everything results/README.md quotes besides the demo, gathers it into
# results/results.json (with the commit and machine it came from) and rewrites the results
# section of results/README.md from it (`reports readme`). Commit both files after.
#
#   sudo bash scripts/results.sh                 # about 35 minutes on 2 cores
#   FUZZ_SECS=60 READ_SECS=3 sudo bash scripts/results.sh   # shorter fuzz and fio runs
#
# Runs, in order (nothing else should run on the machine meanwhile):
#   1. criterion's lookup bench, warm-alone, cold-many-files and sequential (cargo bench -p
#      benches --bench lookup;
#      synthetic maps, the standard images' most fragmented files, and every file of 10^3
#      extents or more of the demo's kernel-allocator images, built by loop mounts)
#   2. the BPF tier's latency on synthetic maps          (reports bpf-latency --synthetic, CPU 1)
#   3. socket load, 1 and 4 clients, batches of 64      (server serve + reports load)
#   4. fio reads through every path, unpinned and pinned (reports reads)
#   5. the fuzz targets                                  (scripts/fuzz.sh, nightly + cargo-fuzz)
#   6. one file of 10^7 and 10^8 extents                 (reports huge, CPU 1; about 7 GB)
# Needs root (BPF, loop mounts, FUSE), fio and fuse2fs (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/iomap-predictor-target}"
FUZZ_SECS=${FUZZ_SECS:-150}
READ_SECS=${READ_SECS:-5}
[ "$(id -u)" -eq 0 ] || { echo "scripts/results.sh needs root (BPF, mounts)" >&2; exit 1; }

bash scripts/install-deps.sh
command -v fio >/dev/null || apt-get install -y -qq --no-install-recommends fio >/dev/null
command -v fuse2fs >/dev/null || apt-get install -y -qq --no-install-recommends fuse2fs >/dev/null
cargo build --release --locked -p server -p reports -p training
cargo build --release --locked -p imagekit --examples
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d /var/tmp/iomap-results.XXXXXX)
SERVE_PID=""
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== 1. criterion lookup bench (warm-alone, cold-many-files, sequential)"
rm -rf "$CARGO_TARGET_DIR/criterion"
cargo bench --locked -p benches --bench lookup

echo "== 2. BPF latency"
taskset -c 1 "$BIN/reports" bpf-latency --synthetic 1000,100000,1000000,10000000 >"$WORK/bpf.jsonl"

echo "== 3. the demo image with /punched-100k, and its model pack"
"$BIN/examples/build_images" "$WORK/img" demo-punched-4k
IMG="$WORK/img/demo-punched-4k.img"
"$BIN/training" fit "$IMG" -o "$WORK/punched.pack"

echo "== 3. socket load"
taskset -c 0 "$BIN/server" serve "$IMG" --models "$WORK/punched.pack" --socket "$WORK/s.sock" \
  2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do [ -S "$WORK/s.sock" ] && break; sleep 0.1; done
for clients in 1 4; do
  "$BIN/reports" load "$IMG" --socket "$WORK/s.sock" --clients "$clients" --batch 64 \
    --seconds 5 --path /punched-100k >>"$WORK/load.jsonl"
done
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""

echo "== 4. fio reads"
READS=("$BIN/reports" reads "$IMG" --path /punched-100k --models "$WORK/punched.pack"
  --tiers ondisk,btree,learned,compact,bpf --seconds "$READ_SECS")
"${READS[@]}" --jobs 1,4 >"$WORK/reads.jsonl"
"${READS[@]}" --jobs 1 --pin same >>"$WORK/reads.jsonl"

echo "== 5. fuzzing, ${FUZZ_SECS} s per target"
JSON="$WORK/fuzz.jsonl" bash scripts/fuzz.sh "$FUZZ_SECS"

echo "== 6. one file of 10^7 and 10^8 extents"
taskset -c 1 "$BIN/reports" huge --json >"$WORK/huge.jsonl"

echo "== results/results.json and results/README.md"
"$BIN/reports" results --criterion "$CARGO_TARGET_DIR/criterion" --bpf-latency "$WORK/bpf.jsonl" \
  --load "$WORK/load.jsonl" --reads "$WORK/reads.jsonl" --fuzz "$WORK/fuzz.jsonl" \
  --huge "$WORK/huge.jsonl" \
  --out results/results.json
"$BIN/reports" readme
