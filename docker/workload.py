"""A recorded S3 workload for the fault matrix: client threads, spread over
both gateways, run PUT, GET, HEAD, DELETE, LIST, `If-None-Match: *`
creates, `If-Match` compare-and-swaps and one-part multipart uploads on a
few hot keys, and PUT then GET on a stream of new keys. Every operation
goes into a `history.History` with its outcome; every body is unique (its
first line names its value id) and is checked byte for byte when read.

Retries are off: a retried conditional write could meet its own first
attempt and be recorded as refused, a history no store could produce.
"""

import hashlib
import random
import threading
import traceback

from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from cluster import Threads
from history import History

SIZES = [300, 3_000, 200_000, 1_500_000]  # inline, inline, one chunk, two chunks of 1 MiB
SIZE_WEIGHTS = [4, 3, 2, 1]


def body_of(value, size):
    """The body of value `value`: its id on the first line, then bytes
    derived from it, so a read can tell the whole body is right."""
    head = f"{value} {size}\n".encode()
    seed = hashlib.sha256(head).digest()
    filler = (seed * (size // 32 + 1))[: max(0, size - len(head))]
    return head + filler


def value_of(body):
    """The value id a body names, or raises ValueError if the body is not
    exactly what that value's writer sent."""
    head, _, _ = body.partition(b"\n")
    value, size = (int(x) for x in head.split())
    if body != body_of(value, size):
        raise ValueError(f"the body of value {value} is not what was written ({len(body)} bytes)")
    return value


class Workload(Threads):
    """`make_client(g)`: a boto3 S3 client of gateway `g`, for each thread
    in turn; `prefix` keeps each phase's keys apart, so every phase starts
    from empty registers."""

    join_timeout = 120  # a client waits 10 s per request at most

    def __init__(self, make_client, gateways, bucket, prefix, threads=6, hot_keys=4, seed=0):
        super().__init__()
        # Clients are made here, in one thread: making boto3 clients from
        # several threads at once is not safe.
        self.clients = [make_client(gateways[n % len(gateways)]) for n in range(threads)]
        self.gateways = gateways
        self.bucket = bucket
        self.prefix = prefix
        self.hot = [f"{prefix}hot/{i}" for i in range(hot_keys)]
        self.history = History()
        self.corrupt = []  # (key, error): a body that was not what its writer sent
        self.unreadable = []  # keys no GET could read after healing
        self.crashed = []  # tracebacks of client threads that died
        self.etags = {}  # ETag -> value id, for HEAD, LIST and If-Match
        self.lock = threading.Lock()
        self.next_value = 0
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self.run, args=(n, self.rng.randrange(1 << 30)), daemon=True)
                        for n in range(threads)]

    def new_value(self, rng, multipart=False):
        with self.lock:
            self.next_value += 1
            value = self.next_value
        size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
        body = body_of(value, size)
        md5 = hashlib.md5(body)
        etag = f'"{hashlib.md5(md5.digest()).hexdigest()}-1"' if multipart else f'"{md5.hexdigest()}"'
        with self.lock:
            self.etags[etag] = value
        return value, body, etag

    def value_of_etag(self, etag):
        with self.lock:
            return self.etags.get(etag, f"unknown ETag {etag}")

    def run(self, n, seed):
        try:
            self.loop(n, seed)
        except Exception:  # a bug of the workload's own: the phase fails
            self.crashed.append(traceback.format_exc())

    def loop(self, n, seed):
        rng = random.Random(seed)
        s3 = self.clients[n]
        name = f"c{n}@gw{n % len(self.gateways) + 1}"
        seen = {}  # key -> the last ETag this client saw there
        fresh = 0
        while not self.stop.is_set():
            roll = rng.random()
            if roll < 0.12:
                fresh += 1
                key = f"{self.prefix}new/{n}/{fresh}"
                if self.put(s3, name, key, rng) is not None:
                    self.get(s3, name, key)
                continue
            key = rng.choice(self.hot)
            if roll < 0.30:
                seen[key] = self.put(s3, name, key, rng)
            elif roll < 0.50:
                seen[key] = self.get(s3, name, key)
            elif roll < 0.58:
                seen[key] = self.head(s3, name, key)
            elif roll < 0.65:
                self.delete(s3, name, key)
            elif roll < 0.73:
                self.create(s3, name, key, rng)
            elif roll < 0.86:
                self.cas(s3, name, key, seen.get(key), rng)
            elif roll < 0.92:
                self.multipart(s3, name, key, rng)
            else:
                self.list(s3, name)

    # Each operation records itself; an error that does not say the write
    # failed leaves it unknown (and a failed read out of the history).

    def put(self, s3, name, key, rng):
        value, body, etag = self.new_value(rng)
        op = self.history.invoke(key, "put", name, value=value)
        written = self.write(op, lambda: s3.put_object(Bucket=self.bucket, Key=key, Body=body))
        return etag if written else None

    def get(self, s3, name, key):
        def fetch():
            response = s3.get_object(Bucket=self.bucket, Key=key)
            return value_of(response["Body"].read()), response["ETag"]
        return self.read(name, key, fetch)

    def head(self, s3, name, key):
        def fetch():
            etag = s3.head_object(Bucket=self.bucket, Key=key)["ETag"]
            return self.value_of_etag(etag), etag
        return self.read(name, key, fetch)

    def read(self, name, key, fetch):
        """Records one read by `fetch` (value and ETag); returns the ETag."""
        op = self.history.invoke(key, "read", name)
        try:
            value, etag = fetch()
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                self.history.ok(op, None)
            else:
                self.history.unknown(op)
            return None
        except ValueError as e:  # a body that is not what its writer sent
            self.corrupt.append((key, str(e)))
            self.history.unknown(op)
            return None
        except Exception:
            self.history.unknown(op)
            return None
        self.history.ok(op, value)
        return etag

    def delete(self, s3, name, key):
        op = self.history.invoke(key, "delete", name)
        self.write(op, lambda: s3.delete_object(Bucket=self.bucket, Key=key))

    def write(self, op, call):
        """Records the outcome of one write by `call`; whether it applied."""
        try:
            call()
        except ClientError as e:
            # 409: the condition held at the gateway's first look, not when
            # the write applied: refused as surely as a 412. If-Match on no
            # object is refused with 404 NoSuchKey.
            code = e.response["Error"]["Code"]
            refused = code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409") or (
                op.kind == "cas" and code in ("NoSuchKey", "404"))
            if refused and op.kind in ("create", "cas"):
                self.history.ok(op, won=False)
            else:
                self.history.unknown(op, str(e))
            return False
        except EndpointConnectionError:
            self.history.unsent(op)
            return False
        except Exception as e:
            self.history.unknown(op, repr(e))
            return False
        self.history.ok(op)
        return True

    def create(self, s3, name, key, rng):
        value, body, _ = self.new_value(rng)
        op = self.history.invoke(key, "create", name, value=value)
        self.write(op, lambda: s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*"))

    def cas(self, s3, name, key, etag, rng):
        if etag is None:
            return
        expected = self.value_of_etag(etag)
        value, body, _ = self.new_value(rng)
        op = self.history.invoke(key, "cas", name, value=value, expected=expected)
        self.write(op, lambda: s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfMatch=etag))

    def multipart(self, s3, name, key, rng):
        value, body, _ = self.new_value(rng, multipart=True)
        op = self.history.invoke(key, "put", name, value=value)

        def upload():
            upload = s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            part = s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
            s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.write(op, upload)

    def list(self, s3, name):
        """One LIST of the hot keys: a read of each of them at some point
        while it ran (absent: a read of nothing)."""
        ops = {key: self.history.invoke(key, "read", name) for key in self.hot}
        try:
            listed = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}hot/"):
                for entry in page.get("Contents", []):
                    listed[entry["Key"]] = entry["ETag"]
        except Exception:
            for op in ops.values():
                self.history.unknown(op)
            return
        for key, op in ops.items():
            self.history.ok(op, self.value_of_etag(listed[key]) if key in listed else None)

    def read_all(self, s3):
        """After healing: one GET of every key the workload touched. A key
        none of 20 GETs could read is noted in `unreadable` (an async
        write's only copy can go with a lost disk: the phase judges it by
        its bucket)."""
        keys = sorted({op.key for op in self.history.ops})
        for key in keys:
            for _ in range(20):
                before = len(self.history.ops)
                self.get(s3, "final", key)
                if len(self.history.ops) > before:  # it was read
                    break
            else:
                self.unreadable.append(key)
        return keys


    def clean_up(self, s3):
        """Deletes what the phase left (not recorded): the next phase starts
        from empty keys, and the collector gets work."""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})


def client_config(read_timeout=10):
    return Config(connect_timeout=3, read_timeout=read_timeout, retries={"total_max_attempts": 1})
