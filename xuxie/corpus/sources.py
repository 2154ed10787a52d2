"""Finding and reading corpus files: paths, folders and named corpora to files; each read once,
decoded and hashed; the :class:`~xuxie.corpus.documents.Corpus` fields saying where text came from.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import NamedTuple

from ..errors import XuxieError, XuxieWarning
from ..fileio import xuxie_folder_kind
from .encoding import NotText, decode_bytes, normalize_text
from .named import NAMED_CORPORA, resolve_named_corpus

TEXT_SUFFIXES = {".txt", ".text", ".md", ".csv", ".tsv", ".json", ".jsonl", ".rst", ""}


class FoundFile(NamedTuple):
    """A file to read: its absolute path, and whether the user named it (not a folder holding it)."""

    path: Path
    named: bool


class ReadFile(NamedTuple):
    """A file read once: its absolute path, text, encoding and the SHA-256 of its bytes."""

    path: Path
    text: str
    encoding: str
    sha256: str


def _is_own_or_hidden(path: Path, skip: set[Path]) -> bool:
    """What a folder holds but is not the user's text: hidden and temporary names (atomic writes
    and downloads make ``.name.tmp`` / ``.name.part``), folders xuxie wrote (a training run's
    output inside its own corpus folder), and the ``skip``ped paths."""
    return path.name.startswith(".") or path in skip or (path.is_dir() and xuxie_folder_kind(path) is not None)


def _folder_files(folder: Path, skip: set[Path]) -> list[Path]:
    """The text files under ``folder`` (by suffix, sorted), leaving out :func:`_is_own_or_hidden` ones."""
    kind = xuxie_folder_kind(folder)
    if kind is not None:
        raise XuxieError(f"folder {folder} is a xuxie {kind} directory, not a corpus; give the text it was trained on")
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):  # not into symlinked folders: no loops
        here = Path(root)
        dirs[:] = [d for d in dirs if not _is_own_or_hidden(here / d, skip)]
        found.extend(here / n for n in names
                     if not _is_own_or_hidden(here / n, skip) and Path(n).suffix.lower() in TEXT_SUFFIXES and (here / n).is_file())
    if not found:
        raise XuxieError(f"folder {folder} holds no text files (.txt, .md, …); point at a file or a folder of them")
    return sorted(found)


def expand_paths(paths: str | Path | list[str | Path], exclude: list[str | Path] | tuple = ()) -> list[FoundFile]:
    """The files named by ``paths`` (one or several files, folders, named corpora), as absolute
    paths. Inside a folder, the paths in ``exclude`` (files or folders, e.g. a training run's output
    folder before it holds a config.json) are left out; a path named directly is always read."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    skip = {Path(p).expanduser().resolve() for p in exclude}
    files: list[FoundFile] = []
    for p in paths:
        sp = str(p)
        if sp in NAMED_CORPORA and not Path(sp).exists():
            files.append(FoundFile(resolve_named_corpus(sp).resolve(), named=True))
            continue
        path = Path(sp).expanduser()
        if path.is_dir():
            files.extend(FoundFile(f, named=False) for f in _folder_files(path.resolve(), skip))
        elif path.is_file():
            files.append(FoundFile(path.resolve(), named=True))
        else:
            names = ", ".join(NAMED_CORPORA)
            raise XuxieError(f"corpus '{sp}' does not exist; give a file, a folder, or a named corpus ({names})")
    return files


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise XuxieError(f"cannot read {path}: {e.strerror}") from None


def read_text_file(path: Path, encoding: str | None = None) -> tuple[str, str]:
    text, enc = decode_bytes(_read_bytes(path), encoding, name=str(path))
    return normalize_text(text), enc


BINARY_SHOWN = 3  # skipped binary files named in the warning; the count says how many there are


def _shown(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths[:BINARY_SHOWN]) + (", …" if len(paths) > BINARY_SHOWN else "")


def read_files(found: list[FoundFile], encoding: str | None) -> list[ReadFile]:
    """Read and decode each file once, hashing the bytes read. A file that is not text is an error
    when the user named it, and skipped when a folder held it (a stray image or archive should not
    stop training on the rest), with one warning naming the skipped files."""
    read: list[ReadFile] = []
    binary: list[Path] = []
    for f in found:
        data = _read_bytes(f.path)
        try:
            text, enc = decode_bytes(data, encoding, name=str(f.path))
        except NotText:
            if f.named:
                raise
            binary.append(f.path)
            continue
        read.append(ReadFile(f.path, normalize_text(text), enc, hashlib.sha256(data).hexdigest()))
    report_skipped(bool(read), binary)
    return read


def report_skipped(any_text: bool, binary: list[Path]) -> None:
    """The files of a folder skipped as not text: one warning naming them, or an error when
    nothing else was text."""
    if not any_text:
        raise XuxieError(f"the corpus folder holds no text: its {len(binary)} file(s) do not look like text "
                         f"({_shown(binary)}); give text files")
    if binary:
        warnings.warn(f"skipped {len(binary)} file(s) in the corpus folder that do not look like text (binary?): "
                      f"{_shown(binary)}", XuxieWarning, stacklevel=4)


def provenance(read: list[ReadFile]) -> dict[str, tuple[str, ...]]:
    """The :class:`~xuxie.corpus.documents.Corpus` fields that say where its text came from."""
    return {"sources": tuple(str(r.path) for r in read), "encodings": tuple(r.encoding for r in read),
            "source_hashes": tuple(r.sha256 for r in read)}
