#!/usr/bin/env bash
# The main job on the built-in demo: builds demo ext4 images (mkfs.ext4 + debugfs), trains a
# model pack for each, runs every experiment and writes reports/demo/report.md with its
# figures, and the tables under notebooks-data/demo/. The server binary is built too, so the
# end-to-end figures include our FUSE mount. The first run compiles the release build; the
# report states how long the demo itself took.
# As root it also loop-mounts images (kernel ext4, fuse2fs, our mount) and runs the BPF tier in
# the kernel; otherwise those parts are skipped and the report says why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p server -p reports
# The binary that build made: `cargo run -p reports` alone would select other features of the
# shared dependencies (feature unification differs with the packages selected) and compile
# dozens of crates again.
exec "${CARGO_TARGET_DIR:-target}/release/reports" demo "$@"
