"""Characters: the CJK blocks every CJK check is built from, and how a token is shown where its
whitespace must stay visible (plot labels, the write session's options, ``xuxie info``).

No torch, no numpy: the corpus readers and tokenizers import it too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

#: Han ideographs, as (first, last) code points.
HAN_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # Unified Ideographs
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x20000, 0x2FA1F),  # Extensions B-F, Compatibility Supplement
    (0x30000, 0x323AF),  # Extensions G-H
)
KANA_BLOCK = (0x3040, 0x30FF)  # hiragana and katakana: written without spaces, like Han


def char_class(blocks: Iterable[tuple[int, int]]) -> str:
    """The inside of a regular-expression character class matching the code points of ``blocks``."""
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in blocks)


def is_han(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in HAN_BLOCKS)


# --------------------------------------------------------------------------- visible tokens
#: the symbol drawn for each whitespace character wherever a token is shown on its own
WHITESPACE_SYMBOLS: Mapping[str, str] = {" ": "␣", "\n": "⏎", "\t": "⇥"}
EMPTY_TOKEN = "∅"  # a token that is no text at all
_LABEL_SYMBOLS = {**WHITESPACE_SYMBOLS, "\r": "↵", "\u3000": "␣"}
MAX_LABEL_CHARS = 16  # a plot label longer than this is cut with "…"


def show_whitespace(text: str, symbols: Mapping[str, str] = WHITESPACE_SYMBOLS) -> str:
    """``text`` with every character that has a symbol in ``symbols`` drawn as that symbol."""
    return "".join(symbols.get(ch, ch) for ch in text)


def display_token(token: str) -> str:
    """A token as a plot label: whitespace and control characters made visible, shortened when
    very long (any other space shows as '␣', a control character as its escape)."""
    if token == "":
        return EMPTY_TOKEN
    out = []
    for ch in str(token):
        if ch in _LABEL_SYMBOLS:
            out.append(_LABEL_SYMBOLS[ch])
        elif ch.isspace():
            out.append("␣")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def display_width(text: str) -> int:
    """Display width in Latin-letter units (wide CJK characters count 2)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


_CUT_AT_LINE = re.compile(r"(?<=\S)\n")  # a line break right after a visible character
_CUT_AT_SPACE = re.compile(r"(?<=\S)\s")


def neutral_cut(text: str, at: int) -> int | None:
    """The first position from ``at`` where ``text`` can be cut in two without changing what any
    of our tokenizers reads: just before whitespace that follows a visible character, where
    every word, number, punctuation run and Chinese run has ended and a whitespace run begins
    (a line break preferred). ``None`` when there is no such position."""
    m = _CUT_AT_LINE.search(text, at) or _CUT_AT_SPACE.search(text, at)
    return m.start() if m else None
