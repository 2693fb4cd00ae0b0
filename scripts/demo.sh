#!/usr/bin/env bash
# The main job on the built-in demo: builds demo ext4 images (mkfs.ext4 + debugfs), trains a
# model pack for each, runs the experiments and writes reports/demo/report.md with figures, and
# the tables under notebooks-data/demo/. The first run compiles the release build (polars takes
# about 10 minutes on 2 cores); later runs take a few minutes at most.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo run --release --locked -p reports -- demo "$@"
