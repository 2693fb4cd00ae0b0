#!/usr/bin/env bash
# The project's test command (README, CI): every test of the workspace.
# Dev profile (overflow checks and debug assertions on) at opt-level 1, dependencies at
# opt-level 2 (see Cargo.toml), so exhaustive per-block contract tests stay quick.
# Tests that loop-mount images or mount FUSE need root; as another user they say so and skip
# (with IOMAP_REQUIRE_ALL=1, as CI runs them, a skip fails instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec cargo test --workspace --locked "$@"
