#!/usr/bin/env bash
# Builds the BPF tier's program, bpf/program/iomap_begin.bpf.c -> bpf/program/iomap_begin.bpf.o,
# the object the server embeds. The object is committed so the workspace builds without clang;
# `--check` rebuilds it into a temporary file and fails if it differs from the committed one
# (CI runs that, so the object always comes from the source beside it).
#
# It also builds the same lookup as a struct_ops object for kernels carrying the posted
# fuse-iomap patches, bpf/program/fuse_iomap_ops.bpf.c -> fuse_iomap_ops.bpf.o (not committed;
# mainline cannot load it): `--check` compiles it too and fails unless it holds the
# `iomap_begin` struct_ops program and the `fuse_iomap_bpf_ops` map, so the source keeps
# building against that interface.
#
# Needs clang (with the bpf target), llvm-strip and libbpf-dev's headers; installs them on
# Debian when missing. The build is reproducible: relative paths, DWARF stripped (BTF kept, which
# is what the loader uses for map definitions).
set -euo pipefail
cd "$(dirname "$0")/../bpf/program"
check=0
[ "${1:-}" = "--check" ] && check=1

need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# -g makes clang emit BTF; -I for asm/types.h on Debian's multiarch layout.
build() { # SOURCE OBJECT
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
    -I/usr/include/"$(uname -m)"-linux-gnu -fdebug-prefix-map="$PWD"=. \
    -c "$1" -o "$2"
  llvm-strip -g "$2"
}

ops=fuse_iomap_ops.bpf.o
[ $check -eq 1 ] && ops=$(mktemp /tmp/fuse_iomap_ops.XXXXXX.o)
build fuse_iomap_ops.bpf.c "$ops"
sections=$(llvm-readelf -S "$ops")
if ! grep -q 'struct_ops/iomap_begin' <<<"$sections" || ! grep -q '\.struct_ops\.link' <<<"$sections" \
  || ! grep -aq 'fuse_iomap_bpf_ops' "$ops"; then
  echo "fuse_iomap_ops.bpf.o lacks the iomap_begin struct_ops program or its map" >&2
  exit 1
fi
if [ $check -eq 1 ]; then
  echo "bpf/program/fuse_iomap_ops.bpf.c builds as a fuse_iomap_bpf_ops struct_ops object"
  rm -f "$ops"
else
  echo "built bpf/program/$ops ($(stat -c %s "$ops") bytes; for kernels with fuse-iomap's BPF hooks)"
fi

out=iomap_begin.bpf.o
[ $check -eq 1 ] && out=$(mktemp /tmp/iomap_begin.XXXXXX.o)
build iomap_begin.bpf.c "$out"
if [ $check -eq 1 ]; then
  if cmp -s "$out" iomap_begin.bpf.o; then
    echo "bpf/program/iomap_begin.bpf.o matches its source ($(clang --version | head -1))"
    rm -f "$out"
  else
    rm -f "$out"
    echo "bpf/program/iomap_begin.bpf.o is not the build of iomap_begin.bpf.c with" \
      "$(clang --version | head -1): run scripts/build-bpf.sh and commit the object" >&2
    exit 1
  fi
else
  echo "built bpf/program/$out ($(stat -c %s "$out") bytes)"
fi
