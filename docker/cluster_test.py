#!/usr/bin/env python3
"""Failure test of the docker-compose cluster (3 meta, 4 storage in 2 zones,
2 gateways), driven with boto3 the way a user would.

While writers PUT objects through both gateways into a sync bucket, a sync
bucket with write quorum 2 and an async bucket, one container at a time is
`docker kill`ed, `docker pause`d or cut off with `docker network
disconnect`: storage nodes, the Raft leader, a gateway. Afterwards every
acknowledged PUT must read back identical through both gateways, and the
repair queue must drain (every chunk back to three copies).

Last, on the host's view of the storage volumes: one copy of an object is
rotted (a flipped byte) and another object's copy deleted; reads stay right,
the scrubber finds both and each chunk is back to three good copies.

    docker/build-image.sh target/debug/jadfs jadfs:ci
    JADFS_IMAGE=jadfs:ci python3 docker/cluster_test.py
"""

import hashlib
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
COMPOSE = os.path.join(HERE, "docker-compose.yml")
PROJECT = f"jadfs-ci-{os.getpid()}"
ACCESS_KEY = "jadfsci"
SECRET_KEY = "jadfs-ci-secret-key"
BUCKETS = {"sync3": ["sync"], "quorum2": ["sync", "--write-quorum", "2"], "lazy": ["async"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORTS = [free_port(), free_port()]
ENV = dict(
    os.environ,
    JADFS_ACCESS_KEY=ACCESS_KEY,
    JADFS_SECRET_KEY=SECRET_KEY,
    JADFS_CLUSTER_SECRET=secrets.token_hex(32),
    JADFS_PORT_1=str(PORTS[0]),
    JADFS_PORT_2=str(PORTS[1]),
    # Small chunks, so objects of a few MiB span several.
    JADFS_CHUNK_SIZE="1048576",
    RUST_LOG="warn",
)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# The test's own setting on top of the shipped file: the scrubbers run fast
# enough to find a rotten copy within the test.
OVERRIDE = os.path.join("/tmp", f"{PROJECT}-override.yml")
with open(OVERRIDE, "w") as f:
    f.write('version: "2.4"\nservices:\n')
    for n in range(1, 5):
        f.write(f"  storage{n}:\n    environment:\n      JADFS_SCRUB_RATE: \"200\"\n")


def compose(*args, check=True):
    return subprocess.run(
        ["docker-compose", "-p", PROJECT, "-f", COMPOSE, "-f", OVERRIDE, *args],
        env=ENV, check=check, capture_output=True, text=True,
    )


def docker(*args, check=True, timeout=None):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=timeout)


def container(service):
    return f"{PROJECT}_{service}_1"


def admin(*args):
    """`jadfs admin` inside a gateway container (its env holds the root key)."""
    for gateway in ("gateway1", "gateway2"):
        out = docker("exec", container(gateway), "/usr/local/bin/jadfs", "admin",
                     "--endpoint", "http://127.0.0.1:9000", *args, check=False)
        if out.returncode == 0:
            return out.stdout
    raise RuntimeError(f"jadfs admin {args}: {out.stderr}")


def wait_until(what, timeout, check):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception as e:  # not ready yet
            last = e
        else:
            last = None
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last error: {last})")
        time.sleep(0.5)


def client(port):
    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"}),
    )


def meta_leader():
    """The container name of the Raft leader, asked of any meta node that answers."""
    for meta in ("meta1", "meta2", "meta3"):
        out = docker("exec", container(meta), "/usr/local/bin/jadfs", "admin", "meta",
                     "--meta", "127.0.0.1:9100", "status", check=False)
        for line in out.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 4 and fields[3].isdigit():
                return container(f"meta{fields[3]}")
    raise RuntimeError("no meta node names a leader")


class Writers:
    """Threads that PUT objects through both gateways and remember each
    acknowledged one (and only those) with its SHA-256."""

    def __init__(self, count, first=0):
        # Writers numbered from `first`: each number writes its own keys and
        # bodies, so a later group never rewrites an earlier one's objects.
        self.acked = {}
        self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(first + i,)) for i in range(count)]

    def run(self, n):
        rng = random.Random(n)
        clients = [client(p) for p in PORTS]
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

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def count(self):
        with self.lock:
            return len(self.acked)


def phase(writers, what, seconds=12):
    before = writers.count()
    time.sleep(seconds)
    log(f"{what}: {writers.count() - before} PUTs acknowledged in {seconds} s")


def wait_healthy(service):
    wait_until(f"{service} healthy", 120, lambda: docker(
        "inspect", "-f", "{{.State.Health.Status}}", container(service)).stdout.strip() == "healthy")


def main():
    log(f"starting the cluster as {PROJECT} (gateways on {PORTS})")
    compose("up", "-d")
    try:
        run()
        log("PASS")
    except BaseException:
        for service in ("meta1", "meta2", "meta3", "storage1", "storage2", "storage3", "storage4",
                        "gateway1", "gateway2"):
            print(f"--- {service} ---\n" + compose("logs", "--tail", "30", service, check=False).stdout)
        raise
    finally:
        compose("down", "-v", "--timeout", "5", check=False)
        os.remove(OVERRIDE)


def run():
    gateways = [client(p) for p in PORTS]
    for s3 in gateways:
        wait_until("the gateway answering S3", 120, lambda: s3.list_buckets() is not None)
    for bucket, mode in BUCKETS.items():
        gateways[0].create_bucket(Bucket=bucket)
        admin("replication", "set", "--bucket", bucket, *mode)
    log("cluster up: " + " ".join(admin("nodes").split("\n")[-2:]))

    network = f"{PROJECT}_default"
    with Writers(3) as writers:
        phase(writers, "healthy", 5)

        docker("kill", container("storage2"))
        phase(writers, "docker kill storage2")
        docker("start", container("storage2"))
        wait_healthy("storage2")

        docker("pause", container("storage3"))
        phase(writers, "docker pause storage3")
        docker("unpause", container("storage3"))

        docker("network", "disconnect", network, container("storage4"))
        phase(writers, "docker network disconnect storage4")
        docker("network", "connect", "--alias", "storage4", network, container("storage4"))

        leader = meta_leader()
        docker("pause", leader)
        phase(writers, f"docker pause {leader} (the Raft leader)")
        docker("unpause", leader)

        leader = meta_leader()
        docker("kill", leader)
        phase(writers, f"docker kill {leader} (the Raft leader)")
        docker("start", leader)

        docker("network", "disconnect", network, container("gateway1"))
        phase(writers, "docker network disconnect gateway1")
        docker("network", "connect", "--alias", "gateway1", network, container("gateway1"))

        docker("kill", container("gateway1"))
        phase(writers, "docker kill gateway1")
        docker("start", container("gateway1"))
        wait_healthy("gateway1")
        phase(writers, "all back", 5)

    acked = dict(writers.acked)
    log(f"{len(acked)} PUTs acknowledged, {writers.failed} attempts refused or failed")
    assert len(acked) >= 50, "too few writes got through to prove anything"

    # The quorum and async writes, and anything a fault left short, reach three copies.
    stopped = time.monotonic()
    backlog = admin("nodes").strip().split("\n")[-1]
    wait_until("the repair queue to drain", 180, lambda: "chunks waiting for copies: 0" in admin("nodes"))
    log(f"{backlog} when the writers stopped; none {time.monotonic() - stopped:.1f} s later")

    # Every acknowledged PUT reads back identical, through either gateway.
    wait_until("both gateways answering", 60, lambda: all(s3.list_buckets() for s3 in gateways))
    for (bucket, key), digest in acked.items():
        for s3 in gateways:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, f"{bucket}/{key} differs"
    log(f"all {len(acked)} acknowledged objects read back identical through both gateways")

    rotten_and_lost_copies_come_back(gateways, acked)


def chunk_files(chunk):
    """The files of a chunk on each storage volume, as the host sees them."""
    files = {}
    for n in range(1, 5):
        mount = docker("volume", "inspect", "-f", "{{.Mountpoint}}", f"{PROJECT}_storage{n}").stdout.strip()
        path = os.path.join(mount, "chunks", chunk[0:2], chunk[2:4], chunk)
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
    admin("scrub", "start")
    started = time.monotonic()
    wait_until("three good copies of both chunks again", 120,
               lambda: good_copies(rot) == 3 and good_copies(lost) == 3)
    log(f"both copies made again {time.monotonic() - started:.1f} s after the scrub started")


if __name__ == "__main__":
    sys.exit(main())
