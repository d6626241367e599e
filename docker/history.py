"""Histories of S3 operations and a linearizability checker for them.

Every key is a register holding a value id (one unique body per write) or
nothing. A client records each operation as invoked and then completed with
its outcome: "ok" (it took effect, or for a conditional write refused with
412, that it saw the condition fail), or "unknown" (a timeout or an error
that does not say whether the write was applied). Reads that failed, and
writes that never left the client, are left out: they did nothing.

`check` judges a history: per key, is there an order of the operations,
each placed between its invocation and its completion (an unknown one
anywhere after its invocation, or never; see `plan`), in which every read
sees the last write before it? That is a Wing-Gong search with Lowe's
memoisation (as Porcupine and Knossos do): depth first over which pending
operation takes effect next, never revisiting a (set of done operations,
register value) pair.

`staleness` measures what the checker only judges: how long reads lagged
behind acknowledged writes (the window of a bucket that promises less).

Operations (`Op.kind`):
    put v          unconditional write (PutObject, CompleteMultipartUpload)
    delete         the key is gone afterwards (DeleteObject)
    read r         GET, HEAD or a LIST entry saw r (None: no such key)
    create v       If-None-Match: * write; won=False when it was refused
    cas e v        If-Match write expecting value e; won=False when refused
"""

import bisect
import copy
import itertools
import json
import time
from dataclasses import dataclass, field

# How a completion is recorded.
OK = "ok"
UNKNOWN = "unknown"

_ids = itertools.count()


@dataclass(eq=False)  # operations are equal only to themselves
class Op:
    key: str
    kind: str  # put, delete, read, create, cas
    value: object = None  # the value written (put, create, cas), or read
    expected: object = None  # cas: the value it expects
    won: bool = True  # create, cas: False when it answered 412
    invoked: int = 0  # monotonic ns
    completed: float = float("inf")  # monotonic ns; inf while unknown
    outcome: str = UNKNOWN
    client: str = ""
    error: str = ""  # why the outcome is unknown
    id: int = field(default_factory=lambda: next(_ids))

    def __str__(self):
        what = {
            "put": f"put {self.value}",
            "delete": "delete",
            "read": f"read -> {self.value}",
            "create": f"create {self.value} -> {'won' if self.won else '412'}",
            "cas": f"cas {self.expected}->{self.value} -> {'won' if self.won else '412'}",
        }[self.kind]
        end = "?" if self.completed == float("inf") else f"{self.completed / 1e6:.1f}"
        return f"[{self.invoked / 1e6:.1f} .. {end} ms] {self.client} {self.key}: {what} ({self.outcome})"


class History:
    """Thread-safe enough for CPython threads: list appends are atomic, and
    each operation object belongs to the thread that records it."""

    def __init__(self):
        self.ops = []
        self.failed_reads = 0
        self.unsent_writes = 0

    def invoke(self, key, kind, client="", value=None, expected=None):
        op = Op(key=key, kind=kind, value=value, expected=expected, invoked=time.monotonic_ns(), client=client)
        self.ops.append(op)
        return op

    @staticmethod
    def ok(op, value=None, won=True):
        op.completed = time.monotonic_ns()
        op.outcome = OK
        op.won = won
        if op.kind == "read":
            op.value = value

    def unknown(self, op, error=""):
        """A write whose fate is unknown stays pending for ever; a read
        that failed saw nothing and leaves the history."""
        op.error = error[:200]
        if op.kind == "read":
            self.ops.remove(op)
            self.failed_reads += 1

    def unsent(self, op):
        """A write that never left the client (no connection): it did not
        happen, and leaves the history."""
        self.ops.remove(op)
        self.unsent_writes += 1

    def dump(self, path):
        """One JSON object per operation, for `load` (and a later look)."""
        with open(path, "w") as f:
            for op in self.ops:
                row = {k: v for k, v in op.__dict__.items() if k != "id"}
                row["completed"] = None if op.completed == float("inf") else op.completed
                f.write(json.dumps(row, default=str) + "\n")

    @staticmethod
    def load(path):
        history = History()
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                row["completed"] = float("inf") if row["completed"] is None else row["completed"]
                history.ops.append(Op(**row))
        return history


def by_key(ops):
    keys = {}
    for op in ops:
        keys.setdefault(op.key, []).append(op)
    return keys


# The value of every write nothing ever observes: all such values behave
# alike, so the search treats them as one.
FRESH = "(a value never observed)"


def step(op, state, canon):
    """The register's value after `op` from `state`, or raises Illegal if
    `op`'s recorded result cannot happen from `state`. An unknown
    conditional write takes effect only where its condition holds."""
    if op.kind == "read":
        if state != op.value:
            raise Illegal
        return state
    if op.kind == "delete":
        return None
    written = canon(op.value)
    if op.kind == "put":
        return written
    if op.kind == "create":
        holds = state is None
    elif op.kind == "cas":
        holds = state == op.expected
    else:
        raise ValueError(op.kind)
    if op.outcome == OK and holds != op.won:
        raise Illegal
    return written if holds else state


class Illegal(Exception):
    pass


@dataclass
class Plan:
    """A key's operations made ready for the search (see `plan`)."""
    ops: list  # what must take effect, by invocation
    floating: list  # unknown writes of values never observed, by invocation
    deletes: list  # when each unknown delete was invoked, in order
    observed: set

    def canon(self, value):
        return value if value in self.observed else FRESH


def plan(ops):
    """Readies one key's operations for the search:

    - an unknown write whose value was observed (read, or expected by a
      compare-and-swap) took effect, before the first operation that
      observed it completed: that is its completion;
    - an unknown write whose value nothing observed can only matter to a
      conditional write refused after it (a refusal may need a state no
      read names): it "floats", able to take effect at any time after its
      invocation. It is allowed to do so more than once, which keeps the
      search small and is lenient only towards refusals;
    - an unknown delete may take effect once, or never. All are alike but
      for when they were invoked, so the search counts how many it used
      (the k-th use needs k of them invoked by then) instead of trying
      each; one that nothing after it could need (a read of no object, a
      winning create, a refused compare-and-swap) is left out.
    The originals are left alone (a bounded one is a copy)."""
    observed = {o.value for o in ops if o.kind == "read" and o.outcome == OK}
    observed |= {o.expected for o in ops if o.kind == "cas"}
    first_seen = {}
    for o in ops:
        if o.outcome != OK:
            continue
        if o.kind == "read" or (o.kind == "cas" and o.won):
            value = o.value if o.kind == "read" else o.expected
            first_seen[value] = min(first_seen.get(value, float("inf")), o.completed)
    absent = [o.completed for o in ops if o.outcome == OK and (
        (o.kind == "read" and o.value is None) or (o.kind == "create" and o.won) or (o.kind == "cas" and not o.won))]
    kept, floating, deletes = [], {}, []
    for o in sorted(ops, key=lambda o: o.invoked):
        if o.outcome == UNKNOWN and o.kind == "delete":
            if any(t > o.invoked for t in absent):
                deletes.append(o.invoked)
        elif o.outcome == UNKNOWN and o.kind != "read" and o.value not in first_seen:
            # Floating writes of one kind (and expectation) are alike but for
            # when they may start: the earliest stands for them all.
            floating.setdefault((o.kind, o.expected if o.kind == "cas" else None), o)
        elif o.outcome == UNKNOWN and o.kind != "read":
            bounded = copy.copy(o)
            bounded.completed = first_seen[o.value]
            kept.append(bounded)
        else:
            kept.append(o)
    return Plan(kept, sorted(floating.values(), key=lambda o: o.invoked), deletes, observed)


def segments(ops):
    """Splits operations (sorted by invocation) where none is pending: what
    comes after such a point depends on what came before only through the
    register's value there."""
    parts, current, horizon = [], [], float("-inf")
    for o in ops:
        if current and o.invoked > horizon:
            parts.append(current)
            current = []
        current.append(o)
        horizon = max(horizon, o.completed)
    if current:
        parts.append(current)
    return parts


def search(ops, starts, budget, plan_, any_end=False):
    """Every (value, unknown deletes used) the register can end with after
    `ops` (one segment), from any of `starts` (with `any_end`, the first
    found will do); an empty set if no order explains them. Depth first
    over (operations done, value, deletes used), each visited once; an
    operation may go next only if it was invoked before the first
    completion among those not done. Raises Budget past `budget` steps."""
    canon = plan_.canon
    n = len(ops)
    invoked = [o.invoked for o in ops]
    floating_at = [o.invoked for o in plan_.floating]
    order = sorted(range(n), key=lambda i: ops[i].completed)  # by completion
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    everything = (1 << n) - 1
    ends, seen = set(), set()
    stack = [(0, 0, value, used) for value, used in starts]
    steps = 0
    while stack:
        done, done_by_completion, state, used = stack.pop()
        if done == everything:
            ends.add((state, used))
            if any_end:
                return ends
            continue
        steps += 1
        if steps > budget:
            raise Budget
        first = (~done_by_completion & (done_by_completion + 1)).bit_length() - 1
        deadline = ops[order[first]].completed
        moves = []
        free = ~done & ((1 << bisect.bisect_right(invoked, deadline)) - 1)
        while free:
            low = free & -free
            free ^= low
            i = low.bit_length() - 1
            try:
                after = step(ops[i], state, canon)
            except Illegal:
                continue
            moves.append((done | low, done_by_completion | 1 << rank[i], after, used))
        for op in plan_.floating[: bisect.bisect_right(floating_at, deadline)]:
            after = step(op, state, canon)
            if after != state:
                moves.append((done, done_by_completion, after, used))
        if state is not None and bisect.bisect_right(plan_.deletes, deadline) > used:
            moves.append((done, done_by_completion, None, used + 1))
        for move in moves:
            key = (move[0], move[2], move[3])
            if key not in seen:
                seen.add(key)
                stack.append(move)
    return ends


class Budget(Exception):
    pass


def linearizable(ops, initial=None, budget=2_000_000, failing=None):
    """Whether the operations on one key are linearizable from `initial`.
    Returns True, False, or None when the search gave up after `budget`
    steps (reported, never taken as a pass). `failing`, a dict, receives
    the segment no order explains ("ops"), the values it may start from
    ("starts") and the plan ("plan")."""
    ready = plan(ops)
    states = {(initial, 0)}
    try:
        parts = segments(ready.ops)
        for n, part in enumerate(parts):
            starts, states = states, search(part, states, budget, ready, any_end=n == len(parts) - 1)
            if not states:
                if failing is not None:
                    failing.update(ops=part, starts=starts, plan=ready)
                return False
    except Budget:
        return None
    return True


def shrink(part, starts, plan_):
    """What to show of a segment no order explains: the fewest reads and
    refusals (observations; dropping one only removes constraints, so what
    is left fails for the original reason) that still make it fail, with
    every write kept."""
    current = list(part)
    for op in [o for o in part if o.kind == "read" or (o.outcome == OK and not o.won)]:
        trial = [o for o in current if o is not op]
        try:
            if not search(trial, starts, 200_000, plan_, any_end=True):
                current = trial
        except Budget:
            pass
    return current


@dataclass
class Verdict:
    keys: int = 0
    ops: int = 0
    anomalies: list = field(default_factory=list)  # (key, values it may start from, minimal history)
    undecided: list = field(default_factory=list)  # keys the search gave up on

    @property
    def ok(self):
        return not self.anomalies and not self.undecided

    def report(self):
        lines = [f"{self.keys} keys, {self.ops} operations: {len(self.anomalies)} not linearizable, "
                 f"{len(self.undecided)} undecided"]
        for key, starts, ops in self.anomalies:
            values = sorted({value for value, _ in starts}, key=str)
            lines.append(f"key {key}: no order explains these, starting from a value in {values}:")
            lines.extend(f"    {op}" for op in ops)
        for key in self.undecided:
            lines.append(f"key {key}: the search gave up")
        return "\n".join(lines)


def check(history, initial=None):
    """Judges every key of `history` (a History or a list of Op)."""
    ops = history.ops if isinstance(history, History) else history
    keys = by_key(ops)
    verdict = Verdict(keys=len(keys), ops=len(ops))
    for key, key_ops in sorted(keys.items()):
        failing = {}
        result = linearizable(key_ops, initial, failing=failing)
        if result is False:
            verdict.anomalies.append((key, failing["starts"], shrink(failing["ops"], failing["starts"], failing["plan"])))
        elif result is None:
            verdict.undecided.append(key)
    return verdict


# -- how stale reads were -------------------------------------------------------

WRITES = ("put", "create", "cas")


def staleness(history):
    """The longest time, in seconds, a read lagged behind the writes: the
    worst over reads of how long before the read began an acknowledged
    write had already replaced the value it returned (0 when none had).
    The checker says whether a history is linearizable; on buckets that
    need not be (quorum-2, async), this says by how much it was not."""
    ops = history.ops if isinstance(history, History) else history
    return max((stale_window(key_ops) for key_ops in by_key(ops).values()), default=0) / 1e9


def stale_window(ops):
    """`staleness` for one key's operations, in ns. A write w replaced the
    value v a read r returned if w took effect (an acknowledged put or
    delete, a create or compare-and-swap that won), completed before r was
    invoked, leaves another value than v, and was invoked after every write
    that could have left v had surely taken effect: then any order puts
    v's write before w, and w before r."""
    reads = [o for o in ops if o.kind == "read" and o.outcome == OK]
    acked = sorted((o for o in ops if o.kind != "read" and o.outcome == OK and o.won), key=lambda o: o.completed)
    writer = {o.value: o for o in ops if o.kind in WRITES}
    deletes = [o for o in ops if o.kind == "delete"]
    first_seen = {}
    for r in reads:
        first_seen[r.value] = min(first_seen.get(r.value, float("inf")), r.completed)
    worst = 0
    for r in reads:
        written = last_written(r, writer, deletes, first_seen)
        for w in acked:
            if w.completed >= r.invoked:
                break
            if w.invoked > written and (None if w.kind == "delete" else w.value) != r.value:
                worst = max(worst, r.invoked - w.completed)
                break
    return worst


def last_written(read, writer, deletes, first_seen):
    """The latest time by which the value `read` returned had surely been
    written (for the last time: no object, many deletes may leave). A write
    of unknown outcome took effect at the latest when a read first saw its
    value; a delete of unknown outcome may take effect at any time. inf
    when nothing could have written it (an anomaly, not a lag)."""
    if read.value is None:
        return max((d.completed for d in deletes if d.invoked < read.completed), default=float("-inf"))
    w = writer.get(read.value)
    if w is None or w.invoked >= read.completed:
        return float("inf")
    return min(w.completed, first_seen[read.value])
