"""What the decoding thread reports for a request, handed to the event loop."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..batching import Emission, Job
from .errors import APIError

#: a stream sends what its sequences wrote at most this often (seconds); its first text at once
STREAM_INTERVAL = 0.01


class Outputs:
    """What the decoding thread reports for one request's jobs, delivered on the event loop.

    Reports wait in an inbox and the loop takes them all at once: a stream at most every
    :data:`STREAM_INTERVAL` seconds (the first at once), a whole response when a sequence ends.
    Reports of one sequence taken together go out as one chunk, so the HTTP work of a stream
    does not grow with the token rate (measured: it, not decoding, bounds streamed tokens/s on
    two cores)."""

    def __init__(self, jobs: list[Job], timeout: float, stream: bool):
        self.loop = asyncio.get_running_loop()
        self.jobs = jobs
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.unfinished = {id(j): j.n for j in jobs}  # sequences not yet reported finished
        self._inbox: list[tuple[Job, list[Emission], APIError | None]] = []
        self._lock = threading.Lock()
        self._wake_pending = False
        self._ready = asyncio.Event()
        self.stream = stream
        self._flushed = -math.inf
        for j in jobs:
            j.on_emit = self._emit
            j.on_error = self._error

    def _put(self, item: tuple[Job, list[Emission], APIError | None]) -> None:  # the decoding thread
        job, emissions, failure = item
        with self._lock:
            self._inbox.append(item)
            ends = failure is not None or any(e.finish_reason for e in emissions)
            if self._wake_pending or not (self.stream or ends):
                return
            self._wake_pending = True
        self.loop.call_soon_threadsafe(self._ready.set)

    def _emit(self, job: Job, emissions: list[Emission]) -> None:
        self._put((job, emissions, None))

    def _error(self, job: Job, message: str, server_fault: bool) -> None:
        self._put((job, [], APIError(500, message, "server_error") if server_fault else APIError(400, message)))

    def _take(self) -> list[tuple[Job, list[Emission], APIError | None]]:
        with self._lock:
            items, self._inbox, self._wake_pending = self._inbox, [], False
        self._ready.clear()
        return items

    def cancel(self) -> None:
        for j in self.jobs:
            j.cancel()

    async def events(self, disconnected: Callable[[], Any] | None = None) -> AsyncIterator[tuple[int, Emission]]:
        """(job number, emission) until every job has finished; an APIError on failure or timeout."""
        while self.unfinished:
            now = time.monotonic()
            if self.stream and now < self._flushed + STREAM_INTERVAL:
                await asyncio.sleep(self._flushed + STREAM_INTERVAL - now)
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise APIError(408, f"the request took longer than the server's timeout of {self.timeout:g} s; "
                               "ask for fewer tokens, or start the server with a longer --timeout", "timeout")
            try:
                await asyncio.wait_for(self._ready.wait(), min(remaining, 1.0))
            except TimeoutError:
                if disconnected is not None and await disconnected():
                    raise asyncio.CancelledError from None
                continue
            self._flushed = time.monotonic()
            for job, e in merged(self._take()):
                yield self.jobs.index(job), e
                if e.finish_reason is not None:
                    self.unfinished[id(job)] -= 1
                    if not self.unfinished[id(job)]:
                        del self.unfinished[id(job)]


def merged(items: list[tuple[Job, list[Emission], APIError | None]]) -> list[tuple[Job, Emission]]:
    """One emission per sequence of ``items`` (in order of first report); a failure is raised."""
    out: dict[tuple[int, int], tuple[Job, Emission]] = {}
    for job, emissions, failure in items:
        if failure is not None:
            raise failure
        for e in emissions:
            key = (id(job), e.index)
            if key in out:
                prev = out[key][1]
                e = Emission(e.index, prev.text + e.text, prev.pieces + e.pieces, e.finish_reason, e.tokens)
            out[key] = (job, e)
    return list(out.values())
