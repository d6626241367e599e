#!/usr/bin/env python3
"""Large-object benchmark for `jadfs server`: single-stream PUT and GET
throughput, and the server's peak RSS while it streams.

Starts a fresh `jadfs server` (release build by default), then for each size
uploads one object with a single PUT and downloads it with a single GET, both
through presigned URLs driven by curl (a C client, so the client's own cost
stays small on a 2-core machine), and checks the bytes by SHA-256.

Usage: benchmarks/large_object.py [--sizes-mib 1024,4096] [--bin target/release/jadfs]
Prints a table and a JSON line.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config

ACCESS_KEY = "JADFSBENCHACCESS0001"
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklm"


def start_server(binary, data_dir):
    process = subprocess.Popen(
        [binary, "server", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    deadline = time.time() + 60
    for line in process.stdout:
        if line.strip().startswith("S3 endpoint: "):
            return process, line.strip().split("S3 endpoint: ", 1)[1]
        if time.time() > deadline:
            break
    process.kill()
    sys.exit("jadfs server did not start")


def peak_rss_mib(pid):
    """VmHWM: the process's peak resident set size so far."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid):
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def write_random_file(path, size):
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            piece = os.urandom(min(remaining, 8 << 20))
            f.write(piece)
            remaining -= len(piece)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(8 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="1024,4096")
    parser.add_argument("--bin", default="target/release/jadfs")
    parser.add_argument("--workdir", default=None, help="where the test files and data go (default: a temp dir)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="jadfs-bench-", dir=args.workdir)
    process, endpoint = start_server(args.bin, os.path.join(work, "data"))
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                          config=botocore.config.Config(signature_version="s3v4"))
        s3.create_bucket(Bucket="bench")
        results = []
        for size_mib in [int(s) for s in args.sizes_mib.split(",")]:
            size = size_mib << 20
            source = os.path.join(work, "object")
            write_random_file(source, size)
            digest = sha256_file(source)
            key = f"object-{size_mib}"
            put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "bench", "Key": key}, ExpiresIn=3600)
            get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": key}, ExpiresIn=3600)

            reset_peak(process.pid)
            cpu_before = cpu_seconds(process.pid)
            start = time.perf_counter()
            subprocess.run(["curl", "-sSf", "-T", source, "-H", "Expect:", put_url, "-o", "/dev/null"], check=True)
            put_seconds = time.perf_counter() - start
            put_cpu = cpu_seconds(process.pid) - cpu_before
            put_peak = peak_rss_mib(process.pid)

            back = os.path.join(work, "back")
            reset_peak(process.pid)
            cpu_before = cpu_seconds(process.pid)
            start = time.perf_counter()
            subprocess.run(["curl", "-sSf", get_url, "-o", back], check=True)
            get_seconds = time.perf_counter() - start
            get_cpu = cpu_seconds(process.pid) - cpu_before
            get_peak = peak_rss_mib(process.pid)
            if sha256_file(back) != digest:
                sys.exit(f"{key}: downloaded bytes differ")
            os.remove(back)
            os.remove(source)
            s3.delete_object(Bucket="bench", Key=key)
            results.append({
                "size_mib": size_mib,
                "put_mib_s": round(size_mib / put_seconds, 1),
                "get_mib_s": round(size_mib / get_seconds, 1),
                "put_server_cpu_s_per_gib": round(put_cpu / (size_mib / 1024), 2),
                "get_server_cpu_s_per_gib": round(get_cpu / (size_mib / 1024), 2),
                "put_peak_rss_mib": round(put_peak, 1),
                "get_peak_rss_mib": round(get_peak, 1),
            })
        print(f"{'size':>8} {'PUT MiB/s':>10} {'GET MiB/s':>10} {'PUT cpu-s/GiB':>14} {'GET cpu-s/GiB':>14} {'peak RSS PUT':>13} {'peak RSS GET':>13}")
        for r in results:
            print(f"{r['size_mib']:>6}Mi {r['put_mib_s']:>10} {r['get_mib_s']:>10} {r['put_server_cpu_s_per_gib']:>14} "
                  f"{r['get_server_cpu_s_per_gib']:>14} {r['put_peak_rss_mib']:>11}Mi {r['get_peak_rss_mib']:>11}Mi")
        print(json.dumps({"benchmark": "large_object", "results": results}))
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
