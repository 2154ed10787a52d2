"""Corpora read from tables: labelled documents (CSV, TSV, JSON lines) and source→target pairs
(``.tsv`` with one ``source<TAB>target`` per line, or ``.jsonl`` objects with ``source`` and ``target``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import XuxieError
from .documents import Corpus
from .sources import FoundFile, expand_paths, provenance, read_files

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
PAIR_SUFFIXES = (".tsv", ".jsonl")
_PAIR_HINT = 'give one {"source": "…", "target": "…"} object per line'


def json_lines(lines: Iterable[str], name: str, hint: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of JSON-lines text; a line that is not JSON is
    an error naming the file and line, ending with ``hint``."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise XuxieError(f"{name} line {n} is not JSON ({e}); {hint}") from None
        yield n, value


# --------------------------------------------------------------------------- labelled documents
@dataclass
class Documents:
    """Documents of ``lines`` mode in a batch: each stripped non-empty line, or each row of a
    labelled table with its context label (None: unlabelled; ``labels`` is None for plain lines)."""

    texts: list[str]
    labels: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, part: slice) -> Documents:
        return Documents(self.texts[part], None if self.labels is None else self.labels[part])


def check_table_suffixes(found: list[FoundFile]) -> None:
    for f in found:
        if f.path.suffix.lower() not in TABLE_SUFFIXES:
            raise XuxieError(f"{f.path}: a labelled corpus must be a .csv, .tsv or .jsonl file (got '{f.path.suffix}')")


def read_labelled(paths: str | Path | list[str | Path], label_column: str, text_column: str = "text",
                  encoding: str | None = None, *, exclude: list[str | Path] | tuple = ()) -> Corpus:
    """Documents with a context label from CSV, TSV or JSON-lines files (``lines`` mode), in memory
    (training streams them: :func:`xuxie.cache.streamed_table`).

    Every row is a document: its ``text_column`` is the text, its ``label_column`` the label (an
    empty label leaves the document unlabelled). Rows with empty text are skipped.
    """
    found = expand_paths(paths, exclude)
    check_table_suffixes(found)
    read = read_files(found, encoding)
    docs: list[str] = []
    labels: list[str | None] = []
    for f, text, _, _ in read:
        for batch in table_documents(iter([text]), f, text_column, label_column):
            docs.extend(batch.texts)
            labels.extend(batch.labels)
    check_labelled(len(docs), labels, [str(r.path) for r in read], text_column, label_column)
    return Corpus(docs, "lines", labels=labels, **provenance(read))


def check_labelled(n_documents: int, labels: Iterable, where: list[str], text_column: str, label_column: str) -> None:
    """One line when a labelled corpus has no text, or no label, in any row."""
    if not n_documents:
        raise XuxieError(f"{', '.join(where)} has no rows with text in column '{text_column}'")
    if not any(labels):
        raise XuxieError(f"column '{label_column}' is empty in every row; give labels or train without --label-column")


TABLE_BATCH = 10_000  # rows per batch of a labelled table


def line_iter(pieces: Iterator[str]) -> Iterator[str]:
    """Every line of the text, with its line break (a line cut by the end of a piece is finished by the next)."""
    held = ""
    for piece in pieces:
        lines = (held + piece).split("\n")
        held = lines.pop()
        yield from (line + "\n" for line in lines)
    if held:
        yield held


def table_rows(pieces: Iterator[str], path: Path) -> Iterator[dict]:
    """The rows of a CSV, TSV or JSON-lines file read in pieces, each a dict by column name."""
    lines = line_iter(pieces)
    if path.suffix.lower() != ".jsonl":
        yield from csv.DictReader(lines, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        return
    for n, row in json_lines(lines, str(path), "give one JSON object per line"):
        if not isinstance(row, dict):
            raise XuxieError(f"{path} line {n} is not a JSON object; give one object per line")
        yield row


def table_documents(pieces: Iterator[str], path: Path, text_column: str, label_column: str) -> Iterator[Documents]:
    """Each row with text as a document (its line breaks made spaces) with its label, in batches;
    the file must have rows and both columns."""
    texts: list[str] = []
    labels: list[str | None] = []
    columns: set[str] = set()
    rows = 0
    for row in table_rows(pieces, path):
        rows += 1
        columns.update(row)
        text = " ".join(str(row.get(text_column) or "").split("\n")).strip()
        if text:
            texts.append(text)
            labels.append(str(row.get(label_column) or "").strip() or None)
        if len(texts) >= TABLE_BATCH:
            yield Documents(texts, labels)
            texts, labels = [], []
    if not rows:
        raise XuxieError(f"{path} holds no rows; give a file with a header line and at least one row")
    for col in (text_column, label_column):
        if col not in columns:
            raise XuxieError(f"{path} has no column '{col}'; its columns are: {', '.join(sorted(map(str, columns))) or '(none)'}")
    if texts:
        yield Documents(texts, labels)



# --------------------------------------------------------------------------- source→target pairs
def parse_tsv(text: str, name: str) -> tuple[list[str], list[str]]:
    """Pairs from TSV text: one ``source<TAB>target`` per line.

    Blank lines are skipped, and a first line that is exactly ``source<TAB>target`` (a header).
    Empty trailing columns (``a<TAB>b<TAB>`` from a spreadsheet) are ignored. A line with more
    than one tab between texts is an error rather than split at its first tab: the tab could as
    well belong to the source as to the target, and guessing would silently corrupt the pair.
    """
    lines = text.split("\n")
    if any(line.strip() for line in lines) and not any("\t" in line for line in lines):
        raise XuxieError(
            f"{name} has no tab on any line, so it is not a source<TAB>target pairs file; "
            "to make pairs from a plain text (a novel) use --mode continuation"
        )
    sources: list[str] = []
    targets: list[str] = []
    seen_line = False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not seen_line:
            seen_line = True
            if line.strip() == "source\ttarget":
                continue
        source, target = _tsv_pair(line, n, name)
        sources.append(source)
        targets.append(target)
    return sources, targets


def _tsv_pair(line: str, n: int, name: str) -> tuple[str, str]:
    """(source, target) of line ``n``, both stripped and non-empty."""
    parts = line.split("\t")
    while len(parts) > 2 and not parts[-1].strip():
        parts.pop()
    if len(parts) == 1:
        raise XuxieError(f"{name} line {n} has no tab; write source<TAB>target on every line")
    if len(parts) > 2:
        raise XuxieError(
            f"{name} line {n} has {len(parts) - 1} tabs; write exactly one (source<TAB>target) — "
            "replace tabs inside the text with spaces, or use a .jsonl file"
        )
    source, target = parts[0].strip(), parts[1].strip()
    for what, value in (("source", source), ("target", target)):
        if not value:
            raise XuxieError(f"{name} line {n} has an empty {what}; write a non-empty source<TAB>target or delete the line")
    return source, target


def _parse_jsonl(text: str, name: str) -> tuple[list[str], list[str]]:
    """Pairs from JSON lines: one ``{"source": "…", "target": "…"}`` object per line.

    Strings keep their inner line breaks (a source may be several paragraphs); surrounding
    whitespace is stripped. Other keys are ignored.
    """
    sources: list[str] = []
    targets: list[str] = []
    for n, row in json_lines(text.split("\n"), name, _PAIR_HINT):
        if not isinstance(row, dict):
            raise XuxieError(f"{name} line {n} is a JSON {type(row).__name__}, not an object; {_PAIR_HINT}")
        sources.append(_jsonl_text(row, "source", n, name))
        targets.append(_jsonl_text(row, "target", n, name))
    return sources, targets


def _jsonl_text(row: dict[str, Any], key: str, n: int, name: str) -> str:
    """``row[key]`` of line ``n``: a non-empty string, stripped."""
    if key not in row:
        raise XuxieError(f'{name} line {n} has no "{key}" key; {_PAIR_HINT}')
    value = row[key]
    if not isinstance(value, str):
        raise XuxieError(f'{name} line {n}: "{key}" is a JSON {type(value).__name__}, not a string; {_PAIR_HINT}')
    if not value.strip():
        raise XuxieError(f'{name} line {n} has an empty "{key}"; give a non-empty text or delete the line')
    return value.strip()


def read_pairs(paths: str | Path | list[str | Path], encoding: str | None = None, *,
               exclude: list[str | Path] | tuple = ()) -> Corpus:
    """Source→target pairs from ``.tsv`` and ``.jsonl`` files (mode ``pairs``).

    ``.tsv``: one ``source<TAB>target`` per line; blank lines and a ``source<TAB>target`` header
    are skipped; a line with a second tab is an error (no guessing which side it belongs to).
    ``.jsonl``: one object per line with string keys ``source`` and ``target`` (line breaks inside
    the strings are kept). Sources and targets are stripped and must not be empty. The encoding of
    each file is detected (UTF-8/16, GBK/GB18030, Big5, …) unless ``encoding`` is given. Folders
    are read as in :func:`~xuxie.corpus.read_corpus` (``exclude``, hidden files, xuxie's folders,
    binary files).
    """
    found = expand_paths(paths, exclude)
    for f in found:
        suffix = f.path.suffix.lower()
        if suffix not in PAIR_SUFFIXES:
            raise XuxieError(
                f"{f.path}: pairs files must be .tsv (source<TAB>target) or .jsonl (got '{suffix or 'no suffix'}'); "
                "to make pairs from a plain novel use --mode continuation"
            )
    read = read_files(found, encoding)
    sources: list[str] = []
    targets: list[str] = []
    for f, text, _, _ in read:
        src, tgt = (_parse_jsonl if f.suffix.lower() == ".jsonl" else parse_tsv)(text, str(f))
        if not src:
            raise XuxieError(f"{f} holds no pairs; give at least one source<TAB>target line (or JSON object)")
        sources.extend(src)
        targets.extend(tgt)
    return Corpus(sources, "pairs", targets=targets, pairs_from="files", **provenance(read))
