#!/usr/bin/env bash
# The performance issue's rclone run: 4 objects of 256 MiB, 4 transfers in
# parallel, up to a fresh `jadfs server` and back; MiB/s, server CPU seconds
# per GiB and rclone's own CPU seconds; bytes compared. Files live in
# /dev/shm so the client's disk is not measured.
# Usage: benchmarks/rclone.sh [objects, default 4] [size_mib, default 256]
set -euo pipefail
count=${1:-4}
size_mib=${2:-256}
bin=${JADFS_BIN:-target/release/jadfs}
work=$(mktemp -d)
files=$(mktemp -d -p /dev/shm)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work" "$files"' EXIT
source "$(dirname "$0")/server.sh"
start_server JADFSBENCHRCLONE0001 bench-rclone-secret

unset AWS_CA_BUNDLE
export RCLONE_CONFIG="$work/rclone.conf"
printf '[jadfs]\ntype = s3\nprovider = Other\naccess_key_id = JADFSBENCHRCLONE0001\nsecret_access_key = bench-rclone-secret\nendpoint = %s\nregion = us-east-1\n' \
    "$endpoint" > "$RCLONE_CONFIG"
mkdir -p "$files/up" "$files/down"
for i in $(seq "$count"); do head -c "${size_mib}M" /dev/urandom > "$files/up/object-$i"; done
rclone mkdir jadfs:bench

server_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$pid/stat"; }
ticks() { date +%s.%N; }
total_gib=$(awk -v n="$count" -v s="$size_mib" 'BEGIN {print n * s / 1024}')

run() { # direction, source, target
    local cpu0 t0 t1 cpu1 client
    cpu0=$(server_cpu); t0=$(ticks)
    client=$( { /usr/bin/time -f "%U %S" rclone copy --transfers "$count" "$2" "$3" 2>&1 >/dev/null; } | tail -1 )
    t1=$(ticks); cpu1=$(server_cpu)
    awk -v d="$1" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" -v g="$total_gib" -v cl="$client" \
        'BEGIN { split(cl, c, " "); printf "%-4s %d x %d MiB: %6.0f MiB/s, server %5.2f CPU-s/GiB, rclone %5.2f CPU-s/GiB\n",
                 d, '"$count"', '"$size_mib"', g * 1024 / (t1 - t0), (c1 - c0) / g, (c[1] + c[2]) / g }'
}
run PUT "$files/up" jadfs:bench
run GET jadfs:bench "$files/down"
for i in $(seq "$count"); do cmp "$files/up/object-$i" "$files/down/object-$i"; done
echo "bytes identical; server peak RSS $(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
