"""What xuxie learnt from a corpus, kept between runs: its scan, tokenizers and token ids.

A second run on the same files starts training at once: the files are hashed (2 GB/s), and
their scan, the tokenizer learnt from them and their token ids are read back instead of being
made again. Everything is keyed by content — the SHA-256 of the files' bytes, the mode and
encoding they were read in, the tokenizer's options or its whole JSON — never by a path or a
date, so an edited file or another tokenizer can never meet stale ids.

Layout: ``<root>/corpora/<corpus key>/`` holds ``scan.json``, ``tokenizer-<key>.json`` and, per
tokenizer and split, ``ids-<key>.json`` with its ``.train`` and ``.val`` files of uint16 ids
(uint32 for vocabularies over 65,536), read a window at a time. Every file is written whole and
renamed into place; an id file whose size does not match its record, or a record made by
another tokenizer, is rebuilt with a warning. The root is ``$XUXIE_CACHE_DIR``, else
``$XDG_CACHE_HOME/xuxie``, else ``~/.cache/xuxie``; deleting it only costs time.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .corpus.sources import FoundFile
from .corpus.stream import HashedFile, ScannedFile, StreamedCorpus, hash_files, scan_files
from .corpus.tables import check_table_suffixes
from .data import IdsFile, Labelling, streamed_ids
from .errors import XuxieError, XuxieWarning
from .fileio import atomic_path, atomic_write_text
from .progress import NO_PROGRESS, PassProgress
from .tokenizers import Tokenizer, tokenizer_from_dict, train_tokenizer

CACHE_ENV = "XUXIE_CACHE_DIR"
FORMAT = 1  # bump when what is cached changes meaning


def cache_root() -> Path:
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xuxie"


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32: a half or a quarter of int32's bytes."""
    return np.dtype(np.uint16 if vocab_size <= 2 ** 16 else np.uint32)


class CorpusCache:
    """One corpus's folder in the cache (a private temporary folder when the cache cannot be written)."""

    def __init__(self, key: str):
        self.key = key
        self.dir = cache_root() / "corpora" / self.key
        self.temporary = False

    # -- small JSON records --------------------------------------------------------------------
    def read(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == FORMAT else None

    def write(self, name: str, data: dict[str, Any]) -> None:
        self._ensure_writable()
        self._saving(lambda: atomic_write_text(self.dir / name, json.dumps({"format": FORMAT, **data}, ensure_ascii=False)))

    def _ensure_writable(self) -> None:
        """The folder exists and takes a file; when the cache cannot be written, say so once and
        go on in a temporary folder removed at exit (ids must live in a file to be read by window)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError as e:
            if self.temporary:
                raise
            warnings.warn(f"cannot write the corpus cache in {self.dir.parent} ({e.strerror}); using a temporary folder — "
                          f"set {CACHE_ENV} to a writable folder to keep it", XuxieWarning, stacklevel=4)
            root = Path(tempfile.mkdtemp(prefix="xuxie-cache-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            self.dir, self.temporary = root / self.key, True
            self.dir.mkdir()

    def _saving(self, write) -> None:
        try:
            write()
        except OSError as e:  # a full disk: nothing half-written stays (atomic_path), and the run says why
            raise XuxieError(f"cannot write the corpus cache in {self.dir} ({e.strerror}); free some space or set "
                             f"{CACHE_ENV} to another folder") from None

    # -- the scan ------------------------------------------------------------------------------
    def load_scan(self, hashed: list[HashedFile], mode: str, encoding: str | None,
                  table: tuple[str, str] | None) -> StreamedCorpus | None:
        """The scan of these files, when it was saved (files a folder held that are not text are
        left out again, by their content)."""
        data = self.read("scan.json")
        try:
            by_content = {f["sha256"]: f for f in data["files"]}
            skipped = set(data["skipped"])
            if any(h.sha256 not in by_content and h.sha256 not in skipped for h in hashed):
                return None
            files = [ScannedFile(**{**by_content[h.sha256], "path": str(h.path)}) for h in hashed if h.sha256 in by_content]
            return StreamedCorpus(mode, files, data["fingerprint"], encoding, table=table, label_names=data["labels"])
        except (KeyError, TypeError):  # none saved, or not as this version saves it
            return None

    def save_scan(self, corpus: StreamedCorpus, hashed: list[HashedFile]) -> None:
        read = set(corpus.source_hashes)
        self.write("scan.json", {"files": [asdict(f) for f in corpus.files], "fingerprint": corpus.fingerprint_hex,
                                 "labels": corpus.label_names, "skipped": [h.sha256 for h in hashed if h.sha256 not in read]})

    # -- token ids -----------------------------------------------------------------------------
    def load_ids(self, name: str, tokenizer_hash: str) -> tuple[IdsFile, IdsFile, int] | None:
        """(train ids, validation ids, validation characters) as :class:`IdsFile`s, or None to build them."""
        meta = self.read(name + ".json")
        if meta is None:
            return None
        if meta.get("tokenizer") != tokenizer_hash:
            return self._stale(name, "was made by another tokenizer")
        try:
            dtype = np.dtype(meta["dtype"])
            parts = [self._open(self.dir / f"{name}.{part}", dtype, int(meta[f"{part}_tokens"])) for part in ("train", "val")]
        except (KeyError, TypeError, ValueError) as e:
            return self._stale(name, f"is damaged ({e})")
        except _Truncated as e:
            return self._stale(name, str(e))
        return parts[0], parts[1], int(meta["val_chars"])

    @staticmethod
    def _open(path: Path, dtype: np.dtype, n: int) -> IdsFile:
        try:
            size = path.stat().st_size
        except OSError:
            raise _Truncated(f"has lost {path.name}") from None
        if size != n * dtype.itemsize:
            raise _Truncated(f"is truncated ({path.name}: {size:,} bytes where {n * dtype.itemsize:,} were written)")
        return IdsFile(path, dtype, n)

    def _stale(self, name: str, why: str) -> None:
        warnings.warn(f"the token-id cache {self.dir / name} {why}; rebuilding it", XuxieWarning, stacklevel=3)
        return None

    def save_ids(self, name: str, tokenizer_hash: str, dtype: np.dtype,
                 pieces: Iterable[tuple[bool, np.ndarray, int]]) -> tuple[IdsFile, IdsFile, int]:
        """Write the ids ``pieces`` yields — ``(is_validation, ids, characters)`` — to the two
        files of the split, then their record; return them opened."""
        tokens, val_chars = [0, 0], 0

        def write() -> None:
            nonlocal val_chars
            with atomic_path(self.dir / f"{name}.train") as train_tmp, atomic_path(self.dir / f"{name}.val") as val_tmp, \
                    open(train_tmp, "wb") as train, open(val_tmp, "wb") as val:
                for is_val, ids, chars in pieces:
                    (val if is_val else train).write(np.ascontiguousarray(ids, dtype=dtype).tobytes())
                    tokens[is_val] += len(ids)
                    val_chars += chars if is_val else 0

        self._ensure_writable()
        self._saving(write)
        self.write(name + ".json", {"tokenizer": tokenizer_hash, "dtype": dtype.name, "train_tokens": tokens[0],
                                    "val_tokens": tokens[1], "val_chars": val_chars})
        loaded = self.load_ids(name, tokenizer_hash)
        assert loaded is not None, "the ids just written read back"
        return loaded


class _Truncated(Exception):
    pass


# --------------------------------------------------------------------------- a corpus of files, streamed
_OPEN: dict[tuple[Path, str], CorpusCache] = {}  # the folder each corpus of this process uses (maybe a temporary one)


def cache_for(key: str) -> CorpusCache:
    return _OPEN.setdefault((cache_root(), key), CorpusCache(key))


def streamed_corpus(found: list[FoundFile], mode: str, encoding: str | None, progress: PassProgress = NO_PROGRESS,
                    table: tuple[str, str] | None = None) -> StreamedCorpus:
    """The files ``found`` as a :class:`StreamedCorpus`: hashed, then scanned (or the scan read
    back); ``table``: labelled tables read by their (text column, label column)."""
    total = sum(f.path.stat().st_size for f in found)
    with progress("hashing the corpus", total) as meter:
        hashed = hash_files(found, meter)
    key = digest(FORMAT, mode, encoding, table, [f.sha256 for f in hashed])[:32]
    cache = cache_for(key)
    corpus = cache.load_scan(hashed, mode, encoding, table)
    if corpus is None:
        with progress("reading the corpus", total) as meter:
            corpus = scan_files(hashed, mode, encoding, meter, table)
        cache.save_scan(corpus, hashed)
    corpus.cache_key = key
    return corpus


def streamed_table(found: list[FoundFile], text_column: str, label_column: str, encoding: str | None,
                   progress: PassProgress = NO_PROGRESS) -> StreamedCorpus:
    """Labelled documents from CSV, TSV or JSON-lines files (``lines`` mode), as
    :func:`~xuxie.corpus.read_labelled` reads them, streamed."""
    check_table_suffixes(found)
    return streamed_corpus(found, "lines", encoding, progress, (text_column, label_column))


def cached_tokenizer(corpus: StreamedCorpus, options: dict[str, Any], val_fraction: float,
                     progress: PassProgress = NO_PROGRESS) -> Tokenizer:
    """The tokenizer ``train_tokenizer(**options)`` learns from the corpus's training part, learnt
    once per corpus, options and split."""
    cache = cache_for(corpus.cache_key)
    name = f"tokenizer-{digest(options, val_fraction)[:16]}.json"
    saved = cache.read(name)
    if saved is not None:
        try:
            return tokenizer_from_dict(saved["tokenizer"])
        except (KeyError, XuxieError) as e:
            cache._stale(name, f"is damaged ({e})")
    with progress(f"learning the {options['kind']} tokenizer", corpus.n_bytes) as meter:
        tokenizer = train_tokenizer(texts=corpus.training_texts(val_fraction, meter), **options)
    cache.write(name, {"tokenizer": tokenizer.to_dict()})
    return tokenizer


def cached_ids(corpus: StreamedCorpus, tokenizer: Tokenizer, val_fraction: float, labelling: Labelling | None = None,
               progress: PassProgress = NO_PROGRESS) -> tuple[IdsFile, IdsFile, int]:
    """(training ids, validation ids, validation characters) of the corpus, read by window from
    the cache; encoded and written there first when they are not."""
    cache = cache_for(corpus.cache_key)
    tokenizer_hash = digest(tokenizer.to_dict())
    name = "ids-" + digest(tokenizer_hash, val_fraction, labelling and asdict(labelling))[:16]
    found = cache.load_ids(name, tokenizer_hash)
    if found is not None:
        return found
    vocab = tokenizer.vocab_size + len(labelling.ids if labelling else ())
    with progress("encoding the corpus", corpus.n_bytes) as meter:
        return cache.save_ids(name, tokenizer_hash, ids_dtype(vocab), streamed_ids(corpus, tokenizer, val_fraction, labelling, meter))
