#!/usr/bin/env bash
# Peak RSS of `jadfs server` while awscli uploads a large file in 64 MiB
# multipart parts (10 in flight) and downloads it again; bytes compared.
# Usage: benchmarks/multipart_memory.sh [size_mib, default 5120]
set -euo pipefail
size_mib=${1:-5120}
bin=${JADFS_BIN:-target/release/jadfs}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
source "$(dirname "$0")/server.sh"
start_server JADFSBENCHMULTIPART1 bench-multipart-secret
export AWS_ACCESS_KEY_ID=JADFSBENCHMULTIPART1 AWS_SECRET_ACCESS_KEY=bench-multipart-secret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/none"
unset AWS_CA_BUNDLE
printf '[default]\ns3 =\n  multipart_chunksize = 64MB\n  max_concurrent_requests = 10\n' > "$AWS_CONFIG_FILE"
head -c "${size_mib}M" /dev/urandom > "$work/object"
aws --endpoint-url "$endpoint" s3 mb s3://bench > /dev/null
start=$(date +%s.%N)
aws --endpoint-url "$endpoint" s3 cp --no-progress "$work/object" s3://bench/object > /dev/null
up=$(awk -v s="$start" -v e="$(date +%s.%N)" "BEGIN {printf \"%.1f\", e - s}")
rss_up=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
start=$(date +%s.%N)
aws --endpoint-url "$endpoint" s3 cp --no-progress s3://bench/object "$work/back" > /dev/null
down=$(awk -v s="$start" -v e="$(date +%s.%N)" "BEGIN {printf \"%.1f\", e - s}")
rss_all=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
cmp "$work/object" "$work/back"
echo "size ${size_mib} MiB in 64 MiB parts: upload ${up} s, download ${down} s, bytes identical"
echo "server peak RSS: after upload $((rss_up / 1024)) MiB, after download $((rss_all / 1024)) MiB"
