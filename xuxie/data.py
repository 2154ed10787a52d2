"""Token ids as one flat array, and the language-model batches drawn from it epoch by epoch.

No one-hot tensors and no per-sample Python objects: a batch is one gather from the id array.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .corpus import Corpus
from .corpus.stream import StreamedCorpus
from .errors import XuxieError
from .tokenizers import BOS, EOS, Tokenizer


@dataclass
class Labelling:
    """How context labels go into a ``lines`` corpus's ids: ``ids`` maps a label to its token
    (``<bos> <label> doc <eos>``), and ``dropout`` of the labelled documents are left unlabelled so
    unlabelled generation still has something to learn from, drawn in document order from ``seed``."""

    ids: dict[str, int]
    dropout: float = 0.0
    seed: int = 0

    def heads(self) -> Callable[[list[str | None]], np.ndarray]:
        """A function from one batch of labels after another to each document's label token (-1: none)."""
        rng = np.random.default_rng(self.seed)

        def batch(labels: list[str | None]) -> np.ndarray:
            dropped = rng.random(len(labels)) < self.dropout
            return np.array([-1 if lab is None or drop else self.ids[lab] for lab, drop in zip(labels, dropped)], dtype=np.int32)
        return batch


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer, labelling: Labelling | None = None) -> np.ndarray:
    """All token ids of ``corpus`` as one int32 array: ``text`` mode, the text's ids; ``lines``
    mode, ``<bos> doc <eos>`` for every document (``<bos> <label> doc <eos>`` with ``labelling``)."""
    if corpus.mode == "lines":
        heads = labelling.heads()(corpus.labels) if labelling and corpus.labels else None
        return document_ids(tokenizer, corpus.documents, heads)
    return tokenizer.encode_array(corpus.text)


def document_ids(tokenizer: Tokenizer, docs: list[str], labels: np.ndarray | None = None) -> np.ndarray:
    """``<bos> doc <eos>`` for every document, as one int32 array; ``<bos> <label> doc <eos>`` where
    ``labels`` (a label token per document, -1 for none) gives one."""
    if not docs:
        return np.zeros(0, dtype=np.int32)
    if tokenizer.one_token_per_char:  # one call for all of them: a file of headlines has millions
        body = tokenizer.encode_array("".join(docs))
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    else:
        pieces = [tokenizer.encode_array(d) for d in docs]
        body = np.concatenate(pieces).astype(np.int32, copy=False)
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    labelled = np.zeros(len(docs), dtype=bool) if labels is None else labels >= 0
    heads = 1 + labelled  # <bos>, and the label
    sizes = heads + lengths + 1
    starts = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), dtype=np.int32)
    is_body = np.ones(len(out), dtype=bool)
    ends = starts + heads + lengths
    is_body[starts] = is_body[ends] = False
    is_body[starts[labelled] + 1] = False
    out[starts], out[ends], out[is_body] = BOS, EOS, body
    if labels is not None:
        out[starts[labelled] + 1] = labels[labelled]
    return out


def streamed_ids(corpus: StreamedCorpus, tokenizer: Tokenizer, val_fraction: float, labelling: Labelling | None = None,
                 on_bytes=None) -> Iterator[tuple[bool, np.ndarray, int]]:
    """The token ids of a streamed corpus, piece by piece, as ``(is_validation, ids, characters)``:
    what :func:`encode_corpus` makes of each side of the split, never the whole corpus at once.
    ``characters`` counts what bits per character divide by (a line break ends each document).
    Labels are dropped out of the training part only, as the in-memory path does."""
    train_heads = labelling.heads() if labelling else None
    val_heads = replace(labelling, dropout=0.0).heads() if labelling else None
    for is_val, piece in corpus.parts(val_fraction, on_bytes):
        if isinstance(piece, str):
            yield is_val, tokenizer.encode_array(piece), len(piece)
            continue
        heads = (val_heads if is_val else train_heads) if piece.labels is not None else None
        yield is_val, document_ids(tokenizer, piece.texts, heads(piece.labels) if heads else None), \
            sum(map(len, piece.texts)) + len(piece)


def check_window(n_tokens: int, seq_len: int) -> None:
    """A clear error when the training text cannot fill one window of ``seq_len + 1`` tokens."""
    if n_tokens < seq_len + 1:
        raise XuxieError(
            f"the training text has {n_tokens} tokens, fewer than one training window of {seq_len + 1}; "
            f"give a longer corpus or a smaller --seq-len (at most {max(n_tokens - 1, 1)})"
        )


class IdsFile:
    """Token ids in a file, read a window at a time: training and evaluation on a corpus of any
    size cost the windows they read, nothing more. Not a memory map: the kernel maps large pages
    of a cached file around each random window, and a 20-step run of a 500 MB corpus had 370 MB of
    its ids resident (measured); a read of each window leaves them in the page cache, where they
    belong. ``np.asarray`` reads it whole (for tests and small files)."""

    def __init__(self, path: str | Path, dtype: np.dtype, n: int):
        self.path, self.dtype, self._n = Path(path), np.dtype(dtype), n
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - open for the object's life

    def __len__(self) -> int:
        return self._n

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """``length`` ids from each of ``starts``, one row each."""
        size = self.dtype.itemsize
        out = np.empty((len(starts), length), dtype=self.dtype)
        for row, start in enumerate(starts.tolist()):
            out[row] = np.frombuffer(_read_at(self._file, start * size, length * size), dtype=self.dtype)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        ids = np.fromfile(self.path, dtype=self.dtype, count=self._n)
        return ids if dtype is None else ids.astype(dtype)

    def __del__(self) -> None:
        if (f := getattr(self, "_file", None)) is not None:  # None: the file could not be opened
            f.close()


def _read_at(f, offset: int, size: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(f.fileno(), size, offset)
    f.seek(offset)  # Windows: no pread; one reader per file
    return f.read(size)


def read_windows(ids: np.ndarray | IdsFile, starts: np.ndarray, length: int) -> torch.Tensor:
    """The ``length`` ids from each of ``starts`` as an int64 tensor (batch, length)."""
    rows = ids.windows(starts, length) if isinstance(ids, IdsFile) else ids[starts[:, None] + np.arange(length)]
    return torch.from_numpy(rows.astype(np.int64))


def compact_ids(ids: np.ndarray | torch.Tensor | IdsFile) -> np.ndarray | IdsFile:
    """``ids`` in the smallest unsigned type that holds them (uint16 up to 65,536 tokens, else
    uint32): a quarter or half of int64's memory for the whole training text."""
    if isinstance(ids, IdsFile):
        return ids  # compact already, and never read whole
    ids = np.asarray(ids)
    top = int(ids.max()) if len(ids) else 0
    return ids.astype(np.uint16 if top < 2 ** 16 else np.uint32, copy=False)


class LMBatches:
    """Windows of ``seq_len + 1`` tokens from one id array: inputs and next-token targets, epoch
    by epoch. Each epoch cuts the text into consecutive windows at a random offset and visits them
    in a random order, so every token is trained on once an epoch; windows drawn independently
    left about a third of the text out of each epoch's worth and showed other parts twice (README,
    *Speedrun*: the epoch order learnt more in the same minutes).

    The array stays compact (:func:`compact_ids`); only the windows of a batch become int64. The
    order is kept as the seed it came from and how far into it the run is (:meth:`state_dict`), so
    a resumed run draws the same windows."""

    def __init__(self, ids: np.ndarray | torch.Tensor, seq_len: int, batch_size: int, device: torch.device | str = "cpu"):
        self.ids = compact_ids(ids)
        check_window(len(self.ids), seq_len)
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._epoch_seed: int | None = None  # seeds the current epoch's offset and order
        self._offset = 0  # where the current epoch's first window starts
        # the current epoch's windows, numbered 0, 1, … from the offset, in the order visited
        self._order = np.empty(0, dtype=np.int32)
        self._taken = 0  # how many of them the run has trained on

    @property
    def tokens_per_batch(self) -> int:
        return self.seq_len * self.batch_size

    def steps_per_epoch(self) -> int:
        return max(1, (len(self.ids) - 1) // self.tokens_per_batch)

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch; ``generator`` seeds each new epoch."""
        window = read_windows(self.ids, self._next_starts(generator), self.seq_len + 1)
        if self.device.type != "cpu":
            window = window.to(self.device, non_blocking=True)
        return window[:, :-1], window[:, 1:]

    def _next_starts(self, generator: torch.Generator) -> np.ndarray:
        parts, wanted = [], self.batch_size
        while wanted:  # a text of fewer windows than a batch spans epochs
            if self._taken >= len(self._order):  # also a state from a text since grown shorter
                self._start_epoch(int(torch.randint(2 ** 62, (1,), generator=generator)))
            part = self._order[self._taken:self._taken + wanted]
            self._taken += len(part)
            wanted -= len(part)
            parts.append(self._offset + self.seq_len * part.astype(np.int64))
        return np.concatenate(parts)

    def _start_epoch(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        n_starts = len(self.ids) - self.seq_len  # a window may start at 0 … n_starts - 1
        self._offset = int(torch.randint(min(self.seq_len, n_starts), (1,), generator=generator))
        n_windows = len(range(self._offset, n_starts, self.seq_len))
        order = torch.randperm(n_windows, generator=generator).numpy()
        # int32 halves the order's memory for a corpus of billions of tokens (a window index, not a position)
        self._order = order.astype(np.int32) if n_windows < 2 ** 31 else order
        self._epoch_seed, self._taken = seed, 0

    def state_dict(self) -> dict[str, int | None]:
        return {"epoch_seed": self._epoch_seed, "taken": self._taken}

    def load_state_dict(self, state: dict[str, int | None]) -> None:
        """Go on where :meth:`state_dict` was taken; ``{}`` (a checkpoint from before the epoch
        order) starts a new epoch."""
        if state.get("epoch_seed") is None:
            self._order, self._taken = np.empty(0, dtype=np.int32), 0
            return
        self._start_epoch(int(state["epoch_seed"]))
        self._taken = int(state["taken"])


def eval_streams(ids: np.ndarray, seq_len: int, n_streams: int = 16,
                 max_tokens: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive (inputs, targets) chunks of ``n_streams`` parallel slices of ``ids``.

    Every token after the first of each slice is predicted exactly once; an RNN may carry its
    state from one chunk to the next. With ``max_tokens`` shorter than ``ids``, the slices are a
    fixed sample spread evenly over all of ``ids`` (the same every time), not its beginning.
    Only each chunk's tokens are read: ``ids`` may be an :class:`IdsFile` larger than memory.
    """
    budget = len(ids) - 1 if max_tokens is None else min(max_tokens, len(ids) - 1)
    n_streams = max(1, min(n_streams, budget // max(seq_len, 1)))
    per = budget // n_streams
    if per < 1:
        return
    starts = np.linspace(0, len(ids) - per - 1, n_streams).round().astype(np.int64) if budget < len(ids) - 1 \
        else np.arange(n_streams, dtype=np.int64) * per
    for s in range(0, per, seq_len):
        e = min(s + seq_len, per)
        chunk = read_windows(ids, starts + s, e + 1 - s)
        yield chunk[:, :-1], chunk[:, 1:]


# --------------------------------------------------------------------------- source/target pairs
class PairData:
    """Encoded source→target pairs, padded into two matrices (no per-batch Python objects).

    Sources keep their *last* ``max_source_len`` tokens (the end of a paragraph is what the next
    one follows from). Targets are ``<bos> target <eos>``; a target longer than
    ``max_target_len - 1`` tokens keeps its first ``max_target_len`` tokens and has no ``<eos>``
    (the model learns it is cut, not ended).
    """

    def __init__(self, sources: list[np.ndarray], targets: list[np.ndarray], max_source_len: int, max_target_len: int,
                 target_chars: int | None = None):
        if not sources:
            raise XuxieError("there are no source→target pairs to train on")
        src = [s[-max_source_len:] for s in sources]
        tgt = [np.concatenate([[BOS], t, [EOS]]) if len(t) < max_target_len else np.concatenate([[BOS], t[:max_target_len]])
               for t in targets]
        self.src_len = np.array([len(s) for s in src], dtype=np.int64)
        self.tgt_len = np.array([len(t) for t in tgt], dtype=np.int64)  # including <bos>
        if (self.src_len == 0).any():
            raise XuxieError("a source encodes to no tokens; every pair needs a non-empty source")
        self.src = np.zeros((len(src), int(self.src_len.max())), dtype=np.int64)  # PAD = 0
        self.tgt = np.zeros((len(tgt), int(self.tgt_len.max())), dtype=np.int64)
        for i, (s, t) in enumerate(zip(src, tgt)):
            self.src[i, :len(s)] = s
            self.tgt[i, :len(t)] = t
        self.truncated_sources = int(sum(len(a) > max_source_len for a in sources))
        self.truncated_targets = int(sum(len(a) >= max_target_len for a in targets))
        self.target_chars = target_chars

    def __len__(self) -> int:
        return len(self.src_len)

    @property
    def target_tokens(self) -> int:
        """Predicted tokens (everything after ``<bos>``)."""
        return int((self.tgt_len - 1).sum())

    def batch(self, index: np.ndarray, device: torch.device) -> PairBatch:
        s_max, t_max = int(self.src_len[index].max()), int(self.tgt_len[index].max())
        src = torch.from_numpy(self.src[index, :s_max])
        tgt = torch.from_numpy(self.tgt[index, :t_max])
        src_len = torch.from_numpy(self.src_len[index])
        if device.type != "cpu":
            src, tgt = src.to(device, non_blocking=True), tgt.to(device, non_blocking=True)
        return PairBatch(src, src_len, tgt[:, :-1], tgt[:, 1:])

    def ordered_batches(self, batch_size: int, device: torch.device, max_tokens: int | None = None) -> Iterator[PairBatch]:
        """Every pair once, in batches of similar length (evaluation)."""
        idx = np.arange(len(self))
        if max_tokens is not None:  # the first pairs holding about max_tokens target tokens
            idx = idx[: max(1, int(np.searchsorted(np.cumsum(self.tgt_len - 1), max_tokens, side="right")))]
        order = idx[np.lexsort((self.src_len[idx], self.tgt_len[idx]))]
        for i in range(0, len(order), batch_size):
            yield self.batch(order[i:i + batch_size], device)


class PairBatch(tuple):
    """(src, src_len, tgt_in, tgt_out): padded with PAD = 0, which the loss ignores."""

    __slots__ = ()

    def __new__(cls, src, src_len, tgt_in, tgt_out):
        return tuple.__new__(cls, (src, src_len, tgt_in, tgt_out))

    src = property(lambda self: self[0])
    src_len = property(lambda self: self[1])
    tgt_in = property(lambda self: self[2])
    tgt_out = property(lambda self: self[3])


class PairBatches:
    """Random batches of pairs of similar length: a random run of ``batch_size`` neighbours in
    the pairs sorted by length (with noise), so little of a batch is padding."""

    def __init__(self, data: PairData, batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
        self.data = data
        self.batch_size = min(batch_size, len(data))
        self.device = torch.device(device)
        noise = np.random.default_rng(seed).random(len(data))
        self.order = np.lexsort((noise, data.src_len // 8, data.tgt_len // 4))

    @property
    def tokens_per_batch(self) -> int:
        return max(1, round(self.data.target_tokens / len(self.data) * self.batch_size))

    def steps_per_epoch(self) -> int:
        return max(1, len(self.data) // self.batch_size)

    def sample(self, generator: torch.Generator) -> PairBatch:
        start = int(torch.randint(0, len(self.data) - self.batch_size + 1, (1,), generator=generator))
        return self.data.batch(self.order[start:start + self.batch_size], self.device)

    def state_dict(self) -> dict[str, int | None]:
        return {}  # each batch is drawn from ``generator`` alone

    def load_state_dict(self, state: dict[str, int | None]) -> None:
        pass


def encode_pairs(corpus: Corpus, tokenizer: Tokenizer, max_source_len: int, max_target_len: int) -> PairData:
    """A ``pairs`` corpus as :class:`PairData`."""
    if corpus.mode != "pairs" or corpus.targets is None:
        raise XuxieError("a seq2seq model trains on source→target pairs: use --mode pairs (a .tsv/.jsonl file) or --mode continuation (a "
                         "plain text)")
    sources = [tokenizer.encode_array(s).astype(np.int64) for s in corpus.documents]
    targets = [tokenizer.encode_array(t).astype(np.int64) for t in corpus.targets]
    # Characters of what is scored (a cut target only up to the cut; <eos> counts as one), for
    # bits per character.
    chars = sum(len(t) + 1 if len(ids) < max_target_len else len(tokenizer.decode(ids[:max_target_len].tolist()))
                for t, ids in zip(corpus.targets, targets))
    return PairData(sources, targets, max_source_len, max_target_len, target_chars=chars)
