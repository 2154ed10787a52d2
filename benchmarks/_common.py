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


def print_sample(tg) -> None:
    """One line showing what a freshly trained Shakespeare model writes (seed 0, temperature 0.5)."""
    print("   sample (T=0.5):", repr(tg.generate(prompt="ROMEO:", temperature=0.5, max_new_tokens=160, seed=0)[0][:200]))
