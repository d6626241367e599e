#!/usr/bin/env bash
# What metrics and the access log cost on the hot path: `cluster_bench.sh`
# (five processes on loopback) with a binary from before metrics and the
# current one, with and without the access log. The order of the three
# variants is reversed every other round, so that a drift of the machine
# during a round does not favour one of them.
# Usage: benchmarks/metrics_cost.sh BEFORE_BINARY AFTER_BINARY [rounds]
# Prints one line per run, then each variant's medians: 4 KiB PUT and GET
# ops/s at x1 and x32, server CPU µs per 4 KiB PUT, GET and HEAD at x32,
# and the large PUT's server CPU-s per GiB (from `jadfs bench --json`).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2 rounds=${3:-3}
out=$(mktemp -d)
columns="PUT_x1 PUT_x32 GET_x1 GET_x32 cpu_us_PUT_x32 cpu_us_GET_x32 cpu_us_HEAD_x32 large_PUT_cpu_s_per_GiB"
summary() {
    python3 - "$@" <<'EOF2'
import json, statistics, sys
def cells(path):
    runs = {r["name"]: r for r in json.load(open(path))["results"]}
    row = [runs[f"{op} 4 KiB x{c}"]["ops_per_sec"] for op in ("PUT", "GET") for c in (1, 32)]
    row += [1e6 * runs[f"{op} 4 KiB x32"]["server_cpu_seconds"] / runs[f"{op} 4 KiB x32"]["ops"]
            for op in ("PUT", "GET", "HEAD")]
    row.append(runs["PUT 256 MiB x4"]["server_cpu_per_gib"])
    return row
rows = [cells(p) for p in sys.argv[1:]]
fmt = lambda v: f"{v:.2f}" if v < 100 else f"{v:.0f}"
print(" ".join(fmt(statistics.median(col)) for col in zip(*rows)))
EOF2
}
variants=(before after after-no-access-log)
for round in $(seq "$rounds"); do
    order=("${variants[@]}")
    [ $((round % 2)) = 0 ] && order=(after-no-access-log after before)
    for variant in "${order[@]}"; do
        bin=$before
        [ "$variant" = before ] || bin=$after
        log=true
        [ "$variant" = after-no-access-log ] && log=false
        JADFS_BIN=$bin JADFS_ACCESS_LOG=$log benchmarks/cluster_bench.sh --large-mib 256 --large-concurrency 4 \
            --small-concurrency 1,32 --small-ops 2000 --list-keys 1000 --json "$out/$variant-$round.json" > /dev/null 2>&1
        echo "round $round $variant: $(summary "$out/$variant-$round.json")"
    done
done
echo "medians of $rounds rounds ($columns):"
for variant in "${variants[@]}"; do
    echo "  $variant: $(summary "$out/$variant"-*.json)"
done
