"""How many threads torch uses for each kind of work, and how its idle threads wait.

Measured on 2 cores (AMD EPYC Zen 4; ``benchmarks/bench_contention.py``, figures in README):

- torch's OpenMP runtime (libgomp) lets a thread that waits at a barrier spin about 300,000
  times before it sleeps. Alone that costs nothing; beside another busy process the spinning
  thread holds the core the other one needs: two trainings each fell to 1–26% of their solo
  speed, two batch-1 generations to 1–26%. A short spin (``GOMP_SPINCOUNT=300``) kept the solo
  training speed (within noise) and 43–64% each when two trained at once; sleeping at once
  (``OMP_WAIT_POLICY=PASSIVE``) cost 25% alone.
- Decoding one to a few sequences is a chain of small matrix–vector products: a second thread
  gained nothing alone (7.3k vs 7.2k tokens/s) and is what collapses next to another job. From 8
  rows on (samples × beams) the work is wide enough to share (16 rows: 1.4× with 2 threads).

The thread count is chosen per workload unless the user fixes it: ``--threads N`` on every
command, ``XUXIE_THREADS``, or :func:`set_threads`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from .errors import XuxieError

SPIN_COUNT = "300"
WIDE_DECODE_ROWS = 8  # rows decoded together from which a second thread pays (measured: 4 no, 16 yes)
WORKLOADS = ("train", "evaluate", "decode")

_requested: int | None = None


def configure_openmp() -> None:
    """Shorten OpenMP's spin-wait unless the user chose a policy. libgomp reads its environment
    once, when torch loads it, so this runs before xuxie imports torch; if torch is already
    loaded it is too late and nothing is changed."""
    if "torch" in sys.modules:
        return
    if not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (e.g. under ``taskset``), shared out among
    the processes torchrun started on this machine (``LOCAL_WORLD_SIZE``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cores // local)


def check_threads(value: object, source: str) -> int:
    """A thread count from the user: a whole number ≥ 1, else one clear line."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise XuxieError(f"{source} must be a whole number of threads ≥ 1, got {value!r}")
    return n


def set_threads(n: int | None) -> None:
    """Fix the thread count for all work in this process (``None``: back to per-workload defaults)."""
    global _requested
    _requested = None if n is None else check_threads(n, "threads")


@contextlib.contextmanager
def requested_threads_set(n: int | None) -> Iterator[None]:
    """:func:`set_threads` for the length of a block (``None`` leaves the current choice)."""
    global _requested
    before = _requested
    if n is not None:
        set_threads(n)
    try:
        yield
    finally:
        _requested = before


def requested_threads() -> int | None:
    """The user's choice: :func:`set_threads`, else ``XUXIE_THREADS``, else ``None``."""
    if _requested is not None:
        return _requested
    env = os.environ.get("XUXIE_THREADS", "").strip()
    return check_threads(env, "XUXIE_THREADS") if env else None


def threads_for(workload: str, rows: int = 1) -> int:
    """Threads for a workload: the user's choice, else all cores for training and evaluation, and
    for decoding one thread below :data:`WIDE_DECODE_ROWS` rows (samples × beams), all cores from there."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}")
    chosen = requested_threads()
    if chosen is not None:
        return chosen
    if workload == "decode" and rows < WIDE_DECODE_ROWS:
        return 1
    return available_cores()


@contextlib.contextmanager
def threads_scope(workload: str, rows: int = 1) -> Iterator[int]:
    """Run a block with the workload's thread count, then restore torch's previous setting."""
    import torch

    before = torch.get_num_threads()
    n = threads_for(workload, rows)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
