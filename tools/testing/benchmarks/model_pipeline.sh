#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Device model pipeline speed: ns/packet of the TX path with 16 flow
# entries and with a full table (default 4096; pass another size), and the
# flow lookup alone. A benchmark, not a test: it prints figures.
#
# Usage: tools/testing/benchmarks/model_pipeline.sh [table-size] [seconds]
set -euo pipefail
. "$(dirname "$0")/../../../scripts/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BMGNIC_CACHE/cargo-target}
cd "$BMGNIC_TOP/qemu"
cargo build --quiet --locked --release --examples
"$CARGO_TARGET_DIR/release/examples/pipeline_bench" "${1:-4096}" "${2:-3}"
echo
"$CARGO_TARGET_DIR/release/examples/flow_lookup_bench" "${2:-3}"
