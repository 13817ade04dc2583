#!/usr/bin/env bash
# The test suite: unit tests, integration tests against the real binary, doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --locked "$@"
