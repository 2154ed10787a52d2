"""Tokenizers: ``char``, ``word`` and ``bpe`` behind one :class:`Tokenizer` protocol, saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import XuxieError
from .base import BOS, EOS, PAD, SPECIALS, UNK, StreamDecoder, Tokenizer
from .bpe import BPETokenizer
from .char import CharTokenizer
from .word import WordTokenizer, split_words

TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def train_tokenizer(kind: str, texts: Iterable[str], **options: Any) -> Tokenizer:
    """Build a tokenizer of ``kind`` from ``texts`` (options: ``min_freq``, ``max_vocab``; ``vocab_size`` for ``bpe``)."""
    if kind not in TOKENIZERS:
        raise XuxieError(f"unknown tokenizer '{kind}'; choose one of: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind].train(texts, **options)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in TOKENIZERS or not isinstance(data.get("tokens"), list):
        raise XuxieError(f"tokenizer file names an unknown kind '{kind}' or has no token list; the model directory is damaged")
    extra = {k: v for k, v in data.items() if k not in ("kind", "version", "tokens")}
    return TOKENIZERS[kind](data["tokens"], **extra)


def load_tokenizer(path: str | Path) -> Tokenizer:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise XuxieError(f"cannot read tokenizer {path} ({e}); the model directory is damaged — retrain or restore it") from None
    return tokenizer_from_dict(data)


__all__ = [
    "BOS", "BPETokenizer", "EOS", "PAD", "SPECIALS", "UNK", "CharTokenizer", "StreamDecoder", "Tokenizer",
    "TOKENIZERS", "WordTokenizer", "load_tokenizer", "split_words", "tokenizer_from_dict", "train_tokenizer",
]
