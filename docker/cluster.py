"""A docker-compose JaDFS cluster for tests and benchmarks: the shipped
docker-compose.yml (3 meta, 4 storage nodes in 2 zones, 2 gateways) under a
project of its own, its gateways on free host ports, with per-service
settings layered on top in an override file.

    with Cluster("ci", env={"JADFS_CHUNK_SIZE": "1048576"}) as cluster:
        s3 = cluster.client(0)
        ...
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
COMPOSE = os.path.join(HERE, "docker-compose.yml")
ACCESS_KEY = "jadfsci"
SECRET_KEY = "jadfs-ci-secret-key"
SERVICES = ("meta1", "meta2", "meta3", "storage1", "storage2", "storage3", "storage4", "gateway1", "gateway2")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args, check=True, timeout=None):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=timeout)


def wait_until(what, timeout, check, every=0.5):
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
        time.sleep(every)


class Threads:
    """Client threads that run while the `with` block does: a subclass
    fills `self.threads`, whose targets end once `self.stop` is set."""

    join_timeout = None

    def __init__(self):
        self.stop = threading.Event()
        self.threads = []

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.join_timeout)


class Cluster:
    """`env` is docker-compose's environment: a container gets only the
    variables the compose file names for its service (JADFS_CHUNK_SIZE for
    gateways), anything else must go in `services`, which maps a service to
    the environment only it gets; `tmpfs` maps a service to the size of the
    tmpfs its data volume is instead (a disk a test can fill)."""

    def __init__(self, tag, env=None, services=None, tmpfs=None):
        self.project = f"jadfs-{tag}-{os.getpid()}"
        self.ports = [free_port(), free_port()]
        self.env = dict(
            os.environ,
            JADFS_ACCESS_KEY=ACCESS_KEY,
            JADFS_SECRET_KEY=SECRET_KEY,
            JADFS_CLUSTER_SECRET=secrets.token_hex(32),
            JADFS_PORT_1=str(self.ports[0]),
            JADFS_PORT_2=str(self.ports[1]),
            RUST_LOG="warn",
            **(env or {}),
        )
        self.services = services or {}
        self.tmpfs = tmpfs or {}
        self.override = os.path.join("/tmp", f"{self.project}-override.yml")

    def __enter__(self):
        with open(self.override, "w") as f:
            f.write('version: "2.4"\nservices:\n')
            for service in SERVICES:
                settings = self.services.get(service, {})
                f.write(f"  {service}:\n    environment:\n" if settings else f"  {service}: {{}}\n")
                for name, value in settings.items():
                    f.write(f"      {name}: \"{value}\"\n")
            if self.tmpfs:
                f.write("volumes:\n")
            for service, size in self.tmpfs.items():
                f.write(f"  {service}:\n    driver_opts: {{type: tmpfs, device: tmpfs, o: \"size={size}\"}}\n")
        log(f"starting the cluster as {self.project} (gateways on {self.ports})")
        self.compose("up", "-d")
        return self

    def __exit__(self, kind, *_):
        try:
            if kind is not None:
                self.print_logs()
                self.print_meta_state()
        finally:
            self.compose("down", "-v", "--timeout", "5", check=False)
            os.remove(self.override)

    def print_logs(self, tail=30):
        for service in SERVICES:
            print(f"--- {service} ---\n" + self.compose("logs", "--tail", str(tail), service, check=False).stdout)

    def print_meta_state(self):
        """After a failure, printed last so that a log's tail shows it: each
        meta node's view of Raft, and where its busy threads are (with gdb;
        the whole stacks go to a file beside the histories). What cannot be
        read is said, never raised: the cluster must still come down."""
        metas = [service for service in SERVICES if service.startswith("meta")]
        for meta in metas:
            try:
                out = subprocess.run(["docker", "exec", self.container(meta), "/usr/local/bin/jadfs", "admin", "meta",
                                      "--meta", "127.0.0.1:9100", "status"], capture_output=True, text=True, timeout=60)
                print(f"--- {meta}'s Raft view ---\n{(out.stdout or out.stderr).strip()}")
            except subprocess.TimeoutExpired:
                print(f"--- {meta}'s Raft view: no answer in 60 s")
        if not shutil.which("gdb"):
            return
        for meta in metas:
            pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.container(meta)],
                                 capture_output=True, text=True).stdout.strip()
            try:
                stacks = subprocess.run(["gdb", "-p", pid, "-batch", "-ex", "thread apply all bt 30"],
                                        capture_output=True, text=True, timeout=120).stdout
            except subprocess.TimeoutExpired:
                print(f"--- {meta}: gdb timed out")
                continue
            path = f"/tmp/{self.project}-{meta}-stacks.txt"
            with open(path, "w") as f:
                f.write(stacks)
            print(f"--- {meta}: busy threads (whole stacks in {path}) ---\n{busy_threads(stacks)}")

    def compose(self, *args, check=True):
        return subprocess.run(
            ["docker-compose", "-p", self.project, "-f", COMPOSE, "-f", self.override, *args],
            env=self.env, check=check, capture_output=True, text=True,
        )

    def container(self, service):
        return f"{self.project}_{service}_1"

    def network(self):
        return f"{self.project}_default"

    def volume(self, service):
        """Where the host sees a service's data volume."""
        return docker("volume", "inspect", "-f", "{{.Mountpoint}}", f"{self.project}_{service}").stdout.strip()

    def client(self, gateway, read_timeout=60, config=None):
        return boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.ports[gateway]}", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
            config=config or Config(connect_timeout=5, read_timeout=read_timeout,
                                    retries={"max_attempts": 2, "mode": "standard"}),
        )

    def wait_answering(self):
        for n in range(len(self.ports)):
            s3 = self.client(n)
            wait_until("the gateway answering S3", 120, lambda: s3.list_buckets() is not None)

    def admin(self, *args):
        """`jadfs admin` inside a gateway container (its env holds the root key)."""
        for gateway in ("gateway1", "gateway2"):
            out = docker("exec", self.container(gateway), "/usr/local/bin/jadfs", "admin",
                         "--endpoint", "http://127.0.0.1:9000", *args, check=False)
            if out.returncode == 0:
                return out.stdout
        raise RuntimeError(f"jadfs admin {args}: {out.stderr}")

    def node_row(self, service):
        """A storage node's line of `jadfs admin nodes` (the live one, if a
        new node took the name of a lost one)."""
        rows = [line for line in self.admin("nodes").splitlines() if f"{service}:9200" in line]
        return next((row for row in rows if " dead " not in row), rows[0])

    def node_id(self, service):
        return self.node_row(service).split()[0]

    def held_chunks(self, service):
        """How many chunks meta places on a storage node."""
        return int(self.node_row(service).split()[-2])

    def held_gib(self, service):
        return float(self.node_row(service).split()[-1])

    def chunk_files(self, service):
        """The paths of the chunk files on a storage node's volume, as the
        host sees them."""
        root = os.path.join(self.volume(service), "chunks")
        return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if len(f) == 64]

    def meta_leader(self):
        """The container name of the Raft leader, asked of any meta node that answers."""
        for meta in ("meta1", "meta2", "meta3"):
            out = docker("exec", self.container(meta), "/usr/local/bin/jadfs", "admin", "meta",
                         "--meta", "127.0.0.1:9100", "status", check=False)
            for line in out.stdout.splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 4 and fields[3].isdigit():
                    return self.container(f"meta{fields[3]}")
        raise RuntimeError("no meta node names a leader")

    def wait_healthy(self, service):
        wait_until(f"{service} healthy", 120, lambda: docker(
            "inspect", "-f", "{{.State.Health.Status}}", self.container(service)).stdout.strip() == "healthy")


# A thread with one of these among its innermost frames waits for work.
IDLE = ("park_internal", "park_timeout", "blocking::pool::Inner::run", "wait_until_internal", "epoll_wait",
        "Condvar::wait", "accept", "clock_nanosleep")
OURS = ("jadfs", "openraft", "rusqlite", "sqlite3", "actix")


def busy_threads(stacks):
    """A summary of gdb's `thread apply all bt`: each stack of a thread that
    is not idle, as its innermost frame and its first frames of our code or
    our crates, counted."""
    counts = {}
    for thread in stacks.split("\nThread ")[1:]:
        names = [re.sub(r"^#\d+\s+(0x[0-9a-f]+ in )?", "", line).split(" (")[0]
                 for line in thread.splitlines() if line.startswith("#")]
        if not names or any(word in name for name in names[:12] for word in IDLE):
            continue
        ours = [name[:100] for name in names[1:] if any(word in name for word in OURS)][:3]
        key = " <- ".join([names[0][:60], *ours])
        counts[key] = counts.get(key, 0) + 1
    return "\n".join(f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
