"""Training on several processes: torchrun's environment and ``torch.distributed`` in one place.

``torchrun --nproc-per-node N -m xuxie train …`` (or ``xuxie train … --nproc N``) starts N
processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous
set; :func:`init` joins them into one process group (gloo on CPU, nccl on CUDA). Everything else
in xuxie asks this module — :func:`is_main`, :func:`barrier`, :func:`broadcast`, :func:`gather`,
:func:`agree` — and works unchanged in one process, where each is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .errors import XuxieError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_size() -> int:
    """Processes training together (1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def local_world_size() -> int:
    """Processes on this machine (they share its cores)."""
    return _env_int("LOCAL_WORLD_SIZE", 1)


def is_main() -> bool:
    """Whether this process writes files, logs, prints and evaluates (rank 0)."""
    return rank() == 0


def restarted() -> bool:
    """Whether torchrun restarted this process group after a failure (``--max-restarts``)."""
    return _env_int("TORCHELASTIC_RESTART_COUNT", 0) > 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def timeout() -> timedelta:
    """How long a collective waits for the other processes before it fails (``XUXIE_DIST_TIMEOUT``,
    seconds; default 10 minutes, gloo's own is 30). Not shorter: the others wait while rank 0 alone
    scans and encodes the corpus or makes the final evaluation. A process that dies on this machine
    needs no timeout: torchrun stops the others at once (:class:`~xuxie.training.StopSignals`)."""
    return timedelta(seconds=max(1, _env_int("XUXIE_DIST_TIMEOUT", 600)))


def init(device: torch.device) -> None:
    """Join torchrun's process group (once); nothing in one process."""
    if world_size() <= 1 or active():
        return
    if not dist.is_available():
        raise XuxieError("this PyTorch build has no torch.distributed; train in one process (drop --nproc / torchrun)")
    # torchrun keeps one key-value store (MASTER_PORT) for all the restarts of a group, and a process
    # group's keys (each process's gloo address…) are the same in every attempt: a restarted process
    # could read the address of the one it replaces ("Gloo connectFullMesh failed … Connection
    # refused", or a hang). Each attempt's keys under its own prefix (pytorch/pytorch#135712; every
    # process on a machine has the same restart count).
    store, _, _ = next(dist.rendezvous("env://", timeout=timeout()))
    store = dist.PrefixStore(f"xuxie/attempt-{_env_int('TORCHELASTIC_RESTART_COUNT', 0)}", store)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank(),
                            world_size=world_size(), timeout=timeout())
    global _patient_group
    _patient_group = dist.new_group(backend="gloo", timeout=PATIENCE)


def device_for_rank(device: torch.device) -> torch.device:
    """Each process on a machine takes its own GPU (``cuda:LOCAL_RANK``)."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every process."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every process's ``value``, by rank (on every process)."""
    if not active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def agree(*values: float) -> list[float]:
    """The largest of each value over all processes (one small all-reduce): the processes take
    the same decisions — stop, evaluate, save — from the same clock and flags."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def mean(value: float) -> float:
    """The mean of ``value`` over all processes."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def check_same(value: Any, what: str) -> None:
    """One clear line when the processes built different ``what`` (they must train one model)."""
    if not active():
        return
    digests = gather(hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest())
    if len(set(digests)) > 1:
        raise XuxieError(f"the training processes built different {what}s from the same corpus; "
                         "give every machine the same files and xuxie version")


@contextmanager
def main_first() -> Iterator[None]:
    """The first process of each machine does the work inside first, the others after it (finding
    what it left in the machine's cache). It lets them go even when the work fails (a bad option):
    they then fail on the same input themselves, quietly, instead of with a lost connection's
    traceback. They wait as long as the work takes (a GB corpus is read and encoded in minutes),
    not :func:`timeout`."""
    first = local_rank() == 0
    if not first:
        _wait()
    try:
        yield
    finally:
        if first:
            _wait()


PATIENCE = timedelta(hours=12)  # how long main_first's others wait for the corpus to be prepared
_patient_group = None  # a gloo group whose barrier waits that long


def _wait() -> None:
    if active():
        dist.barrier(group=_patient_group)


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
