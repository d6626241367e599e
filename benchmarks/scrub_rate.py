#!/usr/bin/env python3
"""Scrub rate achieved against its limit, on `jadfs server`.

Starts a fresh `jadfs server --scrub-rate R` (release build by default),
stores `--gib` GiB (objects of 256 MiB; each of the three storage nodes
holds every byte), starts a scrub pass with `jadfs admin scrub start` and
times it until every node is idle again, with the server's CPU time over
the pass. Each node scrubs at the limit on its own, so the rate achieved is
per node. Several limits are measured one after another.

Usage: benchmarks/scrub_rate.py [--gib 1] [--rates 32,128,100000] [--bin target/release/jadfs]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

ACCESS_KEY = "JADFSBENCHACCESS0001"
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklm"
OBJECT = 256 << 20


def start_server(binary, data_dir, rate):
    process = subprocess.Popen(
        [binary, "server", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--scrub-rate", str(rate)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    deadline = time.time() + 60
    for line in process.stdout:
        if line.strip().startswith("S3 endpoint: "):
            return process, line.strip().split("S3 endpoint: ", 1)[1]
        if time.time() > deadline:
            break
    process.kill()
    sys.exit("jadfs server did not start")


def admin(binary, endpoint, *args):
    out = subprocess.run([binary, "admin", "--endpoint", endpoint, "--access-key", ACCESS_KEY,
                          "--secret-key", SECRET_KEY, *args], check=True, capture_output=True, text=True)
    return out.stdout


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(binary, gib, rate):
    data_dir = tempfile.mkdtemp(prefix="jadfs-scrub-")
    process, endpoint = start_server(binary, data_dir, rate)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                          config=botocore.config.Config(retries={"max_attempts": 1}))
        s3.create_bucket(Bucket="scrub")
        for i in range(gib * (1 << 30) // OBJECT):
            s3.put_object(Bucket="scrub", Key=f"o{i}", Body=os.urandom(OBJECT))
        # The caches hold what was just written: drop them, so the pass reads the disk.
        subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=False)
        cpu_before, began = cpu_seconds(process.pid), time.monotonic()
        admin(binary, endpoint, "scrub", "start")
        while True:
            report = json.loads(admin(binary, endpoint, "scrub", "status", "--json"))
            if all(not n["scrub"]["running"] for n in report):
                break
            time.sleep(0.2)
        seconds, cpu = time.monotonic() - began, cpu_seconds(process.pid) - cpu_before
        per_node = [n["scrub"]["last_pass_chunks"] for n in report]
        held = sum(n["scrub"]["pass_total_bytes"] for n in report) / len(report)
        bad = sum(n["scrub"]["last_pass_bad_copies"] for n in report)
        return {"limit_mib_s": rate, "seconds": round(seconds, 2),
                "achieved_mib_s_per_node": round(held / (1 << 20) / seconds, 1),
                "cpu_s_per_gib": round(cpu / (held * len(report) / (1 << 30)), 3),
                "chunks_per_node": per_node, "bad": bad}
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--rates", default="32,128,100000")
    parser.add_argument("--bin", default="target/release/jadfs")
    args = parser.parse_args()
    print(f"{'limit MiB/s':>12} {'seconds':>8} {'achieved MiB/s/node':>20} {'CPU-s/GiB':>10}")
    results = []
    for rate in [float(r) for r in args.rates.split(",")]:
        r = measure(args.bin, args.gib, rate)
        results.append(r)
        print(f"{rate:>12g} {r['seconds']:>8} {r['achieved_mib_s_per_node']:>20} {r['cpu_s_per_gib']:>10}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
