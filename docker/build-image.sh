#!/usr/bin/env bash
# Builds the jadfs Docker image from a jadfs binary and the shared libraries
# `ldd` lists for it, on an empty base: nothing is pulled from a registry.
#
#   docker/build-image.sh [BINARY] [TAG]
#
# BINARY defaults to target/release/jadfs (build it with `cargo build
# --release`), TAG to jadfs:latest.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/jadfs}
tag=${2:-jadfs:latest}
[ -x "$binary" ] || { echo "no binary at $binary: run cargo build --release first" >&2; exit 1; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root=$context/rootfs
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/data" "$root/etc"
chmod 1777 "$root/tmp"
cp "$binary" "$root/usr/local/bin/jadfs"
# Every library the dynamic linker resolves, at the same path, plus the linker.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# libfaketime, when the host has it (apt install faketime): the fault
# matrix preloads it to move one process's clock.
faketime=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -f "$faketime" ]; then
    mkdir -p "$root$(dirname "$faketime")"
    cp -L "$faketime" "$root$faketime"
    for lib in $(ldd "$faketime" | grep -o '/[^ ]*'); do
        [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
    done
fi
# Names resolve from /etc/hosts, then DNS (docker's embedded server).
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
cp docker/Dockerfile "$context/Dockerfile"
docker build --quiet -t "$tag" "$context"
echo "built $tag from $binary"
