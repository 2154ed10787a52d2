"""Character tokenizer: one token per Unicode character (code point)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .base import SPECIALS, UNK, Tokenizer

_CODEPOINTS = 0x110000


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class CharTokenizer(Tokenizer):
    """Characters seen at least ``min_freq`` times get an id; the rest map to ``<unk>``."""

    kind = "char"
    one_token_per_char = True

    def __init__(self, tokens: list[str], min_freq: int = 1):
        super().__init__(tokens)
        self.min_freq = min_freq
        self._id_of_codepoint: np.ndarray | None = None  # made on first use: 4.4 MB

    @property
    def id_of_codepoint(self) -> np.ndarray:
        """Every code point's id (``<unk>`` for unknown ones): encoding is one gather, 1 GB/s."""
        if self._id_of_codepoint is None:
            table = np.full(_CODEPOINTS, UNK, dtype=np.int32)
            cps = np.array([ord(c) for c in self.tokens[len(SPECIALS):]], dtype=np.int64)
            table[cps] = np.arange(len(SPECIALS), len(self.tokens), dtype=np.int32)
            self._id_of_codepoint = table
        return self._id_of_codepoint

    @classmethod
    def train(cls, texts: Iterable[str], min_freq: int = 1, **_: Any) -> CharTokenizer:
        counts = np.zeros(_CODEPOINTS, dtype=np.int64)
        for t in texts:  # a count per code point: 20× faster than a Counter, and memory stays flat
            counts += np.bincount(_codepoints(t), minlength=_CODEPOINTS)
        seen = np.flatnonzero(counts >= max(min_freq, 1))
        # Most frequent first; ties broken by code point so training is deterministic.
        order = np.lexsort((seen, -counts[seen]))
        return cls(list(SPECIALS) + [chr(int(c)) for c in seen[order]], min_freq=min_freq)

    def encode_array(self, text: str) -> np.ndarray:
        return self.id_of_codepoint[_codepoints(text)]

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def unknown_chars(self, text: str) -> list[str]:
        return sorted({c for c in set(text) if c not in self.index})

    def _extra(self) -> dict[str, Any]:
        return {"min_freq": self.min_freq}
