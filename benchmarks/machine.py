#!/usr/bin/env python3
"""The machine's own limits, for BENCHMARKS.md: cores, memory, disk, hashing
speed (`openssl speed`), loopback TCP throughput and its CPU cost, sequential
disk writes and fsync'd 4 KiB writes per second.

    python3 benchmarks/machine.py [--dir /tmp] [--json machine.json]

`--dir` should be on the disk the benchmarks write to.
"""

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import tempfile
import threading
import time

GiB = 1 << 30
MiB = 1 << 20


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def memory_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def openssl_speed(algorithm):
    """MB/s (10^6 bytes) of one core hashing 16 KiB blocks."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "3", "-bytes", "16384", "-evp", algorithm],
        capture_output=True, text=True, check=True,
    ).stdout
    line = [l for l in out.splitlines() if l.lower().startswith(algorithm)][-1]
    kbytes_per_s = float(re.findall(r"([\d.]+)k", line)[-1])
    return kbytes_per_s / 1000.0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loopback(total=4 * GiB, block=256 * 1024):
    """One TCP stream over 127.0.0.1: MiB/s and CPU seconds per GiB (sender
    and receiver together; both are threads of this process, and the copy
    work happens in the kernel, so the GIL does not limit it much)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def receive():
        conn, _ = server.accept()
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                break
            received[0] += n
        conn.close()

    thread = threading.Thread(target=receive)
    thread.start()
    client = socket.create_connection(server.getsockname())
    data = os.urandom(block)
    cpu0, t0 = cpu_seconds(), time.monotonic()
    sent = 0
    while sent < total:
        client.sendall(data)
        sent += block
    client.close()
    thread.join()
    elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    assert received[0] == total
    return total / MiB / elapsed, cpu / (total / GiB)


def sequential_write(directory, total=2 * GiB, block=MiB):
    """MiB/s writing a new file in 1 MiB blocks, fsync at the end included."""
    data = os.urandom(block)
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        t0 = time.monotonic()
        written = 0
        while written < total:
            written += os.write(f.fileno(), data)
        os.fsync(f.fileno())
        return total / MiB / (time.monotonic() - t0)


def fsync_rate(directory, seconds=5.0):
    """4 KiB writes per second, each followed by fdatasync."""
    data = os.urandom(4096)
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        count, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            os.write(f.fileno(), data)
            os.fdatasync(f.fileno())
            count += 1
        return count / (time.monotonic() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--json")
    args = parser.parse_args()

    results = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "sha256_mb_s_per_core": round(openssl_speed("sha256")),
        "md5_mb_s_per_core": round(openssl_speed("md5")),
    }
    mib_s, cpu_per_gib = loopback()
    results["loopback_tcp_mib_s"] = round(mib_s)
    results["loopback_tcp_cpu_s_per_gib"] = round(cpu_per_gib, 2)
    results["disk_sequential_write_mib_s"] = round(sequential_write(args.dir))
    results["disk_fsync_4k_writes_per_s"] = round(fsync_rate(args.dir))

    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
