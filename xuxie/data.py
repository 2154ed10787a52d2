"""Token ids as one flat array, and random-window language-model batches drawn from it.

No one-hot tensors and no per-sample Python objects: a batch is one gather from the id array.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .corpus import Corpus
from .errors import XuxieError
from .tokenizers import BOS, EOS, Tokenizer


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer, label_ids: dict[str, int] | None = None,
                  label_dropout: float = 0.0, seed: int = 0) -> np.ndarray:
    """All token ids of ``corpus`` as one int32 array.

    ``text`` mode: the text's ids. ``lines`` mode: ``<bos> doc <eos>`` for every document, and
    ``<bos> <label> doc <eos>`` for a labelled one (``label_ids`` maps a label to its token id);
    ``label_dropout`` of the labelled documents are left unlabelled so unlabelled generation
    still has something to learn from.
    """
    if corpus.mode == "lines":
        parts = []
        labels = corpus.labels if (corpus.labels and label_ids) else [None] * len(corpus.documents)
        drop = np.random.default_rng(seed).random(len(corpus.documents)) < label_dropout
        for doc, label, dropped in zip(corpus.documents, labels, drop):
            ids = tokenizer.encode_array(doc)
            head = [BOS] if label is None or dropped else [BOS, label_ids[label]]
            parts.append(np.concatenate([head, ids, [EOS]]).astype(np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return tokenizer.encode_array(corpus.text)


def check_window(n_tokens: int, seq_len: int) -> None:
    """A clear error when the training text cannot fill one window of ``seq_len + 1`` tokens."""
    if n_tokens < seq_len + 1:
        raise XuxieError(
            f"the training text has {n_tokens} tokens, fewer than one training window of {seq_len + 1}; "
            f"give a longer corpus or a smaller --seq-len (at most {max(n_tokens - 1, 1)})"
        )


class LMBatches:
    """Random windows of ``seq_len + 1`` tokens from one id array: inputs and next-token targets."""

    def __init__(self, ids: np.ndarray | torch.Tensor, seq_len: int, batch_size: int, device: torch.device | str = "cpu"):
        self.ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        check_window(len(self.ids), seq_len)
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._offsets = torch.arange(seq_len + 1)

    @property
    def tokens_per_batch(self) -> int:
        return self.seq_len * self.batch_size

    def steps_per_epoch(self) -> int:
        return max(1, (len(self.ids) - 1) // self.tokens_per_batch)

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(self.ids) - self.seq_len, (self.batch_size,), generator=generator)
        window = self.ids[starts[:, None] + self._offsets]
        if self.device.type != "cpu":
            window = window.to(self.device, non_blocking=True)
        return window[:, :-1], window[:, 1:]


def eval_streams(ids: np.ndarray, seq_len: int, n_streams: int = 16, max_tokens: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive (inputs, targets) chunks of ``n_streams`` parallel slices of ``ids``.

    Every token after the first of each slice is predicted exactly once; an RNN may carry its
    state from one chunk to the next.
    """
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if max_tokens is not None and len(ids_t) > max_tokens + 1:
        ids_t = ids_t[: max_tokens + 1]
    n_streams = max(1, min(n_streams, (len(ids_t) - 1) // max(seq_len, 1)))
    per = (len(ids_t) - 1) // n_streams
    if per < 1:
        return
    grid = torch.stack([ids_t[i * per: i * per + per + 1] for i in range(n_streams)])
    for s in range(0, per, seq_len):
        e = min(s + seq_len, per)
        yield grid[:, s:e], grid[:, s + 1:e + 1]
