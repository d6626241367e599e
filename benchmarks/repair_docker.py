#!/usr/bin/env python3
"""How long the docker cluster takes to make again every copy a lost storage
node held: fill the cluster until storage1 holds `--gib` GiB (64 MiB chunks,
one per object, three copies over four nodes), kill storage1 for good, and
time until it is declared dead and until the repair queue is empty. Then
every chunk must have a file on each of the three nodes left (three copies
over three nodes).

    cargo build --release && docker/build-image.sh target/release/jadfs jadfs:bench
    JADFS_IMAGE=jadfs:bench python3 benchmarks/repair_docker.py --gib 10

Needs about 4.5 x `--gib` GiB of free disk for the volumes.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docker"))
from cluster import Cluster, docker, log, wait_until  # noqa: E402

CHUNK = 64 << 20
DEAD_AFTER = 10


def fill(cluster, gib):
    """PUTs distinct 64 MiB objects through both gateways until storage1
    holds `gib` GiB; returns how many."""
    body = bytearray(os.urandom(CHUNK))
    lock = threading.Lock()
    done = threading.Event()
    state = {"next": 0, "acked": 0}

    def writer(gateway):
        s3 = cluster.client(gateway, read_timeout=300)
        mine = bytearray(body)
        while not done.is_set():
            with lock:
                n = state["next"]
                state["next"] += 1
            mine[:8] = n.to_bytes(8, "little")  # a distinct chunk each time
            s3.put_object(Bucket="fill", Key=f"o{n:06}", Body=bytes(mine))
            with lock:
                state["acked"] += 1

    threads = [threading.Thread(target=writer, args=(g,), daemon=True) for g in (0, 1)]
    started = time.monotonic()
    for t in threads:
        t.start()
    while cluster.held_gib("storage1") < gib:
        if not any(t.is_alive() for t in threads):
            raise RuntimeError("the writers died")
        time.sleep(2)
    done.set()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    log(f"{state['acked']} objects ({state['acked'] * CHUNK / 2**30:.1f} GiB) in {took:.0f} s, "
        f"{state['acked'] * CHUNK / 2**20 / took:.0f} MiB/s; storage1: {cluster.node_row('storage1')}")
    return state["acked"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=10.0, help="GiB storage1 holds before it is lost")
    args = parser.parse_args()
    metas = {f"meta{n}": {"JADFS_NODE_DEAD_AFTER": str(DEAD_AFTER)} for n in (1, 2, 3)}
    with Cluster("repair", env={"JADFS_CHUNK_SIZE": str(CHUNK)}, services=metas) as cluster:
        cluster.wait_answering()
        cluster.client(0).create_bucket(Bucket="fill")
        objects = fill(cluster, args.gib)
        wait_until("three copies of everything", 300,
                   lambda: "chunks waiting for copies: 0" in cluster.admin("nodes"))
        lost = cluster.held_gib("storage1")

        docker("kill", cluster.container("storage1"))
        killed = time.monotonic()
        log(f"killed storage1 holding {lost:.2f} GiB")
        wait_until("storage1 declared dead", 120, lambda: "dead" in cluster.node_row("storage1"), every=0.2)
        dead = time.monotonic() - killed
        wait_until("its chunks queued", 60,
                   lambda: "chunks waiting for copies: 0" not in cluster.admin("nodes"), every=0.2)
        queued = cluster.admin("nodes").strip().split("\n")[-1]
        wait_until("the repair queue empty", 1800,
                   lambda: "chunks waiting for copies: 0" in cluster.admin("nodes"), every=1)
        repaired = time.monotonic() - killed
        files = {s: len(cluster.chunk_files(s)) for s in ("storage2", "storage3", "storage4")}
        log(f"declared dead after {dead:.1f} s ({queued}); every copy made again "
            f"{repaired:.1f} s after the kill, {repaired - dead:.1f} s of repair: "
            f"{lost * 1024 / (repaired - dead):.0f} MiB/s")
        log(f"chunk files on the nodes left: {files} for {objects} objects")
        assert all(n >= objects for n in files.values()), "a chunk is short of a copy"
        print(cluster.admin("nodes"))


if __name__ == "__main__":
    sys.exit(main())
