"""What the user points at (files, folders, named corpora, or a string), read into a :class:`Corpus`
in one of the modes."""

from __future__ import annotations

from pathlib import Path

from ..errors import XuxieError
from .continuation import check_unit, continuation_pairs, pairs_of_units
from .documents import Corpus, check_mode, documents_from_text, string_provenance
from .encoding import normalize_text
from .sources import expand_paths, provenance, read_files
from .tables import parse_tsv, read_pairs


def read_corpus(paths: str | Path | list[str | Path], mode: str = "text", encoding: str | None = None, *,
                unit: str = "paragraph", sentences: int = 3, exclude: list[str | Path] | tuple = ()) -> Corpus:
    """Read one or more files/folders (or named corpora) into a :class:`Corpus`.

    ``mode="pairs"`` reads ``.tsv``/``.jsonl`` pairs files (:func:`read_pairs`);
    ``mode="continuation"`` reads plain text and pairs each ``unit`` with the next one
    (:func:`continuation_pairs`, ``sentences`` per unit when ``unit="sentences"``), never across
    two files.

    A folder is read without its hidden files and folders (names starting with '.'), without
    folders xuxie wrote (models, exports) and without ``exclude``; a file in it that does not look
    like text is skipped with one warning. ``sources`` records absolute paths, ``source_hashes``
    the SHA-256 of each file.
    """
    check_mode(mode)
    if mode == "pairs":
        return read_pairs(paths, encoding, exclude=exclude)
    if mode == "continuation":
        check_unit(unit, sentences)
    read = read_files(expand_paths(paths, exclude), encoding)
    where = ", ".join(str(r.path) for r in read)
    if mode == "continuation":
        if not any(r.text.strip() for r in read):
            raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
        return pairs_of_units([r.text for r in read], unit, sentences, where, **provenance(read))
    docs = [doc for r in read for doc in documents_from_text(r.text, mode)]
    if not docs:
        raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
    return Corpus(docs, mode, **provenance(read))


def corpus_from_text(text: str, mode: str = "text") -> Corpus:
    """A :class:`Corpus` from a string; ``pairs`` mode reads it as TSV (``source<TAB>target`` lines)."""
    if mode == "continuation":
        return continuation_pairs(text)
    if mode == "pairs":
        sources, targets = parse_tsv(normalize_text(text), "the text")
        if not sources:
            raise XuxieError("the text holds no pairs; give source<TAB>target lines")
        return Corpus(sources, "pairs", targets=targets, pairs_from="files", **string_provenance(text))
    docs = documents_from_text(normalize_text(text), mode)
    if not docs:
        raise XuxieError("the text is empty or only whitespace; give some text to train on")
    return Corpus(docs, mode, **string_provenance(text))
