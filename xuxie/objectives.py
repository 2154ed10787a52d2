"""What a model is trained to predict: the training batches, the loss, and the evaluation.

A language model predicts the next token of one id array; an encoder–decoder predicts a target
from its source (pairs). The :class:`~xuxie.training.Trainer` drives either through the same three
calls (``batches.sample``, ``loss``, ``evaluate``), and :class:`~xuxie.api.TextGenerator`'s
``evaluate``/``evaluate_pairs`` score text with the same :func:`lm_loss`/:func:`pair_loss`, so
there is one evaluation loop (:func:`_summed_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data import LMBatches, PairBatch, PairBatches, PairData, eval_streams
from .models import LanguageModel
from .tokenizers import PAD

#: an RNN carries its state from one evaluation window to the next, so its windows can be long
#: (fewer, bigger calls); other models see only their window, which is their training length
CARRIED_EVAL_WINDOW = 256


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 (or ``dtype``) autocast on ``device``; ``None``: off (fp32)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().reshape(-1, logits.shape[-1])


@contextmanager
def _eval_mode(model: LanguageModel) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def _summed_loss(model: LanguageModel, losses_targets: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 ignore_index: int = -100) -> dict[str, float]:
    """Per-token cross-entropies (with their targets) summed over every target but ``ignore_index``
    (padding), with the model in eval mode: ``loss`` per token, ``ppl``, ``tokens``, the sum itself
    (``loss_sum``) and ``loss_stderr``, the standard error of ``loss`` from the spread of the loss
    over the windows (rows of each chunk) it was measured on."""
    sums, counts = [], []
    with _eval_mode(model):
        for per_token, y in losses_targets:
            sums.append(per_token.sum(-1).double())
            counts.append((y != ignore_index).sum(-1).double())
    window_sum = torch.cat(sums) if sums else torch.zeros(0, dtype=torch.float64)
    window_count = torch.cat(counts) if counts else torch.zeros(0, dtype=torch.float64)
    total, count = float(window_sum.sum()), int(window_count.sum())
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50)), "tokens": count, "loss_sum": total,
            "loss_stderr": _stderr(window_sum, window_count, loss)}


def _stderr(window_sum: torch.Tensor, window_count: torch.Tensor, mean: float) -> float | None:
    """Standard error of a token-weighted mean loss over windows (the ratio estimator's); None
    from fewer than two windows."""
    used = window_count > 0
    n = int(used.sum())
    if n < 2:
        return None
    s, c = window_sum[used], window_count[used]
    residual = s - mean * c
    return float(torch.sqrt((residual ** 2).sum() / (n - 1) / n) / c.mean())


def eval_window(model: LanguageModel, seq_len: int) -> int:
    """The window a language model is evaluated in: its training length, longer for an RNN."""
    return CARRIED_EVAL_WINDOW if model.carries_state else seq_len


def lm_loss(model: LanguageModel, ids: np.ndarray, seq_len: int, streams: int = 16, max_tokens: int | None = None,
            amp_dtype: torch.dtype | None = None, meter: Callable[[int], None] | None = None) -> dict[str, float]:
    """Loss per token of a language model reading ``ids`` (a sample of ``max_tokens``, when given) in
    consecutive windows of ``seq_len`` over ``streams`` parallel slices; an RNN carries its state
    from window to window. ``meter`` is told how many tokens each window scored."""
    return _summed_loss(model, _lm_losses(model, ids, seq_len, streams, max_tokens, amp_dtype, meter))


def _lm_losses(model, ids, seq_len, streams, max_tokens, amp_dtype, meter) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    carry, state, device = model.carries_state, None, model.device
    for x, y in eval_streams(ids, seq_len, streams, max_tokens):
        if meter:
            meter(y.numel())
        x, y = x.to(device), y.to(device)
        with autocast(device, amp_dtype):
            losses, new_state = model.token_losses(x, y, state if carry else None)
        state = model.detach_state(new_state) if carry else None
        yield losses, y


def pair_loss(model: LanguageModel, data: PairData, max_tokens: int | None = None, amp_dtype: torch.dtype | None = None,
              batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced loss per target token (``<eos>`` included) of an encoder–decoder over
    ``data`` (the first pairs holding about ``max_tokens`` target tokens, when given)."""
    return _summed_loss(model, _pair_losses(model, data, max_tokens, amp_dtype, batch_size), ignore_index=PAD)


def _pair_losses(model, data, max_tokens, amp_dtype, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    device = model.device
    for batch in data.ordered_batches(batch_size, device, max_tokens):
        with autocast(device, amp_dtype):
            logits = model.forward_pairs(batch.src, batch.src_len, batch.tgt_in)
        y = batch.tgt_out
        yield F.cross_entropy(_flat(logits), y.reshape(-1), ignore_index=PAD, reduction="none").view(y.shape), y


class LanguageModelObjective:
    """Next-token prediction on one id array: windows in a new order each epoch to train on, the
    validation ids read in consecutive windows to evaluate."""

    answers_input = False

    def __init__(self, train_ids: np.ndarray, val_ids: np.ndarray | None, seq_len: int, batch_size: int,
                 device: torch.device, seed: int = 0):
        self.batches = LMBatches(train_ids, seq_len, batch_size, device)
        self.val_data = val_ids if val_ids is not None and len(val_ids) > 1 else None
        self.seq_len = seq_len
        self.device = device

    @property
    def val_tokens(self) -> int:
        return len(self.val_data) - 1 if self.val_data is not None else 0

    def loss(self, model: LanguageModel, batch: tuple[torch.Tensor, torch.Tensor], amp_dtype: torch.dtype | None) -> torch.Tensor:
        x, y = batch
        with autocast(self.device, amp_dtype):
            losses, _ = model.token_losses(x, y, None, ignore_index=PAD)
        return losses.sum() / (y != PAD).sum().clamp(min=1)

    def evaluate(self, model: LanguageModel, max_tokens: int | None, amp_dtype: torch.dtype | None) -> dict[str, float]:
        return lm_loss(model, self.val_data, eval_window(model, self.seq_len), 16, max_tokens, amp_dtype)


class PairObjective:
    """Source→target pairs for an encoder–decoder: random batches of pairs of similar length to
    train on, the validation pairs teacher-forced to evaluate."""

    answers_input = True

    def __init__(self, train: PairData, val: PairData | None, seq_len: int, batch_size: int, device: torch.device,
                 seed: int = 0):
        self.batches = PairBatches(train, batch_size, device, seed)
        self.val_data = val if val is not None and len(val) > 0 else None
        self.device = device

    @property
    def val_tokens(self) -> int:
        return self.val_data.target_tokens if self.val_data is not None else 0

    def loss(self, model: LanguageModel, batch: PairBatch, amp_dtype: torch.dtype | None) -> torch.Tensor:
        with autocast(self.device, amp_dtype):
            logits = model.forward_pairs(batch.src, batch.src_len, batch.tgt_in)
        return F.cross_entropy(_flat(logits), batch.tgt_out.reshape(-1), ignore_index=PAD)

    def evaluate(self, model: LanguageModel, max_tokens: int | None, amp_dtype: torch.dtype | None) -> dict[str, float]:
        return pair_loss(model, self.val_data, max_tokens, amp_dtype)


Objective = LanguageModelObjective | PairObjective


def objective_for(train_data: Any, val_data: Any, seq_len: int, batch_size: int, device: torch.device, seed: int = 0) -> Objective:
    """The objective encoded training data asks for: pairs (:class:`~xuxie.data.PairData`) or one id array."""
    cls = PairObjective if isinstance(train_data, PairData) else LanguageModelObjective
    return cls(train_data, val_data, seq_len, batch_size, device, seed)


__all__ = ["LanguageModelObjective", "Objective", "PairObjective", "autocast", "eval_window", "lm_loss", "objective_for", "pair_loss"]
