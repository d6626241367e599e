#!/usr/bin/env python3
"""Metadata at scale: a meta node holding N objects (10 million by default).

1. A real meta node creates its state (schema, a bucket, one real object),
   then stops.
2. N synthetic objects, each with one chunk on three nodes, are bulk-loaded
   into its SQLite state machine, shaped like the real object (the synthetic
   load the issue allows: writing 10 million objects through Raft would take
   hours here).
3. The node restarts; random GETs and listings run against it.
4. Real PutObject commands through Raft trigger a snapshot (VACUUM INTO of
   the whole state), and a second, empty meta node joins as a learner: it
   must install that snapshot, in pieces, over HTTP.

Reported: RSS (current and peak) of both nodes at each step, query
latencies, snapshot size and the times to build and install it.

    cargo build --release
    python3 benchmarks/meta_scale.py [--objects 10000000] [--dir /tmp/meta-scale]
"""

import argparse
import hashlib
import hmac
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mib(pid):
    """(current, peak) resident set size of a process, in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


CLUSTER_SECRET = "meta-scale-cluster-secret-0123456789"
SESSION = random.getrandbits(64)
SEQUENCE = itertools.count(1)


def proof(method, path):
    """The x-jadfs-auth header of an internal request (common/src/cluster_auth.rs)."""
    key = hmac.new(CLUSTER_SECRET.encode(), b"jadfs cluster requests v1", hashlib.sha256).digest()
    sequence, now = next(SEQUENCE), int(time.time())
    message = f"JADFS-V1\n{method}\n{path}\n{SESSION:016x}\n{sequence}\n{now}"
    tag = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
    return f"v1 {SESSION:016x} {sequence} {now} {tag}"


def call(port, path, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json",
                                              "x-jadfs-auth": proof(method, path)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait(what, check, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out: {what}")


class Meta:
    def __init__(self, binary, node_id, port, data_dir, bootstrap):
        args = [binary, "meta", "--node-id", str(node_id), "--listen", f"127.0.0.1:{port}",
                "--data-dir", data_dir, "--snapshot-every", "1000"]
        if bootstrap:
            args.append("--bootstrap")
        self.port = port
        self.log = open(os.path.join(os.path.dirname(data_dir), f"meta{node_id}.log"), "w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                        env=dict(os.environ, RUST_LOG="warn",
                                                 JADFS_CLUSTER_SECRET=CLUSTER_SECRET))
        wait("meta node up", lambda: call(port, "/v1/status") is not None, 60)

    def status(self):
        return call(self.port, "/v1/status")

    def rss(self):
        return rss_mib(self.process.pid)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


def put_object_command(bucket, key, chunk_hex, size):
    manifest = {
        "size": size, "etag": '"%032x"' % random.getrandbits(128), "last_modified_ms": int(time.time() * 1000),
        "content_type": "application/octet-stream", "headers": [], "user_metadata": [], "checksum": None,
        "chunks": [{"id": chunk_hex, "offset": 0, "size": size}], "tags": [], "upload_id": None, "parts": [],
    }
    return {"PutObject": {"bucket": bucket, "key": key, "manifest": manifest, "placement": [[1, 2, 3]],
                          "condition": None}}


def bulk_load(db_path, count, template):
    """Inserts `count` objects like `template`, one chunk each, in key order."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    batch = 100_000
    started = time.monotonic()
    for first in range(0, count, batch):
        objects, chunks, placements = [], [], []
        for i in range(first, min(first + batch, count)):
            chunk = (1 << 255 | i).to_bytes(32, "big")  # distinct, ascending ids
            size = 4096 + i % 100_000
            template["size"] = size
            template["chunks"][0]["id"] = chunk.hex()
            template["chunks"][0]["size"] = size
            template["etag"] = '"%032x"' % i
            manifest = json.dumps(template, separators=(",", ":")).encode()
            objects.append(("scale", b"obj/%010d" % i, size, template["etag"], template["last_modified_ms"], manifest))
            chunks.append((chunk, size))
            placements.extend((chunk, node) for node in (1, 2, 3))
        with conn:
            conn.executemany("INSERT INTO objects (bucket, key, size, etag, last_modified_ms, manifest) "
                             "VALUES (?, ?, ?, ?, ?, ?)", objects)
            conn.executemany("INSERT INTO chunks (id, size, refcount, orphaned_at_log) VALUES (?, ?, 1, NULL)", chunks)
            conn.executemany("INSERT INTO placements (chunk, node) VALUES (?, ?)", placements)
        done = min(first + batch, count)
        if done % 1_000_000 == 0 or done == count:
            print(f"  loaded {done:,} objects ({time.monotonic() - started:.0f} s)", flush=True)
    conn.close()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000_000)
    parser.add_argument("--dir", default="/tmp/jadfs-meta-scale")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/jadfs"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    d1, d2 = os.path.join(args.dir, "meta1"), os.path.join(args.dir, "meta2")
    report = {"objects": args.objects}

    meta = Meta(args.binary, 1, 19701, d1, bootstrap=True)
    wait("a leader", lambda: meta.status()["current_leader"] == 1)
    call(19701, "/v1/write", {"CreateBucket": {"name": "scale", "owner": "bench", "created_ms": 0}})
    real = put_object_command("scale", "real/0", "ab" * 32, 4096)
    assert "Ok" in call(19701, "/v1/write", real)
    meta.stop()

    print(f"bulk-loading {args.objects:,} objects into {d1}/state.db", flush=True)
    started = time.monotonic()
    bulk_load(os.path.join(d1, "state.db"), args.objects, real["PutObject"]["manifest"])
    report["load_seconds"] = round(time.monotonic() - started, 1)
    report["state_db_gib"] = round(os.path.getsize(os.path.join(d1, "state.db")) / 2**30, 2)

    meta = Meta(args.binary, 1, 19701, d1, bootstrap=True)
    wait("a leader", lambda: meta.status()["current_leader"] == 1)
    report["rss_after_start_mib"] = meta.rss()[0]

    # Random reads and listings.
    def get(i):
        key = "obj/%010d" % random.randrange(args.objects)
        t = time.perf_counter()
        answer = call(19701, "/v1/query", {"GetObject": {"bucket": "scale", "key": key}})
        assert answer["Ok"]["Object"]["manifest"]["chunks"], answer
        return time.perf_counter() - t

    with ThreadPoolExecutor(8) as pool:
        latencies = list(pool.map(get, range(20_000)))
    report["get_p50_ms"] = round(percentile(latencies, 0.5) * 1000, 2)
    report["get_p99_ms"] = round(percentile(latencies, 0.99) * 1000, 2)
    list_times = []
    for _ in range(50):
        start = "obj/%010d" % random.randrange(args.objects)
        t = time.perf_counter()
        page = call(19701, "/v1/query", {"ListObjects": {"bucket": "scale", "prefix": "obj/", "delimiter": None,
                                                         "start_after": start, "max_keys": 1000}})
        list_times.append(time.perf_counter() - t)
        assert len(page["Ok"]["Page"]["objects"]) > 0
    report["list_1000_p50_ms"] = round(percentile(list_times, 0.5) * 1000, 1)
    report["rss_after_queries_mib"], report["peak_rss_queries_mib"] = meta.rss()

    # Real writes through Raft until a snapshot of the whole state is taken.
    print("writing through Raft until a snapshot is taken", flush=True)
    started = time.monotonic()
    # One at a time: group commit folds writes that arrive together into one
    # log entry, and the snapshot policy counts entries.
    for i in range(1100):
        call(19701, "/v1/write", put_object_command("scale", f"raft/{i}", "cd" * 32, 100))
    wait("a snapshot", lambda: meta.status()["snapshot"] is not None, 3600)
    report["snapshot_build_seconds"] = round(time.monotonic() - started, 1)
    report["snapshot_gib"] = round(os.path.getsize(os.path.join(d1, "snapshots", "current.db")) / 2**30, 2)
    report["leader_peak_rss_mib"] = meta.rss()[1]

    print(f"a second meta node joins and installs the {report['snapshot_gib']} GiB snapshot", flush=True)
    learner = Meta(args.binary, 2, 19702, d2, bootstrap=False)
    started = time.monotonic()
    answer = call(19701, "/v1/cluster/learners", {"node_id": 2, "addr": "127.0.0.1:19702"}, timeout=3600)
    assert "Ok" in answer, answer
    leader_applied = meta.status()["last_applied"]["index"]
    wait("the learner caught up", lambda: learner.status()["last_applied"]["index"] >= leader_applied, 3600)
    report["snapshot_install_seconds"] = round(time.monotonic() - started, 1)
    report["learner_peak_rss_mib"] = learner.rss()[1]
    # A snapshot piece that timed out is sent again (from the start if it was the last).
    with open(os.path.join(args.dir, "meta1.log")) as log:
        report["snapshot_send_retries"] = sum("raft/snapshot" in line for line in log)
    report["leader_peak_rss_mib"] = max(report["leader_peak_rss_mib"], meta.rss()[1])
    learner.stop()
    meta.stop()
    # The live state file: state.db, or the last installed snapshot's (state-current names it).
    pointer = os.path.join(d2, "state-current")
    live = f"state-{open(pointer).read().strip()}.db" if os.path.exists(pointer) else "state.db"
    conn = sqlite3.connect(f"file:{os.path.join(d2, live)}?mode=ro", uri=True)
    report["learner_objects"] = conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
    conn.close()
    assert report["learner_objects"] >= args.objects, report

    print(json.dumps(report, indent=2))
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
