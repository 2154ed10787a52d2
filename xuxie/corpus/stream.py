"""A corpus of text files read as a stream, never whole: a corpus larger than memory trains like
a small one.

Each file is read in blocks of :data:`BLOCK` bytes. A file no larger than one block is decoded
whole by :func:`~xuxie.corpus.encoding.decode_bytes` (every rule of encoding detection applies);
a larger one has its encoding detected on its first block, then goes through an incremental
decoder, and a byte that does not fit that encoding further on is one clear error. Text comes
out in pieces with line endings normalised as :func:`~xuxie.corpus.encoding.normalize_text` does.

:func:`scan_files` reads the corpus once to learn what the in-memory :class:`Corpus` knows at
once (characters, documents, its fingerprint); a :class:`StreamedCorpus` then hands out the
training or validation part again and again, in pieces, split exactly as :meth:`Corpus.split`
splits: the same documents, the same fingerprint, the same characters on each side.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..chars import neutral_cut
from ..errors import XuxieError
from .documents import validation_start
from .encoding import NotText, decode_bytes, normalize_text
from .sources import FoundFile, report_skipped
from .tables import Documents, check_labelled, table_documents

BLOCK = 8 << 20  # bytes read at a time; a file up to this size is decoded whole
PIECE = 4 << 20  # characters per piece handed on (cut after a line break where there is one)
ByteMeter = Callable[[int], None]  # told how many bytes were just read (a progress bar)


class HashedFile(NamedTuple):
    path: Path
    named: bool  # the user named it (not a folder holding it): not being text is an error
    size: int
    sha256: str


def hash_files(found: list[FoundFile], on_bytes: ByteMeter | None = None) -> list[HashedFile]:
    """The size and SHA-256 of each file, read in blocks (2 GB/s: what a cache is keyed by)."""
    hashed = []
    for f in found:
        h, size = hashlib.sha256(), 0
        try:
            with open(f.path, "rb") as fh:
                while block := fh.read(BLOCK):
                    h.update(block)
                    size += len(block)
                    if on_bytes:
                        on_bytes(len(block))
        except OSError as e:
            raise XuxieError(f"cannot read {f.path}: {e.strerror}") from None
        hashed.append(HashedFile(f.path, f.named, size, h.hexdigest()))
    return hashed


def _sample(head: bytes) -> bytes:
    """The first block cut where no character can be split: after its last line break (a
    newline byte is never inside a UTF-8, GB18030 or Big5 character), or at a multiple of four
    bytes for UTF-16/32 (which hold NUL bytes)."""
    if b"\x00" in head:
        return head[: len(head) - len(head) % 4]
    cut = head.rfind(b"\n")
    return head[: cut + 1] if cut > 0 else head


def detect_encoding(path: Path, encoding: str | None, head: bytes, whole: bool) -> str:
    """The encoding of the file that starts with ``head`` (all of it when ``whole``); raises
    :class:`NotText` for a binary file. A UTF-8 file with a few damaged bytes is read whole."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once, when the file is read
        return decode_bytes(head if whole else _sample(head), encoding, name=str(path))[1]


def _normalized(pieces: Iterator[str]) -> Iterator[str]:
    """:func:`normalize_text` over a stream: a CR at the end of a piece waits for the next (CRLF)."""
    held = ""
    for piece in pieces:
        text = held + piece
        held = "\r" if text.endswith("\r") else ""
        if held:
            text = text[:-1]
        if text:
            yield normalize_text(text)
    if held:
        yield "\n"


def _decoded_blocks(path: Path, encoding: str, on_bytes: ByteMeter | None) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        with open(path, "rb") as fh:
            while block := fh.read(BLOCK):
                yield _decode(decoder, block, path, encoding, offset)
                offset += len(block)
                if on_bytes:
                    on_bytes(len(block))
    except OSError as e:
        raise XuxieError(f"cannot read {path}: {e.strerror}") from None
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        pass  # a file cut inside its last character (``head -c``, a broken download): without it, as when read whole


def _decode(decoder, block: bytes, path: Path, encoding: str, offset: int) -> str:
    """``block`` (the bytes from ``offset``) decoded; an invalid byte is one clear error naming its place."""
    held = len(decoder.getstate()[0])  # the end of a character cut by the block before, decoded with this block
    try:
        return decoder.decode(block)
    except UnicodeDecodeError as e:
        raise XuxieError(f"{path} is not valid {encoding} at byte {offset - held + max(e.start, 0):,} (its encoding was detected "
                         f"from its first {BLOCK / 2**20:g} MB); pass --encoding to read it another way") from None


def file_pieces(path: Path, encoding: str, size: int, forced: str | None = None,
                on_bytes: ByteMeter | None = None) -> Iterator[str]:
    """The normalised text of one file, in pieces."""
    if size <= BLOCK:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise XuxieError(f"cannot read {path}: {e.strerror}") from None
        if on_bytes:
            on_bytes(len(data))
        text = decode_bytes(data, forced, name=str(path))[0]  # detected again: every rule applies
        yield normalize_text(text)
        return
    yield from _normalized(_decoded_blocks(path, encoding, on_bytes))


def _neutral_pieces(pieces: Iterator[str]) -> Iterator[str]:
    """The same text in pieces of about :data:`PIECE` characters, each cut where no tokenizer
    notices (:func:`~xuxie.chars.neutral_cut`): a tokenizer reading the pieces one by one reads
    what it would read in the whole text. Text without any whitespace is cut every 4 pieces."""
    held = ""
    for piece in pieces:
        held += piece
        while len(held) > PIECE:
            cut = neutral_cut(held, PIECE // 2)
            if cut is None or cut > 4 * PIECE:
                if len(held) <= 4 * PIECE:
                    break
                cut = 4 * PIECE
            yield held[:cut]
            held = held[cut:]
    if held:
        yield held


@dataclass
class ScannedFile:
    """A corpus file as a scan found it: how to read it, and what it holds."""

    path: str
    encoding: str
    size: int
    sha256: str
    chars: int  # after normalisation
    documents: int  # lines mode: non-empty lines; text mode: 1, or 0 for a file of only whitespace


@dataclass
class StreamedCorpus:
    """A ``text`` or ``lines`` corpus of files, read in pieces whenever its text is needed.

    It answers what a :class:`~xuxie.corpus.Corpus` answers about itself (``mode``, ``sources``,
    ``n_chars``, ``n_documents``, :meth:`fingerprint`) without holding its text.
    """

    mode: str
    files: list[ScannedFile]
    fingerprint_hex: str
    forced_encoding: str | None = None
    cache_key: str = ""  # what the corpus cache knows it by (xuxie.cache)
    table: tuple[str, str] | None = None  # a labelled table's (text column, label column)
    label_names: list[str] = field(default_factory=list)  # a labelled table's labels, sorted
    targets = None
    pairs_from = None

    # -- what the corpus is ------------------------------------------------------------------
    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    @property
    def encodings(self) -> tuple[str, ...]:
        return tuple(f.encoding for f in self.files)

    @property
    def source_hashes(self) -> tuple[str, ...]:
        return tuple(f.sha256 for f in self.files)

    @property
    def n_chars(self) -> int:
        return sum(f.chars for f in self.files)

    @property
    def n_documents(self) -> int:
        return sum(f.documents for f in self.files)

    @property
    def n_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        return self.fingerprint_hex

    # -- the split ---------------------------------------------------------------------------
    def _text_length(self) -> int:
        """Characters of the whole text: the files' texts joined by a blank line."""
        with_text = [f for f in self.files if f.documents]
        return sum(f.chars for f in with_text) + 2 * max(len(with_text) - 1, 0)

    def split_point(self, val_fraction: float) -> int:
        """Where validation begins, as :meth:`Corpus.split` cuts: a character of the whole text
        (``text`` mode) or a document (``lines`` mode)."""
        if self.mode == "text":
            return validation_start(self._text_length(), val_fraction, None)
        return validation_start(self.n_documents, val_fraction, "document")

    # -- the text, in pieces -------------------------------------------------------------------
    def _file_pieces(self, f: ScannedFile, on_bytes: ByteMeter | None) -> Iterator[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the scan said it once
            yield from file_pieces(Path(f.path), f.encoding, f.size, self.forced_encoding, on_bytes)

    def parts(self, val_fraction: float, on_bytes: ByteMeter | None = None) -> Iterator[tuple[bool, str | Documents]]:
        """The corpus in one reading, split as :meth:`Corpus.split` splits it: ``(is_validation,
        piece)`` where a piece is text (``text`` mode, cut where a tokenizer reading pieces one
        by one reads what it would read whole) or :class:`Documents` (``lines`` mode)."""
        cut = self.split_point(val_fraction)
        if self.mode == "text":
            tagged = _tag_at(self._whole_text(on_bytes), cut)
            for is_val, group in itertools.groupby(tagged, key=lambda t: t[0]):
                yield from ((is_val, p) for p in _neutral_pieces(piece for _, piece in group))
            return
        yield from _tag_at((docs for f in self.files for docs in self._documents(f, on_bytes)), cut)

    def training_texts(self, val_fraction: float, on_bytes: ByteMeter | None = None) -> Iterator[str]:
        """What a tokenizer learns from: the training part, as texts (``lines``: each document)."""
        for is_val, piece in self.parts(val_fraction, on_bytes):
            if is_val:
                return
            if isinstance(piece, str):
                yield piece
            else:
                yield from piece.texts

    def _documents(self, f: ScannedFile, on_bytes: ByteMeter | None) -> Iterator[Documents]:
        pieces = self._file_pieces(f, on_bytes)
        return table_documents(pieces, Path(f.path), *self.table) if self.table else _lines(pieces)

    def _whole_text(self, on_bytes: ByteMeter | None) -> Iterator[str]:
        """The files holding text, joined by a blank line (as ``Corpus.text`` joins them)."""
        for i, f in enumerate(f for f in self.files if f.documents):
            if i:
                yield "\n\n"
            yield from self._file_pieces(f, on_bytes)


def _tag_at(pieces: Iterator, cut: int) -> Iterator[tuple[bool, Any]]:
    """Each piece (text, or :class:`Documents`) tagged with whether it lies at or after character
    (or document) ``cut``; the piece across it is cut in two there."""
    pos = 0
    for piece in pieces:
        if pos < cut < pos + len(piece):
            yield False, piece[:cut - pos]
            yield True, piece[cut - pos:]
        elif piece:
            yield pos >= cut, piece
        pos += len(piece)


def _lines(pieces: Iterator[str]) -> Iterator[Documents]:
    """Each piece's complete lines, stripped, the empty ones left out (a line cut by the end of a
    piece is finished by the next)."""
    held = ""
    for piece in pieces:
        lines = (held + piece).split("\n")
        held = lines.pop()
        yield Documents([s for line in lines if (s := line.strip())])
    if held.strip():
        yield Documents([held.strip()])


def scan_files(hashed: list[HashedFile], mode: str, encoding: str | None,
               on_bytes: ByteMeter | None = None, table: tuple[str, str] | None = None) -> StreamedCorpus:
    """Read every file once: its encoding, characters and documents, and the corpus fingerprint
    (the same as :meth:`Corpus.fingerprint` of the corpus read into memory). A file in a folder
    that is not text is skipped with one warning, as :func:`~xuxie.corpus.sources.read_files` does.
    ``table``: the files are labelled tables, read by their (text column, label column)."""
    fingerprint = hashlib.sha256(mode.encode())
    labels: set[str] = set()
    scanned: list[ScannedFile] = []
    binary: list[Path] = []
    for f in hashed:
        try:
            with open(f.path, "rb") as fh:
                head = fh.read(BLOCK + 1)
            enc = detect_encoding(f.path, encoding, head, whole=len(head) <= BLOCK)
        except OSError as e:
            raise XuxieError(f"cannot read {f.path}: {e.strerror}") from None
        except NotText:
            if f.named:
                raise
            binary.append(f.path)
            if on_bytes:
                on_bytes(f.size)
            continue
        chars, documents, fingerprint = _scan_one(f, enc, encoding, mode, fingerprint, on_bytes, table, labels)
        scanned.append(ScannedFile(str(f.path), enc, f.size, f.sha256, chars, documents))
    report_skipped(bool(scanned), binary)
    corpus = StreamedCorpus(mode, scanned, fingerprint.hexdigest(), encoding, table=table, label_names=sorted(labels))
    where = ", ".join(corpus.sources)
    if table:
        check_labelled(corpus.n_documents, labels, list(corpus.sources), *table)
    if not corpus.n_documents:
        raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
    return corpus


def _scan_one(f: HashedFile, enc: str, forced: str | None, mode: str, fingerprint, on_bytes: ByteMeter | None,
              table: tuple[str, str] | None, labels: set[str]):
    """(characters, documents, the fingerprint with this file's documents added) of one file; a
    table's labels are added to ``labels``."""
    pieces = file_pieces(f.path, enc, f.size, forced, on_bytes)
    if mode == "lines":
        chars = documents = 0
        for docs in table_documents(pieces, f.path, *table) if table else _lines(pieces):
            if docs:
                fingerprint.update(("\x00" + "\x00".join(docs.texts)).encode("utf-8"))
            chars += sum(map(len, docs.texts))
            documents += len(docs)
            labels.update(lab for lab in docs.labels or () if lab)
        return chars, documents, fingerprint
    # text mode: the file is one document unless it is only whitespace, known only at its end
    with_file = fingerprint.copy()
    with_file.update(b"\x00")
    chars, visible = 0, False
    for piece in pieces:
        with_file.update(piece.encode("utf-8"))
        chars += len(piece)
        visible = visible or not (piece.isspace() or not piece)
    return (chars, 1, with_file) if visible else (0, 0, fingerprint)
