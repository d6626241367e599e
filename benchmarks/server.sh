# Sourced by the shell benchmarks: starts a fresh `jadfs server` in "$work"
# (which the caller made) with the root key $1 and secret $2, and sets
# $pid and $endpoint. The caller's EXIT trap kills "$pid".
start_server() {
    "$bin" server --listen 127.0.0.1:0 --data-dir "$work/data" \
        --access-key "$1" --secret-key "$2" > "$work/out" 2> "$work/err" &
    pid=$!
    for _ in $(seq 300); do grep -q "S3 endpoint:" "$work/out" && break; sleep 0.1; done
    endpoint=$(sed -n 's/.*S3 endpoint: //p' "$work/out")
}
