"""Progress bars for passes over a corpus (reading, learning a tokenizer, encoding, scoring):
bytes or tokens done, the rate, and the time left, on stderr. Only for work long enough to
watch, only on the main process, and gone once the pass is over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import distributed

#: the least work worth a bar, by unit: reading 32 MB or scoring 1M tokens takes a few seconds
SHOWN_FROM = {"bytes": 32 << 20, "tokens": 1 << 20}

Meter = Callable[[int], None]  # told how much was just done


class PassProgress:
    """Makes a bar per pass: ``with progress("encoding", total, "bytes") as meter: … meter(n)``.
    ``meter`` is None when no bar is shown (disabled, another process, or a short pass)."""

    def __init__(self, console=None, enabled: bool = True):
        self.console = console
        self.enabled = enabled

    @contextmanager
    def __call__(self, description: str, total: int, unit: str = "bytes") -> Iterator[Meter | None]:
        if not self.enabled or total < SHOWN_FROM.get(unit, 0) or not distributed.is_main():
            yield None
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        amount = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else \
            [TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit)]
        with Progress(TextColumn("{task.description}"), BarColumn(), *amount, TimeRemainingColumn(),
                      console=self.console or Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


NO_PROGRESS = PassProgress(enabled=False)
