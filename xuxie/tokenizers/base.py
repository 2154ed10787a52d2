"""The :class:`Tokenizer` protocol shared by every tokenizer, and its JSON file format."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import XuxieError
from ..fileio import atomic_write_text

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = 0, 1, 2, 3
FORMAT_VERSION = 1


class StreamDecoder:
    """Turns token ids into text pieces one at a time (for streaming).

    Tokenizers whose tokens may end inside a character (byte-level BPE) override this to hold
    back incomplete bytes; for char and word tokens every token is whole text.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def push(self, token_id: int) -> str:
        return self.tokenizer.piece(token_id)

    def flush(self, drop_incomplete: bool = False) -> str:
        """What is held back. ``drop_incomplete``: leave out a character cut off by the end
        (generation stopped by its token budget) instead of showing U+FFFD."""
        return ""


class Tokenizer:
    """Maps text to token ids and back.

    Ids 0–3 are always ``<pad> <unk> <bos> <eos>``. ``decode`` drops ``<pad> <bos> <eos>`` and
    shows ``<unk>`` as U+FFFD. ``decode(encode(x)) == x`` for any text made of known characters.
    """

    kind: ClassVar[str] = "base"
    #: every character is one token, and ``encode_array(a + b)`` is ``encode_array(a)`` then ``encode_array(b)``
    one_token_per_char: ClassVar[bool] = False
    pad_id, unk_id, bos_id, eos_id = PAD, UNK, BOS, EOS

    def __init__(self, tokens: list[str]):
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise XuxieError("tokenizer file is damaged: it does not start with the special tokens")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    # -- to be provided by subclasses -------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of ``text`` this tokenizer cannot represent (sorted, unique)."""
        raise NotImplementedError

    def unknown_in_context(self, text: str) -> dict[str, str]:
        """Each character of ``text`` this tokenizer cannot represent (sorted), mapped to the
        piece of ``text`` a user would recognise it in: for one-character tokens, itself."""
        return {c: c for c in self.unknown_chars(text)}

    def _extra(self) -> dict[str, Any]:
        return {}

    # -- shared ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int32)

    def piece(self, token_id: int) -> str:
        if token_id == UNK:
            return "\ufffd"
        if token_id < len(SPECIALS):
            return ""
        return self.tokens[token_id]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.piece(int(i)) for i in ids)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": FORMAT_VERSION, **self._extra(), "tokens": self.tokens}

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), ensure_ascii=False, indent=0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"
