#!/usr/bin/env bash
# The project's test command (README, CI). Dev profile (overflow checks on) at opt-level 1,
# dependencies at opt-level 2 (see Cargo.toml): exhaustive per-block tests stay quick.
# Tests that loop-mount images need root; as another user they say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
