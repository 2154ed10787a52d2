"""Continuous batching: many requests' sequences decoded together, one step at a time.

A :class:`Job` is one request: a prompt, its :class:`~xuxie.decoding.GenerationConfig`, ``n``
sequences and its own seeded generator. A :class:`Batcher` (one per model) holds the rows of every
active job in one model state — KV-cache rows for a transformer, hidden-state rows for an RNN,
encoder-memory rows for a seq2seq model (``model.batchable_state`` / ``join_states``) — and
:meth:`Batcher.step` advances all of them with one ``model.step``. Jobs join and leave between
steps. Everything per request is the ordinary decoding code: each job's rows go through its own
processor chain (:func:`~xuxie.decoding.build_processors`) and are sampled with its own generator
exactly as :func:`~xuxie.decoding.sample_steps` samples them, and each row's state has a fixed
shape, so a seeded request writes the same text alone and amid others (as far as the model's
arithmetic does not depend on the batch size: README, serving).

Nothing here knows about HTTP: the server (``xuxie.server``) queues jobs, runs a batcher in its
own thread and turns :class:`Emission` s into OpenAI's shapes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .decoding import (
    BOS,
    DecodingSetup,
    GenerationConfig,
    NoRepeatNGram,
    RepetitionPenalty,
    SuppressTokens,
    TextAssembler,
    _make_generator,
    apply_processors,
    build_processors,
    sample,
)
from .errors import XuxieError
from .threads import available_cores, requested_threads, threads_for


@dataclass
class Piece:
    """One emitted text piece with the log-probability of the token(s) that wrote it (a byte-level
    character split over tokens is one piece: their log-probabilities summed) and the model's most
    likely alternatives at its first token (OpenAI's ``top_logprobs``: text -> log-probability)."""

    text: str
    logprob: float | None
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Emission:
    """New output of one sequence after a step: text now safe to show, its pieces (when the job
    asked for log-probabilities) and, once the sequence is over, why (``stop`` or ``length``)."""

    index: int
    text: str
    pieces: list[Piece]
    finish_reason: str | None = None
    tokens: int = 0  # tokens generated so far by this sequence


def token_text(tokenizer, token_id: int) -> str:
    """A token as text on its own; a byte-level token that is part of a character is shown as
    OpenAI shows one: ``bytes:\\xe4\\xbd``."""
    if hasattr(tokenizer, "token_bytes"):
        raw = tokenizer.token_bytes(token_id)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
    return tokenizer.piece(token_id)


class _Sequence:
    """One row's text, cut at stop strings, and its pieces with log-probabilities."""

    def __init__(self, tokenizer, stop: Sequence[str], want_pieces: bool):
        self.assembler = TextAssembler(tokenizer, stop)
        self.want_pieces = want_pieces
        self.pieces: list[Piece] = []
        self.pending_logprob = 0.0  # tokens decoded into no text yet (a character's first bytes)
        self.pending_top: dict[str, float] | None = None
        self.emitted = 0  # characters handed out
        self.emitted_pieces = 0
        self.tokens = 0
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int, logprob: float | None, top: dict[str, float] | None) -> None:
        self.tokens += 1
        a = self.assembler
        piece = a.push(token)
        if self.want_pieces:
            self.pending_logprob += logprob
            self.pending_top = top if self.pending_top is None else self.pending_top
            if piece:
                self.pieces.append(Piece(piece, self.pending_logprob, self.pending_top or {}))
                self.pending_logprob, self.pending_top = 0.0, None
        if a.done:
            self.finish_reason = "stop"  # a stop string

    def finish(self, reason: str) -> None:
        if self.finish_reason is None:
            self.finish_reason = reason
        self.assembler.finish()

    def emission(self, index: int) -> Emission:
        """Text that is safe to show since the last emission (all of it once finished). With pieces,
        text goes out whole pieces at a time, each cut to the final text (a stop string)."""
        a = self.assembler
        a.release()
        safe = len(a.text) if self.done else a.released
        if not self.want_pieces:
            text = a.text[self.emitted:safe]
            self.emitted = safe
            return Emission(index, text, [], self.finish_reason if self.done else None, self.tokens)
        out: list[Piece] = []
        start = sum(len(p.text) for p in self.pieces[:self.emitted_pieces])
        for p in self.pieces[self.emitted_pieces:]:
            end = start + len(p.text)
            if end > safe and not (self.done and start < safe):
                break
            out.append(Piece(a.text[start:min(end, safe)], p.logprob, p.top))
            self.emitted_pieces += 1
            start = end
        text = "".join(p.text for p in out)
        self.emitted += len(text)
        return Emission(index, text, out, self.finish_reason if self.done else None, self.tokens)


class Job:
    """One request: ``n`` sequences from ``prompt_ids`` decoded with ``config`` (validated here).

    ``logprobs``: how many alternatives to report per piece (``None``: no pieces, 0: the chosen
    piece's log-probability only). ``on_emit(job, emissions)`` is called from the batcher's thread
    after each step; ``on_error(job, message, server_fault)`` when the job fails (``server_fault``:
    not the request's fault). :meth:`cancel` (from any thread) frees its rows at the next step.
    """

    def __init__(self, setup: DecodingSetup, prompt_ids: Sequence[int], config: GenerationConfig, n: int = 1, *,
                 logprobs: int | None = None, on_emit: Callable[[Job, list[Emission]], None] | None = None,
                 on_error: Callable[[Job, str, bool], None] | None = None, prompt_text: str | None = None):
        config.validate()
        if not prompt_ids:
            raise XuxieError("decoding needs at least one prompt token")
        self.setup = setup
        self.prompt_ids = list(prompt_ids)
        self.config = config
        self.n = n
        self.logprobs = logprobs
        self.on_emit = on_emit or (lambda job, emissions: None)
        self.on_error = on_error or (lambda job, message, server_fault: None)
        self.sequences = [_Sequence(setup.tokenizer, config.stop, logprobs is not None) for _ in range(n)]
        self.processors = build_processors(config, (), sampling=True)
        #: whether anything reads the tokens so far (repetition penalty, n-gram ban, UTF-8 constraint)
        self.reads_history = bool(setup.constraints) or any(isinstance(p, RepetitionPenalty | NoRepeatNGram) for p in self.processors)
        self.generator = _make_generator(setup.model.device, config.seed) if config.do_sample else None
        prefix = [BOS] if setup.is_encoder_decoder else self.prompt_ids
        self.history = torch.empty(n, len(prefix) + config.max_new_tokens, dtype=torch.long, device=setup.model.device)
        self.history[:, :len(prefix)] = torch.tensor(prefix, dtype=torch.long, device=setup.model.device)
        self.prefix_length = len(prefix)
        self.steps = 0
        self._cancelled = threading.Event()
        #: ``prompt_text`` given: the prompt's pieces with the model's log-probabilities (echo),
        #: filled when the job is admitted
        self.prompt_text = prompt_text
        self.prompt_pieces: list[Piece] | None = None

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)

    @property
    def finished(self) -> bool:
        return all(s.done for s in self.sequences)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def generated_tokens(self) -> int:
        return sum(s.tokens for s in self.sequences)

    def history_so_far(self) -> torch.Tensor:
        """(n, prefix + steps): what processors see (the prompt, or a seq2seq decoder's ``<bos>``)."""
        return self.history[:, :self.prefix_length + self.steps]

    def _choose(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens (n,) for this job's rows from their scores (after the model's own processors),
        and the log-probabilities they were chosen from when the job reports them."""
        logp = scores.log_softmax(-1) if self.logprobs is not None else None
        if self.processors:
            scores = apply_processors(self.processors, self.history_so_far(), scores)
        if self.generator is None:
            tokens = scores.argmax(-1)
        else:
            tokens = sample(scores.softmax(-1), self.generator)
        eos = self.setup.eos_id
        if eos is not None and any(s.done for s in self.sequences):  # a finished row goes on writing <eos>
            ended = torch.tensor([s.done for s in self.sequences], device=tokens.device)
            tokens = tokens.masked_fill(ended, eos)
        if self.reads_history:
            self.history[:, self.prefix_length + self.steps] = tokens
        return tokens, logp

    def _alternatives(self, logp: torch.Tensor) -> list[dict[str, float]]:
        if not self.logprobs:
            return [{} for _ in range(self.n)]
        values, ids = logp.topk(min(self.logprobs, logp.shape[-1]), -1)
        tok = self.setup.tokenizer
        return [{token_text(tok, i): v for i, v in zip(row_ids, row_values) if v > -math.inf}
                for row_ids, row_values in zip(ids.tolist(), values.tolist())]

    def _advance(self, tokens: list[int], chosen: torch.Tensor, logp: torch.Tensor | None) -> None:
        """Push the chosen ``tokens`` (also as the tensor ``chosen``) into each sequence and report."""
        logprobs = tops = [None] * self.n
        if logp is not None:
            logprobs = logp.gather(1, chosen[:, None])[:, 0].tolist()
            tops = self._alternatives(logp)
        self.steps += 1
        last = self.steps >= self.config.max_new_tokens
        going = [i for i, s in enumerate(self.sequences) if not s.done]  # a finished sequence reports no more
        for i in going:
            s, tok = self.sequences[i], tokens[i]
            if tok == self.setup.eos_id:
                s.finish("stop")
                continue
            s.push(tok, logprobs[i], tops[i])
            if last:
                s.finish("length")
        emissions = [self.sequences[i].emission(i) for i in going]
        self.on_emit(self, [e for e in emissions if e.text or e.pieces or e.finish_reason])


class Batcher:
    """The rows of every active :class:`Job` of one model, stepped together (see module doc).

    Not thread-safe: one thread owns a batcher and calls :meth:`add`, :meth:`step` and
    :meth:`drop_cancelled`.
    """

    def __init__(self, setup: DecodingSetup, spare_cores: int = 0):
        self.setup = setup
        self.model = setup.model
        #: cores left to other work in this process (a server's HTTP loop): fewer decoding threads
        self.spare_cores = spare_cores
        self.jobs: list[Job] = []
        self.state = None
        self.logits: torch.Tensor | None = None  # (rows, vocab): the next step's scores
        self._suppress = SuppressTokens(setup.suppress)

    @property
    def rows(self) -> int:
        return sum(j.n for j in self.jobs)

    @torch.inference_mode()
    def add(self, job: Job) -> None:
        """Encode ``job``'s prompt on its own (the prompt's forward pass) and join its rows."""
        if job.config.num_beams > 1:
            raise XuxieError("beam search is not batched across requests: decode it on its own (DecodingSetup.texts)")
        ids = torch.tensor([job.prompt_ids], dtype=torch.long, device=self.model.device)
        _use_threads("evaluate")  # a prompt is one forward pass over many tokens
        logits, state = self.model.prefill(ids)
        if job.prompt_text is not None:
            job.prompt_pieces = self._prompt_pieces(job, logits[0])
        index = torch.zeros(job.n, dtype=torch.long, device=self.model.device)
        state = self.model.batchable_state(self.model.reorder_state(state, index))
        logits = logits[:, -1].float().expand(job.n, -1)
        if job.config.max_new_tokens == 0:
            for s in job.sequences:
                s.finish("length")
            job.on_emit(job, [s.emission(i) for i, s in enumerate(job.sequences)])
            return
        if self.jobs:
            state = self.model.join_states([self.state, state])
            logits = torch.cat([self.logits, logits])
        self.jobs.append(job)
        self.state, self.logits = state, logits.clone()

    def _prompt_pieces(self, job: Job, logits: torch.Tensor) -> list[Piece]:
        """The prompt as pieces, each with the log-probability the model gave it after the text
        before it (the first has none; OpenAI's echo). A seq2seq input, or a prompt whose tokens do
        not spell it (characters the model never saw), is one piece without a log-probability."""
        text = job.prompt_text
        if self.setup.is_encoder_decoder or not text:
            return [Piece(text, None)] if text else []
        logp = logits.float().log_softmax(-1)
        tokenizer = self.setup.tokenizer
        not_text = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
        decoder = tokenizer.stream_decoder()
        pieces: list[Piece] = []
        pending = 0.0
        for i, tok in enumerate(job.prompt_ids):
            if tok in not_text or tok >= tokenizer.vocab_size:  # <bos>, a context label
                pending = 0.0
                continue
            piece = decoder.push(tok)
            pending += float(logp[i - 1, tok]) if i else math.nan
            if piece:
                top = dict(job._alternatives(logp[i - 1:i])[0]) if i else {}
                pieces.append(Piece(piece, None if math.isnan(pending) else pending, top))
                pending = 0.0
        if "".join(p.text for p in pieces) != text:
            return [Piece(text, None)]
        return pieces

    def drop_cancelled(self) -> list[Job]:
        """Free the rows of cancelled jobs (a client that left); returns them."""
        gone = [j for j in self.jobs if j.cancelled]
        if gone:
            self._keep([j for j in self.jobs if not j.cancelled])
        return gone

    @torch.inference_mode()
    def step(self) -> list[Job]:
        """One token for every active row; returns the jobs that finished (their rows are freed)."""
        if not self.jobs:
            return []
        _use_threads("decode", self.rows, self.spare_cores)
        # Per job only what is the job's own: its processors, generator and text. Python work
        # per job per step is kept small: it is what a step costs beyond the model's.
        scores = self._suppress(None, self.logits.clone())  # processors write in place
        chosen, logps, start = [], [], 0
        for job in self.jobs:
            part = scores[start:start + job.n]
            if self.setup.constraints:
                part = apply_processors(self.setup.constraints, job.history_so_far(), part)
            tokens_of_job, logp = job._choose(part)
            chosen.append(tokens_of_job)
            logps.append(logp)
            start += job.n
        tokens = torch.cat(chosen).tolist()
        start = 0
        for job, c, logp in zip(self.jobs, chosen, logps):
            job._advance(tokens[start:start + job.n], c, logp)
            start += job.n
        done = [j for j in self.jobs if j.finished]
        if done:
            tokens = [tokens[r] for r in self._keep([j for j in self.jobs if not j.finished])]
        if self.jobs:
            ids = torch.tensor(tokens, dtype=torch.long, device=self.model.device)
            logits, self.state = self.model.step(ids, self.state)
            self.logits = logits.float()
        return done

    def _keep(self, jobs: list[Job]) -> list[int]:
        """Keep only ``jobs``' rows; returns the kept row numbers."""
        rows, start = [], 0
        for j in self.jobs:
            if j in jobs:
                rows += range(start, start + j.n)
            start += j.n
        self.jobs = jobs
        if not jobs:
            self.state, self.logits = None, None
        elif len(rows) < self.logits.shape[0]:
            index = torch.tensor(rows, dtype=torch.long, device=self.model.device)
            self.state = self.model.reorder_state(self.state, index)
            self.logits = self.logits.index_select(0, index)
        return rows

    def fail_all(self, message: str) -> None:
        """Drop every job with ``message`` (an unexpected error in a batched step)."""
        for j in self.jobs:
            j.on_error(j, message, True)
        self.jobs, self.state, self.logits = [], None, None


def _use_threads(workload: str, rows: int = 1, spare_cores: int = 0) -> None:
    """Torch threads for ``workload`` (one thread for a few decoded rows, all cores for many or for
    a prompt: :func:`xuxie.threads.threads_for`), leaving ``spare_cores`` unless the user chose.
    Set, not scoped: a batcher's thread is the only one running the model."""
    n = threads_for(workload, rows)
    if requested_threads() is None:
        n = max(1, min(n, available_cores() - spare_cores))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


__all__ = ["Batcher", "Emission", "Job", "Piece", "token_text"]
