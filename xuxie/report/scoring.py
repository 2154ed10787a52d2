"""How an analysis scores what a model writes: the model's own mean log-probability per token of
its samples (alongside the text metrics of :mod:`xuxie.analysis`), and the next-token distribution
at several temperatures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import analysis
from ..chars import display_token
from ..decoding import sequence_logprob
from .collection import ModelRun
from .settings import NEXT_TOKEN_CERTAIN, NEXT_TOKEN_TOP, NEXT_TOKEN_WALK


@torch.inference_mode()
def strided_logprob(model, prompt_ids: list[int], new_ids: list[int], suppress: list[int], context: int) -> float:
    """Sum of log p(new tokens) for a model that cannot read more than ``context`` tokens (learned
    positions): each token is scored with up to ``context - 1`` tokens before it, in windows
    advancing by half a context."""
    seq = torch.tensor(prompt_ids + new_ids, dtype=torch.long, device=model.device)
    total, nxt, step = 0.0, len(prompt_ids), max(1, context // 2)
    while nxt < len(seq):
        end = min(len(seq), nxt + step)
        lo = max(0, end - context)
        logits, _ = model(seq[None, lo:end - 1], None)
        logits = logits[0].float()
        if suppress:
            logits[:, suppress] = float("-inf")
        logp = logits.log_softmax(-1)
        rows = torch.arange(nxt - lo - 1, end - lo - 1, device=model.device)
        total += float(logp[rows, seq[nxt:end]].sum())
        nxt = end
    return total


@torch.inference_mode()
def _batched_logprobs(model, prompt_ids: list[int], seqs: list[list[int]], suppress: list[int], pad: int,
                      batch: int = 8) -> list[float]:
    """Sum of log p(each of ``seqs`` after ``prompt_ids``) for a causal language model: the
    sequences are right-padded and scored together, ``batch`` at a time (one forward each)."""
    sums: list[float] = []
    P = len(prompt_ids)
    for lo in range(0, len(seqs), batch):
        chunk = seqs[lo:lo + batch]
        L = max(len(q) for q in chunk)
        x = torch.full((len(chunk), P + L), pad, dtype=torch.long)
        x[:, :P] = torch.tensor(prompt_ids, dtype=torch.long)
        for i, q in enumerate(chunk):
            x[i, P:P + len(q)] = torch.tensor(q, dtype=torch.long)
        x = x.to(model.device)
        logits, _ = model(x[:, :-1], None)
        logits = logits[:, P - 1:].float()
        if suppress:
            logits[..., suppress] = float("-inf")
        logp = logits.log_softmax(-1).gather(2, x[:, P:, None])[..., 0]
        for i, q in enumerate(chunk):
            sums.append(float(logp[i, :len(q)].sum()))
    return sums


def mean_logprob(m: ModelRun, texts: Sequence[str], length: int) -> tuple[float, int]:
    """(mean log-probability per token, tokens scored) of ``texts`` after the model's prompt
    ids, re-encoded with the model's tokenizer. A lines/seq2seq sample that stopped before
    ``length`` tokens also scores its ``<eos>``."""
    tok, model = m.tg.tokenizer, m.tg.model
    ends = m.tg.decoding.eos_id is not None
    context = getattr(model.config, "context", None)
    learned = getattr(model.config, "positions", None) == "learned"
    seqs = []
    for t in texts:
        ids = tok.encode(t) if t else []
        if ends and len(ids) < length:
            ids = ids + [tok.eos_id]
        if ids:
            seqs.append(ids)
    if not seqs:
        return float("nan"), 0
    count = sum(len(q) for q in seqs)
    if m.tg.is_seq2seq:
        total = sum(sequence_logprob(model, m.prompt_ids, q, m.suppress) for q in seqs)
    elif learned and context and len(m.prompt_ids) + max(len(q) for q in seqs) > context:
        total = sum(strided_logprob(model, m.prompt_ids, q, m.suppress, int(context)) for q in seqs)
    else:
        total = sum(_batched_logprobs(model, m.prompt_ids, seqs, m.suppress, tok.pad_id))
    return total / count, count


def score(m: ModelRun, texts: list[str], index: analysis.CorpusIndex | None, length: int) -> dict[str, float]:
    """The text metrics of ``texts`` (novelty against ``index``, when there is one) and their mean log-probability."""
    metrics = analysis.summarize(texts, index)
    metrics["mean_logprob"], metrics["logprob_tokens"] = mean_logprob(m, texts, length)
    return metrics


@torch.inference_mode()
def _next_token_logits(m: ModelRun) -> tuple[torch.Tensor, list[int]]:
    """Logits of the next token at the first *uncertain* step: after the prompt and as many greedy
    tokens (at most :data:`NEXT_TOKEN_WALK`) as it takes to reach a step whose most likely token
    has less than :data:`NEXT_TOKEN_CERTAIN` probability (right after a prompt such as "ROMEO:"
    the line break is nearly certain, and temperature has nothing to reshape). Returns the logits
    and the greedy tokens walked."""
    model = m.tg.model
    eos = m.tg.tokenizer.eos_id

    def masked(row: torch.Tensor) -> torch.Tensor:
        row = row.float().cpu().clone()
        if m.suppress:
            row[m.suppress] = float("-inf")
        return row

    logits, state = model.prefill(torch.tensor([m.prompt_ids], dtype=torch.long, device=model.device))
    logits = masked(logits[0, -1])
    walked: list[int] = []
    while len(walked) < NEXT_TOKEN_WALK:
        p = logits.softmax(-1)
        top = int(p.argmax())
        if float(p[top]) < NEXT_TOKEN_CERTAIN or top == eos:
            break
        walked.append(top)
        logits, state = model.step(torch.tensor([top], dtype=torch.long, device=model.device), state)
        logits = masked(logits[0])
    return logits, walked


def _probs_at(logits: torch.Tensor, t: float) -> torch.Tensor:
    if t == 0:
        p = torch.zeros_like(logits)
        p[int(logits.argmax())] = 1.0
        return p
    return (logits / t).softmax(-1)


def _token_label(m: ModelRun, token_id: int) -> str:
    tok = m.tg.tokenizer
    if token_id == tok.eos_id:
        return "<eos>"
    return display_token(tok.piece(token_id))


def next_token_distribution(m: ModelRun, temperatures: Sequence[float], top: int = NEXT_TOKEN_TOP) -> dict[str, Any]:
    """The ``top`` most likely next tokens and their probability at each temperature (with the
    share of probability they hold and the entropy of the whole distribution, in nats), at the
    first uncertain step after the prompt (see :func:`_next_token_logits`)."""
    logits, walked = _next_token_logits(m)
    finite = torch.isfinite(logits)
    k = min(top, int(finite.sum()))
    order = torch.argsort(logits, descending=True)[:k].tolist()
    tok = m.tg.tokenizer
    out: dict[str, Any] = {"prompt": "".join("" if i == tok.bos_id else tok.piece(i) for i in m.prompt_ids),
                           "greedy_prefix": tok.decode(walked), "greedy_steps": len(walked),
                           "token_ids": order, "tokens": [_token_label(m, i) for i in order],
                           "temperatures": list(temperatures), "probabilities": {}, "top_mass": {}, "entropy": {}}
    for t in temperatures:
        p = _probs_at(logits, t)
        nz = p[p > 0]
        out["probabilities"][f"{t:g}"] = [float(p[i]) for i in order]
        out["top_mass"][f"{t:g}"] = float(p[order].sum())
        out["entropy"][f"{t:g}"] = float(-(nz * nz.log()).sum())
    return out
