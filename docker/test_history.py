"""The checker must catch each kind of anomaly it exists for, planted in a
history, and must pass the histories a correct store produces, however the
operations overlap.

    python3 -m unittest discover -s docker -p 'test_*.py'
"""

import random
import unittest

from history import OK, UNKNOWN, Op, check, linearizable, staleness


def op(kind, start, end, value=None, expected=None, won=True, key="k"):
    """An operation over [start, end] ms; end None: unknown outcome."""
    return Op(key=key, kind=kind, value=value, expected=expected, won=won, invoked=start * 10**6,
              completed=float("inf") if end is None else end * 10**6, outcome=UNKNOWN if end is None else OK)


class PlantedAnomalies(unittest.TestCase):
    def fails(self, ops):
        verdict = check(ops)
        self.assertFalse(verdict.ok, "the checker missed the anomaly")
        self.assertTrue(verdict.anomalies)
        return verdict

    def test_a_stale_read(self):
        self.fails([op("put", 0, 1, 1), op("put", 2, 3, 2), op("read", 4, 5, 1)])

    def test_a_lost_write(self):
        # Acknowledged, then never seen: the read after it sees the older value.
        self.fails([op("put", 0, 1, 1), op("put", 2, 3, 2), op("read", 10, 11, 1), op("read", 12, 13, 1)])

    def test_a_lost_write_read_as_missing(self):
        self.fails([op("put", 0, 1, 1), op("read", 5, 6, None)])

    def test_a_resurrected_delete(self):
        self.fails([op("put", 0, 1, 1), op("delete", 2, 3), op("read", 4, 5, None), op("read", 6, 7, 1)])

    def test_a_read_of_a_value_never_written(self):
        self.fails([op("put", 0, 1, 1), op("read", 2, 3, 99)])

    def test_two_creates_both_win(self):
        self.fails([op("create", 0, 5, 1), op("create", 1, 6, 2)])

    def test_a_create_that_wins_over_an_existing_object(self):
        self.fails([op("put", 0, 1, 1), op("create", 2, 3, 2)])

    def test_a_cas_that_loses_an_update(self):
        # Both swap from 1; only one can.
        self.fails([op("put", 0, 1, 1), op("cas", 2, 5, 2, expected=1), op("cas", 3, 6, 3, expected=1)])

    def test_a_cas_refused_although_its_condition_held(self):
        self.fails([op("put", 0, 1, 1), op("cas", 2, 3, 2, expected=1, won=False)])

    def test_a_list_that_misses_an_acknowledged_put(self):
        # A LIST entry is a read of that key at some point of the LIST.
        self.fails([op("put", 0, 1, 1), op("read", 2, 9, None)])

    def test_the_report_shows_the_anomaly_small(self):
        ops = [op("put", 0, 1, 1), op("put", 2, 3, 2)]
        ops += [op("read", 4 + 2 * i, 5 + 2 * i, 2) for i in range(50)]
        ops += [op("read", 200, 201, 1)]
        verdict = self.fails(ops)
        (_, _, shown), = verdict.anomalies
        self.assertLessEqual(len(shown), 3, [str(o) for o in shown])
        self.assertIn("read -> 1", verdict.report())


class CorrectHistories(unittest.TestCase):
    def passes(self, ops):
        verdict = check(ops)
        self.assertTrue(verdict.ok, verdict.report())

    def test_concurrent_writes_either_order(self):
        self.passes([op("put", 0, 10, 1), op("put", 1, 11, 2), op("read", 12, 13, 1)])
        self.passes([op("put", 0, 10, 1), op("put", 1, 11, 2), op("read", 12, 13, 2)])

    def test_a_read_during_a_write_sees_old_or_new(self):
        self.passes([op("put", 0, 1, 1), op("put", 2, 10, 2), op("read", 3, 4, 1), op("read", 5, 6, 2)])

    def test_an_unknown_write_may_or_may_not_have_happened(self):
        self.passes([op("put", 0, 1, 1), op("put", 2, None, 2), op("read", 10, 11, 1)])
        self.passes([op("put", 0, 1, 1), op("put", 2, None, 2), op("read", 10, 11, 2)])
        # ... but once seen, it took effect: a later read cannot go back.
        self.assertFalse(check([op("put", 0, 1, 1), op("put", 2, None, 2), op("read", 10, 11, 2),
                                op("read", 12, 13, 1)]).ok)

    def test_creates_and_cas_as_a_store_answers_them(self):
        self.passes([op("create", 0, 5, 1), op("create", 1, 6, 2, won=False), op("read", 7, 8, 1),
                     op("cas", 9, 10, 3, expected=1), op("cas", 9, 11, 4, expected=1, won=False),
                     op("read", 12, 13, 3), op("delete", 14, 15), op("create", 16, 17, 5)])

    def test_an_unknown_cas_applies_only_where_its_condition_held(self):
        self.passes([op("put", 0, 1, 1), op("cas", 2, None, 2, expected=1), op("read", 5, 6, 2)])
        self.assertFalse(check([op("put", 0, 1, 1), op("cas", 2, None, 2, expected=7), op("read", 5, 6, 2)]).ok)

    def test_many_writes_of_unknown_outcome_are_judged_quickly(self):
        ops = [op("put", 0, 1, 0)]
        ops += [op("put", 2 + i, None, 1000 + i) for i in range(200)]  # timed out, never seen
        ops += [op("read", 300 + 2 * i, 301 + 2 * i, 0) for i in range(100)]
        self.passes(ops)
        # One of them seen: it took effect, and the older value cannot come back.
        self.assertFalse(check(ops + [op("read", 600, 601, 1100), op("read", 602, 603, 0)]).ok)

    def test_an_unknown_delete_explains_one_missing_object_not_two(self):
        once = [op("put", 0, 1, 1), op("delete", 2, None), op("read", 5, 6, None)]
        self.passes(once)
        # A second acknowledged put read as missing is a lost write.
        self.assertFalse(check(once + [op("put", 7, 8, 2), op("read", 9, 10, None)]).ok)
        self.passes(once + [op("delete", 6.5, None), op("put", 7, 8, 2), op("read", 9, 10, None)])

    def test_many_unknown_deletes_are_judged_quickly(self):
        ops = [op("delete", 1 + i / 100, None) for i in range(60)]
        for i in range(100):
            ops += [op("put", 10 + 4 * i, 12 + 4 * i, i), op("read", 12.5 + 4 * i, 13 + 4 * i, None)]
        self.passes(ops[:60] + ops[60:100])
        self.assertFalse(check(ops).ok, "100 lost writes, 60 deletes to explain them")

    def test_keys_are_judged_apart(self):
        self.passes([op("put", 0, 1, 1, key="a"), op("put", 0, 1, 2, key="b"), op("read", 2, 3, 1, key="a"),
                     op("read", 2, 3, 2, key="b")])

    def test_a_simulated_register_always_passes(self):
        # Clients against a true register: each operation takes effect at
        # a random instant inside its interval; some answers are lost.
        rng = random.Random(7)
        for _ in range(20):
            state, ops, value = None, [], 0
            events = []
            for c in range(4):
                t = 0
                for _ in range(25):
                    start = t + rng.randint(0, 3)
                    end = start + rng.randint(1, 20)
                    events.append((rng.uniform(start, end), start, end, c))
                    t = end
            for at, start, end, c in sorted(events):
                value += 1
                kind = rng.choice(["put", "read", "read", "delete", "create", "cas"])
                o = op(kind, start, end, value)
                if kind == "put":
                    state = value
                elif kind == "delete":
                    state = None
                elif kind == "read":
                    o.value = state
                elif kind == "create":
                    o.won = state is None
                    state = value if o.won else state
                else:
                    o.expected = rng.choice([state, value - 1, None])
                    o.won = state == o.expected
                    state = value if o.won else state
                if kind != "read" and rng.random() < 0.1:
                    o.completed, o.outcome = float("inf"), UNKNOWN
                ops.append(o)
            self.assertTrue(linearizable(ops), "a true register's history was judged wrong")
            self.assertFalse(linearizable(plant_stale_read(ops)), "a planted stale read was missed")
            self.assertEqual(staleness(ops), 0, "a true register's read was judged stale")
            self.assertGreater(staleness(plant_stale_read(ops)), 0, "a planted stale read has no window")


class Staleness(unittest.TestCase):
    """How long a read lagged behind the acknowledged writes (in seconds;
    the operations here are in ms)."""

    def lag(self, ops, seconds):
        self.assertAlmostEqual(staleness(ops), seconds, places=6)

    def test_a_read_of_an_overwritten_value(self):
        # put 2 completed at 3 s; the read of 1 began at 7 s.
        self.lag([op("put", 0, 1000, 1), op("put", 2000, 3000, 2), op("read", 7000, 7100, 1)], 4.0)

    def test_a_read_of_a_deleted_value(self):
        self.lag([op("put", 0, 1000, 1), op("delete", 2000, 3000), op("read", 5000, 5500, 1)], 2.0)

    def test_a_read_of_nothing_after_a_put(self):
        self.lag([op("put", 0, 1000, 1), op("read", 2000, 2500, None)], 1.0)

    def test_a_read_of_nothing_after_a_put_after_a_delete(self):
        self.lag([op("put", 0, 1000, 1), op("delete", 2000, 3000), op("put", 4000, 5000, 2),
                  op("read", 6000, 6500, None)], 1.0)

    def test_the_worst_read_of_any_key(self):
        self.lag([op("put", 0, 1000, 1), op("put", 2000, 3000, 2), op("read", 4000, 4100, 1),
                  op("read", 5000, 5100, 1), op("put", 0, 1000, 1, key="b"), op("read", 3000, 3100, None, key="b")],
                 2.0)

    def test_no_lag_where_the_order_is_open(self):
        # Overlapping writes, reads during a write, a refused write, an
        # unknown one, deletes that may come last: any value read is current.
        self.lag([op("put", 0, 10, 1), op("put", 1, 11, 2), op("read", 12, 13, 1)], 0)
        self.lag([op("put", 0, 1, 1), op("put", 2, 10, 2), op("read", 3, 4, 1)], 0)
        self.lag([op("put", 0, 1, 1), op("cas", 2, 3, 2, expected=7, won=False), op("read", 4, 5, 1)], 0)
        self.lag([op("put", 0, 1, 1), op("put", 2, None, 2), op("read", 10, 11, 1)], 0)
        self.lag([op("put", 0, 1, 1), op("delete", 2, None), op("read", 10, 11, None)], 0)
        self.lag([op("put", 0, 1, 1), op("delete", 2, 8), op("put", 3, 4, 2), op("read", 10, 11, None)], 0)
        self.lag([op("put", 0, 1, 1), op("read", 2, 3, 99)], 0)  # never written: an anomaly, not a lag

    def test_an_unknown_write_counts_from_when_it_was_first_seen(self):
        self.lag([op("put", 0, None, 1), op("read", 1000, 1100, 1), op("put", 2000, 3000, 2),
                  op("read", 4000, 4100, 1)], 1.0)


def plant_stale_read(ops):
    """The same history with one read made stale: it returns the value of a
    put that another acknowledged put had overwritten before it began."""
    puts = [o for o in ops if o.kind == "put" and o.outcome == OK]
    for read in (o for o in ops if o.kind == "read"):
        for old in puts:
            newer = [w for w in puts if old.completed < w.invoked and w.completed < read.invoked]
            if newer and read.value != old.value:
                planted = [Op(key=o.key, kind=o.kind, value=o.value, expected=o.expected, won=o.won,
                              invoked=o.invoked, completed=o.completed, outcome=o.outcome) for o in ops]
                planted[ops.index(read)].value = old.value
                return planted
    raise AssertionError("no read to make stale")


if __name__ == "__main__":
    unittest.main()
