"""The adaptive softmax output layer (Grave et al., 2017) for large vocabularies.

With 20k jieba words the full output layer is five times the arithmetic of a 512-unit LSTM and
its logits (batch × time × vocab floats) are hundreds of MB per step. Token frequencies are
Zipfian, so the adaptive softmax gives the most frequent tokens (the shortlist) a full-width
layer and puts the rest in tail clusters behind one shortlist entry each, with narrower layers;
training computes a tail only for the targets that fall in it. Its log-probabilities still sum to
one over the whole vocabulary, so evaluation, scoring and every decoder read it like a softmax.

Clusters are cut by frequency rank, learnt from the training ids (:meth:`AdaptiveHead.learn_ranks`)
and saved with the weights, so any tokenizer's id order works.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import XuxieError

#: vocabularies at least this large get the adaptive softmax by default (measured: README, issue 16)
ADAPTIVE_MIN_VOCAB = 2000
#: the recurrent models' default dropout with the adaptive softmax (measured on 红楼梦: README, issue 16)
ADAPTIVE_DROPOUT = 0.25
#: each tail cluster's input is this many times narrower than the previous one's
DIV_VALUE = 4
#: the narrowest input a default tail cluster gets
MIN_TAIL_WIDTH = 4


def tail_width(in_features: int, cluster: int) -> int:
    """The input width of tail cluster ``cluster`` (0 = the first after the shortlist)."""
    return in_features // DIV_VALUE ** (cluster + 1)


def auto_cutoffs(vocab_size: int, in_features: int) -> list[int]:
    """The default cluster boundaries for ``vocab_size`` tokens read from ``in_features``-wide
    vectors: none (full softmax) below :data:`ADAPTIVE_MIN_VOCAB`; else a shortlist of the most
    frequent ~10% (at least 1,000), then clusters four times larger each, as many as stay
    :data:`MIN_TAIL_WIDTH` wide (none: the full softmax)."""
    if vocab_size < ADAPTIVE_MIN_VOCAB:
        return []
    cutoffs = [max(1000, vocab_size // 10)]
    while cutoffs[-1] * 4 < vocab_size:
        cutoffs.append(cutoffs[-1] * 4)
    return [c for i, c in enumerate(cutoffs) if tail_width(in_features, i) >= MIN_TAIL_WIDTH]


def check_cutoffs(cutoffs: list[int], vocab_size: int, in_features: int) -> None:
    if any(int(c) != c for c in cutoffs) or list(cutoffs) != sorted(set(cutoffs)) or \
            (cutoffs and (cutoffs[0] < 1 or cutoffs[-1] >= vocab_size)):
        raise XuxieError(f"softmax cutoffs must be increasing whole numbers between 1 and the vocabulary size "
                         f"({vocab_size}), got {list(cutoffs)}; [] is the full softmax")
    if cutoffs and tail_width(in_features, len(cutoffs) - 1) < 1:
        raise XuxieError(f"{len(cutoffs)} softmax tail clusters need an output layer input of at least "
                         f"{DIV_VALUE ** len(cutoffs)} units, got {in_features}; give fewer cutoffs or a larger hidden size")


class AdaptiveHead(nn.Module):
    """Hidden vectors → log-probabilities over the vocabulary (``log_probs``) or the loss of given
    targets (``token_losses``), through :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`."""

    def __init__(self, in_features: int, vocab_size: int, cutoffs: list[int]):
        super().__init__()
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(in_features, vocab_size, list(cutoffs), div_value=DIV_VALUE, head_bias=True)
        # rank[id]: the token's position in frequency order (the order the clusters are cut in)
        self.register_buffer("rank", torch.arange(vocab_size))

    def learn_ranks(self, train_ids: np.ndarray) -> None:
        """Rank the tokens by their frequency in ``train_ids`` (ties by id), before training."""
        counts = np.bincount(np.asarray(train_ids).ravel(), minlength=self.rank.numel())[: self.rank.numel()]
        order = np.lexsort((np.arange(counts.size), -counts))  # most frequent first
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.rank.copy_(torch.from_numpy(rank))

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., in_features) → (..., vocab) log-probabilities, in token id order."""
        flat = self.softmax.log_prob(hidden.reshape(-1, hidden.shape[-1]))
        return flat.index_select(1, self.rank).view(*hidden.shape[:-1], -1)

    def token_losses(self, hidden: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
        """Negative log-likelihood of each target (0 where it is ``ignore_index``), shaped like ``targets``."""
        flat, y = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
        keep = y != ignore_index
        losses = torch.zeros(y.shape, dtype=torch.float32, device=y.device)
        if bool(keep.all()):
            losses = -self.softmax(flat, self.rank[y]).output.float()
        elif bool(keep.any()):
            losses[keep] = -self.softmax(flat[keep], self.rank[y[keep]]).output.float()
        return losses.view(targets.shape)
