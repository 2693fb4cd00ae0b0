#!/usr/bin/env bash
# Debian packages the tests and tools use: e2fsprogs (mkfs.ext4, debugfs, filefrag: the
# oracles), fuse3 and fuse2fs (FUSE comparisons), fio (throughput experiments), sqlite3 (the
# kernel-allocator recipe of a database under inserts and deletes); and tracefs mounted (the
# recorded traces read ext4's tracepoints; a fresh machine may not mount it).
# Installs only what is missing; needs root (or sudo) when something is.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
tracing=/sys/kernel/tracing
if [ -d "$tracing" ] && ! mountpoint -q "$tracing"; then
  if $sudo mount -t tracefs nodev "$tracing"; then
    echo "mounted tracefs at $tracing"
  else
    echo "tracefs not mounted at $tracing (needs root): the trace recording tests cannot run"
  fi
fi
need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v filefrag >/dev/null || need+=(e2fsprogs)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v fuse2fs >/dev/null || need+=(fuse2fs)
command -v fio >/dev/null || need+=(fio)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -eq 0 ]; then
  echo "all system packages present"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2068
$sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
echo "installed: $(printf '%s ' "${need[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
