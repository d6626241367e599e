#!/usr/bin/env python3
"""Failure test of the docker-compose cluster (3 meta, 4 storage in 2 zones,
2 gateways), driven with boto3 the way a user would.

While writers PUT objects through both gateways into a sync bucket, a sync
bucket with write quorum 2 and an async bucket, one container at a time is
`docker kill`ed, `docker pause`d or cut off with `docker network
disconnect`: storage nodes, the Raft leader, a gateway. Afterwards every
acknowledged PUT must read back identical through both gateways, and the
repair queue must drain (every chunk back to three copies).

Then, on the host's view of the storage volumes: one copy of an object is
rotted (a flipped byte) and another object's copy deleted; reads stay right,
the scrubber finds both and each chunk is back to three good copies. Last,
storage1 is drained while writers run: it ends with no copy, and every
acknowledged object still reads back.

    docker/build-image.sh target/debug/jadfs jadfs:ci
    JADFS_IMAGE=jadfs:ci python3 docker/cluster_test.py
"""

import hashlib
import os
import random
import sys
import threading
import time

from cluster import Cluster, Threads, docker, log, wait_until

BUCKETS = {"sync3": ["sync"], "quorum2": ["sync", "--write-quorum", "2"], "lazy": ["async"]}
# Small chunks, so objects of a few MiB span several; the scrubbers run fast
# enough to find a rotten copy within the test.
CLUSTER = Cluster(
    "ci",
    env={"JADFS_CHUNK_SIZE": "1048576"},
    services={f"storage{n}": {"JADFS_SCRUB_RATE": "200"} for n in range(1, 5)},
)


class Writers(Threads):
    """Threads that PUT objects through both gateways and remember each
    acknowledged one (and only those) with its SHA-256."""

    def __init__(self, count, first=0):
        # Writers numbered from `first`: each number writes its own keys and
        # bodies, so a later group never rewrites an earlier one's objects.
        super().__init__()
        self.acked = {}
        self.failed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(first + i,)) for i in range(count)]

    def run(self, n):
        rng = random.Random(n)
        clients = [CLUSTER.client(g) for g in range(2)]
        i = 0
        while not self.stop.is_set():
            i += 1
            bucket = list(BUCKETS)[i % len(BUCKETS)]
            key = f"w{n}/{i}"
            body = rng.randbytes(rng.choice([1_000, 200_000, 2_500_000]))
            for attempt in range(2):
                try:
                    clients[(i + attempt) % 2].put_object(Bucket=bucket, Key=key, Body=body)
                except Exception:
                    with self.lock:
                        self.failed += 1
                    continue
                with self.lock:
                    self.acked[(bucket, key)] = hashlib.sha256(body).hexdigest()
                break

    def count(self):
        with self.lock:
            return len(self.acked)


def phase(writers, what, seconds=12):
    before = writers.count()
    time.sleep(seconds)
    log(f"{what}: {writers.count() - before} PUTs acknowledged in {seconds} s")


def main():
    with CLUSTER:
        run()
        log("PASS")


def run():
    gateways = [CLUSTER.client(g) for g in range(2)]
    CLUSTER.wait_answering()
    for bucket, mode in BUCKETS.items():
        gateways[0].create_bucket(Bucket=bucket)
        CLUSTER.admin("replication", "set", "--bucket", bucket, *mode)
    log("cluster up: " + " ".join(CLUSTER.admin("nodes").split("\n")[-2:]))

    network = CLUSTER.network()
    with Writers(3) as writers:
        phase(writers, "healthy", 5)

        docker("kill", CLUSTER.container("storage2"))
        phase(writers, "docker kill storage2")
        docker("start", CLUSTER.container("storage2"))
        CLUSTER.wait_healthy("storage2")

        docker("pause", CLUSTER.container("storage3"))
        phase(writers, "docker pause storage3")
        docker("unpause", CLUSTER.container("storage3"))

        docker("network", "disconnect", network, CLUSTER.container("storage4"))
        phase(writers, "docker network disconnect storage4")
        docker("network", "connect", "--alias", "storage4", network, CLUSTER.container("storage4"))

        leader = CLUSTER.meta_leader()
        docker("pause", leader)
        phase(writers, f"docker pause {leader} (the Raft leader)")
        docker("unpause", leader)

        leader = CLUSTER.meta_leader()
        docker("kill", leader)
        phase(writers, f"docker kill {leader} (the Raft leader)")
        docker("start", leader)

        docker("network", "disconnect", network, CLUSTER.container("gateway1"))
        phase(writers, "docker network disconnect gateway1")
        docker("network", "connect", "--alias", "gateway1", network, CLUSTER.container("gateway1"))

        docker("kill", CLUSTER.container("gateway1"))
        phase(writers, "docker kill gateway1")
        docker("start", CLUSTER.container("gateway1"))
        CLUSTER.wait_healthy("gateway1")
        phase(writers, "all back", 5)

    acked = dict(writers.acked)
    log(f"{len(acked)} PUTs acknowledged, {writers.failed} attempts refused or failed")
    assert len(acked) >= 50, "too few writes got through to prove anything"

    # The quorum and async writes, and anything a fault left short, reach three copies.
    stopped = time.monotonic()
    backlog = CLUSTER.admin("nodes").strip().split("\n")[-1]
    wait_until("the repair queue to drain", 180, lambda: "chunks waiting for copies: 0" in CLUSTER.admin("nodes"))
    log(f"{backlog} when the writers stopped; none {time.monotonic() - stopped:.1f} s later")

    # Every acknowledged PUT reads back identical, through either gateway.
    wait_until("both gateways answering", 60, lambda: all(s3.list_buckets() for s3 in gateways))
    for (bucket, key), digest in acked.items():
        for s3 in gateways:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, f"{bucket}/{key} differs"
    log(f"all {len(acked)} acknowledged objects read back identical through both gateways")

    rotten_and_lost_copies_come_back(gateways, acked)
    a_drained_node_gives_up_every_copy(gateways, acked)


def chunk_files(chunk):
    """The files of a chunk on each storage volume, as the host sees them."""
    files = {}
    for n in range(1, 5):
        path = os.path.join(CLUSTER.volume(f"storage{n}"), "chunks", chunk[0:2], chunk[2:4], chunk)
        if os.path.exists(path):
            files[n] = path
    return files


def good_copies(chunk):
    copies = 0
    for path in chunk_files(chunk).values():
        with open(path, "rb") as f:
            copies += hashlib.sha256(f.read()).hexdigest() == chunk
    return copies


def rotten_and_lost_copies_come_back(gateways, acked):
    # Single-chunk objects (200,000 bytes, chunks of 1 MiB): the chunk's id
    # is the body's SHA-256.
    small = [(b, k, d) for (b, k), d in acked.items() if b == "sync3" and len(chunk_files(d)) == 3]
    small = [(b, k, d) for b, k, d in small if os.path.getsize(next(iter(chunk_files(d).values()))) == 200_000]
    assert len(small) >= 2, "no single-chunk objects with three copies to damage"
    (_, rot_key, rot), (_, lost_key, lost) = small[0], small[1]
    rot_node, rot_path = next(iter(chunk_files(rot).items()))
    with open(rot_path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    lost_node, lost_path = next(iter(chunk_files(lost).items()))
    os.remove(lost_path)
    log(f"flipped a byte of {rot_key}'s copy on storage{rot_node}, deleted {lost_key}'s copy on storage{lost_node}")
    for _ in range(5):
        for s3 in gateways:
            for key, digest in ((rot_key, rot), (lost_key, lost)):
                body = s3.get_object(Bucket="sync3", Key=key)["Body"].read()
                assert hashlib.sha256(body).hexdigest() == digest, f"{key} read wrong"
    CLUSTER.admin("scrub", "start")
    started = time.monotonic()
    wait_until("three good copies of both chunks again", 120,
               lambda: good_copies(rot) == 3 and good_copies(lost) == 3)
    log(f"both copies made again {time.monotonic() - started:.1f} s after the scrub started")


def a_drained_node_gives_up_every_copy(gateways, acked):
    drained = CLUSTER.node_id("storage1")

    def drained_within(seconds):
        try:
            wait_until("storage1 drained", seconds, lambda: CLUSTER.held_chunks("storage1") == 0)
        except AssertionError:
            print(CLUSTER.admin("nodes"))
            for meta in ("meta1", "meta2", "meta3"):
                lines = CLUSTER.compose("logs", meta, check=False).stdout.splitlines()
                print(f"--- {meta} ---\n" + "\n".join([l for l in lines if "mover" in l][-20:]))
            raise

    # A gateway killed mid-write in a fault phase left pins on its nodes; a
    # retry through the other gateway may have committed such a chunk. Those
    # pins lapse within their 2 min lease, and then the copy moves too.
    with Writers(2, first=100) as writers:
        started = time.monotonic()
        CLUSTER.admin("node", "drain", drained, "--no-wait")
        drained_within(300)
        took = time.monotonic() - started
    # A write that chose its nodes just before the drain began may still
    # have put a copy there; it moves as well.
    drained_within(180)
    row = CLUSTER.node_row("storage1")
    log(f"storage1 drained in {took:.1f} s under {writers.count()} new PUTs: {row}")
    acked = {**acked, **writers.acked}
    for (bucket, key), digest in acked.items():
        body = gateways[1].get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"{bucket}/{key} differs after the drain"
    log(f"all {len(acked)} acknowledged objects read back after the drain")


if __name__ == "__main__":
    sys.exit(main())
