#!/usr/bin/env bash
# Ceph's s3-tests (test_s3.py, boto3) against a fresh `jadfs server`, run
# by hand: CI has no copy of them (nothing but crates.io and PyPI is
# reachable there). Get one with `git clone https://github.com/ceph/s3-tests`
# and `pip install -r s3-tests/requirements.txt`.
# Usage: s3-compat-tests/ceph-s3-tests.sh S3_TESTS_DIR [pytest args...]
#   e.g. ... ~/s3-tests -m lifecycle        (one group)
#        ... ~/s3-tests -m "not lifecycle"  (the rest)
# A lifecycle day lasts 10 s (s3-tests' default lc_debug_interval).
# JADFS_BIN picks the binary (default target/debug/jadfs).
set -euo pipefail
suite=$(cd "$1" && pwd)
shift
bin=$(realpath "${JADFS_BIN:-target/debug/jadfs}")
work=$(mktemp -d)
server=
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The keys s3tests.conf.SAMPLE names: main (root here), alt, tenant.
main_key=0555b35654ad1656d804 main_secret='h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q=='
"$bin" server --data-dir "$work/data" --listen "127.0.0.1:$port" --access-key "$main_key" \
    --secret-key "$main_secret" --lifecycle-day 10s --gc-grace 10s --kms-keys testkey-1,testkey-2 > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/-/health" && break; sleep 0.2; done
admin() { "$bin" admin --endpoint "http://127.0.0.1:$port" --access-key "$main_key" --secret-key "$main_secret" "$@"; }
admin key create --name alt --id NOPQRSTUVWXYZABCDEFG --secret nopqrstuvwxyzabcdefghijklmnabcdefghijklm > /dev/null
admin key create --name tenant --id HIJKLMNOPQRSTUVWXYZA --secret opqrstuvwxyzabcdefghijklmnopqrstuvwxyzab > /dev/null
sed -e "s/^host = .*/host = 127.0.0.1/" -e "s/^port = .*/port = $port/" \
    -e "s/^bucket prefix = .*/bucket prefix = jadfs-{random}-/" "$suite/s3tests.conf.SAMPLE" > "$work/s3tests.conf"
cd "$suite"
S3TEST_CONF="$work/s3tests.conf" python3 -m pytest -q -p no:cacheprovider -rfE s3tests/functional/test_s3.py "$@" || true
