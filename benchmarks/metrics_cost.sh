#!/usr/bin/env bash
# What metrics and the access log cost on the hot path: `cluster_bench.sh`
# (five processes on loopback) with a binary from before metrics and the
# current one, with and without the access log, alternated back to back.
# Usage: benchmarks/metrics_cost.sh BEFORE_BINARY AFTER_BINARY [rounds]
# Prints one line per run: 4 KiB PUT and GET ops/s at x1 and x32 and the
# large PUT's server CPU-s per GiB (from `jadfs bench --json`).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2 rounds=${3:-3}
out=$(mktemp -d)
summary() {
    python3 - "$1" <<'EOF'
import json, sys
runs = {r["name"]: r for r in json.load(open(sys.argv[1]))["results"]}
cells = [f'{runs[f"{op} 4 KiB x{c}"]["ops_per_sec"]:.0f}' for op in ("PUT", "GET") for c in (1, 32)]
cells.append(f'{runs["PUT 256 MiB x4"]["server_cpu_per_gib"]:.2f}')
print(" ".join(cells))
EOF
}
for round in $(seq "$rounds"); do
    for variant in before after after-no-access-log; do
        bin=$before
        [ "$variant" = before ] || bin=$after
        log=true
        [ "$variant" = after-no-access-log ] && log=false
        JADFS_BIN=$bin JADFS_ACCESS_LOG=$log benchmarks/cluster_bench.sh --large-mib 256 --large-concurrency 4 \
            --small-concurrency 1,32 --small-ops 2000 --list-keys 1000 --json "$out/$variant-$round.json" > /dev/null 2>&1
        echo "round $round $variant: PUT x1, x32; GET x1, x32 (ops/s); large PUT x4 (CPU-s/GiB): $(summary "$out/$variant-$round.json")"
    done
done
