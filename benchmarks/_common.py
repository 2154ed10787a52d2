"""What the benchmarks share: timing, the corpora beside the repository, a character tokenizer for
random-weight models, the argument parser and the sample line printed after training.

Every benchmark runs as a script (``python benchmarks/bench_x.py``), and Python puts a script's
own folder first on ``sys.path``, so ``from _common import …`` finds this file with no path setup.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

#: the corpora folder beside the repository (``../shared/corpora``), as the tests expect it
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
#: every character a random-weight model may write: printable ASCII and the line break
PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows the benchmark's docstring as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` unmeasured runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def printable_tokenizer():
    """A character tokenizer over :data:`PRINTABLE` (for models whose speed, not weights, is measured)."""
    from xuxie.tokenizers import CharTokenizer

    return CharTokenizer.train([PRINTABLE])


def earlier_windows():
    """A context in which training draws each window alone at a random position, as the defaults
    before the epoch order did: baselines run as they were measured against today's default."""
    from unittest import mock

    import torch

    from xuxie import objectives
    from xuxie.data import LMBatches

    class IndependentWindows(LMBatches):
        def _next_starts(self, generator: torch.Generator):
            return torch.randint(0, len(self.ids) - self.seq_len, (self.batch_size,), generator=generator).numpy()

    return mock.patch.object(objectives, "LMBatches", IndependentWindows)


def print_sample(tg, temperature: float = 0.5, prompt: str = "ROMEO:") -> None:
    """One line showing what a freshly trained model writes (seed 0)."""
    text = tg.generate(prompt=prompt, temperature=temperature, max_new_tokens=160, seed=0)[0]
    print(f"   sample (T={temperature}):", repr(text[:200]))


def cpu_name() -> str:
    """The CPU as a figure needs it: model name, family and model (a VM may show only "Intel(R) Xeon(R)
    Processor") and its bf16 instructions (figures differ between Zen 3, Zen 4 and AMX hosts)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return "CPU unknown"
    field = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    flags = field.get("flags", "").split()
    bf16 = [name for flag, name in (("avx512_bf16", "AVX-512 bf16"), ("amx_bf16", "AMX bf16")) if flag in flags]
    return (f"{field.get('model name', 'CPU unknown')} (family {field.get('cpu family', '?')} model {field.get('model', '?')}; "
            f"{', '.join(bf16) or 'no AVX-512 bf16'})")


def matmul_peak(dtype, n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of an n×n×n matmul in ``dtype`` (median)."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats, warmup=2) / 1e9
