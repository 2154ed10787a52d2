"""Continuation pairs: a plain text (a novel) turned into source→target pairs, each paragraph (or
group of sentences) the source and the next one its target; and the sentence splitter they use.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import XuxieError
from .documents import Corpus, string_provenance
from .encoding import normalize_text

UNITS = ("paragraph", "sentences")
_END_MARKS = "。！？．!?…"
_CLOSERS = "”’」』）)\"'"
_SENTENCE_END = re.compile(r"[。！？．!?….]+[”’」』）)\"']*")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


def _only_punctuation(s: str) -> bool:
    return all(c.isspace() or unicodedata.category(c).startswith("P") for c in s)


def _tidy(s: str) -> str:
    """Strip every line and drop blank ones (a unit that spans paragraphs keeps one line break)."""
    return "\n".join(line.strip() for line in s.split("\n") if line.strip())


def _sentences_with_gaps(text: str) -> list[tuple[str, str]]:
    """(gap, sentence) for each sentence: gap is "\n", " " or "" — how it was separated from the one before."""
    cuts = {0, len(text)}
    for m in _SENTENCE_END.finditer(text):
        run = m.group().rstrip(_CLOSERS)
        if any(c in _END_MARKS for c in run) or m.end() == len(text) or text[m.end()].isspace():
            cuts.add(m.end())
    cuts.update(m.start() for m in _BLANK_LINE.finditer(text))
    bounds = sorted(cuts)
    out = []
    for a, b in zip(bounds, bounds[1:]):
        raw = text[a:b]
        sentence = _tidy(raw)
        if sentence and not _only_punctuation(sentence):
            lead = raw[: len(raw) - len(raw.lstrip())]
            out.append(("\n" if "\n" in lead else " " if lead else "", sentence))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, stripped.

    A sentence ends after a run of 。！？．!?… (or of '.' when whitespace or the end of the text
    follows), together with the closing quotes and brackets ”’」』）)"' that directly follow it.
    A blank line (paragraph break) also ends a sentence, so a chapter title without an end mark
    stays on its own; a single line break does not (hard-wrapped text). Sentences that are only
    punctuation are dropped.
    """
    return [s for _, s in _sentences_with_gaps(text)]


def _units(text: str, unit: str, sentences: int) -> list[str]:
    """Paragraphs (non-empty stripped lines), or groups of ``sentences`` consecutive sentences.

    Sentences of one group are joined as they were written: with nothing between them in
    Chinese, a space in English, a line break when the group spans paragraphs.
    """
    if unit == "paragraph":
        return [p for line in text.split("\n") if (p := line.strip()) and not _only_punctuation(p)]
    sents = _sentences_with_gaps(text)
    return ["".join((gap if j else "") + s for j, (gap, s) in enumerate(sents[i:i + sentences]))
            for i in range(0, len(sents), sentences)]


def check_unit(unit: str, sentences: int) -> None:
    if unit not in UNITS:
        raise XuxieError(f"unknown unit '{unit}'; choose one of: {', '.join(UNITS)}")
    if unit == "sentences" and (isinstance(sentences, bool) or not isinstance(sentences, int) or sentences < 1):
        raise XuxieError(f"sentences per unit must be a whole number of at least 1, got {sentences!r}")


def pairs_of_units(texts: list[str], unit: str, sentences: int, where: str, **provenance: tuple[str, ...]) -> Corpus:
    """Pairs unit_i → unit_{i+1} within each text (never across two texts); ``provenance``: the
    :class:`Corpus` fields saying where the texts came from."""
    src: list[str] = []
    tgt: list[str] = []
    n_units = 0
    for text in texts:
        units = _units(normalize_text(text), unit, sentences)
        n_units = max(n_units, len(units))
        src.extend(units[:-1])
        tgt.extend(units[1:])
    if not src:
        what = "paragraph" if unit == "paragraph" else f"unit of {sentences} sentence(s)"
        fix = "give a longer text" if unit == "paragraph" else "give a longer text or fewer sentences per unit"
        raise XuxieError(
            f"{where} is too short to make pairs: it has {n_units} {what} and continuation needs at least 2; {fix}"
        )
    from_ = "continuation:paragraph" if unit == "paragraph" else f"continuation:sentences={sentences}"
    return Corpus(src, "pairs", targets=tgt, pairs_from=from_, **provenance)


def continuation_pairs(corpus_or_text: Corpus | str, unit: str = "paragraph", sentences: int = 3) -> Corpus:
    """Pairs from a plain text (a novel): each unit is the source, the next unit its target (mode ``pairs``).

    ``unit="paragraph"``: every non-empty line, stripped (leading full-width or ASCII spaces and
    tabs go; lines of only whitespace are skipped). ``unit="sentences"``: ``sentences``
    consecutive sentences (see :func:`split_sentences`). Units of only punctuation are skipped.
    A text-mode corpus of several files is paired within each file; a lines-mode corpus is one
    sequence of lines. ``pairs_from`` records the unit, ``sources`` the files.
    """
    check_unit(unit, sentences)
    if isinstance(corpus_or_text, Corpus):
        c = corpus_or_text
        if c.mode == "pairs":
            raise XuxieError("the corpus is already source→target pairs; give a plain text (mode text or lines)")
        texts = list(c.documents) if c.mode == "text" else [c.text]
        return pairs_of_units(texts, unit, sentences, ", ".join(c.sources) or "the text",
                             sources=c.sources, encodings=c.encodings, source_hashes=c.source_hashes)
    if not isinstance(corpus_or_text, str):
        raise XuxieError(f"continuation_pairs needs a Corpus or a string, got {type(corpus_or_text).__name__}")
    if not corpus_or_text.strip():
        raise XuxieError("the text is empty or only whitespace; give some text to make pairs from")
    return pairs_of_units([corpus_or_text], unit, sentences, "the text", **string_provenance(corpus_or_text))
