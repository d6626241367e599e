#!/usr/bin/env bash
# `jadfs bench` against a cluster of separate processes on loopback: one
# meta node, three storage nodes, one gateway, so every chunk copy crosses
# HTTP as it does between machines (`jadfs server` writes its own nodes
# directly). CPU and RSS are summed over all five processes.
# Usage: benchmarks/cluster_bench.sh [jadfs bench options...]
# With INTERNAL_TLS=1 the links between the processes are TLS (a CA and a
# certificate for 127.0.0.1 are made with openssl for the run).
set -euo pipefail
bin=${JADFS_BIN:-target/release/jadfs}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
key=JADFSBENCHCLUSTER001
secret=bench-cluster-secret
export JADFS_CLUSTER_SECRET=bench-cluster-secret-0123456789
if [ "${INTERNAL_TLS:-0}" = 1 ]; then
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$work/node.key" -out "$work/node.csr" -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$work/san.cnf"
    openssl x509 -req -in "$work/node.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
        -out "$work/node.pem" -days 2 -extfile "$work/san.cnf" 2>/dev/null
    export JADFS_INTERNAL_TLS_CERT="$work/node.pem" JADFS_INTERNAL_TLS_KEY="$work/node.key" JADFS_INTERNAL_TLS_CA="$work/ca.pem"
fi

"$bin" meta --node-id 1 --listen 127.0.0.1:9451 --data-dir "$work/meta" --bootstrap > "$work/meta.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q "listening on" "$work/meta.log" && break; sleep 0.1; done
for i in 1 2 3; do
    "$bin" storage-node --listen "127.0.0.1:946$i" --data-dir "$work/node-$i" --meta 127.0.0.1:9451 \
        > "$work/node-$i.log" 2>&1 &
    pids+=($!)
done
"$bin" gateway --listen 127.0.0.1:9470 --meta 127.0.0.1:9451 --access-key "$key" --secret-key "$secret" \
    > "$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
    nodes=$("$bin" admin --endpoint http://127.0.0.1:9470 --access-key "$key" --secret-key "$secret" nodes 2>/dev/null \
        | grep -c alive || true)
    [ "$nodes" -ge 3 ] && break
    sleep 0.2
done
server_pids=$(IFS=,; echo "${pids[*]}")
"$bin" bench --endpoint http://127.0.0.1:9470 --access-key "$key" --secret-key "$secret" \
    --server-pids "$server_pids" "$@"
# With META_REPORT=1: the bytes the meta state spends on each object row
# and each version row (table and indexes, by SQLite's dbstat).
if [ "${META_REPORT:-0}" = 1 ]; then
    python3 - "$(ls -t "$work"/meta/state*.db | head -1)" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for table, parts in [("objects", ("objects", "inline_objects")), ("versions", ("versions", "versions_by_id"))]:
    rows = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    size = sum(db.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ?", (p,)).fetchone()[0] for p in parts)
    print(f"meta state: {table}: {rows} rows, {size} bytes" + (f", {size / rows:.0f} bytes a row" if rows else ""))
PY
fi
