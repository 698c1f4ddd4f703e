"""monitor/allocator.py: the service's processes share one malloc arena (glibc), so a
checkpoint's freed encoding does not stay resident in a worker thread's arena
(tests/monitor/test_buffer_budgets.py measures the service; this checks the setting)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from monitor.allocator import ARENA_VARIABLE, libc_function

pytestmark = pytest.mark.skipif(libc_function("malloc_stats") is None, reason="glibc's malloc_stats needed")

# Four threads allocate at the same moment, then glibc prints one "Arena N:" block per arena.
ALLOCATING_THREADS = """
import ctypes, ctypes.util, sys, threading
if sys.argv[1] == "limit":
    from monitor.allocator import limit_malloc_arenas
    limit_malloc_arenas()
together = threading.Barrier(4)
def allocate():
    together.wait()
    for _ in range(2000):
        kept = [bytearray(200) for _ in range(50)]
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
"""


def arenas(mode: str, env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATING_THREADS, mode], env=env, capture_output=True, text=True, check=True
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_threads_share_one_arena_once_limited() -> None:
    env = {k: v for k, v in os.environ.items() if k != ARENA_VARIABLE}
    assert arenas("none", env) > 1  # precondition: unlimited, the threads get arenas of their own
    assert arenas("limit", env) == 1


def test_child_processes_inherit_the_limit_and_an_explicit_setting_wins() -> None:
    show = "import os; from monitor.allocator import limit_malloc_arenas; limit_malloc_arenas(); print(os.environ['MALLOC_ARENA_MAX'])"
    env = {k: v for k, v in os.environ.items() if k != ARENA_VARIABLE}
    assert subprocess.run([sys.executable, "-c", show], env=env, capture_output=True, text=True).stdout.strip() == "1"
    env[ARENA_VARIABLE] = "4"
    assert subprocess.run([sys.executable, "-c", show], env=env, capture_output=True, text=True).stdout.strip() == "4"
    assert arenas("limit", env) > 1  # glibc read the explicit 4 at start-up; it is not overridden
