"""Word tokenizer: jieba for Chinese, a Unicode-aware regex for other scripts.

Text is cut into pieces that cover it exactly — Chinese runs are segmented by jieba, other runs
into words (letters with inner apostrophes), numbers, whitespace runs and single punctuation
marks — so ``decode(encode(x)) == x``. The ``max_vocab`` most frequent pieces become tokens;
every character seen at least ``min_freq`` times is a token too, so a word outside the
vocabulary is spelled out character by character instead of being lost to ``<unk>``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..chars import HAN_BLOCKS, char_class
from .base import SPECIALS, UNK, Tokenizer

_HAN = char_class(HAN_BLOCKS[:4])  # not Extensions G-H: saved word vocabularies were cut without them
_HAN_RUN = re.compile(f"([{_HAN}]+)")
_PIECE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+|\s+|.", re.DOTALL)

_jieba = None


def _get_jieba():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def split_words(text: str) -> list[str]:
    """Cut ``text`` into word pieces whose concatenation is ``text``."""
    pieces: list[str] = []
    for i, part in enumerate(_HAN_RUN.split(text)):
        if not part:
            continue
        if i % 2 == 1:  # a run of Chinese characters
            pieces.extend(_get_jieba().lcut(part, HMM=True))
        else:
            pieces.extend(_PIECE.findall(part))
    return pieces


class WordTokenizer(Tokenizer):
    kind = "word"

    def __init__(self, tokens: list[str], max_vocab: int = 20000, min_freq: int = 1):
        super().__init__(tokens)
        self.max_vocab = max_vocab
        self.min_freq = min_freq

    @classmethod
    def train(cls, texts: Iterable[str], max_vocab: int = 20000, min_freq: int = 1, **_: Any) -> WordTokenizer:
        words: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        for t in texts:
            words.update(split_words(t))
            chars.update(t)
        char_tokens = sorted((c for c, n in chars.items() if n >= min_freq), key=lambda c: (-chars[c], c))
        have = set(char_tokens)
        multi = [w for w, n in sorted(words.items(), key=lambda x: (-x[1], x[0])) if n >= min_freq and w not in have]
        budget = max(0, max_vocab - len(SPECIALS) - len(char_tokens))
        return cls(list(SPECIALS) + char_tokens + multi[:budget], max_vocab=max_vocab, min_freq=min_freq)

    def encode(self, text: str) -> list[int]:
        index = self.index
        ids: list[int] = []
        for piece in split_words(text):
            i = index.get(piece)
            if i is not None:
                ids.append(i)
            else:
                ids.extend(index.get(c, UNK) for c in piece)
        return ids

    def unknown_chars(self, text: str) -> list[str]:
        return sorted({c for c in set(text) if c not in self.index})

    def unknown_in_context(self, text: str) -> dict[str, str]:
        """Each unknown character mapped to the first word it occurs in (``'z'`` → ``'zebra'``)."""
        unknown = set(self.unknown_chars(text))
        found: dict[str, str] = {}
        # Only lines holding an unknown character are cut into words: an evaluation text may be long.
        for line in (line for line in text.splitlines(keepends=True) if unknown.intersection(line)):
            for word in split_words(line):
                for c in unknown.intersection(word):
                    found.setdefault(c, word)
        return dict(sorted(found.items()))

    def _extra(self) -> dict[str, Any]:
        return {"max_vocab": self.max_vocab, "min_freq": self.min_freq}
