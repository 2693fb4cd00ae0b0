#!/usr/bin/env bash
# Builds the BPF tier's program, bpf/program/iomap_begin.bpf.c -> bpf/program/iomap_begin.bpf.o,
# the object the server embeds. The object is committed so the workspace builds without clang;
# `--check` rebuilds it into a temporary file and fails if it differs from the committed one
# (CI runs that, so the object always comes from the source beside it).
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

out=iomap_begin.bpf.o
[ $check -eq 1 ] && out=$(mktemp /tmp/iomap_begin.XXXXXX.o)
# -g makes clang emit BTF; -I for asm/types.h on Debian's multiarch layout.
clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
  -I/usr/include/"$(uname -m)"-linux-gnu -fdebug-prefix-map="$PWD"=. \
  -c iomap_begin.bpf.c -o "$out"
llvm-strip -g "$out"
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
