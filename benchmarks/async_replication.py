#!/usr/bin/env python3
"""How long async replication takes to reach three copies under load.

Starts `jadfs server` (3 storage nodes), then writes the same load with
boto3 into a sync bucket and into an async bucket (64 objects of 16 MiB,
8 at a time), while a poller reads the repair backlog every 0.25 s through
`jadfs admin nodes`. Reports PUT throughput in both modes, the largest
backlog, and how long after the last acknowledged PUT every chunk had three
copies.

    cargo build --release
    python3 benchmarks/async_replication.py
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target/release/jadfs")
OBJECTS, SIZE, CONCURRENCY = 64, 16 << 20, 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    data = tempfile.mkdtemp(prefix="jadfs-async-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([BINARY, "server", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if "S3 endpoint:" in line:
                break
        creds = json.load(open(os.path.join(data, "credentials.json")))
        env = dict(os.environ, JADFS_ENDPOINT=endpoint, JADFS_DATA_DIR=data)

        def admin(*args):
            return subprocess.run([BINARY, "admin", *args], env=env, check=True, capture_output=True, text=True).stdout

        def backlog():
            return int(re.search(r"chunks waiting for copies: (\d+)", admin("nodes")).group(1))

        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=creds["access_key"],
                          aws_secret_access_key=creds["secret_key"], region_name="us-east-1")
        body = [os.urandom(SIZE) for _ in range(4)]
        results = {}
        for round_, (bucket, mode) in enumerate((("eager", "sync"), ("lazy", "async"))):
            s3.create_bucket(Bucket=bucket)
            admin("replication", "set", "--bucket", bucket, mode)
            samples, stop = [], threading.Event()

            def poll():
                while not stop.is_set():
                    samples.append((time.monotonic(), backlog()))
                    time.sleep(0.25)

            poller = threading.Thread(target=poll)
            poller.start()

            def put(i):
                # Distinct bytes per object and round (a counter in the first 8 bytes): no dedup.
                data = (round_ * OBJECTS + i).to_bytes(8, "little") + body[i % 4][8:]
                s3.put_object(Bucket=bucket, Key=f"obj/{i}", Body=data)

            started = time.monotonic()
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(put, range(OBJECTS)))
            acked = time.monotonic()
            deadline = acked + 300
            while backlog() > 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            replicated = time.monotonic()
            stop.set()
            poller.join()
            mib = OBJECTS * SIZE / 2**20
            results[mode] = {
                "put_seconds": round(acked - started, 2),
                "put_mib_per_s": round(mib / (acked - started), 1),
                "max_backlog_chunks": max((n for _, n in samples), default=0),
                "three_copies_after_last_ack_s": round(replicated - acked, 2),
                "three_copies_after_first_put_s": round(replicated - started, 2),
            }
        print(json.dumps({"objects": OBJECTS, "object_mib": SIZE >> 20, "concurrency": CONCURRENCY,
                          "results": results}, indent=2))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
