"""Atomic file writes (temporary file in the same folder, fsync, rename), and how xuxie knows a
folder it wrote: the ``format`` marker in its ``config.json``."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import XuxieError

_UMASK = os.umask(0o022)  # read once (it can only be read by setting it), then restored
os.umask(_UMASK)


def make_temp_dir(parent: Path, name: str) -> Path:
    """A new uniquely named folder ``parent/.NAME.RANDOM.tmp``, with the permissions a plain mkdir
    gives (``tempfile.mkdtemp`` makes it private, and it keeps that mode once renamed into place)."""
    while True:
        candidate = Path(parent) / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private; the file gets what open() would give
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def append_text(path: str | Path, text: str) -> None:
    """Append and flush (log files: a torn last line is the worst case, never a lost file)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


#: files of a model folder that several modules read or write
CONFIG = "config.json"  # the run's settings, with xuxie's format marker (an export's too)
LOG = "log.jsonl"  # one JSON record per training log line and evaluation
SAMPLES = "samples.md"  # the samples written at each evaluation

MODEL_FORMAT = "xuxie-model"  # config.json "format" of a model directory
EXPORT_FORMAT = "xuxie-hf-export"  # config.json "xuxie_export" of a Hugging Face export


def file_in_the_way(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder — it is a file, or lies inside one — or None."""
    for folder in (path, *path.parents):
        if folder.exists():
            if folder.is_dir():
                return None
            return "is a file" if folder == path else f"is inside {folder}, which is a file"
    return None


def xuxie_folder_kind(path: str | Path) -> str | None:
    """``"model"`` or ``"export"`` when ``path`` is a folder xuxie wrote (its config.json carries
    xuxie's format marker), else ``None``. Only such folders are ever overwritten or skipped as
    xuxie's own; a marker-less folder is the user's, whatever files it holds."""
    try:
        config = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if config.get("format") == MODEL_FORMAT:
        return "model"
    marker = config.get("xuxie_export")
    if isinstance(marker, dict) and marker.get("format") == EXPORT_FORMAT:
        return "export"
    return None


def output_folder_kind(path: Path, name: str, other: str) -> str | None:
    """What xuxie wrote in the output folder ``path`` — ``"model"`` or ``"export"`` — or None when
    it is new or empty. A file in the way, or a non-empty folder without xuxie's marker, is one
    error: xuxie never writes into a folder it did not make. ``name`` is how the user gave the
    path (``--out runs/x``); ``other`` says what to do instead (``choose another --out``)."""
    if problem := file_in_the_way(path):
        raise XuxieError(f"{name} {problem}; give a folder path")
    if not path.is_dir() or not any(path.iterdir()):
        return None
    kind = xuxie_folder_kind(path)
    if kind is None:
        shown = ", ".join(sorted(e.name for e in path.iterdir())[:3])
        raise XuxieError(f"{name} holds files xuxie did not write ({shown}…); {other} "
                         "(xuxie never replaces a folder it did not make, even with --overwrite)")
    return kind
