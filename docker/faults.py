#!/usr/bin/env python3
"""The fault matrix: the docker-compose cluster under one fault per phase,
while a recorded workload (docker/workload.py) runs on a sync bucket and,
reported but not asserted, on a quorum-2 and an async one. After each
phase the cluster heals, every key is read back, and the checker
(docker/history.py) judges the whole history: every key must be a
linearizable register, every body byte-identical to what its writer sent.

    docker/build-image.sh target/debug/jadfs jadfs:ci
    JADFS_IMAGE=jadfs:ci python3 docker/faults.py [--seed N] [--only NAME,...] [--seconds 30] [--long]

A seed picks the order of the faults and every random choice in them; a
failing run prints its seed and the smallest history found that shows the
anomaly. The table of the last run goes to docker/FAULTS.md.
"""

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

from cluster import Cluster, docker, log, wait_until
from history import OK, UNKNOWN, check, staleness
from workload import Workload, client_config

HERE = os.path.dirname(os.path.abspath(__file__))
# Each phase's histories, one file per bucket (history.History.load reads them).
HISTORIES = os.environ.get("JADFS_FAULT_HISTORIES", "/tmp/jadfs-fault-histories")
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEWED = ("meta2", "gateway2")  # the services whose clocks a phase moves
FULL = "storage4"  # the storage node whose disk (a tmpfs) a phase fills
DEAD_AFTER = 10
CHUNK_SIZE = 1 << 20  # so the workload's larger bodies span two chunks
GC_GRACE = "10s"  # garbage is collected within a phase, under its fault
METAS = ("meta1", "meta2", "meta3")
STORAGE = ("storage1", "storage2", "storage3", "storage4")
EVERYONE = METAS + STORAGE + ("gateway1", "gateway2")


def skewable(settings):
    """libfaketime preloaded, its offset read each second from a file a
    phase writes: the process's wall clock really moves, its monotonic
    clock does not."""
    return {**settings, "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": "/tmp/faketime",
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def make_cluster():
    """Settings only some roles read go to those services: docker-compose
    hands a container only the variables the compose file names for it
    (the chunk size, for gateways)."""
    services = {m: {"JADFS_NODE_DEAD_AFTER": str(DEAD_AFTER), "JADFS_GC_GRACE": GC_GRACE} for m in METAS}
    services.update({s: {"JADFS_SCRUB_RATE": "200"} for s in STORAGE})
    for s in SKEWED:
        services[s] = skewable(services.get(s, {}))
    return Cluster("faults", env={"JADFS_CHUNK_SIZE": str(CHUNK_SIZE)}, services=services, tmpfs={FULL: "2g"})


# -- the means of harm ------------------------------------------------------


def pid_of(cluster, service):
    return docker("inspect", "-f", "{{.State.Pid}}", cluster.container(service)).stdout.strip()


def ip_of(cluster, service):
    return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                  cluster.container(service)).stdout.strip()


def iptables(pid, *rule):
    """A rule in the network namespace of process `pid`, with the host's
    iptables: the image needs neither the tool nor NET_ADMIN."""
    subprocess.run(["nsenter", "-t", pid, "-n", "iptables", *rule], check=True, capture_output=True, text=True)


def cut(cluster, service, peers, inbound=True, outbound=True):
    pid = pid_of(cluster, service)
    for peer in peers:
        ip = ip_of(cluster, peer)
        if inbound:
            iptables(pid, "-A", "INPUT", "-s", ip, "-j", "DROP")
        if outbound:
            iptables(pid, "-A", "OUTPUT", "-d", ip, "-j", "DROP")


def mend(cluster, services):
    for service in services:
        pid = pid_of(cluster, service)
        iptables(pid, "-F", "INPUT")
        iptables(pid, "-F", "OUTPUT")


def set_clock(cluster, service, offset):
    path = f"/tmp/{cluster.project}-faketime"
    with open(path, "w") as f:
        f.write(f"{offset}\n")
    docker("cp", path, f"{cluster.container(service)}:/tmp/faketime")
    os.remove(path)


def followers(cluster):
    """The leader's service name, and the other meta nodes'."""
    leader = next(m for m in METAS if cluster.container(m) == cluster.meta_leader())
    return leader, [m for m in METAS if m != leader]


# -- the faults: each does its harm, holds it for the phase, and undoes it --


def kill_and_restart(cluster, target, hold):
    docker("kill", "-s", "KILL", target)
    started = time.monotonic()
    shown = ""
    if "_storage" in target:
        # An operator must see it: `jadfs admin status` names the node down.
        shown = f" (shown down by admin status after {shown_down(cluster, target):.0f} s)"
    time.sleep(max(0, min(10, hold) - (time.monotonic() - started)))
    docker("start", target)
    down = time.monotonic() - started
    time.sleep(max(0, hold - down))
    return f"{target} killed, restarted after {down:.0f} s{shown}"


def shown_down(cluster, target):
    """Waits until `jadfs admin status --json` shows the storage node of
    container `target` not alive, with an alarm naming it; how long it took."""
    service = target.rsplit("_", 2)[-2]
    started = time.monotonic()

    def down():
        status = json.loads(cluster.admin("status", "--json"))
        # The newest registration (a lost node's replacement took its name).
        node = max((n for n in status["nodes"] if n["addr"] == f"{service}:9200"), key=lambda n: n["registered_ms"])
        named = any(f"({service}:9200)" in alarm for alarm in status["alarms"])
        return node["state"] != "alive" and named
    wait_until(f"admin status to show {service} down", 60, down, every=1)
    return time.monotonic() - started


def stop_and_continue(cluster, target, hold):
    docker("kill", "-s", "STOP", target)
    time.sleep(hold)
    docker("kill", "-s", "CONT", target)
    return f"{target} stopped (SIGSTOP) for {hold} s"


def target(cluster, rng, who, how):
    """The container a fault strikes: a storage node, the leader, a
    follower or a gateway. A kill spares the FULL node: its disk is a
    tmpfs, which a stopped container loses, so killing it would be a
    `lose_storage` (that phase's own) and not a restart."""
    if who == "storage":
        return cluster.container(rng.choice([s for s in STORAGE if how != "kill" or s != FULL]))
    if who == "leader":
        return cluster.meta_leader()
    if who == "follower":
        return cluster.container(rng.choice(followers(cluster)[1]))
    return cluster.container(rng.choice(("gateway1", "gateway2")))


def harm(how, who):
    """A fault that kills or stops (`how`) one container of a kind (`who`)."""
    action = {"kill": kill_and_restart, "pause": stop_and_continue}[how]

    def fault(cluster, rng, hold):
        return action(cluster, target(cluster, rng, who, how), hold)
    fault.__name__ = f"{how}_{who}"
    return fault


def isolate_leader(cluster, hold, outbound):
    leader, others = followers(cluster)
    cut(cluster, leader, others, outbound=outbound)
    time.sleep(hold)
    mend(cluster, [leader])
    return leader, ", ".join(others)


def partition_leader(cluster, rng, hold):
    leader, others = isolate_leader(cluster, hold, outbound=True)
    return f"{leader} (the leader) cut off from {others}"


def partition_halves(cluster, rng, hold):
    everyone = list(EVERYONE)
    rng.shuffle(everyone)
    half, rest = everyone[: len(everyone) // 2], everyone[len(everyone) // 2:]
    for service in half:
        cut(cluster, service, rest)
    time.sleep(hold)
    mend(cluster, half)
    return f"{', '.join(sorted(half))} | {', '.join(sorted(rest))}"


def partition_one_way(cluster, rng, hold):
    leader, others = isolate_leader(cluster, hold, outbound=False)
    return f"{leader} (the leader) hears nothing from {others}, still sends"


def disconnect(cluster, rng, hold):
    service = rng.choice(STORAGE + ("gateway1", "gateway2"))
    docker("network", "disconnect", cluster.network(), cluster.container(service))
    time.sleep(hold)
    docker("network", "connect", "--alias", service, cluster.network(), cluster.container(service))
    return f"{service} off the network (docker network disconnect)"


def drain(cluster, rng, hold):
    """A storage node drained under the workload: it must end with no copy
    (then it takes copies again, for the phases after)."""
    service = rng.choice(STORAGE)
    node = cluster.node_id(service)
    started = time.monotonic()
    cluster.admin("node", "drain", node, "--no-wait")
    time.sleep(hold)
    # A dead writer's pins lapse within their 2 min lease; then its copies move too.
    wait_until(f"{service} drained", 300, lambda: cluster.held_chunks(service) == 0, every=1)
    took = time.monotonic() - started
    cluster.admin("node", "drain", node, "--stop")
    return f"{service} drained in {took:.0f} s"


def skew(service):
    def fault(cluster, rng, hold):
        offset = rng.choice(("+10m", "-10m"))
        set_clock(cluster, service, offset)
        time.sleep(hold)
        set_clock(cluster, service, "+0")
        return f"{service}'s clock {offset}"
    fault.__name__ = f"skew_{service}"
    return fault


def fill_disk(cluster, rng, hold):
    service = FULL
    ballast = os.path.join(cluster.volume(service), "ballast-by-test")
    free = os.statvfs(os.path.dirname(ballast))
    left = free.f_bavail * free.f_frsize
    # Leave less than the node's reserve (256 MiB): it refuses new chunks.
    size = max(0, left - (64 << 20))
    subprocess.run(["fallocate", "-l", str(size), ballast], check=True)
    time.sleep(hold)
    os.remove(ballast)
    return f"{service}'s disk filled ({size >> 20} MiB of ballast)"


def rot_copies(cluster, rng, hold):
    """A flipped byte in one copy and a deleted file of another, on one
    node, in two objects of the fault's own: they must read back right
    through both gateways while damaged, and have 3 good copies again once
    that node's scrubber has run. (The workload's newest chunks are mostly
    of hot keys since overwritten: garbage, which is rightly not repaired.)"""
    started = time.monotonic()
    bucket, s3 = BUCKETS[0][0], cluster.client(0)
    tag = rng.randrange(1 << 30)
    bodies = {f"rot-copies/{tag}/{name}": rng.randbytes(CHUNK_SIZE * 3 // 2) for name in ("a", "b")}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    try:
        volumes = {service: cluster.volume(service) for service in STORAGE}
        chunks = [chunk for body in bodies.values() for chunk in chunk_ids(body)]
        whole = lambda: all(len(good_copies(volumes, c)) >= 3 for c in chunks)  # noqa: E731
        wait_until("3 good copies of each new chunk", 60, whole)
        service, rotten, gone, at = damage(cluster, rng, volumes, chunks)
        damaged = time.monotonic()
        assert not whole(), "the damage did not take"
        read_back(cluster, bucket, bodies)
        node = cluster.node_id(service)
        cluster.admin("scrub", "start", "--node", node)
        wait_until("3 good copies of each damaged chunk again", 180, whole, every=1)
        repaired = time.monotonic() - damaged
        time.sleep(max(0, hold - (time.monotonic() - started)))
    finally:
        for key in bodies:
            s3.delete_object(Bucket=bucket, Key=key)
    # Reads that met a bad copy have it made again too: the scrubber may find none.
    return (f"on {service}: byte {at} of {rotten[:12]} flipped, {gone[:12]} deleted; 3 good copies again "
            f"{repaired:.1f} s later (its scrub pass found {scrub_status(cluster, node)['bad_copies']} bad)")


def chunk_ids(body):
    """The ids of the chunks a body is cut into: the SHA-256 of each."""
    return [hashlib.sha256(body[i:i + CHUNK_SIZE]).hexdigest() for i in range(0, len(body), CHUNK_SIZE)]


def chunk_path(volume, chunk):
    """Where a storage node keeps a chunk's file (chunks/ab/cd/abcd...)."""
    return os.path.join(volume, "chunks", chunk[0:2], chunk[2:4], chunk)


def good_copies(volumes, chunk):
    """The storage nodes whose volume holds a file of `chunk` with its bytes."""
    good = []
    for service, volume in volumes.items():
        try:
            with open(chunk_path(volume, chunk), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() == chunk:
                    good.append(service)
        except FileNotFoundError:
            pass
    return good


def damage(cluster, rng, volumes, chunks):
    """On a node holding two of `chunks` whose scrubber is idle (a pass
    under way may be past them, and a new one starts only when asked or a
    day later): one copy's byte flipped, another's file deleted."""
    held = {s: [c for c in chunks if s in good_copies(volumes, c)] for s in volumes}
    service = rng.choice(sorted(s for s, mine in held.items() if len(mine) >= 2))
    node = cluster.node_id(service)
    wait_until(f"{service}'s scrubber idle", 120, lambda: not scrub_status(cluster, node)["running"], every=1)
    rotten, gone = rng.sample(held[service], 2)
    path = chunk_path(volumes[service], rotten)
    at = rng.randrange(os.path.getsize(path))
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    os.remove(chunk_path(volumes[service], gone))
    return service, rotten, gone, at


def scrub_status(cluster, node):
    """A storage node's scrubber: `running`, `bad_copies` (of the current
    or last pass), ..."""
    return json.loads(cluster.admin("scrub", "status", "--node", node, "--json"))[0]["scrub"]


def read_back(cluster, bucket, bodies, times=3):
    """Every body read whole through each gateway, a few times (a read may
    go to any copy), must be what was written."""
    for gateway in (0, 1):
        s3 = cluster.client(gateway)
        for _ in range(times):
            for key, body in bodies.items():
                if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
                    raise AssertionError(f"{key} read wrong through gateway{gateway + 1} with a copy damaged")


def lose_storage(cluster, rng, hold):
    """A storage node lost for good with its disk; a new, empty one takes
    its name. Every chunk must be back to three copies."""
    service = rng.choice(STORAGE)
    cluster.compose("rm", "-sf", service)
    docker("volume", "rm", f"{cluster.project}_{service}")
    time.sleep(hold / 2)
    cluster.compose("up", "-d", "--no-deps", service)
    time.sleep(hold / 2)
    return f"{service} lost with its data, an empty one started in its place"


FAULTS = [harm(how, who) for how in ("kill", "pause") for who in ("storage", "leader", "follower", "gateway")]
FAULTS += [partition_leader, partition_halves, partition_one_way, disconnect,
          skew("meta2"), skew("gateway2"), fill_disk, rot_copies, drain, lose_storage]


# -- a phase ------------------------------------------------------------------


def write_gap(history, start, end):
    """The longest time in [start, end] with no write acknowledged: how long
    writes failed."""
    acks = sorted(op.completed for op in history.ops
                  if op.kind != "read" and op.outcome == OK and start <= op.completed <= end)
    points = [start, *acks, end]
    return max(b - a for a, b in zip(points, points[1:])) / 1e9


def counts(history):
    writes = [op for op in history.ops if op.kind != "read"]
    return {
        "ops": len(history.ops),
        "writes ok": sum(op.outcome == OK for op in writes),
        "writes unknown": sum(op.outcome == UNKNOWN for op in writes),
        "reads ok": sum(op.kind == "read" for op in history.ops),
        "reads failed": history.failed_reads,
        "writes unsent": history.unsent_writes,
    }


# (bucket, replication, client threads, asserted): the sync bucket must show
# no anomaly; the others' are reported.
BUCKETS = [("sync3", ["sync"], 5, True), ("quorum2", ["sync", "--write-quorum", "2"], 2, False),
           ("lazy", ["async"], 2, False)]


def run_phase(cluster, index, fault, rng, hold):
    prefix = f"p{index}-{fault.__name__}/"
    make = lambda g: cluster.client(g, config=client_config())  # noqa: E731
    workloads = [Workload(make, [0, 1], bucket, prefix, threads=threads, seed=rng.randrange(1 << 30))
                 for bucket, _, threads, _ in BUCKETS]
    sync = workloads[0]
    with contextlib.ExitStack() as running:
        for w in workloads:
            running.enter_context(w)
        time.sleep(3)
        started = time.monotonic_ns()
        what = fault(cluster, rng, hold)
        healed = time.monotonic_ns()
        time.sleep(5)
    gap = write_gap(sync.history, started, healed + 5 * 10**9)
    mark = time.monotonic()
    heal(cluster)
    copies = time.monotonic() - mark
    reader = cluster.client(0, config=client_config(read_timeout=60))
    verdicts = []
    for (bucket, _, _, _), w in zip(BUCKETS, workloads):
        w.read_all(reader)
        w.history.dump(os.path.join(HISTORIES, f"{prefix.strip('/')}-{bucket}.jsonl"))
        verdicts.append(check(w.history))
        w.clean_up(reader)
    found = [len(v.anomalies) + len(v.undecided) + len(w.corrupt) + len(w.unreadable)
             for v, w in zip(verdicts, workloads)]
    stale = [staleness(w.history) for w in workloads]
    row = {"fault": fault.__name__, "what": what, **counts(sync.history), "anomalies": found[0],
           "quorum-2 / async anomalies": f"{found[1]} / {found[2]}",
           "quorum-2 / async stale (s)": f"{stale[1]:.1f} / {stale[2]:.1f}",
           "writes back (s)": round(gap, 1), "3 copies (s)": round(copies, 1)}
    log(" ".join(f"{k}={v}" for k, v in row.items()))
    problems = []
    for (bucket, _, _, asserted), verdict, w in zip(BUCKETS, verdicts, workloads):
        report = [verdict.report()] if not verdict.ok else []
        report += [f"{key}: {error}" for key, error in w.corrupt]
        report += [f"{key}: no GET could read it after healing" for key in w.unreadable]
        problems.extend(f"{bucket}: a client thread died: {t}" for t in w.crashed)
        if report and asserted:
            problems.extend(f"{bucket}: {r}" for r in report)
        elif report:
            log(f"{bucket}, reported only:\n" + "\n".join(report))
    return row, problems


def heal(cluster):
    """Waits until every container runs healthy and every chunk has its
    copies again."""
    for service in EVERYONE:
        state = docker("inspect", "-f", "{{.State.Status}}", cluster.container(service), check=False).stdout.strip()
        if state != "running":
            docker("start", cluster.container(service), check=False)
    for service in EVERYONE:
        cluster.wait_healthy(service)
    wait_until("every gateway answering", 120, lambda: all(cluster.client(g).list_buckets() for g in (0, 1)))
    try:
        wait_until("every chunk with its copies", 300,
                   lambda: "chunks waiting for copies: 0" in cluster.admin("nodes"), every=1)
    except AssertionError:
        log("the cluster as `jadfs admin status` sees it:\n" + cluster.admin("status"))
        raise
    # An async write's only copy can go with a lost disk: the reads after
    # show whose objects it was (an anomaly in a sync bucket, reported only
    # in the async one).
    lost = [line for line in cluster.admin("nodes").splitlines() if line.startswith("chunks with no copy left")]
    if lost:
        log(lost[0])


def table(rows):
    columns = ["fault", "ops", "writes ok", "writes unknown", "writes unsent", "reads ok", "reads failed", "anomalies",
               "quorum-2 / async anomalies", "quorum-2 / async stale (s)",
               "writes back (s)", "3 copies (s)", "what"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path, seed, seconds, rows):
    """This run's table at the head of `path`; the sections after the head
    there (the bugs the matrix found, written by hand) are kept."""
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        kept = text[text.find("\n## "):] if "\n## " in text else ""
    with open(path, "w") as f:
        f.write(f"# The fault matrix, last run\n\n`python3 docker/faults.py --seed {seed}` "
                f"({time.strftime('%Y-%m-%d')}, {seconds} s per fault). Columns: operations "
                "recorded on the sync bucket; writes acknowledged, of unknown outcome, and never sent "
                "(no connection); reads that answered, and that failed; anomalies the checker found there "
                "(must be 0); anomalies on the quorum-2 and async buckets (reported, not asserted), and "
                "how long their reads lagged at worst behind an acknowledged write; the longest time no "
                "write was acknowledged from the fault until 5 s after it healed; the time after that "
                f"until every chunk had its copies again.\n\n{table(rows)}\n{kept}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", default="", help="comma-separated fault names")
    parser.add_argument("--seconds", type=int, default=30, help="how long each fault holds")
    parser.add_argument("--long", action="store_true", help="every fault three times, each held 90 s")
    parser.add_argument("--report", default=os.path.join(HERE, "FAULTS.md"))
    args = parser.parse_args()
    # A TERM (a CI timeout, a kill) unwinds like an error: the cluster goes down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    faults = [f for f in FAULTS if not args.only or f.__name__ in args.only.split(",")]
    if args.long:
        faults, args.seconds = faults * 3, 90
    rng.shuffle(faults)
    if any(f.__name__.startswith("skew") for f in faults) and not os.path.exists(FAKETIME):
        sys.exit(f"clock skew needs libfaketime on the host ({FAKETIME}; apt install faketime) for the image")
    log(f"seed {seed}: {', '.join(f.__name__ for f in faults)}; histories in {HISTORIES}")
    os.makedirs(HISTORIES, exist_ok=True)
    rows, failures = [], []
    with make_cluster() as cluster:
        cluster.wait_answering()
        s3 = cluster.client(0)
        for bucket, mode, _, _ in BUCKETS:
            s3.create_bucket(Bucket=bucket)
            cluster.admin("replication", "set", "--bucket", bucket, *mode)
        for index, fault in enumerate(faults):
            try:
                row, problems = run_phase(cluster, index, fault, rng, args.seconds)
            except Exception:
                # The traceback first, then the logs and the meta nodes'
                # state, so that the tail of a CI log shows the state.
                traceback.print_exc()
                log(f"FAILED in phase {index} ({fault.__name__}) with seed {seed}")
                cluster.print_logs()
                cluster.print_meta_state()
                log(f"FAILED in phase {index} ({fault.__name__}) with seed {seed}")
                return 1
            rows.append(row)
            failures.extend(f"{fault.__name__}: {p}" for p in problems)
        print(table(rows))
        write_report(args.report, seed, args.seconds, rows)
    if failures:
        print(f"FAILED with seed {seed}:\n" + "\n".join(failures))
        return 1
    log(f"PASS (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
