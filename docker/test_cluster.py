"""The failure diagnostics of docker/cluster.py."""

import unittest

from cluster import busy_threads

STACKS = """
Thread 3 (LWP 12 "tokio-runtime-w"):
#0  0x00007f in syscall () from /lib/libc.so.6
#1  0x0000aa in std::sys::sync::mutex::futex::Mutex::lock_contended () at futex.rs:1
#2  0x0000ab in jadfs_meta::log_store::LogStore::lock (self=0x1) at log_store.rs:53
#3  0x0000ac in jadfs_meta::log_store::read_vote () at log_store.rs:163

Thread 2 (LWP 11 "tokio-runtime-w"):
#0  0x00007f in epoll_wait () from /lib/libc.so.6
#1  0x0000ba in mio::poll::Poll::poll () at poll.rs:1

Thread 1 (LWP 10 "jadfs"):
#0  0x00007f in syscall () from /lib/libc.so.6
#1  0x0000aa in std::sys::sync::mutex::futex::Mutex::lock_contended () at futex.rs:1
#2  0x0000ab in jadfs_meta::log_store::LogStore::lock (self=0x2) at log_store.rs:53
#3  0x0000ac in jadfs_meta::log_store::read_vote () at log_store.rs:163
"""


class BusyThreads(unittest.TestCase):
    def test_threads_waiting_for_a_lock_are_shown_and_idle_ones_are_not(self):
        self.assertEqual(
            busy_threads(STACKS),
            "2 x syscall <- jadfs_meta::log_store::LogStore::lock <- jadfs_meta::log_store::read_vote")

    def test_nothing_busy(self):
        self.assertEqual(busy_threads(""), "none")


if __name__ == "__main__":
    unittest.main()
