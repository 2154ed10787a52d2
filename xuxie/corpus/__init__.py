"""Reading corpora: files, folders, named corpora; encoding detection; modes; validation split.

This module knows nothing about tensors. It turns what the user points at into a
:class:`Corpus`: a list of documents (strings) plus the mode they were read in.

Modes
-----
``text``
    The input is one continuous text (several files are joined by a blank line).
``lines``
    Every non-empty line is a document (a headline, a poem, a tweet). Models are trained with
    ``<bos>`` before and ``<eos>`` after each document, so generation writes whole documents
    and stops by itself.
``pairs``
    Source→target pairs for an encoder–decoder: ``documents[i]`` is a source and ``targets[i]``
    its target. Read from ``.tsv`` files (one ``source<TAB>target`` per line, an optional
    ``source<TAB>target`` header) or ``.jsonl`` files (one ``{"source": …, "target": …}`` object
    per line; strings may span several lines). See :func:`read_pairs`.
``continuation``
    A plain text (a novel) turned into ``pairs``: each paragraph (or group of sentences) is the
    source and the next one its target. The corpus has mode ``pairs`` and ``pairs_from`` tells
    how it was made. See :func:`continuation_pairs`.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
import unicodedata
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from ..errors import XuxieError, XuxieWarning
from ..fileio import xuxie_folder_kind

MODES = ("text", "lines", "pairs", "continuation")
PAIR_SUFFIXES = (".tsv", ".jsonl")
UNITS = ("paragraph", "sentences")
TEXT_SUFFIXES = {".txt", ".text", ".md", ".csv", ".tsv", ".json", ".jsonl", ".rst", ""}

#: Named corpora usable in place of a path: name -> (file name, public source, sha256).
NAMED_CORPORA = {
    "tinyshakespeare": (
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "hongloumeng": (
        "hongloumeng.txt",
        "https://raw.githubusercontent.com/tennessine/corpus/master/%E7%BA%A2%E6%A5%BC%E6%A2%A6.txt",
        "5eca888fb54188d644df70fa555dd3c9cbdd3a8d7b3034fb59f7a81e16f05dc7",
    ),
}

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CANDIDATES = ["gb18030", "big5", "cp1252", "latin_1"]  # in order of preference on a tie


@dataclass
class Corpus:
    """Documents read from one or more files, in one mode (in ``pairs`` mode: sources, with ``targets``).

    ``sources`` are the absolute paths of the files read (``"<text>"`` for a string), and
    ``source_hashes`` the SHA-256 of each one's bytes as read (of a string: its UTF-8), in the same
    order, so a run can record exactly what it was trained on and tell when a file changed.
    """

    documents: list[str]
    mode: str = "text"
    sources: tuple[str, ...] = ()
    encodings: tuple[str, ...] = ()
    labels: list[str | None] | None = None  # context label of each document (lines mode), None: unlabelled
    targets: list[str] | None = None  # pairs mode: targets[i] is the target of documents[i] (the source)
    pairs_from: str | None = None  # pairs mode: "files", or "continuation:paragraph" / "continuation:sentences=N"
    source_hashes: tuple[str, ...] = ()  # SHA-256 hex digest of each of ``sources``

    @property
    def text(self) -> str:
        """All the text: documents (and, in pairs mode, every source and target) joined by line breaks."""
        if self.mode == "pairs":
            return "\n".join(x for pair in zip(self.documents, self.targets or []) for x in pair)
        return "\n\n".join(self.documents) if self.mode == "text" else "\n".join(self.documents)

    @property
    def n_chars(self) -> int:
        """Characters in the documents (in pairs mode: in the sources and the targets)."""
        return sum(len(d) for d in self.documents) + sum(len(t) for t in self.targets or [])

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.mode.encode())
        for d in self.documents:
            h.update(b"\x00")
            h.update(d.encode("utf-8"))
        if self.targets is not None:
            h.update(b"\x01targets")
            for t in self.targets:
                h.update(b"\x00")
                h.update(t.encode("utf-8"))
        return h.hexdigest()

    def split(self, val_fraction: float = 0.1) -> tuple[Corpus, Corpus]:
        """Split into (train, validation).

        ``text`` mode: the validation part is the last ``val_fraction`` of the text (cut at a
        line break near the boundary when there is one). ``lines`` mode: the last
        ``val_fraction`` of the documents. ``pairs`` mode: the last ``val_fraction`` of the pairs
        (sources and targets stay aligned).
        """
        if not 0.0 <= val_fraction < 1.0:
            raise XuxieError(f"validation fraction must be in [0, 1), got {val_fraction}")
        if self.mode == "pairs":
            return self._split_pairs(val_fraction)
        if val_fraction == 0:
            return self, replace(self, documents=[], labels=None)
        if self.mode == "lines":
            n_val = max(1, round(len(self.documents) * val_fraction))
            if n_val >= len(self.documents):
                raise XuxieError(
                    f"only {len(self.documents)} document(s): too few to hold out a validation "
                    "set; add more lines or pass --val-fraction 0"
                )
            lab = self.labels
            return (
                replace(self, documents=self.documents[:-n_val], labels=lab[:-n_val] if lab else None),
                replace(self, documents=self.documents[-n_val:], labels=lab[-n_val:] if lab else None),
            )
        text = self.text
        cut = int(len(text) * (1.0 - val_fraction))
        return replace(self, documents=[text[:cut]], labels=None), replace(self, documents=[text[cut:]], labels=None)

    def _split_pairs(self, val_fraction: float) -> tuple[Corpus, Corpus]:
        targets = self.targets or []
        if len(targets) != len(self.documents):
            raise XuxieError(f"pairs corpus has {len(self.documents)} sources but {len(targets)} targets; "
                             "build it with read_pairs or continuation_pairs")

        def part(lo: int, hi: int | None) -> Corpus:
            return replace(self, documents=self.documents[lo:hi], labels=None, targets=targets[lo:hi])

        if val_fraction == 0:
            return self, part(len(targets), None)
        n_val = max(1, round(len(targets) * val_fraction))
        if n_val >= len(targets):
            raise XuxieError(
                f"only {len(targets)} pair(s): too few to hold out a validation set; "
                "add more pairs or pass --val-fraction 0"
            )
        return part(0, -n_val), part(len(targets) - n_val, None)


# --------------------------------------------------------------------------- named corpora
def data_dir() -> Path:
    """Folder where named corpora live: $XUXIE_DATA_DIR, ../shared/corpora, or ~/.cache/xuxie."""
    env = os.environ.get("XUXIE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[3] / "shared" / "corpora"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "xuxie"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_named_corpus(name: str, download: bool = True) -> Path:
    """Path of a named corpus, downloading it once (and checking its SHA-256) if missing."""
    fname, url, digest = NAMED_CORPORA[name]
    folder = data_dir()
    path = folder / fname
    if path.is_file():
        return path
    if not download:
        raise XuxieError(f"named corpus '{name}' is not in {folder}; set XUXIE_DATA_DIR to a folder holding {fname}")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        got = _sha256(Path(tmp))
        if got != digest:
            raise XuxieError(
                f"downloaded '{name}' has SHA-256 {got[:12]}…, expected {digest[:12]}…; "
                f"the source changed or the download was damaged — put the file in {folder} yourself"
            )
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise XuxieError(
            f"could not download corpus '{name}' from {url} ({e}); you may be offline — "
            f"download it yourself to {path} or set XUXIE_DATA_DIR to a folder holding {fname}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- decoding bytes
class NotText(XuxieError):
    """The bytes are not text in any encoding (a binary file): skipped inside a folder, an error when named."""


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if not sample:
        return False
    # Control bytes other than tab/newline/carriage return/form feed/escape are rare in text.
    bad = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return bad / len(sample) > 0.01


def _plausible(text: str) -> float:
    """Share of characters that are assigned, non-private, and not control codes (tab/newline aside)."""
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if unicodedata.category(c) in ("Cn", "Co", "Cs", "Cc") and c not in "\t\n\r\f")
    return 1.0 - bad / len(sample)


def _utf16_guess(data: bytes, need_nul: bool = True) -> tuple[str, str] | None:
    """UTF-16 without a BOM: the byte order whose strict decoding is (nearly) all assigned text.

    Asked only when there are NUL bytes (any newline, space or ASCII letter in UTF-16 has one, and
    GBK/Big5/Latin text has none): GBK byte pairs read as UTF-16 are valid Hangul, so without that
    evidence short Chinese texts would be misread.
    """
    if len(data) < 2 or len(data) % 2 or (need_nul and b"\x00" not in data):
        return None
    scored = [(_plausible(t), enc, t) for enc in ("utf_16_le", "utf_16_be") if (t := _strict(data, enc)) is not None]
    scored = [x for x in scored if x[0] >= 0.98]
    if not scored:
        return None
    _, enc, text = max(scored, key=lambda x: x[0])
    return text, enc


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _utf8_cut_short(data: bytes) -> str | None:
    """UTF-8 whose only fault is an incomplete last character (a file cut with ``head -c`` or a
    truncated download): the text without that partial character."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.end == len(data) and len(data) - e.start < 4:
            return _strict(data[: e.start], "utf-8")
    return None


_INVALID_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of each byte that is not UTF-8
MOSTLY_UTF8 = 100  # valid non-ASCII bytes per invalid byte from which a file is UTF-8 with damage


def _mostly_utf8(data: bytes, name: str) -> str | None:
    """UTF-8 with a few invalid bytes (a damaged download, a bad copy-paste): each becomes U+FFFD,
    with one warning, rather than the whole file being re-read as Latin-1. It needs real UTF-8
    around the damage — at least :data:`MOSTLY_UTF8` valid non-ASCII bytes per invalid one — so a
    cp1252 file with a single curly quote still goes to encoding detection."""
    text = data.decode("utf-8", errors="surrogateescape")
    invalid = len(_INVALID_UTF8.findall(text))
    non_ascii = len(data.translate(None, bytes(range(128))))
    if not invalid or non_ascii - invalid < MOSTLY_UTF8 * invalid:
        return None
    first = len(text[:_INVALID_UTF8.search(text).start()].encode("utf-8", errors="surrogateescape"))  # a byte offset
    warnings.warn(f"{name} is UTF-8 with {invalid} invalid byte{'s' if invalid > 1 else ''} (the first at byte {first}); "
                  "each became \ufffd — pass --encoding to read it another way", XuxieWarning, stacklevel=2)
    return _INVALID_UTF8.sub("\ufffd", text)


def decode_bytes(data: bytes, encoding: str | None = None, name: str = "<bytes>") -> tuple[str, str]:
    """Decode ``data`` to text; returns (text, encoding used).

    Order: forced ``encoding``; a byte-order mark (UTF-8/16/32); strict UTF-8; UTF-8 with a few
    invalid bytes (replaced, with a warning); UTF-16 recognised by
    its NUL bytes; otherwise each of GB18030 (a superset of GBK/GB2312), Big5, UTF-16, cp1252 and
    Latin-1 that decodes the bytes without error, the most plausible chosen by charset-normalizer.
    (charset-normalizer alone rejects some real Big5 text, measured on 红楼梦, so it only ranks
    candidates that decode cleanly.)
    """
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise XuxieError(f"unknown encoding '{encoding}' (try utf-8, gb18030, gbk, big5, utf-16)") from None
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            raise XuxieError(
                f"{name} is not valid {encoding} (byte {e.start}); drop --encoding to detect it automatically"
            ) from None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = _strict(data, enc)
            if text is not None:
                return text, enc
            break
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    text = _utf8_cut_short(data)
    if text is not None:
        return text, "utf-8"
    text = _mostly_utf8(data, name)
    if text is not None:
        return text, "utf-8"
    utf16 = _utf16_guess(data)
    if utf16 is not None:
        return utf16
    if _looks_binary(data):
        # Chinese UTF-16 with no ASCII at all has no NUL but many low bytes.
        utf16 = _utf16_guess(data, need_nul=False)
        if utf16 is not None:
            return utf16
        raise NotText(
            f"{name} does not look like text (a binary file?); give a text file, or force the encoding with --encoding"
        )
    decoded = {enc: t for enc in _CANDIDATES if (t := _strict(data, enc)) is not None}
    if len(decoded) > 1:
        from charset_normalizer import from_bytes

        best = from_bytes(data, cp_isolation=list(decoded), threshold=1.0).best()
        if best is not None and best.encoding in decoded:
            return decoded[best.encoding], best.encoding
    if decoded:
        enc = next(iter(decoded))
        return decoded[enc], enc
    raise XuxieError(f"{name} is not text in any known encoding; force one with --encoding (e.g. gb18030, big5, utf-16)")


def normalize_text(text: str) -> str:
    """CRLF/CR → LF; drop the BOM and NUL; keep everything else as written."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\x00", "")


# --------------------------------------------------------------------------- reading
class _Found(NamedTuple):
    """A file to read: its absolute path, and whether the user named it (not a folder holding it)."""

    path: Path
    named: bool


class _Read(NamedTuple):
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


def _expand(paths: list[str | Path], exclude: list[str | Path] | tuple = ()) -> list[_Found]:
    """The files named by ``paths`` (files, folders, named corpora), as absolute paths. Inside a
    folder, the paths in ``exclude`` (files or folders, e.g. a training run's output folder before
    it holds a config.json) are left out; a path named directly is always read."""
    skip = {Path(p).expanduser().resolve() for p in exclude}
    files: list[_Found] = []
    for p in paths:
        sp = str(p)
        if sp in NAMED_CORPORA and not Path(sp).exists():
            files.append(_Found(resolve_named_corpus(sp).resolve(), named=True))
            continue
        path = Path(sp).expanduser()
        if path.is_dir():
            files.extend(_Found(f, named=False) for f in _folder_files(path.resolve(), skip))
        elif path.is_file():
            files.append(_Found(path.resolve(), named=True))
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


def _read_files(found: list[_Found], encoding: str | None) -> list[_Read]:
    """Read and decode each file once, hashing the bytes read. A file that is not text is an error
    when the user named it, and skipped when a folder held it (a stray image or archive should not
    stop training on the rest), with one warning naming the skipped files."""
    read: list[_Read] = []
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
        read.append(_Read(f.path, normalize_text(text), enc, hashlib.sha256(data).hexdigest()))
    if not read:
        raise XuxieError(f"the corpus folder holds no text: its {len(binary)} file(s) do not look like text "
                         f"({_shown(binary)}); give text files")
    if binary:
        warnings.warn(f"skipped {len(binary)} file(s) in the corpus folder that do not look like text (binary?): "
                      f"{_shown(binary)}", XuxieWarning, stacklevel=3)
    return read


def _provenance(read: list[_Read]) -> dict[str, tuple[str, ...]]:
    """The :class:`Corpus` fields that say where its text came from."""
    return {"sources": tuple(str(r.path) for r in read), "encodings": tuple(r.encoding for r in read),
            "source_hashes": tuple(r.sha256 for r in read)}


def _string_provenance(text: str) -> dict[str, tuple[str, ...]]:
    """:func:`_provenance` of a text given as a string rather than a file."""
    return {"sources": ("<text>",), "encodings": ("str",),
            "source_hashes": (hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),)}


def documents_from_text(text: str, mode: str) -> list[str]:
    if mode not in MODES:
        raise XuxieError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")
    if mode in ("pairs", "continuation"):
        raise XuxieError(f"mode '{mode}' makes source→target pairs, not documents; use read_corpus or corpus_from_text")
    if mode == "lines":
        return [line.strip() for line in text.split("\n") if line.strip()]
    return [text] if text.strip() else []


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
    if mode not in MODES:
        raise XuxieError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if mode == "pairs":
        return read_pairs(paths, encoding, exclude=exclude)
    if mode == "continuation":
        _check_unit(unit, sentences)
    read = _read_files(_expand(list(paths), exclude), encoding)
    where = ", ".join(str(r.path) for r in read)
    if mode == "continuation":
        if not any(r.text.strip() for r in read):
            raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
        return _continuation([r.text for r in read], unit, sentences, where, **_provenance(read))
    docs = [doc for r in read for doc in documents_from_text(r.text, mode)]
    if not docs:
        raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
    return Corpus(docs, mode, **_provenance(read))


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def read_labelled(paths: str | Path | list[str | Path], label_column: str, text_column: str = "text",
                  encoding: str | None = None, *, exclude: list[str | Path] | tuple = ()) -> Corpus:
    """Documents with a context label from CSV, TSV or JSON-lines files (``lines`` mode).

    Every row is a document: its ``text_column`` is the text, its ``label_column`` the label (an
    empty label leaves the document unlabelled). Rows with empty text are skipped.
    """
    import csv
    import io
    import json

    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = _expand(list(paths), exclude)
    for f in found:
        if f.path.suffix.lower() not in TABLE_SUFFIXES:
            raise XuxieError(f"{f.path}: a labelled corpus must be a .csv, .tsv or .jsonl file (got '{f.path.suffix}')")
    read = _read_files(found, encoding)
    docs: list[str] = []
    labels: list[str | None] = []
    for f, text, _, _ in read:
        if f.suffix.lower() == ".jsonl":
            rows = []
            for n, line in enumerate(text.split("\n"), 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError as e:
                        raise XuxieError(f"{f} line {n} is not JSON ({e}); give one JSON object per line") from None
                    if not isinstance(row, dict):
                        raise XuxieError(f"{f} line {n} is not a JSON object; give one object per line")
                    rows.append(row)
            columns = sorted({k for r in rows for k in r})
        else:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if f.suffix.lower() == ".tsv" else ",")
            rows = list(reader)
            columns = list(reader.fieldnames or [])
        if not rows:
            raise XuxieError(f"{f} holds no rows; give a file with a header line and at least one row")
        for col in (text_column, label_column):
            if col not in columns:
                raise XuxieError(f"{f} has no column '{col}'; its columns are: {', '.join(map(str, columns)) or '(none)'}")
        for r in rows:
            doc = " ".join(str(r.get(text_column) or "").split("\n")).strip()
            if doc:
                docs.append(doc)
                label = str(r.get(label_column) or "").strip()
                labels.append(label or None)
    if not docs:
        raise XuxieError(f"{', '.join(str(r.path) for r in read)} has no rows with text in column '{text_column}'")
    if not any(labels):
        raise XuxieError(f"column '{label_column}' is empty in every row; give labels or train without --label-column")
    return Corpus(docs, "lines", labels=labels, **_provenance(read))


def corpus_from_text(text: str, mode: str = "text") -> Corpus:
    """A :class:`Corpus` from a string; ``pairs`` mode reads it as TSV (``source<TAB>target`` lines)."""
    if mode == "continuation":
        return continuation_pairs(text)
    if mode == "pairs":
        sources, targets = _parse_tsv(normalize_text(text), "the text")
        if not sources:
            raise XuxieError("the text holds no pairs; give source<TAB>target lines")
        return Corpus(sources, "pairs", targets=targets, pairs_from="files", **_string_provenance(text))
    docs = documents_from_text(normalize_text(text), mode)
    if not docs:
        raise XuxieError("the text is empty or only whitespace; give some text to train on")
    return Corpus(docs, mode, **_string_provenance(text))


# --------------------------------------------------------------------------- source→target pairs
def _parse_tsv(text: str, name: str) -> tuple[list[str], list[str]]:
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
        sources.append(source)
        targets.append(target)
    return sources, targets


def _parse_jsonl(text: str, name: str) -> tuple[list[str], list[str]]:
    """Pairs from JSON lines: one ``{"source": "…", "target": "…"}`` object per line.

    Strings keep their inner line breaks (a source may be several paragraphs); surrounding
    whitespace is stripped. Other keys are ignored.
    """
    import json

    sources: list[str] = []
    targets: list[str] = []
    hint = 'give one {"source": "…", "target": "…"} object per line'
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise XuxieError(f"{name} line {n} is not JSON ({e}); {hint}") from None
        if not isinstance(row, dict):
            raise XuxieError(f"{name} line {n} is a JSON {type(row).__name__}, not an object; {hint}")
        pair = []
        for key in ("source", "target"):
            if key not in row:
                raise XuxieError(f'{name} line {n} has no "{key}" key; {hint}')
            value = row[key]
            if not isinstance(value, str):
                raise XuxieError(f'{name} line {n}: "{key}" is a JSON {type(value).__name__}, not a string; {hint}')
            if not value.strip():
                raise XuxieError(f'{name} line {n} has an empty "{key}"; give a non-empty text or delete the line')
            pair.append(value.strip())
        sources.append(pair[0])
        targets.append(pair[1])
    return sources, targets


def read_pairs(paths: str | Path | list[str | Path], encoding: str | None = None, *,
               exclude: list[str | Path] | tuple = ()) -> Corpus:
    """Source→target pairs from ``.tsv`` and ``.jsonl`` files (mode ``pairs``).

    ``.tsv``: one ``source<TAB>target`` per line; blank lines and a ``source<TAB>target`` header
    are skipped; a line with a second tab is an error (no guessing which side it belongs to).
    ``.jsonl``: one object per line with string keys ``source`` and ``target`` (line breaks inside
    the strings are kept). Sources and targets are stripped and must not be empty. The encoding of
    each file is detected (UTF-8/16, GBK/GB18030, Big5, …) unless ``encoding`` is given. Folders
    are read as in :func:`read_corpus` (``exclude``, hidden files, xuxie's folders, binary files).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = _expand(list(paths), exclude)
    for f in found:
        suffix = f.path.suffix.lower()
        if suffix not in PAIR_SUFFIXES:
            raise XuxieError(
                f"{f.path}: pairs files must be .tsv (source<TAB>target) or .jsonl (got '{suffix or 'no suffix'}'); "
                "to make pairs from a plain novel use --mode continuation"
            )
    read = _read_files(found, encoding)
    sources: list[str] = []
    targets: list[str] = []
    for f, text, _, _ in read:
        src, tgt = (_parse_jsonl if f.suffix.lower() == ".jsonl" else _parse_tsv)(text, str(f))
        if not src:
            raise XuxieError(f"{f} holds no pairs; give at least one source<TAB>target line (or JSON object)")
        sources.extend(src)
        targets.extend(tgt)
    return Corpus(sources, "pairs", targets=targets, pairs_from="files", **_provenance(read))


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


def _check_unit(unit: str, sentences: int) -> None:
    if unit not in UNITS:
        raise XuxieError(f"unknown unit '{unit}'; choose one of: {', '.join(UNITS)}")
    if unit == "sentences" and (isinstance(sentences, bool) or not isinstance(sentences, int) or sentences < 1):
        raise XuxieError(f"sentences per unit must be a whole number of at least 1, got {sentences!r}")


def _continuation(texts: list[str], unit: str, sentences: int, where: str, **provenance: tuple[str, ...]) -> Corpus:
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
    _check_unit(unit, sentences)
    if isinstance(corpus_or_text, Corpus):
        c = corpus_or_text
        if c.mode == "pairs":
            raise XuxieError("the corpus is already source→target pairs; give a plain text (mode text or lines)")
        texts = list(c.documents) if c.mode == "text" else [c.text]
        return _continuation(texts, unit, sentences, ", ".join(c.sources) or "the text",
                             sources=c.sources, encodings=c.encodings, source_hashes=c.source_hashes)
    if not isinstance(corpus_or_text, str):
        raise XuxieError(f"continuation_pairs needs a Corpus or a string, got {type(corpus_or_text).__name__}")
    if not corpus_or_text.strip():
        raise XuxieError("the text is empty or only whitespace; give some text to make pairs from")
    return _continuation([corpus_or_text], unit, sentences, "the text", **_string_provenance(corpus_or_text))
