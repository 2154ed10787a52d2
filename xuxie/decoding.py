"""Model-agnostic decoding: logits processors, sampling, beam search, stop strings, streaming.

Everything here drives a model only through ``model.prefill(ids)`` (the prompt),
``model.step(ids, state)`` and ``model.reorder_state(state, index)``; it never knows which
architecture it runs. Processors follow HF transformers' convention: a callable
``(input_ids (B, t), scores (B, V)) -> scores`` with one job each, composed in a list.
"""

from __future__ import annotations

import codecs
import difflib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from .errors import XuxieError, XuxieWarning, check_numbers
from .limits import check_generation_size
from .threads import threads_scope
from .tokenizers import BOS, SPECIALS

NEG_INF = float("-inf")


# --------------------------------------------------------------------------- configuration
def _option(default: Any, doc: str) -> Any:
    """A decoding option: its default and the one line that documents it (the CLI's help too)."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class GenerationConfig:
    """How to decode: every decoding option is declared, documented and validated here, once.

    Front-ends start from a copy of a default config and apply the user's options with
    :meth:`updated` (HF transformers' ``generation_config`` + keyword arguments), then
    :meth:`validate`.
    """

    max_new_tokens: int = _option(200, "Tokens to write.")
    temperature: float = _option(1.0, "0: greedy; lower is safer, higher is wilder.")
    top_k: int = _option(0, "Sample from the k most likely tokens (0: off).")
    top_p: float = _option(1.0, "Nucleus sampling: smallest set with this much probability (1: off).")
    repetition_penalty: float = _option(1.0, ">1 discourages repeating tokens (1: off).")
    no_repeat_ngram_size: int = _option(0, "Never repeat an n-gram of this size (0: off).")
    num_beams: int = _option(1, "Beam search with this many beams (1: off).")
    length_penalty: float = _option(1.0, "Beam search: >0 favours longer, <0 shorter texts.")
    stop: tuple[str, ...] = _option((), "Stop at this string (repeatable).")
    seed: int | None = _option(None, "Seed for reproducible sampling.")

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(s for s in self.stop if s)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def doc(cls, name: str) -> str:
        """The one-line documentation of the option ``name``."""
        return next(f.metadata["doc"] for f in fields(cls) if f.name == name)

    def updated(self, **overrides: Any) -> GenerationConfig:
        """A copy with ``overrides`` applied (``None`` keeps the value: "not given"), not yet
        validated. An unknown name is one error that lists the valid ones."""
        names = self.option_names()
        unknown = [k for k in overrides if k not in names]
        if unknown:
            close = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
            hints = "".join(f" (did you mean {close[k][0]}?)" for k in unknown if close[k])
            raise XuxieError(f"unknown decoding option(s): {', '.join(unknown)}{hints}; valid options: {', '.join(names)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> GenerationConfig:
        check_numbers(vars(self))
        checks = [
            (self.temperature is None or self.temperature < 0 or math.isnan(self.temperature),
             f"temperature must be 0 (greedy) or positive, got {self.temperature}"),
            (not 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p} (1 turns it off)"),
            (self.top_k < 0, f"top_k must be 0 (off) or a positive number of tokens, got {self.top_k}"),
            (self.max_new_tokens < 0, f"max_new_tokens must be 0 or more, got {self.max_new_tokens}"),
            (self.repetition_penalty <= 0, f"repetition_penalty must be positive (1 turns it off), got {self.repetition_penalty}"),
            (self.no_repeat_ngram_size < 0, f"no_repeat_ngram_size must be 0 (off) or more, got {self.no_repeat_ngram_size}"),
            (self.num_beams < 1, f"num_beams must be at least 1, got {self.num_beams}"),
        ]
        for bad, message in checks:
            if bad:
                raise XuxieError(message)
        # The samples and the prompt are not known here: the least this config can cost (the
        # front ends check the whole size once the prompt is encoded).
        check_generation_size(None, self.num_beams, None, self.max_new_tokens, n_flag=None)
        return self

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0 and self.num_beams == 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


# --------------------------------------------------------------------------- processors
class LogitsProcessor:
    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SuppressTokens(LogitsProcessor):
    """Never produce these ids (``<pad>``, ``<unk>``, ``<bos>``, and ``<eos>`` where not allowed)."""

    def __init__(self, ids: Sequence[int]):
        self.ids = list(ids)
        self._index: torch.Tensor | None = None  # ids as a tensor on the scores' device, made once

    def __call__(self, input_ids, scores):
        if not self.ids:
            return scores
        if self._index is None or self._index.device != scores.device:
            self._index = torch.tensor(self.ids, dtype=torch.long, device=scores.device)
        return scores.index_fill_(1, self._index, NEG_INF)  # one op: indexing with a list costs ~10 µs a token


class RepetitionPenalty(LogitsProcessor):
    """CTRL's penalty: scores of tokens already in the sequence are divided by ``penalty`` when
    positive and multiplied by it when negative, so ``penalty > 1`` makes repeats less likely."""

    def __init__(self, penalty: float):
        self.penalty = penalty

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] == 0:
            return scores
        picked = scores.gather(1, input_ids)
        picked = torch.where(picked > 0, picked / self.penalty, picked * self.penalty)
        return scores.scatter(1, input_ids, picked)


class NoRepeatNGram(LogitsProcessor):
    """Bans any token that would repeat an n-gram already in the sequence."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, input_ids, scores):
        n = self.n
        b, t = input_ids.shape
        if t < n:
            return scores
        if n == 1:
            return scores.scatter(1, input_ids, NEG_INF)
        grams = input_ids.unfold(1, n, 1)  # (B, t-n+1, n)
        prefix = input_ids[:, t - n + 1:]  # the last n-1 tokens
        match = (grams[:, :, :-1] == prefix[:, None, :]).all(-1)  # (B, t-n+1)
        rows, cols = match.nonzero(as_tuple=True)
        if rows.numel():
            scores = scores.clone()
            scores[rows, grams[rows, cols, -1]] = NEG_INF
        return scores


class Temperature(LogitsProcessor):
    def __init__(self, temperature: float):
        self.temperature = temperature

    def __call__(self, input_ids, scores):
        return scores / self.temperature


class TopK(LogitsProcessor):
    """Keeps the ``k`` highest-scoring tokens."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, input_ids, scores):
        k = min(self.k, scores.shape[-1])
        kth = scores.topk(k, dim=-1).values[:, -1:]
        return scores.masked_fill(scores < kth, NEG_INF)


class TopP(LogitsProcessor):
    """Nucleus sampling: keeps the smallest set of most likely tokens whose probability sums to
    at least ``p`` (the token that crosses ``p`` is kept; ties at the edge are kept too)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, input_ids, scores):
        probs = scores.softmax(-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely tokens
        keep_sorted = before < self.p
        keep_sorted[:, 0] = True
        # Threshold: the smallest kept probability; keep everything at least that likely.
        threshold = sorted_probs.masked_fill(~keep_sorted, 2.0).min(-1, keepdim=True).values
        return scores.masked_fill(probs < threshold, NEG_INF)


class CompleteUTF8:
    """Byte-level tokenizers: allow only tokens that keep the generated bytes valid UTF-8.

    A byte-level BPE model may pick a token that starts with continuation bytes nothing asked
    for, or bytes that cannot follow the lead byte before them — text that cannot be shown. This
    processor reads the bytes at the end of each row (prompt + generated) and masks every token
    that does not fit: after a complete character only tokens that start one (or end the text);
    inside a character only tokens whose bytes validly continue it (the end of text is not allowed
    there, so a document never ends mid-character). Masks for each incomplete prefix are computed
    once, with Python's strict incremental UTF-8 decoder, and cached.
    """

    def __init__(self, tokenizer, device: torch.device):
        self.token_bytes = [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
        self.device = device
        self.starts = torch.tensor([self._valid(b"", b) and not (b and 0x80 <= b[0] <= 0xBF) for b in self.token_bytes], device=device)
        self.continuing = [i for i, b in enumerate(self.token_bytes) if b and 0x80 <= b[0] <= 0xBF]
        self._cache: dict[bytes, torch.Tensor] = {}

    @staticmethod
    def _valid(pending: bytes, b: bytes) -> bool:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(pending + b, final=False)
            return True
        except UnicodeDecodeError:
            return False

    def _pending(self, row: list[int]) -> bytes:
        """The bytes of an incomplete last character ('' when the text ends on a whole one)."""
        tail = b""
        for tok in reversed(row):
            tail = self.token_bytes[tok] + tail
            if len(tail) >= 4:
                break
        tail = tail[-4:]
        for back in range(1, len(tail) + 1):
            byte = tail[-back]
            if 0x80 <= byte <= 0xBF:
                continue
            size = 2 if 0xC0 <= byte <= 0xDF else 3 if 0xE0 <= byte <= 0xEF else 4 if 0xF0 <= byte <= 0xF7 else 1
            return tail[-back:] if back < size else b""
        return b""

    def _mask(self, pending: bytes) -> torch.Tensor:
        if not pending:
            return self.starts
        mask = self._cache.get(pending)
        if mask is None:
            mask = torch.zeros(len(self.token_bytes), dtype=torch.bool)
            ok = [i for i in self.continuing if self._valid(pending, self.token_bytes[i])]
            mask[ok] = True
            mask = self._cache[pending] = mask.to(self.device)
        return mask

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        allowed = torch.stack([self._mask(self._pending(r)) for r in input_ids[:, -4:].tolist()])
        return scores.masked_fill(~allowed, float("-inf"))


def constraint_processors(tokenizer, device: torch.device) -> list:
    """Processors a tokenizer needs to produce valid text (byte-level BPE: complete UTF-8)."""
    return [CompleteUTF8(tokenizer, device)] if hasattr(tokenizer, "token_bytes") else []


def build_processors(config: GenerationConfig, suppress: Sequence[int] = (), sampling: bool = True,
                     extra: Sequence[LogitsProcessor] = ()) -> list[LogitsProcessor]:
    """The processor chain for ``config``. Beam search uses only the ones that are not about
    sampling (suppression, repetition penalty, no-repeat-n-gram).

    ``extra`` — a user's own processors — run after the built-in ones that shape the scores and,
    as in HF transformers, before the sampling warpers (temperature, top-k, top-p): a token the
    user bans is then never the only one top-p keeps, which would leave nothing to sample.
    """
    procs: list[LogitsProcessor] = []
    if suppress:
        procs.append(SuppressTokens(suppress))
    if config.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(config.repetition_penalty))
    if config.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(config.no_repeat_ngram_size))
    procs.extend(extra)
    if sampling:
        if config.temperature > 0 and config.temperature != 1.0:
            procs.append(Temperature(config.temperature))
        if config.top_k > 0:
            procs.append(TopK(config.top_k))
        if config.top_p < 1.0:
            procs.append(TopP(config.top_p))
    return procs


def apply_processors(procs: Iterable[LogitsProcessor], input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    for p in procs:
        scores = p(input_ids, scores)
    return scores


# --------------------------------------------------------------------------- token loops
def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``probs`` (rows, vocab), drawn as ``torch.multinomial(probs, 1)``
    draws it — the argmax of ``probs / q`` for exponential noise ``q`` (the Gumbel-max trick),
    so the same generator gives the same tokens — without its input checks, which cost as
    much as the draw (together ~20 µs of the default LSTM's ~120 µs batch-1 step, measured).
    A row with nothing left to draw from (every score -inf) is an error, as it was there."""
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    best, tokens = probs.div(noise).max(-1)
    if not bool((best > 0).all()):  # NaN or 0: every token of a row was banned
        raise XuxieError("no token is left to sample from: the logits processors or settings banned every one")
    return tokens


def _make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


@torch.inference_mode()
def _prefill(model, prompt_ids: Sequence[int], batch: int):
    """Run the prompt once and copy the resulting state ``batch`` times."""
    if not prompt_ids:
        raise XuxieError("decoding needs at least one prompt token")
    device = model.device
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    logits, state = model.prefill(ids)
    index = torch.zeros(batch, dtype=torch.long, device=device)
    return logits[:, -1].float().expand(batch, -1).clone(), model.reorder_state(state, index)


def _history_prefix(model, prompt_ids: Sequence[int]) -> list[int]:
    """The tokens processors see before the first new one (repetition penalty, n-gram blocking):
    the prompt for a language model; for an encoder–decoder only the decoder's own ``<bos>`` (its
    prompt is the source, which the answer may repeat freely)."""
    return [BOS] if getattr(model, "is_encoder_decoder", False) else list(prompt_ids)


@torch.inference_mode()
def sample_steps(model, prompt_ids: Sequence[int], config: GenerationConfig, n: int = 1,
                 eos_id: int | None = None, suppress: Sequence[int] = (),
                 constraints: Sequence[LogitsProcessor] = (),
                 processors: Sequence[LogitsProcessor] = ()) -> Iterator[list[int]]:
    """Yield, per step, the new token of each of ``n`` sequences sampled together.

    A sequence that produced ``eos_id`` keeps yielding ``eos_id``; the loop ends when all have,
    or after ``max_new_tokens`` steps. Greedy when ``temperature == 0``. ``processors`` are the
    user's own (see :func:`build_processors`).
    """
    config.validate()
    if config.max_new_tokens == 0:
        return
    procs = [*constraints, *build_processors(config, suppress, sampling=True, extra=processors)]
    with threads_scope("decode", rows=n):
        yield from _sample_loop(model, prompt_ids, config, n, eos_id, procs)


def _sample_loop(model, prompt_ids: Sequence[int], config: GenerationConfig, n: int, eos_id: int | None,
                 procs: Sequence[LogitsProcessor]) -> Iterator[list[int]]:
    device = model.device
    logits, state = _prefill(model, prompt_ids, n)
    gen = _make_generator(device, config.seed) if config.do_sample else None
    prefix = _history_prefix(model, prompt_ids)
    plen = len(prefix)
    history = torch.empty(n, plen + config.max_new_tokens, dtype=torch.long, device=device)
    history[:, :plen] = torch.tensor(prefix, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(config.max_new_tokens):
        scores = apply_processors(procs, history[:, :plen + t], logits)
        if gen is None:
            tokens = scores.argmax(-1)
        else:
            tokens = sample(scores.softmax(-1), gen)
        if eos_id is not None:
            tokens = tokens.masked_fill(finished, eos_id)
            finished |= tokens == eos_id
        history[:, plen + t] = tokens
        yield tokens.tolist()
        if eos_id is not None and bool(finished.all()):
            return
        if t + 1 < config.max_new_tokens:
            logits, state = model.step(tokens, state)
            logits = logits.float()


@dataclass
class Hypothesis:
    tokens: list[int]
    logprob: float  # sum of log-probabilities of the generated tokens
    score: float  # logprob / length ** length_penalty
    finished: bool = False


@torch.inference_mode()
def beam_search(model, prompt_ids: Sequence[int], config: GenerationConfig, eos_id: int | None = None,
                suppress: Sequence[int] = (), constraints: Sequence[LogitsProcessor] = (),
                processors: Sequence[LogitsProcessor] = ()) -> list[Hypothesis]:
    """Beam search over ``model.step``; returns hypotheses best first (``num_beams`` of them).

    Scores are summed log-probabilities divided by ``length ** length_penalty`` (length =
    generated tokens); ``length_penalty > 0`` favours longer sequences, ``< 0`` shorter ones.
    ``processors`` are the user's own, after the built-in ones.
    """
    config.validate()
    if config.max_new_tokens == 0:
        return [Hypothesis([], 0.0, 0.0, False)]
    procs = [*constraints, *build_processors(config, suppress, sampling=False, extra=processors)]
    with threads_scope("decode", rows=config.num_beams):
        return _beam_loop(model, prompt_ids, config, eos_id, procs)


def _best_continuations(candidates: torch.Tensor, k: int,
                        eos_id: int | None) -> tuple[list[tuple[int, float]], list[tuple[int, int, float]]]:
    """From ``candidates`` (beams, vocab: each beam × token's summed log-probability; overwritten):
    every beam's ending with ``eos_id`` as (beam, logp), and the ``k`` best that go on as (beam,
    token, logp), best first.

    Every ending is kept, not only those among the k best candidates (HF's rule): an ending takes
    no beam, and one that ranks below k running beams can still be far likelier than anything they
    go on to write (a 红楼梦 seq2seq model: greedy's 3-token answer, -5.5 nats, ranked 5th at its
    last step; the 4 beams kept instead ended at -22 or worse)."""
    ended: list[tuple[int, float]] = []
    if eos_id is not None:
        ended = [(b, v) for b, v in enumerate(candidates[:, eos_id].tolist()) if v > NEG_INF]
        candidates[:, eos_id] = NEG_INF
    top_logp, top_idx = candidates.view(-1).topk(min(k, candidates.numel()))
    vocab = candidates.shape[1]
    going = [(*divmod(i, vocab), v) for v, i in zip(top_logp.tolist(), top_idx.tolist()) if v > NEG_INF]
    return ended, going


def _beam_loop(model, prompt_ids: Sequence[int], config: GenerationConfig, eos_id: int | None,
               procs: Sequence[LogitsProcessor]) -> list[Hypothesis]:
    k = config.num_beams
    device = model.device
    logits, state = _prefill(model, prompt_ids, k)
    prefix = _history_prefix(model, prompt_ids)
    plen = len(prefix)
    history = torch.empty(k, plen + config.max_new_tokens, dtype=torch.long, device=device)
    history[:, :plen] = torch.tensor(prefix, dtype=torch.long, device=device)
    beam_logp = torch.full((k,), NEG_INF, device=device)
    beam_logp[0] = 0.0  # all beams start identical: expand only the first
    finished: list[Hypothesis] = []
    lp = config.length_penalty

    def norm(logprob: float, length: int) -> float:
        return logprob / (max(length, 1) ** lp)

    for t in range(config.max_new_tokens):
        scores = apply_processors(procs, history[:, :plen + t], logits)
        logp = scores.log_softmax(-1)
        ended, going = _best_continuations(beam_logp[:, None] + logp, k, eos_id)
        finished += [Hypothesis(history[b, plen:plen + t].tolist(), v, norm(v, t + 1), True) for b, v in ended]
        finished = sorted(finished, key=lambda h: h.score, reverse=True)[:k]
        if not going:
            break
        keep_beam, keep_tok, keep_logp = (list(column) for column in zip(*going))
        # Stop when no running beam can beat the k-th best finished hypothesis. A beam's summed
        # log-probability only falls, but with length_penalty > 0 its normalised score can still
        # rise by growing longer: its bound is then at the longest length (HF's
        # early_stopping="never"; HF's default assumes it never rises and stops too soon).
        if len(finished) == k and norm(keep_logp[0], config.max_new_tokens if lp > 0 else t + 1) <= finished[-1].score:
            break
        m = len(keep_beam)
        index = torch.tensor(keep_beam + [keep_beam[0]] * (k - m), dtype=torch.long, device=device)
        tokens = torch.tensor(keep_tok + [keep_tok[0]] * (k - m), dtype=torch.long, device=device)
        beam_logp = torch.tensor(keep_logp + [NEG_INF] * (k - m), device=device)
        history = history.index_select(0, index)
        history[:, plen + t] = tokens
        if t + 1 < config.max_new_tokens:
            state = model.reorder_state(state, index)
            logits, state = model.step(tokens, state)
            logits = logits.float()
        else:
            length = t + 1
            for b in range(m):
                v = keep_logp[b]
                finished.append(Hypothesis(history[b, plen:plen + length].tolist(), v, norm(v, length), False))
    if not finished:  # stopped early with nothing finished (cannot normally happen)
        return [Hypothesis([], 0.0, 0.0, False)]
    finished.sort(key=lambda h: h.score, reverse=True)
    return finished[:k]


@torch.inference_mode()
def sequence_logprob(model, prompt_ids: Sequence[int], new_ids: Sequence[int], suppress: Sequence[int] = ()) -> float:
    """Sum of log-probabilities the model gives ``new_ids`` after ``prompt_ids`` (with the
    ``suppress``ed tokens' probability shared out over the rest, as decoding does)."""
    if not new_ids:
        return 0.0
    prompt = torch.tensor([list(prompt_ids)], dtype=torch.long, device=model.device)
    new = torch.tensor([list(new_ids)], dtype=torch.long, device=model.device)
    logits = model.continuation_logits(prompt, new).float()
    if suppress:
        logits[:, list(suppress)] = NEG_INF
    logp = logits.log_softmax(-1)
    return float(logp.gather(1, new[0, :, None]).sum())


# --------------------------------------------------------------------------- prompts
UNSEEN_SHOWN = 10  # unseen characters named in the warning; the count says how many there are


def warn_unseen(tokenizer, text: str | Sequence[str], what: str = "the prompt") -> int:
    """One warning naming the characters of ``text`` (``what`` the user gave; several texts are read
    each on its own) the model never saw; returns how many there are.

    The tokenizer reads them as ``<unk>``: the model still works on the rest, which is better than
    refusing text that is mostly fine; the warning says its reading of that text is blind there.
    """
    unseen: dict[str, str] = {}
    for part in [text] if isinstance(text, str) else text:
        for c, where in tokenizer.unknown_in_context(part).items():
            unseen.setdefault(c, where)
    if not unseen:
        return 0
    names = [repr(c) if where == c else f"{c!r} (in {where!r})" for c, where in sorted(unseen.items())]
    shown = " ".join(names[:UNSEEN_SHOWN]) + (" …" if len(names) > UNSEEN_SHOWN else "")
    warnings.warn(f"{what} has {len(names)} character(s) the model never saw in training, read as unknown: {shown}",
                  XuxieWarning, stacklevel=2)
    return len(names)


def encode_user_text(tokenizer, text: str, what: str = "the prompt") -> list[int]:
    """Token ids of text the user gave, with :func:`warn_unseen`'s warning for what becomes ``<unk>``.

    Every front-end (prompt, seq2seq input, typed text) encodes the user's text here. The ids are
    for the model only: where the text is shown again it must be the user's own string, since
    decoding ``<unk>`` cannot give back the character it replaced.
    """
    warn_unseen(tokenizer, text, what)
    return tokenizer.encode(text)


def prompt_ids_for(tokenizer, prompt: str, mode: str, what: str = "the prompt") -> list[int]:
    """Token ids that start generation (see :func:`encode_user_text` for unseen characters).

    ``lines`` models start every document with ``<bos>``. ``text`` models continue the prompt;
    with no prompt they start after a line break (or after their most frequent token when the
    corpus has no line breaks), which is not part of the output.
    """
    ids = encode_user_text(tokenizer, prompt, what) if prompt else []
    if mode == "lines":
        return [tokenizer.bos_id] + ids
    if not ids:
        nl = tokenizer.encode("\n")
        ids = nl if nl and tokenizer.unk_id not in nl else [len(SPECIALS) if tokenizer.vocab_size > len(SPECIALS) else tokenizer.bos_id]
    return ids


def suppressed_ids(tokenizer, mode: str) -> list[int]:
    """Tokens generation never produces: padding, unknown, begin; end too unless the model writes
    whole documents (``lines``) or answers (``pairs``)."""
    ids = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id]
    if mode not in ("lines", "pairs"):
        ids.append(tokenizer.eos_id)
    return ids


# --------------------------------------------------------------------------- text assembly
class TextAssembler:
    """Builds one sequence's text from tokens, cuts it at the first stop string, and releases
    only text that can no longer turn into a stop string (for streaming)."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.decoder = tokenizer.stream_decoder()
        self.stop = tuple(stop)
        self.longest = max((len(s) for s in self.stop), default=0)
        self.text = ""
        self.released = 0
        self.done = False

    def push(self, token_id: int) -> str:
        """Add a token; returns the text it decoded to (before any cut at a stop string)."""
        if self.done:
            return ""
        piece = self.decoder.push(token_id)
        self._add(piece)
        return piece

    def _add(self, piece: str) -> None:
        if not piece:
            return
        start = max(0, len(self.text) - self.longest + 1)
        self.text += piece
        if self.stop:
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.text = self.text[:min(hits)]
                self.done = True

    def finish(self) -> None:
        if not self.done:
            # A token budget can end inside a character's bytes: leave that character out.
            self._add(self.decoder.flush(drop_incomplete=True))
        self.done = True

    def release(self) -> str:
        """Text that is safe to show now."""
        end = len(self.text)
        if not self.done and self.stop:
            # Hold back the longest tail that could still grow into a stop string.
            for k in range(min(self.longest - 1, end - self.released), 0, -1):
                tail = self.text[end - k:]
                if any(s.startswith(tail) for s in self.stop):
                    end -= k
                    break
        out = self.text[self.released:end]
        self.released = end
        return out


def _input_only(model, tokenizer, suppress: Sequence[int]) -> list[int]:
    """``suppress`` plus the model's input-only ids beyond the tokenizer (context labels)."""
    width = getattr(model.config, "vocab_size", tokenizer.vocab_size)
    return [*suppress, *range(tokenizer.vocab_size, width)]


# Modes whose documents end: the model writes ``<eos>`` and decoding stops there.
ENDING_MODES = ("lines", "pairs")


class DecodingSetup:
    """What decoding needs to know about one loaded model, derived once and shared by every
    front-end (``TextGenerator``, ``xuxie write``, the Trainer's previews, ``xuxie analyze``):

    - ``eos_id``: the token that ends a text (``lines`` and ``pairs`` models), else ``None``;
    - ``suppress``: ids never produced — padding, unknown, begin, end where texts do not end, and
      the context labels, which are input-only ids after the tokenizer's own;
    - ``constraints``: processors the tokenizer needs for valid text (complete UTF-8 for bytes);
    - :meth:`prompt_ids`: the ids a prompt (or a seq2seq input) starts decoding from.

    :meth:`texts`, :meth:`stream` and :meth:`beams` decode with them; a user's own processors
    go in ``processors`` (see :func:`build_processors` for where they run).
    """

    def __init__(self, model, tokenizer, *, mode: str = "text", eos_id: int | None = None,
                 suppress: Sequence[int] = (), labels: Sequence[str] = ()):
        self.model = model
        self.tokenizer = tokenizer
        self.mode = mode
        self.labels = tuple(labels)
        self.eos_id = eos_id
        self.suppress = tuple(_input_only(model, tokenizer, suppress))
        self.constraints = tuple(constraint_processors(tokenizer, model.device))

    @classmethod
    def for_model(cls, model, tokenizer, mode: str, labels: Sequence[str] = ()) -> DecodingSetup:
        """The setup of a model trained in ``mode`` (``text``, ``lines`` or ``pairs``) with ``labels``."""
        eos_id = tokenizer.eos_id if mode in ENDING_MODES else None
        return cls(model, tokenizer, mode=mode, eos_id=eos_id, suppress=suppressed_ids(tokenizer, mode), labels=labels)

    def __repr__(self) -> str:
        return f"DecodingSetup(mode={self.mode}, eos_id={self.eos_id}, suppress={len(self.suppress)} ids, labels={len(self.labels)})"

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model, "is_encoder_decoder", False))

    @property
    def default_max_new_tokens(self) -> int:
        """Tokens per generation when none are asked for: a seq2seq model's answer length, 500
        for ``lines`` models (which stop at ``<eos>``), else 200."""
        if self.is_encoder_decoder:
            return int(self.model.config.max_target_len)
        return 500 if self.mode == "lines" else 200

    # -- prompts -----------------------------------------------------------------------------
    def prompt_ids(self, text: str, context: str | None = None, truncate: bool = False) -> list[int]:
        """Ids decoding starts from: a language model's prompt (with its context label), or the
        input a seq2seq model answers (``truncate``: keep the end of one that is too long)."""
        if self.is_encoder_decoder:
            if context is not None:
                raise XuxieError("context labels are for language models trained with --label-column; drop --context")
            return self.source_ids(text, truncate)
        ids = prompt_ids_for(self.tokenizer, text, self.mode)
        if context is None:
            return ids
        return [ids[0], self.label_id(context), *ids[1:]]

    def label_id(self, context: str) -> int:
        """The input id of a context label (after the tokenizer's own ids)."""
        if not self.labels:
            raise XuxieError("this model was trained without context labels; drop --context (train with --label-column to use them)")
        if context not in self.labels:
            shown = ", ".join(self.labels[:20]) + (" …" if len(self.labels) > 20 else "")
            raise XuxieError(f"unknown context label '{context}'; this model knows: {shown}")
        return self.tokenizer.vocab_size + self.labels.index(context)

    def source_ids(self, text: str, truncate: bool = False) -> list[int]:
        """Token ids of an encoder–decoder's input, checked against what the model can read."""
        if not text.strip():
            raise XuxieError("a seq2seq model answers an input: give some text (--text, --input or --prompt)")
        ids = prompt_ids_for(self.tokenizer, text, "pairs", what="the input")
        limit = int(self.model.config.max_source_len)
        if len(ids) > limit:
            if not truncate:
                raise XuxieError(f"the input is {len(ids)} tokens long; this model reads at most {limit} (its --max-source-len): "
                                 f"shorten it, or pass --truncate to keep its last {limit} tokens")
            ids = ids[-limit:]
        return ids

    # -- decoding ----------------------------------------------------------------------------
    def text_of(self, tokens: Sequence[int], stop: Sequence[str] = ()) -> str:
        """The text of a finished sequence of new tokens, cut at the first ``stop`` string."""
        a = TextAssembler(self.tokenizer, stop)
        for tok in tokens:
            a.push(tok)
        a.finish()
        return a.text

    def beams(self, prompt_ids: Sequence[int], config: GenerationConfig,
              processors: Sequence[LogitsProcessor] = ()) -> list[Hypothesis]:
        """:func:`beam_search` with this model's end, suppressed ids and constraints."""
        return beam_search(self.model, prompt_ids, config, self.eos_id, self.suppress, self.constraints, processors)

    def best(self, prompt_ids: Sequence[int], config: GenerationConfig, n: int = 1,
             processors: Sequence[LogitsProcessor] = ()) -> list[Hypothesis]:
        """The ``n`` best hypotheses of beam search (``n`` ≤ ``num_beams``)."""
        if n > config.num_beams:
            raise XuxieError(f"beam search returns at most num_beams={config.num_beams} sequences; ask for n ≤ num_beams")
        return self.beams(prompt_ids, config, processors)[:n]

    def texts(self, prompt_ids: Sequence[int], config: GenerationConfig, n: int = 1,
              processors: Sequence[LogitsProcessor] = ()) -> list[str]:
        """``n`` continuations (text only, without the prompt): sampled, greedy, or the ``n``
        best of beam search."""
        config.validate()
        if config.num_beams > 1:
            return [self.text_of(h.tokens, config.stop) for h in self.best(prompt_ids, config, n, processors)]
        asm = [TextAssembler(self.tokenizer, config.stop) for _ in range(n)]
        steps = sample_steps(self.model, prompt_ids, config, n, self.eos_id, self.suppress, self.constraints, processors)
        for tokens in steps:
            for a, tok in zip(asm, tokens):
                if tok == self.eos_id:
                    a.finish()
                else:
                    a.push(tok)
            if all(a.done for a in asm):
                break
        for a in asm:
            a.finish()
        return [a.text for a in asm]

    def stream(self, prompt_ids: Sequence[int], config: GenerationConfig,
               processors: Sequence[LogitsProcessor] = ()) -> Iterator[str]:
        """One continuation as an iterator of text pieces (as soon as they are safe to show)."""
        config.validate()
        if config.num_beams > 1:
            # Beam search only knows its best sequence at the end.
            yield from self.texts(prompt_ids, config, 1, processors)
            return
        a = TextAssembler(self.tokenizer, config.stop)
        # A copy: the caller may change its config (a seed per paragraph) while this one runs.
        steps = sample_steps(self.model, prompt_ids, replace(config), 1, self.eos_id, self.suppress, self.constraints, processors)
        for (tok,) in steps:
            if tok == self.eos_id:
                break
            a.push(tok)
            piece = a.release()
            if piece:
                yield piece
            if a.done:
                break
        a.finish()
        piece = a.release()
        if piece:
            yield piece


def generate_texts(model, tokenizer, prompt_ids: Sequence[int], config: GenerationConfig, n: int = 1,
                   eos_id: int | None = None, suppress: Sequence[int] = (),
                   processors: Sequence[LogitsProcessor] = ()) -> list[str]:
    """``n`` continuations (text only, without the prompt) of a model given by its parts; a
    loaded model's :class:`DecodingSetup` does this with the parts derived once."""
    return DecodingSetup(model, tokenizer, eos_id=eos_id, suppress=suppress).texts(prompt_ids, config, n, processors)


def stream_text(model, tokenizer, prompt_ids: Sequence[int], config: GenerationConfig,
                eos_id: int | None = None, suppress: Sequence[int] = (),
                processors: Sequence[LogitsProcessor] = ()) -> Iterator[str]:
    """One continuation as an iterator of text pieces (see :meth:`DecodingSetup.stream`)."""
    return DecodingSetup(model, tokenizer, eos_id=eos_id, suppress=suppress).stream(prompt_ids, config, processors)


__all__ = [
    "DecodingSetup", "GenerationConfig", "Hypothesis", "LogitsProcessor", "NoRepeatNGram", "RepetitionPenalty",
    "SuppressTokens", "Temperature", "TextAssembler", "TopK", "TopP", "apply_processors",
    "beam_search", "build_processors", "encode_user_text", "generate_texts", "prompt_ids_for", "suppressed_ids", "sample_steps",
    "sequence_logprob",
    "stream_text", "warn_unseen",
]
