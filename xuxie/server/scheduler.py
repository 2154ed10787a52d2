"""One decoding thread per served model: a bounded queue of jobs in front of a :class:`~xuxie.batching.Batcher`.

The thread admits queued jobs between steps while there are free rows (``max_rows``), runs one
batched step for every active sequence, and frees the rows of jobs that finished or were
cancelled (a client that disconnected or timed out). The event loop never runs model code: the
HTTP side only calls :meth:`ModelWorker.submit` and :meth:`~xuxie.batching.Job.cancel`, both
instant. Beam search (``num_beams > 1``) is not batched across requests; such a job runs on its
own between two steps.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import torch

from ..batching import Batcher, Emission, Job, Piece
from ..decoding import DecodingSetup
from ..errors import XuxieError

log = logging.getLogger("xuxie.server")


class QueueFull(Exception):
    """More jobs are waiting than the queue holds (HTTP 429)."""


class BeamJob(Job):
    """A beam-search request: decoded on its own when admitted (``num_beams`` rows)."""

    def run(self) -> None:
        best = self.setup.best(self.prompt_ids, self.config, self.n)
        emissions = []
        for i, h in enumerate(best):
            text = self.setup.text_of(h.tokens, self.config.stop)
            cut = text != self.setup.text_of(h.tokens)  # by a stop string
            self.sequences[i].tokens = len(h.tokens)
            emissions.append(Emission(i, text, [Piece(text, None)] if self.logprobs is not None else [],
                                      "stop" if h.finished or cut else "length", len(h.tokens)))
        self.on_emit(self, emissions)


class ModelWorker:
    """The decoding thread of one model (see module doc)."""

    def __init__(self, name: str, setup: DecodingSetup, max_rows: int, max_queue: int):
        self.name = name
        self.setup = setup
        self.max_rows = max_rows
        self.max_queue = max_queue
        # One core stays with the HTTP loop, which streams every token (measured on 2 cores, default
        # LSTM, 16 streams: 6.6k tokens/s with one decoding thread, 5.9k with two).
        self.batcher = Batcher(setup, spare_cores=1)
        self._queue: deque[Job] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"xuxie-decode-{name}", daemon=True)

    # -- the HTTP side ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        """Queue ``job``; :class:`QueueFull` when ``max_queue`` jobs are already waiting."""
        with self._wake:
            if len(self._queue) >= self.max_queue:
                raise QueueFull(self.name)
            self._queue.append(job)
            self._wake.notify()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def active_rows(self) -> int:
        return self.batcher.rows

    # -- the decoding thread ---------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            admitted = self._wait_for_work()
            if admitted is None:
                return
            for job in admitted:
                self._admit(job)
            self.batcher.drop_cancelled()
            try:
                self.batcher.step()
            except Exception as e:  # a bug, or out of memory: fail these jobs, keep serving
                log.exception("decoding step failed for model %s", self.name)
                self.batcher.fail_all(f"decoding failed: {type(e).__name__}: {e}")

    def _wait_for_work(self) -> list[Job] | None:
        """Jobs to admit now (possibly none while others decode); None when stopping."""
        with self._wake:
            while not self._stopping and not self._queue and not self.batcher.jobs:
                self._wake.wait()
            if self._stopping:
                return None
            admitted = []
            rows = self.batcher.rows
            while self._queue:
                job = self._queue[0]
                if not job.cancelled and rows and rows + job.n > self.max_rows:
                    break  # wait for free rows (a job bigger than max_rows runs alone)
                self._queue.popleft()
                if not job.cancelled:
                    admitted.append(job)
                    rows += job.n
            return admitted

    def _admit(self, job: Job) -> None:
        try:
            if isinstance(job, BeamJob):
                job.run()
            else:
                self.batcher.add(job)
        except XuxieError as e:  # a prompt this model cannot take
            job.on_error(job, str(e), False)
        except Exception as e:  # a bug, or out of memory
            log.exception("admitting a request failed for model %s", self.name)
            job.on_error(job, f"decoding failed: {type(e).__name__}: {e}", True)
